//! kmsauth end to end on the crate's emulator: the KMS client on the shared
//! transport (signing checked by the emulator), TokenGenerator and
//! TokenValidator over the wire, strict context binding (which moto lacks),
//! the LRU and DescribeKey caches, fault injection, clock-skew correction,
//! session role credentials, concurrent validation, and the generator's
//! background renewal on the session's refresher thread (on a manual
//! clock). Its thread accounting is in `tests/kmsauth_threads.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{alice_files, emulator_with_alice, init_logger, role_profiles, session_builder};
use stslib::clock::ManualClock;
use stslib::emulator::{Action, Emulator, Fault, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use stslib::kms::{EncryptionContext, KmsClient};
use stslib::kmsauth::{Token, TokenGenerator, TokenRejection, TokenValidator, UserType};
use stslib::{AccessKey, Env, Error, Secret, Session};

const REGION: &str = "us-east-1";
const SERVICE: &str = "alias/authnz-service";
const USER: &str = "alias/authnz-user";
const SCOPED: &str = "alias/authnz-sandbox";
const OTHER: &str = "alias/authnz-other";

fn emulator() -> Emulator {
    Emulator::builder()
        .kms_key(REGION, [SERVICE])
        .kms_key(REGION, [USER])
        .kms_key(REGION, [SCOPED])
        .kms_key(REGION, [OTHER])
        .start()
        .expect("emulator starts")
}

fn keys() -> AccessKey {
    AccessKey {
        access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
        secret_access_key: Secret::new(DEFAULT_SECRET_ACCESS_KEY),
        session_token: None,
    }
}

fn client(emu: &Emulator) -> KmsClient {
    KmsClient::builder()
        .env(Env::from_pairs(Vec::<(String, String)>::new()))
        .region(REGION)
        .endpoint(emu.endpoint())
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client builds")
}

fn generator(emu: &Emulator, key: &str) -> stslib::kmsauth::TokenGeneratorBuilder {
    TokenGenerator::builder(key, "svc-a", "svc-b")
        .client(client(emu))
        .access_key(keys())
}

fn validator(emu: &Emulator) -> stslib::kmsauth::TokenValidatorBuilder {
    TokenValidator::builder("svc-b")
        .client(client(emu))
        .access_key(keys())
}

fn rejection<T: std::fmt::Debug>(r: stslib::Result<T>) -> TokenRejection {
    match r {
        Err(Error::InvalidToken { reason, .. }) => reason,
        other => panic!("expected a token rejection, got {other:?}"),
    }
}

fn pair(
    emu: &Emulator,
    f: impl FnOnce(stslib::kmsauth::TokenGeneratorBuilder) -> stslib::kmsauth::TokenGeneratorBuilder,
) -> (String, String) {
    let t = f(generator(emu, SERVICE)).build().unwrap().token().unwrap();
    (t.username, t.token.expose().to_owned())
}

#[test]
fn client_round_trip_and_wire_shape() {
    init_logger();
    let emu = emulator();
    let kms = client(&emu);
    let mut ctx = EncryptionContext::new();
    ctx.insert("to".into(), "svc-b".into());
    let arn = emu.kms_key_arn(REGION, SERVICE).unwrap();
    let enc = kms.encrypt(&keys(), SERVICE, b"hello", &ctx).unwrap();
    assert_eq!(enc.key_id, arn);
    let dec = kms.decrypt(&keys(), &enc.ciphertext_blob, &ctx).unwrap();
    assert_eq!(
        (dec.plaintext.as_slice(), dec.key_id.as_str()),
        (&b"hello"[..], arn.as_str())
    );
    assert!(!format!("{dec:?}").contains("hello"));
    let meta = kms.describe_key(&keys(), SERVICE).unwrap();
    assert_eq!(
        (meta.arn.as_str(), meta.key_state.as_deref()),
        (arn.as_str(), Some("Enabled"))
    );
    let by_id = kms.describe_key(&keys(), &meta.key_id).unwrap();
    assert_eq!(by_id.arn, arn);
    // The alias is sent verbatim to Encrypt; Decrypt sends no KeyId.
    let records = emu.requests();
    let names: Vec<_> = records
        .iter()
        .map(|r| r.action_name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Encrypt", "Decrypt", "DescribeKey", "DescribeKey"]);
    assert_eq!(records[0].kms_key_id.as_deref(), Some(SERVICE));
    assert_eq!(records[1].kms_key_id, None);
    assert!(records.iter().all(|r| r.status == Some(200)));
}

#[test]
fn client_errors_are_typed() {
    init_logger();
    let emu = emulator();
    let kms = client(&emu);
    let ctx = EncryptionContext::new();
    let e = kms
        .encrypt(&keys(), "alias/does-not-exist", b"x", &ctx)
        .unwrap_err();
    let s = e.service_error().expect("a service error");
    assert_eq!(
        (s.action, s.status, s.code.as_str()),
        ("Encrypt", 400, "NotFoundException")
    );
    assert!(
        s.message.contains("alias/does-not-exist is not found"),
        "{}",
        s.message
    );
    assert!(s.request_id.is_some());
    let e = kms
        .decrypt(&keys(), b"garbage that is not a blob", &ctx)
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidCiphertextException"));
    let bad = AccessKey {
        access_key_id: "AKIAUNKNOWNKEY000000".into(),
        ..keys()
    };
    let e = kms.describe_key(&bad, SERVICE).unwrap_err();
    assert_eq!(e.code(), Some("UnrecognizedClientException"));
    // moto's 403 XML layout is read too.
    emu.inject(
        Action::DescribeKey,
        Fault::AuthErrorLayout {
            code: "InvalidClientTokenId".into(),
            message: "The security token included in the request is invalid.".into(),
        },
        1,
    );
    let e = kms.describe_key(&keys(), SERVICE).unwrap_err();
    assert_eq!(e.code(), Some("InvalidClientTokenId"));
    // A plaintext KMS would refuse never leaves.
    let before = emu.request_count(Action::Any);
    assert!(matches!(
        kms.encrypt(&keys(), SERVICE, &[b'x'; 4097], &ctx),
        Err(Error::InvalidInput {
            field: "Plaintext",
            ..
        })
    ));
    assert_eq!(emu.request_count(Action::Any), before);
}

#[test]
fn generator_and_validator_v1_v2_users_services_scoped_keys() {
    init_logger();
    let emu = emulator();
    let v = validator(&emu)
        .service_key(SERVICE)
        .user_key(USER)
        .scoped_key(emu.kms_key_arn(REGION, SCOPED).unwrap(), "sandbox")
        .build()
        .unwrap();
    let (u, t) = pair(&emu, |g| g);
    let ok = v.validate(&u, &t).unwrap();
    assert_eq!(
        (u.as_str(), ok.key_alias.as_str(), ok.account),
        ("2/service/svc-a", SERVICE, None)
    );
    assert!(
        ok.payload.starts_with("{\"not_before\": \""),
        "{}",
        ok.payload
    );
    let (u, t) = pair(&emu, |g| g.token_version(1));
    assert_eq!(
        (u.as_str(), v.validate(&u, &t).unwrap().version),
        ("svc-a", 1)
    );
    let (u, t) = pair(&emu, |g| g.key(USER).user_type(UserType::User));
    assert_eq!(v.validate(&u, &t).unwrap().user_type, UserType::User);
    let (u, t) = pair(&emu, |g| g.key(SCOPED));
    let ok = v.validate(&u, &t).unwrap();
    assert_eq!(ok.account.as_deref(), Some("sandbox"));
    // Wrong keys: another key; a user key for a service; a service key for a user.
    for (key, user_type) in [
        (OTHER, UserType::Service),
        (USER, UserType::Service),
        (SERVICE, UserType::User),
    ] {
        let (u, t) = pair(&emu, |g| g.key(key).user_type(user_type));
        assert_eq!(
            rejection(v.validate(&u, &t)),
            TokenRejection::WrongKey,
            "{key} {user_type}"
        );
    }
}

#[test]
fn context_binding_is_strict_unlike_moto() {
    init_logger();
    let emu = emulator();
    let v = validator(&emu).service_key(SERVICE).build().unwrap();
    // On moto this v1 token validates as a v2 token for `svc-b` (SPEC §3.1).
    let t = TokenGenerator::builder(SERVICE, "svc-a", "svc-buser_typeservice")
        .client(client(&emu))
        .access_key(keys())
        .token_version(1)
        .build()
        .unwrap()
        .token()
        .unwrap();
    assert_eq!(
        rejection(v.validate("2/service/svc-a", t.token.expose())),
        TokenRejection::GeneralError
    );
    let (_, t) = pair(&emu, |g| g);
    for name in [
        "2/service/svc-x",
        "2/user/svc-a",
        "svc-a",
        "1/service/svc-a",
    ] {
        assert_eq!(
            rejection(v.validate(name, &t)),
            TokenRejection::GeneralError,
            "{name}"
        );
    }
    let with_env = validator(&emu)
        .service_key(SERVICE)
        .context("env", "prod")
        .build()
        .unwrap();
    let (u, t) = pair(&emu, |g| g.context("env", "prod"));
    assert!(with_env.validate(&u, &t).is_ok());
    assert_eq!(rejection(v.validate(&u, &t)), TokenRejection::GeneralError);
    let (u, t) = pair(&emu, |g| g.context("env", "dev"));
    assert_eq!(
        rejection(with_env.validate(&u, &t)),
        TokenRejection::GeneralError
    );
}

#[test]
fn caches_spare_kms_calls() {
    init_logger();
    let emu = emulator();
    let v = validator(&emu)
        .service_key(SERVICE)
        .service_key(SCOPED)
        .build()
        .unwrap();
    let g = generator(&emu, SERVICE).build().unwrap();
    let t = g.token().unwrap();
    assert_eq!(g.token().unwrap(), t, "the generator reuses its token");
    assert_eq!(emu.request_count(Action::Encrypt), 1);
    for _ in 0..5 {
        v.validate(&t.username, t.token.expose()).unwrap();
    }
    assert_eq!(emu.request_count(Action::Decrypt), 1, "LRU hits");
    assert_eq!(
        emu.request_count(Action::DescribeKey),
        1,
        "alias resolved once, first entry matched"
    );
    let t2 = g.generate().unwrap();
    v.validate(&t2.username, t2.token.expose()).unwrap();
    assert_eq!(emu.request_count(Action::Decrypt), 2);
    assert_eq!(emu.request_count(Action::DescribeKey), 1);
}

#[test]
fn kms_failures_map_to_pythons_messages() {
    init_logger();
    let emu = emulator();
    let v = validator(&emu).service_key(SERVICE).build().unwrap();
    let (u, t) = pair(&emu, |g| g);
    // Throttling is retried by the transport: the token still validates.
    emu.inject(Action::Decrypt, Fault::throttling(), 1);
    assert!(validator(&emu)
        .service_key(SERVICE)
        .build()
        .unwrap()
        .validate(&u, &t)
        .is_ok());
    for (fault, want) in [
        (Fault::access_denied(), TokenRejection::GeneralError),
        (Fault::MalformedXml, TokenRejection::GeneralError),
        (Fault::WrongShape, TokenRejection::GeneralError),
        (Fault::HtmlError(400), TokenRejection::GeneralError),
    ] {
        let fresh = validator(&emu).service_key(SERVICE).build().unwrap();
        emu.inject(Action::Decrypt, fault.clone(), 1);
        let e = fresh.validate(&u, &t).unwrap_err();
        assert_eq!(rejection::<()>(Err(e)), want, "{fault:?}");
    }
    let e = {
        emu.inject(Action::Decrypt, Fault::ResetConnection, 3);
        let fresh = validator(&emu).service_key(SERVICE).build().unwrap();
        fresh.validate(&u, &t).unwrap_err()
    };
    assert_eq!(
        e.to_string(),
        "Authentication error. Failure connecting to AWS endpoint."
    );
    assert!(std::error::Error::source(&e).is_some());
    // Not base64 never reaches KMS.
    let before = emu.request_count(Action::Decrypt);
    assert_eq!(
        rejection(v.validate(&u, "not*base64")),
        TokenRejection::GeneralError
    );
    assert_eq!(
        rejection(v.validate(&u, &t[..t.len() - 2])),
        TokenRejection::GeneralError
    );
    if t.contains(['+', '/']) {
        let url_safe = t.replace('+', "-").replace('/', "_");
        assert_eq!(
            rejection(v.validate(&u, &url_safe)),
            TokenRejection::GeneralError
        );
    }
    assert_eq!(emu.request_count(Action::Decrypt), before);
}

#[test]
fn clock_skew_is_learnt_from_kms() {
    init_logger();
    let emu = emulator();
    emu.set_clock_offset(time::Duration::minutes(20));
    let kms = client(&emu);
    let meta = kms.describe_key(&keys(), SERVICE).unwrap();
    assert!(meta.arn.ends_with(&meta.key_id));
    let codes: Vec<_> = emu.requests().into_iter().map(|r| r.code).collect();
    assert_eq!(codes, [Some("InvalidSignatureException".to_owned()), None]);
    assert!(
        kms.clock_skew() > time::Duration::minutes(19),
        "{:?}",
        kms.clock_skew()
    );

    // On an STS client's transport settings, the skew KMS teaches is the
    // STS client's too (one clock).
    let sts = stslib::StsClient::builder()
        .env(Env::from_pairs(Vec::<(String, String)>::new()))
        .endpoint(emu.endpoint())
        .build()
        .unwrap();
    assert!(sts.clock_skew().is_zero());
    let kms = KmsClient::builder()
        .transport_of(&sts)
        .region(REGION)
        .endpoint(emu.endpoint())
        .build()
        .unwrap();
    kms.describe_key(&keys(), SERVICE).unwrap();
    assert!(
        sts.clock_skew() > time::Duration::minutes(19),
        "{}",
        sts.clock_skew()
    );
}

/// A clock off by more than KMS tolerates: the first Encrypt is refused,
/// the client learns the skew and signs again. The token it returns must be
/// dated by the corrected clock, not by the one read before the call:
/// otherwise a clock 20 minutes behind gets a token that ended 13 minutes
/// ago, and one 20 minutes ahead a token valid only 17 minutes from now.
#[test]
fn a_token_made_while_the_skew_is_learnt_is_dated_by_the_corrected_clock() {
    init_logger();
    for offset in [time::Duration::minutes(20), time::Duration::minutes(-20)] {
        let emu = emulator();
        emu.set_clock_offset(offset);
        let g = generator(&emu, SERVICE).build().unwrap();
        let t = g.token().unwrap();
        let v = validator(&emu).service_key(SERVICE).build().unwrap();
        v.validate(&t.username, t.token.expose())
            .unwrap_or_else(|e| panic!("server {offset} from the client: {e}"));
        // And it is the one reused: no second Encrypt.
        let before = emu.request_count(Action::Encrypt);
        assert_eq!(g.token().unwrap(), t, "server {offset} from the client");
        assert_eq!(emu.request_count(Action::Encrypt), before);
    }
}

#[test]
fn session_role_credentials_sign_kms_calls() {
    init_logger();
    let emu = emulator_with_alice(Duration::from_secs(3600))
        .kms_key(REGION, [SERVICE])
        .start()
        .unwrap();
    let session = session_builder(
        &emu.endpoint(),
        alice_files("", &role_profiles(&["svc"], "alice", "")),
        "alice",
    )
    .build()
    .unwrap();
    let gen = |s: &stslib::Session| {
        TokenGenerator::builder(SERVICE, "svc-a", "svc-b")
            .client(client(&emu))
            .session_role(s, "svc")
            .build()
            .unwrap()
    };
    let before = gen(&session).token().unwrap_err();
    assert!(
        matches!(&before, Error::NoCredentials { profile, .. } if profile == "svc"),
        "{before:?}"
    );
    session
        .generate_session_token(Duration::from_secs(3600), None)
        .unwrap();
    session.generate_credentials(&["svc"]).unwrap();
    let t = gen(&session).token().unwrap();
    let v = TokenValidator::builder("svc-b")
        .client(client(&emu))
        .session_role(&session, "svc")
        .service_key(SERVICE)
        .build()
        .unwrap();
    assert!(v.validate(&t.username, t.token.expose()).is_ok());
    // A KMS client on the session's STS transport settings (clock, skew,
    // timeouts, CA, proxy), with its own pool.
    let shared = KmsClient::builder()
        .env(Env::from_pairs(Vec::<(String, String)>::new()))
        .transport_of(session.client())
        .region(REGION)
        .endpoint(emu.endpoint())
        .build()
        .unwrap();
    let keys = session.valid_credentials_for("svc").unwrap().access_key();
    assert!(shared.describe_key(&keys, SERVICE).is_ok());
    let role_key = session.valid_credentials_for("svc").unwrap().access_key_id;
    let enc = emu
        .requests()
        .into_iter()
        .find(|r| r.action == Some(Action::Encrypt))
        .unwrap();
    assert_eq!(enc.access_key_id.as_deref(), Some(role_key.as_str()));
}

#[test]
fn one_validator_serves_many_threads() {
    init_logger();
    let emu = emulator();
    let v = Arc::new(validator(&emu).service_key(SERVICE).build().unwrap());
    let tokens: Vec<_> = (0..4)
        .map(|_| generator(&emu, SERVICE).build().unwrap().token().unwrap())
        .collect();
    std::thread::scope(|s| {
        for i in 0..8 {
            let v = Arc::clone(&v);
            let t = &tokens[i % tokens.len()];
            s.spawn(move || {
                for _ in 0..20 {
                    v.validate(&t.username, t.token.expose()).unwrap();
                }
            });
        }
    });
    let decrypts = emu.request_count(Action::Decrypt);
    assert!(
        (4..=8).contains(&decrypts),
        "{decrypts} Decrypts for 4 tokens"
    );
}

// ------------------------------------------- background renewal (manual clock)

/// alice's session with role `svc` (1 h credentials, so no role refresh
/// within these tests) and the emulator's KMS, on one manual clock.
struct Background {
    clock: ManualClock,
    emu: Emulator,
    session: Session,
}

fn background() -> Background {
    init_logger();
    let clock = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(3600))
        .kms_key(REGION, [SERVICE])
        .clock(clock.clock())
        .start()
        .unwrap();
    let files = alice_files("", &role_profiles(&["svc"], "alice", ""));
    let session = session_builder(&emu.endpoint(), files, "alice")
        .clock(clock.clock())
        .build()
        .unwrap();
    session
        .generate_session_token(Duration::from_secs(3600), None)
        .unwrap();
    session.generate_credentials(&["svc"]).unwrap();
    Background {
        clock,
        emu,
        session,
    }
}

impl Background {
    /// A generator renewing in the background (10 min tokens: reused for
    /// 4 min; the session's policy, `fast_policy`, renews in the last half
    /// of that, jittered up to 12 s earlier).
    fn generator(&self) -> TokenGenerator {
        TokenGenerator::builder(SERVICE, "svc-a", "svc-b")
            .client(
                KmsClient::builder()
                    .env(Env::from_pairs(Vec::<(String, String)>::new()))
                    .region(REGION)
                    .endpoint(self.emu.endpoint())
                    .clock(self.clock.clock())
                    .timeout(Duration::from_secs(2))
                    .build()
                    .unwrap(),
            )
            .session_role(&self.session, "svc")
            .refresh_in_background(true)
            .build()
            .unwrap()
    }

    fn encrypts(&self) -> usize {
        self.emu.request_count(Action::Encrypt)
    }

    /// Moves the clock to `at` and lets the refresher act on it.
    fn move_to(&self, at: time::OffsetDateTime) {
        let by = at - self.clock.now();
        assert!(by.is_positive(), "{at} is in the past");
        self.clock.advance_and_settle(by.unsigned_abs());
    }

    /// `g.token()`, asserting it made no KMS call.
    fn token_from_memory(&self, g: &TokenGenerator) -> Token {
        let before = self.encrypts();
        let t = g.token().unwrap();
        assert_eq!(self.encrypts(), before, "token() called KMS");
        t
    }
}

const MINUTE: time::Duration = time::Duration::minutes(1);

/// When `t` was made (by the generator's clock, whole seconds).
fn made(t: &Token) -> time::OffsetDateTime {
    t.not_before + 3 * MINUTE
}

#[test]
fn background_renewal_runs_on_the_refresher_and_token_never_waits() {
    let rig = background();
    let g = rig.generator();
    // The refresher makes the first token as soon as the task is added.
    rig.clock.advance_and_settle(Duration::ZERO);
    assert_eq!(rig.encrypts(), 1, "first token made in the background");
    let first = rig.token_from_memory(&g);
    let made_at = made(&first);
    // Before the renewal window (at least 1 min 48 s after it was made):
    // nothing happens.
    rig.move_to(made_at + MINUTE + time::Duration::seconds(40));
    assert_eq!(rig.encrypts(), 1);
    assert_eq!(rig.token_from_memory(&g), first);
    // Past it, while the first would still be reused: the refresher has
    // renewed, and token() hands out the new one from memory.
    rig.move_to(made_at + 2 * MINUTE + time::Duration::seconds(1));
    assert_eq!(rig.encrypts(), 2, "renewed in the background");
    let second = rig.token_from_memory(&g);
    assert_ne!(second.token.expose(), first.token.expose());
    assert!(second.not_after > first.not_after);
    // A real token, signed with the role's credentials.
    let role_key = rig.session.valid_credentials_for("svc").unwrap();
    let enc = rig
        .emu
        .requests()
        .into_iter()
        .rfind(|r| r.action == Some(Action::Encrypt))
        .unwrap();
    assert_eq!(
        enc.access_key_id.as_deref(),
        Some(role_key.access_key_id.as_str())
    );
    let v = TokenValidator::builder("svc-b")
        .client(client(&rig.emu))
        .access_key(role_key.access_key())
        .service_key(SERVICE)
        .build()
        .unwrap();
    v.validate(&second.username, second.token.expose()).unwrap();
    // Twenty minutes on, a minute at a time: renewed every two minutes or
    // so, and every token() is served from memory, reusable.
    for _ in 0..20 {
        rig.clock.advance_and_settle(Duration::from_secs(60));
        let t = rig.token_from_memory(&g);
        assert!(rig.clock.now() <= t.not_after - 3 * MINUTE);
    }
    let renewals = rig.encrypts() - 2;
    assert!(
        (9..=12).contains(&renewals),
        "{renewals} renewals in 20 min"
    );
    // A new round of generate_credentials replaces the refresher thread:
    // the renewal goes on on the new one.
    rig.session.generate_credentials(&["svc"]).unwrap();
    let before = rig.encrypts();
    rig.clock.advance_and_settle(Duration::from_secs(150));
    assert_eq!(rig.encrypts(), before + 1);
    rig.token_from_memory(&g);
}

#[test]
fn failing_kms_keeps_the_token_while_reusable_then_token_asks_kms_itself() {
    let rig = background();
    let g = rig.generator();
    rig.clock.advance_and_settle(Duration::ZERO);
    let first = rig.token_from_memory(&g);
    let made_at = made(&first);
    let disabled = Fault::Error {
        status: 400,
        code: "DisabledException".into(),
        message: "the key is disabled (injected)".into(),
    };
    rig.emu.inject(Action::Encrypt, disabled, 1000);
    rig.move_to(made_at + 2 * MINUTE + time::Duration::seconds(1));
    let failed = rig.encrypts();
    assert_eq!(failed, 2, "the renewal was tried");
    assert_eq!(rig.token_from_memory(&g), first, "kept while reusable");
    // Retried with backoff while it lasts (each clock move lets the
    // refresher try once more), still served from memory.
    for _ in 0..5 {
        rig.clock.advance_and_settle(Duration::from_secs(10));
        assert_eq!(rig.token_from_memory(&g), first);
    }
    assert_eq!(rig.encrypts(), failed + 5);
    // Past the reuse span nothing is reusable: token() asks KMS itself,
    // and reports its error.
    rig.move_to(made_at + 4 * MINUTE + time::Duration::seconds(1));
    let before = rig.encrypts();
    let e = g.token().unwrap_err();
    assert_eq!(e.code(), Some("DisabledException"));
    assert_eq!(rig.encrypts(), before + 1);
    // KMS is back: the next retry renews, and token() is served again.
    rig.emu.clear_faults();
    rig.clock.advance_and_settle(Duration::from_secs(1));
    let renewed = rig.token_from_memory(&g);
    assert!(renewed.not_after > first.not_after);
}

/// The clock set back an hour (a wrong clock corrected): the token held was
/// made "in the future", and python-kmsauth's rule alone (`now <=
/// not_after - 3 min`) would reuse it for an hour and more, while every
/// validator on that clock refuses it as not yet valid. token() makes a
/// new one instead, and the renewal goes on from it.
#[test]
fn a_clock_set_back_does_not_reuse_a_token_from_the_future() {
    let rig = background();
    let g = rig.generator();
    rig.clock.advance_and_settle(Duration::ZERO);
    let first = rig.token_from_memory(&g);
    rig.clock.set(rig.clock.now() - 60 * MINUTE);
    assert!(rig.clock.settle(Duration::from_secs(10)));
    let t = g.token().unwrap();
    let now = rig.clock.now();
    assert!(
        t.not_before <= now && now <= t.not_after - 3 * MINUTE,
        "{now} outside {}..{} (first: {}..)",
        t.not_before,
        t.not_after,
        first.not_before
    );
    let role_key = rig.session.valid_credentials_for("svc").unwrap();
    let v = TokenValidator::builder("svc-b")
        .client(
            KmsClient::builder()
                .env(Env::from_pairs(Vec::<(String, String)>::new()))
                .region(REGION)
                .endpoint(rig.emu.endpoint())
                .clock(rig.clock.clock())
                .build()
                .unwrap(),
        )
        .access_key(role_key.access_key())
        .service_key(SERVICE)
        .build()
        .unwrap();
    v.validate(&t.username, t.token.expose()).unwrap();
    // The token token() made has the renewal plan again from it (not an
    // hour on, by the old clock): from here the background keeps it fresh
    // and token() never asks KMS, each token valid when handed out.
    rig.clock.advance_and_settle(Duration::ZERO);
    let renewals = rig.encrypts();
    for _ in 0..15 {
        rig.clock.advance_and_settle(Duration::from_secs(90));
        let t = rig.token_from_memory(&g);
        let now = rig.clock.now();
        assert!(t.not_before <= now && now <= t.not_after - 3 * MINUTE);
    }
    assert!(rig.encrypts() >= renewals + 3, "renewed in the background");
}

#[test]
fn dropping_the_generator_ends_its_renewals() {
    let rig = background();
    let g = rig.generator();
    rig.clock.advance_and_settle(Duration::ZERO);
    assert_eq!(rig.encrypts(), 1);
    drop(g);
    // Fifty minutes, past the role's refresh (45 min): the session goes on
    // refreshing its role, the dropped generator's task is gone.
    for _ in 0..10 {
        rig.clock.advance_and_settle(Duration::from_secs(5 * 60));
    }
    assert_eq!(rig.encrypts(), 1, "no renewal after the drop");
    assert_eq!(rig.emu.request_count(Action::AssumeRole), 2);
}

// ------------------------------------------------------------ the command

fn stslib_cmd(emu: &Emulator) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_stslib"));
    c.env_clear()
        .env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_ACCESS_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL_KMS", emu.endpoint())
        .env("HOME", "/nonexistent");
    c
}

