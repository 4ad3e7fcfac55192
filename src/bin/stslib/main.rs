//! The `stslib` command.
//!
//! Hand-written argument parsing (no clap): the binary is meant to stay
//! small and quick to build. Exit codes: 0 ok, 1 error (one line on stderr),
//! 2 usage.

mod args;
mod help;
mod output;

use std::io::Write;
use std::process::ExitCode;

use crate::args::{parse_duration, split_args, CommandLine, Global, Opts, Usage};
use crate::help::{CREDENTIALS_USAGE, PROFILES_USAGE, USAGE, WHOAMI_USAGE};
use crate::output::{fields_json, profiles_json, profiles_text, vault_text, Format};

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
