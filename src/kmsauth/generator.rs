//! Generating tokens: python-kmsauth's `KMSTokenGenerator.get_token`, with
//! its cache held in memory and, optionally, renewed ahead of time by a
//! task on the session's refresher thread.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use time::OffsetDateTime;

use super::token::{self, UserType, MAX_VERSION, MIN_VERSION};
use super::KeySource;
use crate::credentials::AccessKey;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms, KmsClient};
use crate::schedule::{duration_between, RefreshPolicy};
use crate::secret::Secret;
use crate::session::{Session, TaskHost};
use crate::tasks::Task;

/// The default token lifetime, 10 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How far tokens are back-dated, and how long before `not_after` a cached
/// token stops being reused: python-kmsauth's `TOKEN_SKEW`, 3 minutes.
pub const TOKEN_SKEW: Duration = Duration::from_secs(3 * 60);

/// A generated token and the username to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token {
    /// `from` (v1) or `2/<user_type>/<from>` (v2).
    pub username: String,
    /// The token: standard base64 of the KMS ciphertext. A bearer
    /// credential while valid, so `Debug` redacts it.
    pub token: Secret,
    /// Start of validity: generation time minus 3 minutes (UTC, whole
    /// seconds).
    pub not_before: OffsetDateTime,
    /// End of validity: generation time plus lifetime minus 3 minutes.
    pub not_after: OffsetDateTime,
}

/// Generates kmsauth tokens for one key, sender, receiver and context.
/// Thread-safe; concurrent callers share one KMS call. With
/// [`refresh_in_background`](TokenGeneratorBuilder::refresh_in_background),
/// the session's refresher thread renews the token ahead of time, so
/// [`token`](Self::token) does not wait on KMS.
///
/// ```no_run
/// use stslib::kmsauth::{TokenGenerator, UserType};
/// use stslib::kms::KmsClient;
/// use stslib::Session;
///
/// let session = Session::builder().profile("alice").build()?;
/// session.generate_credentials(&["svc-a-role"])?;
/// let generator = TokenGenerator::builder("alias/authnz-production", "svc-a", "confidant-production")
///     .user_type(UserType::Service)
///     .client(KmsClient::builder().region("us-east-1").build()?)
///     .session_role(&session, "svc-a-role")
///     .build()?;
/// let t = generator.token()?; // cached while python-kmsauth would reuse it
/// println!("{} {}", t.username, t.token.expose());
/// # Ok::<(), stslib::Error>(())
/// ```
pub struct TokenGenerator {
    inner: Arc<Inner>,
    /// With background renewal: wakes the refresher when the generator
    /// goes, so its task (which holds `inner` weakly) is dropped at once.
    /// Declared after `inner`, so it fires once `inner` is released.
    renewal: Option<WakeOnDrop>,
}

/// What the generator and its background renewal task share (the task
/// weakly).
struct Inner {
    kms: Arc<dyn Kms>,
    keys: KeySource,
    key: String,
    lifetime: Duration,
    context: EncryptionContext,
    username: String,
    cache: Option<Cache>,
}

/// The token held for reuse.
#[derive(Default)]
struct Cache {
    /// Locked only to read or swap the token, never across a KMS call.
    token: Mutex<Option<Token>>,
    /// Held across the KMS call that fills the cache, so concurrent callers
    /// (and the background renewal) make one call between them.
    generating: Mutex<()>,
    /// Set when `token()` filled the cache itself: the background renewal
    /// is to plan again from that token, at once (its plan may be far off,
    /// made on a clock that has since been set back).
    replan: AtomicBool,
}

struct WakeOnDrop(Sender<()>);

