//! The time seam: where a session, its STS client, its refresher and the
//! validity checks read "now", and how the refresher waits for a deadline.
//!
//! A [`Clock`] is the system clock (the default), the system clock shifted
//! by a fixed offset, or a [`ManualClock`] that only moves when told to. Each
//! clock also carries the correction STS taught the client (server time
//! minus local time, learnt from a clock-skew rejection); clones share it, so
//! the client, the refresher, the readers and the cache all compare STS's
//! expirations against the same corrected time.
//!
//! ```
//! use std::time::Duration;
//! use stslib::clock::ManualClock;
//! use time::macros::datetime;
//!
//! let manual = ManualClock::new(datetime!(2026-01-01 12:00 UTC));
//! let clock = manual.clock();
//! manual.advance(Duration::from_secs(90));
//! assert_eq!(clock.now(), datetime!(2026-01-01 12:01:30 UTC));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use time::OffsetDateTime;

/// Where time comes from. Cheap to clone; clones share the learnt skew.
#[derive(Clone)]
pub struct Clock {
    source: Source,
    /// Server time minus local time, in nanoseconds (fits ±292 years).
    skew_ns: Arc<AtomicI64>,
    /// The last [`hold_steady`](Self::hold_steady) reading: monotonic time
    /// and local time (ns since the epoch).
    steady: Arc<Mutex<Option<(Instant, i128)>>>,
}

#[derive(Clone)]
enum Source {
    System,
    Offset(i128),
    Manual(Arc<Manual>),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::System => "system".to_owned(),
            Source::Offset(ns) => format!("system{:+} ms", ns / 1_000_000),
            Source::Manual(_) => "manual".to_owned(),
        };
        f.debug_struct("Clock")
            .field("source", &source)
            .field(
                "skew_ms",
                &(self.skew_ns.load(Ordering::Relaxed) / 1_000_000),
            )
            .finish()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::from_source(Source::System)
    }

    /// The system clock shifted by `offset` (positive: ahead).
    pub fn offset(offset: time::Duration) -> Clock {
        Clock::from_source(Source::Offset(offset.whole_nanoseconds()))
    }

    fn from_source(source: Source) -> Clock {
        Clock {
            source,
            skew_ns: Arc::new(AtomicI64::new(0)),
            steady: Arc::new(Mutex::new(None)),
        }
    }

    /// Now, corrected by what STS taught the client (see
    /// [`skew`](Self::skew)): what expirations are compared against.
    pub fn now(&self) -> OffsetDateTime {
        self.local() + self.skew()
    }

    /// The correction learnt from STS: server time minus local time. Zero
    /// until STS rejects a request for its time.
    pub fn skew(&self) -> time::Duration {
        time::Duration::nanoseconds(self.skew_ns.load(Ordering::Relaxed))
    }

    /// Now by the source alone, uncorrected.
    pub(crate) fn local(&self) -> OffsetDateTime {
        match &self.source {
            Source::System => OffsetDateTime::now_utc(),
            Source::Offset(ns) => OffsetDateTime::now_utc() + time::Duration::nanoseconds_i128(*ns),
            Source::Manual(m) => m.now(),
        }
    }

    /// True while [`now`](Self::now) is before `t`: the read path's one
    /// clock read. The common case (the system clock, no skew learnt) is
    /// one `SystemTime::now()` and one compare, inlined.
    #[inline]
    pub(crate) fn is_before(&self, t: SystemTime) -> bool {
        if matches!(self.source, Source::System) && self.skew_ns.load(Ordering::Relaxed) == 0 {
            return SystemTime::now() < t;
        }
        self.is_before_slow(t)
    }

    #[inline(never)]
    fn is_before_slow(&self, t: SystemTime) -> bool {
        self.now_nanos() < OffsetDateTime::from(t).unix_timestamp_nanos()
    }

    /// [`now`](Self::now) as nanoseconds since the Unix epoch (no calendar
    /// arithmetic).
    pub(crate) fn now_nanos(&self) -> i128 {
        self.local_nanos() + i128::from(self.skew_ns.load(Ordering::Relaxed))
    }

    /// Starts from a correction learnt earlier (by another process, kept
    /// in the disk cache), unless one was learnt here already: saves the one
    /// request STS would reject for its signing time.
    pub(crate) fn seed_skew(&self, skew: time::Duration) {
        let ns = skew
            .whole_nanoseconds()
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        if ns != 0 {
            let _ = self
                .skew_ns
                .compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Keeps the corrected time from going back when the system clock is
    /// set back (by hand, or a time service stepping it): STS's time did
    /// not go back, so the step is added to the correction, and deadlines
    /// and validity stay judged by server time. Without it, a clock set
    /// back an hour would keep role credentials "valid", and unrefreshed,
    /// for an hour after AWS stopped taking them. A step forward is left
    /// alone: it cannot be told from a resume after suspend (monotonic time
    /// stands still in suspend), and a later clock only refreshes sooner.
    ///
    /// Compares the local clock with monotonic time since the previous
    /// call; the refresher calls it on every pass (at least once a minute).
    /// Returns the step when one was taken in. A manual clock is left to
    /// its test.
    pub(crate) fn hold_steady(&self) -> Option<Duration> {
        if matches!(self.source, Source::Manual(_)) {
            return None;
        }
        let (mono, local) = (Instant::now(), self.local_nanos());
        let mut anchor = self.steady.lock().unwrap_or_else(|p| p.into_inner());
        let back = anchor.and_then(|(m0, l0)| set_back_by(mono.duration_since(m0), local - l0));
        *anchor = Some((mono, local));
        drop(anchor);
        let back = back?;
        let step = i64::try_from(back.as_nanos()).unwrap_or(i64::MAX);
        let _ = self
            .skew_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s.saturating_add(step))
            });
        Some(back)
    }

    fn local_nanos(&self) -> i128 {
        match &self.source {
            Source::System => system_nanos(),
            Source::Offset(ns) => system_nanos() + ns,
            Source::Manual(m) => m.now().unix_timestamp_nanos(),
        }
    }

    /// Records the correction learnt from STS.
    pub(crate) fn set_skew(&self, skew: time::Duration) {
        let ns = skew
            .whole_nanoseconds()
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        self.skew_ns.store(ns, Ordering::Relaxed);
    }

    /// A channel that fires once `wait` has passed on this clock. For the
    /// system clock a timer; a manual clock has none (see
    /// [`wakeups`](Self::wakeups)).
    pub(crate) fn timer(&self, wait: Duration) -> Receiver<Instant> {
        match &self.source {
            Source::Manual(_) => crossbeam_channel::never(),
            _ => match Instant::now().checked_add(wait) {
                Some(at) => crossbeam_channel::at(at),
                None => crossbeam_channel::never(),
            },
        }
    }

    /// Registers a waiter: its channel gets a message whenever the clock is
    /// moved by hand (never, for the system clock). A waiter selects on it
    /// beside its [`timer`](Self::timer) and looks at the time again when
    /// it fires.
    pub(crate) fn wakeups(&self) -> Wakeups {
        match &self.source {
            Source::Manual(m) => m.register(),
            _ => Wakeups {
                rx: crossbeam_channel::never(),
                manual: None,
            },
        }
    }
}

