//! `Session::halt()` of idle refreshing sessions, against joining a bare
//! thread of the same shape: named, blocked in `select_biased!` on a
//! control channel and a 60 s `crossbeam_channel::at` deadline, woken by
//! dropping the sender.
//!
//! 1. One session at a time (the refresher idle in its select), halted.
//! 2. 100 sessions alive at once, each halted in turn (per-halt times).
//!
//! Rounds alternate with the baseline. Target: p99 <= 1 ms for both.

#[path = "common/mod.rs"]
mod common;

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{select_biased, Sender};
use stslib::{RefreshPolicy, Session};

use common::{dist, fmt_ns, pick, time_once, Stats};

/// Time for a new thread to reach its select before we halt it.
const SETTLE: Duration = Duration::from_millis(20);

fn main() {
    common::header(
        "halt_latency",
        "halt() of idle refreshing sessions vs joining a bare thread blocked on a crossbeam select",
    );
    let emu = common::emulator(None);
    let roles = common::role_names(1);
    let new_session = || {
        let s = common::session(&emu, 1, RefreshPolicy::default());
        common::assume(&s, &roles);
        assert!(s.is_refreshing(), "a refresher thread runs");
        s
    };

    // 1. One at a time.
    let (mut one, mut one_base) = (Vec::new(), Vec::new());
    for i in 0..pick(100, 6) {
        let s = new_session();
        let bare = Bare::spawn();
        thread::sleep(SETTLE);
        // Alternate who goes first: the first halt after the sleep pays
        // for waking an idle CPU.
        if i % 2 == 0 {
            one.push(time_once(|| s.halt().expect("halt")).0);
            one_base.push(time_once(|| bare.halt()).0);
        } else {
            one_base.push(time_once(|| bare.halt()).0);
            one.push(time_once(|| s.halt().expect("halt")).0);
        }
        drop(s);
    }

    // 2. A hundred at a time.
    let n = pick(100, 20);
    let (mut many, mut many_base) = (Vec::new(), Vec::new());
    for round in 0..pick(4, 1) {
        for which in [round % 2, 1 - round % 2] {
            if which == 0 {
                let sessions: Vec<Session> = (0..n).map(|_| new_session()).collect();
                thread::sleep(SETTLE);
                for s in &sessions {
                    many.push(time_once(|| s.halt().expect("halt")).0);
                }
            } else {
                let bares: Vec<Bare> = (0..n).map(|_| Bare::spawn()).collect();
                thread::sleep(SETTLE);
                for b in bares {
                    many_base.push(time_once(|| b.halt()).0);
                }
            }
        }
    }
    emu.stop();

    let (one, one_base) = (Stats::new(one), Stats::new(one_base));
    let (many, many_base) = (Stats::new(many), Stats::new(many_base));
    dist("1 session: halt()", &one);
    dist("1 bare thread: signal+join (floor)", &one_base);
    dist(&format!("{n} sessions: halt() each"), &many);
    dist(
        &format!("{n} bare threads: signal+join each (floor)"),
        &many_base,
    );
    common::context(
        "a halt is: signal the channel, the thread wakes from its futex, sends Event::Halted \
         to subscribers (none here), exits; join returns",
    );
    common::target(
        "1 session p99 <= 1 ms",
        one.p99() <= 1e6,
        &format!(
            "{} ({:.2}x floor p99)",
            fmt_ns(one.p99()),
            one.p99() / one_base.p99()
        ),
    );
    let ratio = many.p99() / many_base.p99();
    common::target(
        &format!("{n} sessions p99 <= 1 ms"),
        many.p99() <= 1e6,
        &format!("{} ({ratio:.2}x floor p99)", fmt_ns(many.p99())),
    );
    common::summary("halt_latency", many.p99(), ratio, "bare thread join p99");
}

/// The baseline: a thread of the refresher's shape, idle in its select.
struct Bare {
    control: Sender<()>,
    handle: JoinHandle<()>,
}

impl Bare {
    fn spawn() -> Bare {
        let (control, rx) = crossbeam_channel::bounded(1);
        let handle = thread::Builder::new()
            .name("bench-bare".into())
            .spawn(move || loop {
                select_biased! {
                    recv(rx) -> _ => return,
                    recv(crossbeam_channel::at(Instant::now() + Duration::from_secs(60))) -> _ => {}
                }
            })
            .expect("spawn");
        Bare { control, handle }
    }

    fn halt(self) {
        let _ = self.control.try_send(());
        drop(self.control);
        self.handle.join().expect("join");
    }
}
