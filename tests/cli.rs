//! The `stslib` binary run as a process against the local STS emulator:
//! outputs parsed and checked, exit codes, errors on stderr.

use std::path::PathBuf;
use std::process::{Command, Output};

use stslib::emulator::{Action, Emulator};

const USER_KEY: &str = "AKIACLITESTUSER00001";
const USER_SECRET: &str = "cli/test/secret/AAAAAAAAAAAAAAAAAAAAAAAAAA";
const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const CODE: &str = "314159";

/// A temporary HOME with an AWS config and credentials file.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str, config: &str, credentials: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("stslib-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(dir.join(".aws/config"), config).unwrap();
        std::fs::write(dir.join(".aws/credentials"), credentials).unwrap();
        Home { dir }
    }

    /// The standard fixture: user `alice` with an MFA device, roles a, b
    /// and `denied`.
    fn standard(name: &str) -> Home {
        let config = format!(
            "[profile alice]\nmfa_serial = {SERIAL}\n\
             [profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = alice\n\
             [profile b]\nrole_arn = arn:aws:iam::123456789012:role/b\nsource_profile = alice\n\
             [profile denied]\nrole_arn = arn:aws:iam::123456789012:role/denied\nsource_profile = alice\n"
        );
        let credentials = format!(
            "[alice]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {USER_SECRET}\n"
        );
        Home::new(name, &config, &credentials)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_stslib"))
            .args(args)
            .env_clear()
            .env("HOME", &self.dir)
            .output()
            .expect("run stslib")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn emulator() -> Emulator {
    Emulator::builder()
        .user("alice", USER_KEY, USER_SECRET)
        .mfa_device("alice", SERIAL, CODE)
        .require_mfa(true)
        .deny_role("arn:aws:iam::123456789012:role/denied")
        .start()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(o)))
}

