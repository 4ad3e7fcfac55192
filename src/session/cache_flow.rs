//! How a session gets its session token and role credentials when a disk
//! cache is shared with other processes:
//!
//! - look in the cache first, without the lock;
//! - ask for the MFA code (which may prompt a person) *before* taking the
//!   lock, never while holding it;
//! - take the lock with a bounded wait, look again (another process may
//!   have done the work meanwhile) and, when still missing, record the
//!   fetch as this process's (`pending-<entry>`), then let go of the lock;
//! - call STS without the lock and store; a process that finds another's
//!   record waits (bounded) for the entry instead of calling STS too;
//! - a cached token STS rejects is removed (if the entry still holds it)
//!   and, with a code source at hand, replaced in the same call.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::cache::{CacheLock, Holder};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::refresher;
use crate::secret::Secret;
use crate::slot::RoleSpec;

use super::{lock, Session};

/// Where the session's current session token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOrigin {
    /// Reused from the disk cache.
    Cache,
    /// Obtained from STS (GetSessionToken) by this session.
    Sts,
}

/// Why a session needed a new session token (see
/// [`Session::token_miss`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenMiss {
    /// No session token was cached for this user and MFA device.
    NotCached,
    /// The cached one ended (or would end too soon) at this time, by STS's
    /// clock.
    Expired {
        /// Its expiration.
        at: OffsetDateTime,
    },
    /// STS rejected the cached one with this error code
    /// (`ExpiredToken`, `InvalidClientTokenId`); it was removed from the
    /// cache.
    Rejected {
        /// The AWS error code.
        code: String,
    },
    /// A new one was asked for explicitly (a code was given, or a renewal).
    Renewal,
}

/// What the cache flow remembers for the caller.
#[derive(Debug, Default)]
pub(super) struct TokenState {
    pub(super) origin: Option<TokenOrigin>,
    pub(super) miss: Option<TokenMiss>,
}

/// The AWS error codes that mean "this session token is no good".
const REJECTED_TOKEN_CODES: &[&str] = &["ExpiredToken", "InvalidClientTokenId"];

impl Session {
    /// Where the current session token came from; `None` before one is held.
    pub fn token_origin(&self) -> Option<TokenOrigin> {
        lock(&self.token_state).origin
    }

    /// Why the last new session token was needed: nothing cached, the cached
    /// one had ended, STS rejected it, or a renewal was asked for. `None`
    /// when none was needed yet.
    pub fn token_miss(&self) -> Option<TokenMiss> {
        lock(&self.token_state).miss.clone()
    }

    /// A new session token, even if a valid one is held or cached: with
    /// `mfa_code`, else a code from the MFA provider. Stored in the cache
    /// (replacing any), as [`generate_session_token`](Self::generate_session_token).
    pub fn renew_session_token(
        &self,
        lifetime: Duration,
        mfa_code: Option<&str>,
    ) -> Result<Credentials> {
        let secs = token_seconds(lifetime)?;
        let serial = self.mfa_serial()?;
        lock(&self.token_state).miss = Some(TokenMiss::Renewal);
        let code = mfa_code.map(Secret::new);
        self.new_token(lifetime, secs, serial.as_deref(), code, false)
    }

    /// The cached token for this user and `serial` when it has more than
    /// `margin` left (by the local clock corrected with the offset stored
    /// with it); made the session's token. On a miss, remembers why.
    pub(super) fn cached_token(
        &self,
        serial: Option<&str>,
        lifetime: Duration,
        margin: impl Fn(&Credentials) -> Duration,
    ) -> Option<Credentials> {
        let cache = self.shared.cache.as_ref()?;
        let Some(hit) = cache.token_entry(self.shared.cache_user(), serial) else {
            self.note_miss(TokenMiss::NotCached);
            return None;
        };
        let token = hit.credentials;
        let now = self.shared.clock.local() + hit.clock_offset;
        let left = token.expiration - now;
        let needed = margin(&token);
        if !left.is_positive() || left.unsigned_abs() <= needed {
            log::debug!(
                "cached session token for `{}` ends {} ({needed:?} needed)",
                self.shared.profile,
                token.expiration_iso()
            );
            self.note_miss(TokenMiss::Expired {
                at: token.expiration,
            });
            return None;
        }
        self.shared.clock.seed_skew(hit.clock_offset);
        log::info!(
            "session token for `{}` reused from the cache, expires {}",
            self.shared.profile,
            token.expiration_iso()
        );
        self.shared.adopt_token(lifetime, &token);
        lock(&self.token_state).origin = Some(TokenOrigin::Cache);
        Some(token)
    }

