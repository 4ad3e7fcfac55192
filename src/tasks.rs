//! Background tasks: small recurring jobs that other parts of the crate (a
//! kmsauth generator keeping its token fresh) hand to a session, to run on
//! its one refresher thread beside the role refreshes. No thread of their
//! own, and no clock of their own: due times are on the session's clock.
//!
//! The list lives beside the credential slot in the state the session
//! shares with its refresher, so a task outlives the thread that happens to
//! run it (`generate_credentials` replaces the thread; the next one picks
//! the tasks up). A task is taken out of the list while it runs and put
//! back with its next due time, so two refresher threads that overlap for a
//! moment never run the same task at once. A task whose owner is gone is
//! dropped without being run.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};
use time::OffsetDateTime;

/// A job run on the refresher thread.
pub(crate) trait Task: Send {
    /// Does what is due at `now` (the session's clock) and says when to run
    /// again (the session's clock too), or `None` when the task is done and
    /// should be dropped. `cancel` is the refresher's control channel: pass
    /// it to network calls, so a halt ends their retry backoff early. The
    /// run blocks the refresher (and a halt) for as long as it takes, so it
    /// must be bounded: one network call with timeouts, no waiting on
    /// anything else.
    fn run(&mut self, now: OffsetDateTime, cancel: &Receiver<()>) -> Option<OffsetDateTime>;

    /// True once whoever registered the task is gone: it is dropped without
    /// another run.
    fn is_orphaned(&self) -> bool;

    /// True when its owner wants it run at once, whatever its due time
    /// (say, its plan was made on a clock that has since been set back).
    /// The owner then wakes the refresher.
    fn is_due_now(&self) -> bool {
        false
    }
}

/// The session's tasks and the channel that wakes its refresher when they
/// change.
pub(crate) struct Tasks {
    list: Mutex<Vec<Entry>>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

struct Entry {
    /// `None`: at once.
    due: Option<OffsetDateTime>,
    task: Box<dyn Task>,
}

impl Default for Tasks {
    fn default() -> Self {
        // One pending wake-up is enough: the refresher looks at the whole
        // list when it wakes.
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Tasks {
            list: Mutex::new(Vec::new()),
            wake_tx,
            wake_rx,
        }
    }
}

impl fmt::Debug for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tasks")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `task`, due at once, and wakes the refresher. Returns whether
    /// the refresher `runner` (read under the list's lock, see
    /// [`plan`](Self::plan)) will see it: false when it has already decided
    /// to end, and a new one must be started.
    pub(crate) fn add(&self, task: Box<dyn Task>, runner: Option<&AtomicBool>) -> bool {
        let mut list = self.lock();
        list.push(Entry { due: None, task });
        let seen = runner.is_some_and(|ending| !ending.load(Ordering::SeqCst));
        drop(list);
        self.wake();
        seen
    }

    /// Wakes the refresher so it looks at the list again (a task added, or
    /// its owner gone).
    pub(crate) fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// A sender that [wakes](Self::wake) the refresher, for an owner to
    /// hold and use when it goes away.
    pub(crate) fn waker(&self) -> Sender<()> {
        self.wake_tx.clone()
    }

    /// Fires when the list changed; the refresher selects on it.
    pub(crate) fn receiver(&self) -> &Receiver<()> {
        &self.wake_rx
    }

