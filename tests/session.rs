//! Session behaviour on the local STS emulator with second-scale lifetimes,
//! the session and the emulator sharing one manual clock that the tests move
//! (no test waits for an expiry in real time): refresh before expiry, consistent snapshots, failure and recovery,
//! per-role outcomes, errors before any network call, the end of a session,
//! MFA renewal and serial resolution, fan-out and independent sessions.
//!
//! Run with `STSLIB_TEST_LOG=debug` to see the refresher's decisions.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use stslib::clock::ManualClock;
use stslib::emulator::{Action, Emulator, Fault};
use stslib::{Error, Event, Secret, Session};

fn names(n: usize) -> (Vec<String>, String) {
    let names = role_names(n);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = role_profiles(&refs, "alice", "");
    (names, config)
}

fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// A provider for a user without a device: never asked for a code, but its
/// presence lets the session renew its token.
fn no_code(_serial: &str) -> stslib::Result<Secret> {
    panic!("no MFA device: the provider must not be asked for a code")
}

#[test]
fn every_role_is_refreshed_before_expiry_over_several_rounds() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(3))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(4);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .mfa_provider(no_code)
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let events = session.subscribe();
    let outcomes = session.generate_credentials(&refs(&roles)).unwrap();
    assert!(outcomes.values().all(Result::is_ok), "{outcomes:?}");
    let first_assumes = emu.request_count(Action::AssumeRole);
    assert_eq!(first_assumes, roles.len());
    assert!(session.is_refreshing());

    // The expiration of what readers get for each role: every refresh
    // must come before it.
    let mut held: BTreeMap<String, time::OffsetDateTime> = session
        .valid_credentials()
        .iter()
        .map(|(p, c)| (p.to_owned(), c.expiration))
        .collect();
    let stop = AtomicBool::new(false);
    let polls = AtomicUsize::new(0);
    // Problems the reader saw, reported after the threads are joined.
    let problems = Mutex::new(Vec::<String>::new());
    let mut verified = BTreeMap::<String, BTreeSet<String>>::new();
    let mut refreshed = BTreeMap::<String, usize>::new();
    let mut other = Vec::new();
    std::thread::scope(|s| {
        // A reader polling while the clock moves and the refresher swaps
        // sets in: never a gap, never expired credentials.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let before = session.clock().now();
                let set = session.valid_credentials();
                polls.fetch_add(1, Ordering::Relaxed);
                if set.len() != roles.len() {
                    let have: Vec<_> = set.iter().map(|(p, _)| p.to_owned()).collect();
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("gap: only {have:?} valid at {before}"));
                }
                for (profile, c) in set.iter() {
                    if c.expiration <= before {
                        problems
                            .lock()
                            .unwrap()
                            .push(format!("{profile}: expired credentials returned"));
                    }
                }
                std::thread::yield_now();
            }
        });
        let _stop = SetOnDrop(&stop);
        // 100 ms of clock time per step, up to 15 s: several lifetimes; the
        // reader polls at least once between steps.
        let mut seen = Vec::new();
        let mut done = false;
        for _ in 0..150 {
            let polled = polls.load(Ordering::Relaxed);
            t.advance_and_settle(Duration::from_millis(100));
            for e in events.try_iter() {
                if let Event::Refreshed {
                    profile,
                    expiration,
                } = &e
                {
                    // Before the credentials it replaces expired (the
                    // clock has stood still since the round), in every
                    // round.
                    let now = t.now();
                    let before = held.insert(profile.clone(), *expiration);
                    assert!(
                        before.is_some_and(|b| now < b),
                        "{profile}: refreshed at {now}, held ones expired at {before:?}"
                    );
                    // Published before announced: readers already see it.
                    let latest = session.latest_credentials();
                    let c = latest.get(profile).expect("refreshed profile is held");
                    assert!(c.expiration >= *expiration, "{profile}: event before swap");
                    // Each credential is one the emulator issued for this
                    // very role: its key, secret and token authenticate
                    // together, as the role's session (checked while the
                    // clock stands still).
                    match session.client().get_caller_identity(&c.access_key()) {
                        Ok(id)
                            if id
                                .arn
                                .ends_with(&format!("assumed-role/{profile}/sts-{profile}")) =>
                        {
                            verified
                                .entry(profile.clone())
                                .or_default()
                                .insert(c.access_key_id.clone());
                        }
                        other => panic!("{profile}: not its role's credentials: {other:?}"),
                    }
                    *refreshed.entry(profile.clone()).or_default() += 1;
                }
                seen.push(e);
            }
            // Between rounds too: every role valid at this clock time.
            let valid = session.valid_credentials();
            assert_eq!(valid.len(), roles.len(), "a role lapsed at {}", t.now());
            done = refreshed.len() == roles.len() && refreshed.values().all(|&n| n >= 3);
            if done {
                break;
            }
            assert!(
                eventually(Duration::from_secs(5), || polls.load(Ordering::Relaxed)
                    > polled),
                "the reader stopped polling"
            );
        }
        assert!(done, "not refreshed 3 times each: {refreshed:?}");
        other.extend(
            seen.into_iter()
                .filter(|e| !matches!(e, Event::Refreshed { .. })),
        );
    });

    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "reader saw: {problems:#?}");
    for r in &roles {
        assert!(
            refreshed.get(r).copied().unwrap_or(0) >= 3,
            "{r} refreshed {refreshed:?} times; other events {other:?}"
        );
        // Several generations of credentials were checked against STS.
        let checked = verified.get(r).map_or(0, BTreeSet::len);
        assert!(
            checked >= 3,
            "{r}: {checked} credential generations verified"
        );
    }
    assert!(
        other
            .iter()
            .all(|e| matches!(e, Event::TokenRenewed { .. })),
        "unexpected events: {other:?}"
    );
    // The 3 s session token outlived by far: it was renewed.
    assert!(other
        .iter()
        .any(|e| matches!(e, Event::TokenRenewed { .. })));
    assert!(emu.request_count(Action::AssumeRole) >= first_assumes + 3 * roles.len());
}

