//! The `stslib` command.
//!
//! Hand-written argument parsing (no clap): the binary is meant to stay
//! small and quick to build. Exit codes: 0 ok, 1 error (one line on stderr),
//! 2 usage.

// Shared with the library by path: no public export for the binary alone.
mod args;
mod exec;
mod help;
mod kmsauth;
mod lifecycle;
mod logging;
mod output;
mod server;
#[path = "../../words.rs"]
mod words;

use std::io::Write;
use std::process::ExitCode;

use crate::args::{parse_duration, split_args, CommandLine, Global, Opts, Usage};
use crate::help::{
    CREDENTIALS_USAGE, CREDENTIAL_PROCESS_USAGE, EXEC_USAGE, EXPORT_USAGE, KMSAUTH_USAGE,
    PROFILES_USAGE, SESSION_USAGE, USAGE, WHOAMI_USAGE,
};
use crate::output::{
    credential_process_json, export_lines, fields_json, profiles_json, profiles_text, vault_text,
    ExportFormat, Format,
};

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
    if cl.version && !cl.help {
        let _ = writeln!(out, "stslib {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    logging::init(cl.global.verbose, env.get(logging::LOG_ENV).as_deref());
    let command = cl.command.as_deref().unwrap_or("help");
    let usage = match command {
        "profiles" => PROFILES_USAGE,
        "whoami" => WHOAMI_USAGE,
        "credentials" => CREDENTIALS_USAGE,
        "credential-process" => CREDENTIAL_PROCESS_USAGE,
        "export" => EXPORT_USAGE,
        "session" => SESSION_USAGE,
        "list" => lifecycle::LIST_USAGE,
        "clear" => lifecycle::CLEAR_USAGE,
        "exec" => EXEC_USAGE,
        "kmsauth" => KMSAUTH_USAGE,
        "help" => {
            let text = match cl.args.first().map(String::as_str) {
                Some("profiles") => PROFILES_USAGE,
                Some("whoami") => WHOAMI_USAGE,
                Some("credentials") => CREDENTIALS_USAGE,
                Some("credential-process") => CREDENTIAL_PROCESS_USAGE,
                Some("export") => EXPORT_USAGE,
                Some("session") => SESSION_USAGE,
                Some("list") => lifecycle::LIST_USAGE,
                Some("clear") => lifecycle::CLEAR_USAGE,
                Some("exec") => EXEC_USAGE,
                Some("kmsauth") => KMSAUTH_USAGE,
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
        "credential-process" => cmd_credential_process(&cl, env, out),
        "export" => cmd_export(&cl, env, out),
        "session" => cmd_session(&cl, env, out),
        "list" => lifecycle::cmd_list(&cl, env, out),
        "clear" => lifecycle::cmd_clear(&cl, env, out),
        "kmsauth" => kmsauth::cmd_kmsauth(&cl, env, out),
        "exec" => {
            let _ = out.flush();
            match exec::cmd_exec(&cl, env) {
                Ok(code) => return code,
                Err(e) => Err(e),
            }
        }
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
    let files = stslib::profile::ProfileFiles::load(env)?;
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
    let files = stslib::profile::ProfileFiles::load(env)?;
    let profile = opts
        .value("--profile")
        .map(str::to_owned)
        .unwrap_or_else(|| default_profile(env));
    let chain = files.chain(&profile)?;
    let client = client_for(&cl.global, env, files.profile(&profile)?)?;
    let code = opts.value("--mfa-code");
    if let (Some(hop), None) = (chain.mfa_hop(), code) {
        return Err(Usage(format!(
            "profile `{}` names mfa_serial {}: pass --mfa-code",
            hop.profile,
            hop.mfa_serial.as_deref().unwrap_or_default()
        ))
        .into());
    }
    let keys = if chain.roles.is_empty() {
        chain.source.keys.clone()
    } else {
        let hops = chain.assume_role_requests(code);
        client
            .assume_role_chain(&chain.source.keys, &hops)?
            .credentials
            .access_key()
    };
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
    let fallback = default_profile(env);
    let mut roles = opts.values("--profile");
    if roles.is_empty() {
        roles.push(&fallback);
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
    let files = stslib::profile::ProfileFiles::load(env)?;
    let user = common_source(&files, &roles)?;
    let session = session_for(cl, env, files, &user, lifetime, opts.value("--mfa-code"))?;
    let outcomes = session
        .generate_credentials(&roles)
        .map_err(|e| lifecycle::explain(&session, e, cl.global.no_cache))?;
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
fn common_source(
    files: &stslib::profile::ProfileFiles,
    roles: &[&str],
) -> Result<String, CmdError> {
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

/// The profile a command uses without `--profile`: `AWS_PROFILE`, else
/// `default`, as the AWS CLI.
fn default_profile(env: &stslib::Env) -> String {
    stslib::profile::FileLocations::from_env(env).profile
}

/// The region a role's credentials are used in: `--region`, else the first
/// `region` along the role's chain (the role profile, its source profiles,
/// the user), else the `default` profile's. `None` leaves the environment's
/// own `AWS_REGION` in charge.
fn role_region(
    cl: &CommandLine,
    files: &stslib::profile::ProfileFiles,
    role: &str,
) -> Option<String> {
    if let Some(r) = &cl.global.region {
        return Some(r.clone());
    }
    let mut names = vec![role.to_owned()];
    if let Ok(chain) = files.chain(role) {
        names.extend(chain.roles.iter().rev().map(|h| h.profile.clone()));
        names.push(chain.source.profile);
    }
    names.push("default".into());
    names
        .iter()
        .find_map(|n| files.profile(n).ok()?.get("region").map(str::to_owned))
        .filter(|r| !r.is_empty())
}

/// A poisoned lock still holds good data here: the value is replaced whole.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A one-shot session for `user`: no refresher thread; the disk cache on
/// unless `--no-cache`; the MFA code from `--mfa-code`, else asked on the
/// terminal when there is one and only when no cached token serves.
fn session_for(
    cl: &CommandLine,
    env: &stslib::Env,
    files: stslib::profile::ProfileFiles,
    user: &str,
    lifetime: std::time::Duration,
    mfa_code: Option<&str>,
) -> Result<stslib::Session, CmdError> {
    Ok(session_builder_for(cl, env, files, user, lifetime, mfa_code)?.build()?)
}

/// The builder behind [`session_for`]. A `--mfa-code` serves once (codes
/// are single-use); a later need asks on the terminal.
fn session_builder_for(
    cl: &CommandLine,
    env: &stslib::Env,
    files: stslib::profile::ProfileFiles,
    user: &str,
    lifetime: std::time::Duration,
    mfa_code: Option<&str>,
) -> Result<stslib::SessionBuilder, CmdError> {
    let mut b = stslib::Session::builder()
        .files(files)
        .env(env.clone())
        .profile(user)
        .refresh(false)
        .token_lifetime(lifetime)
        .require_mfa(!cl.global.no_mfa)
        .mfa_provider(lifecycle::code_provider(mfa_code, prompt_mfa));
    if !cl.global.no_cache {
        b = b.cache(stslib::cache::Cache::from_env(env)?);
    }
    if let Some(r) = &cl.global.region {
        b = b.region(r);
    }
    if let Some(e) = &cl.global.endpoint {
        b = b.endpoint(e).iam_endpoint(e);
    }
    Ok(b)
}

/// Asks for the MFA code on the controlling terminal (stdout may be a pipe
/// read by the AWS CLI, so the prompt goes to `/dev/tty`). The code is
/// echoed: it is single-use and expires within a minute.
fn prompt_mfa(serial: &str) -> stslib::Result<stslib::Secret> {
    use std::io::{BufRead, BufReader, IsTerminal};
    let no_terminal = || stslib::Error::InvalidInput {
        field: "TokenCode",
        message: format!(
            "an MFA code is needed for device `{serial}`: pass --mfa-code \
                 ({})",
            lifecycle::NO_TERMINAL
        ),
    };
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal());
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_terminal())?;
    let mut writer = &tty;
    write!(writer, "MFA code for {serial}: ").map_err(|_| no_terminal())?;
    writer.flush().map_err(|_| no_terminal())?;
    let mut line = String::new();
    BufReader::new(&tty)
        .read_line(&mut line)
        .map_err(|_| no_terminal())?;
    Ok(stslib::Secret::new(line.trim()))
}

/// The options of `credential-process` and `export`: one role (default
/// `AWS_PROFILE`, else `default`); returns it, its region and credentials.
fn one_role(
    cl: &CommandLine,
    env: &stslib::Env,
    opts: &Opts,
) -> Result<(String, Option<String>, stslib::Credentials), CmdError> {
    let role = opts
        .value("--profile")
        .map(str::to_owned)
        .unwrap_or_else(|| default_profile(env));
    let lifetime = match opts.value("--lifetime") {
        Some(text) => parse_duration(text).map_err(Usage)?,
        None => stslib::DEFAULT_TOKEN_LIFETIME,
    };
    let files = stslib::profile::ProfileFiles::load(env)?;
    let user = common_source(&files, &[&role])?;
    let region = role_region(cl, &files, &role);
    let session = session_for(cl, env, files, &user, lifetime, opts.value("--mfa-code"))?;
    let mut outcomes = session
        .generate_credentials(&[&role])
        .map_err(|e| lifecycle::explain(&session, e, cl.global.no_cache))?;
    let credentials = outcomes
        .remove(&role)
        .unwrap_or_else(|| {
            Err(stslib::Error::NoCredentials {
                profile: role.clone(),
                message: "no outcome".into(),
            })
        })
        .map_err(|e| CmdError::Failed(lifecycle::explain(&session, e, cl.global.no_cache)))?;
    Ok((role, region, credentials))
}

const ONE_ROLE_OPTIONS: [&str; 3] = ["--profile", "--mfa-code", "--lifetime"];

/// `credential_process` output for the AWS CLI and SDKs.
fn cmd_credential_process(
    cl: &CommandLine,
    env: &stslib::Env,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    let opts = Opts::parse(&cl.args, &ONE_ROLE_OPTIONS, &[])?;
    let (_, _, c) = one_role(cl, env, &opts)?;
    out.write_all(credential_process_json(&c).as_bytes())
        .map_err(io_error)
}

/// `export AWS_...=...` lines for `eval`, or the same for fish,
/// PowerShell or a dotenv file.
fn cmd_export(cl: &CommandLine, env: &stslib::Env, out: &mut dyn Write) -> Result<(), CmdError> {
    let mut valued = ONE_ROLE_OPTIONS.to_vec();
    valued.push("--format");
    let opts = Opts::parse(&cl.args, &valued, &[])?;
    let format = match opts.value("--format").unwrap_or("sh") {
        "sh" => ExportFormat::Sh,
        "fish" => ExportFormat::Fish,
        "powershell" => ExportFormat::PowerShell,
        "env" => ExportFormat::Dotenv,
        other => {
            return Err(Usage(format!(
                "unknown --format `{other}` (sh, fish, powershell or env)"
            ))
            .into())
        }
    };
    let (_, region, c) = one_role(cl, env, &opts)?;
    out.write_all(export_lines(&c, region.as_deref(), format).as_bytes())
        .map_err(io_error)
}

/// Gets (or reuses) and caches the session token ahead of time.
fn cmd_session(cl: &CommandLine, env: &stslib::Env, out: &mut dyn Write) -> Result<(), CmdError> {
    let opts = Opts::parse(
        &cl.args,
        &["--profile", "--mfa-code", "--lifetime"],
        &["--renew"],
    )?;
    let lifetime = match opts.value("--lifetime") {
        Some(text) => parse_duration(text).map_err(Usage)?,
        None => stslib::DEFAULT_TOKEN_LIFETIME,
    };
    let files = stslib::profile::ProfileFiles::load(env)?;
    let user = opts
        .value("--profile")
        .map(str::to_owned)
        .unwrap_or_else(|| default_profile(env));
    let session = session_for(cl, env, files, &user, lifetime, None)?;
    // An explicit code always means a new session, as --renew does.
    let code = lifecycle::explicit_code(opts.value("--mfa-code"))?;
    let token = if code.is_some() || opts.flag("--renew") {
        session.renew_session_token(lifetime, code.as_ref().map(stslib::Secret::expose))?
    } else {
        session.generate_session_token(lifetime, None)?
    };
    let how = match session.token_origin() {
        Some(stslib::TokenOrigin::Cache) => "reused from the cache",
        _ => "new",
    };
    let text = format!(
        "session token for `{user}` ({how}) valid until {} ({} left){}\n",
        token.expiration_iso(),
        token.humanized_remaining(),
        if cl.global.no_cache {
            " (not cached: --no-cache)"
        } else {
            ""
        }
    );
    out.write_all(text.as_bytes()).map_err(io_error)
}

/// An STS client for `profile`, with the global `--region` and
/// `--endpoint` winning over the profile and the environment.
fn client_for(
    global: &Global,
    env: &stslib::Env,
    profile: &stslib::profile::Profile,
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
