//! The cache's file I/O: what is trusted (owner, mode, file type), reads
//! that never follow a link or hang on a FIFO, atomic writes, the lock file
//! and its holder record, and sweeping temporary files of dead writers.
//!
//! Trust rule: the directory and every file read from it must belong to
//! the user running the process and must not be writable by group or
//! others; files must be regular files, opened without following links.
//! The directories above it must belong to root or that user and be
//! writable by no one else unless sticky (`/tmp`).
//! Anything else is refused and named in a warning. Files of ours readable
//! by others are tightened to `0600`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, SystemTime};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Entries larger than this are not read (a real one is a few KiB).
const MAX_FILE_LEN: u64 = 64 * 1024;
/// Temporary files start with this; nothing else in the directory does.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";
/// A temporary file older than this is stale whatever its process: a write
/// takes milliseconds.
const TEMP_MAX_AGE: StdDuration = StdDuration::from_secs(10 * 60);
/// How old a dead process's temporary file must be before it is removed.
const TEMP_DEAD_GRACE: StdDuration = StdDuration::from_secs(2);
/// In-flight records start with this: `pending-<entry name>` says which
/// process is fetching that entry now, and since when.
pub(crate) const PENDING_PREFIX: &str = "pending-";
/// The lock file's name in the cache directory.
pub(crate) const LOCK_FILE: &str = "lock";

pub(crate) fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn untrusted(path: &Path, why: String) -> Error {
    io_error(path, io::Error::new(io::ErrorKind::PermissionDenied, why))
}

/// The user id files created by this process get (the effective one), read
/// without `unsafe`: the owner of a pipe the process makes is that user.
#[cfg(unix)]
pub(crate) fn current_uid() -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(uid) = UID.get() {
        return Ok(*uid);
    }
    let (reader, _writer) = io::pipe()?;
    let uid = File::from(std::os::fd::OwnedFd::from(reader))
        .metadata()?
        .uid();
    Ok(*UID.get_or_init(|| uid))
}

/// Why `meta` (of `path`, a directory or a file we are about to trust) is
/// not trusted: another owner, or writable by group or others.
#[cfg(unix)]
fn distrust(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = match current_uid() {
        Ok(uid) => uid,
        Err(e) => return Some(format!("cannot tell who the current user is ({e})")),
    };
    if meta.uid() != uid {
        return Some(format!(
            "owned by uid {}, not by the current user (uid {uid}): not trusted",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "has mode {mode:o}: writable by group or others, so not trusted \
             (`chmod go-w` it, or remove it)"
        ));
    }
    None
}

#[cfg(not(unix))]
fn distrust(_meta: &fs::Metadata) -> Option<String> {
    None
}

/// Why `meta`, a directory above the cache directory, is not trusted:
/// whoever may rename entries in it can swap the cache directory for
/// another. It must belong to root or the current user and be writable by
/// no one else, unless it has the sticky bit (as `/tmp` has: there only an
/// entry's owner may rename it). OpenSSH checks the directories above
/// `~/.ssh` the same way, except for the sticky bit.
#[cfg(unix)]
fn distrust_parent(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = match current_uid() {
        Ok(uid) => uid,
        Err(e) => return Some(format!("cannot tell who the current user is ({e})")),
    };
    if meta.uid() != 0 && meta.uid() != uid {
        return Some(format!(
            "is owned by uid {}, neither root nor the current user (uid {uid}), \
             who could replace the cache directory in it: not trusted",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "has mode {mode:o}: writable by group or others without the sticky bit, \
             so another user could replace the cache directory in it: not trusted \
             (`chmod go-w` it, or choose another cache directory)"
        ));
    }
    None
}