impl WakeOnDrop {
    /// Wakes the refresher now (it looks at its tasks again).
    fn wake(&self) {
        let _ = self.0.try_send(());
    }
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

impl fmt::Debug for TokenGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TokenGenerator")
            .field("key", &inner.key)
            .field("username", &inner.username)
            .field("context", &inner.context)
            .field("lifetime", &inner.lifetime)
            .field("keys", &inner.keys)
            .field("refresh_in_background", &self.renewal.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenGenerator`].
#[must_use]
pub struct TokenGeneratorBuilder {
    kms: Option<Arc<dyn Kms>>,
    keys: KeySource,
    key: String,
    from: String,
    to: String,
    user_type: UserType,
    version: u32,
    lifetime: Duration,
    extra: EncryptionContext,
    cache: bool,
    /// The session of [`session_role`](Self::session_role), for background
    /// renewal.
    host: Option<TaskHost>,
    background: bool,
}

impl fmt::Debug for TokenGeneratorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGeneratorBuilder")
            .field("key", &self.key)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl TokenGenerator {
    /// A builder for tokens encrypted with KMS key `key` (alias name, alias
    /// ARN, key id or key ARN, sent verbatim), from `from` to `to`.
    pub fn builder(
        key: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
    ) -> TokenGeneratorBuilder {
        TokenGeneratorBuilder {
            kms: None,
            keys: KeySource::Unset,
            key: key.into(),
            from: from.into(),
            to: to.into(),
            user_type: UserType::Service,
            version: MAX_VERSION,
            lifetime: DEFAULT_LIFETIME,
            extra: EncryptionContext::new(),
            cache: true,
            host: None,
            background: false,
        }
    }
}

impl TokenGeneratorBuilder {
    /// Replaces the KMS key. Defaults to the one given to
    /// [`TokenGenerator::builder`].
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// The sender's type. Version 1 tokens are always `service`. Defaults
    /// to `service`.
    pub fn user_type(mut self, user_type: UserType) -> Self {
        self.user_type = user_type;
        self
    }

    /// The token version, 1 or 2. Defaults to 2.
    pub fn token_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// How long a token lives, counted from 3 minutes before it is made;
    /// more than 3 minutes. Defaults to 10 minutes.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds a pair to the encryption context (agreed with the validator).
    /// `to`, `from` and `user_type` cannot be set this way. Defaults to
    /// none.
    pub fn context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Reuse a token while `now <= not_after - 3 min`, as python-kmsauth's
    /// cache file does. Defaults to `true`.
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache = cache;
        self
    }

    /// The KMS client (also the clock tokens are dated by). Defaults to
    /// `KmsClient::builder().build()`.
    pub fn client(mut self, client: KmsClient) -> Self {
        self.kms = Some(Arc::new(client));
        self
    }

    /// Sign Encrypt with these keys. Defaults to unset (one of this and
    /// [`session_role`](Self::session_role) is required).
    pub fn access_key(mut self, keys: AccessKey) -> Self {
        self.keys = KeySource::Static(keys);
        self.host = None;
        self
    }

    /// Sign Encrypt with the credentials `session` holds for the role
    /// profile `profile`, read afresh for each call. Defaults to unset.
    pub fn session_role(mut self, session: &Session, profile: &str) -> Self {
        self.keys = KeySource::role(session, profile);
        self.host = Some(session.task_host());
        self
    }

    /// Keep the cached token fresh on the session's refresher thread (no
    /// thread of its own), so [`token`](TokenGenerator::token) returns it
    /// without waiting on KMS.
    ///
    /// A token is reused until 3 minutes before its `not_after`, as
    /// python-kmsauth does; the refresher replaces it when that reuse span
    /// enters the session's [`RefreshPolicy`] window (with the defaults and
    /// a 10-minute lifetime: about 3 minutes after it was made, a minute
    /// before it would stop being reused), signing with the role's current
    /// credentials. The first token is made as soon as the generator is
    /// built. If KMS fails, the token held stays in use while it is
    /// reusable, the failure is logged once (a `warn`, then `debug` lines
    /// until a renewal succeeds) and retried with the policy's backoff;
    /// `token()` asks KMS itself only when no reusable token is held.
    /// Dropping the generator ends the renewals.
    ///
    /// The renewal is one Encrypt on the refresher thread: while it runs,
    /// role refreshes wait for it, retries included, and so does
    /// [`Session::halt`], for the attempt in flight only (a halt ends the
    /// retry backoff at once). Both are bounded by the KMS client's
    /// timeouts (see [`KmsClientBuilder`](crate::kms::KmsClientBuilder)):
    /// an attempt takes at most `connect_timeout + 8 × timeout`, 85 s with
    /// the defaults, and a server that goes silent fails it after
    /// `timeout`, 10 s. Give the client shorter timeouts to bound it more
    /// tightly.
    ///
    /// Needs [`session_role`](Self::session_role) (with a session that
    /// refreshes: not built with `refresh(false)`), the cache on, and a
    /// lifetime over 6 minutes (shorter tokens are never reused); `build`
    /// says which is missing. Defaults to `false`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use stslib::kmsauth::TokenGenerator;
    /// use stslib::kms::KmsClient;
    /// use stslib::Session;
    ///
    /// let session = Session::builder().profile("alice").build()?;
    /// session.generate_session_token(Duration::from_secs(12 * 3600), Some("123456"))?;
    /// session.generate_credentials(&["svc-a"])?;
    /// let generator = TokenGenerator::builder("alias/authnz-production", "svc-a", "confidant")
    ///     .client(KmsClient::builder().region("us-east-1").build()?)
    ///     .session_role(&session, "svc-a")
    ///     .refresh_in_background(true)
    ///     .build()?;
    /// // Each request: the current token, from memory; KMS is called on the
    /// // session's refresher thread, before this one would need it.
    /// let t = generator.token()?;
    /// # drop(t);
    /// # Ok::<(), stslib::Error>(())
    /// ```
    pub fn refresh_in_background(mut self, refresh: bool) -> Self {
        self.background = refresh;
        self
    }

    #[cfg(test)]
    pub(crate) fn kms(mut self, kms: Arc<dyn Kms>) -> Self {
        self.kms = Some(kms);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<TokenGenerator> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&self.version) {
            return Err(Error::invalid_input(
                "token_version",
                format!("{} is not 1 or 2", self.version),
            ));
        }
        if self.version == 1 && self.user_type != UserType::Service {
            return Err(Error::invalid_input(
                "user_type",
                "version 1 tokens are always `service`; use version 2 for `user`",
            ));
        }
        for (field, value) in [("from", &self.from), ("to", &self.to)] {
            if value.is_empty() || value.contains('/') {
                return Err(Error::invalid_input(
                    field,
                    format!("`{value}` must be a non-empty name without `/`"),
                ));
            }
        }
        if self.key.trim().is_empty() {
            return Err(Error::invalid_input("key", "empty KMS key"));
        }
        if self.lifetime <= TOKEN_SKEW {
            return Err(Error::invalid_input(
                "lifetime",
                "must be more than 3 minutes: tokens are back-dated 3 minutes, \
                 so a shorter one would be born expired",
            ));
        }
        if let Some(k) = ["to", "from", "user_type"]
            .iter()
            .find(|k| self.extra.contains_key(**k))
        {
            return Err(Error::invalid_input(
                "context",
                format!("`{k}` is set by the generator itself"),
            ));
        }
        self.keys.check()?;
        let context = token::context(
            &self.extra,
            self.version,
            &self.to,
            &self.from,
            self.user_type.as_str(),
        );
        let host = if self.background {
            Some(self.background_host()?)
        } else {
            None
        };
        let kms = match self.kms {
            Some(k) => k,
            None => Arc::new(KmsClient::builder().build()?),
        };
        let inner = Arc::new(Inner {
            kms,
            keys: self.keys,
            username: token::format_username(self.version, self.user_type, &self.from),
            key: self.key,
            lifetime: self.lifetime,
            context,
            cache: self.cache.then(Cache::default),
        });
        let renewal = match host {
            None => None,
            Some(host) => {
                let task = Renewal {
                    generator: Arc::downgrade(&inner),
                    policy: host.policy().clone(),
                    random: crate::rand::u64(),
                    failures: 0,
                };
                host.add(Box::new(task), "refresh_in_background")?;
                Some(WakeOnDrop(host.waker()))
            }
        };
        Ok(TokenGenerator { inner, renewal })
    }

