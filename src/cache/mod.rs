//! The disk cache: session tokens and role credentials kept between
//! processes, so one MFA prompt can serve many programs for hours.
//!
//! # Layout
//!
//! One directory (default `~/.stslib/cache/`, or `STSLIB_CACHE_DIR`, or a
//! path given to [`Cache::new`]; always absolute), created with mode `0700`,
//! holding:
//!
//! - `token-<profile>-<hash>`: one session token per source profile, user
//!   access key and MFA serial;
//! - `role-<profile>-<hash>`: one set of role credentials per source
//!   profile, user access key, role profile and role ARN;
//! - `lock`: the file [`Cache::lock`] locks to serialise processes; while
//!   locked it names the holder's process id and since when.
//!
//! `<profile>` is a sanitised, shortened profile name for people reading the
//! directory; `<hash>` is a stable 64-bit FNV-1a hash of every key field, so
//! no MFA serial, access key id or role ARN appears in a file name (and
//! never a secret).
//!
//! # Trust
//!
//! The directory must belong to the current user and not be writable by
//! group or others; each file read must be a regular file of the current
//! user, not writable by others, and is opened without following a link and
//! without blocking (a FIFO never hangs a run). Anything else is refused
//! with a warning naming the path and the reason: a load misses, a store or
//! lock fails. A file of ours readable by others is tightened to `0600`.
//!
//! # Format
//!
//! Each entry is a small UTF-8 text file of `key=value` lines, version
//! first and a checksum last:
//!
//! ```text
//! version=2
//! kind=token
//! source_profile=alice
//! user_key=3f0c5a1e9b2d4c77
//! mfa_serial=arn:aws:iam::123456789012:mfa/alice
//! access_key_id=ASIA...
//! secret_access_key=...
//! session_token=...
//! start_time=2026-01-01T10:00:00Z
//! expiration=2026-01-01T22:00:00Z
//! created=2026-01-01T10:00:01Z
//! clock_offset_ms=0
//! checksum=0123456789abcdef
//! ```
//!
//! `user_key` is a hash of the IAM user's long-term access key id.
//! `clock_offset_ms` is STS's clock minus the writer's, as the writer learnt
//! it: validity is judged on the local clock corrected by it. A role entry
//! has `kind=role` and `role_profile` and `role_arn` in place of
//! `mfa_serial` (an empty `mfa_serial` means none). Loading ignores, with a
//! `debug` log that never contains a secret, any file that is missing, of
//! another version, truncated or corrupt (the checksum), for another key, or
//! expiring too soon: reads never fail, they miss.
//!
//! # Writes and locking
//!
//! A store writes a temporary file (mode `0600`) in the same directory,
//! syncs it, and renames it over the entry, so readers see the old entry or
//! the new one, never a partial file; the temporary file is removed on any
//! error, and temporary files of writers that died are swept by later
//! stores.
//!
//! Processes that must not all call STS at once (a session does this for
//! its token and its roles) take the lock only briefly, to look again and,
//! when the entry is still missing, write an in-flight record
//! `pending-<entry name>` (process id and since when). The STS call is made
//! without the lock; other processes that find the record wait (with a
//! bound) for the entry to appear instead of calling STS too. A record of a
//! process that is gone, or older than the wait limit, is ignored. No lock
//! is ever held while a person is asked for an MFA code or while the
//! network is waited on.

mod entry;
mod store;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant, SystemTime};

use time::OffsetDateTime;

use crate::credentials::Credentials;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::{expand_tilde, home_dir, Platform};

use self::entry::{accept, decode, encode, file_name, Key};
use self::store::io_error;
pub(crate) use self::store::Holder;

/// The environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "STSLIB_CACHE_DIR";

/// How long a session waits for the lock by default.
const DEFAULT_LOCK_WAIT: StdDuration = StdDuration::from_secs(40);

/// Longest pause between attempts while waiting for the lock.
const LOCK_POLL_MAX: StdDuration = StdDuration::from_millis(50);

/// The IAM user an entry belongs to: the profile holding its long-term
/// keys, and their access key id (kept only as a hash, so two users behind
/// one profile name never share an entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheUser<'a> {
    /// The IAM-user profile.
    pub profile: &'a str,
    /// The user's long-term access key id.
    pub access_key_id: &'a str,
}

impl<'a> CacheUser<'a> {
    /// The user of `profile` with long-term access key `access_key_id`.
    pub fn new(profile: &'a str, access_key_id: &'a str) -> Self {
        CacheUser {
            profile,
            access_key_id,
        }
    }
}

