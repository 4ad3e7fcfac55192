//! The `stslib` command.
//!
//! Hand-written argument parsing (no clap): the binary is meant to stay
//! small and quick to build. Exit codes: 0 ok, 1 error (one line on stderr),
//! 2 usage.

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "\
stslib: AWS STS temporary credentials from the AWS CLI's profile files

Usage: stslib [--region R] [--endpoint URL] <command> [options]

Commands:
  profiles [--json]        the normalised profiles of the current files
  whoami [--profile P]     GetCallerIdentity with the profile's credentials
  credentials --profile ROLE [--profile ROLE ...] [--mfa-code CODE]
              [--lifetime DURATION] [--format vault|boto|json] [--show-secrets]
                           one MFA session token, then every role assumed from it
  help [command]           this text, or a command's

Global options:
  --region R               region for STS (default: profile's region, AWS_REGION, us-east-1)
  --endpoint URL           STS endpoint, also used for the IAM MFA-device lookup
                           (default: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL,
                           profile endpoint_url, then the regional AWS endpoint)
  -h, --help               help

Environment: AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL.
Exit status: 0 ok, 1 error, 2 usage.
";

const PROFILES_USAGE: &str = "\
Usage: stslib profiles [--json]

Prints the profiles of the AWS config and credentials files, normalised as the
AWS SDKs read them. Secret values are always printed as \"**redacted**\".

  --json    one JSON object: {\"profiles\": {NAME: {KEY: VALUE or {SUBKEY: VALUE}}},
            \"sso_sessions\": {...}}
";

const WHOAMI_USAGE: &str = "\
Usage: stslib whoami [--profile P] [--mfa-code CODE]

Calls GetCallerIdentity with the profile's credentials (assuming its roles
first when it is a role profile) and prints account, ARN and user id.

  --profile P      the profile (default: AWS_PROFILE, else `default`)
  --mfa-code CODE  the 6-digit MFA code, when a role in the chain names mfa_serial
";

const CREDENTIALS_USAGE: &str = "\
Usage: stslib credentials --profile ROLE [--profile ROLE ...] [--mfa-code CODE]
                          [--lifetime DURATION] [--format vault|boto|json] [--show-secrets]

The stslib flow: the role profiles' common source user (through
source_profile) takes one session token with GetSessionToken (with MFA when
the user has a device), then every role is assumed from it with AssumeRole.
Secret values are printed as \"**redacted**\" unless --show-secrets is given.
A role that fails is reported on stderr and the others are still printed;
the exit status is then 1.

  --profile ROLE      a role profile (repeatable)
  --mfa-code CODE     the 6-digit MFA code (needed when the user has an MFA device)
  --lifetime D        session token lifetime: 900s to 36h, e.g. 45m, 12h, 1h30m
                      (default 12h)
  --format F          vault (default: typed fields, one block per role),
                      boto (the native STS field map keyed sts-ROLE, as JSON),
                      json (one object keyed by role: AccessKeyId, SecretAccessKey,
                      SessionToken, Expiration)
  --show-secrets      print SecretAccessKey and SessionToken in clear text
";

/// A usage error: exit 2 with the message and a hint.
#[derive(Debug)]
struct Usage(String);

/// Global options, valid before or after the command name.
#[derive(Debug, Default)]
struct Global {
    region: Option<String>,
    endpoint: Option<String>,
}

/// The command line, split into the command and its own arguments.
#[derive(Debug)]
struct CommandLine {
    global: Global,
    command: Option<String>,
    args: Vec<String>,
    help: bool,
}

fn split_args(argv: impl IntoIterator<Item = String>) -> Result<CommandLine, Usage> {
    let mut global = Global::default();
    let mut command = None;
    let mut args = Vec::new();
    let mut help = false;
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--region" | "--endpoint" => {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| Usage(format!("{flag} needs a value")))?,
                };
                if flag == "--region" {
                    global.region = Some(v);
                } else {
                    global.endpoint = Some(v);
                }
            }
            "-h" | "--help" => help = true,
            _ if command.is_none() && !a.starts_with('-') => command = Some(a),
            _ => args.push(a),
        }
    }
    Ok(CommandLine {
        global,
        command,
        args,
        help,
    })
}