    /// The session to renew on, once the settings allow background renewal.
    fn background_host(&self) -> Result<TaskHost> {
        let refuse = |why: &str| Err(Error::invalid_input("refresh_in_background", why));
        let Some(host) = self.host.clone() else {
            return refuse("needs session_role: the renewal runs on that session's refresher");
        };
        if !self.cache {
            return refuse("needs the cache (cache(true)): renewal keeps the cached token fresh");
        }
        if self.lifetime <= 2 * TOKEN_SKEW {
            return refuse(
                "needs a lifetime over 6 minutes: a token is back-dated 3 minutes and reused \
                 only until 3 minutes before it ends, so a shorter one is never reused",
            );
        }
        Ok(host)
    }
}

impl TokenGenerator {
    /// The username to send with the tokens.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The encryption context of the tokens.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.inner.context
    }

    /// A token: the cached one while `now <= not_after - 3 min`, else a new
    /// one from KMS Encrypt (which concurrent callers wait for and share).
    /// With background renewal the cached one is normally fresh, and KMS is
    /// asked here only when none is reusable (renewals failing, or the
    /// first one not made yet).
    pub fn token(&self) -> Result<Token> {
        let inner = &self.inner;
        let Some(cache) = &inner.cache else {
            return inner.generate(None);
        };
        if let Some(t) = cache.reusable(inner.now()) {
            return Ok(t);
        }
        let _one = lock(&cache.generating);
        // Someone may have made one while this caller waited.
        if let Some(t) = cache.reusable(inner.now()) {
            return Ok(t);
        }
        let fresh = inner.generate(None)?;
        cache.store(fresh.clone());
        if let Some(renewal) = &self.renewal {
            cache.replan.store(true, Ordering::SeqCst);
            renewal.wake();
        }
        Ok(fresh)
    }

    /// A new token from KMS, bypassing (and not filling) the cache.
    pub fn generate(&self) -> Result<Token> {
        self.inner.generate(None)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Until when `t` is reused: python-kmsauth's rule, `now <= not_after - 3
/// min`.
fn reuse_end(t: &Token) -> OffsetDateTime {
    t.not_after - TOKEN_SKEW
}

/// When background renewal replaces `t`: where its reuse span (from when it
/// was made, 3 minutes after `not_before`, to [`reuse_end`]) enters the
/// policy's refresh window, jittered by `random`.
fn renew_at(policy: &RefreshPolicy, t: &Token, random: u64) -> OffsetDateTime {
    policy.refresh_at(t.not_before + TOKEN_SKEW, reuse_end(t), random)
}

impl Cache {
    /// The held token, if it may be reused at `now`: python-kmsauth's rule,
    /// and not from the future (made before the clock was set back, a
    /// token every validator on that clock refuses as not yet valid).
    fn reusable(&self, now: OffsetDateTime) -> Option<Token> {
        lock(&self.token)
            .as_ref()
            .filter(|t| t.not_before <= now && now <= reuse_end(t))
            .cloned()
    }

    fn held(&self) -> Option<Token> {
        lock(&self.token).clone()
    }

    fn store(&self, t: Token) {
        *lock(&self.token) = Some(t);
    }
}

/// The background renewal: a task on the session's refresher thread (see
/// [`crate::tasks`]) that holds its generator weakly.
struct Renewal {
    generator: Weak<Inner>,
    policy: RefreshPolicy,
    /// Fixed, so every look at a token finds the same deadline.
    random: u64,
    /// Failed renewals in a row.
    failures: u32,
}

/// How long the renewal waits when a caller of `token()` is making a token
/// at that moment (it then looks again and, normally, finds it fresh).
const BUSY_RETRY: Duration = Duration::from_secs(1);

impl Task for Renewal {
    fn run(&mut self, now: OffsetDateTime, cancel: &Receiver<()>) -> Option<OffsetDateTime> {
        let inner = self.generator.upgrade()?;
        let cache = inner.cache.as_ref()?;
        cache.replan.store(false, Ordering::SeqCst);
        // Tokens are dated by the KMS client's clock, the refresher plans
        // on the session's: convert with their current difference.
        let own_now = inner.now();
        let to_session = |t: OffsetDateTime| t + (now - own_now);
        let fresh = |c: &Cache| {
            c.held()
                .filter(|t| t.not_before <= own_now)
                .map(|t| renew_at(&self.policy, &t, self.random))
                .filter(|at| own_now < *at)
        };
        if let Some(at) = fresh(cache) {
            return Some(to_session(at));
        }
        let _one = match cache.generating.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Some(now + BUSY_RETRY),
        };
        if let Some(at) = fresh(cache) {
            return Some(to_session(at));
        }
        match inner.generate(Some(cancel)) {
            Ok(t) => {
                if self.failures > 0 {
                    log::info!(
                        "kmsauth: token for {} renewed after {} failed attempts",
                        inner.username,
                        self.failures
                    );
                }
                self.failures = 0;
                let at = renew_at(&self.policy, &t, self.random);
                cache.store(t);
                Some(to_session(at))
            }
            Err(e) => {
                let own_now = inner.now();
                let held_for = cache
                    .reusable(own_now)
                    .map(|t| duration_between(own_now, reuse_end(&t)))
                    .filter(|d| !d.is_zero());
                if self.failures == 0 {
                    log::warn!(
                        "kmsauth: background renewal of the token for {} failed; {}; retrying: {e}",
                        inner.username,
                        if held_for.is_some() {
                            "the current token stays in use while it lasts"
                        } else {
                            "no token is held, token() asks KMS itself"
                        }
                    );
                } else {
                    log::debug!(
                        "kmsauth: background renewal for {} failed again (attempt {}): {e}",
                        inner.username,
                        self.failures + 1
                    );
                }
                let wait = self.policy.retry_delay(
                    self.failures,
                    held_for.unwrap_or(Duration::MAX),
                    crate::rand::u64(),
                );
                self.failures = self.failures.saturating_add(1);
                Some(to_session(own_now) + wait)
            }
        }
    }

    fn is_orphaned(&self) -> bool {
        self.generator.strong_count() == 0
    }

    fn is_due_now(&self) -> bool {
        self.generator.upgrade().is_some_and(|inner| {
            inner
                .cache
                .as_ref()
                .is_some_and(|c| c.replan.load(Ordering::SeqCst))
        })
    }
}