#[test]
fn profiles_json_has_conformance_shape_and_redacts_secrets() {
    let home = Home::new(
        "profiles",
        "[default]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 10\n\
         [sso-session corp]\nsso_region = us-east-1\n",
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = topsecret\n\
         aws_session_token = tokentoken\n",
    );
    let o = home.run(&["profiles", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let d = &v["profiles"]["default"];
    assert_eq!(d["region"], "eu-west-1");
    assert_eq!(d["aws_access_key_id"], "AKIDEXAMPLE");
    assert_eq!(d["aws_secret_access_key"], "**redacted**");
    assert_eq!(d["aws_session_token"], "**redacted**");
    assert_eq!(d["s3"]["max_concurrent_requests"], "10");
    assert_eq!(v["sso_sessions"]["corp"]["sso_region"], "us-east-1");
    let text = stdout(&home.run(&["profiles"]));
    assert!(text.contains("[default]") && text.contains("region = eu-west-1"));
    assert!(!text.contains("topsecret") && !text.contains("tokentoken"));
}

#[test]
fn profiles_parse_error_names_file_and_line_and_exits_1() {
    let home = Home::new(
        "parse-error",
        "[profile ok]\nregion = x\n[profile broken\n",
        "",
    );
    let o = home.run(&["profiles"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(".aws/config:3:"), "{err}");
    assert!(err.contains("must end with ']'"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let home = Home::new("usage", "", "");
    assert_eq!(home.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(home.run(&["profiles", "--bogus"]).status.code(), Some(2));
    assert_eq!(home.run(&["credentials"]).status.code(), Some(2));
    assert_eq!(
        home.run(&["credentials", "--profile", "a", "--lifetime", "soon"])
            .status
            .code(),
        Some(2)
    );
    for cmd in ["profiles", "whoami", "credentials"] {
        let o = home.run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).contains(&format!("stslib {cmd}")), "{cmd}");
    }
    let o = home.run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Commands:"));
}

#[test]
fn whoami_for_user_and_for_role_profile() {
    let emu = emulator();
    let home = Home::standard("whoami");
    let endpoint = emu.endpoint();
    let o = home.run(&["--endpoint", &endpoint, "whoami", "--profile", "alice"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Account: 123456789012"), "{out}");
    assert!(
        out.contains("arn:aws:iam::123456789012:user/alice"),
        "{out}"
    );

    let o = home.run(&["whoami", "--profile", "a", "--endpoint", &endpoint]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("arn:aws:sts::123456789012:assumed-role/a/"),
        "{}",
        stdout(&o)
    );
    assert_eq!(emu.request_count(Action::AssumeRole), 1);
    assert_eq!(emu.request_count(Action::GetCallerIdentity), 2);
}

#[test]
fn whoami_unknown_profile_lists_profiles() {
    let home = Home::standard("whoami-unknown");
    let o = home.run(&[
        "whoami",
        "--profile",
        "nope",
        "--endpoint",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("profile `nope` not found"), "{err}");
    assert!(err.contains("alice"), "{err}");
}

#[test]
fn credentials_json_one_session_token_many_roles() {
    let emu = emulator();
    let home = Home::standard("credentials-json");
    let endpoint = emu.endpoint();
    let o = home.run(&[
        "credentials",
        "--profile",
        "a",
        "--profile",
        "b",
        "--mfa-code",
        CODE,
        "--format",
        "json",
        "--endpoint",
        &endpoint,
        "--lifetime",
        "1h",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    for p in ["a", "b"] {
        let c = &v[p];
        assert!(
            c["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
            "{v}"
        );
        assert_eq!(c["SecretAccessKey"], "**redacted**");
        assert_eq!(c["SessionToken"], "**redacted**");
        let exp = c["Expiration"].as_str().unwrap();
        time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).unwrap();
    }
    assert_eq!(emu.request_count(Action::GetSessionToken), 1);
    assert_eq!(emu.request_count(Action::AssumeRole), 2);
    let gst = emu
        .requests()
        .into_iter()
        .find(|r| r.action == Some(Action::GetSessionToken))
        .unwrap();
    assert_eq!(gst.duration_seconds, Some(3600));
    assert_eq!(gst.serial_number.as_deref(), Some(SERIAL));
}

#[test]
fn credentials_show_secrets_and_boto_and_vault_formats() {
    let emu = emulator();
    let home = Home::standard("credentials-formats");
    let endpoint = emu.endpoint();
    let base = [
        "credentials",
        "--profile",
        "a",
        "--mfa-code",
        CODE,
        "--endpoint",
        &endpoint,
    ];

    let o = home.run(&[&base[..], &["--format", "json", "--show-secrets"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    let secret = v["a"]["SecretAccessKey"].as_str().unwrap();
    assert!(secret.len() >= 20 && secret != "**redacted**");

    let o = home.run(&[&base[..], &["--format", "boto"]].concat());
    let v = json(&o);
    let m = &v["sts-a"];
    assert!(m["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    assert_eq!(m["SecretAccessKey"], "**redacted**");
    assert!(m["StartTime"].as_str().is_some());

    let o = home.run(&base);
    let text = stdout(&o);
    assert!(text.contains("[a]"), "{text}");
    assert!(text.contains("secret_access_key = **redacted**"), "{text}");
    assert!(text.contains("duration          = "), "{text}");
    assert!(text.contains("remaining         = "), "{text}");
}

#[test]
fn credentials_one_failing_role_does_not_hide_the_others() {
    let emu = emulator();
    let home = Home::standard("credentials-partial");
    let endpoint = emu.endpoint();
    let o = home.run(&[
        "credentials",
        "--profile",
        "a",
        "--profile",
        "denied",
        "--mfa-code",
        CODE,
        "--format",
        "json",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert!(v["a"]["AccessKeyId"].is_string());
    assert!(v.get("denied").is_none());
    let err = stderr(&o);
    assert!(
        err.contains("profile `denied`") && err.contains("AccessDenied"),
        "{err}"
    );
}

#[test]
fn credentials_wrong_or_missing_mfa_code_is_a_clear_error() {
    let emu = emulator();
    let home = Home::standard("credentials-mfa");
    let endpoint = emu.endpoint();
    let o = home.run(&[
        "credentials",
        "--profile",
        "a",
        "--mfa-code",
        "000000",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("GetSessionToken") && err.contains("AccessDenied"),
        "{err}"
    );
    assert!(
        !err.contains(USER_SECRET) && !err.contains("000000"),
        "{err}"
    );

    let o = home.run(&["credentials", "--profile", "a", "--endpoint", &endpoint]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("MFA code"), "{}", stderr(&o));
    assert_eq!(emu.request_count(Action::AssumeRole), 0);
}