/// What a load found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cached {
    /// The credentials.
    pub credentials: Credentials,
    /// STS's clock minus the local clock, as the process that stored them
    /// had learnt it (zero when it had learnt nothing).
    pub clock_offset: time::Duration,
    /// When they were stored, by the writer's local clock.
    pub created: OffsetDateTime,
}

/// One file of the cache, as [`Cache::entries`] lists it. Never holds a
/// secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The file.
    pub path: PathBuf,
    /// `"token"` or `"role"`.
    pub kind: &'static str,
    /// The source (IAM-user) profile; empty when the file could not be read.
    pub source_profile: String,
    /// The role profile, for role entries.
    pub role_profile: Option<String>,
    /// The role ARN, for role entries.
    pub role_arn: Option<String>,
    /// When the credentials end, by STS's clock.
    pub expiration: Option<OffsetDateTime>,
    /// The writer's learnt clock offset (see [`Cached::clock_offset`]).
    pub clock_offset: time::Duration,
    /// Why the file is not usable (unreadable, refused, corrupt), if so.
    pub problem: Option<String>,
}

impl CacheEntry {
    /// Time left at local time `now`, corrected by the entry's clock offset;
    /// `None` when unknown, zero when ended.
    pub fn remaining_at(&self, now: OffsetDateTime) -> Option<StdDuration> {
        let left = self.expiration? - (now + self.clock_offset);
        Some(left.try_into().unwrap_or(StdDuration::ZERO))
    }
}

/// The on-disk cache of session tokens and role credentials.
///
/// Cheap to create and clone; it touches the disk only when used. Loads
/// never fail (anything wrong is a miss, logged at `debug`, or at `warn`
/// when it is a trust problem); stores and locks fail with [`Error::Io`]
/// naming the path.
///
/// The directory (created `0700`) holds one file per session token
/// (`token-<profile>-<hash>`, keyed by source profile, user access key and
/// MFA serial), one per role (`role-<profile>-<hash>`, keyed by source
/// profile, user access key, role profile and role ARN), each `0600`, and
/// the `lock` file. Only a directory and files owned by the current user
/// and not writable by others are used; files are never opened through a
/// link. Entries are versioned `key=value` text with start, expiration and
/// creation times, the writer's learnt clock offset and a checksum; a load
/// accepts only an intact entry of this version, for exactly the key asked,
/// valid for longer than the margin given. Stores replace entries
/// atomically (temporary file, sync, rename).
///
/// ```no_run
/// use std::time::Duration;
/// use stslib::cache::{Cache, CacheUser};
/// use stslib::Env;
///
/// let cache = Cache::from_env(&Env::process())?;
/// let alice = CacheUser::new("alice", "AKIAIOSFODNN7EXAMPLE");
/// let serial = Some("arn:aws:iam::123456789012:mfa/alice");
/// let margin = Duration::from_secs(15 * 60);
/// if let Some(hit) = cache.load_token(alice, serial, margin) {
///     println!("cached token until {}", hit.credentials.expiration_iso());
/// } else {
///     // Ask for the MFA code first (never while holding the lock), then
///     // GetSessionToken and cache.store_token(...). A Session built with
///     // this cache does all of that, once among processes.
///     let _guard = cache.lock_within(Duration::from_secs(30))?;
/// }
/// # Ok::<(), stslib::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    lock_wait: StdDuration,
}

/// An exclusive lock on a cache directory, held until dropped.
///
/// The lock is an OS file lock (`flock` on Unix), so it is released when the
/// process exits, however it exits. Within one process, two guards on the
/// same directory exclude each other too. While held, the lock file names
/// the holder's process id and since when.
#[must_use = "the lock is released when the guard is dropped"]
pub struct CacheLock {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for CacheLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLock")
            .field("path", &self.path)
            .finish()
    }
}

impl CacheLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn taken(file: File, path: PathBuf) -> Self {
        store::write_holder(&file, OffsetDateTime::now_utc());
        log::debug!("cache: locked {}", path.display());
        CacheLock { file, path }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        store::clear_holder(&self.file);
        // Closing the file would release the lock too; unlocking explicitly
        // lets a failure be logged.
        if let Err(e) = self.file.unlock() {
            log::debug!("cache: unlocking {}: {e}", self.path.display());
        }
    }
}