impl Inner {
    /// A new token from KMS; `cancel` ends a retry backoff early.
    ///
    /// The window is dated before the call, by the client's clock; the
    /// call can move that clock (a first request refused for its signing
    /// time teaches the client the skew, and it signs again). A token
    /// whose window does not hold now by the corrected clock (ended, or
    /// not yet begun) is made once more with the clock as it now stands.
    fn generate(&self, cancel: Option<&Receiver<()>>) -> Result<Token> {
        let token = self.generate_once(cancel)?;
        let now = self.now();
        if now < token.not_before || now > token.not_after {
            log::debug!(
                "kmsauth: the token for {} was dated by a clock that moved during the call; \
                 making it again",
                self.username
            );
            return self.generate_once(cancel);
        }
        Ok(token)
    }

    fn generate_once(&self, cancel: Option<&Receiver<()>>) -> Result<Token> {
        let now = self.now();
        let skew = time::Duration::try_from(TOKEN_SKEW).unwrap_or(time::Duration::ZERO);
        let lifetime = time::Duration::try_from(self.lifetime).unwrap_or(time::Duration::MAX);
        let nb = token::format_time(now - skew);
        let na = token::format_time(now.saturating_add(lifetime - skew));
        let (Some(not_before), Some(not_after)) = (token::parse_time(&nb), token::parse_time(&na))
        else {
            return Err(Error::invalid_input(
                "lifetime",
                "the validity window does not fit the token time format",
            ));
        };
        let plaintext = token::format_plaintext(&nb, &na);
        let keys = self.keys.keys()?;
        let out = self.kms.encrypt(
            &keys,
            &self.key,
            plaintext.as_bytes(),
            &self.context,
            cancel,
        )?;
        log::debug!(
            "kmsauth: token for {} with {} valid {nb}..{na}",
            self.username,
            self.key
        );
        Ok(Token {
            username: self.username.clone(),
            token: Secret::new(token::encode_token(&out.ciphertext_blob)),
            not_before,
            not_after,
        })
    }