    /// Remembers why a new token is needed, unless a rejection (the more
    /// useful news) is already noted.
    fn note_miss(&self, miss: TokenMiss) {
        let mut state = lock(&self.token_state);
        if !matches!(state.miss, Some(TokenMiss::Rejected { .. })) {
            state.miss = Some(miss);
        }
    }

    /// Takes the cache's lock with a bounded wait; `None` (with a warning
    /// naming the holder) when there is no cache or it cannot be had.
    pub(super) fn cache_lock(&self) -> Option<CacheLock> {
        let cache = self.shared.cache.as_ref()?;
        match cache.lock_bounded() {
            Ok(guard) => Some(guard),
            Err(e) => {
                log::warn!("cache: going on without the lock: {e}");
                None
            }
        }
    }

    /// GetSessionToken: the code (from `code`, else the provider) is had
    /// first, outside the lock; then, under the lock, the cache is checked
    /// again when `recheck` (another process may have just stored one), and
    /// only then STS is called and the token stored.
    pub(super) fn new_token(
        &self,
        lifetime: Duration,
        secs: u32,
        serial: Option<&str>,
        code: Option<Secret>,
        recheck: bool,
    ) -> Result<Credentials> {
        let code = match (serial, code) {
            (None, _) => None,
            (Some(_), Some(code)) => Some(code),
            (Some(serial), None) => match &self.shared.mfa_provider {
                Some(provider) => Some(provider.code(serial)?),
                None => {
                    return Err(Error::invalid_input(
                        "TokenCode",
                        format!("an MFA code is needed for device `{serial}`"),
                    ))
                }
            },
        };
        // Whose turn: another process may be getting this very token (then
        // wait for it to land in the cache) or may have stored one already.
        let path = self
            .shared
            .cache
            .as_ref()
            .map(|c| c.token_path(self.shared.cache_user(), serial));
        let mut claimed = false;
        if let (Some(path), true) = (&path, recheck) {
            let window = |t: &Credentials| self.shared.policy.window(own_lifetime(t));
            let mut found = None;
            let paths = std::slice::from_ref(path);
            let mut waited = Waiting::new(self.shared.cache.as_ref());
            loop {
                let turns = self.take_turns(paths, &[0], &mut |_| {
                    found = self.cached_token(serial, lifetime, window);
                    found.is_some()
                });
                if let Some(token) = found.take() {
                    log::info!(
                        "another process stored a session token meanwhile; the MFA code was not used"
                    );
                    return Ok(token);
                }
                if !turns.mine.is_empty() {
                    claimed = !turns.claimed.is_empty();
                    break;
                }
                if !waited.pause("the session token", &turns.others) {
                    break;
                }
            }
        }
        let result = self.shared.get_session_token(secs, serial, code);
        if let (Some(cache), Some(path), true) = (&self.shared.cache, &path, claimed) {
            if let Ok(token) = &result {
                self.shared.store_token(serial, token);
            }
            cache.unclaim(path);
        } else if let Ok(token) = &result {
            self.shared.store_token(serial, token);
        }
        let token = result?;
        self.shared.adopt_token(lifetime, &token);
        lock(&self.token_state).origin = Some(TokenOrigin::Sts);
        log::info!(
            "session token for `{}` obtained, expires {}",
            self.shared.profile,
            token.expiration_iso()
        );
        Ok(token)
    }

