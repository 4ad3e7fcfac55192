//! The read path: `Session::valid_credentials()` per call, against the
//! floor of this design: an `Arc` clone out of a `RwLock<Arc<T>>` done by
//! hand, plus one `SystemTime::now()` (the validity check every read keeps:
//! a laptop resumed from suspend must not be handed expired credentials).
//!
//! 1. Single-threaded, no writer: batches of calls, alternating stslib and
//!    baseline batches. Targets: <= 1.2x the floor plus a clock read;
//!    <= 50 ns per call.
//! 2. Two reader threads while a writer swaps snapshots as fast as it can.
//!    There is no public "refresh now", so the writer is a tight loop of
//!    `Session::generate_session_token`, which swaps the whole snapshot
//!    through the same publish path as a refresh round (one GetSessionToken
//!    round trip per swap). The baseline writer does a floor GetSessionToken
//!    (`benches/floor`, default ureq agent) to the same emulator, then swaps an `Arc` into its own
//!    `RwLock`: same swap rate, same CPU taken by the emulator. Per-call
//!    time is the median over short batches (a batch that got preempted is
//!    an outlier, not the median). Target <= 200 ns per call.

#[path = "common/mod.rs"]
mod common;
#[path = "floor/mod.rs"]
mod floor;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use stslib::{Credentials, RefreshPolicy};

use common::{dist, fmt_ns, per_call, pick, Stats};

const ROLES: usize = 4;

/// The hand-made floor: a slot holding an `Arc` snapshot.
type Slot = RwLock<Arc<BTreeMap<String, Arc<Credentials>>>>;