    fn now(&self) -> OffsetDateTime {
        self.kms.now()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fake::{keys, service_error, FakeKms};
    use super::*;

    fn rig() -> (Arc<FakeKms>, TokenGeneratorBuilder) {
        let kms = Arc::new(FakeKms::at(1_796_282_167));
        let b = TokenGenerator::builder("alias/a", "svc-a", "svc-b")
            .kms(kms.clone())
            .access_key(keys());
        (kms, b)
    }

    fn encrypts(kms: &FakeKms) -> usize {
        kms.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("Encrypt"))
            .count()
    }

    #[test]
    fn plaintext_context_and_window_match_python() {
        let (kms, b) = rig();
        let g = b.context("env", "prod").build().unwrap();
        let t = g.token().unwrap();
        assert_eq!(t.username, "2/service/svc-a");
        let blob = aws_smithy_types::base64::decode(t.token.expose()).unwrap();
        let text = String::from_utf8(blob).unwrap();
        // 2026-12-03T07:16:07Z minus 3 min, plus 7 min.
        assert!(
            text.ends_with(r#"|env=prod&from=svc-a&to=svc-b&user_type=service|{"not_before": "20261203T071307Z", "not_after": "20261203T072307Z"}"#),
            "{text}"
        );
        assert_eq!(encrypts(&kms), 1);
        assert!(!format!("{t:?}").contains(t.token.expose()));
    }

    #[test]
    fn v1_has_no_user_type_in_context() {
        let (_, b) = rig();
        let g = b.token_version(1).build().unwrap();
        assert_eq!(g.username(), "svc-a");
        assert_eq!(
            g.encryption_context().keys().collect::<Vec<_>>(),
            ["from", "to"]
        );
    }

    #[test]
    fn cache_reused_until_three_minutes_before_not_after() {
        let (kms, b) = rig();
        let g = b.build().unwrap();
        let first = g.token().unwrap();
        let reuse_until = (first.not_after - TOKEN_SKEW).unix_timestamp();
        kms.now.store(reuse_until, Ordering::SeqCst);
        assert_eq!(g.token().unwrap(), first);
        assert_eq!(encrypts(&kms), 1);
        kms.now.store(reuse_until + 1, Ordering::SeqCst);
        let second = g.token().unwrap();
        assert_ne!(second.not_after, first.not_after);
        assert_eq!(encrypts(&kms), 2);
        // generate() always asks KMS.
        g.generate().unwrap();
        assert_eq!(encrypts(&kms), 3);
    }

    #[test]
    fn no_cache_when_off() {
        let (kms, b) = rig();
        let g = b.cache(false).build().unwrap();
        g.token().unwrap();
        g.token().unwrap();
        assert_eq!(encrypts(&kms), 2);
    }

    #[test]
    fn configuration_errors() {
        let field = |b: TokenGeneratorBuilder| match b.build() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(rig().1.token_version(3)), "token_version");
        assert_eq!(
            field(rig().1.token_version(1).user_type(UserType::User)),
            "user_type"
        );
        assert_eq!(field(rig().1.lifetime(TOKEN_SKEW)), "lifetime");
        assert_eq!(field(rig().1.context("to", "x")), "context");
        assert_eq!(field(rig().1.key(" ")), "key");
        let kms = Arc::new(FakeKms::default());
        let b = TokenGenerator::builder("k", "a/b", "c")
            .kms(kms.clone())
            .access_key(keys());
        assert_eq!(field(b), "from");
        let b = TokenGenerator::builder("k", "a", "c").kms(kms);
        assert_eq!(field(b), "credentials");
    }

