//! The refresher thread's life: exactly one `stslib-refresh` thread per
//! refreshing session, none after halt or drop; halt is prompt when idle and
//! bounded by the client timeout mid-request; a new `generate_credentials`
//! replaces the thread; halting twice, or after the thread ended by itself,
//! is fine.
//!
//! Thread counts are read from `/proc/self/task/*/comm`, which every test of
//! this binary would see, so the steps run one after another in a single
//! test.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use crossbeam_channel::TryRecvError;
use stslib::clock::ManualClock;
use stslib::emulator::{Action, Fault};
use stslib::{Event, Secret, Session};

/// Whether there are `n` refresher threads, polled for briefly: a new
/// thread names itself only once it runs, and a joined one can linger in
/// `/proc` for a moment after `join` returns (the kernel wakes the joiner
/// before it removes the task).
fn refresh_threads_are(n: usize) -> bool {
    eventually(Duration::from_millis(500), || refresh_threads() == n)
}

fn no_refresh_threads() -> bool {
    refresh_threads_are(0)
}

fn session(endpoint: &str, n: usize) -> (Session, Vec<String>) {
    session_with(endpoint, n, false)
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Halt,
    Drop,
}

/// A session for `n` roles with a 1 s client timeout and a session token;
/// `renewable`: with an MFA provider (never asked for a code: alice has no
/// device), so the token is renewed and the refresher runs on.
fn session_with(endpoint: &str, n: usize, renewable: bool) -> (Session, Vec<String>) {
    session_on(endpoint, n, renewable, &ManualClock::starting_now())
}

/// [`session_with`] on `clock`.
fn session_on(
    endpoint: &str,
    n: usize,
    renewable: bool,
    clock: &ManualClock,
) -> (Session, Vec<String>) {
    let roles = role_names(n);
    let refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    let files = alice_files("", &role_profiles(&refs, "alice", ""));
    let mut b = session_builder(endpoint, files, "alice")
        .clock(clock.clock())
        .timeout(Duration::from_secs(1));
    if renewable {
        b = b.mfa_provider(|_| panic!("alice has no MFA device"));
    }
    let s = b.build().unwrap();
    s.generate_session_token(TOKEN_LIFETIME, None).unwrap();
    (s, roles)
}

fn generate(s: &Session, roles: &[String]) {
    let refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    let out = s.generate_credentials(&refs).unwrap();
    assert!(out.values().all(Result::is_ok), "{out:?}");
}