/// A command's own options: `--name value`, `--name=value` and bare flags.
#[derive(Debug, Default)]
struct Opts {
    pairs: Vec<(String, Option<String>)>,
}

impl Opts {
    /// Parses `args` given the options that take a value and the bare flags.
    fn parse(args: &[String], valued: &[&str], flags: &[&str]) -> Result<Opts, Usage> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (a.as_str(), None),
            };
            if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| Usage(format!("{name} needs a value")))?,
                };
                pairs.push((name.to_owned(), Some(v)));
            } else if flags.contains(&name) && inline.is_none() {
                pairs.push((name.to_owned(), None));
            } else {
                return Err(Usage(format!("unexpected argument `{a}`")));
            }
        }
        Ok(Opts { pairs })
    }

    fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The last value given for `name`.
    fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for `name`, in order.
    #[allow(dead_code)]
    fn values(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
}

/// JSON string literal for `s`.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() -> ExitCode {
    let env = stslib::Env::process();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = run(std::env::args().skip(1), &env, &mut out);
    let _ = out.flush();
    ExitCode::from(code)
}

/// Runs the command line; returns the exit code. Errors go to stderr.
fn run(argv: impl IntoIterator<Item = String>, env: &stslib::Env, out: &mut dyn Write) -> u8 {
    let cl = match split_args(argv) {
        Ok(cl) => cl,
        Err(Usage(m)) => return usage_error(&m),
    };
    let command = cl.command.as_deref().unwrap_or("help");
    let usage = match command {
        "profiles" => PROFILES_USAGE,
        "whoami" => WHOAMI_USAGE,
        "credentials" => CREDENTIALS_USAGE,
        "help" => {
            let text = match cl.args.first().map(String::as_str) {
                Some("profiles") => PROFILES_USAGE,
                Some("whoami") => WHOAMI_USAGE,
                Some("credentials") => CREDENTIALS_USAGE,
                _ => USAGE,
            };
            let _ = out.write_all(text.as_bytes());
            return if cl.command.is_none() && !cl.help {
                2
            } else {
                0
            };
        }
        other => return usage_error(&format!("unknown command `{other}`")),
    };
    if cl.help {
        let _ = out.write_all(usage.as_bytes());
        return 0;
    }
    let result = match command {
        "profiles" => cmd_profiles(&cl, env, out),
        "whoami" => cmd_whoami(&cl, env, out),
        "credentials" => cmd_credentials(&cl, env, out),
        _ => unreachable!("commands are matched above"),
    };
    match result {
        Ok(()) => 0,
        Err(CmdError::Usage(Usage(m))) => usage_error(&m),
        Err(CmdError::Failed(e)) => {
            eprintln!("stslib: error: {e}");
            1
        }
        Err(CmdError::Reported) => 1,
    }
}

fn usage_error(message: &str) -> u8 {
    eprintln!("stslib: {message}\nTry `stslib --help`.");
    2
}

enum CmdError {
    Usage(Usage),
    Failed(stslib::Error),
    /// Already reported on stderr.
    Reported,
}

impl From<Usage> for CmdError {
    fn from(u: Usage) -> Self {
        CmdError::Usage(u)
    }
}

impl From<stslib::Error> for CmdError {
    fn from(e: stslib::Error) -> Self {
        CmdError::Failed(e)
    }
}

fn cmd_profiles(cl: &CommandLine, env: &stslib::Env, out: &mut dyn Write) -> Result<(), CmdError> {
    let opts = Opts::parse(&cl.args, &[], &["--json"])?;
    let files = stslib::ProfileFiles::load(env)?;
    let text = if opts.flag("--json") {
        profiles_json(&files)
    } else {
        profiles_text(&files)
    };
    out.write_all(text.as_bytes()).map_err(io_error)?;
    Ok(())
}

