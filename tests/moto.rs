//! stslib's own client and session against moto's server mode: an STS/IAM
//! peer nobody here wrote, which (with authentication on) recomputes SigV4
//! signatures the way botocore does and checks access keys and session
//! tokens.
//!
//! Each test starts its own `moto_server` on a free port through
//! `tests/moto/server.py` (fixtures: IAM user `alice` with keys and a virtual
//! MFA device, roles `role-a`..`role-c`; see that file's docstring) and stops
//! it by PID when the test's [`Moto`] guard drops, panic or not.
//!
//! The venv's python comes from `STSLIB_MOTO_PYTHON`, else
//! `tests/moto/.venv/bin/python` (built by `bash tests/moto/setup.sh`).
//! Without it every test prints `SKIPPED` to the real stderr and returns;
//! with `STSLIB_REQUIRE_MOTO=1` every test fails instead.
//!
//! What moto does not check (MFA codes, durations, expiry, the chaining
//! limit) is tested on the crate's own emulator, not here. moto quirks met
//! here are in `tests/moto/selfcheck.py`'s docstring.

mod common;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use stslib::profile::ProfileFiles;
use stslib::sts::{AssumeRoleRequest, GetSessionTokenRequest};
use stslib::{AccessKey, Env, Error, Secret, Session, StsClient};

const MFA_CODE: &str = "123456";

// ---------------------------------------------------------------- harness

/// Where the moto venv's python is, or why it is unusable.
fn moto_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("STSLIB_MOTO_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/.venv/bin/python"),
    };
    if !python.is_file() {
        return Err(format!("{} does not exist", python.display()));
    }
    // server.py runs the moto_server found next to its python.
    let server = python.with_file_name("moto_server");
    if !server.is_file() {
        return Err(format!(
            "{} is not the moto venv's python (no {} next to it)",
            python.display(),
            server.display()
        ));
    }
    Ok(python)
}

fn server_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto/server.py")
}

/// A running moto server with its fixtures; stopped (by PID, through
/// `server.py stop`) and its temp dir removed on drop.
struct Moto {
    python: PathBuf,
    dir: PathBuf,
    state_file: PathBuf,
    state: Value,
}

/// Starts a server for `test`, or returns `None` after a loud SKIPPED line
/// when moto is not installed (panics instead under `STSLIB_REQUIRE_MOTO=1`).
fn moto(test: &str) -> Option<Moto> {
    common::init_logger();
    let python = match moto_python() {
        Ok(p) => p,
        Err(why) => {
            if std::env::var("STSLIB_REQUIRE_MOTO").as_deref() == Ok("1") {
                panic!(
                    "STSLIB_REQUIRE_MOTO=1 but moto is not usable: {why}; \
                     run `bash tests/moto/setup.sh` and set STSLIB_MOTO_PYTHON"
                );
            }
            // Straight to fd 2: libtest captures eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: moto not installed; run bash tests/moto/setup.sh \
                 (test moto::{test}: {why})"
            );
            return None;
        }
    };
    Some(Moto::start(python, test))
}

impl Moto {
    fn start(python: PathBuf, test: &str) -> Moto {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stslib-moto-{}-{}-{test}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        let state_file = dir.join("state.json");
        let out = run(&python, &["start", "--state-file", path_str(&state_file)]);
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            panic!(
                "server.py start failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = fs::read_to_string(&state_file).expect("read state file");
        let state: Value = serde_json::from_str(&text).expect("state file is JSON");
        Moto {
            python,
            dir,
            state_file,
            state,
        }
    }

    fn str(&self, pointer: &str) -> &str {
        self.state
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("state file has no string at {pointer}"))
    }

    fn endpoint(&self) -> &str {
        self.str("/endpoint")
    }

    fn account(&self) -> &str {
        self.str("/account_id")
    }

    fn mfa_serial(&self) -> &str {
        self.str("/mfa_serial")
    }

    fn role(&self, name: &str) -> &str {
        self.str(&format!("/roles/{name}"))
    }