fn run_cmd(mut c: std::process::Command, stdin: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn command_generates_and_validates() {
    init_logger();
    let emu = emulator();
    let mut g = stslib_cmd(&emu);
    g.args([
        "kmsauth", "generate", "--key", SERVICE, "--from", "svc-a", "--to", "svc-b",
    ])
    .args(["--context", "env=prod", "--format", "json"]);
    let (code, out, err) = run_cmd(g, "");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["username"], "2/service/svc-a");
    let token = v["token"].as_str().unwrap().to_owned();
    let nb = time::OffsetDateTime::parse(
        v["not_before"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let na = time::OffsetDateTime::parse(
        v["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(na - nb, time::Duration::minutes(10));

    let validate = |to: &str, token_arg: &str, stdin: &str| {
        let mut c = stslib_cmd(&emu);
        c.args([
            "kmsauth", "validate", "--key", OTHER, "--key", SERVICE, "--to", to,
        ])
        .args([
            "--username",
            "2/service/svc-a",
            "--token",
            token_arg,
            "--context",
            "env=prod",
        ]);
        run_cmd(c, stdin)
    };
    let (code, out, err) = validate("svc-b", &token, "");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["version"].as_u64(),
            v["from"].as_str(),
            v["user_type"].as_str(),
            v["key_alias"].as_str()
        ),
        (Some(2), Some("svc-a"), Some("service"), Some(SERVICE))
    );
    assert!(v["payload"]["not_after"].is_string(), "{out}");
    // `--token -` reads it from stdin, out of argv.
    let (code, _, err) = validate("svc-b", "-", &format!("{token}\n"));
    assert_eq!(code, 0, "{err}");
    // Refused: exit 1, one stderr line with python-kmsauth's message.
    let (code, out, err) = validate("svc-c", &token, "");
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("Authentication error. General error."),
        "{err}"
    );
    assert!(err.contains("InvalidCiphertextException"), "{err}");

    let mut t = stslib_cmd(&emu);
    t.args([
        "kmsauth",
        "generate",
        "--key",
        SERVICE,
        "--from",
        "a",
        "--to",
        "b",
        "--token-version",
        "1",
    ]);
    let (code, out, _) = run_cmd(t, "");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    let mut bad = stslib_cmd(&emu);
    bad.args(["kmsauth", "generate", "--key", SERVICE, "--from", "a"]);
    let (code, _, err) = run_cmd(bad, "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--to"), "{err}");
}