/// Checks every directory above `dir` (after resolving links) with
/// [`distrust_parent`].
#[cfg(unix)]
fn check_parents(dir: &Path) -> Result<()> {
    let real = fs::canonicalize(dir).map_err(|e| io_error(dir, e))?;
    for parent in real.ancestors().skip(1) {
        let meta = fs::symlink_metadata(parent).map_err(|e| io_error(parent, e))?;
        if let Some(why) = distrust_parent(&meta) {
            return Err(untrusted(
                dir,
                format!(
                    "cache directory is inside {}, which {why}",
                    parent.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_parents(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Directories already refused in this process: warned about once.
static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Logs `message` at `warn` the first time for `path`, then at `debug`.
pub(crate) fn warn_once(path: &Path, message: &str) {
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.iter().any(|p| p == path) {
        log::debug!("{message}");
    } else {
        warned.push(path.to_owned());
        log::warn!("{message}");
    }
}

/// Checks that `dir` may be used: an absolute path to an existing
/// directory of the current user, not writable by group or others, below
/// directories that no other user can rename it in.
/// `Ok(false)` when it does not exist.
pub(crate) fn check_dir(dir: &Path) -> Result<bool> {
    if !dir.is_absolute() {
        return Err(io_error(
            dir,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the cache directory must be an absolute path",
            ),
        ));
    }
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => match distrust(&meta) {
            Some(why) => Err(untrusted(dir, format!("cache directory {why}"))),
            None => check_parents(dir).map(|()| true),
        },
        Ok(_) => Err(io_error(
            dir,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(dir, e)),
    }
}

/// Creates `dir` (and missing parents) with mode `0700` when missing, then
/// checks it as [`check_dir`].
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    if check_dir(dir)? {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| io_error(dir, e))?;
    log::debug!("cache: created {}", dir.display());
    if check_dir(dir)? {
        Ok(())
    } else {
        Err(io_error(
            dir,
            io::Error::new(io::ErrorKind::NotFound, "vanished after creation"),
        ))
    }
}

/// Open flags that never follow a symbolic link at the last component and
/// never block opening a FIFO or device.
fn safe_open(opts: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(opts, libc::O_NOFOLLOW | libc::O_NONBLOCK);
    #[cfg(not(unix))]
    let _ = opts;
}

/// Files are created readable and writable by the owner only.
fn private_mode(opts: &mut OpenOptions) {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(opts, 0o600);
    #[cfg(not(unix))]
    let _ = opts;
}

/// True when `e` is what opening a symbolic link with `O_NOFOLLOW` gives.
fn is_link_error(e: &io::Error, path: &Path) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return true;
    }
    let _ = e;
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Checks an open file before trusting it: a regular file, ours, not
/// writable by others; tightens a mode readable by others to `0600`.
fn check_open_file(file: &File, path: &Path) -> std::result::Result<(), String> {
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if let Some(why) = distrust(&meta) {
        return Err(why);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("has mode {mode:o} and cannot be made 0600: {e}"))?;
            log::warn!(
                "cache: {} had mode {mode:o}; changed to 600",
                path.display()
            );
        }
    }
    let _ = path;
    Ok(())
}

/// Why a file was not read.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) reason: String,
    /// A trust problem (someone else's file, a link, a FIFO), worth a
    /// warning; other reasons are ordinary misses.
    pub(crate) security: bool,
}

/// The text of the entry at `path`; `Ok(None)` when it does not exist.
/// Opened without following a link and without blocking; refused unless it
/// is a regular file of the current user not writable by others.
pub(crate) fn read_entry(path: &Path) -> std::result::Result<Option<String>, Refused> {
    let plain = |reason: String| Refused {
        reason,
        security: false,
    };
    let security = |reason: String| Refused {
        reason,
        security: true,
    };
    let mut opts = OpenOptions::new();
    opts.read(true);
    safe_open(&mut opts);
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_link_error(&e, path) => {
            return Err(security(
                "is a symbolic link; links are never followed".into(),
            ))
        }
        Err(e) => return Err(plain(format!("cannot open: {e}"))),
    };
    check_open_file(&file, path).map_err(security)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| plain(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(plain(format!("larger than {MAX_FILE_LEN} bytes")));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| plain("not UTF-8".to_owned()))
}

/// Writes `bytes` to `target` through a temporary file in `dir`: create
/// (0600, never an existing file or link), write, sync, rename; then sync
/// the directory, best effort. The temporary file is removed on any error.
pub(crate) fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
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

