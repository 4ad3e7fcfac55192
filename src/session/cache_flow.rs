//! How a session gets its session token and role credentials when a disk
//! cache is shared with other processes:
//!
//! - look in the cache first, without the lock;
//! - ask for the MFA code (which may prompt a person) *before* taking the
//!   lock, never while holding it;
//! - take the lock with a bounded wait, look again (another process may
//!   have done the work meanwhile), and only then call STS and store;
//! - a cached token STS rejects is removed (if the entry still holds it)
//!   and, with a code source at hand, replaced in the same call.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::cache::CacheLock;
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
        let _guard = self.cache_lock();
        if recheck {
            let window = |t: &Credentials| self.shared.policy.window(own_lifetime(t));
            if let Some(token) = self.cached_token(serial, lifetime, window) {
                log::info!(
                    "another process stored a session token meanwhile; the MFA code was not used"
                );
                return Ok(token);
            }
        }
        let token = self.shared.get_session_token(secs, serial, code)?;
        self.shared.store_token(serial, &token);
        self.shared.adopt_token(lifetime, &token);
        lock(&self.token_state).origin = Some(TokenOrigin::Sts);
        log::info!(
            "session token for `{}` obtained, expires {}",
            self.shared.profile,
            token.expiration_iso()
        );
        Ok(token)
    }

    /// AssumeRole for the specs whose outcome is still `None`, under the
    /// cache's lock, after looking in the cache once more: N processes
    /// started together make one AssumeRole per role. Stores what it gets.
    pub(super) fn fetch_missing(
        &self,
        specs: &[RoleSpec],
        outcomes: &mut [Option<Result<Credentials>>],
        token: &Credentials,
    ) {
        let _guard = self.cache_lock();
        let mut missing = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            match self.shared.cached_role(spec) {
                Some(c) => outcomes[i] = Some(Ok(c)),
                None => missing.push(i),
            }
        }
        let todo: Vec<RoleSpec> = missing.iter().map(|&i| specs[i].clone()).collect();
        let fetched = refresher::assume_all(&self.shared, token, &todo);
        for (&i, (_, r)) in missing.iter().zip(fetched) {
            if let Ok(c) = &r {
                self.shared.store_role(&specs[i], c);
            }
            outcomes[i] = Some(r);
        }
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
