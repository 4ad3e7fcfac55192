//! `stslib exec`: runs a command with a role's credentials, as static
//! variables or (with `--server`) through the loopback credential endpoint
//! that the session's refresher keeps fresh.
//!
//! The child inherits stdin, stdout and stderr; its exit status becomes
//! stslib's (a child killed by signal N gives 128+N). stslib waits for it:
//! SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to stslib are passed on, and
//! so are SIGINT and SIGQUIT sent by another process (`kill(2)`, as
//! Python's `send_signal` and Go's `Process.Signal` do). The terminal's own
//! SIGINT and SIGQUIT (Ctrl-C, Ctrl-\) are not: the terminal sends them to
//! the whole foreground process group, child included, and a second copy
//! would turn a graceful stop into a forced one in programs that count them
//! (terraform). The kernel marks which is which (`si_code`).

use std::io::Write;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::args::{parse_duration, CommandLine, Opts, Usage};
use crate::server::CredentialServer;
use crate::CmdError;

/// Set in the child to the role profile; an `exec` that finds it set for
/// another profile refuses to run unless `--nested` is given.
pub(crate) const MARKER: &str = "STSLIB_EXEC";

/// Variables removed from the child's environment: inherited credentials
/// and profile selectors that the AWS SDKs would read before (or instead
/// of) the ones stslib sets.
pub(crate) const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_SESSION_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CREDENTIAL_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// Keys of the `default` profile that the SDKs' default chains would use
/// before a container credential endpoint.
const CREDENTIAL_KEYS: &[&str] = &[
    "aws_access_key_id",
    "role_arn",
    "credential_process",
    "credential_source",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
];

/// `stslib exec`; returns the exit code.
pub(crate) fn cmd_exec(cl: &CommandLine, env: &stslib::Env) -> Result<u8, CmdError> {
    let (own, command) = match cl.args.iter().position(|a| a == "--") {
        Some(i) => (&cl.args[..i], cl.args[i + 1..].to_vec()),
        None => (&cl.args[..], Vec::new()),
    };
    let opts = Opts::parse(
        own,
        &["--profile", "--mfa-code", "--lifetime"],
        &["--server", "--nested"],
    )
    .map_err(|Usage(m)| Usage(format!("{m} (the command goes after `--`)")))?;
    let command = if command.is_empty() {
        // As aws-vault: no command runs the user's shell.
        vec![env.get("SHELL").unwrap_or_else(|| "/bin/sh".to_owned())]
    } else {
        command
    };
    let role = opts
        .value("--profile")
        .map(str::to_owned)
        .unwrap_or_else(|| crate::default_profile(env));
    if let Some(outer) = env.get(MARKER) {
        if outer != role && !opts.flag("--nested") {
            return Err(CmdError::Failed(stslib::Error::InvalidInput {
                field: "profile",
                message: format!(
                    "already inside `stslib exec` for profile `{outer}` ({MARKER} is set); \
                     refusing to nest `{role}`: pass --nested to run it anyway"
                ),
            }));
        }
    }
    let lifetime = match opts.value("--lifetime") {
        Some(text) => parse_duration(text).map_err(Usage)?,
        None => stslib::DEFAULT_TOKEN_LIFETIME,
    };
    let server_mode = opts.flag("--server");

    // From here on, signals are taken by a thread; before the child starts
    // they end stslib (an MFA prompt can still be interrupted).
    let signals = signals::install().map_err(|e| failed("signals", e))?;

    let files = stslib::profile::ProfileFiles::load(env)?;
    let user = crate::common_source(&files, &[&role])?;
    let region = crate::role_region(cl, &files, &role);
    let hide_credentials_file = if server_mode {
        default_profile_conflict(&files)?
    } else {
        false
    };
    let child_started = Arc::new(AtomicBool::new(false));
    let mut builder =
        crate::session_builder_for(cl, env, files, &user, lifetime, opts.value("--mfa-code"))?
            .refresh(server_mode);
    if server_mode {
        // Renewing the session token needs an MFA code; while the child owns
        // the terminal nobody is asked (aws-vault refuses a terminal prompt
        // with its servers too): credentials are served until the session
        // token ends.
        let code = Mutex::new(opts.value("--mfa-code").map(stslib::Secret::new));
        let started = child_started.clone();
        builder = builder.mfa_provider(move |serial| {
            if started.load(Ordering::Acquire) {
                return Err(stslib::Error::InvalidInput {
                    field: "TokenCode",
                    message: format!(
                        "no MFA prompt for `{serial}` while `stslib exec --server` runs \
                         the command, so the session token is not renewed: credentials are \
                         served until it ends, then the endpoint answers 503 (restart the \
                         command with a new session; `stslib session --lifetime 36h` makes \
                         a longer one)"
                    ),
                });
            }
            match crate::lock(&code).take() {
                Some(c) => Ok(c),
                None => crate::prompt_mfa(serial),
            }
        });
    }
    let session = Arc::new(builder.build()?);
    let credentials = one_outcome(&session, &role)?;

    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    for name in REMOVED {
        cmd.env_remove(name);
    }
    cmd.env(MARKER, &role);
    if let Some(r) = &region {
        cmd.env("AWS_REGION", r).env("AWS_DEFAULT_REGION", r);
    }
    let server = if server_mode {
        let s = session.clone();
        let r = role.clone();
        let server = CredentialServer::start(Arc::new(move || {
            s.valid_credentials_for(&r)
                .ok_or_else(|| unavailable(&s, &r))
        }))
        .map_err(|e| failed("credential server", e))?;
        cmd.env("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url())
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", server.token().expose());
        if hide_credentials_file {
            cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        }
        Some(server)
    } else {
        cmd.env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                credentials.secret_access_key.expose(),
            )
            .env("AWS_SESSION_TOKEN", credentials.session_token.expose())
            .env("AWS_CREDENTIAL_EXPIRATION", credentials.expiration_iso());
        None
    };
    drop(credentials);
    let _ = std::io::stdout().flush();

    child_started.store(true, Ordering::Release);
    let status = signals.run(&mut cmd);
    if let Some(server) = server {
        server.stop();
    }
    session.halt()?;
    match status {
        Ok(status) => Ok(exit_code(status)),
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "not found"),
                std::io::ErrorKind::PermissionDenied => (126, "not executable"),
                _ => (126, "could not be started"),
            };
            eprintln!("stslib: error: command `{}` {what}: {e}", command[0]);
            Ok(code)
        }
    }
}