    /// AssumeRole for the specs whose outcome is still `None`, once among
    /// processes: under the lock (held only for that), each role is looked
    /// up in the cache again, and the ones no other process is fetching are
    /// claimed; those are fetched (without the lock) and stored, then the
    /// ones others fetch are waited for, with a bound. N processes started
    /// together make one AssumeRole per role.
    pub(super) fn fetch_missing(
        &self,
        specs: &[RoleSpec],
        outcomes: &mut [Option<Result<Credentials>>],
        token: &Credentials,
    ) {
        let paths: Vec<std::path::PathBuf> = match &self.shared.cache {
            Some(cache) => specs
                .iter()
                .map(|s| cache.role_path(self.shared.cache_user(), &s.profile, &s.role_arn))
                .collect(),
            None => Vec::new(),
        };
        let mut todo: Vec<usize> = (0..specs.len())
            .filter(|&i| outcomes[i].is_none())
            .collect();
        let mut waited = Waiting::new(self.shared.cache.as_ref());
        while !todo.is_empty() {
            let turns = if paths.is_empty() {
                Turns {
                    mine: std::mem::take(&mut todo),
                    ..Turns::default()
                }
            } else {
                self.take_turns(
                    &paths,
                    &todo,
                    &mut |i| match self.shared.cached_role(&specs[i]) {
                        Some(c) => {
                            outcomes[i] = Some(Ok(c));
                            true
                        }
                        None => false,
                    },
                )
            };
            let batch: Vec<RoleSpec> = turns.mine.iter().map(|&i| specs[i].clone()).collect();
            let fetched = refresher::assume_all(&self.shared, token, &batch);
            for (&i, (_, r)) in turns.mine.iter().zip(fetched) {
                if let Ok(c) = &r {
                    self.shared.store_role(&specs[i], c);
                }
                outcomes[i] = Some(r);
            }
            if let Some(cache) = &self.shared.cache {
                for &i in &turns.claimed {
                    cache.unclaim(&paths[i]);
                }
            }
            todo = turns.others.iter().map(|(i, _)| *i).collect();
            if !todo.is_empty() && !waited.pause("role credentials", &turns.others) {
                // Waited long enough: fetch them here, unclaimed.
                let batch: Vec<RoleSpec> = todo.iter().map(|&i| specs[i].clone()).collect();
                let fetched = refresher::assume_all(&self.shared, token, &batch);
                for (&i, (_, r)) in todo.iter().zip(fetched) {
                    if let Ok(c) = &r {
                        self.shared.store_role(&specs[i], c);
                    }
                    outcomes[i] = Some(r);
                }
                break;
            }
        }
    }

    /// One round of "whose turn is it": under the cache's lock, held only
    /// for this (no prompt, no network), drops the entries `done` finds
    /// cached now, claims for this process the ones nobody is fetching, and
    /// names who fetches the rest. Without the lock (it cannot be had) every
    /// entry is this process's, unclaimed.
    fn take_turns(
        &self,
        paths: &[std::path::PathBuf],
        todo: &[usize],
        done: &mut dyn FnMut(usize) -> bool,
    ) -> Turns {
        let mut turns = Turns::default();
        let Some(cache) = &self.shared.cache else {
            turns.mine = todo.to_vec();
            return turns;
        };
        let guard = self.cache_lock();
        let now = OffsetDateTime::now_utc();
        for &i in todo {
            if done(i) {
                continue;
            }
            if guard.is_none() {
                turns.mine.push(i);
                continue;
            }
            match cache.fetching(&paths[i], now) {
                Some(holder) => turns.others.push((i, holder)),
                None => {
                    turns.mine.push(i);
                    match cache.claim(&paths[i], now) {
                        Ok(()) => turns.claimed.push(i),
                        Err(e) => log::debug!("cache: cannot record the fetch: {e}"),
                    }
                }
            }
        }
        turns
    }

    /// When STS rejected `token` for some role, the outcomes so rejected
    /// (taken out, leaving `None` to try again with a new token, or to be
    /// put back); the token is dropped from the slot and, if it is the one
    /// stored, from the cache.
    pub(super) fn drop_rejected_token(
        &self,
        token: &Credentials,
        outcomes: &mut [Option<Result<Credentials>>],
    ) -> Vec<(usize, Error)> {
        let mut rejected = Vec::new();
        for (i, o) in outcomes.iter_mut().enumerate() {
            let is_rejection = matches!(o, Some(Err(e))
                if e.code().is_some_and(|c| REJECTED_TOKEN_CODES.contains(&c)));
            if is_rejection {
                if let Some(Err(e)) = o.take() {
                    rejected.push((i, e));
                }
            }
        }
        let Some(code) = rejected
            .first()
            .and_then(|(_, e)| e.code())
            .map(str::to_owned)
        else {
            return rejected;
        };
        log::warn!(
            "STS rejected the session token of `{}` ({code}); dropping it",
            self.shared.profile
        );
        self.shared.slot.update(|snap| {
            crate::slot::Snapshot::new(None, snap.token_lifetime, snap.roles.clone())
        });
        if let Some(cache) = &self.shared.cache {
            let serial = lock(&self.mfa_serial).clone().flatten();
            let _guard = self.cache_lock();
            let user = self.shared.cache_user();
            let stored = cache.token_entry(user, serial.as_deref());
            if stored.is_some_and(|s| s.credentials.access_key_id == token.access_key_id) {
                match cache.remove_token(user, serial.as_deref()) {
                    Ok(()) => log::info!("cache: removed the rejected session token"),
                    Err(e) => log::warn!("cache: cannot remove the rejected session token: {e}"),
                }
            }
        }
        lock(&self.token_state).miss = Some(TokenMiss::Rejected { code });
        rejected
    }