    // ---- background renewal ----

    fn mins(n: i64) -> time::Duration {
        time::Duration::minutes(n)
    }

    fn renewal(g: &TokenGenerator) -> Renewal {
        Renewal {
            generator: Arc::downgrade(&g.inner),
            policy: RefreshPolicy::default().jitter(0.0),
            random: 0,
            failures: 0,
        }
    }

    fn token_made_at(at: OffsetDateTime, lifetime: time::Duration) -> Token {
        Token {
            username: "2/service/svc-a".into(),
            token: Secret::new("t"),
            not_before: at - mins(3),
            not_after: at + lifetime - mins(3),
        }
    }

    #[test]
    fn renewal_comes_inside_the_policys_window_of_the_reuse_span() {
        let at = OffsetDateTime::from_unix_timestamp(1_796_282_167).unwrap();
        let exact = RefreshPolicy::default().jitter(0.0);
        // 10 min: reused for 4 min; the default window is a quarter of it.
        let t = token_made_at(at, mins(10));
        assert_eq!(reuse_end(&t), at + mins(4));
        assert_eq!(renew_at(&exact, &t, 0), at + mins(3));
        // Jitter only ever brings it forward (10% of the window).
        let early = renew_at(&RefreshPolicy::default(), &t, u64::MAX);
        assert!(early < at + mins(3) && early >= at + mins(3) - time::Duration::seconds(6));
        // 60 min: reused for 54 min, window 13.5 min.
        let t = token_made_at(at, mins(60));
        assert_eq!(
            renew_at(&exact, &t, 0),
            at + mins(40) + time::Duration::seconds(30)
        );
        // The window is capped (15 min by default) for long tokens.
        let t = token_made_at(at, mins(600));
        assert_eq!(renew_at(&exact, &t, 0), at + mins(579));
    }