#[test]
fn a_held_snapshot_never_changes_and_sets_are_whole() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(3))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(3);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .mfa_provider(no_code)
        .build()
        .unwrap();
    let events = session.subscribe();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    session.generate_credentials(&refs(&roles)).unwrap();
    let held = session.valid_credentials();
    let before: Vec<(String, String)> = held
        .iter()
        .map(|(p, c)| (p.to_owned(), c.access_key_id.clone()))
        .collect();
    assert_eq!(before.len(), 3);
    // Wait until every role has been refreshed once.
    let mut pending: BTreeSet<String> = roles.iter().cloned().collect();
    let step = Duration::from_millis(100);
    let (done, seen) = advance_until(&t, &events, step, Duration::from_secs(8), |e| {
        if let Event::Refreshed { profile, .. } = e {
            pending.remove(profile);
        }
        pending.is_empty()
    });
    assert!(done.is_some(), "not all refreshed: {seen:?}");
    let after_held: Vec<(String, String)> = held
        .iter()
        .map(|(p, c)| (p.to_owned(), c.access_key_id.clone()))
        .collect();
    assert_eq!(before, after_held, "a held snapshot changed");
    let now = session.valid_credentials();
    assert_eq!(now.len(), 3);
    for (p, key) in &before {
        assert_ne!(&now.get(p).unwrap().access_key_id, key, "{p} not replaced");
    }
    // Access key ids are never shared between roles in one set.
    let keys: BTreeSet<_> = now.iter().map(|(_, c)| c.access_key_id.clone()).collect();
    assert_eq!(keys.len(), 3);
}

