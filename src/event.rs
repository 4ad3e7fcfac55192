//! Session events and their fan-out to subscribers.

use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use time::OffsetDateTime;

use crate::error::Error;

/// Something that happened in a session, delivered to every subscriber of
/// [`Session::subscribe`](crate::Session::subscribe).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A role's credentials were renewed; readers now see the new ones.
    Refreshed {
        /// The role profile.
        profile: String,
        /// When the new credentials expire.
        expiration: OffsetDateTime,
    },
    /// A role's refresh failed; the last valid credentials are kept and the
    /// refresh is retried while they last.
    RefreshFailed {
        /// The role profile.
        profile: String,
        /// What went wrong.
        error: Arc<Error>,
    },
    /// A new session token was obtained (from the MFA code provider).
    TokenRenewed {
        /// When the new session token expires.
        expiration: OffsetDateTime,
    },
    /// Renewing the session token failed; role refreshes go on with the old
    /// token while it lasts.
    TokenRenewalFailed {
        /// What went wrong.
        error: Arc<Error>,
    },
    /// The refresher has nothing left to do (the session token has ended,
    /// or no role needs refreshing before it does, and no kmsauth generator
    /// renews its token on it) and has stopped by itself.
    Ended,
    /// The session was halted (by [`Session::halt`](crate::Session::halt),
    /// drop, or a new round of `generate_credentials`).
    Halted,
}

/// The list of subscribers; events go to each, disconnected ones are pruned.
/// Closing drops every sender (the streams end) and refuses new ones.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    senders: Mutex<Senders>,
}

#[derive(Debug, Default)]
struct Senders {
    list: Vec<Sender<Event>>,
    closed: bool,
}

impl Subscribers {
    /// A new stream; one that has already ended once closed.
    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut senders = self.lock();
        if !senders.closed {
            senders.list.push(tx);
        }
        rx
    }

    pub(crate) fn send(&self, event: Event) {
        let mut senders = self.lock();
        senders.list.retain(|tx| tx.send(event.clone()).is_ok());
    }

    /// Ends every stream; later events and subscriptions go nowhere.
    pub(crate) fn close(&self) {
        let mut senders = self.lock();
        senders.closed = true;
        senders.list.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Senders> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_events_and_dropped_ones_are_pruned() {
        let subs = Subscribers::default();
        let a = subs.subscribe();
        let b = subs.subscribe();
        subs.send(Event::Ended);
        assert!(matches!(a.try_recv(), Ok(Event::Ended)));
        assert!(matches!(b.try_recv(), Ok(Event::Ended)));
        drop(b);
        subs.send(Event::Halted);
        assert_eq!(subs.lock().list.len(), 1);
        assert!(matches!(a.try_recv(), Ok(Event::Halted)));
    }

    #[test]
    fn closing_ends_every_stream_and_later_ones_start_ended() {
        let subs = Subscribers::default();
        let a = subs.subscribe();
        subs.send(Event::Halted);
        subs.close();
        subs.send(Event::Ended);
        assert_eq!(
            a.iter().collect::<Vec<_>>().len(),
            1,
            "Halted, then the end"
        );
        let late = subs.subscribe();
        assert!(matches!(
            late.recv_timeout(std::time::Duration::from_secs(5)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        ));
    }
}
