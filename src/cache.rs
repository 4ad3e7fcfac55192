//! The disk cache: session tokens and role credentials kept between
//! processes, so one MFA prompt can serve many programs for hours.
//!
//! # Layout
//!
//! One directory (default `~/.stslib/cache/`, or `STSLIB_CACHE_DIR`, or a
//! path given to [`Cache::new`]), created with mode `0700`, holding:
//!
//! - `token-<profile>-<hash>`: one session token per source profile and MFA
//!   serial;
//! - `role-<profile>-<hash>`: one set of role credentials per source profile,
//!   role profile and role ARN;
//! - `lock`: the file [`Cache::lock`] locks to serialise processes.
//!
//! `<profile>` is a sanitised, shortened profile name for people reading the
//! directory; `<hash>` is a stable 64-bit FNV-1a hash of every key field, so
//! no MFA serial or role ARN appears in a file name (and never a secret).
//!
//! # Format
//!
//! Each entry is a small UTF-8 text file of `key=value` lines, version
//! first and a checksum last:
//!
//! ```text
//! version=1
//! kind=token
//! source_profile=alice
//! mfa_serial=arn:aws:iam::123456789012:mfa/alice
//! access_key_id=ASIA...
//! secret_access_key=...
//! session_token=...
//! start_time=2026-01-01T10:00:00Z
//! expiration=2026-01-01T22:00:00Z
//! created=2026-01-01T10:00:01Z
//! checksum=0123456789abcdef
//! ```
//!
//! A role entry has `kind=role` and `role_profile` and `role_arn` in place of
//! `mfa_serial` (an empty `mfa_serial` means none). Loading ignores, with a
//! `debug` log that never contains a secret, any file that is missing,
//! unreadable, of another version, truncated or corrupt (the checksum), for
//! another key, or expiring too soon: reads never fail, they miss.
//!
//! # Writes and locking
//!
//! A store writes a temporary file (mode `0600`) in the same directory,
//! syncs it, and renames it over the entry, so readers see the old entry or
//! the new one, never a partial file; the temporary file is removed on any
//! error. Processes that must not all call STS at once take
//! [`Cache::lock`] (an exclusive lock on the `lock` file) around "load, or
//! fetch and store".

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::credentials::Credentials;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::{expand_tilde, home_dir, Platform};
use crate::secret::Secret;

/// The environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "STSLIB_CACHE_DIR";

/// The format version this build writes and accepts.
const VERSION: &str = "1";
/// Entries larger than this are not read (a real one is a few KiB).
const MAX_FILE_LEN: u64 = 64 * 1024;
/// The lock file's name in the cache directory.
const LOCK_FILE: &str = "lock";
/// Temporary files start with this; nothing else in the directory does.
const TEMP_PREFIX: &str = ".tmp-";
/// Longest profile-name prefix kept in a file name.
const NAME_PREFIX_MAX: usize = 32;
/// Longest pause between attempts in [`Cache::lock_timeout`].
const LOCK_POLL_MAX: StdDuration = StdDuration::from_millis(50);

/// The on-disk cache of session tokens and role credentials.
///
/// Cheap to create and clone; it touches the disk only when used. Loads
/// never fail (anything wrong is a miss, logged at `debug`); stores and
/// locks fail with [`Error::Io`] naming the path.
///
/// The directory (created `0700`) holds one file per session token
/// (`token-<profile>-<hash>`, keyed by source profile and MFA serial), one
/// per role (`role-<profile>-<hash>`, keyed by source profile, role profile
/// and role ARN), each `0600`, and the `lock` file. The hash is a stable
/// FNV-1a of the key, so no serial, ARN or secret shows in a name. Entries
/// are versioned `key=value` text with start, expiration and creation times
/// and a checksum; a load accepts only an intact entry of this version, for
/// exactly the key asked, valid for longer than the margin given. Stores
/// replace entries atomically (temporary file, sync, rename).
///
/// ```no_run
/// use std::time::Duration;
/// use stslib::{Cache, Env};
///
/// let cache = Cache::from_env(&Env::process())?;
/// let _guard = cache.lock()?; // one process at a time from here
/// let margin = Duration::from_secs(15 * 60);
/// if let Some(token) = cache.load_token("alice", Some("arn:aws:iam::123456789012:mfa/alice"), margin) {
///     println!("cached token until {}", token.expiration_iso());
/// } else {
///     // ... GetSessionToken with an MFA code, then cache.store_token(...)
/// }
/// # Ok::<(), stslib::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
}