/// Opens (creating, `0600`) the lock file in `dir`, which must be trusted.
/// A link planted at its name is refused, never followed.
pub(crate) fn open_lock(dir: &Path) -> Result<(File, PathBuf)> {
    ensure_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    private_mode(&mut opts);
    safe_open(&mut opts);
    let file = match opts.open(&path) {
        Ok(f) => f,
        Err(e) if is_link_error(&e, &path) => {
            return Err(untrusted(
                &path,
                "is a symbolic link; refusing to follow it (remove it)".into(),
            ))
        }
        Err(e) => return Err(io_error(&path, e)),
    };
    check_open_file(&file, &path).map_err(|why| untrusted(&path, why))?;
    Ok((file, path))
}

/// Who holds a lock: the process id and since when, as its holder wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) since: OffsetDateTime,
}

/// The in-flight record `path`, if it reads as one (a trusted file).
pub(crate) fn read_pending(path: &Path) -> Option<Holder> {
    let text = read_entry(path).ok()??;
    parse_holder(&text)
}

/// Records (atomically) that this process is fetching an entry now.
pub(crate) fn write_pending(dir: &Path, path: &Path, now: OffsetDateTime) -> Result<()> {
    let since = now.format(&Rfc3339).unwrap_or_default();
    let text = format!("pid={}\nsince={since}\n", std::process::id());
    write_atomic(dir, path, text.as_bytes())
}

/// True when process `pid` may still be running (always, where that
/// cannot be told).
pub(crate) fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || !process_gone(pid)
}

/// Records this process as the holder in the (locked) lock file.
pub(crate) fn write_holder(file: &File, now: OffsetDateTime) {
    let since = now.format(&Rfc3339).unwrap_or_default();
    let text = format!("pid={}\nsince={since}\n", std::process::id());
    let mut f = file;
    let r = f
        .set_len(0)
        .and_then(|()| f.seek(SeekFrom::Start(0)))
        .and_then(|_| f.write_all(text.as_bytes()));
    if let Err(e) = r {
        log::debug!("cache: cannot record the lock holder: {e}");
    }
}

/// Clears the holder record (before unlocking).
pub(crate) fn clear_holder(file: &File) {
    let _ = file.set_len(0);
}

/// The holder recorded in the lock file, if it reads as one.
pub(crate) fn read_holder(file: &File) -> Option<Holder> {
    let mut f = file;
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.take(256).read_to_string(&mut text).ok()?;
    parse_holder(&text)
}

/// `pid=N` and `since=TIME` lines.
fn parse_holder(text: &str) -> Option<Holder> {
    let mut pid = None;
    let mut since = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("pid", v)) => pid = v.parse().ok(),
            Some(("since", v)) => since = OffsetDateTime::parse(v, &Rfc3339).ok(),
            _ => {}
        }
    }
    Some(Holder {
        pid: pid?,
        since: since?,
    })
}

/// True when the process `pid` is known to be gone. Only Linux (`/proc`)
/// can tell; elsewhere the answer is "not known gone".
fn process_gone(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    proc_root.join("self").exists() && !proc_root.join(pid.to_string()).exists()
}

/// Removes temporary files left in `dir` by writers that died between
/// write and rename (they may hold live secrets): those of a process that
/// is gone, and any older than ten minutes. Returns how many were removed.
pub(crate) fn sweep_temps(dir: &Path, now: SystemTime) -> usize {
    let Ok(read) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for item in read.flatten() {
        let name = item.file_name();
        let name = name.to_str().unwrap_or_default();
        let pid: Option<u32> = if let Some(rest) = name.strip_prefix(TEMP_PREFIX) {
            rest.split('-').next().and_then(|p| p.parse().ok())
        } else if name.starts_with(PENDING_PREFIX) {
            read_pending(&item.path()).map(|h| h.pid)
        } else {
            continue;
        };
        let mine = pid == Some(std::process::id());
        let dead = pid.is_some_and(|p| !mine && process_gone(p));
        let age = item
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        // A few seconds' grace even for a dead writer's file: a writer in
        // another PID namespace sharing this directory looks dead from here.
        if (dead && age > TEMP_DEAD_GRACE) || age > TEMP_MAX_AGE || pid.is_none() {
            let path = item.path();
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed += 1;
                    log::info!(
                        "cache: removed {}, left by a writer that did not finish",
                        path.display()
                    );
                }
                Err(e) => log::debug!("cache: cannot remove {}: {e}", path.display()),
            }
        }
    }
    removed
}

pub(crate) fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            log::debug!("cache: removed {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}
