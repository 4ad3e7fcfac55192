//! The main job of stslib, offline, in under a minute:
//!
//! 1. start the bundled local STS emulator on 127.0.0.1 (it checks SigV4
//!    signatures, session tokens, MFA codes and expiry like STS does);
//! 2. write an AWS config and credentials file: one IAM user `alice` with an
//!    MFA device, three role profiles sourced from her;
//! 3. take ONE MFA-protected session token (GetSessionToken);
//! 4. assume the three roles from it (AssumeRole, fanned out);
//! 5. let the session's refresher thread keep the roles fresh, printing each
//!    refresh round as it happens (roles live 6 s here instead of 1 hour);
//! 6. halt: the thread is joined, nothing is left running.
//!
//! Run with `cargo run --example demo`. Set `RUST_LOG`-style logging with
//! `STSLIB_DEMO_LOG=debug` to see the library's own log lines.

use std::time::{Duration, Instant};

use stslib::emulator::{Action, Emulator};
use stslib::profile::ProfileFiles;
use stslib::{Event, RefreshPolicy, Session};

const ACCOUNT: &str = "123456789012";
const MFA_SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const MFA_CODE: &str = "123456";

fn main() -> Result<(), stslib::Error> {
    init_log();
    let emu = Emulator::builder()
        .user(
            "alice",
            "AKIAALICEDEMO0000001",
            "alice/demo/secret/key/000000000000000",
        )
        .mfa_device("alice", MFA_SERIAL, MFA_CODE)
        .require_mfa(true)
        .role_lifetime(Duration::from_secs(6))
        .start()?;
    println!("local STS emulator at {}", emu.endpoint());

    let config = format!(
        "[profile alice]\nmfa_serial = {MFA_SERIAL}\nregion = us-east-1\n\n\
         [profile dev]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/dev\nsource_profile = alice\n\n\
         [profile staging]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/staging\nsource_profile = alice\n\n\
         [profile prod]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/prod\nsource_profile = alice\n\
         role_session_name = alice-prod\n"
    );
    let credentials = "[alice]\naws_access_key_id = AKIAALICEDEMO0000001\n\
                       aws_secret_access_key = alice/demo/secret/key/000000000000000\n";
    let files = ProfileFiles::from_strings(&config, credentials)?;

    let session = Session::builder()
        .files(files)
        .profile("alice")
        .endpoint(emu.endpoint())
        .refresh_policy(RefreshPolicy::default().fraction(0.5))
        .build()?;
    let events = session.subscribe();

    let token = session.generate_session_token(Duration::from_secs(3600), Some(MFA_CODE))?;
    println!(
        "session token {} (MFA {}), expires {}, {} left",
        token.access_key_id,
        session.mfa_serial()?.unwrap_or_default(),
        token.expiration_iso(),
        token.humanized_remaining()
    );

    let outcomes = session.generate_credentials(&["dev", "staging", "prod"])?;
    for (profile, outcome) in &outcomes {
        match outcome {
            Ok(c) => println!(
                "  {profile:<8} {}  expires {}  ({} left)",
                c.access_key_id,
                c.expiration_iso(),
                c.humanized_remaining()
            ),
            Err(e) => println!("  {profile:<8} failed: {e}"),
        }
    }

    println!("refresher running: {}", session.is_refreshing());
    let started = Instant::now();
    let mut refreshed = 0;
    while refreshed < 9 && started.elapsed() < Duration::from_secs(40) {
        match events.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::Refreshed {
                profile,
                expiration,
            }) => {
                refreshed += 1;
                let now = session.valid_credentials();
                println!(
                    "[{:>5.1}s] refreshed {profile:<8} new expiry {}; readers see {} valid roles",
                    started.elapsed().as_secs_f64(),
                    expiration.time(),
                    now.len()
                );
            }
            Ok(other) => println!("[{:>5.1}s] {other:?}", started.elapsed().as_secs_f64()),
            Err(_) => break,
        }
    }

    session.halt()?;
    println!(
        "halted: refresher running = {}; {} AssumeRole and {} GetSessionToken calls served",
        session.is_refreshing(),
        emu.request_count(Action::AssumeRole),
        emu.request_count(Action::GetSessionToken)
    );
    let current = session.valid_credentials();
    println!(
        "credentials still valid after halt: {:?}",
        current.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    emu.stop();
    Ok(())
}

/// A minimal `log` sink on stderr, enabled by `STSLIB_DEMO_LOG=debug|info`.
fn init_log() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            eprintln!(
                "{:<5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
        fn flush(&self) {}
    }
    let level = match std::env::var("STSLIB_DEMO_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("info") => log::LevelFilter::Info,
        _ => return,
    };
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
