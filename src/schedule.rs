//! Refresh scheduling: when to refresh a credential, how long to back off
//! after a failure, how long the refresher may sleep. Pure: no clock reads,
//! no randomness of its own (the caller passes a random `u64`).

use std::time::Duration;
use time::OffsetDateTime;

/// How the refresher decides when to renew role credentials.
///
/// A credential is refreshed when its remaining lifetime enters a window of
/// `fraction` of its whole lifetime, capped at `max_window`: 15 min for
/// 1-hour credentials with the defaults, seconds for an emulator's
/// second-scale ones. A random part of up to `jitter` of the window is added
/// so that many roles issued together do not all refresh at one instant.
///
/// ```
/// use std::time::Duration;
/// use stslib::RefreshPolicy;
/// let p = RefreshPolicy::default()
///     .fraction(0.5)
///     .max_window(Duration::from_secs(60));
/// assert_eq!(p.window(Duration::from_secs(3600)), Duration::from_secs(60));
/// assert_eq!(p.window(Duration::from_secs(10)), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct RefreshPolicy {
    fraction: f64,
    max_window: Duration,
    jitter: f64,
    max_sleep: Duration,
    retry_base: Duration,
    retry_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            fraction: 0.25,
            max_window: Duration::from_secs(15 * 60),
            jitter: 0.1,
            max_sleep: Duration::from_secs(60),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
        }
    }
}

impl RefreshPolicy {
    /// The share of a credential's lifetime, at its end, inside which it is
    /// refreshed; clamped to `0.01..=0.9`. Defaults to `0.25`.
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = if fraction.is_nan() {
            0.25
        } else {
            fraction.clamp(0.01, 0.9)
        };
        self
    }

    /// The largest refresh window, whatever the lifetime. Defaults to 15 min.
    pub fn max_window(mut self, max_window: Duration) -> Self {
        self.max_window = max_window;
        self
    }

    /// The random share of the window taken off the refresh deadline
    /// (refreshing a little earlier, never later); clamped to `0.0..=0.5`.
    /// Defaults to `0.1`.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.1
        } else {
            jitter.clamp(0.0, 0.5)
        };
        self
    }

    /// The longest the refresher sleeps before looking at the wall clock
    /// again (a suspended laptop does not advance monotonic time). Defaults
    /// to 60 s.
    pub fn max_sleep(mut self, max_sleep: Duration) -> Self {
        self.max_sleep = max_sleep.max(Duration::from_millis(1));
        self
    }

    /// The first retry delay after a failed refresh; later ones double, with
    /// full jitter. Defaults to 500 ms.
    pub fn retry_base(mut self, retry_base: Duration) -> Self {
        self.retry_base = retry_base;
        self
    }

    /// The largest retry delay after failed refreshes. Defaults to 60 s.
    pub fn retry_max(mut self, retry_max: Duration) -> Self {
        self.retry_max = retry_max;
        self
    }

    /// The refresh window for a credential of lifetime `lifetime`.
    pub fn window(&self, lifetime: Duration) -> Duration {
        lifetime.mul_f64(self.fraction).min(self.max_window)
    }

    /// When a credential issued at `start` and expiring at `expiration`
    /// should be refreshed. `random` spreads the deadline over the jitter
    /// share of the window (earlier, never later).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stslib::RefreshPolicy;
    /// use time::macros::datetime;
    /// let p = RefreshPolicy::default().jitter(0.0);
    /// let start = datetime!(2026-01-01 12:00 UTC);
    /// let at = p.refresh_at(start, start + Duration::from_secs(3600), 0);
    /// assert_eq!(at, datetime!(2026-01-01 12:45 UTC));
    /// ```
    pub fn refresh_at(
        &self,
        start: OffsetDateTime,
        expiration: OffsetDateTime,
        random: u64,
    ) -> OffsetDateTime {
        let lifetime = duration_between(start, expiration);
        let window = self.window(lifetime);
        let jitter_span = window.mul_f64(self.jitter);
        let jitter = scale(jitter_span, random);
        expiration - window - jitter
    }

    /// The delay before retry number `attempt` (0-based) after a failed
    /// refresh: full jitter over `retry_base * 2^attempt`, capped at
    /// `retry_max`, and never past `until_expiry` (the remaining lifetime of
    /// the credentials still held), so a retry always happens while they are
    /// valid.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stslib::RefreshPolicy;
    /// let p = RefreshPolicy::default();
    /// let d = p.retry_delay(3, Duration::from_secs(3600), u64::MAX);
    /// assert!(d <= Duration::from_secs(4));
    /// assert!(p.retry_delay(30, Duration::from_secs(2), u64::MAX) <= Duration::from_secs(1));
    /// ```
    pub fn retry_delay(&self, attempt: u32, until_expiry: Duration, random: u64) -> Duration {
        let exp = self
            .retry_base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.retry_max);
        // Keep some room before expiry: at most half of what is left.
        let ceiling = exp.min(until_expiry / 2);
        scale(ceiling, random).max(Duration::from_millis(10).min(ceiling))
    }

    /// How long to sleep until `deadline`, capped at the policy's max sleep;
    /// zero when the deadline has passed.
    pub fn sleep_for(&self, now: OffsetDateTime, deadline: OffsetDateTime) -> Duration {
        duration_between(now, deadline).min(self.max_sleep)
    }
}