/// An exclusive lock on a cache directory, held until dropped.
///
/// The lock is an OS file lock (`flock` on Unix), so it is released when the
/// process exits, however it exits. Within one process, two guards on the
/// same directory exclude each other too.
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
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // Closing the file would release the lock too; unlocking explicitly
        // lets a failure be logged.
        if let Err(e) = self.file.unlock() {
            log::debug!("cache: unlocking {}: {e}", self.path.display());
        }
    }
}

impl Cache {
    /// A cache in `dir`. Nothing is created until the first store or lock.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    /// The cache in the default location for `env` (see
    /// [`Cache::default_dir`]).
    ///
    /// Fails with [`Error::InvalidInput`] when neither `STSLIB_CACHE_DIR` nor
    /// `HOME` is set.
    pub fn from_env(env: &Env) -> Result<Self> {
        Self::default_dir(env).map(Cache::new).ok_or_else(|| {
            Error::invalid_input(
                CACHE_DIR_ENV,
                "no cache directory: neither STSLIB_CACHE_DIR nor HOME is set",
            )
        })
    }

    /// Where the cache lives for `env`: `STSLIB_CACHE_DIR` when set (a
    /// leading `~` is expanded), else `.stslib/cache` in the home directory;
    /// `None` when neither is known.
    ///
    /// ```
    /// use std::path::Path;
    /// use stslib::{Cache, Env};
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

    /// The file holding the session token for `source_profile` and
    /// `mfa_serial` (which may not exist).
    pub fn token_path(&self, source_profile: &str, mfa_serial: Option<&str>) -> PathBuf {
        self.dir
            .join(file_name(&Key::token(source_profile, mfa_serial)))
    }

    /// The file holding the role credentials for `role_profile` (assumed
    /// from `source_profile`'s session as `role_arn`), which may not exist.
    pub fn role_path(&self, source_profile: &str, role_profile: &str, role_arn: &str) -> PathBuf {
        self.dir.join(file_name(&Key::role(
            source_profile,
            role_profile,
            role_arn,
        )))
    }

    /// The cached session token for `source_profile` and `mfa_serial`, if
    /// one is stored for exactly that key and stays valid for at least
    /// `min_remaining` by the system clock. Never fails: anything else is
    /// `None`, with the reason logged at `debug`.
    pub fn load_token(
        &self,
        source_profile: &str,
        mfa_serial: Option<&str>,
        min_remaining: StdDuration,
    ) -> Option<Credentials> {
        self.load_at(
            &Key::token(source_profile, mfa_serial),
            OffsetDateTime::now_utc(),
            min_remaining,
        )
    }

    /// Stores a session token for `source_profile` and `mfa_serial`,
    /// replacing any entry atomically. Creates the directory (mode `0700`)
    /// if needed.
    ///
    /// Fails with [`Error::CacheFormat`] when a field contains a line
    /// break, and with [`Error::Io`] when the entry cannot be written.
    pub fn store_token(
        &self,
        source_profile: &str,
        mfa_serial: Option<&str>,
        credentials: &Credentials,
    ) -> Result<()> {
        self.store(&Key::token(source_profile, mfa_serial), credentials)
    }

    /// The cached credentials for `role_profile`, assumed as `role_arn` from
    /// `source_profile`'s session, if stored for exactly that key and valid
    /// for at least `min_remaining` by the system clock. Never fails, as
    /// [`Cache::load_token`].
    pub fn load_role(
        &self,
        source_profile: &str,
        role_profile: &str,
        role_arn: &str,
        min_remaining: StdDuration,
    ) -> Option<Credentials> {
        self.load_at(
            &Key::role(source_profile, role_profile, role_arn),
            OffsetDateTime::now_utc(),
            min_remaining,
        )
    }

    /// Stores role credentials, as [`Cache::store_token`].
    pub fn store_role(
        &self,
        source_profile: &str,
        role_profile: &str,
        role_arn: &str,
        credentials: &Credentials,
    ) -> Result<()> {
        self.store(
            &Key::role(source_profile, role_profile, role_arn),
            credentials,
        )
    }

    /// Removes the cached session token (for one STS rejected). A missing
    /// entry is not an error.
    pub fn remove_token(&self, source_profile: &str, mfa_serial: Option<&str>) -> Result<()> {
        remove(&self.token_path(source_profile, mfa_serial))
    }