/// A waiter's registration with its clock (see [`Clock::wakeups`]).
pub(crate) struct Wakeups {
    rx: Receiver<()>,
    /// For a manual clock: the clock and this waiter's index in it.
    manual: Option<(Arc<Manual>, usize)>,
}

impl Wakeups {
    /// Fires when the clock was moved by hand.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    /// How many times the clock has been moved; read it *before* reading
    /// the time, and pass it to [`idle`](Self::idle) before waiting.
    pub(crate) fn generation(&self) -> u64 {
        self.manual.as_ref().map_or(0, |(m, _)| m.lock().generation)
    }

    /// Says the waiter has acted on the time as of `generation` and is
    /// about to wait: [`ManualClock::settle`] waits for this.
    pub(crate) fn idle(&self, generation: u64) {
        if let Some((m, i)) = &self.manual {
            m.lock().waiters[*i].idle = generation;
            m.changed.notify_all();
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        self.idle(u64::MAX);
    }
}

/// Steps back smaller than this are left alone (a time service slews or
/// steps by fractions of a second; timer and scheduling noise is far less).
const SET_BACK_TOLERANCE: Duration = Duration::from_secs(2);

/// How far the local clock was set back while `elapsed` passed on the
/// monotonic clock and it moved `wall_ns`: `None` below
/// [`SET_BACK_TOLERANCE`], and whenever it moved as much or more (a step
/// forward, a suspend).
fn set_back_by(elapsed: Duration, wall_ns: i128) -> Option<Duration> {
    let lag = i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX) - wall_ns;
    if lag <= i128::try_from(SET_BACK_TOLERANCE.as_nanos()).unwrap_or(i128::MAX) {
        return None;
    }
    Some(Duration::from_nanos(u64::try_from(lag).unwrap_or(u64::MAX)))
}

