//! Session lifecycle commands: `list` (what the cache holds for each
//! profile) and `clear` (forget cached sessions and roles).

use std::io::Write;

use time::OffsetDateTime;

use crate::args::{CommandLine, Opts, Usage};
use crate::{io_error, CmdError};

/// `stslib list`: every profile of the files with its cached session token
/// (user profiles) or role credentials (role profiles) and the time left;
/// then cache files no profile accounts for, and files that cannot be used.
pub(crate) fn cmd_list(
    cl: &CommandLine,
    env: &stslib::Env,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    Opts::parse(&cl.args, &[], &[])?;
    if cl.global.no_cache {
        return Err(Usage("list reads the cache: drop --no-cache".into()).into());
    }
    let files = stslib::profile::ProfileFiles::load(env)?;
    let cache = stslib::cache::Cache::from_env(env)?;
    let entries = cache.entries()?;
    let now = OffsetDateTime::now_utc();
    let mut used = vec![false; entries.len()];
    let mut text = String::new();
    for name in files.profile_names() {
        let Ok(chain) = files.chain(name) else {
            continue;
        };
        let (what, kind) = if chain.roles.is_empty() {
            (format!("{name} (user)"), "token")
        } else {
            (
                format!("{name} (role, from {})", chain.source.profile),
                "role",
            )
        };
        // The entry that lasts longest is the one a command would use.
        let mut best: Option<usize> = None;
        for (i, e) in entries.iter().enumerate() {
            let mine = e.kind == kind
                && e.problem.is_none()
                && match kind {
                    "token" => e.source_profile == name,
                    _ => {
                        e.role_profile.as_deref() == Some(name)
                            && e.source_profile == chain.source.profile
                    }
                };
            if mine {
                used[i] = true;
                if best.is_none_or(|b| entries[b].expiration < e.expiration) {
                    best = Some(i);
                }
            }
        }
        let state = match best.map(|i| &entries[i]) {
            None if kind == "token" => "no cached session".to_owned(),
            None => "no cached credentials".to_owned(),
            Some(e) => describe(e, now),
        };
        text.push_str(&format!("{what}: {state}\n"));
    }
    let orphans = entries
        .iter()
        .zip(&used)
        .filter(|(e, u)| !**u && e.problem.is_none())
        .count();
    if orphans > 0 {
        text.push_str(&format!(
            "{orphans} cached entries belong to no current profile \
             (`stslib clear` removes them)\n"
        ));
    }
    for e in entries.iter().filter(|e| e.problem.is_some()) {
        text.push_str(&format!(
            "unusable: {}: {}\n",
            e.path.display(),
            e.problem.as_deref().unwrap_or_default()
        ));
    }
    if text.is_empty() {
        text.push_str("no profiles\n");
    }
    out.write_all(text.as_bytes()).map_err(io_error)
}

/// "session valid until X (N left)" or "... expired at X".
fn describe(e: &stslib::cache::CacheEntry, now: OffsetDateTime) -> String {
    let noun = if e.kind == "token" {
        "session"
    } else {
        "credentials"
    };
    let Some(expiration) = e.expiration else {
        return format!("{noun} of unknown expiry");
    };
    let when = expiration
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let left = expiration - (now + e.clock_offset);
    if left.is_positive() {
        format!(
            "{noun} valid until {when} ({} left)",
            crate::words::humanize(left)
        )
    } else {
        format!("{noun} expired at {when}")
    }
}

/// `stslib clear [--profile P]`: removes cached sessions and roles (of one
/// profile, user or role, or all), and leftover temporary files.
pub(crate) fn cmd_clear(
    cl: &CommandLine,
    env: &stslib::Env,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    let opts = Opts::parse(&cl.args, &["--profile"], &[])?;
    if cl.global.no_cache {
        return Err(Usage("clear works on the cache: drop --no-cache".into()).into());
    }
    let cache = stslib::cache::Cache::from_env(env)?;
    let profile = opts.value("--profile");
    let removed = cache.clear(profile)?;
    let scope = match profile {
        Some(p) => format!(" for `{p}`"),
        None => String::new(),
    };
    let text = match removed.len() {
        0 => format!("nothing cached{scope}\n"),
        1 => format!("removed 1 cached entry{scope}\n"),
        n => format!("removed {n} cached entries{scope}\n"),
    };
    out.write_all(text.as_bytes()).map_err(io_error)
}