/// The value printed for a property: secrets are always redacted.
fn shown_value(p: &stslib::Property) -> &str {
    if p.is_secret() {
        stslib::REDACTED
    } else {
        p.value()
    }
}

/// `{"profiles": {...}, "sso_sessions": {...}}`, the conformance suite's shape.
fn profiles_json(files: &stslib::ProfileFiles) -> String {
    fn section<'a>(
        out: &mut String,
        names: impl Iterator<Item = &'a str>,
        get: impl Fn(&str) -> Option<&'a stslib::Profile>,
    ) {
        out.push('{');
        for (i, name) in names.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_str(name));
            out.push_str(":{");
            if let Some(profile) = get(name) {
                for (j, p) in profile.properties().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_str(p.key()));
                    out.push(':');
                    match p.sub_properties() {
                        Some(subs) => {
                            out.push('{');
                            for (k, (sk, sv)) in subs.iter().enumerate() {
                                if k > 0 {
                                    out.push(',');
                                }
                                out.push_str(&json_str(sk));
                                out.push(':');
                                out.push_str(&json_str(sv));
                            }
                            out.push('}');
                        }
                        None => out.push_str(&json_str(shown_value(p))),
                    }
                }
            }
            out.push('}');
        }
        out.push('}');
    }
    let mut out = String::from("{\"profiles\":");
    section(&mut out, files.profile_names(), |n| files.profile(n).ok());
    out.push_str(",\"sso_sessions\":");
    section(&mut out, files.sso_sessions(), |n| files.sso_session(n));
    out.push_str("}\n");
    out
}

/// One block per profile: its name, then `key = value` lines.
fn profiles_text(files: &stslib::ProfileFiles) -> String {
    let mut out = String::new();
    for name in files.profile_names() {
        out.push_str(&format!("[{name}]\n"));
        if let Ok(profile) = files.profile(name) {
            for p in profile.properties() {
                match p.sub_properties() {
                    Some(subs) => {
                        out.push_str(&format!("{} =\n", p.key()));
                        for (k, v) in subs {
                            out.push_str(&format!("  {k} = {v}\n"));
                        }
                    }
                    None => out.push_str(&format!("{} = {}\n", p.key(), shown_value(p))),
                }
            }
        }
        out.push('\n');
    }
    out
}

fn io_error(e: std::io::Error) -> CmdError {
    CmdError::Failed(stslib::Error::Io {
        path: "<stdout>".into(),
        source: e,
    })
}

fn cmd_whoami(cl: &CommandLine, env: &stslib::Env, out: &mut dyn Write) -> Result<(), CmdError> {
    let opts = Opts::parse(&cl.args, &["--profile", "--mfa-code"], &[])?;
    let files = stslib::ProfileFiles::load(env)?;
    let profile = opts
        .value("--profile")
        .map(str::to_owned)
        .unwrap_or_else(|| stslib::FileLocations::from_env(env).profile);
    let chain = files.chain(&profile)?;
    let client = client_for(&cl.global, env, files.profile(&profile)?)?;
    let mut keys = chain.source.keys.clone();
    for hop in &chain.roles {
        let name = hop
            .role_session_name
            .clone()
            .unwrap_or_else(|| format!("stslib-{}", std::process::id()));
        let mut req = stslib::AssumeRoleRequest::new(&hop.role_arn, name);
        if let Some(d) = hop.duration_seconds {
            req = req.duration_seconds(d);
        }
        if let Some(id) = &hop.external_id {
            req = req.external_id(id);
        }
        if let Some(serial) = &hop.mfa_serial {
            let code = opts.value("--mfa-code").ok_or_else(|| {
                Usage(format!(
                    "profile `{}` names mfa_serial {serial}: pass --mfa-code",
                    hop.profile
                ))
            })?;
            req = req.serial_number(serial).token_code(code);
        }
        keys = client.assume_role(&keys, &req)?.credentials.access_key();
    }
    let who = client.get_caller_identity(&keys)?;
    let text = format!(
        "Account: {}\nArn:     {}\nUserId:  {}\n",
        who.account, who.arn, who.user_id
    );
    out.write_all(text.as_bytes()).map_err(io_error)?;
    Ok(())
}