    #[test]
    fn renewal_makes_the_token_ahead_of_time_and_token_serves_it() {
        let (kms, b) = rig();
        let g = b.build().unwrap();
        let mut r = renewal(&g);
        let never = crossbeam_channel::never();
        let start = kms.now();
        let at = |secs: i64| {
            kms.now
                .store(start.unix_timestamp() + secs, Ordering::SeqCst);
            kms.now()
        };
        // First run: no token yet, one is made.
        assert_eq!(r.run(start, &never), Some(start + mins(3)));
        assert_eq!(encrypts(&kms), 1);
        let first = g.token().unwrap();
        assert_eq!(encrypts(&kms), 1, "token() served the renewed one");
        // Early: nothing to do.
        assert_eq!(r.run(at(60), &never), Some(start + mins(3)));
        assert_eq!(encrypts(&kms), 1);
        // Due: a new one, before the old one stops being reused.
        let now = at(180);
        assert!(g.token().unwrap() == first);
        assert_eq!(r.run(now, &never), Some(now + mins(3)));
        assert_eq!(encrypts(&kms), 2);
        let second = g.token().unwrap();
        assert_eq!(second.not_after, first.not_after + mins(3));
        assert_eq!(encrypts(&kms), 2);
        // Deadlines are given on the session's clock: here 10 s ahead of
        // the KMS client's.
        let ahead = time::Duration::seconds(10);
        assert_eq!(r.run(now + ahead, &never), Some(now + mins(3) + ahead));
    }