    /// True when no live task is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().iter().all(|e| e.task.is_orphaned())
    }

    /// Takes the tasks due at `now` out of the list (dropping orphaned
    /// ones), most overdue first; each must be [put back](Self::put_back)
    /// or dropped.
    pub(crate) fn take_due(&self, now: OffsetDateTime) -> Vec<Box<dyn Task>> {
        let mut list = self.lock();
        list.retain(|e| !e.task.is_orphaned());
        for e in list.iter_mut() {
            if e.task.is_due_now() {
                e.due = None;
            }
        }
        list.sort_by_key(|e| e.due);
        let n = list
            .iter()
            .take_while(|e| e.due.is_none_or(|d| d <= now))
            .count();
        list.drain(..n).map(|e| e.task).collect()
    }

    /// Returns a task taken by [`take_due`](Self::take_due), due at `due`
    /// (`None`: at once).
    pub(crate) fn put_back(&self, task: Box<dyn Task>, due: Option<OffsetDateTime>) {
        self.lock().push(Entry { due, task });
    }

    /// When the refresher should wake next: the earlier of `other` (its own
    /// next deadline) and the earliest task. When there is neither, `ending`
    /// is set under the list's lock and `None` returned: the refresher
    /// ends, and [`add`](Self::add) sees that it must start a new one.
    pub(crate) fn plan(
        &self,
        other: Option<OffsetDateTime>,
        ending: &AtomicBool,
    ) -> Option<OffsetDateTime> {
        let mut list = self.lock();
        list.retain(|e| !e.task.is_orphaned());
        let tasks = list
            .iter()
            .map(|e| match e.due {
                Some(due) if !e.task.is_due_now() => due,
                _ => OffsetDateTime::UNIX_EPOCH,
            })
            .min();
        let next = other.into_iter().chain(tasks).min();
        if next.is_none() {
            ending.store(true, Ordering::SeqCst);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 12:00 UTC);

    fn secs(s: i64) -> time::Duration {
        time::Duration::seconds(s)
    }

    /// Runs `every` apart; orphaned once `owner` is dropped.
    struct Every {
        every: time::Duration,
        runs: Arc<AtomicUsize>,
        owner: std::sync::Weak<()>,
    }

    impl Task for Every {
        fn run(&mut self, now: OffsetDateTime, _: &Receiver<()>) -> Option<OffsetDateTime> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            Some(now + self.every)
        }
        fn is_orphaned(&self) -> bool {
            self.owner.strong_count() == 0
        }
    }

    fn every(s: i64, owner: &Arc<()>) -> (Box<dyn Task>, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let task = Every {
            every: secs(s),
            runs: runs.clone(),
            owner: Arc::downgrade(owner),
        };
        (Box::new(task), runs)
    }

    #[test]
    fn a_new_task_is_due_at_once_and_wakes_the_refresher() {
        let tasks = Tasks::default();
        let owner = Arc::new(());
        let live = AtomicBool::new(false);
        let (task, runs) = every(10, &owner);
        assert!(tasks.add(task, Some(&live)), "a live runner sees it");
        assert!(tasks.receiver().try_recv().is_ok());
        assert_eq!(tasks.plan(None, &live), Some(OffsetDateTime::UNIX_EPOCH));
        let (_tx, never) = crossbeam_channel::unbounded::<()>();
        for mut t in tasks.take_due(T0) {
            let due = t.run(T0, &never);
            tasks.put_back(t, due);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(tasks.take_due(T0 + secs(9)).is_empty());
        assert_eq!(tasks.plan(Some(T0 + secs(30)), &live), Some(T0 + secs(10)));
        assert_eq!(tasks.plan(Some(T0 + secs(5)), &live), Some(T0 + secs(5)));
        assert_eq!(tasks.take_due(T0 + secs(10)).len(), 1);
        assert!(!live.load(Ordering::SeqCst));
    }

    #[test]
    fn orphans_are_dropped_unrun_and_an_empty_plan_ends_the_runner() {
        let tasks = Tasks::default();
        let owner = Arc::new(());
        let ending = AtomicBool::new(false);
        let (task, runs) = every(10, &owner);
        tasks.add(task, Some(&ending));
        assert!(!tasks.is_empty());
        drop(owner);
        assert!(tasks.is_empty());
        assert!(tasks.take_due(T0).is_empty());
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        assert_eq!(tasks.plan(Some(T0), &ending), Some(T0));
        assert!(!ending.load(Ordering::SeqCst));
        assert_eq!(tasks.plan(None, &ending), None);
        assert!(ending.load(Ordering::SeqCst));
        // A runner that has decided to end does not see a new task.
        let owner = Arc::new(());
        assert!(!tasks.add(every(1, &owner).0, Some(&ending)));
        assert!(!tasks.add(every(1, &owner).0, None));
    }
}