#[test]
fn a_failed_refresh_keeps_the_old_credentials_then_recovers() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(4))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(1);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .mfa_provider(no_code)
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&refs(&roles)).unwrap();
    let old = session.valid_credentials_for("r1").unwrap();
    // One whole refresh fails with 503s (the client's 3 attempts), the
    // next with AccessDenied; the one after that succeeds.
    emu.inject(Action::AssumeRole, Fault::unavailable(), 3);
    emu.inject(Action::AssumeRole, Fault::access_denied(), 1);

    let mut codes = Vec::new();
    let step = Duration::from_millis(50);
    let (recovered, seen) = advance_until(&t, &events, step, Duration::from_secs(6), |e| match e {
        Event::RefreshFailed { profile, error } => {
            assert_eq!(profile, "r1");
            codes.push(error.code().map(str::to_owned));
            // The old credentials are still what readers get.
            let now = session
                .valid_credentials_for("r1")
                .expect("old ones still valid");
            assert_eq!(now.access_key_id, old.access_key_id);
            assert!(now.is_valid_at(session.clock().now()));
            false
        }
        Event::Refreshed { .. } => true,
        _ => false,
    });
    assert!(recovered.is_some(), "no recovery; events {seen:?}");
    assert_eq!(
        codes,
        [
            Some("ServiceUnavailable".into()),
            Some("AccessDenied".into())
        ]
    );
    let new = session.valid_credentials_for("r1").unwrap();
    assert_ne!(new.access_key_id, old.access_key_id);
    assert!(new.expiration > old.expiration);
    assert!(session.is_refreshing());
}

#[test]
fn one_failing_role_does_not_abort_the_others_unless_strict() {
    init_logger();
    let emu = emulator_with_alice(Duration::from_secs(60))
        .deny_role(role_arn("r2"))
        .start()
        .unwrap();
    let (roles, config) = names(3);
    let files = alice_files("", &config);
    let session = session_builder(&emu.endpoint(), files.clone(), "alice")
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let outcomes = session.generate_credentials(&refs(&roles)).unwrap();
    assert!(outcomes["r1"].is_ok());
    assert!(outcomes["r3"].is_ok());
    let err = outcomes["r2"].as_ref().unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err}");
    assert!(matches!(err, Error::Service(_)));
    let set = session.latest_credentials();
    assert_eq!(set.iter().map(|(p, _)| p).collect::<Vec<_>>(), ["r1", "r3"]);

    let strict = session_builder(&emu.endpoint(), files, "alice")
        .strict(true)
        .build()
        .unwrap();
    strict.generate_session_token(TOKEN_LIFETIME, None).unwrap();
    let err = strict.generate_credentials(&refs(&roles)).unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err}");
    assert!(strict.latest_credentials().is_empty());
    assert!(!strict.is_refreshing());
    // With only good roles, strict succeeds.
    let ok = strict.generate_credentials(&["r1", "r3"]).unwrap();
    assert!(ok.values().all(Result::is_ok));
}

#[test]
fn bad_profiles_fail_before_any_network_call() {
    init_logger();
    let emu = Emulator::builder()
        .user("alice", ALICE_KEY, ALICE_SECRET)
        .user("bob", "AKIABOBEXAMPLE000001", "bob-secret")
        .start()
        .unwrap();
    let config = format!(
        "{}{}[profile bob]\n",
        role_profiles(&["r1"], "alice", ""),
        role_profiles(&["b1"], "bob", "")
    );
    let config = format!("{config}[profile alice]\nmfa_serial = {ALICE_MFA}\n");
    let credentials = format!(
        "[alice]\naws_access_key_id = {ALICE_KEY}\naws_secret_access_key = {ALICE_SECRET}\n\
         [bob]\naws_access_key_id = AKIABOBEXAMPLE000001\naws_secret_access_key = bob-secret\n"
    );
    let files = stslib::profile::ProfileFiles::from_strings(&config, &credentials).unwrap();

    // A role profile cannot be a session's user.
    let err = session_builder(&emu.endpoint(), files.clone(), "r1")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidProfile { key: Some(k), .. } if k == "role_arn"),
        "{err:?}"
    );

    let session = session_builder(&emu.endpoint(), files, "alice")
        .build()
        .unwrap();
    // Without a token, still no network call for bad names.
    let before = emu.request_count(Action::Any);
    let err = session.generate_credentials(&["r1", "nope"]).unwrap_err();
    assert!(
        matches!(err, Error::ProfileNotFound { ref profile, .. } if profile == "nope"),
        "{err:?}"
    );
    let err = session.generate_credentials(&["alice"]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidProfile { profile, key: Some(k), .. } if profile == "alice" && k == "role_arn"),
        "{err:?}"
    );
    let err = session.generate_credentials(&["r1", "b1"]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidProfile { profile, key: Some(k), .. } if profile == "b1" && k == "source_profile"),
        "{err:?}"
    );
    assert_eq!(emu.request_count(Action::Any), before);
    assert!(session.latest_credentials().is_empty());
}