    /// Removes cached role credentials. A missing entry is not an error.
    pub fn remove_role(
        &self,
        source_profile: &str,
        role_profile: &str,
        role_arn: &str,
    ) -> Result<()> {
        remove(&self.role_path(source_profile, role_profile, role_arn))
    }

    /// Takes the cache's exclusive lock, waiting as long as another holder
    /// keeps it. Creates the directory and the `lock` file (mode `0600`) if
    /// needed. The lock is released when the guard drops.
    pub fn lock(&self) -> Result<CacheLock> {
        let (file, path) = self.open_lock_file()?;
        file.lock().map_err(|e| io_error(&path, e))?;
        log::debug!("cache: locked {}", path.display());
        Ok(CacheLock { file, path })
    }

    /// Takes the lock if it is free now; `Ok(None)` when another holder has
    /// it.
    pub fn try_lock(&self) -> Result<Option<CacheLock>> {
        let (file, path) = self.open_lock_file()?;
        Ok(try_lock_file(&file, &path)?.then_some(CacheLock { file, path }))
    }

    /// Takes the lock, waiting at most about `timeout`; `Ok(None)` when it is
    /// still held by then. Polls with short pauses (at most 50 ms).
    pub fn lock_timeout(&self, timeout: StdDuration) -> Result<Option<CacheLock>> {
        let (file, path) = self.open_lock_file()?;
        let start = Instant::now();
        let mut pause = StdDuration::from_millis(1);
        while !try_lock_file(&file, &path)? {
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                log::debug!("cache: {} still locked after {timeout:?}", path.display());
                return Ok(None);
            }
            std::thread::sleep(pause.min(timeout - elapsed));
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
        Ok(Some(CacheLock { file, path }))
    }

    fn open_lock_file(&self) -> Result<(File, PathBuf)> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_FILE);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        private_mode(&mut opts);
        let file = opts.open(&path).map_err(|e| io_error(&path, e))?;
        Ok((file, path))
    }

    fn load_at(&self, key: &Key<'_>, now: OffsetDateTime, min: StdDuration) -> Option<Credentials> {
        let path = self.dir.join(file_name(key));
        let text = match read_small(&path) {
            Ok(Some(text)) => text,
            Ok(None) => {
                log::debug!("cache: no entry {}", path.display());
                return None;
            }
            Err(reason) => {
                log::debug!("cache: ignoring {}: {reason}", path.display());
                return None;
            }
        };
        match decode(&text).and_then(|entry| accept(entry, key, now, min)) {
            Ok(c) => {
                log::debug!(
                    "cache: using {} (expires {})",
                    path.display(),
                    c.expiration_iso()
                );
                Some(c)
            }
            Err(reason) => {
                log::debug!("cache: ignoring {}: {reason}", path.display());
                None
            }
        }
    }

    fn store(&self, key: &Key<'_>, credentials: &Credentials) -> Result<()> {
        let text = encode(key, credentials, OffsetDateTime::now_utc())?;
        self.ensure_dir()?;
        let path = self.dir.join(file_name(key));
        write_atomic(&self.dir, &path, text.as_bytes())?;
        log::debug!(
            "cache: stored {} (expires {})",
            path.display(),
            credentials.expiration_iso()
        );
        Ok(())
    }

    /// Creates the directory (and missing parents) with mode `0700`; warns
    /// when an existing one is open to group or others.
    fn ensure_dir(&self) -> Result<()> {
        match fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => {
                warn_if_open(&self.dir, &meta);
                Ok(())
            }
            Ok(_) => Err(io_error(
                &self.dir,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut b = fs::DirBuilder::new();
                b.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
                b.create(&self.dir).map_err(|e| io_error(&self.dir, e))?;
                log::debug!("cache: created {}", self.dir.display());
                Ok(())
            }
            Err(e) => Err(io_error(&self.dir, e)),
        }
    }
}