#[test]
fn refresher_threads_start_and_stop_with_their_sessions() {
    init_logger();
    assert!(refresh_threads_are(0), "{} threads", refresh_threads());
    let emu = emulator_with_alice(Duration::from_secs(60))
        .start()
        .unwrap();
    let ep = emu.endpoint();

    // Halt when idle: prompt, announced, thread gone; again: a no-op.
    {
        let (s, roles) = session(&ep, 2);
        let events = s.subscribe();
        generate(&s, &roles);
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        // The fan-out threads were joined before generate_credentials returned.
        assert!(eventually(Duration::from_millis(500), || {
            !thread_names().iter().any(|n| n == "sts-fanout")
        }));
        assert!(s.is_refreshing());
        let t = Instant::now();
        s.halt().unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(matches!(events.try_recv(), Ok(Event::Halted)));
        // ... and the end of the stream: nothing can follow, from the
        // second halt or anything else.
        assert!(matches!(events.try_recv(), Err(TryRecvError::Disconnected)));
        assert!(!s.is_refreshing());
        assert!(no_refresh_threads());
        s.halt().unwrap();
        assert!(!s.is_refreshing());
        assert!(no_refresh_threads());
        // A subscriber joining after the halt gets an ended stream too.
        assert!(matches!(
            s.subscribe().try_recv(),
            Err(TryRecvError::Disconnected)
        ));
        // Credentials already held stay readable.
        assert_eq!(s.valid_credentials().len(), 2);
    }

    // Drop halts and joins.
    {
        let (s, roles) = session(&ep, 1);
        let events = s.subscribe();
        generate(&s, &roles);
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        drop(s);
        assert!(no_refresh_threads());
        assert!(matches!(events.try_recv(), Ok(Event::Halted)));
        assert!(matches!(events.try_recv(), Err(TryRecvError::Disconnected)));
    }

    // Generating credentials again halts the old thread first.
    {
        let (s, roles) = session(&ep, 2);
        let events = s.subscribe();
        generate(&s, &roles[..1]);
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        generate(&s, &roles);
        assert!(matches!(events.try_recv(), Ok(Event::Halted)));
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        assert!(s.is_refreshing());
        assert_eq!(s.latest_credentials().len(), 2);
        generate(&s, &roles);
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        drop(s);
        assert!(no_refresh_threads());
    }

    // One thread per session; each goes with its own session.
    {
        let sessions: Vec<Session> = (0..3)
            .map(|_| {
                let (s, roles) = session(&ep, 1);
                generate(&s, &roles);
                s
            })
            .collect();
        assert!(refresh_threads_are(3), "{} threads", refresh_threads());
        let mut sessions = sessions.into_iter();
        drop(sessions.next());
        assert!(refresh_threads_are(2));
        for s in sessions {
            s.halt().unwrap();
        }
        assert!(no_refresh_threads());
    }
    drop(emu);

    // Halt mid-request: bounded by the client's 1 s timeout (the stalled
    // attempt times out, no retry follows a halt, the loop sees the halt).
    {
        let clock = ManualClock::starting_now();
        let emu = emulator_with_alice(Duration::from_secs(3))
            .clock(clock.clock())
            .start()
            .unwrap();
        let (s, roles) = session_on(&emu.endpoint(), 1, true, &clock);
        let events = s.subscribe();
        generate(&s, &roles);
        emu.inject(Action::AssumeRole, Fault::Stall(Duration::from_secs(5)), 1);
        // Move the clock until the refresh is stuck in the stalled request
        // (recorded when it arrives).
        while emu.request_count(Action::AssumeRole) < 2 {
            assert!(clock.now() < s.latest_credentials().get(&roles[0]).unwrap().expiration);
            clock.advance(Duration::from_millis(100));
            clock.settle(Duration::from_millis(200));
        }
        let stalled = emu.requests().into_iter().last().unwrap();
        assert!(matches!(stalled.fault, Some(Fault::Stall(_))));
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        let t = Instant::now();
        s.halt().unwrap();
        let took = t.elapsed();
        assert!(took < Duration::from_secs(3), "halt took {took:?}");
        // Halt joined the in-flight call at its timeout; no retry was sent
        // after the halt (the backoff ends on the halt signal).
        assert_eq!(emu.request_count(Action::AssumeRole), 2);
        assert!(no_refresh_threads());
        let (halted, seen) = wait_event(&events, Duration::from_millis(100), |e| {
            matches!(e, Event::Halted)
        });
        assert!(halted.is_some(), "{seen:?}");
    }

    // A session whose thread ended by itself halts fine.
    {
        let clock = ManualClock::starting_now();
        let emu = emulator_with_alice(Duration::from_secs(2))
            .clock(clock.clock())
            .start()
            .unwrap();
        let (s, roles) = session_on(&emu.endpoint(), 1, false, &clock);
        let events = s.subscribe();
        generate(&s, &roles);
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        let step = Duration::from_millis(100);
        let (ended, seen) = advance_until(&clock, &events, step, Duration::from_secs(6), |e| {
            matches!(e, Event::Ended)
        });
        assert!(ended.is_some(), "{seen:?}");
        assert!(no_refresh_threads());
        assert!(!s.is_refreshing());
        let t = Instant::now();
        s.halt().unwrap();
        s.halt().unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(events.try_recv(), Err(TryRecvError::Disconnected)),
            "no Halted from an ended thread, then the end of the stream"
        );
    }

    // Halt or drop while the MFA provider blocks (a person who does not
    // answer): it returns within the client's timeouts, announces the halt,
    // and the thread ends by itself, with no further call or event, once
    // the provider returns.
    for stop in [Stop::Halt, Stop::Drop] {
        let clock = ManualClock::starting_now();
        let emu = emulator_with_alice(Duration::from_secs(3))
            .clock(clock.clock())
            .mfa_device("alice", ALICE_MFA, ALICE_CODE)
            .require_mfa(true)
            .start()
            .unwrap();
        let (entered_tx, entered) = crossbeam_channel::unbounded();
        let (release, released) = crossbeam_channel::unbounded::<()>();
        let asked = AtomicUsize::new(0);
        let files = alice_files(
            &format!("mfa_serial = {ALICE_MFA}"),
            &role_profiles(&["r1"], "alice", ""),
        );
        let s = session_builder(&emu.endpoint(), files, "alice")
            .clock(clock.clock())
            .timeout(Duration::from_secs(1))
            .mfa_provider(move |_| {
                // The first code comes at once, the renewal's never until
                // the test releases it.
                if asked.fetch_add(1, Ordering::SeqCst) > 0 {
                    let _ = entered_tx.send(());
                    let _ = released.recv();
                }
                Ok(Secret::new(ALICE_CODE))
            })
            .build()
            .unwrap();
        let events = s.subscribe();
        generate(&s, &["r1".to_owned()]);
        while entered.try_recv().is_err() {
            assert!(clock.now() < s.session_token().unwrap().expiration);
            clock.advance(Duration::from_millis(100));
            clock.settle(Duration::from_millis(200));
        }
        let tokens = emu.request_count(Action::GetSessionToken);
        let t = Instant::now();
        match stop {
            Stop::Halt => {
                s.halt().unwrap();
                assert!(!s.is_refreshing());
            }
            Stop::Drop => drop(s),
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{stop:?} took {:?}",
            t.elapsed()
        );
        let (halted, seen) = wait_event(&events, Duration::ZERO, |e| matches!(e, Event::Halted));
        assert!(halted.is_some(), "{stop:?}: {seen:?}");
        // The thread is still inside the provider ...
        assert!(refresh_threads_are(1), "{} threads", refresh_threads());
        release.send(()).unwrap();
        // ... and ends once it returns, without using the code.
        assert!(no_refresh_threads());
        assert_eq!(emu.request_count(Action::GetSessionToken), tokens);
        assert!(
            matches!(events.try_recv(), Err(TryRecvError::Disconnected)),
            "an event after the halt"
        );
    }
    assert!(refresh_threads_are(0), "{} threads", refresh_threads());
}