#[test]
fn generate_credentials_before_a_session_token_is_no_credentials() {
    init_logger();
    let emu = emulator_with_alice(Duration::from_secs(60))
        .start()
        .unwrap();
    let (roles, config) = names(2);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .build()
        .unwrap();
    let err = session.generate_credentials(&refs(&roles)).unwrap_err();
    assert!(
        matches!(&err, Error::NoCredentials { profile, .. } if profile == "alice"),
        "{err:?}"
    );
    assert_eq!(emu.request_count(Action::Any), 0);
    assert!(!session.is_refreshing());
}

#[test]
fn the_session_ends_by_itself_when_its_token_ends() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(3))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(2);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .build()
        .unwrap();
    let token = session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&refs(&roles)).unwrap();
    assert!(
        session.is_refreshing(),
        "roles refresh before the token ends"
    );
    let step = Duration::from_millis(100);
    let (ended, seen) = advance_until(&t, &events, step, Duration::from_secs(8), |e| {
        matches!(e, Event::Ended)
    });
    assert!(ended.is_some(), "no Ended; events {seen:?}");
    assert!(
        seen.iter().any(|e| matches!(e, Event::Refreshed { .. })),
        "refreshed while the token lasted: {seen:?}"
    );
    assert!(eventually(Duration::from_secs(1), || !session.is_refreshing()));
    // Ended no later than one step after the token itself.
    assert!(t.now() <= token.expiration + step);
    // Nothing more happens: no requests, no events, however late it gets.
    let count = emu.request_count(Action::Any);
    t.advance_and_settle(Duration::from_secs(3600));
    assert_eq!(emu.request_count(Action::Any), count);
    assert!(events.try_recv().is_err());
    session.halt().unwrap();
}

#[test]
fn the_session_ends_even_when_a_refresh_outlasts_the_token() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(3))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(1);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .build()
        .unwrap();
    let token = session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&refs(&roles)).unwrap();
    // The refresh starts while the token is valid and is answered after it
    // has ended: ExpiredToken. The refresher must then stop (it used to
    // spin with zero sleeps on the role's passed deadline).
    emu.inject(Action::AssumeRole, Fault::Delay(Duration::from_secs(1)), 5);
    // Move the clock until the refresher is stuck in the delayed call...
    let mut in_flight = false;
    while !in_flight && t.now() < token.expiration {
        t.advance(Duration::from_millis(100));
        in_flight = !t.settle(Duration::from_millis(300));
    }
    assert!(in_flight, "no refresh started before the token ended");
    // ... then past the token's end while STS holds the answer back.
    t.advance(Duration::from_secs(3));
    let (ended, seen) = wait_event(&events, Duration::from_secs(5), |e| {
        matches!(e, Event::Ended)
    });
    assert!(ended.is_some(), "no Ended; events {seen:?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::RefreshFailed { error, .. }
            if error.code() == Some("ExpiredToken"))),
        "{seen:?}"
    );
    assert!(eventually(Duration::from_secs(1), || !session.is_refreshing()));
}

fn mfa_emulator(lifetime: Duration, clock: &ManualClock) -> Emulator {
    emulator_with_alice(lifetime)
        .clock(clock.clock())
        .mfa_device("alice", ALICE_MFA, ALICE_CODE)
        .require_mfa(true)
        .start()
        .unwrap()
}