/// The `--format` of `credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Vault,
    Boto,
    Json,
}

fn cmd_credentials(
    cl: &CommandLine,
    env: &stslib::Env,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    let opts = Opts::parse(
        &cl.args,
        &["--profile", "--mfa-code", "--lifetime", "--format"],
        &["--show-secrets"],
    )?;
    let roles = opts.values("--profile");
    if roles.is_empty() {
        return Err(Usage("credentials needs at least one --profile ROLE".into()).into());
    }
    let format = match opts.value("--format").unwrap_or("vault") {
        "vault" => Format::Vault,
        "boto" => Format::Boto,
        "json" => Format::Json,
        other => {
            return Err(Usage(format!("unknown --format `{other}` (vault, boto or json)")).into())
        }
    };
    let lifetime = match opts.value("--lifetime") {
        Some(text) => parse_duration(text).map_err(Usage)?,
        None => stslib::DEFAULT_TOKEN_LIFETIME,
    };
    let show = opts.flag("--show-secrets");
    let files = stslib::ProfileFiles::load(env)?;
    let user = common_source(&files, &roles)?;
    let mut b = stslib::Session::builder()
        .files(files)
        .env(env.clone())
        .profile(&user);
    if let Some(r) = &cl.global.region {
        b = b.region(r);
    }
    if let Some(e) = &cl.global.endpoint {
        b = b.endpoint(e).iam_endpoint(e);
    }
    let session = b.build()?;
    session.generate_session_token(lifetime, opts.value("--mfa-code"))?;
    let outcomes = session.generate_credentials(&roles)?;
    // A one-shot command keeps nothing fresh.
    session.halt()?;
    let ok: Vec<(&str, &stslib::Credentials)> = outcomes
        .iter()
        .filter_map(|(p, r)| r.as_ref().ok().map(|c| (p.as_str(), c)))
        .collect();
    let text = match format {
        Format::Vault => vault_text(&ok, show),
        Format::Boto => fields_json(&ok, show, "sts-", true),
        Format::Json => fields_json(&ok, show, "", false),
    };
    out.write_all(text.as_bytes()).map_err(io_error)?;
    let mut failed = false;
    for (profile, r) in &outcomes {
        if let Err(e) = r {
            eprintln!("stslib: error: profile `{profile}`: {e}");
            failed = true;
        }
    }
    if failed {
        Err(CmdError::Reported)
    } else {
        Ok(())
    }
}

/// The one IAM-user profile every role in `roles` is sourced from.
fn common_source(files: &stslib::ProfileFiles, roles: &[&str]) -> Result<String, CmdError> {
    let mut user: Option<(String, &str)> = None;
    for role in roles {
        let chain = files.chain(role)?;
        match &user {
            Some((u, first)) if *u != chain.source.profile => {
                return Err(Usage(format!(
                    "profiles `{first}` and `{role}` come from different users \
                     (`{u}` and `{}`); run one command per user",
                    chain.source.profile
                ))
                .into())
            }
            Some(_) => {}
            None => user = Some((chain.source.profile.clone(), role)),
        }
    }
    Ok(user.map(|(u, _)| u).unwrap_or_default())
}

fn secret_text(s: &stslib::Secret, show: bool) -> &str {
    if show {
        s.expose()
    } else {
        stslib::REDACTED
    }
}