pub(crate) const LIST_USAGE: &str = "\
Usage: stslib list

Lists every profile of the AWS files with what the cache holds for it: for
an IAM-user profile its session token, for a role profile its credentials,
each with the time left. Then cache files no profile accounts for, and files
that cannot be used (another owner, a link, corrupt), with why.
";

pub(crate) const CLEAR_USAGE: &str = "\
Usage: stslib clear [--profile P]

Deletes cached session tokens and role credentials: with --profile, those of
P (a user profile: its session token and every role assumed from it; a role
profile: its credentials); without, everything, including temporary files
left by interrupted runs. The next command asks for an MFA code again.

  --profile P      only this profile's entries
";

/// What the terminal prompt's error says when there is no terminal.
pub(crate) const NO_TERMINAL: &str = "there is no terminal to ask on";

/// Where a command's MFA code comes from: `--mfa-code CODE`, or
/// `--mfa-code -` (one line of standard input, read only when a code is
/// needed: the safe way for scripts, since argv is world-readable in
/// `/proc`), else the terminal (`prompt`). A given code serves once (codes
/// are single-use); a later need asks on the terminal.
pub(crate) fn code_provider(
    arg: Option<&str>,
    prompt: fn(&str) -> stslib::Result<stslib::Secret>,
) -> impl Fn(&str) -> stslib::Result<stslib::Secret> + Send + Sync + 'static {
    let given = std::sync::Mutex::new(arg.map(str::to_owned));
    move |serial: &str| {
        let arg = crate::lock(&given).take();
        match arg.as_deref() {
            Some("-") => read_code_line(),
            Some(code) => Ok(stslib::Secret::new(code)),
            None => prompt(serial),
        }
    }
}

/// The code given as `--mfa-code`, reading standard input for `-`.
pub(crate) fn explicit_code(arg: Option<&str>) -> stslib::Result<Option<stslib::Secret>> {
    match arg {
        Some("-") => read_code_line().map(Some),
        Some(code) => Ok(Some(stslib::Secret::new(code))),
        None => Ok(None),
    }
}

/// One line of standard input, trimmed: the MFA code.
fn read_code_line() -> stslib::Result<stslib::Secret> {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(64)
        .read_line(&mut line)
        .map_err(|e| stslib::Error::Io {
            path: "<stdin>".into(),
            source: e,
        })?;
    let code = line.trim();
    if code.is_empty() {
        return Err(stslib::Error::InvalidInput {
            field: "TokenCode",
            message: "--mfa-code -: no code on standard input".into(),
        });
    }
    Ok(stslib::Secret::new(code))
}

/// Turns "no MFA code could be had" into advice a person reading it through
/// the AWS CLI or boto3 (`credential_process`) can follow, telling a
/// missing session from an expired one from one STS rejected.
pub(crate) fn explain(
    session: &stslib::Session,
    e: stslib::Error,
    no_cache: bool,
) -> stslib::Error {
    let needs_code = match &e {
        stslib::Error::InvalidInput {
            field: "TokenCode",
            message,
        } => message.contains(NO_TERMINAL),
        stslib::Error::NoCredentials { .. } => true,
        // STS's own rejection, kept as a role's outcome when no new
        // session could be made.
        _ => {
            matches!(
                session.token_miss(),
                Some(stslib::TokenMiss::Rejected { .. })
            ) && matches!(e.code(), Some("ExpiredToken" | "InvalidClientTokenId"))
        }
    };
    if !needs_code {
        return e;
    }
    let user = session.profile();
    let run = format!("run `stslib session --profile {user}`");
    let message = match session.token_miss() {
        _ if no_cache => "the cache is off (--no-cache) and there is no MFA code to make a \
                          session: pass --mfa-code CODE, or --mfa-code - to read it from \
                          standard input"
            .to_owned(),
        Some(stslib::TokenMiss::Rejected { code }) => {
            format!("STS rejected the cached session ({code}); {run}")
        }
        Some(stslib::TokenMiss::Expired { at }) => format!(
            "the cached session expired at {}; {run}",
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
        _ => format!(
            "no session in the cache, and no MFA code to make one (no terminal); {run} \
             (or give the code with --mfa-code -)"
        ),
    };
    stslib::Error::NoCredentials {
        profile: user.to_owned(),
        message,
    }
}