/// Why the endpoint has no credentials for `role`: the `503` message the
/// child's SDK shows.
fn unavailable(session: &stslib::Session, role: &str) -> String {
    let ended = session
        .session_token()
        .is_none_or(|t| t.expiration <= time::OffsetDateTime::now_utc());
    if ended {
        "the MFA session token has ended, and `stslib exec --server` does not ask for an MFA \
         code while the command runs: restart the command (`stslib session --lifetime 36h` \
         makes a longer session)"
            .to_owned()
    } else {
        format!(
            "no valid credentials for `{role}`: refreshing them is failing (see stslib's warnings)"
        )
    }
}

/// A local failure while running (not bad input: `InvalidInput` means
/// "rejected before any network call"), reported as the other errors are.
fn failed(what: &str, e: impl std::fmt::Display) -> CmdError {
    eprintln!("stslib: error: exec: {what}: {e}");
    CmdError::Reported
}

/// The role's credentials, or its error.
fn one_outcome(session: &stslib::Session, role: &str) -> Result<stslib::Credentials, CmdError> {
    let mut outcomes = session.generate_credentials(&[role])?;
    outcomes
        .remove(role)
        .unwrap_or_else(|| {
            Err(stslib::Error::NoCredentials {
                profile: role.to_owned(),
                message: "no outcome".into(),
            })
        })
        .map_err(CmdError::Failed)
}

/// The child's exit status as stslib's: its code, or 128+N when killed by
/// signal N (as shells report it).
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return code as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (128 + sig).clamp(0, 255) as u8;
        }
    }
    1
}