#[test]
fn an_mfa_provider_renews_the_token_and_roles_keep_refreshing() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = mfa_emulator(Duration::from_secs(3), &t);
    let (roles, config) = names(2);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let session = session_builder(
        &emu.endpoint(),
        alice_files(&format!("mfa_serial = {ALICE_MFA}"), &config),
        "alice",
    )
    .clock(t.clock())
    .mfa_provider(move |serial| {
        assert_eq!(serial, ALICE_MFA);
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new(ALICE_CODE))
    })
    .build()
    .unwrap();
    let events = session.subscribe();
    // No token yet: the provider supplies the first code.
    let outcomes = session.generate_credentials(&refs(&roles)).unwrap();
    assert!(outcomes.values().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let first = session.session_token().unwrap();

    // Roles refreshed well past the first token's end.
    let past = first.expiration + time::Duration::milliseconds(500);
    let mut late = BTreeSet::new();
    let step = Duration::from_millis(100);
    let (done, seen) = advance_until(&t, &events, step, Duration::from_secs(10), |e| {
        if let Event::Refreshed { profile, .. } = e {
            if t.now() > past {
                late.insert(profile.clone());
            }
        }
        late.len() == roles.len()
    });
    assert!(done.is_some(), "roles stopped refreshing: {seen:?}");
    assert!(seen.iter().any(|e| matches!(e, Event::TokenRenewed { .. })));
    assert!(!seen.iter().any(|e| matches!(
        e,
        Event::RefreshFailed { .. } | Event::TokenRenewalFailed { .. }
    )));
    assert!(calls.load(Ordering::SeqCst) >= 2);
    assert!(session.session_token().unwrap().expiration > first.expiration);
    // Every token request carried the device.
    let gst: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.action == Some(Action::GetSessionToken))
        .collect();
    assert!(gst.len() >= 2);
    assert!(gst
        .iter()
        .all(|r| r.serial_number.as_deref() == Some(ALICE_MFA)));
}

#[test]
fn a_failed_token_renewal_is_retried() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = mfa_emulator(Duration::from_secs(3), &t);
    let (roles, config) = names(1);
    let session = session_builder(
        &emu.endpoint(),
        alice_files(&format!("mfa_serial = {ALICE_MFA}"), &config),
        "alice",
    )
    .clock(t.clock())
    .mfa_provider(|_| Ok(Secret::new(ALICE_CODE)))
    .build()
    .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&refs(&roles)).unwrap();
    let first = session.session_token().unwrap();
    emu.inject(Action::GetSessionToken, Fault::access_denied(), 1);
    let step = Duration::from_millis(100);
    let (renewed, seen) = advance_until(&t, &events, step, Duration::from_secs(5), |e| {
        matches!(e, Event::TokenRenewed { .. })
    });
    assert!(renewed.is_some(), "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::TokenRenewalFailed { error }
            if error.code() == Some("AccessDenied"))),
        "{seen:?}"
    );
    let token = session.session_token().unwrap();
    assert_ne!(token.access_key_id, first.access_key_id);
    assert!(session.is_refreshing());
}

#[test]
fn a_wrong_mfa_code_is_access_denied() {
    init_logger();
    let emu = mfa_emulator(Duration::from_secs(60), &ManualClock::starting_now());
    let (roles, config) = names(1);
    let files = alice_files(&format!("mfa_serial = {ALICE_MFA}"), &config);
    let session = session_builder(&emu.endpoint(), files.clone(), "alice")
        .build()
        .unwrap();
    let err = session
        .generate_session_token(TOKEN_LIFETIME, Some("000000"))
        .unwrap_err();
    assert!(matches!(err, Error::Service(_)), "{err:?}");
    assert_eq!(err.code(), Some("AccessDenied"));
    assert!(!err.to_string().contains("000000"), "code leaked: {err}");
    assert!(session.session_token().is_none());
    // No code at all, no provider: a clear input error, no call.
    let before = emu.request_count(Action::Any);
    let err = session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "TokenCode",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(emu.request_count(Action::Any), before);

    // A provider with a wrong code fails generate_credentials the same way.
    let session = session_builder(&emu.endpoint(), files, "alice")
        .mfa_provider(|_| Ok(Secret::new("654321")))
        .build()
        .unwrap();
    let err = session.generate_credentials(&refs(&roles)).unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err}");
    assert!(!session.is_refreshing());
}