fn read_slot(slot: &Slot) -> Arc<BTreeMap<String, Arc<Credentials>>> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn main() {
    common::header(
        "read_path",
        "valid_credentials() per call vs a hand-made RwLock<Arc<T>> clone",
    );
    let emu = common::emulator(None);
    let session = common::session(&emu, ROLES, RefreshPolicy::default());
    common::assume(&session, &common::role_names(ROLES));
    let snapshot: BTreeMap<String, Arc<Credentials>> = session
        .valid_credentials()
        .iter()
        .map(|(p, c)| (p.to_owned(), Arc::new(c.clone())))
        .collect();
    assert_eq!(snapshot.len(), ROLES);
    let slot: Slot = RwLock::new(Arc::new(snapshot.clone()));

    // 1. Single-threaded.
    let batches = pick(400, 40);
    let iters = 20_000;
    let mut lib = Vec::new();
    let mut lib_get = Vec::new();
    let mut base = Vec::new();
    let mut base_clock = Vec::new();
    for _ in 0..pick(20, 2) {
        // Warm-up pass is simply the first of these.
        lib.extend(per_call(batches / 20 + 1, iters, || {
            black_box(session.valid_credentials());
        }));
        base.extend(per_call(batches / 20 + 1, iters, || {
            black_box(read_slot(&slot));
        }));
        base_clock.extend(per_call(batches / 20 + 1, iters, || {
            let snap = read_slot(&slot);
            let now = SystemTime::now();
            black_box((snap, now));
        }));
        lib_get.extend(per_call(batches / 20 + 1, iters, || {
            let set = session.valid_credentials();
            black_box(set.get("r2").map(|c| c.access_key_id.len()));
        }));
    }
    let (lib, base, lib_get) = (Stats::new(lib), Stats::new(base), Stats::new(lib_get));
    let base_clock = Stats::new(base_clock);
    dist("1 thread: valid_credentials()", &lib);
    dist("1 thread: valid_credentials().get(p)", &lib_get);
    dist("1 thread: RwLock<Arc<T>> read+clone (floor)", &base);
    dist("1 thread: floor + one SystemTime::now()", &base_clock);
    let single_ratio = lib.p50() / base.p50();
    common::context(&format!(
        "1 thread: stslib {:.2}x floor, {:.2}x floor + clock read: the difference is the \
         validity check (one SystemTime::now, clock source {})",
        single_ratio,
        lib.p50() / base_clock.p50(),
        clocksource()
    ));

    // 2. Two readers and a writer swapping as fast as round trips allow.
    let phase = Duration::from_millis(pick(1500, 300));
    let mut lib2 = Vec::new();
    let mut base2 = Vec::new();
    let (mut lib_swaps, mut base_swaps) = (0usize, 0usize);
    let (mut lib_time, mut base_time) = (0.0, 0.0);
    for round in 0..pick(4, 1) {
        for which in [round % 2, 1 - round % 2] {
            if which == 0 {
                let (s, n) = contended(
                    phase,
                    || black_box(session.valid_credentials()),
                    || {
                        session
                            .generate_session_token(Duration::from_secs(3600), None)
                            .expect("session token");
                    },
                );
                lib2.extend(s);
                lib_swaps += n;
                lib_time += phase.as_secs_f64();
            } else {
                let agent = floor::Floor::new(&emu.endpoint());
                let user = floor::Keys {
                    access_key_id: common::KEY_ID.into(),
                    secret: common::SECRET.into(),
                    token: None,
                };
                let (s, n) = contended(
                    phase,
                    || black_box(read_slot(&slot)),
                    || {
                        black_box(agent.get_session_token(&user));
                        let fresh = Arc::new(snapshot.clone());
                        *slot.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    },
                );
                base2.extend(s);
                base_swaps += n;
                base_time += phase.as_secs_f64();
            }
        }
    }
    let (lib2, base2) = (Stats::new(lib2), Stats::new(base2));
    dist("2 readers + swapping writer: valid_credentials()", &lib2);
    dist(
        "2 readers + swapping writer: RwLock<Arc<T>> (floor)",
        &base2,
    );
    common::context(&format!(
        "swaps/s: stslib {:.0}, floor {:.0} (writer = one GetSessionToken round trip per swap); \
         {} cpus for 2 readers + writer + emulator",
        lib_swaps as f64 / lib_time,
        base_swaps as f64 / base_time,
        thread::available_parallelism().map_or(0, |n| n.get())
    ));
    let contended_ratio = lib2.p50() / base2.p50();
    drop(session);
    emu.stop();

    let clock_ratio = lib.p50() / base_clock.p50();
    common::target(
        "1 thread <= 1.2x floor + clock read",
        clock_ratio <= 1.2,
        &format!(
            "{clock_ratio:.2}x: {} vs {} p50",
            fmt_ns(lib.p50()),
            fmt_ns(base_clock.p50())
        ),
    );
    common::target(
        "1 thread <= 50 ns/call",
        lib.p50() <= 50.0,
        &format!("{} p50, {single_ratio:.2}x floor", fmt_ns(lib.p50())),
    );
    common::target(
        "2 readers + swaps <= 200 ns/call",
        lib2.p50() <= 200.0,
        &format!(
            "{} p50, {contended_ratio:.2}x floor; p99 {}",
            fmt_ns(lib2.p50()),
            fmt_ns(lib2.p99())
        ),
    );
    common::summary(
        "read_path",
        lib.p50(),
        clock_ratio,
        "RwLock<Arc> clone + clock read",
    );
}

/// Runs two reader threads doing `read` in batches and one writer doing
/// `write` in a loop for `how_long`. Returns per-call nanoseconds of every
/// reader batch and how many writes were done.
fn contended<R>(
    how_long: Duration,
    read: impl Fn() -> R + Sync,
    write: impl Fn() + Sync,
) -> (Vec<f64>, usize) {
    let stop = AtomicBool::new(false);
    let writes = AtomicUsize::new(0);
    let started = Instant::now();
    let samples = thread::scope(|s| {
        let writer = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                write();
                writes.fetch_add(1, Ordering::Relaxed);
            }
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while started.elapsed() < how_long {
                        out.extend(per_call(1, 1000, || {
                            black_box(read());
                        }));
                    }
                    out
                })
            })
            .collect();
        let samples: Vec<f64> = readers
            .into_iter()
            .flat_map(|r| r.join().expect("reader"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
        samples
    });
    (samples, writes.load(Ordering::Relaxed))
}

fn clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}