#[cfg(unix)]
fn warn_if_open(dir: &Path, meta: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        // Entries are 0600 whatever the directory's mode, but others could
        // add or rename files here. A directory the user chose is theirs to
        // fix: changing the mode of, say, /tmp would be worse.
        // Once per process: a refresher stores every few minutes.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let level = if WARNED.swap(true, Ordering::Relaxed) {
            log::Level::Debug
        } else {
            log::Level::Warn
        };
        log::log!(
            level,
            "cache: {} has mode {mode:o}; `chmod 700` it so only you can change the cache",
            dir.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_open(_dir: &Path, _meta: &fs::Metadata) {}

/// Files are created readable and writable by the owner only.
fn private_mode(opts: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(opts, 0o600);
    #[cfg(not(unix))]
    let _ = opts;
}

/// True when `file`'s exclusive lock was free and is now taken.
fn try_lock_file(file: &File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => {
            log::debug!("cache: locked {}", path.display());
            Ok(true)
        }
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(io_error(path, e)),
    }
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            log::debug!("cache: removed {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// The file's text; `Ok(None)` when it does not exist; `Err(reason)` when it
/// cannot be read, is too large or is not UTF-8.
fn read_small(path: &Path) -> std::result::Result<Option<String>, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes"));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "not UTF-8".to_owned())
}

/// Writes `bytes` to `target` through a temporary file in `dir`: create
/// (0600, never an existing file), write, sync, rename; then sync the
/// directory, best effort. The temporary file is removed on any error.
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    struct Temp<'a> {
        path: &'a Path,
        armed: bool,
    }
    impl Drop for Temp<'_> {
        fn drop(&mut self) {
            if self.armed {
                let _ = fs::remove_file(self.path);
            }
        }
    }

    let tmp_path = dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{:016x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        crate::rand::u64()
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    private_mode(&mut opts);
    let mut file = opts.open(&tmp_path).map_err(|e| io_error(&tmp_path, e))?;
    let mut temp = Temp {
        path: &tmp_path,
        armed: true,
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp_path, e))?;
    drop(file);
    fs::rename(&tmp_path, target).map_err(|e| io_error(target, e))?;
    temp.armed = false;
    // Make the rename itself durable. Not every platform can open or sync a
    // directory; the entry is already in place, so failure only logs.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        log::debug!("cache: syncing {}: {e}", dir.display());
    }
    Ok(())
}

// -- pure part: keys, file names, the text format --

/// What an entry is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key<'a> {
    Token {
        source_profile: &'a str,
        /// Never `Some("")`: an empty serial is no serial.
        mfa_serial: Option<&'a str>,
    },
    Role {
        source_profile: &'a str,
        role_profile: &'a str,
        role_arn: &'a str,
    },
}

impl<'a> Key<'a> {
    fn token(source_profile: &'a str, mfa_serial: Option<&'a str>) -> Self {
        Key::Token {
            source_profile,
            mfa_serial: mfa_serial.filter(|s| !s.is_empty()),
        }
    }

    fn role(source_profile: &'a str, role_profile: &'a str, role_arn: &'a str) -> Self {
        Key::Role {
            source_profile,
            role_profile,
            role_arn,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Key::Token { .. } => "token",
            Key::Role { .. } => "role",
        }
    }

    /// The key's fields as written, in file order.
    fn fields(&self) -> Vec<(&'static str, &'a str)> {
        match *self {
            Key::Token {
                source_profile,
                mfa_serial,
            } => vec![
                ("source_profile", source_profile),
                ("mfa_serial", mfa_serial.unwrap_or("")),
            ],
            Key::Role {
                source_profile,
                role_profile,
                role_arn,
            } => vec![
                ("source_profile", source_profile),
                ("role_profile", role_profile),
                ("role_arn", role_arn),
            ],
        }
    }

    /// The profile named in the file name.
    fn display_profile(&self) -> &'a str {
        match *self {
            Key::Token { source_profile, .. } => source_profile,
            Key::Role { role_profile, .. } => role_profile,
        }
    }
}

/// 64-bit FNV-1a: stable across runs, builds and platforms (unlike std's
/// randomly keyed hasher). Not cryptographic; collisions only cost a miss,
/// since a loaded entry must name the same key.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `token-<profile>-<hash>` or `role-<profile>-<hash>`. The hash covers the
/// kind and every key field, each length-prefixed so no two keys encode
/// alike; the profile part is for people and keeps only `[A-Za-z0-9_.-]`
/// (others become `_`), at most 32 characters, no leading dot.
fn file_name(key: &Key<'_>) -> String {
    let mut buf = Vec::new();
    buf.extend_from_slice(key.kind().as_bytes());
    for (_, value) in key.fields() {
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
        buf.extend_from_slice(value.as_bytes());
    }
    let readable: String = key
        .display_profile()
        .chars()
        .take(NAME_PREFIX_MAX)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let readable = readable.trim_start_matches('.');
    format!("{}-{}-{:016x}", key.kind(), readable, fnv1a64(&buf))
}