/// The typed ("vault") form: one block per role.
fn vault_text(ok: &[(&str, &stslib::Credentials)], show: bool) -> String {
    let mut out = String::new();
    for (profile, c) in ok {
        out.push_str(&format!(
            "[{profile}]\n\
             access_key_id     = {}\n\
             secret_access_key = {}\n\
             session_token     = {}\n\
             start             = {}\n\
             expiration        = {}\n\
             duration          = {}\n\
             remaining         = {}\n\n",
            c.access_key_id,
            secret_text(&c.secret_access_key, show),
            secret_text(&c.session_token, show),
            c.start_time_iso(),
            c.expiration_iso(),
            stslib::humanize(c.duration()),
            c.humanized_remaining(),
        ));
    }
    out
}

/// `{"PREFIXprofile": {"AccessKeyId": ..., ...}}`; `with_start` adds the
/// STS map's `StartTime`.
fn fields_json(
    ok: &[(&str, &stslib::Credentials)],
    show: bool,
    prefix: &str,
    with_start: bool,
) -> String {
    let mut out = String::from("{");
    for (i, (profile, c)) in ok.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut fields = vec![
            ("AccessKeyId", c.access_key_id.clone()),
            (
                "SecretAccessKey",
                secret_text(&c.secret_access_key, show).to_owned(),
            ),
            (
                "SessionToken",
                secret_text(&c.session_token, show).to_owned(),
            ),
            ("Expiration", c.expiration_iso()),
        ];
        if with_start {
            fields.push(("StartTime", c.start_time_iso()));
        }
        out.push_str(&json_str(&format!("{prefix}{profile}")));
        out.push_str(":{");
        for (j, (k, v)) in fields.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&json_str(k));
            out.push(':');
            out.push_str(&json_str(v));
        }
        out.push('}');
    }
    out.push_str("}\n");
    out
}

/// `900s`, `45m`, `12h`, `1h30m`, `2d`, or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration `{text}` (examples: 900s, 45m, 12h, 1h30m)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// An STS client for `profile`, with the global `--region` and
/// `--endpoint` winning over the profile and the environment.
fn client_for(
    global: &Global,
    env: &stslib::Env,
    profile: &stslib::Profile,
) -> Result<stslib::StsClient, CmdError> {
    let mut b = stslib::StsClient::builder()
        .env(env.clone())
        .profile(profile);
    if let Some(r) = &global.region {
        b = b.region(r);
    }
    if let Some(e) = &global.endpoint {
        b = b.endpoint(e).iam_endpoint(e);
    }
    Ok(b.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn global_options_anywhere() {
        let cl = split_args(argv(
            "--region eu-west-1 whoami --profile x --endpoint=http://127.0.0.1:1",
        ))
        .unwrap();
        assert_eq!(cl.command.as_deref(), Some("whoami"));
        assert_eq!(cl.global.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cl.global.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(cl.args, argv("--profile x"));
    }

    #[test]
    fn opts_values_flags_and_errors() {
        let o = Opts::parse(
            &argv("--profile a --profile=b --json"),
            &["--profile"],
            &["--json"],
        )
        .unwrap();
        assert_eq!(o.values("--profile"), vec!["a", "b"]);
        assert_eq!(o.value("--profile"), Some("b"));
        assert!(o.flag("--json"));
        assert!(Opts::parse(&argv("--profile"), &["--profile"], &[]).is_err());
        assert!(Opts::parse(&argv("--bogus"), &["--profile"], &[]).is_err());
    }

    #[test]
    fn durations() {
        let s = |t| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(s("900s"), Ok(900));
        assert_eq!(s("45m"), Ok(2700));
        assert_eq!(s("12h"), Ok(43_200));
        assert_eq!(s("1h30m"), Ok(5400));
        assert_eq!(s("3600"), Ok(3600));
        for bad in ["", "h", "1x", "12h5", "-1h", "99999999999999999999h"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
