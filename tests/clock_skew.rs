//! A local clock that is off by minutes: STS (the emulator with a clock
//! offset) rejects the signing time, the client learns the offset from the
//! response's `Date` header, signs again once, and expiry decisions use the
//! corrected clock.

use std::time::Duration;

use stslib::emulator::{Action, Emulator};
use stslib::profile::ProfileFiles;
use stslib::{AccessKey, Secret, Session, StsClient};

const KEY: &str = "AKIACLOCKSKEWTEST001";
const SECRET: &str = "clock/skew/secret/000000000000000000000000";

fn emulator(offset: time::Duration) -> Emulator {
    Emulator::builder()
        .user("skewed", KEY, SECRET)
        .clock_offset(offset)
        .start()
        .unwrap()
}

fn user() -> AccessKey {
    AccessKey {
        access_key_id: KEY.into(),
        secret_access_key: Secret::new(SECRET),
        session_token: None,
    }
}

fn client(emu: &Emulator) -> StsClient {
    StsClient::builder()
        .endpoint(emu.endpoint())
        .max_attempts(1)
        .build()
        .unwrap()
}

#[test]
fn a_client_behind_or_ahead_corrects_itself_once() {
    for minutes in [10, -10] {
        let emu = emulator(time::Duration::minutes(minutes));
        let c = client(&emu);
        assert_eq!(c.clock_skew(), time::Duration::ZERO);
        // Even with max_attempts(1): the skew retry is separate.
        let who = c.get_caller_identity(&user()).unwrap();
        assert!(who.arn.ends_with(":user/skewed"));
        assert_eq!(emu.request_count(Action::GetCallerIdentity), 2, "{minutes}");
        let learnt = c.clock_skew().whole_seconds();
        assert!(
            (learnt - minutes * 60).abs() <= 2,
            "learnt {learnt} s for {minutes} min"
        );
        // Later calls are signed right the first time.
        c.get_caller_identity(&user()).unwrap();
        assert_eq!(emu.request_count(Action::GetCallerIdentity), 3);
        // Clones share what was learnt.
        assert_eq!(c.clone().clock_skew(), c.clock_skew());
    }
}

#[test]
fn a_small_skew_is_left_alone() {
    let emu = emulator(time::Duration::minutes(2));
    let c = client(&emu);
    c.get_caller_identity(&user()).unwrap();
    assert_eq!(emu.request_count(Action::GetCallerIdentity), 1);
    assert_eq!(c.clock_skew(), time::Duration::ZERO);
}

#[test]
fn a_real_signature_mismatch_is_not_mistaken_for_skew() {
    let emu = emulator(time::Duration::ZERO);
    let mut wrong = user();
    wrong.secret_access_key = Secret::new("not-the-secret");
    let e = client(&emu).get_caller_identity(&wrong).unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(emu.request_count(Action::GetCallerIdentity), 1);
}

#[test]
fn expiry_decisions_use_the_corrected_clock() {
    // STS's clock is 20 minutes behind ours: 15-minute role credentials
    // expire, by our raw clock, 5 minutes ago. They are valid all the same.
    let emu = emulator(time::Duration::minutes(-20));
    let files = ProfileFiles::from_strings(
        "[profile skewed]\n[profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\n\
         source_profile = skewed\nduration_seconds = 900\n",
        &format!("[skewed]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let session = Session::builder()
        .env(stslib::Env::from_pairs([(
            "AWS_ENDPOINT_URL_IAM",
            emu.endpoint(),
        )]))
        .files(files)
        .profile("skewed")
        .endpoint(emu.endpoint())
        .build()
        .unwrap();
    session
        .generate_session_token(Duration::from_secs(3600), None)
        .unwrap();
    let outcomes = session.generate_credentials(&["r"]).unwrap();
    let c = outcomes["r"].as_ref().unwrap();
    let raw_now = time::OffsetDateTime::now_utc();
    assert!(c.expiration < raw_now, "by the raw clock they look expired");
    let skew = session.client().clock_skew();
    assert!((skew.whole_minutes() + 20).abs() <= 1, "{skew}");
    assert!(c.is_valid_at(raw_now + skew));
    assert!(session.valid_credentials().get("r").is_some());
    assert!(session.valid_credentials_for("r").is_some());
    // start_time is on STS's clock too, so the duration is the real one.
    assert!((c.duration().whole_seconds() - 900).abs() <= 2);
    session.halt().unwrap();
}