fn system_nanos() -> i128 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// A clock that moves only when told to, for tests: every waiter on a
/// session using it (the refresher) wakes up and looks at the time whenever
/// it is moved, so a test drives hours of refreshes without sleeping.
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Manual>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

struct Manual {
    state: Mutex<ManualState>,
    /// Signalled when a waiter goes idle or away.
    changed: Condvar,
}

struct ManualState {
    now: OffsetDateTime,
    /// How many times the clock was moved.
    generation: u64,
    waiters: Vec<Waiter>,
}

struct Waiter {
    wake: Sender<()>,
    /// The generation the waiter last acted on; `u64::MAX` once it is gone.
    idle: u64,
}

impl Manual {
    fn lock(&self) -> MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> OffsetDateTime {
        self.lock().now
    }

    fn register(self: &Arc<Self>) -> Wakeups {
        // One pending wake-up is enough: the waiter reads the time anew.
        let (wake, rx) = crossbeam_channel::bounded(1);
        let mut state = self.lock();
        let waiter = Waiter {
            wake,
            // Busy until it first says otherwise.
            idle: 0,
        };
        let i = match state.waiters.iter().position(|w| w.idle == u64::MAX) {
            Some(i) => {
                state.waiters[i] = waiter;
                i
            }
            None => {
                state.waiters.push(waiter);
                state.waiters.len() - 1
            }
        };
        Wakeups {
            rx,
            manual: Some((self.clone(), i)),
        }
    }

