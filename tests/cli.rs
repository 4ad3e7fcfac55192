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
    // No --profile: AWS_PROFILE, else `default` (absent here: an error).
    let o = home.run(&["credentials"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("`default`"), "{}", stderr(&o));
    assert_eq!(
        home.run(&["credentials", "--profile", "a", "--lifetime", "soon"])
            .status
            .code(),
        Some(2)
    );
    for cmd in [
        "profiles",
        "whoami",
        "credentials",
        "credential-process",
        "export",
        "session",
        "exec",
    ] {
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

fn cache_dir(home: &Home) -> PathBuf {
    home.dir.join(".stslib/cache")
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn credential_process_prints_version_1_json_and_reuses_the_cache() {
    let emu = emulator();
    let home = Home::standard("credential-process");
    let endpoint = emu.endpoint();
    let o = home.run(&[
        "credential-process",
        "--profile",
        "a",
        "--mfa-code",
        CODE,
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["Version"], 1);
    let key = v["AccessKeyId"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ASIA"));
    assert!(v["SecretAccessKey"].as_str().unwrap().len() >= 20);
    assert!(v["SessionToken"].as_str().unwrap().len() >= 20);
    let exp = v["Expiration"].as_str().unwrap();
    time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339).unwrap();

    // The cache: directory 0700, files 0600, no secret in any file name.
    let dir = cache_dir(&home);
    assert_eq!(mode(&dir), 0o700);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("token-")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("role-")), "{names:?}");
    for n in &names {
        assert_eq!(mode(&dir.join(n)), 0o600, "{n}");
        assert!(!n.contains(&key) && !n.contains("mfa"), "{n}");
    }

    // Again, without an MFA code: the cached role is reused, no STS call.
    let o = home.run(&[
        "credential-process",
        "--profile",
        "a",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["AccessKeyId"], key.as_str());
    // Another role: the cached session token serves, no MFA code needed.
    let o = home.run(&[
        "credential-process",
        "--profile",
        "b",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(emu.request_count(Action::GetSessionToken), 1);
    assert_eq!(emu.request_count(Action::AssumeRole), 2);

    // --no-cache: a new session token is needed, hence the MFA code.
    let o = home.run(&[
        "--no-cache",
        "credential-process",
        "--profile",
        "a",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pass --mfa-code"), "{}", stderr(&o));
}

#[test]
fn a_corrupt_cache_file_is_ignored_and_replaced() {
    let emu = emulator();
    let home = Home::standard("corrupt-cache");
    let endpoint = emu.endpoint();
    let args = [
        "credential-process",
        "--profile",
        "a",
        "--mfa-code",
        CODE,
        "--endpoint",
        &endpoint,
    ];
    assert_eq!(home.run(&args).status.code(), Some(0));
    let dir = cache_dir(&home);
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "lock" {
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let o = home.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(emu.request_count(Action::GetSessionToken), 2);
    // Replaced by good files: a third run is served from the cache.
    let o = home.run(&[
        "credential-process",
        "--profile",
        "a",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(emu.request_count(Action::AssumeRole), 2);
}

#[test]
fn export_lines_eval_in_a_shell() {
    let emu = emulator();
    let home = Home::standard("export");
    let endpoint = emu.endpoint();
    let bin = env!("CARGO_BIN_EXE_stslib");
    let script = format!(
        "eval \"$('{bin}' export --profile a --mfa-code {CODE} --endpoint {endpoint})\" && \
         printf '%s\\n%s\\n%s\\n%s\\n' \"$AWS_ACCESS_KEY_ID\" \"${{#AWS_SECRET_ACCESS_KEY}}\" \
         \"${{#AWS_SESSION_TOKEN}}\" \"$AWS_CREDENTIAL_EXPIRATION\""
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("HOME", &home.dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("ASIA"));
    assert!(lines[1].parse::<usize>().unwrap() >= 20);
    assert!(lines[2].parse::<usize>().unwrap() >= 20);
    assert!(lines[3].ends_with('Z'));
}

/// The endpoint can come from the `[services NAME]` section the profile
/// names, as in the AWS SDKs; `AWS_ENDPOINT_URL_STS` beats it.
#[test]
fn services_section_endpoint_is_used() {
    let emu = emulator();
    let config = format!(
        "[profile alice]\nservices = local\n\
         [services local]\nsts =\n  endpoint_url = {}\n",
        emu.endpoint()
    );
    let credentials =
        format!("[alice]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {USER_SECRET}\n");
    let home = Home::new("services", &config, &credentials);
    let o = home.run(&["whoami", "--profile", "alice"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Arn:"), "{}", stdout(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_stslib"))
        .args(["whoami", "--profile", "alice"])
        .env_clear()
        .env("HOME", &home.dir)
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "the variable wins: port 9 refuses"
    );
}

#[test]
fn version_prints_and_exits_0() {
    let home = Home::new("version", "", "");
    for flag in ["--version", "-V"] {
        let o = home.run(&[flag]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(
            stdout(&o),
            format!("stslib {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// Every command's `--profile` defaults to `AWS_PROFILE`, as in the AWS CLI.
#[test]
fn profile_defaults_to_aws_profile() {
    let emu = emulator();
    let home = Home::standard("aws-profile");
    let endpoint = emu.endpoint();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stslib"))
            .args(["--endpoint", &endpoint])
            .args(args)
            .env_clear()
            .env("HOME", &home.dir)
            .env("AWS_PROFILE", "b")
            .output()
            .unwrap()
    };
    let o = run(&["credential-process", "--mfa-code", CODE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["credentials", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(json(&o)["b"]["AccessKeyId"].is_string());
    let o = run(&["export"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A user profile's command too: `session` for AWS_PROFILE=alice.
    let o = Command::new(env!("CARGO_BIN_EXE_stslib"))
        .args(["--endpoint", &endpoint, "session"])
        .env_clear()
        .env("HOME", &home.dir)
        .env("AWS_PROFILE", "alice")
        .output()
        .unwrap();
    assert!(stdout(&o).contains("`alice`"), "{}", stderr(&o));
}

/// `export --format`: each shell's syntax, and the region when the role's
/// chain names one.
#[test]
fn export_formats_and_region() {
    let emu = emulator();
    let config = format!(
        "[profile alice]\nmfa_serial = {SERIAL}\nregion = ap-south-1\n\
         [profile a]\nrole_arn = arn:aws:iam::123456789012:role/a\nsource_profile = alice\n"
    );
    let credentials =
        format!("[alice]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {USER_SECRET}\n");
    let home = Home::new("export-formats", &config, &credentials);
    let endpoint = emu.endpoint();
    let export = |format: &str| {
        let o = home.run(&[
            "--endpoint",
            &endpoint,
            "export",
            "--profile",
            "a",
            "--mfa-code",
            CODE,
            "--format",
            format,
        ]);
        assert_eq!(o.status.code(), Some(0), "{format}: {}", stderr(&o));
        stdout(&o)
    };
    let sh = export("sh");
    assert!(sh.contains("export AWS_REGION='ap-south-1'\n"), "{sh}");
    assert!(
        sh.contains("export AWS_DEFAULT_REGION='ap-south-1'\n"),
        "{sh}"
    );
    let fish = export("fish");
    assert!(
        fish.contains("set -gx AWS_REGION 'ap-south-1';\n"),
        "{fish}"
    );
    assert!(
        fish.lines().all(|l| l.starts_with("set -gx AWS_")),
        "{fish}"
    );
    let ps = export("powershell");
    assert!(ps.contains("$Env:AWS_REGION = 'ap-south-1'\n"), "{ps}");
    assert!(ps.lines().all(|l| l.starts_with("$Env:AWS_")), "{ps}");
    let env = export("env");
    let vars: std::collections::BTreeMap<&str, &str> =
        env.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars.len(), 6, "{env}");
    assert!(vars["AWS_ACCESS_KEY_ID"].starts_with("ASIA"));
    assert_eq!(vars["AWS_REGION"], "ap-south-1");
    // The same credentials in every format (cached role credentials).
    let key = vars["AWS_ACCESS_KEY_ID"];
    for text in [&sh, &fish, &ps] {
        assert!(text.contains(key), "{text}");
    }
    let o = home.run(&["export", "--profile", "a", "--format", "csh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn session_command_caches_the_token_ahead_of_time() {
    let emu = emulator();
    let home = Home::standard("session-cmd");
    let endpoint = emu.endpoint();
    let o = home.run(&[
        "session",
        "--profile",
        "alice",
        "--lifetime",
        "2h",
        "--mfa-code",
        CODE,
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("session token for `alice` (new) valid until"),
        "{out}"
    );
    assert!(
        out.contains("1 hour, 59 min") || out.contains("2 hours"),
        "{out}"
    );
    let gst = emu.requests();
    assert_eq!(gst[0].duration_seconds, Some(7200));
    // Roles now need no MFA code.
    let o = home.run(&[
        "credentials",
        "--profile",
        "a",
        "--profile",
        "b",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(emu.request_count(Action::GetSessionToken), 1);
}

#[test]
fn eight_processes_at_once_make_one_get_session_token() {
    let emu = emulator();
    // Keep GetSessionToken and AssumeRole slow so that all eight overlap.
    emu.inject(
        Action::GetSessionToken,
        stslib::emulator::Fault::Delay(std::time::Duration::from_millis(400)),
        8,
    );
    emu.inject(
        Action::AssumeRole,
        stslib::emulator::Fault::Delay(std::time::Duration::from_millis(300)),
        8,
    );
    let home = Home::standard("eight");
    let endpoint = emu.endpoint();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let role = if i % 2 == 0 { "a" } else { "b" };
            Command::new(env!("CARGO_BIN_EXE_stslib"))
                .args([
                    "credential-process",
                    "--profile",
                    role,
                    "--mfa-code",
                    CODE,
                    "--endpoint",
                    &endpoint,
                ])
                .env_clear()
                .env("HOME", &home.dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(json(&o)["Version"], 1);
    }
    assert_eq!(emu.request_count(Action::GetSessionToken), 1);
    // Role entries are checked again under the lock: one AssumeRole per role.
    assert_eq!(emu.request_count(Action::AssumeRole), 2);
    // No temporary or corrupt file is left: every entry serves a later run.
    let names: Vec<String> = std::fs::read_dir(cache_dir(&home))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".tmp")), "{names:?}");
    let before = emu.request_count(Action::AssumeRole);
    for role in ["a", "b"] {
        let o = home.run(&[
            "credential-process",
            "--profile",
            role,
            "--endpoint",
            &endpoint,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert_eq!(emu.request_count(Action::AssumeRole), before);
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

#[test]
fn profiles_never_print_secrets_hidden_in_continuations_or_sub_properties() {
    let home = Home::new(
        "profiles-hidden-secrets",
        "[default]\ns3 =\n  aws_session_token = subsecrettoken\n",
        "[default]\naws_access_key_id = AKIDEXAMPLE\n  aws_secret_access_key = contsecret\n",
    );
    for args in [&["profiles"][..], &["profiles", "--json"]] {
        let o = home.run(args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            !out.contains("subsecrettoken") && !out.contains("contsecret"),
            "{args:?}: {out}"
        );
        assert!(out.contains("**redacted**"), "{out}");
    }
}

#[test]
fn list_and_clear_show_and_forget_the_cache() {
    let emu = emulator();
    let home = Home::standard("list-clear");
    let endpoint = emu.endpoint();
    let o = home.run(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("alice (user): no cached session\n"),
        "{}",
        stdout(&o)
    );
    let o = home.run(&[
        "credential-process",
        "--profile",
        "a",
        "--mfa-code",
        CODE,
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = home.run(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("alice (user): session valid until "), "{out}");
    assert!(
        out.contains("11 hours, 59 min left") || out.contains("12 hours left"),
        "{out}"
    );
    assert!(
        out.contains("a (role, from alice): credentials valid until "),
        "{out}"
    );
    assert!(
        out.contains("b (role, from alice): no cached credentials\n"),
        "{out}"
    );
    assert!(!out.contains("ASIA"), "{out}");

    let o = home.run(&["clear", "--profile", "a"]);
    assert_eq!(
        stdout(&o),
        "removed 1 cached entry for `a`\n",
        "{}",
        stderr(&o)
    );
    assert!(stdout(&home.run(&["list"])).contains("a (role, from alice): no cached credentials"));
    let o = home.run(&["clear"]);
    assert_eq!(stdout(&o), "removed 1 cached entry\n", "{}", stderr(&o));
    let out = stdout(&home.run(&["list"]));
    assert!(out.contains("alice (user): no cached session"), "{out}");
    assert_eq!(stdout(&home.run(&["clear"])), "nothing cached\n");
    // Forgotten: a code is needed again.
    let o = home.run(&[
        "credential-process",
        "--profile",
        "a",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn an_untrusted_cache_is_named_on_stderr_and_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let emu = emulator();
    let home = Home::standard("untrusted-cache");
    let endpoint = emu.endpoint();
    let args = [
        "credential-process",
        "--profile",
        "a",
        "--endpoint",
        &endpoint,
    ];
    let mut with_code = args.to_vec();
    with_code.extend(["--mfa-code", CODE]);
    assert_eq!(home.run(&with_code).status.code(), Some(0));
    let dir = cache_dir(&home);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = home.run(&args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the open cache was used: {}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("stslib: warning: ") && err.contains("writable by group or others"),
        "{err}"
    );
    assert_eq!(emu.request_count(Action::AssumeRole), 1);
    // A relative cache directory is refused before anything is written.
    let o = Command::new(env!("CARGO_BIN_EXE_stslib"))
        .args([
            "credential-process",
            "--profile",
            "a",
            "--endpoint",
            &endpoint,
        ])
        .env_clear()
        .env("AWS_CONFIG_FILE", home.dir.join(".aws/config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.dir.join(".aws/credentials"),
        )
        .env("STSLIB_CACHE_DIR", "~/x")
        .current_dir(&home.dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not an absolute path"),
        "{}",
        stderr(&o)
    );
    assert!(!home.dir.join("~").exists());
}

#[test]
fn verbosity_raises_stslib_logs_but_never_ureq_unless_named() {
    let emu = emulator();
    let home = Home::standard("verbosity");
    let endpoint = emu.endpoint();
    let run = |extra_env: Option<&str>, args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stslib"));
        c.args(args).env_clear().env("HOME", &home.dir);
        if let Some(v) = extra_env {
            c.env("STSLIB_LOG", v);
        }
        c.output().unwrap()
    };
    let base = ["whoami", "--profile", "alice", "--endpoint", &endpoint];
    let quiet = run(None, &base);
    assert_eq!(quiet.status.code(), Some(0), "{}", stderr(&quiet));
    assert_eq!(stderr(&quiet), "");
    let mut v = vec!["-vvv"];
    v.extend(base);
    let loud = run(None, &v);
    let err = stderr(&loud);
    assert!(err.contains("stslib: debug: "), "{err}");
    assert!(!err.contains("[ureq"), "ureq's logs need naming: {err}");
    let traced = run(Some("trace"), &base);
    assert!(!stderr(&traced).contains("[ureq"), "{}", stderr(&traced));
    let named = run(Some("ureq=debug"), &base);
    assert!(
        stderr(&named).contains("stslib: debug [ureq"),
        "{}",
        stderr(&named)
    );
    let bad = run(Some("loud"), &base);
    assert!(
        stderr(&bad).contains("STSLIB_LOG: `loud` is not a level"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn session_says_reused_or_new_and_renew_makes_a_new_one() {
    let emu = emulator();
    let home = Home::standard("session-renew");
    let endpoint = emu.endpoint();
    let base = ["session", "--profile", "alice", "--endpoint", &endpoint];
    let mut with_code = base.to_vec();
    with_code.extend(["--mfa-code", CODE]);
    let o = home.run(&with_code);
    assert!(stdout(&o).contains("(new) valid until"), "{}", stderr(&o));
    let o = home.run(&base);
    assert!(
        stdout(&o).contains("(reused from the cache) valid until"),
        "{}",
        stderr(&o)
    );
    assert_eq!(emu.request_count(Action::GetSessionToken), 1);
    // An explicit code always makes a new session; so does --renew.
    let o = home.run(&with_code);
    assert!(stdout(&o).contains("(new)"), "{}", stderr(&o));
    let mut renew = with_code.clone();
    renew.push("--renew");
    let o = home.run(&renew);
    assert!(stdout(&o).contains("(new)"), "{}", stderr(&o));
    assert_eq!(emu.request_count(Action::GetSessionToken), 3);
    // --renew without any code source: a clear error, not the cached token.
    let mut renew = base.to_vec();
    renew.push("--renew");
    let o = home.run(&renew);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

/// Runs the binary in `home` with `input` on standard input.
fn run_with_stdin(home: &Home, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stslib"))
        .args(args)
        .env_clear()
        .env("HOME", &home.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn mfa_code_dash_reads_one_line_of_stdin() {
    let emu = emulator();
    let home = Home::standard("code-stdin");
    let endpoint = emu.endpoint();
    let args = [
        "credential-process",
        "--profile",
        "a",
        "--mfa-code",
        "-",
        "--endpoint",
        &endpoint,
    ];
    let o = run_with_stdin(&home, &args, &format!("{CODE}\n"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["Version"], 1);
    let gst = emu.requests();
    assert_eq!(gst[0].serial_number.as_deref(), Some(SERIAL));
    // Cached now: stdin is not read at all (a terminal would not be asked).
    let o = run_with_stdin(&home, &args, "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // `session --mfa-code -` too; an empty stdin is a clear error.
    let s = [
        "session",
        "--profile",
        "alice",
        "--mfa-code",
        "-",
        "--endpoint",
        &endpoint,
    ];
    let o = run_with_stdin(&home, &s, &format!("{CODE}\n"));
    assert!(stdout(&o).contains("(new)"), "{}", stderr(&o));
    let o = run_with_stdin(&home, &s, "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no code on standard input"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn credential_process_errors_say_what_to_run_and_why() {
    let emu = emulator();
    let home = Home::standard("advice");
    let endpoint = emu.endpoint();
    let args = [
        "credential-process",
        "--profile",
        "a",
        "--endpoint",
        &endpoint,
    ];
    // No session at all.
    let o = home.run(&args);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("no session in the cache"), "{err}");
    assert!(
        err.contains("run `stslib session --profile alice`"),
        "{err}"
    );
    // A session STS rejects (a token it never issued, valid by its dates).
    let o = home.run(&[
        "session",
        "--profile",
        "alice",
        "--mfa-code",
        CODE,
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let token_file = std::fs::read_dir(cache_dir(&home))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("token-")
        })
        .unwrap();
    let text = std::fs::read_to_string(&token_file).unwrap();
    let forged = reseal(
        &text
            .lines()
            .map(|l| {
                if l.starts_with("access_key_id=") {
                    "access_key_id=ASIANEVERISSUED00001".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>(),
    );
    std::fs::write(&token_file, forged).unwrap();
    let o = home.run(&args);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("STS rejected the cached session (InvalidClientTokenId)"),
        "{err}"
    );
    assert!(
        err.contains("run `stslib session --profile alice`"),
        "{err}"
    );
    assert!(!token_file.exists(), "the rejected token was kept");
    // An expired session.
    let expired = reseal(
        &text
            .lines()
            .map(|l| {
                if l.starts_with("expiration=") {
                    "expiration=2001-01-01T00:00:00Z".to_owned()
                } else if l.starts_with("start_time=") {
                    "start_time=2000-12-31T00:00:00Z".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>(),
    );
    std::fs::write(&token_file, expired).unwrap();
    let o = home.run(&args);
    let err = stderr(&o);
    assert!(
        err.contains("the cached session expired at 2001-01-01T00:00:00Z"),
        "{err}"
    );
    assert!(
        err.contains("run `stslib session --profile alice`"),
        "{err}"
    );
}

/// Rewrites an entry's lines (all but the checksum) and seals it again.
fn reseal(lines: &[String]) -> String {
    let mut head: String = lines
        .iter()
        .filter(|l| !l.starts_with("checksum="))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in head.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    head.push_str(&format!("checksum={h:016x}\n"));
    head
}

#[test]
fn no_mfa_device_found_is_an_error_unless_no_mfa() {
    let emu = Emulator::builder()
        .user("alice", USER_KEY, USER_SECRET)
        .start()
        .unwrap();
    emu.inject(
        Action::ListMFADevices,
        stslib::emulator::Fault::access_denied(),
        10,
    );
    let home = Home::new(
        "no-mfa",
        "[profile alice]\n",
        &format!(
            "[alice]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {USER_SECRET}\n"
        ),
    );
    let endpoint = emu.endpoint();
    let o = home.run(&["session", "--profile", "alice", "--endpoint", &endpoint]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("no MFA device found") && err.contains("ListMFADevices was denied"),
        "{err}"
    );
    assert_eq!(emu.request_count(Action::GetSessionToken), 0);
    assert!(
        !cache_dir(&home).exists() || std::fs::read_dir(cache_dir(&home)).unwrap().count() <= 1
    );
    let o = home.run(&[
        "--no-mfa",
        "session",
        "--profile",
        "alice",
        "--endpoint",
        &endpoint,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("without MFA"), "{}", stderr(&o));
}

#[test]
fn messages_stay_readable_with_huge_inputs() {
    // 100,000 profiles: "not found" lists a few, then how many more.
    let mut config = String::new();
    for i in 0..100_000 {
        config.push_str(&format!("[profile p{i}]\nregion = us-east-1\n"));
    }
    let big_arn = format!("arn:aws:iam::123456789012:role/{}", "x".repeat(5 << 20));
    config.push_str(&format!(
        "[profile big]\nrole_arn = {big_arn}\nsource_profile = alice\n"
    ));
    let home = Home::new(
        "huge",
        &config,
        &format!(
            "[alice]\naws_access_key_id = {USER_KEY}\naws_secret_access_key = {USER_SECRET}\n"
        ),
    );
    let o = home.run(&["whoami", "--profile", "nope"]);
    let err = stderr(&o);
    assert!(err.len() < 2000, "{} bytes", err.len());
    assert!(err.contains("and 99982 more"), "{err}");
    let emu = emulator();
    let o = home.run(&[
        "credentials",
        "--profile",
        "big",
        "--mfa-code",
        CODE,
        "--endpoint",
        &emu.endpoint(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.len() < 2000,
        "{} bytes: {}",
        err.len(),
        &err[..200.min(err.len())]
    );
    assert!(err.contains("bytes)"), "{err}");
    // A refused endpoint never echoes its user info.
    let o = home.run(&[
        "whoami",
        "--profile",
        "alice",
        "--endpoint",
        "https://user:hunter2@sts.example.com/",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(!err.contains("hunter2") && !err.contains("user:"), "{err}");
    assert!(err.contains("https://***@sts.example.com/"), "{err}");
}
