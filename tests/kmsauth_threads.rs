//! A kmsauth generator's background renewal adds no thread: it runs on the
//! session's one refresher thread (started for it when none runs, ended
//! when nothing is left), and halt or drop still join that thread
//! promptly, even while a renewal backs off between KMS retries.
//!
//! Its own test binary, with one test, so no other test's threads fall in
//! the windows. As in `tests/threads.rs`, a counting global allocator notes
//! every thread on its first allocation (one that comes and goes between
//! two looks at `/proc/self/task` is still seen), beside the names of the
//! live threads.

mod common;
#[path = "common/thread_counter.rs"]
mod thread_counter;

use std::time::{Duration, Instant};

use common::{
    alice_files, emulator_with_alice, eventually, halt_promptly, init_logger, refresh_threads,
    role_profiles, session_builder, thread_names, wait_event, TOKEN_LIFETIME,
};
use stslib::clock::ManualClock;
use stslib::emulator::{Action, Emulator, Fault};
use stslib::kms::KmsClient;
use stslib::kmsauth::TokenGenerator;
use stslib::{Env, Event, Session};

const REGION: &str = "us-east-1";
const KEY: &str = "alias/authnz-service";

fn refresh_threads_are(n: usize) -> bool {
    eventually(Duration::from_secs(1), || refresh_threads() == n)
}

/// Live threads other than the emulator's, sorted by name.
fn our_threads() -> Vec<String> {
    let mut names: Vec<_> = thread_names()
        .into_iter()
        .filter(|n| !n.starts_with("stslib-emu"))
        .collect();
    names.sort();
    names
}

/// alice with role `svc`: a 15 min session token and 1 h role
/// credentials, so the role needs no refresher (it could only be refreshed
/// after the token ends) and none runs until a generator asks for one.
fn session(emu: &Emulator, clock: &ManualClock) -> Session {
    let files = alice_files("", &role_profiles(&["svc"], "alice", ""));
    let session = session_builder(&emu.endpoint(), files, "alice")
        .clock(clock.clock())
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    session.generate_credentials(&["svc"]).unwrap();
    session
}

fn kms(emu: &Emulator, clock: &ManualClock, attempts: u32) -> KmsClient {
    KmsClient::builder()
        .env(Env::from_pairs(Vec::<(String, String)>::new()))
        .region(REGION)
        .endpoint(emu.endpoint())
        .clock(clock.clock())
        .timeout(Duration::from_secs(2))
        .max_attempts(attempts)
        .build()
        .unwrap()
}

fn generator(session: &Session, kms: KmsClient) -> TokenGenerator {
    TokenGenerator::builder(KEY, "svc-a", "svc-b")
        .client(kms)
        .session_role(session, "svc")
        .refresh_in_background(true)
        .build()
        .unwrap()
}

#[test]
fn background_renewal_uses_the_one_refresher_thread() {
    init_logger();
    let clock = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(3600))
        .kms_key(REGION, [KEY])
        .clock(clock.clock())
        .start()
        .unwrap();
    let encrypts = || emu.request_count(Action::Encrypt);

    // No refresher before the generator; one, for it, after.
    let s = session(&emu, &clock);
    assert!(!s.is_refreshing());
    assert!(refresh_threads_are(0));
    let before = our_threads();
    let g = generator(&s, kms(&emu, &clock, 3));
    clock.advance_and_settle(Duration::ZERO);
    assert_eq!(encrypts(), 1);
    assert!(s.is_refreshing());
    let mut expected = before.clone();
    expected.push("stslib-refresh".into());
    expected.sort();
    assert_eq!(our_threads(), expected);
    // A second generator shares it.
    let g2 = generator(&s, kms(&emu, &clock, 3));
    clock.advance_and_settle(Duration::ZERO);
    assert_eq!(encrypts(), 2);
    assert_eq!(our_threads(), expected);
    // Renewals create no thread, not even a short-lived one (the KMS
    // connections are kept alive, so the emulator starts none either).
    let seen = thread_counter::threads_seen();
    for _ in 0..5 {
        clock.advance_and_settle(Duration::from_secs(60));
    }
    assert!(encrypts() >= 6, "{} Encrypts", encrypts());
    assert_eq!(thread_counter::threads_seen(), seen, "threads created");
    assert_eq!(our_threads(), expected);
    // With both generators gone the thread has nothing left and ends.
    let events = s.subscribe();
    drop(g);
    drop(g2);
    let (ended, seen) = wait_event(&events, Duration::from_secs(5), |e| {
        matches!(e, Event::Ended)
    });
    assert!(ended.is_some(), "{seen:?}");
    assert!(refresh_threads_are(0));
    assert!(!s.is_refreshing());
    assert_eq!(our_threads(), before);
    // A new generator starts it again; halt joins it promptly.
    let g = generator(&s, kms(&emu, &clock, 3));
    assert!(s.is_refreshing());
    assert!(refresh_threads_are(1));
    halt_promptly(&s, Duration::from_secs(1));
    assert!(refresh_threads_are(0));
    // The generator still works, on the caller's thread.
    g.token().unwrap();
    drop(s);
    assert!(refresh_threads_are(0));

    // Dropping a session whose refresher runs only a renewal.
    let s = session(&emu, &clock);
    let g = generator(&s, kms(&emu, &clock, 3));
    clock.advance_and_settle(Duration::ZERO);
    assert!(refresh_threads_are(1));
    let t = Instant::now();
    drop(s);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(refresh_threads_are(0));
    drop(g);

    // Halting while a renewal backs off between KMS retries (5xx, up to 20
    // attempts: several seconds of backoff in all): the halt ends the
    // backoff, and no request follows it.
    let s = session(&emu, &clock);
    emu.inject(Action::Encrypt, Fault::internal(), 1000);
    let start = encrypts();
    let _g = generator(&s, kms(&emu, &clock, 20));
    assert!(eventually(Duration::from_secs(5), || encrypts() >= start + 2));
    halt_promptly(&s, Duration::from_secs(2));
    assert!(encrypts() < start + 20, "the retries ran to the end");
    assert!(refresh_threads_are(0));
}