    fn moved(&self, f: impl FnOnce(&mut OffsetDateTime)) {
        let mut state = self.lock();
        f(&mut state.now);
        state.generation += 1;
        for w in state.waiters.iter().filter(|w| w.idle != u64::MAX) {
            let _ = w.wake.try_send(());
        }
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> ManualClock {
        ManualClock {
            state: Arc::new(Manual {
                state: Mutex::new(ManualState {
                    now: start,
                    generation: 0,
                    waiters: Vec::new(),
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// A clock standing at the system clock's now.
    pub fn starting_now() -> ManualClock {
        ManualClock::new(OffsetDateTime::now_utc())
    }

    /// The [`Clock`] to hand to a session, a client or the emulator; it
    /// reads this manual clock. Each call makes a clock with its own learnt
    /// skew.
    pub fn clock(&self) -> Clock {
        Clock::from_source(Source::Manual(self.state.clone()))
    }

    /// Where the clock stands.
    pub fn now(&self) -> OffsetDateTime {
        self.state.now()
    }

    /// Moves the clock forward by `by` and wakes every waiter (a session's
    /// refresher). See [`settle`](Self::settle).
    pub fn advance(&self, by: Duration) {
        self.state.moved(|now| *now += by);
    }

    /// Sets the clock to `to` (backwards too) and wakes every waiter.
    pub fn set(&self, to: OffsetDateTime) {
        self.state.moved(|now| *now = to);
    }

    /// Waits until every waiter has acted on the clock's latest time (its
    /// network calls included) and waits again, or `timeout` of real time
    /// passes; true in the first case. After `advance` then `settle`, the
    /// events a refresher sends for that time have all been sent.
    pub fn settle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut state = self.state.lock();
        loop {
            let generation = state.generation;
            if state.waiters.iter().all(|w| w.idle >= generation) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .state
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// [`advance`](Self::advance), then [`settle`](Self::settle) within 10 s
    /// of real time; panics if the waiters do not settle (a test helper).
    pub fn advance_and_settle(&self, by: Duration) {
        self.advance(by);
        assert!(
            self.settle(Duration::from_secs(10)),
            "the session did not settle within 10 s after the clock moved"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_wakes_its_waiters() {
        let manual = ManualClock::new(datetime!(2026-01-01 12:00 UTC));
        let clock = manual.clock();
        let waiter = clock.wakeups();
        let wake = waiter.receiver().clone();
        assert!(wake.try_recv().is_err());
        assert!(
            clock.timer(Duration::ZERO).try_recv().is_err(),
            "no real timer"
        );
        manual.advance(Duration::from_secs(3600));
        manual.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), datetime!(2026-01-01 13:00:01 UTC));
        assert!(wake.try_recv().is_ok());
        assert!(wake.try_recv().is_err(), "wake-ups coalesce");
        // A busy waiter holds `settle` up until it says it is idle.
        assert!(!manual.settle(Duration::from_millis(1)));
        waiter.idle(waiter.generation());
        assert!(manual.settle(Duration::ZERO));
        manual.set(datetime!(2026-01-01 11:00 UTC));
        drop(waiter);
        assert!(
            manual.settle(Duration::ZERO),
            "a waiter gone counts as idle"
        );
        assert_eq!(
            clock.now_nanos(),
            datetime!(2026-01-01 11:00 UTC).unix_timestamp_nanos()
        );
    }

    #[test]
    fn the_learnt_skew_is_shared_by_clones_and_corrects_now() {
        let manual = ManualClock::new(datetime!(2026-01-01 12:00 UTC));
        let clock = manual.clock();
        let clone = clock.clone();
        clone.set_skew(time::Duration::hours(-2));
        assert_eq!(clock.now(), datetime!(2026-01-01 10:00 UTC));
        assert_eq!(clock.local(), datetime!(2026-01-01 12:00 UTC));
        assert_eq!(
            clock.now_nanos(),
            datetime!(2026-01-01 10:00 UTC).unix_timestamp_nanos()
        );
        // Another clock of the same manual source learns on its own.
        assert_eq!(manual.clock().skew(), time::Duration::ZERO);
    }

    #[test]
    fn a_clock_set_back_is_measured_against_monotonic_time() {
        let s = Duration::from_secs;
        let ns = |d: Duration| d.as_nanos() as i128;
        // Steady: wall time moved as monotonic time did (give or take).
        assert_eq!(set_back_by(s(60), ns(s(60))), None);
        assert_eq!(set_back_by(s(60), ns(s(59))), None);
        // Forward or suspended: wall time moved more.
        assert_eq!(set_back_by(s(60), ns(s(3600))), None);
        // Set back an hour during a minute's wait: 60 s passed, the wall
        // clock moved 60 s - 1 h.
        assert_eq!(set_back_by(s(60), ns(s(60)) - ns(s(3600))), Some(s(3600)));
        // Set back 5 s with no time passing.
        assert_eq!(set_back_by(Duration::ZERO, -ns(s(5))), Some(s(5)));
    }

    #[test]
    fn hold_steady_takes_a_set_back_into_the_correction() {
        let clock = Clock::system();
        clock.set_skew(time::Duration::seconds(-30));
        // The first call only takes a reading; steady time after it.
        assert_eq!(clock.hold_steady(), None);
        assert_eq!(clock.hold_steady(), None);
        // Pretend the previous reading was taken when the local clock
        // said an hour later than it does now (it was set back since).
        {
            let mut anchor = clock.steady.lock().unwrap();
            let (m0, l0) = anchor.unwrap();
            *anchor = Some((m0, l0 + 3_600_000_000_000));
        }
        let before = clock.now();
        let back = clock.hold_steady().unwrap();
        assert!(back > Duration::from_secs(3599), "{back:?}");
        assert!(back < Duration::from_secs(3601), "{back:?}");
        // The step is added to the correction as measured (a little under
        // an hour: the time between the readings counts).
        assert_eq!(
            clock.skew(),
            time::Duration::seconds(-30) + time::Duration::try_from(back).unwrap()
        );
        assert!(clock.now() - before >= time::Duration::seconds(3599));
        // Clones share it; a manual clock is never adjusted.
        assert_eq!(clock.clone().skew(), clock.skew());
        let manual = ManualClock::starting_now();
        assert_eq!(manual.clock().hold_steady(), None);
    }

    #[test]
    fn system_and_offset_clocks_agree_with_the_system() {
        let before = OffsetDateTime::now_utc();
        let ahead = Clock::offset(time::Duration::hours(1)).now();
        let system = Clock::system().now_nanos();
        let after = OffsetDateTime::now_utc();
        assert!(ahead >= before + time::Duration::hours(1));
        assert!(ahead <= after + time::Duration::hours(1));
        assert!(system >= before.unix_timestamp_nanos());
        assert!(system <= after.unix_timestamp_nanos());
        assert!(Clock::system().wakeups().receiver().try_recv().is_err());
        let t = Clock::system().timer(Duration::ZERO);
        assert!(t.recv_timeout(Duration::from_secs(5)).is_ok());
    }
}