    /// A valid session token for AssumeRole with more than `margin` left:
    /// the one held; else a cached one; else, with an MFA provider, a new
    /// one.
    pub(super) fn token_for_roles(&self, margin: Duration) -> Result<Arc<Credentials>> {
        if let Some(t) = self.shared.valid_token() {
            return Ok(t);
        }
        // Without a cache or a provider there is nothing to try: no network
        // call (not even the MFA device lookup).
        if self.shared.cache.is_some() || self.shared.mfa_provider.is_some() {
            let lifetime = self.token_lifetime();
            let serial = self.mfa_serial()?;
            // Enough for the role it must mint: more than the role's refresh
            // window left, or, for a short token, more than its own (a
            // 15-minute token serves right after it was made).
            let policy = &self.shared.policy;
            let enough = |t: &Credentials| margin.min(policy.window(own_lifetime(t)));
            if let Some(t) = self.cached_token(serial.as_deref(), lifetime, enough) {
                return Ok(Arc::new(t));
            }
            if self.shared.mfa_provider.is_some() {
                let secs = token_seconds(lifetime)?;
                return self
                    .new_token(lifetime, secs, serial.as_deref(), None, true)
                    .map(Arc::new);
            }
        }
        let why = match self.token_miss() {
            Some(TokenMiss::Rejected { code }) => {
                format!("STS rejected the session token ({code})")
            }
            Some(TokenMiss::Expired { at }) => format!(
                "the cached session token ended at {}",
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            _ => "no valid session token".to_owned(),
        };
        Err(Error::NoCredentials {
            profile: self.shared.profile.clone(),
            message: format!("{why}; call generate_session_token first"),
        })
    }
}

/// `lifetime` as STS's `DurationSeconds`: whole seconds, 15 min to 36 h.
pub(super) fn token_seconds(lifetime: Duration) -> Result<u32> {
    let range = crate::limits::SESSION_TOKEN_SECONDS;
    u32::try_from(lifetime.as_secs())
        .ok()
        .filter(|s| range.contains(s) && lifetime.subsec_nanos() == 0)
        .ok_or_else(|| {
            Error::invalid_input(
                "DurationSeconds",
                format!(
                    "session token lifetime must be whole seconds from {} to {}, got {lifetime:?}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// The lifetime a token was issued with.
pub(super) fn own_lifetime(t: &Credentials) -> Duration {
    (t.expiration - t.start_time)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

/// The outcome of [`Session::take_turns`].
#[derive(Default)]
struct Turns {
    /// Entries this process fetches now.
    mine: Vec<usize>,
    /// Those of `mine` it recorded as in flight (to unrecord after).
    claimed: Vec<usize>,
    /// Entries another process is fetching, and who.
    others: Vec<(usize, Holder)>,
}

/// A bounded wait for other processes' fetches.
struct Waiting {
    deadline: Option<std::time::Instant>,
    pause: Duration,
}

impl Waiting {
    fn new(cache: Option<&crate::cache::Cache>) -> Self {
        Waiting {
            deadline: cache.map(|c| std::time::Instant::now() + c.wait_limit()),
            pause: Duration::from_millis(20),
        }
    }

    /// Sleeps a little before the next look; false (with a warning naming
    /// who fetches `what`, and since when) once the wait is over.
    fn pause(&mut self, what: &str, others: &[(usize, Holder)]) -> bool {
        let now = std::time::Instant::now();
        match self.deadline {
            Some(deadline) if now < deadline => {
                std::thread::sleep(self.pause.min(deadline - now));
                self.pause = (self.pause * 2).min(Duration::from_millis(250));
                true
            }
            _ => {
                if let Some((_, h)) = others.first() {
                    log::warn!(
                        "cache: {what} still being fetched by {}; going on without waiting",
                        crate::cache::describe_holder_now(h)
                    );
                }
                false
            }
        }
    }
}