/// `to - from` as a std `Duration`, zero when negative.
pub(crate) fn duration_between(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    let d = to - from;
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// `span * random / 2^64`: a uniformly spread share of `span`.
fn scale(span: Duration, random: u64) -> Duration {
    let nanos = span.as_nanos();
    let scaled = nanos.saturating_mul(random as u128) >> 64;
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn window_is_proportional_and_capped() {
        let p = RefreshPolicy::default();
        assert_eq!(
            p.window(Duration::from_secs(3600)),
            Duration::from_secs(900)
        );
        assert_eq!(
            p.window(Duration::from_secs(12 * 3600)),
            Duration::from_secs(900)
        );
        assert_eq!(p.window(Duration::from_secs(4)), Duration::from_secs(1));
    }

    #[test]
    fn refresh_deadline_from_real_expiration_with_bounded_jitter() {
        let p = RefreshPolicy::default();
        let start = datetime!(2026-01-01 12:00 UTC);
        let exp = start + Duration::from_secs(3600);
        let latest = p.refresh_at(start, exp, 0);
        let earliest = p.refresh_at(start, exp, u64::MAX);
        assert_eq!(latest, datetime!(2026-01-01 12:45 UTC));
        assert!(earliest < latest);
        // Jitter is at most 10% of the 15-minute window: 90 s.
        assert!(latest - earliest <= time::Duration::seconds(90));
        assert!(earliest > start);
    }

    #[test]
    fn second_scale_credentials_refresh_in_their_last_quarter() {
        let p = RefreshPolicy::default().jitter(0.0);
        let start = datetime!(2026-01-01 12:00 UTC);
        let at = p.refresh_at(start, start + Duration::from_secs(4), 0);
        assert_eq!(at, start + Duration::from_secs(3));
    }

    #[test]
    fn retry_delay_grows_is_capped_and_stays_inside_lifetime() {
        let p = RefreshPolicy::default();
        let max = |attempt| p.retry_delay(attempt, Duration::from_secs(86_400), u64::MAX);
        assert!(max(0) <= Duration::from_millis(500));
        assert!(max(1) <= Duration::from_secs(1));
        assert!(max(1) > max(0));
        assert!(max(40) <= Duration::from_secs(60));
        assert!(p.retry_delay(5, Duration::from_secs(4), u64::MAX) <= Duration::from_secs(2));
        assert_eq!(p.retry_delay(5, Duration::ZERO, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn sleep_is_capped_and_never_negative() {
        let p = RefreshPolicy::default();
        let now = datetime!(2026-01-01 12:00 UTC);
        assert_eq!(
            p.sleep_for(now, now + Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            p.sleep_for(now, now - Duration::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(
            p.sleep_for(now, now + Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn setters_clamp_nonsense() {
        let p = RefreshPolicy::default().fraction(f64::NAN).jitter(7.0);
        assert_eq!(p.fraction, 0.25);
        assert_eq!(p.jitter, 0.5);
    }
}