    fn assumed_role_arn(&self, role: &str, session: &str) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{role}/{session}",
            self.account()
        )
    }

    /// alice's long-term keys (no session token).
    fn alice(&self) -> AccessKey {
        AccessKey {
            access_key_id: self.str("/user/access_key_id").to_owned(),
            secret_access_key: Secret::new(self.str("/user/secret_access_key")),
            session_token: None,
        }
    }

    /// stslib's client with both STS and IAM pointed at moto, and an empty
    /// environment so a developer's `AWS_ENDPOINT_URL*` cannot interfere.
    fn client(&self) -> StsClient {
        StsClient::builder()
            .env(empty_env())
            .region(self.str("/region"))
            .endpoint(self.endpoint())
            .iam_endpoint(self.endpoint())
            .build()
            .expect("client builds")
    }

    /// Switches moto's request authentication on or off.
    fn auth(&self, on: bool) {
        let mode = if on { "on" } else { "off" };
        let out = run(
            &self.python,
            &["auth", mode, "--state-file", path_str(&self.state_file)],
        );
        assert!(
            out.status.success(),
            "server.py auth {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many `POST /` requests moto has logged (one line per request).
    fn posts_logged(&self) -> usize {
        fs::read_to_string(self.str("/log_file"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("POST / HTTP"))
            .count()
    }

    /// Waits (briefly) until the log shows at least `n` posts; returns the count.
    fn wait_posts_logged(&self, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let seen = self.posts_logged();
            if seen >= n || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = fs::read_to_string(self.str("/log_file")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("moto log tail (newest last):");
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        let out = run(
            &self.python,
            &["stop", "--state-file", path_str(&self.state_file)],
        );
        if !out.status.success() {
            // Last resort: the server leads its own process group.
            let pid = self.state["pid"].as_i64().unwrap_or(0);
            eprintln!(
                "server.py stop failed ({}); sending SIGTERM to group {pid}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            if pid > 1 {
                let _ = Command::new("kill")
                    .args(["-TERM", "--", &format!("-{pid}")])
                    .status();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run(python: &Path, args: &[&str]) -> Output {
    Command::new(python)
        .arg(server_py())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn empty_env() -> Env {
    Env::from_pairs(Vec::<(String, String)>::new())
}

/// The service error of `r`, which must have failed with one.
fn service_error<T: std::fmt::Debug>(r: stslib::Result<T>) -> stslib::ServiceError {
    match r {
        Err(Error::Service(e)) => *e,
        other => panic!("expected Error::Service, got {other:?}"),
    }
}

/// An AWS config + credentials file pair in `dir`.
fn write_profiles(dir: &Path, config: &str, credentials: &str) -> ProfileFiles {
    let (c, k) = (dir.join("config"), dir.join("credentials"));
    fs::write(&c, config).unwrap();
    fs::write(&k, credentials).unwrap();
    ProfileFiles::from_paths(Some(&c), Some(&k), &empty_env()).expect("profile files parse")
}

fn alice_credentials_file(m: &Moto) -> String {
    let keys = m.alice();
    format!(
        "[alice]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        keys.access_key_id,
        keys.secret_access_key.expose()
    )
}

// ------------------------------------------------------------------ tests

#[test]
fn caller_identity_signed_with_user_keys() {
    let Some(m) = moto("caller_identity_signed_with_user_keys") else {
        return;
    };
    let id = m.client().get_caller_identity(&m.alice()).unwrap();
    assert_eq!(id.arn, m.str("/user/arn"));
    assert_eq!(
        id.arn,
        format!("arn:aws:iam::{}:user/ops/alice", m.account())
    );
    assert_eq!(id.account, m.account());
    assert_eq!(id.user_name(), Some("alice"));
    assert!(!id.user_id.is_empty());
}

#[test]
fn get_session_token_with_mfa() {
    let Some(m) = moto("get_session_token_with_mfa") else {
        return;
    };
    let req = GetSessionTokenRequest::new()
        .duration_seconds(900)
        .serial_number(m.mfa_serial())
        .token_code(MFA_CODE);
    let c = m.client().get_session_token(&m.alice(), &req).unwrap();
    // moto answers with fixed placeholder credentials (AKIAIOSFODNN7EXAMPLE,
    // which it would itself reject); real STS gives ASIA... keys.
    let id = &c.access_key_id;
    assert!(
        id.len() == 20
            && (id.starts_with("ASIA") || id.starts_with("AKIA"))
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{id}"
    );
    assert!(!c.secret_access_key.is_empty() && !c.session_token.is_empty());
    assert!(c.is_valid(), "expires {}", c.expiration_iso());
    assert!(c.expiration > c.start_time);
    let lifetime = c.duration().whole_seconds();
    assert!((850..=960).contains(&lifetime), "lifetime {lifetime} s");
}

#[test]
fn assume_role_with_mfa_then_caller_identity_as_role() {
    let Some(m) = moto("assume_role_with_mfa_then_caller_identity_as_role") else {
        return;
    };
    let client = m.client();
    let req = AssumeRoleRequest::new(m.role("role-a"), "alice-cli")
        .serial_number(m.mfa_serial())
        .token_code(MFA_CODE);
    let role = client.assume_role(&m.alice(), &req).unwrap();
    let want = m.assumed_role_arn("role-a", "alice-cli");
    assert_eq!(role.assumed_role_arn, want);
    assert!(role.assumed_role_id.ends_with(":alice-cli"));
    assert!(role.credentials.is_valid());
    assert!(role.credentials.access_key_id.starts_with("ASIA"));

    // moto accepts the new key only together with its own session token.
    let id = client
        .get_caller_identity(&role.credentials.access_key())
        .unwrap();
    assert_eq!(id.arn, want);
    assert_eq!(id.account, m.account());
    assert_eq!(id.role_name(), Some("role-a"));
    assert_eq!(id.user_name(), None);
}

#[test]
fn auth_failures_are_service_errors_and_not_retried() {
    let Some(m) = moto("auth_failures_are_service_errors_and_not_retried") else {
        return;
    };
    let client = m.client(); // default: 3 attempts for retryable errors
    let mut wrong_secret = m.alice();
    wrong_secret.secret_access_key = Secret::new("x".repeat(40));

    let before = m.posts_logged();
    let t0 = Instant::now();
    let e = service_error(client.get_caller_identity(&wrong_secret));
    let elapsed = t0.elapsed();
    assert_eq!((e.code.as_str(), e.status), ("SignatureDoesNotMatch", 403));
    assert_eq!(e.action, "GetCallerIdentity");
    assert!(!e.message.is_empty());
    // Exactly one request reached moto: a 403 is final.
    assert_eq!(m.wait_posts_logged(before + 1), before + 1);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // The wrong secret never shows in the error text.
    let shown = format!("{} {:?}", Error::Service(Box::new(e.clone())), e);
    assert!(!shown.contains(&"x".repeat(40)), "{shown}");

    let mut unknown = m.alice();
    unknown.access_key_id = "AKIAUNKNOWNKEY000000".into();
    let before = m.posts_logged();
    let e = service_error(client.get_caller_identity(&unknown));
    assert_eq!((e.code.as_str(), e.status), ("InvalidClientTokenId", 403));
    assert_eq!(m.wait_posts_logged(before + 1), before + 1);

    // An assumed-role key without its session token is unknown too.
    let role = client
        .assume_role(&m.alice(), &AssumeRoleRequest::new(m.role("role-b"), "s1"))
        .unwrap();
    let mut no_token = role.credentials.access_key();
    no_token.session_token = None;
    let e = service_error(client.get_caller_identity(&no_token));
    assert_eq!(e.code, "InvalidClientTokenId");

    // A role outside alice's identity policy: AccessDenied, from the
    // action-error layout.
    let not_allowed = format!("arn:aws:iam::{}:role/not-allowed", m.account());
    let e =
        service_error(client.assume_role(&m.alice(), &AssumeRoleRequest::new(not_allowed, "s1")));
    assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));
    assert_eq!(e.action, "AssumeRole");
}

#[test]
fn reserved_characters_in_values_are_signed_as_botocore_does() {
    let Some(m) = moto("reserved_characters_in_values_are_signed_as_botocore_does") else {
        return;
    };
    let client = m.client();
    // Every character AWS allows in these fields besides [A-Za-z0-9]:
    // moto hashes the form as urlencode() re-encodes it (NOTES.md quirk 1).
    let session_name = "a+b=c,d.e@f-g_h";
    let req = AssumeRoleRequest::new(m.role("role-a"), session_name)
        .external_id("ext:/+=,.@-_id")
        .serial_number(m.mfa_serial())
        .token_code(MFA_CODE)
        .duration_seconds(900);
    let role = client.assume_role(&m.alice(), &req).unwrap();
    let want = m.assumed_role_arn("role-a", session_name);
    assert_eq!(role.assumed_role_arn, want);
    let id = client
        .get_caller_identity(&role.credentials.access_key())
        .unwrap();
    assert_eq!(id.arn, want);

    // The user name parameter of IAM goes through the same encoding.
    let serials = client.list_mfa_devices(&m.alice(), Some("alice")).unwrap();
    assert_eq!(serials, [m.mfa_serial()]);
}

#[test]
fn role_chaining_with_role_credentials() {
    let Some(m) = moto("role_chaining_with_role_credentials") else {
        return;
    };
    let client = m.client();
    let (from, to) = (m.str("/chain/from"), m.str("/chain/to"));
    // moto matches trust principals as exact session ARNs, so the first hop
    // must use the session name its fixtures trust.
    let first = client
        .assume_role(
            &m.alice(),
            &AssumeRoleRequest::new(m.role(from), m.str("/chain/session_name")),
        )
        .unwrap();
    let hop_keys = first.credentials.access_key();
    let second = client
        .assume_role(&hop_keys, &AssumeRoleRequest::new(m.role(to), "hop-2"))
        .unwrap();
    let want = m.assumed_role_arn(to, "hop-2");
    assert_eq!(second.assumed_role_arn, want);
    let id = client
        .get_caller_identity(&second.credentials.access_key())
        .unwrap();
    assert_eq!(id.arn, want);

    // role-a's own policy allows role-c only.
    let e = service_error(client.assume_role(
        &hop_keys,
        &AssumeRoleRequest::new(m.role("role-b"), "hop-2"),
    ));
    assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));
}

#[test]
fn iam_list_mfa_devices() {
    let Some(m) = moto("iam_list_mfa_devices") else {
        return;
    };
    let client = m.client();
    assert_eq!(client.iam_endpoint().trim_end_matches('/'), m.endpoint());
    let serials = client.list_mfa_devices(&m.alice(), Some("alice")).unwrap();
    assert_eq!(serials, [m.mfa_serial()]);
}

/// Session against moto with auth ON: the MFA serial is found through
/// GetCallerIdentity + IAM ListMFADevices (no `mfa_serial` in the profile;
/// both endpoints come from the profile's `endpoint_url`), and the session
/// token is obtained. Assuming roles with moto's placeholder session token
/// is then rejected, and each role reports that as its own outcome.
#[test]
fn session_finds_mfa_serial_through_iam() {
    let Some(m) = moto("session_finds_mfa_serial_through_iam") else {
        return;
    };
    let config = format!(
        "[profile alice]\nregion = us-east-1\nendpoint_url = {url}\n\n\
         [profile a]\nrole_arn = {a}\nsource_profile = alice\n",
        url = m.endpoint(),
        a = m.role("role-a"),
    );
    let files = write_profiles(&m.dir, &config, &alice_credentials_file(&m));
    let session = Session::builder()
        .env(empty_env())
        .files(files)
        .profile("alice")
        .build()
        .unwrap();
    assert_eq!(
        session.client().endpoint().trim_end_matches('/'),
        m.endpoint()
    );
    assert_eq!(
        session.client().iam_endpoint().trim_end_matches('/'),
        m.endpoint()
    );
    assert_eq!(
        session.mfa_serial().unwrap().as_deref(),
        Some(m.mfa_serial())
    );

    let token = session
        .generate_session_token(Duration::from_secs(900), Some(MFA_CODE))
        .unwrap();
    assert!(token.is_valid());

    let mut outcomes = session.generate_credentials(&["a"]).unwrap();
    let e = service_error(outcomes.remove("a").expect("an outcome for a"));
    assert_eq!((e.code.as_str(), e.status), ("InvalidClientTokenId", 403));
    assert!(session.valid_credentials().is_empty());
    session.halt().unwrap();
}

fn role_profiles(m: &Moto, extra: &str) -> String {
    format!(
        "[profile alice]\nregion = us-east-1\nmfa_serial = {serial}\n\n\
         [profile a]\nrole_arn = {a}\nsource_profile = alice\n\n\
         [profile b]\nrole_arn = {b}\nsource_profile = alice\n\n\
         [profile c]\nrole_arn = {c}\nsource_profile = alice\n{extra}",
        serial = m.mfa_serial(),
        a = m.role("role-a"),
        b = m.role("role-b"),
        c = m.role("role-c"),
    )
}

/// The whole Session flow. Auth OFF: moto's GetSessionToken hands out
/// placeholder credentials that moto itself rejects under auth (NOTES.md),
/// so AssumeRole signed with the session token only works unchecked.
#[test]
fn session_flow_with_three_roles() {
    let Some(m) = moto("session_flow_with_three_roles") else {
        return;
    };
    m.auth(false);
    let files = write_profiles(&m.dir, &role_profiles(&m, ""), &alice_credentials_file(&m));
    let session = Session::builder()
        .env(empty_env())
        .files(files)
        .profile("alice")
        .endpoint(m.endpoint())
        .build()
        .unwrap();
    assert_eq!(
        session.mfa_serial().unwrap().as_deref(),
        Some(m.mfa_serial())
    );
    let token = session
        .generate_session_token(Duration::from_secs(3600), Some(MFA_CODE))
        .unwrap();
    assert!(token.is_valid());

    let outcomes = session.generate_credentials(&["a", "b", "c"]).unwrap();
    assert_eq!(outcomes.len(), 3);
    for (profile, outcome) in &outcomes {
        assert!(outcome.is_ok(), "{profile}: {outcome:?}");
    }
    let current = session.valid_credentials();
    assert_eq!(
        current.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    for (profile, creds) in current.iter() {
        assert!(creds.is_valid(), "{profile}");
        let id = session
            .client()
            .get_caller_identity(&creds.access_key())
            .unwrap();
        let role = format!("role-{profile}");
        assert_eq!(id.arn, m.assumed_role_arn(&role, &format!("sts-{profile}")));
    }
    session.halt().unwrap();
    // Credentials stay readable after halt.
    assert_eq!(session.valid_credentials().len(), 3);
}

/// boto3 (botocore's own credential_process provider) runs the built
/// binary from an AWS config and calls GetCallerIdentity with what it
/// prints. Auth OFF for the session-credential chain, as above.
#[test]
fn boto3_uses_stslib_as_credential_process() {
    let Some(m) = moto("boto3_uses_stslib_as_credential_process") else {
        return;
    };
    m.auth(false);
    let bin = env!("CARGO_BIN_EXE_stslib");
    let extra = format!(
        "\n[profile viaproc]\nregion = us-east-1\ncredential_process = {bin} --endpoint {} \
         credential-process --profile a --mfa-code {MFA_CODE}\n",
        m.endpoint()
    );
    let config = m.dir.join("config");
    let credentials = m.dir.join("credentials");
    fs::write(&config, role_profiles(&m, &extra)).unwrap();
    fs::write(&credentials, alice_credentials_file(&m)).unwrap();
    let script = "import sys, boto3\n\
                  s = boto3.Session(profile_name='viaproc')\n\
                  for _ in range(2):\n    \
                      print(s.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])\n";
    let out = Command::new(&m.python)
        .args(["-c", script, m.endpoint()])
        .env_clear()
        .env("HOME", &m.dir)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("STSLIB_CACHE_DIR", m.dir.join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arn = m.assumed_role_arn("role-a", "sts-a");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [arn.as_str(), arn.as_str()]
    );
    // The cache holds the token and the role for the next process.
    let entries = fs::read_dir(m.dir.join("cache")).unwrap().count();
    assert!(entries >= 3, "token, role and lock files: {entries}");
}

/// A role profile sourced from another role profile: two AssumeRole hops
/// (auth OFF, as above), with the profile's `role_session_name` and
/// `external_id` on the wire.
#[test]
fn session_flow_with_chained_profile() {
    let Some(m) = moto("session_flow_with_chained_profile") else {
        return;
    };
    m.auth(false);
    let extra = format!(
        "\n[profile chained]\nrole_arn = {c}\nsource_profile = a\n\
         role_session_name = x+y=z,w.v@u-t_s\nexternal_id = ext:/+=,.@-id\n",
        c = m.role("role-c")
    );
    let files = write_profiles(
        &m.dir,
        &role_profiles(&m, &extra),
        &alice_credentials_file(&m),
    );
    let session = Session::builder()
        .env(empty_env())
        .files(files)
        .profile("alice")
        .endpoint(m.endpoint())
        .build()
        .unwrap();
    session
        .generate_session_token(Duration::from_secs(3600), Some(MFA_CODE))
        .unwrap();
    let outcomes = session.generate_credentials(&["chained"]).unwrap();
    let creds = outcomes["chained"].as_ref().unwrap();
    let id = session
        .client()
        .get_caller_identity(&creds.access_key())
        .unwrap();
    assert_eq!(id.arn, m.assumed_role_arn("role-c", "x+y=z,w.v@u-t_s"));
    session.halt().unwrap();
}

// ------------------------------------------------- stslib exec --server

/// The AWS CLI v1 next to the venv's python, or why the test cannot run
/// (the same SKIPPED / STSLIB_REQUIRE_MOTO rule as moto itself).
fn aws_cli(m: &Moto, test: &str) -> Option<PathBuf> {
    let aws = m.python.with_file_name("aws");
    if aws.is_file() {
        return Some(aws);
    }
    let why = format!(
        "{} does not exist (rerun bash tests/moto/setup.sh)",
        aws.display()
    );
    if std::env::var("STSLIB_REQUIRE_MOTO").as_deref() == Ok("1") {
        panic!("STSLIB_REQUIRE_MOTO=1 but the AWS CLI is missing: {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: moto::{test}: {why}");
    None
}

/// boto3 and the AWS CLI v1, run by `stslib exec --server`, find the
/// credentials through the container credentials endpoint (no keys in
/// their environment) and call GetCallerIdentity on moto as the role.
/// Auth OFF, as for every session-token chain on moto.
#[test]
fn boto3_and_aws_cli_get_the_role_through_exec_server() {
    let test = "boto3_and_aws_cli_get_the_role_through_exec_server";
    let Some(m) = moto(test) else {
        return;
    };
    let Some(aws) = aws_cli(&m, test) else {
        return;
    };
    m.auth(false);
    let config = m.dir.join("config");
    let credentials = m.dir.join("credentials");
    fs::write(&config, role_profiles(&m, "")).unwrap();
    fs::write(&credentials, alice_credentials_file(&m)).unwrap();
    let script = "import sys, boto3\n\
                  s = boto3.Session()\n\
                  print(s.get_credentials().method)\n\
                  print(s.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])\n";
    let child = format!(
        "'{py}' -c \"$0\" '{ep}' && '{aws}' sts get-caller-identity --endpoint-url '{ep}' \
         --query Arn --output text",
        py = m.python.display(),
        aws = aws.display(),
        ep = m.endpoint(),
    );
    let bin = env!("CARGO_BIN_EXE_stslib");
    let out = Command::new(bin)
        .args([
            "--endpoint",
            m.endpoint(),
            "exec",
            "--server",
            "--profile",
            "a",
        ])
        .args(["--mfa-code", MFA_CODE, "--", "sh", "-c", &child, script])
        .env_clear()
        .env("HOME", &m.dir)
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("STSLIB_CACHE_DIR", m.dir.join("cache"))
        .env("AWS_PROFILE", "b") // removed from the child; selects nothing here
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exec failed ({}): {stderr}",
        out.status
    );
    let arn = m.assumed_role_arn("role-a", "sts-a");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["container-role", arn.as_str(), arn.as_str()],
        "{stderr}"
    );
}

/// A botocore client that runs for several role lifetimes (2 s on the
/// emulator) keeps working and sees new keys without restarting: botocore's
/// container provider asks the endpoint again as its copy nears expiry, and
/// the session's refresher has swapped fresh credentials in.
#[test]
fn botocore_child_sees_refreshed_credentials_through_exec_server() {
    let test = "botocore_child_sees_refreshed_credentials_through_exec_server";
    let python = match moto_python() {
        Ok(p) => p,
        Err(why) => {
            if std::env::var("STSLIB_REQUIRE_MOTO").as_deref() == Ok("1") {
                panic!("STSLIB_REQUIRE_MOTO=1 but the venv is not usable: {why}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED: moto::{test}: {why}");
            return;
        }
    };
    let (key, secret) = (
        "AKIAEXECBOTOUSER0001",
        "exec/boto/secret/AAAAAAAAAAAAAAAAAAAAAAA",
    );
    let emu = stslib::emulator::Emulator::builder()
        .user("alice", key, secret)
        .mfa_device("alice", "arn:aws:iam::123456789012:mfa/alice", MFA_CODE)
        .role_lifetime(Duration::from_secs(2))
        .start()
        .unwrap();
    let dir = common::TempDir::new("exec-botocore");
    let config = dir.0.join("config");
    let credentials = dir.0.join("credentials");
    fs::write(
        &config,
        "[profile alice]\nmfa_serial = arn:aws:iam::123456789012:mfa/alice\n\
         [profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\n\
         source_profile = alice\nregion = us-east-1\n",
    )
    .unwrap();
    fs::write(
        &credentials,
        format!("[alice]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    // Counts distinct access keys over up to 9 s, calling STS with each.
    let script = "import sys, time, botocore.session\n\
                  s = botocore.session.get_session()\n\
                  creds = s.get_credentials()\n\
                  assert creds.method == 'container-role', creds.method\n\
                  sts = s.create_client('sts', endpoint_url=sys.argv[1])\n\
                  seen, arns = [], set()\n\
                  end = time.time() + 9\n\
                  while len(seen) < 4 and time.time() < end:\n    \
                      k = creds.get_frozen_credentials().access_key\n    \
                      if not seen or seen[-1] != k:\n        \
                          seen.append(k)\n        \
                          arns.add(sts.get_caller_identity()['Arn'])\n    \
                      time.sleep(0.1)\n\
                  print(len(seen))\n\
                  print(' '.join(sorted(arns)))\n";
    let out = Command::new(env!("CARGO_BIN_EXE_stslib"))
        .args([
            "--endpoint",
            &emu.endpoint(),
            "exec",
            "--server",
            "--profile",
            "a",
            "--mfa-code",
            MFA_CODE,
            "--",
        ])
        .arg(&python)
        .args(["-c", script, &emu.endpoint()])
        .env_clear()
        .env("HOME", &dir.0)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("STSLIB_CACHE_DIR", dir.0.join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exec failed ({}): {stderr}",
        out.status
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}{stderr}");
    assert_eq!(lines[0], "4", "distinct keys seen: {stdout}{stderr}");
    assert!(
        lines[1].contains(":assumed-role/a/") && !lines[1].contains(' '),
        "every key is role a's: {}",
        lines[1]
    );
}