/// RFC 3339 in UTC.
fn iso(t: OffsetDateTime) -> Result<String> {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| Error::CacheFormat {
            field: "expiration",
            message: format!("time not representable: {e}"),
        })
}

/// The entry's text. Fails when a value contains a line break (the error
/// names the field, never the value).
fn encode(key: &Key<'_>, c: &Credentials, created: OffsetDateTime) -> Result<String> {
    let start = iso(c.start_time)?;
    let expiration = iso(c.expiration)?;
    let created = iso(created)?;
    let mut lines: Vec<(&'static str, &str)> = vec![("version", VERSION), ("kind", key.kind())];
    lines.extend(key.fields());
    lines.extend([
        ("access_key_id", c.access_key_id.as_str()),
        ("secret_access_key", c.secret_access_key.expose()),
        ("session_token", c.session_token.expose()),
        ("start_time", start.as_str()),
        ("expiration", expiration.as_str()),
        ("created", created.as_str()),
    ]);
    let mut out = String::new();
    for (name, value) in lines {
        if value.contains(['\n', '\r']) {
            return Err(Error::CacheFormat {
                field: name,
                message: "contains a line break".into(),
            });
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    let sum = fnv1a64(out.as_bytes());
    out.push_str(&format!("checksum={sum:016x}\n"));
    Ok(out)
}

/// A decoded entry, before it is checked against a key and a time.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: String,
    /// `(name, value)` key fields in file order.
    key_fields: Vec<(&'static str, String)>,
    credentials: Credentials,
    created: OffsetDateTime,
}

/// Why an entry was ignored: a fixed phrase, never a value from the file.
type Reject = &'static str;

/// Parses an entry. Every field is required exactly once and nothing else
/// is allowed; the last line is a checksum over everything before it.
fn decode(text: &str) -> std::result::Result<Entry, Reject> {
    const TOKEN_FIELDS: &[&str] = &["source_profile", "mfa_serial"];
    const ROLE_FIELDS: &[&str] = &["source_profile", "role_profile", "role_arn"];
    const CRED_FIELDS: &[&str] = &[
        "access_key_id",
        "secret_access_key",
        "session_token",
        "start_time",
        "expiration",
        "created",
    ];

    let body = text
        .strip_suffix('\n')
        .ok_or("truncated (no final line break)")?;
    let (head, last) = match body.rfind('\n') {
        Some(i) => (&text[..=i], &body[i + 1..]),
        None => return Err("truncated or not an entry (one line)"),
    };
    let sum = last.strip_prefix("checksum=").ok_or("no checksum line")?;
    if sum.len() != 16 || u64::from_str_radix(sum, 16).ok() != Some(fnv1a64(head.as_bytes())) {
        return Err("checksum mismatch (corrupt or truncated)");
    }

    let mut lines = head.lines();
    let first = lines.next().ok_or("empty")?;
    match first.strip_prefix("version=") {
        Some(VERSION) => {}
        Some(_) => return Err("unsupported version"),
        None => return Err("no version line"),
    }
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for line in lines {
        let (name, value) = line.split_once('=').ok_or("line without `=`")?;
        if fields.iter().any(|(n, _)| *n == name) {
            return Err("repeated field");
        }
        fields.push((name, value));
    }
    let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let kind = get("kind").ok_or("no kind")?;
    let key_names = match kind {
        "token" => TOKEN_FIELDS,
        "role" => ROLE_FIELDS,
        _ => return Err("unknown kind"),
    };
    let expected = 1 + key_names.len() + CRED_FIELDS.len();
    let all_known = fields
        .iter()
        .all(|(n, _)| *n == "kind" || key_names.contains(n) || CRED_FIELDS.contains(n));
    if !all_known {
        return Err("unknown field");
    }
    if fields.len() != expected {
        return Err("missing field");
    }
    // All names are known, unique and as many as expected: each is present.
    let field = |name: &str| get(name).ok_or("missing field");
    let time = |name: &str| {
        OffsetDateTime::parse(field(name)?, &Rfc3339)
            .map(|t| t.to_offset(UtcOffset::UTC))
            .map_err(|_| "bad time")
    };
    let mut key_fields = Vec::new();
    for &name in key_names {
        key_fields.push((name, field(name)?.to_owned()));
    }
    let credentials = Credentials {
        access_key_id: field("access_key_id")?.to_owned(),
        secret_access_key: Secret::new(field("secret_access_key")?),
        session_token: Secret::new(field("session_token")?),
        start_time: time("start_time")?,
        expiration: time("expiration")?,
    };
    if credentials.access_key_id.is_empty()
        || credentials.secret_access_key.is_empty()
        || credentials.session_token.is_empty()
    {
        return Err("empty key, secret or token");
    }
    if credentials.expiration <= credentials.start_time {
        return Err("expiration not after start time");
    }
    Ok(Entry {
        kind: kind.to_owned(),
        key_fields,
        credentials,
        created: time("created")?,
    })
}

/// The entry's credentials if it is for `key` and valid for more than `min`
/// after `now`.
fn accept(
    entry: Entry,
    key: &Key<'_>,
    now: OffsetDateTime,
    min: StdDuration,
) -> std::result::Result<Credentials, Reject> {
    if entry.kind != key.kind() {
        return Err("entry of another kind");
    }
    let same_key = entry.key_fields.len() == key.fields().len()
        && entry
            .key_fields
            .iter()
            .zip(key.fields())
            .all(|((n1, v1), (n2, v2))| *n1 == n2 && v1 == v2);
    if !same_key {
        return Err("entry for another profile, MFA serial or role");
    }
    let min = Duration::try_from(min).map_err(|_| "minimum lifetime out of range")?;
    let c = entry.credentials;
    if c.expiration <= now {
        return Err("expired");
    }
    if c.expiration - now <= min {
        return Err("expires within the requested margin");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 12:00:00 UTC);
    const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
    const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/Admin";

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("s3cr3t/key+AB=="),
            session_token: Secret::new("t0k3n//long=="),
            start_time: datetime!(2026-01-01 10:00:00 UTC),
            expiration: datetime!(2026-01-01 22:00:00.5 UTC),
        }
    }

    fn token_key() -> Key<'static> {
        Key::token("alice", Some(SERIAL))
    }

    fn role_key() -> Key<'static> {
        Key::role("alice", "prod", ROLE_ARN)
    }

    fn valid_text(key: &Key<'_>) -> String {
        encode(key, &creds(), datetime!(2026-01-01 10:00:01 UTC)).unwrap()
    }

    fn load(text: &str, key: &Key<'_>, min_secs: u64) -> std::result::Result<Credentials, Reject> {
        decode(text).and_then(|e| accept(e, key, NOW, StdDuration::from_secs(min_secs)))
    }

    #[test]
    fn token_round_trip() {
        let text = valid_text(&token_key());
        assert!(text.starts_with("version=1\nkind=token\nsource_profile=alice\n"));
        assert!(text.contains("\nmfa_serial=arn:aws:iam::123456789012:mfa/alice\n"));
        assert!(text.contains("\nexpiration=2026-01-01T22:00:00.5Z\n"));
        assert!(text.contains("\ncreated=2026-01-01T10:00:01Z\n"));
        let entry = decode(&text).unwrap();
        assert_eq!(entry.created, datetime!(2026-01-01 10:00:01 UTC));
        assert_eq!(
            accept(entry, &token_key(), NOW, StdDuration::ZERO),
            Ok(creds())
        );
    }

    #[test]
    fn role_round_trip_and_no_serial() {
        let text = valid_text(&role_key());
        assert!(text.contains("\nkind=role\n") && text.contains("\nrole_profile=prod\n"));
        assert_eq!(load(&text, &role_key(), 60), Ok(creds()));

        let none = Key::token("alice", None);
        let text = valid_text(&none);
        assert!(text.contains("\nmfa_serial=\n"));
        assert_eq!(load(&text, &none, 0), Ok(creds()));
        // An empty serial is no serial.
        assert_eq!(load(&text, &Key::token("alice", Some("")), 0), Ok(creds()));
    }

    #[test]
    fn times_in_other_offsets_come_back_utc() {
        let mut c = creds();
        c.expiration = datetime!(2026-01-02 00:00:00 +02:00);
        let text = encode(&token_key(), &c, NOW).unwrap();
        assert!(text.contains("\nexpiration=2026-01-01T22:00:00Z\n"));
        let back = load(&text, &token_key(), 0).unwrap();
        assert_eq!(back.expiration, c.expiration);
        assert_eq!(back.expiration.offset(), UtcOffset::UTC);
    }

    #[test]
    fn line_breaks_refused_without_echoing_the_value() {
        let mut c = creds();
        c.session_token = Secret::new("abc\ndef");
        let e = encode(&token_key(), &c, NOW).unwrap_err();
        assert!(matches!(
            e,
            Error::CacheFormat {
                field: "session_token",
                ..
            }
        ));
        assert!(!e.to_string().contains("abc"), "{e}");
        let e = encode(&Key::token("a\rb", None), &creds(), NOW).unwrap_err();
        assert!(matches!(
            e,
            Error::CacheFormat {
                field: "source_profile",
                ..
            }
        ));
    }

    #[test]
    fn rejects_other_versions() {
        let text = valid_text(&token_key()).replacen("version=1", "version=2", 1);
        // Re-seal so only the version is wrong.
        let text = reseal(&text);
        assert_eq!(load(&text, &token_key(), 0), Err("unsupported version"));
        let text = reseal(&valid_text(&token_key()).replacen("version=1\n", "", 1));
        assert_eq!(load(&text, &token_key(), 0), Err("no version line"));
    }

    /// Replaces the checksum line with a correct one for the edited text.
    fn reseal(text: &str) -> String {
        let body = text.strip_suffix('\n').unwrap();
        let head = &text[..=body.rfind('\n').unwrap()];
        format!("{head}checksum={:016x}\n", fnv1a64(head.as_bytes()))
    }

    #[test]
    fn rejects_every_truncation() {
        for key in [token_key(), role_key()] {
            let text = valid_text(&key);
            for cut in 0..text.len() {
                let part = &text[..cut];
                assert!(
                    load(part, &key, 0).is_err(),
                    "truncated at {cut} of {} was accepted",
                    text.len()
                );
            }
            assert!(load(&text, &key, 0).is_ok());
        }
    }

    #[test]
    fn rejects_corruption() {
        let text = valid_text(&token_key());
        // Flip one character in each position of the body (not the checksum
        // line): the checksum catches it.
        let head_len = text.rfind("checksum=").unwrap();
        for i in 0..head_len {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(load(&s, &token_key(), 0).is_err(), "flip at {i} accepted");
        }
        let bad_sum = text.replace("checksum=", "checksum=0");
        assert!(load(&bad_sum, &token_key(), 0).is_err());
    }

    #[test]
    fn rejects_garbage() {
        for g in [
            "",
            "\n",
            "hello",
            "version=1\n",
            "checksum=0000000000000000\n",
            "\u{0}\u{1}\u{2}\n\n\n",
            "version=1\nkind=token\nchecksum=zzzzzzzzzzzzzzzz\n",
            "{\"version\": 1}\n",
        ] {
            assert!(load(g, &token_key(), 0).is_err(), "{g:?} accepted");
        }
    }

    #[test]
    fn rejects_malformed_fields_even_with_a_good_checksum() {
        let base = valid_text(&token_key());
        let cases: &[(&str, &str, Reject)] = &[
            ("kind=token", "kind=session", "unknown kind"),
            ("access_key_id=ASIAEXAMPLE\n", "", "missing field"),
            (
                "access_key_id=ASIAEXAMPLE",
                "access_key_id=",
                "empty key, secret or token",
            ),
            ("created=", "colour=blue\ncreated=", "unknown field"),
            ("created=", "kind=token\ncreated=", "repeated field"),
            ("created=", "nonsense\ncreated=", "line without `=`"),
            (
                "expiration=2026-01-01T22:00:00.5Z",
                "expiration=tomorrow",
                "bad time",
            ),
            (
                "expiration=2026-01-01T22:00:00.5Z",
                "expiration=2026-01-01T09:00:00Z",
                "expiration not after start time",
            ),
            ("mfa_serial=", "role_arn=", "unknown field"),
        ];
        for (from, to, why) in cases {
            let text = reseal(&base.replacen(from, to, 1));
            assert_eq!(load(&text, &token_key(), 0), Err(*why), "{from} -> {to}");
        }
    }

    #[test]
    fn rejects_expired_and_expiring() {
        let text = valid_text(&token_key());
        // 10 h 0.5 s left at NOW.
        assert!(load(&text, &token_key(), 10 * 3600).is_ok());
        assert_eq!(
            load(&text, &token_key(), 10 * 3600 + 1),
            Err("expires within the requested margin")
        );
        let entry = decode(&text).unwrap();
        let later = datetime!(2026-01-01 22:00:00.5 UTC);
        assert_eq!(
            accept(entry, &token_key(), later, StdDuration::ZERO),
            Err("expired")
        );
        let entry = decode(&text).unwrap();
        assert_eq!(
            accept(entry, &token_key(), NOW, StdDuration::MAX),
            Err("minimum lifetime out of range")
        );
    }

    #[test]
    fn rejects_other_keys() {
        let text = valid_text(&token_key());
        let other = "entry for another profile, MFA serial or role";
        assert_eq!(load(&text, &Key::token("bob", Some(SERIAL)), 0), Err(other));
        assert_eq!(load(&text, &Key::token("alice", None), 0), Err(other));
        assert_eq!(
            load(&text, &Key::token("alice", Some("arn:aws:iam::1:mfa/x")), 0),
            Err(other)
        );
        assert_eq!(load(&text, &role_key(), 0), Err("entry of another kind"));

        let text = valid_text(&role_key());
        assert_eq!(
            load(&text, &Key::role("bob", "prod", ROLE_ARN), 0),
            Err(other)
        );
        assert_eq!(
            load(&text, &Key::role("alice", "dev", ROLE_ARN), 0),
            Err(other)
        );
        assert_eq!(
            load(
                &text,
                &Key::role("alice", "prod", "arn:aws:iam::1:role/X"),
                0
            ),
            Err(other)
        );
        assert_eq!(load(&text, &token_key(), 0), Err("entry of another kind"));
    }

    #[test]
    fn file_names_are_stable_and_reveal_no_serial_or_arn() {
        // Fixed values: FNV-1a is specified, so these never change between
        // runs, builds or platforms.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let t = file_name(&token_key());
        assert_eq!(t, file_name(&Key::token("alice", Some(SERIAL))));
        assert!(
            t.starts_with("token-alice-") && t.len() == "token-alice-".len() + 16,
            "{t}"
        );
        assert!(!t.contains("mfa") && !t.contains("123456789012"), "{t}");
        let r = file_name(&role_key());
        assert!(r.starts_with("role-prod-"), "{r}");
        assert!(!r.contains("Admin") && !r.contains("123456789012"), "{r}");
    }

    #[test]
    fn file_names_pinned() {
        // If this changes, every user's cache misses once: bump deliberately.
        assert_eq!(
            file_name(&Key::token("alice", None)),
            file_name(&Key::token("alice", Some("")))
        );
        let pinned = [
            file_name(&Key::token("alice", None)),
            file_name(&token_key()),
            file_name(&role_key()),
        ];
        let again = [
            file_name(&Key::token("alice", None)),
            file_name(&Key::token("alice", Some(SERIAL))),
            file_name(&Key::role("alice", "prod", ROLE_ARN)),
        ];
        assert_eq!(pinned, again);
        assert_eq!(pinned[1], PINNED_TOKEN_NAME);
    }

    const PINNED_TOKEN_NAME: &str = "token-alice-6e21a2242217cd84";

    #[test]
    fn file_names_distinguish_keys_and_sanitise() {
        let names = [
            file_name(&Key::token("alice", None)),
            file_name(&Key::token("alice", Some(SERIAL))),
            file_name(&Key::token("alic", Some("e"))),
            file_name(&Key::role("alice", "prod", ROLE_ARN)),
            file_name(&Key::role("alice", "pro", ROLE_ARN)),
            file_name(&Key::role("bob", "prod", ROLE_ARN)),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let odd = file_name(&Key::token("../we ird/ß", None));
        assert!(odd.starts_with("token-_we_ird__-"), "{odd}");
        let long = file_name(&Key::token(&"p".repeat(100), None));
        assert_eq!(long.len(), "token-".len() + 32 + 1 + 16);
        let dots = file_name(&Key::role("a", "..", ROLE_ARN));
        assert!(dots.starts_with("role--"), "{dots}");
    }

    #[test]
    fn debug_of_entry_holds_no_secret() {
        let entry = decode(&valid_text(&token_key())).unwrap();
        let s = format!("{entry:?}");
        assert!(!s.contains("s3cr3t") && !s.contains("t0k3n"), "{s}");
    }

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