    #[test]
    fn failedrenewals_keep_the_token_while_reusable_and_back_off() {
        let (kms, b) = rig();
        let g = b.build().unwrap();
        let mut r = renewal(&g);
        let never = crossbeam_channel::never();
        let start = kms.now();
        r.run(start, &never).unwrap();
        let first = g.token().unwrap();
        let now = start + mins(3);
        kms.now.store(now.unix_timestamp(), Ordering::SeqCst);
        let fail = || service_error("Encrypt", "DisabledException");
        kms.fail_next.lock().unwrap().extend([fail(), fail()]);
        // Backoff: retry_base 500 ms, doubling.
        let due = r.run(now, &never).unwrap();
        assert!(
            due > now && due <= now + Duration::from_millis(500),
            "{due}"
        );
        assert_eq!(g.token().unwrap(), first, "kept while reusable");
        let due = r.run(now, &never).unwrap();
        assert!(due > now && due <= now + Duration::from_secs(1), "{due}");
        assert_eq!(encrypts(&kms), 3);
        assert_eq!(r.failures, 2);
        // KMS is back: renewed, the count reset.
        assert_eq!(r.run(now, &never), Some(now + mins(3)));
        assert_eq!(r.failures, 0);
        assert_ne!(g.token().unwrap(), first);
        assert_eq!(encrypts(&kms), 4);
        // Failing past the reuse span: token() asks KMS itself.
        let late = now + mins(5);
        kms.now.store(late.unix_timestamp(), Ordering::SeqCst);
        kms.fail_next.lock().unwrap().push(fail());
        let due = r.run(late, &never).unwrap();
        assert!(due > late && due <= late + Duration::from_millis(500));
        let third = g.token().unwrap();
        assert_eq!(encrypts(&kms), 6);
        assert_eq!(third.not_after, late + mins(7));
    }

    #[test]
    fn renewal_yields_to_a_caller_making_a_token_and_ends_with_its_generator() {
        let (kms, b) = rig();
        let g = b.build().unwrap();
        let mut r = renewal(&g);
        let never = crossbeam_channel::never();
        let now = kms.now();
        {
            let _busy = g.inner.cache.as_ref().unwrap().generating.lock().unwrap();
            assert_eq!(r.run(now, &never), Some(now + BUSY_RETRY));
        }
        assert_eq!(encrypts(&kms), 0);
        assert!(!r.is_orphaned());
        drop(g);
        assert!(r.is_orphaned());
        assert_eq!(r.run(now, &never), None);
        assert_eq!(encrypts(&kms), 0);
    }

    #[test]
    fn backgroundrenewal_needs_a_refreshing_session_the_cache_and_a_long_lifetime() {
        let field = |b: TokenGeneratorBuilder| match b.build() {
            Err(Error::InvalidInput { field, message }) => format!("{field}: {message}"),
            other => panic!("{other:?}"),
        };
        let session = |refresh: bool| {
            let files = crate::profile::ProfileFiles::from_strings(
                "[profile alice]\n[profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = alice\n",
                "[alice]\naws_access_key_id = AKIAFAKE\naws_secret_access_key = s\n",
            )
            .unwrap();
            Session::builder()
                .files(files)
                .profile("alice")
                .env(crate::Env::from_pairs(Vec::<(String, String)>::new()))
                .refresh(refresh)
                .build()
                .unwrap()
        };
        let on = |b: TokenGeneratorBuilder| b.refresh_in_background(true);
        assert!(field(on(rig().1)).contains("needs session_role"));
        let s = session(true);
        let with = |b: TokenGeneratorBuilder| on(b.session_role(&s, "r"));
        assert!(field(with(rig().1).cache(false)).contains("needs the cache"));
        assert!(field(with(rig().1).lifetime(Duration::from_secs(360))).contains("over 6 minutes"));
        // An access key set after the session replaces it, renewal included.
        assert!(field(with(rig().1).access_key(keys())).contains("needs session_role"));
        let off = session(false);
        let b = on(rig().1.session_role(&off, "r"));
        assert!(field(b).contains("refresh(false)"));
        let gone = session(true);
        let b = on(rig().1.session_role(&gone, "r"));
        drop(gone);
        assert!(field(b).contains("dropped"));
        // Accepted: the task is registered and a refresher started for it.
        let g = with(rig().1)
            .lifetime(Duration::from_secs(361))
            .build()
            .unwrap();
        assert!(s.is_refreshing());
        assert!(format!("{g:?}").contains("refresh_in_background: true"));
        s.halt().unwrap();
        assert!(!s.is_refreshing());
    }

    #[test]
    fn encrypt_errors_keep_their_type() {
        let (kms, b) = rig();
        let g = b.key("alias/nope").build().unwrap();
        let e = g.token().unwrap_err();
        assert_eq!(e.code(), Some("NotFoundException"));
        assert_eq!(encrypts(&kms), 1);
    }
}