#[test]
fn mfa_serial_resolution_order() {
    init_logger();
    let emu = emulator_with_alice(Duration::from_secs(60))
        .user("bob", "AKIABOBEXAMPLE000001", "bob-secret")
        .mfa_device("alice", ALICE_MFA, ALICE_CODE)
        .start()
        .unwrap();
    let ep = emu.endpoint();
    let serial = |s: &str| format!("mfa_serial = {s}");
    let other = "arn:aws:iam::123456789012:mfa/other";
    let third = "arn:aws:iam::123456789012:mfa/third";
    // A role of another user names a third device: always ignored.
    let bob_role = role_profiles(&["b1"], "bob", &serial(third))
        + "[profile bob]\naws_access_key_id = AKIABOBEXAMPLE000001\naws_secret_access_key = bob-secret\n";

    // 1. The user profile's own mfa_serial wins over its roles'.
    let config = role_profiles(&["r1"], "alice", &serial(other)) + &bob_role;
    let s = session_builder(&ep, alice_files(&serial(ALICE_MFA), &config), "alice")
        .build()
        .unwrap();
    assert_eq!(s.mfa_serial().unwrap().as_deref(), Some(ALICE_MFA));

    // 2. Else the one its role profiles agree on.
    let config = role_profiles(&["r1", "r2"], "alice", &serial(other))
        + &role_profiles(&["r3"], "alice", "")
        + &bob_role;
    let s = session_builder(&ep, alice_files("", &config), "alice")
        .build()
        .unwrap();
    assert_eq!(s.mfa_serial().unwrap().as_deref(), Some(other));

    // 3. Roles that disagree: a clear error naming both devices.
    let config = role_profiles(&["r1"], "alice", &serial(other))
        + &role_profiles(&["r2"], "alice", &serial(ALICE_MFA));
    let s = session_builder(&ep, alice_files("", &config), "alice")
        .build()
        .unwrap();
    let err = s.mfa_serial().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidProfile { key: Some(k), .. } if k == "mfa_serial"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(other) && text.contains(ALICE_MFA), "{text}");
    assert_eq!(emu.request_count(Action::Any), 0, "1-3 need no network");

    // 4. Else IAM ListMFADevices for the caller's user name, once.
    let (_, config) = names(2);
    let s = session_builder(&ep, alice_files("", &config), "alice")
        .build()
        .unwrap();
    assert_eq!(s.mfa_serial().unwrap().as_deref(), Some(ALICE_MFA));
    assert_eq!(s.mfa_serial().unwrap().as_deref(), Some(ALICE_MFA));
    assert_eq!(emu.request_count(Action::ListMFADevices), 1);
    assert_eq!(emu.request_count(Action::GetCallerIdentity), 1);
    // ... and the token is then obtained with it.
    s.generate_session_token(TOKEN_LIFETIME, Some(ALICE_CODE))
        .unwrap();
    let gst = emu
        .requests()
        .into_iter()
        .find(|r| r.action == Some(Action::GetSessionToken))
        .unwrap();
    assert_eq!(gst.serial_number.as_deref(), Some(ALICE_MFA));

    // 5. A user without a device: none.
    let files = stslib::profile::ProfileFiles::from_strings(
        "[profile bob]\n",
        "[bob]\naws_access_key_id = AKIABOBEXAMPLE000001\naws_secret_access_key = bob-secret\n",
    )
    .unwrap();
    let s = session_builder(&ep, files, "bob").build().unwrap();
    assert_eq!(s.mfa_serial().unwrap(), None);
}

#[test]
fn fifty_roles_fan_out() {
    init_logger();
    let emu = emulator_with_alice(Duration::from_secs(60))
        .start()
        .unwrap();
    let (roles, config) = names(50);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let delay = Duration::from_millis(200);
    emu.inject(Action::AssumeRole, Fault::Delay(delay), 50);
    let t = Instant::now();
    let outcomes = session.generate_credentials(&refs(&roles)).unwrap();
    let took = t.elapsed();
    assert_eq!(outcomes.len(), 50);
    assert!(outcomes.values().all(Result::is_ok), "{outcomes:?}");
    // Serial would be 50 x 200 ms = 10 s; generous bound at half of that.
    assert!(took < delay * 25, "took {took:?}");
    assert_eq!(emu.request_count(Action::AssumeRole), 50);
    assert_eq!(session.valid_credentials().len(), 50);
    // That the fan-out threads are joined is checked in tests/shutdown.rs,
    // where no other test's threads run alongside.
}