impl Cache {
    /// A cache in `dir`, which must be absolute (a relative one makes every
    /// store and lock fail, and every load miss). Nothing is created until
    /// the first store or lock.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache {
            dir: dir.into(),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    /// How long a session waits for another process before going on
    /// without it (with a warning naming the process and since when): for
    /// the lock (held only for a look at the directory), and for an entry
    /// another process is fetching from STS. Defaults to 40 s: a little more
    /// than three attempts at the STS client's default 10 s timeout.
    pub fn lock_wait(mut self, wait: StdDuration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Takes the lock, waiting at most [`lock_wait`](Self::lock_wait).
    pub(crate) fn lock_bounded(&self) -> Result<CacheLock> {
        self.lock_within(self.lock_wait)
    }

    /// The configured wait (see [`lock_wait`](Self::lock_wait)).
    pub(crate) fn wait_limit(&self) -> StdDuration {
        self.lock_wait
    }

    /// Who is fetching `entry` (a token or role path) now, by its in-flight
    /// record, when that process may still run and the record is younger
    /// than the wait limit; else `None` (free to claim). Called under the
    /// lock.
    pub(crate) fn fetching(&self, entry: &Path, now: OffsetDateTime) -> Option<Holder> {
        let h = store::read_pending(&pending_path(entry))?;
        let young = now - h.since < time::Duration::try_from(self.lock_wait).ok()?;
        (young && store::process_alive(h.pid)).then_some(h)
    }

    /// Records that this process fetches `entry` now (under the lock).
    pub(crate) fn claim(&self, entry: &Path, now: OffsetDateTime) -> Result<()> {
        store::write_pending(&self.dir, &pending_path(entry), now)
    }

    /// Removes this process's in-flight record for `entry`.
    pub(crate) fn unclaim(&self, entry: &Path) {
        let path = pending_path(entry);
        if store::read_pending(&path).is_some_and(|h| h.pid == std::process::id()) {
            let _ = store::remove(&path);
        }
    }

    /// `user`'s token entry for `mfa_serial` whatever its expiry (to tell
    /// "expired" from "not cached"); `None` when absent or unusable.
    pub(crate) fn token_entry(
        &self,
        user: CacheUser<'_>,
        mfa_serial: Option<&str>,
    ) -> Option<Cached> {
        self.load_at(
            &token_key(user, mfa_serial),
            OffsetDateTime::UNIX_EPOCH - time::Duration::days(8),
            StdDuration::ZERO,
        )
    }

    /// The cache in the default location for `env` (see
    /// [`Cache::default_dir`]).
    ///
    /// Fails with [`Error::InvalidInput`] when neither `STSLIB_CACHE_DIR` nor
    /// `HOME` is set, or when the directory is not absolute (for example
    /// `STSLIB_CACHE_DIR=~/x` with `HOME` unset): a relative directory would
    /// scatter secrets under whatever directory the program runs in.
    pub fn from_env(env: &Env) -> Result<Self> {
        let dir = Self::default_dir(env).ok_or_else(|| {
            Error::invalid_input(
                CACHE_DIR_ENV,
                "no cache directory: neither STSLIB_CACHE_DIR nor HOME is set",
            )
        })?;
        if !dir.is_absolute() {
            return Err(Error::invalid_input(
                CACHE_DIR_ENV,
                format!(
                    "the cache directory `{}` is not an absolute path (is HOME set?)",
                    crate::error::cap(&dir.display().to_string())
                ),
            ));
        }
        Ok(Cache::new(dir))
    }

    /// Where the cache lives for `env`: `STSLIB_CACHE_DIR` when set (a
    /// leading `~` is expanded), else `.stslib/cache` in the home directory;
    /// `None` when neither is known.
    ///
    /// ```
    /// use std::path::Path;
    /// use stslib::cache::Cache;
    /// use stslib::Env;
    ///
    /// let env = Env::from_pairs([("HOME", "/home/u")]);
    /// assert_eq!(Cache::default_dir(&env).as_deref(), Some(Path::new("/home/u/.stslib/cache")));
    ///
    /// let env = Env::from_pairs([("HOME", "/home/u"), ("STSLIB_CACHE_DIR", "~/c")]);
    /// assert_eq!(Cache::default_dir(&env).as_deref(), Some(Path::new("/home/u/c")));
    ///
    /// assert_eq!(Cache::default_dir(&Env::from_pairs([("X", "1")])), None);
    /// ```
    pub fn default_dir(env: &Env) -> Option<PathBuf> {
        let platform = Platform::current();
        let home = home_dir(env, platform);
        if let Some(dir) = env.get(CACHE_DIR_ENV) {
            return Some(expand_tilde(&dir, home.as_deref(), platform));
        }
        Some(Path::new(&home?).join(".stslib").join("cache"))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `user`'s session token for `mfa_serial` (which may
    /// not exist).
    pub fn token_path(&self, user: CacheUser<'_>, mfa_serial: Option<&str>) -> PathBuf {
        self.dir.join(file_name(&token_key(user, mfa_serial)))
    }

    /// The file holding the role credentials for `role_profile` (assumed
    /// from `user`'s session as `role_arn`), which may not exist.
    pub fn role_path(&self, user: CacheUser<'_>, role_profile: &str, role_arn: &str) -> PathBuf {
        self.dir
            .join(file_name(&role_key(user, role_profile, role_arn)))
    }

    /// `user`'s cached session token for `mfa_serial`, if one is stored for
    /// exactly that key and stays valid for at least `min_remaining` by the
    /// system clock corrected by the stored clock offset. Never fails:
    /// anything else is `None`, with the reason logged.
    pub fn load_token(
        &self,
        user: CacheUser<'_>,
        mfa_serial: Option<&str>,
        min_remaining: StdDuration,
    ) -> Option<Cached> {
        self.load_at(
            &token_key(user, mfa_serial),
            OffsetDateTime::now_utc(),
            min_remaining,
        )
    }

    /// Stores `user`'s session token for `mfa_serial` with the clock offset
    /// learnt from STS, replacing any entry atomically. Creates the
    /// directory (mode `0700`) if needed.
    ///
    /// Fails with [`Error::CacheFormat`] when a field contains a line
    /// break, and with [`Error::Io`] when the entry cannot be written or the
    /// directory is not trusted.
    pub fn store_token(
        &self,
        user: CacheUser<'_>,
        mfa_serial: Option<&str>,
        credentials: &Credentials,
        clock_offset: time::Duration,
    ) -> Result<()> {
        self.store(&token_key(user, mfa_serial), credentials, clock_offset)
    }

    /// The cached credentials for `role_profile`, assumed as `role_arn` from
    /// `user`'s session, if stored for exactly that key and valid for at
    /// least `min_remaining`. Never fails, as [`Cache::load_token`].
    pub fn load_role(
        &self,
        user: CacheUser<'_>,
        role_profile: &str,
        role_arn: &str,
        min_remaining: StdDuration,
    ) -> Option<Cached> {
        self.load_at(
            &role_key(user, role_profile, role_arn),
            OffsetDateTime::now_utc(),
            min_remaining,
        )
    }

    /// [`load_role`](Self::load_role) at local time `now` (a session's
    /// clock), not the system clock's.
    pub(crate) fn load_role_at(
        &self,
        user: CacheUser<'_>,
        role_profile: &str,
        role_arn: &str,
        now: OffsetDateTime,
        min_remaining: StdDuration,
    ) -> Option<Cached> {
        self.load_at(&role_key(user, role_profile, role_arn), now, min_remaining)
    }

    /// Stores role credentials, as [`Cache::store_token`].
    pub fn store_role(
        &self,
        user: CacheUser<'_>,
        role_profile: &str,
        role_arn: &str,
        credentials: &Credentials,
        clock_offset: time::Duration,
    ) -> Result<()> {
        self.store(
            &role_key(user, role_profile, role_arn),
            credentials,
            clock_offset,
        )
    }

    /// Removes a cached session token (for one STS rejected). A missing
    /// entry is not an error.
    pub fn remove_token(&self, user: CacheUser<'_>, mfa_serial: Option<&str>) -> Result<()> {
        store::remove(&self.token_path(user, mfa_serial))
    }

    /// Removes cached role credentials. A missing entry is not an error.
    pub fn remove_role(
        &self,
        user: CacheUser<'_>,
        role_profile: &str,
        role_arn: &str,
    ) -> Result<()> {
        store::remove(&self.role_path(user, role_profile, role_arn))
    }

    /// Every token and role file in the cache, sorted by file name, with
    /// what can be read of each (no secret). An absent directory lists
    /// nothing; an untrusted one fails.
    pub fn entries(&self) -> Result<Vec<CacheEntry>> {
        if !store::check_dir(&self.dir)? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))? {
            let item = item.map_err(|e| io_error(&self.dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let kind = if name.starts_with("token-") {
                "token"
            } else if name.starts_with("role-") {
                "role"
            } else {
                continue;
            };
            let path = item.path();
            let mut listed = CacheEntry {
                path: path.clone(),
                kind,
                source_profile: String::new(),
                role_profile: None,
                role_arn: None,
                expiration: None,
                clock_offset: time::Duration::ZERO,
                problem: None,
            };
            let decoded = match store::read_entry(&path) {
                Ok(Some(text)) => decode(&text).map_err(str::to_owned),
                Ok(None) => continue,
                Err(refused) => Err(refused.reason),
            };
            match decoded {
                Ok(e) => {
                    listed.source_profile = e.field("source_profile").unwrap_or("").to_owned();
                    listed.role_profile = e.field("role_profile").map(str::to_owned);
                    listed.role_arn = e.field("role_arn").map(str::to_owned);
                    listed.expiration = Some(e.credentials.expiration);
                    listed.clock_offset = e.clock_offset;
                }
                Err(why) => listed.problem = Some(why),
            }
            out.push(listed);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes cached sessions and roles: with `profile`, the entries whose
    /// source profile or role profile it is (and any file that cannot be
    /// read, which cannot be attributed); without, every entry and the
    /// temporary files of writers that died (see [`sweep`](Self::sweep)).
    /// Returns the entries removed. The lock file stays.
    pub fn clear(&self, profile: Option<&str>) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for e in self.entries()? {
            let matches = match profile {
                None => true,
                Some(p) => {
                    e.problem.is_some()
                        || e.source_profile == p
                        || e.role_profile.as_deref() == Some(p)
                }
            };
            if matches {
                store::remove(&e.path)?;
                removed.push(e.path);
            }
        }
        if profile.is_none() {
            store::sweep_temps(&self.dir, SystemTime::now());
        }
        Ok(removed)
    }

    /// Removes temporary files left by writers that died (their process is
    /// gone, or the file is over ten minutes old). Stores do this too.
    /// Returns how many were removed.
    pub fn sweep(&self) -> usize {
        match store::check_dir(&self.dir) {
            Ok(true) => store::sweep_temps(&self.dir, SystemTime::now()),
            _ => 0,
        }
    }

    /// Takes the cache's exclusive lock, waiting as long as another holder
    /// keeps it (prefer [`lock_within`](Self::lock_within)). Creates the
    /// directory and the `lock` file (mode `0600`) if needed; fails when the
    /// directory is not trusted or `lock` is a link or not ours. The lock is
    /// released when the guard drops.
    pub fn lock(&self) -> Result<CacheLock> {
        let (file, path) = store::open_lock(&self.dir)?;
        file.lock().map_err(|e| io_error(&path, e))?;
        Ok(CacheLock::taken(file, path))
    }

    /// Takes the lock if it is free now; `Ok(None)` when another holder has
    /// it.
    pub fn try_lock(&self) -> Result<Option<CacheLock>> {
        let (file, path) = store::open_lock(&self.dir)?;
        Ok(try_lock_file(&file, &path)?.then(|| CacheLock::taken(file, path)))
    }

    /// Takes the lock, waiting at most about `timeout`; `Ok(None)` when it is
    /// still held by then. Polls with short pauses (at most 50 ms).
    pub fn lock_timeout(&self, timeout: StdDuration) -> Result<Option<CacheLock>> {
        match self.wait_for_lock(timeout)? {
            Ok(lock) => Ok(Some(lock)),
            Err(_) => Ok(None),
        }
    }

    /// Takes the lock, waiting at most about `timeout`. While waiting it
    /// logs (at `info`) who holds it; when the time is up it fails with
    /// [`Error::Io`] of kind `TimedOut` naming the holder's process id and
    /// since when it holds the lock.
    pub fn lock_within(&self, timeout: StdDuration) -> Result<CacheLock> {
        match self.wait_for_lock(timeout)? {
            Ok(lock) => Ok(lock),
            Err((path, holder)) => {
                let who = match holder {
                    Some(h) => describe_holder(&h, OffsetDateTime::now_utc()),
                    None => "another process".to_owned(),
                };
                Err(io_error(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("cache lock still held after {timeout:?} by {who}"),
                    ),
                ))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn wait_for_lock(
        &self,
        timeout: StdDuration,
    ) -> Result<std::result::Result<CacheLock, (PathBuf, Option<Holder>)>> {
        let (file, path) = store::open_lock(&self.dir)?;
        let start = Instant::now();
        let mut pause = StdDuration::from_millis(1);
        let mut told = false;
        while !try_lock_file(&file, &path)? {
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                let holder = store::read_holder(&file);
                log::debug!("cache: {} still locked after {timeout:?}", path.display());
                return Ok(Err((path, holder)));
            }
            if !told && elapsed >= StdDuration::from_millis(500) {
                told = true;
                if let Some(h) = store::read_holder(&file) {
                    log::info!(
                        "cache: waiting up to {timeout:?} for the lock held by {}",
                        describe_holder(&h, OffsetDateTime::now_utc())
                    );
                }
            }
            std::thread::sleep(pause.min(timeout - elapsed));
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
        Ok(Ok(CacheLock::taken(file, path)))
    }

    fn load_at(&self, key: &Key<'_>, now: OffsetDateTime, min: StdDuration) -> Option<Cached> {
        if let Err(e) = store::check_dir(&self.dir) {
            store::warn_once(&self.dir, &format!("cache: not used: {e}"));
            return None;
        }
        let path = self.dir.join(file_name(key));
        let text = match store::read_entry(&path) {
            Ok(Some(text)) => text,
            Ok(None) => {
                log::debug!("cache: no entry {}", path.display());
                return None;
            }
            Err(refused) if refused.security => {
                log::warn!("cache: ignoring {}: {}", path.display(), refused.reason);
                return None;
            }
            Err(refused) => {
                log::debug!("cache: ignoring {}: {}", path.display(), refused.reason);
                return None;
            }
        };
        match decode(&text).and_then(|entry| accept(entry, key, now, min)) {
            Ok(e) => {
                log::debug!(
                    "cache: using {} (expires {})",
                    path.display(),
                    e.credentials.expiration_iso()
                );
                Some(Cached {
                    credentials: e.credentials,
                    clock_offset: e.clock_offset,
                    created: e.created,
                })
            }
            Err(reason) => {
                log::debug!("cache: ignoring {}: {reason}", path.display());
                None
            }
        }
    }

    fn store(
        &self,
        key: &Key<'_>,
        credentials: &Credentials,
        offset: time::Duration,
    ) -> Result<()> {
        let text = encode(key, credentials, OffsetDateTime::now_utc(), offset)?;
        store::ensure_dir(&self.dir)?;
        store::sweep_temps(&self.dir, SystemTime::now());
        let path = self.dir.join(file_name(key));
        store::write_atomic(&self.dir, &path, text.as_bytes())?;
        log::debug!(
            "cache: stored {} (expires {})",
            path.display(),
            credentials.expiration_iso()
        );
        Ok(())
    }
}

/// The in-flight record of `entry`: `pending-<entry file name>`.
fn pending_path(entry: &Path) -> PathBuf {
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    entry.with_file_name(format!("{}{name}", store::PENDING_PREFIX))
}

/// "pid 123 (since 10:00:01Z, 41 s ago)", for messages.
pub(crate) fn describe_holder_now(h: &Holder) -> String {
    describe_holder(h, OffsetDateTime::now_utc())
}

fn token_key<'a>(user: CacheUser<'a>, mfa_serial: Option<&'a str>) -> Key<'a> {
    Key::token(user.profile, user.access_key_id, mfa_serial)
}

fn role_key<'a>(user: CacheUser<'a>, role_profile: &'a str, role_arn: &'a str) -> Key<'a> {
    Key::role(user.profile, user.access_key_id, role_profile, role_arn)
}

/// "pid 123 (since 10:00:01Z, 41 s ago)".
fn describe_holder(h: &Holder, now: OffsetDateTime) -> String {
    let ago = (now - h.since).whole_seconds().max(0);
    let since = h
        .since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!("pid {} (since {since}, {ago} s ago)", h.pid)
}

/// True when `file`'s exclusive lock was free and is now taken.
fn try_lock_file(file: &File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_rules() {
        let dir =
            |pairs: &[(&str, &str)]| Cache::default_dir(&Env::from_pairs(pairs.iter().copied()));
        assert_eq!(
            dir(&[("HOME", "/h")]),
            Some(PathBuf::from("/h/.stslib/cache"))
        );
        assert_eq!(
            dir(&[("HOME", "/h"), ("STSLIB_CACHE_DIR", "/c")]),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            dir(&[("STSLIB_CACHE_DIR", "/c")]),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            dir(&[("HOME", "/h"), ("STSLIB_CACHE_DIR", "")]),
            Some(PathBuf::from("/h/.stslib/cache"))
        );
        assert_eq!(dir(&[]), None);
        let e = Cache::from_env(&Env::from_pairs([("X", "1")])).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidInput {
                field: "STSLIB_CACHE_DIR",
                ..
            }
        ));
    }
}
