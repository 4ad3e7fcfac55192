//! Profile files against the AWS SDK conformance data in
//! `tests/conformance/aws-sdk/` (Apache-2.0; see the NOTICE there).
//!
//! Every case of the three files is driven. Each test collects all failing
//! cases, prints them by name, and fails if there is any.

use std::path::Path;

use serde_json::{json, Map, Value};
use stslib::profile::{FileLocations, Platform, ProfileFiles};
use stslib::{Env, Error};

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/aws-sdk")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(file: &str, ran: usize, expected_cases: usize, failures: Vec<String>) {
    assert_eq!(ran, expected_cases, "{file}: wrong number of cases");
    if !failures.is_empty() {
        panic!(
            "{file}: {} of {ran} cases failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    println!("{file}: all {ran} cases pass");
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------
// file-location-tests.json

/// Deliberate divergences: none. The Windows cases run on every platform
/// through `Platform::Windows`.
#[test]
fn file_locations() {
    let data = load("file-location-tests.json");
    let cases = data["tests"].as_array().expect("tests array");
    let mut failures = Vec::new();
    for case in cases {
        let name = str_field(case, "name").unwrap_or("?");
        let env = Env::from_pairs(
            case["environment"]
                .as_object()
                .expect("environment")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
        );
        let platform = match str_field(case, "platform") {
            Some("windows") => Platform::Windows,
            Some("linux") => Platform::Unix,
            other => {
                failures.push(format!("{name}: unknown platform {other:?}"));
                continue;
            }
        };
        let loc = FileLocations::for_platform(&env, platform);
        let got = json!({
            "configLocation": loc.config.as_ref().map(|p| p.to_string_lossy().into_owned()),
            "credentialsLocation": loc.credentials.as_ref().map(|p| p.to_string_lossy().into_owned()),
            // Cases without "profile" expect the default.
            "profile": loc.profile,
        });
        let want = json!({
            "configLocation": case["configLocation"],
            "credentialsLocation": case["credentialsLocation"],
            "profile": str_field(case, "profile").unwrap_or("default"),
        });
        if got != want {
            failures.push(format!("{name}\n  want: {want}\n  got:  {got}"));
        }
    }
    report("file-location-tests.json", cases.len(), 9, failures);
}

// ---------------------------------------------------------------------------
// profile-parser-tests.json

/// Deliberate divergences: none. Error cases must fail with
/// `Error::Parse` whose message contains the expected text (we use the AWS
/// wording).
#[test]
fn profile_parser() {
    let data = load("profile-parser-tests.json");
    let cases = data["tests"].as_array().expect("tests array");
    let mut failures = Vec::new();
    for case in cases {
        let name = str_field(case, "name").unwrap_or("?");
        let input = &case["input"];
        let config = str_field(input, "configFile").unwrap_or("");
        let credentials = str_field(input, "credentialsFile").unwrap_or("");
        let output = &case["output"];
        let got = ProfileFiles::from_strings(config, credentials);
        match (str_field(output, "errorContaining"), got) {
            (Some(want), Err(Error::Parse { line, message, .. })) => {
                if !message.contains(want) || line == 0 {
                    failures.push(format!(
                        "{name}\n  want error containing: {want}\n  got: line {line}: {message}"
                    ));
                }
            }
            (Some(want), other) => failures.push(format!(
                "{name}\n  want parse error containing: {want}\n  got: {other:?}"
            )),
            (None, Err(e)) => failures.push(format!("{name}\n  unexpected error: {e}")),
            (None, Ok(files)) => {
                let want = &output["config"];
                let mut got = json!({ "profiles": profiles_json(&files, false) });
                if want.get("sso_sessions").is_some() {
                    got["sso_sessions"] = profiles_json(&files, true);
                }
                if &got != want {
                    failures.push(format!("{name}\n  want: {want}\n  got:  {got}"));
                }
            }
        }
    }
    report("profile-parser-tests.json", cases.len(), 65, failures);
}

/// `{name: {key: value}}` for all profiles (or sso-sessions).
fn profiles_json(files: &ProfileFiles, sso: bool) -> Value {
    let names: Vec<&str> = if sso {
        files.sso_sessions().collect()
    } else {
        files.profile_names().collect()
    };
    let mut out = Map::new();
    for name in names {
        let profile = if sso {
            files.sso_session(name).expect("listed sso-session exists")
        } else {
            files.profile(name).expect("listed profile exists")
        };
        let props: Map<String, Value> = profile
            .properties()
            .map(|p| (p.key().to_owned(), Value::from(p.value())))
            .collect();
        out.insert(name.to_owned(), Value::Object(props));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// assume-role-tests.json

/// What we expect instead of the SDK's output, by case (`docs`).
///
/// Error cases: the SDK tests give a message substring; we assert the error
/// variant, profile and key instead (exact), and also that our message
/// contains the SDK's substring except for the cases marked `reworded`.
///
/// Unsupported cases: web identity, SSO and `credential_source` are out of
/// scope for stslib. Where the SDK produces a chain (or an SSO/web-identity
/// configuration error) we expect `Error::Unsupported` for the profile that
/// uses the feature. These are the only deliberate divergences.
fn expectation(docs: &str) -> Option<Expect> {
    use Expect::*;
    Some(match docs {
        // Errors, same meaning.
        "role_arn without source source_profile" => Invalid("A", Some("source_profile")),
        "source profile and credential source both present" => {
            Invalid("A", Some("credential_source"))
        }
        "partial credentials error (missing secret)" => Invalid("B", Some("aws_secret_access_key")),
        "partial credentials error (missing access key)" => Invalid("B", Some("aws_access_key_id")),
        "missing credentials error (empty source profile)" => Invalid("B", None),
        "profile only contains configuration" => Invalid("A", None),
        "missing source profile" => Invalid("A", Some("source_profile")),
        // Reworded: "profile `A` not found; no profiles are defined".
        "missing root profile (should never happen in practice)" => NotFound("A"),
        // Reworded: "source_profile loop: A -> B -> A".
        "assume role profile infinite loop" | "infinite loop with static credentials" => {
            Loop(&["A", "B", "A"])
        }
        // Divergences: out of scope, reported as unsupported.
        "Load credentials from a credential_source" => Unsupported("A", "credential_source"),
        // Two cases share the docs "web identity role" (one with role_arn,
        // one without); both are unsupported.
        "web identity role" | "web identity role with session name" => {
            Unsupported("A", "web identity")
        }
        "web identity token as source profile" => Unsupported("B", "web identity"),
        "SSO credentials profile selected"
        | "invalid SSO credentials configuration: missing account ID"
        | "invalid SSO credentials configuration: missing role name"
        | "invalid SSO token configuration: sso_region must be in sso-session"
        | "SSO token profile selected"
        | "invalid SSO token configuration: sso-session not found" => Unsupported("A", "SSO"),
        _ => return None,
    })
}

/// Error cases whose SDK message substring we do not reproduce.
const REWORDED: &[&str] = &[
    "missing root profile (should never happen in practice)",
    "assume role profile infinite loop",
    "infinite loop with static credentials",
];

#[derive(Debug)]
enum Expect {
    Invalid(&'static str, Option<&'static str>),
    NotFound(&'static str),
    Loop(&'static [&'static str]),
    Unsupported(&'static str, &'static str),
}

impl Expect {
    fn matches(&self, e: &Error) -> bool {
        match (self, e) {
            (Expect::Invalid(p, k), Error::InvalidProfile { profile, key, .. }) => {
                profile == p && key.as_deref() == *k
            }
            (Expect::NotFound(p), Error::ProfileNotFound { profile, .. }) => profile == p,
            (Expect::Loop(want), Error::ProfileLoop { chain }) => chain == want,
            (Expect::Unsupported(p, f), Error::Unsupported { profile, feature }) => {
                profile == p && feature.contains(f)
            }
            _ => false,
        }
    }
}

/// The case's profiles as a config file.
fn config_text(input: &Value) -> String {
    let mut text = String::new();
    for (section, prefix) in [("profiles", "profile"), ("sso_sessions", "sso-session")] {
        let Some(map) = input.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, props) in map {
            text.push_str(&format!("[{prefix} {name}]\n"));
            for (k, v) in props.as_object().expect("properties object") {
                text.push_str(&format!("{k} = {}\n", v.as_str().expect("string value")));
            }
        }
    }
    text
}

/// A chain in the conformance output shape.
fn chain_json(chain: &stslib::profile::Chain) -> Value {
    let mut key = Map::new();
    key.insert(
        "access_key_id".into(),
        chain.source.keys.access_key_id.clone().into(),
    );
    key.insert(
        "secret_access_key".into(),
        chain.source.keys.secret_access_key.expose().into(),
    );
    if let Some(t) = &chain.source.keys.session_token {
        key.insert("session_token".into(), t.expose().into());
    }
    if let Some(a) = &chain.source.account_id {
        key.insert("account_id".into(), a.clone().into());
    }
    let mut out = vec![json!({ "AccessKey": key })];
    for hop in &chain.roles {
        let mut role = Map::new();
        role.insert("role_arn".into(), hop.role_arn.clone().into());
        let optional = [
            ("external_id", &hop.external_id),
            ("role_session_name", &hop.role_session_name),
            ("mfa_serial", &hop.mfa_serial),
            ("region", &hop.region),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                role.insert(k.into(), v.clone().into());
            }
        }
        if let Some(d) = hop.duration_seconds {
            role.insert("duration_seconds".into(), d.into());
        }
        out.push(json!({ "AssumeRole": role }));
    }
    Value::Array(out)
}

#[test]
fn assume_role() {
    let data = load("assume-role-tests.json");
    let cases = data.as_array().expect("array of cases");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let docs = str_field(case, "docs").unwrap_or("?");
        let name = format!("#{i} {docs}");
        let input = &case["input"];
        let selected = str_field(input, "selected_profile").expect("selected_profile");
        let files = match ProfileFiles::from_strings(&config_text(input), "") {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{name}\n  input did not parse: {e}"));
                continue;
            }
        };
        let got = files.chain(selected);
        let output = &case["output"];
        match (expectation(docs), got) {
            (Some(expect), Err(e)) => {
                let mut bad = !expect.matches(&e);
                // The SDK's wording applies to the errors we share with it,
                // not to the features we report as unsupported.
                let shared = !matches!(expect, Expect::Unsupported(..));
                if let (Some(want), true) = (str_field(output, "Error"), shared) {
                    if !REWORDED.contains(&docs) {
                        bad |= !e.to_string().contains(want);
                    }
                }
                if bad {
                    failures.push(format!(
                        "{name}\n  want: {expect:?} (SDK: {output})\n  got:  {e:?}\n  text: {e}"
                    ));
                }
            }
            (Some(expect), Ok(chain)) => failures.push(format!(
                "{name}\n  want: {expect:?}\n  got chain: {}",
                chain_json(&chain)
            )),
            (None, Ok(chain)) => {
                let want = &output["ProfileChain"];
                let got = chain_json(&chain);
                if &got != want {
                    failures.push(format!("{name}\n  want: {want}\n  got:  {got}"));
                }
            }
            (None, Err(e)) => failures.push(format!(
                "{name}\n  want: {output}\n  got error: {e}\n  (no expectation recorded for an error)"
            )),
        }
    }
    report("assume-role-tests.json", cases.len(), 28, failures);
}

/// The list of reworded cases stays in step with the data.
#[test]
fn reworded_cases_exist() {
    let data = load("assume-role-tests.json");
    let docs: Vec<&str> = data
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| str_field(c, "docs"))
        .collect();
    for r in REWORDED {
        assert!(
            docs.contains(r),
            "REWORDED names a case that no longer exists: {r}"
        );
        assert!(expectation(r).is_some(), "{r}");
    }
}