#[test]
fn several_sessions_are_independent() {
    init_logger();
    let users = [
        ("alice", ALICE_KEY, ALICE_SECRET),
        ("bob", "AKIABOBEXAMPLE000001", "bob-secret-key"),
        ("carol", "AKIACAROLEXAMPLE0001", "carol-secret-key"),
    ];
    let t = ManualClock::starting_now();
    let mut emu = Emulator::builder()
        .clock(t.clock())
        .credential_lifetime(Duration::from_secs(3));
    let mut config = String::new();
    let mut credentials = String::new();
    for (name, key, secret) in users {
        emu = emu.user(name, key, secret);
        let prefix = &name[..1];
        let roles = [format!("{prefix}1"), format!("{prefix}2")];
        config += &role_profiles(&refs(&roles), name, "");
        credentials +=
            &format!("[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n");
    }
    let emu = emu.start().unwrap();
    let files = stslib::profile::ProfileFiles::from_strings(&config, &credentials).unwrap();
    let sessions: Vec<(Session, _)> = users
        .iter()
        .map(|(name, ..)| {
            let s = session_builder(&emu.endpoint(), files.clone(), name)
                .clock(t.clock())
                .mfa_provider(no_code)
                .build()
                .unwrap();
            s.generate_session_token(TOKEN_LIFETIME, None).unwrap();
            let rx = s.subscribe();
            let p = &name[..1];
            let out = s
                .generate_credentials(&[&format!("{p}1"), &format!("{p}2")])
                .unwrap();
            assert!(out.values().all(Result::is_ok), "{out:?}");
            (s, rx)
        })
        .collect();
    // Each holds only its own roles, with keys of its own.
    let mut all_keys = BTreeSet::new();
    for (s, _) in &sessions {
        let p = &s.profile()[..1];
        let set = s.latest_credentials();
        assert_eq!(
            set.iter().map(|(n, _)| n.to_owned()).collect::<Vec<_>>(),
            [format!("{p}1"), format!("{p}2")]
        );
        all_keys.extend(set.iter().map(|(_, c)| c.access_key_id.clone()));
        assert!(s.is_refreshing());
    }
    assert_eq!(all_keys.len(), 6);

    // Halting the first leaves the others refreshing.
    let (first, first_rx) = &sessions[0];
    first.halt().unwrap();
    let (halted, _) = wait_event(first_rx, Duration::from_secs(1), |e| {
        matches!(e, Event::Halted)
    });
    assert!(halted.is_some());
    for (s, rx) in &sessions[1..] {
        let step = Duration::from_millis(100);
        let (ok, seen) = advance_until(&t, rx, step, Duration::from_secs(5), |e| {
            matches!(e, Event::Refreshed { .. })
        });
        assert!(ok.is_some(), "{} stopped: {seen:?}", s.profile());
        assert!(s.is_refreshing());
    }
    assert!(first_rx.try_recv().is_err(), "halted session still active");
    assert!(!first.is_refreshing());
}

#[test]
fn latest_credentials_keep_expired_ones_valid_credentials_drop_them() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(1))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(2);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    session.generate_credentials(&refs(&roles)).unwrap();
    assert_eq!(session.valid_credentials().len(), 2);
    session.halt().unwrap();
    let latest = session
        .latest_credentials()
        .iter()
        .map(|(_, c)| c.expiration)
        .max()
        .unwrap();
    // Just past the latest expiration: the end counts as expired.
    t.set(latest);

    let all = session.latest_credentials();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, c)| !c.is_valid_at(t.now())));
    assert!(session.valid_credentials().is_empty());
    assert!(session.valid_credentials_for("r1").is_none());
    let now = session.clock().now();
    assert!(session.session_token().is_some_and(|c| !c.is_valid_at(now)));
}