/// With `--server`, the child finds no `AWS_PROFILE` and so reads the
/// `default` profile, whose credentials every SDK's default chain would
/// take before the credential endpoint. Static keys that only the
/// credentials file gives it (what `aws configure` writes) are hidden by
/// pointing the child's `AWS_SHARED_CREDENTIALS_FILE` at `/dev/null`
/// (returns `true`); credentials set in the config file are refused with
/// the file and line.
fn default_profile_conflict(files: &stslib::profile::ProfileFiles) -> Result<bool, CmdError> {
    let Ok(default) = files.profile("default") else {
        return Ok(false);
    };
    let mut hide = false;
    for key in CREDENTIAL_KEYS {
        if let Some(p) = default.property(key) {
            match p.origin().kind() {
                stslib::profile::FileKind::Credentials => hide = true,
                stslib::profile::FileKind::Config => {
                    return Err(CmdError::Failed(stslib::Error::InvalidProfile {
                        profile: "default".into(),
                        key: Some((*key).into()),
                        message: format!(
                            "set at {}: the AWS SDKs in the command would use the `default` \
                             profile before the --server endpoint; move it to a named \
                             profile, or use `stslib exec` without --server",
                            p.origin()
                        ),
                    }))
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
    Ok(hide)
}

#[cfg(unix)]
mod signals {
    //! Signals without unsafe code: signal-hook's handlers only write to a
    //! pipe that one thread reads; a caught signal's handler is reset to
    //! the default by `exec`, so the child starts with normal signals.

    use std::process::{Command, ExitStatus};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::iterator::{Handle, SignalsInfo};
    use signal_hook::low_level::siginfo::{Cause, Origin};

    /// Passed on to the child.
    const FORWARDED: [i32; 4] = [SIGTERM, SIGHUP, SIGUSR1, SIGUSR2];
    /// Passed on only when another process sent them: the terminal sends
    /// its own to the child too.
    const GROUP: [i32; 2] = [SIGINT, SIGQUIT];

    /// Whether the child should get `origin`'s signal from stslib.
    fn pass_on(origin: &Origin) -> bool {
        FORWARDED.contains(&origin.signal)
            || (GROUP.contains(&origin.signal) && matches!(origin.cause, Cause::Sent(_)))
    }

    enum State {
        /// No child yet: a signal ends stslib as its default action would
        /// (with the shell's 128+N status).
        Starting,
        Running(u32),
        Done,
    }

    pub(crate) struct Signals {
        state: Arc<Mutex<State>>,
        handle: Handle,
        thread: Option<JoinHandle<()>>,
    }

    pub(crate) fn install() -> std::io::Result<Signals> {
        let mut iter = SignalsInfo::<WithOrigin>::new(FORWARDED.iter().chain(&GROUP))?;
        let handle = iter.handle();
        let state = Arc::new(Mutex::new(State::Starting));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("stslib-signals".into())
            .spawn(move || {
                // Ends when the handle is closed.
                for origin in iter.forever() {
                    let sig = origin.signal;
                    let state = crate::lock(&shared);
                    match *state {
                        State::Starting => std::process::exit(128 + sig),
                        State::Running(pid) if pass_on(&origin) => {
                            if let Ok(s) = Signal::try_from(sig) {
                                log::debug!("passing {s} on to the child {pid}");
                                let _ = kill(Pid::from_raw(pid as i32), s);
                            }
                        }
                        State::Running(_) | State::Done => {}
                    }
                }
            })?;
        Ok(Signals {
            state,
            handle,
            thread: Some(thread),
        })
    }

    impl Signals {
        /// Spawns the child (signals wait meanwhile) and waits for it.
        pub(crate) fn run(&self, cmd: &mut Command) -> std::io::Result<ExitStatus> {
            let mut child = {
                let mut state = crate::lock(&self.state);
                let child = cmd.spawn()?;
                *state = State::Running(child.id());
                child
            };
            let status = child.wait();
            // Between the reap above and this line a forwarded signal could
            // reach a reused pid; the window is a few instructions long.
            *crate::lock(&self.state) = State::Done;
            status
        }
    }

    impl Drop for Signals {
        /// Stops the thread and joins it; the handlers stay registered
        /// (signal-hook cannot remove them), catching and ignoring until
        /// stslib exits.
        fn drop(&mut self) {
            self.handle.close();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(not(unix))]
mod signals {
    //! Elsewhere the console delivers Ctrl-C to every attached process.

    use std::process::{Command, ExitStatus};

    pub(crate) struct Signals;

    pub(crate) fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    impl Signals {
        pub(crate) fn run(&self, cmd: &mut Command) -> std::io::Result<ExitStatus> {
            cmd.status()
        }
    }
}