#[test]
fn boto_maps_have_sts_profile_keys() {
    init_logger();
    let emu = emulator_with_alice(Duration::from_secs(60))
        .start()
        .unwrap();
    let (roles, config) = names(2);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    session.generate_credentials(&refs(&roles)).unwrap();
    let set = session.valid_credentials();
    let maps = set.boto_maps_exposing_secrets();
    assert_eq!(
        maps.keys().map(String::as_str).collect::<Vec<_>>(),
        ["sts-r1", "sts-r2"]
    );
    let r1 = &maps["sts-r1"];
    let field = |k: &str| r1.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        field("AccessKeyId"),
        Some(set.get("r1").unwrap().access_key_id.as_str())
    );
    assert_eq!(
        field("SessionToken"),
        Some(set.get("r1").unwrap().session_token.expose())
    );
    // The Debug form of the set never shows the secrets.
    let debug = format!("{set:?}");
    assert!(!debug.contains(set.get("r1").unwrap().secret_access_key.expose()));
}

#[test]
fn a_panicking_mfa_provider_ends_the_refresher_cleanly_with_an_event() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = mfa_emulator(Duration::from_secs(3), &t);
    let (roles, config) = names(1);
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let session = session_builder(
        &emu.endpoint(),
        alice_files(&format!("mfa_serial = {ALICE_MFA}"), &config),
        "alice",
    )
    .clock(t.clock())
    .mfa_provider(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(Secret::new(ALICE_CODE))
        } else {
            panic!("the code window was closed")
        }
    })
    .build()
    .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&refs(&roles)).unwrap();
    let token = session.session_token().unwrap();
    let step = Duration::from_millis(100);
    let (ended, seen) = advance_until(&t, &events, step, Duration::from_secs(10), |e| {
        matches!(e, Event::Ended)
    });
    assert!(ended.is_some(), "the refresher did not end: {seen:?}");
    let failed: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::TokenRenewalFailed { error } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{seen:?}");
    assert!(
        matches!(&*failed[0], Error::MfaProvider { message } if message == "the code window was closed"),
        "{:?}",
        failed[0]
    );
    // Not asked again after the panic; the role was kept fresh while the
    // token lasted, and the thread ended no later than the token.
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert!(
        seen.iter().any(|e| matches!(e, Event::Refreshed { .. })),
        "{seen:?}"
    );
    assert!(t.now() <= token.expiration + step);
    assert!(eventually(Duration::from_secs(1), || !session.is_refreshing()));
    session.halt().expect("a clean end, not a thread panic");

    // On the caller's thread too: an error, not a panic.
    let err = session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap_err();
    assert!(matches!(err, Error::MfaProvider { .. }), "{err:?}");
}

#[test]
fn event_streams_end_when_the_session_halts() {
    init_logger();
    let t = ManualClock::starting_now();
    let emu = emulator_with_alice(Duration::from_secs(60))
        .clock(t.clock())
        .start()
        .unwrap();
    let (roles, config) = names(1);
    let session = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .clock(t.clock())
        .mfa_provider(no_code)
        .build()
        .unwrap();
    session
        .generate_session_token(TOKEN_LIFETIME, None)
        .unwrap();
    let events = session.subscribe();
    session.generate_credentials(&refs(&roles)).unwrap();
    assert!(session.is_refreshing());
    session.halt().unwrap();
    // Halted, then the end of the stream: an iterator stops by itself.
    let seen: Vec<Event> = events.iter().collect();
    assert!(matches!(seen.as_slice(), [Event::Halted]), "{seen:?}");
    // A subscriber joining after the halt gets an ended stream, not a hang.
    let late = session.subscribe();
    assert!(matches!(
        late.recv_timeout(Duration::from_secs(5)),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    ));
    // Dropping a session ends its streams too.
    let other = session_builder(&emu.endpoint(), alice_files("", &config), "alice")
        .build()
        .unwrap();
    let events = other.subscribe();
    drop(other);
    assert_eq!(events.iter().count(), 0);
}
