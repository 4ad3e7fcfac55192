//! The disk cache on a real file system: round trips, file modes, atomic
//! writes, corrupt entries, and the cross-process lock (exercised across
//! threads here; each `lock()` opens its own file, so threads exclude each
//! other as processes do).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use stslib::cache::{Cache, CacheUser};
use stslib::{Credentials, Env, Error, Secret};
use time::OffsetDateTime;

const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/Admin";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
const TOKEN: &str = "FwoGZXIvYXdzEJr//////////SESSIONTOKEN==";
const ALICE: CacheUser<'static> = CacheUser {
    profile: "alice",
    access_key_id: "AKIAALICE00000000001",
};
const BOB: CacheUser<'static> = CacheUser {
    profile: "bob",
    access_key_id: "AKIABOB0000000000001",
};
const ZERO: time::Duration = time::Duration::ZERO;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stslib-cache-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn creds(valid_for: time::Duration) -> Credentials {
    let now = OffsetDateTime::now_utc();
    Credentials {
        access_key_id: "ASIAEXAMPLE".into(),
        secret_access_key: Secret::new(SECRET),
        session_token: Secret::new(TOKEN),
        start_time: now - time::Duration::minutes(1),
        expiration: now + valid_for,
    }
}

fn cred(hit: stslib::cache::Cached) -> Credentials {
    hit.credentials
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_on_disk() {
    common::init_logger();
    let tmp = TempDir::new("round");
    let cache = Cache::new(tmp.path().join("c"));
    let zero = Duration::ZERO;
    assert_eq!(cache.load_token(ALICE, Some(SERIAL), zero).map(cred), None);

    let token = creds(time::Duration::hours(12));
    cache
        .store_token(ALICE, Some(SERIAL), &token, ZERO)
        .unwrap();
    assert_eq!(
        cache.load_token(ALICE, Some(SERIAL), zero).map(cred),
        Some(token.clone())
    );
    // Another key misses.
    assert_eq!(cache.load_token(ALICE, None, zero).map(cred), None);
    assert_eq!(cache.load_token(BOB, Some(SERIAL), zero).map(cred), None);

    let role = creds(time::Duration::hours(1));
    cache
        .store_role(ALICE, "prod", ROLE_ARN, &role, ZERO)
        .unwrap();
    assert_eq!(
        cache.load_role(ALICE, "prod", ROLE_ARN, zero).map(cred),
        Some(role.clone())
    );
    assert_eq!(
        cache.load_role(ALICE, "dev", ROLE_ARN, zero).map(cred),
        None
    );
    assert_eq!(
        cache
            .load_role(ALICE, "prod", "arn:aws:iam::1:role/X", zero)
            .map(cred),
        None
    );

    // A margin longer than the time left is a miss.
    assert_eq!(
        cache
            .load_role(ALICE, "prod", ROLE_ARN, Duration::from_secs(2 * 3600))
            .map(cred),
        None
    );

    // A replacement wins.
    let newer = creds(time::Duration::hours(11));
    cache
        .store_token(ALICE, Some(SERIAL), &newer, ZERO)
        .unwrap();
    assert_eq!(
        cache.load_token(ALICE, Some(SERIAL), zero).map(cred),
        Some(newer)
    );

    cache.remove_token(ALICE, Some(SERIAL)).unwrap();
    cache.remove_token(ALICE, Some(SERIAL)).unwrap(); // missing is fine
    assert_eq!(cache.load_token(ALICE, Some(SERIAL), zero).map(cred), None);
    cache.remove_role(ALICE, "prod", ROLE_ARN).unwrap();
    assert_eq!(
        cache.load_role(ALICE, "prod", ROLE_ARN, zero).map(cred),
        None
    );
}

#[test]
fn expired_entries_are_ignored() {
    let tmp = TempDir::new("expired");
    let cache = Cache::new(tmp.path());
    let mut old = creds(time::Duration::hours(1));
    old.start_time -= time::Duration::hours(3);
    old.expiration -= time::Duration::hours(2);
    cache.store_token(ALICE, None, &old, ZERO).unwrap();
    assert_eq!(
        cache.load_token(ALICE, None, Duration::ZERO).map(cred),
        None
    );
}

#[test]
fn file_names_and_contents_placement() {
    let tmp = TempDir::new("names");
    let cache = Cache::new(tmp.path());
    cache
        .store_token(ALICE, Some(SERIAL), &creds(time::Duration::hours(1)), ZERO)
        .unwrap();
    cache
        .store_role(
            ALICE,
            "prod",
            ROLE_ARN,
            &creds(time::Duration::hours(1)),
            ZERO,
        )
        .unwrap();
    let token_path = cache.token_path(ALICE, Some(SERIAL));
    let role_path = cache.role_path(ALICE, "prod", ROLE_ARN);
    assert_eq!(token_path.parent(), Some(tmp.path()));
    assert!(token_path.is_file() && role_path.is_file());
    for name in names(tmp.path()) {
        for leak in [SECRET, TOKEN, "mfa", "123456789012", "Admin"] {
            assert!(!name.contains(leak), "{name} contains {leak}");
        }
    }
    // Debug output carries paths only.
    let dbg = format!("{cache:?} {:?}", cache.lock().unwrap());
    assert!(!dbg.contains(SECRET) && !dbg.contains(TOKEN), "{dbg}");
}

#[cfg(unix)]
#[test]
fn modes_are_private() {
    let tmp = TempDir::new("modes");
    let dir = tmp.path().join("home/.stslib/cache");
    let cache = Cache::new(&dir);
    cache
        .store_token(ALICE, None, &creds(time::Duration::hours(1)), ZERO)
        .unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("home/.stslib")), 0o700);
    assert_eq!(mode(&cache.token_path(ALICE, None)), 0o600);
    let guard = cache.lock().unwrap();
    assert_eq!(guard.path(), dir.join("lock"));
    assert_eq!(mode(guard.path()), 0o600);
}

#[test]
fn atomic_writes_leave_no_temp_files() {
    let tmp = TempDir::new("atomic");
    let cache = Cache::new(tmp.path());
    for i in 0..20 {
        let c = creds(time::Duration::minutes(30 + i));
        cache.store_token(ALICE, Some(SERIAL), &c, ZERO).unwrap();
        cache.store_role(ALICE, "prod", ROLE_ARN, &c, ZERO).unwrap();
    }
    let n = names(tmp.path());
    assert_eq!(n.len(), 2, "{n:?}");
    assert!(n
        .iter()
        .all(|n| n.starts_with("token-") || n.starts_with("role-")));
}

#[test]
fn failed_write_leaves_no_temp_file() {
    let tmp = TempDir::new("fail");
    let cache = Cache::new(tmp.path());
    // A non-empty directory where the entry goes: the rename must fail.
    let target = cache.token_path(ALICE, None);
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), "x").unwrap();
    let err = cache
        .store_token(ALICE, None, &creds(time::Duration::hours(1)), ZERO)
        .unwrap_err();
    match &err {
        Error::Io { path, .. } => assert_eq!(path, &target),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(!err.to_string().contains(SECRET) && !err.to_string().contains(TOKEN));
    assert_eq!(
        names(tmp.path()),
        [target.file_name().unwrap().to_str().unwrap()]
    );
    // And a read of a directory is a miss, not an error.
    assert_eq!(
        cache.load_token(ALICE, None, Duration::ZERO).map(cred),
        None
    );
}

#[test]
fn unwritable_location_is_an_io_error() {
    let tmp = TempDir::new("unwritable");
    let file = tmp.path().join("plain-file");
    fs::write(&file, "not a directory").unwrap();
    let cache = Cache::new(file.join("cache"));
    let err = cache
        .store_token(ALICE, None, &creds(time::Duration::hours(1)), ZERO)
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path == &file.join("cache")),
        "{err:?}"
    );
    assert!(matches!(cache.lock(), Err(Error::Io { .. })));
    // Reads just miss.
    assert_eq!(
        cache.load_token(ALICE, None, Duration::ZERO).map(cred),
        None
    );

    // The cache path itself being a file is refused too.
    let err = Cache::new(&file)
        .store_token(ALICE, None, &creds(time::Duration::hours(1)), ZERO)
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path == &file),
        "{err:?}"
    );
}

#[test]
fn corrupt_entry_is_ignored_then_overwritten() {
    common::init_logger();
    let tmp = TempDir::new("corrupt");
    let cache = Cache::new(tmp.path());
    let good = creds(time::Duration::hours(2));
    cache.store_token(ALICE, Some(SERIAL), &good, ZERO).unwrap();
    let path = cache.token_path(ALICE, Some(SERIAL));
    let text = fs::read(&path).unwrap();

    // Truncated, garbage, binary, and another entry's contents.
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert_eq!(
        cache
            .load_token(ALICE, Some(SERIAL), Duration::ZERO)
            .map(cred),
        None
    );
    fs::write(&path, "garbage\n").unwrap();
    assert_eq!(
        cache
            .load_token(ALICE, Some(SERIAL), Duration::ZERO)
            .map(cred),
        None
    );
    fs::write(&path, [0xff, 0xfe, 0, 1, 2]).unwrap();
    assert_eq!(
        cache
            .load_token(ALICE, Some(SERIAL), Duration::ZERO)
            .map(cred),
        None
    );
    cache.store_token(BOB, Some(SERIAL), &good, ZERO).unwrap();
    fs::copy(cache.token_path(BOB, Some(SERIAL)), &path).unwrap();
    assert_eq!(
        cache
            .load_token(ALICE, Some(SERIAL), Duration::ZERO)
            .map(cred),
        None
    );

    cache.store_token(ALICE, Some(SERIAL), &good, ZERO).unwrap();
    assert_eq!(
        cache
            .load_token(ALICE, Some(SERIAL), Duration::ZERO)
            .map(cred),
        Some(good)
    );
}

#[test]
fn from_env_uses_override_then_home() {
    let tmp = TempDir::new("env");
    let over = tmp.path().join("override");
    let env = Env::from_pairs([
        ("HOME", tmp.path().to_str().unwrap()),
        ("STSLIB_CACHE_DIR", over.to_str().unwrap()),
    ]);
    assert_eq!(Cache::from_env(&env).unwrap().dir(), over);
    let env = Env::from_pairs([("HOME", tmp.path().to_str().unwrap())]);
    let cache = Cache::from_env(&env).unwrap();
    assert_eq!(cache.dir(), tmp.path().join(".stslib/cache"));
    cache
        .store_role(
            ALICE,
            "prod",
            ROLE_ARN,
            &creds(time::Duration::hours(1)),
            ZERO,
        )
        .unwrap();
    assert!(cache.role_path(ALICE, "prod", ROLE_ARN).is_file());
}

#[test]
fn lock_excludes_a_second_holder() {
    let tmp = TempDir::new("lock");
    let cache = Cache::new(tmp.path().join("c"));
    let first = cache.lock().unwrap();
    assert!(cache.try_lock().unwrap().is_none());
    assert!(cache
        .lock_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());

    let (acquired_tx, acquired_rx) = crossbeam_channel::bounded::<()>(0);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(0);
    let waiter = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let guard = cache.lock().unwrap();
            acquired_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            drop(guard);
        })
    };
    // The waiter cannot get past `lock()` while `first` is held: it has not
    // signalled, and the lock is still taken.
    assert!(acquired_rx.try_recv().is_err());
    assert!(cache.try_lock().unwrap().is_none());

    drop(first);
    acquired_rx.recv().unwrap();
    // Now the waiter holds it.
    assert!(cache.try_lock().unwrap().is_none());
    release_tx.send(()).unwrap();
    waiter.join().unwrap();

    let again = cache.try_lock().unwrap();
    assert!(again.is_some());
    drop(again);
    assert!(cache
        .lock_timeout(Duration::from_secs(5))
        .unwrap()
        .is_some());
}

#[test]
fn eight_racers_fetch_once() {
    // The binary's flow: lock, reuse a cached token or fetch and store one,
    // unlock. Eight at once must fetch exactly once.
    let tmp = TempDir::new("race");
    let cache = Cache::new(tmp.path().join("c"));
    let fetches = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, fetches, start) = (cache.clone(), fetches.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let _guard = cache.lock().unwrap();
                let margin = Duration::from_secs(60);
                match cache.load_token(ALICE, Some(SERIAL), margin).map(cred) {
                    Some(c) => c,
                    None => {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let c = creds(time::Duration::hours(12));
                        cache.store_token(ALICE, Some(SERIAL), &c, ZERO).unwrap();
                        c
                    }
                }
            })
        })
        .collect();
    let got: Vec<Credentials> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(got.windows(2).all(|w| w[0] == w[1]));
}

// ---- Trust: owners, modes, links, FIFOs (issue 11, item 1) ----------------

/// Another user's uid for the multi-user cases.
#[cfg(unix)]
const OTHER_UID: u32 = 65534;

/// Gives `path` to another user; false (with a loud message) when this
/// process may not (it is not root).
#[cfg(unix)]
fn give_away(path: &Path) -> bool {
    match std::os::unix::fs::chown(path, Some(OTHER_UID), Some(OTHER_UID)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "SKIPPED (multi-user case): cannot chown {} to uid {OTHER_UID} ({e}); \
                 run the tests as root to cover it",
                path.display()
            );
            false
        }
    }
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[test]
fn another_users_directory_is_refused() {
    common::init_logger();
    let tmp = TempDir::new("other-dir");
    let dir = tmp.path().join("c");
    let cache = Cache::new(&dir);
    let token = creds(time::Duration::hours(1));
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    assert!(cache.load_token(ALICE, None, Duration::ZERO).is_some());
    // The other user takes the directory and the entry (mode 0644, as the
    // attack left it): nothing in it is used any more.
    let entry = cache.token_path(ALICE, None);
    chmod(&entry, 0o644);
    if !give_away(&entry) || !give_away(&dir) {
        return;
    }
    assert_eq!(cache.load_token(ALICE, None, Duration::ZERO), None);
    let e = cache.store_token(ALICE, None, &token, ZERO).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("owned by uid 65534") && text.contains("not trusted"),
        "{text}"
    );
    assert!(
        matches!(e, Error::Io { ref path, .. } if path == &dir),
        "{e:?}"
    );
    let e = cache.lock().unwrap_err().to_string();
    assert!(e.contains("owned by uid 65534"), "{e}");
    assert!(cache.entries().is_err());
}

#[cfg(unix)]
#[test]
fn another_users_entry_in_my_directory_is_ignored() {
    let tmp = TempDir::new("other-entry");
    let cache = Cache::new(tmp.path());
    let token = creds(time::Duration::hours(1));
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    cache
        .store_role(ALICE, "prod", ROLE_ARN, &token, ZERO)
        .unwrap();
    let entry = cache.token_path(ALICE, None);
    chmod(&entry, 0o644);
    if !give_away(&entry) {
        return;
    }
    assert_eq!(cache.load_token(ALICE, None, Duration::ZERO), None);
    // Its mode is left alone: it is not ours to change.
    assert_eq!(mode(&entry), 0o644);
    // The directory itself is still fine.
    assert!(cache
        .load_role(ALICE, "prod", ROLE_ARN, Duration::ZERO)
        .is_some());
    let listed = cache.entries().unwrap();
    let bad = listed.iter().find(|e| e.path == entry).unwrap();
    assert!(
        bad.problem.as_deref().unwrap().contains("owned by uid"),
        "{bad:?}"
    );
    // A store replaces it with one of ours.
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    assert_eq!(
        cache.load_token(ALICE, None, Duration::ZERO).map(cred),
        Some(token)
    );
}

#[cfg(unix)]
#[test]
fn a_directory_others_can_write_is_refused() {
    let tmp = TempDir::new("open-dir");
    let dir = tmp.path().join("c");
    let cache = Cache::new(&dir);
    let token = creds(time::Duration::hours(1));
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    for open in [0o777, 0o770, 0o1777] {
        chmod(&dir, open);
        assert_eq!(
            cache.load_token(ALICE, None, Duration::ZERO),
            None,
            "{open:o}"
        );
        let e = cache.store_token(ALICE, None, &token, ZERO).unwrap_err();
        assert!(
            e.to_string().contains("writable by group or others"),
            "{open:o}: {e}"
        );
        assert!(cache.lock().is_err());
        // Never tightened behind the user's back: it may be shared on purpose.
        assert_eq!(mode(&dir), open & 0o777);
    }
    // Readable by others is fine: entries are 0600 and names hold no secret.
    chmod(&dir, 0o755);
    assert!(cache.load_token(ALICE, None, Duration::ZERO).is_some());
}

/// A directory above the cache directory that another user may write to
/// without the sticky bit lets them rename the cache directory away and put
/// their own in its place: refused, naming that directory. A sticky one
/// (as `/tmp`, where only an entry's owner may rename it) is fine.
#[cfg(unix)]
#[test]
fn a_parent_others_can_write_is_refused_unless_sticky() {
    let tmp = TempDir::new("open-parent");
    let parent = tmp.path().join("p");
    let dir = parent.join("q").join("c");
    let cache = Cache::new(&dir);
    let token = creds(time::Duration::hours(1));
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    for open in [0o777, 0o775, 0o757] {
        chmod(&parent, open);
        assert_eq!(
            cache.load_token(ALICE, None, Duration::ZERO),
            None,
            "{open:o}"
        );
        let e = cache.store_token(ALICE, None, &token, ZERO).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("inside {}", parent.display()))
                && text.contains("without the sticky bit"),
            "{open:o}: {text}"
        );
        assert!(
            matches!(e, Error::Io { ref path, .. } if path == &dir),
            "{e:?}"
        );
        assert!(cache.lock().is_err(), "{open:o}");
        assert!(cache.entries().is_err(), "{open:o}");
    }
    chmod(&parent, 0o1777);
    assert!(cache.load_token(ALICE, None, Duration::ZERO).is_some());
    chmod(&parent, 0o755);
    assert!(cache.load_token(ALICE, None, Duration::ZERO).is_some());
    // A link to the cache directory is judged by where it leads.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let via_link = Cache::new(&link);
    assert!(via_link.load_token(ALICE, None, Duration::ZERO).is_some());
    chmod(&parent, 0o777);
    assert_eq!(via_link.load_token(ALICE, None, Duration::ZERO), None);
    chmod(&parent, 0o755);
}

/// A directory above the cache directory owned by another user (not root)
/// is refused: they may rename what is in it.
#[cfg(unix)]
#[test]
fn a_parent_owned_by_another_user_is_refused() {
    let tmp = TempDir::new("other-parent");
    let parent = tmp.path().join("p");
    let dir = parent.join("c");
    let cache = Cache::new(&dir);
    let token = creds(time::Duration::hours(1));
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    if !give_away(&parent) {
        return;
    }
    assert_eq!(cache.load_token(ALICE, None, Duration::ZERO), None);
    let e = cache.store_token(ALICE, None, &token, ZERO).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("owned by uid 65534, neither root nor the current user"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn entries_writable_by_others_are_ignored_and_readable_ones_tightened() {
    let tmp = TempDir::new("entry-modes");
    let cache = Cache::new(tmp.path());
    let token = creds(time::Duration::hours(1));
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    let entry = cache.token_path(ALICE, None);
    chmod(&entry, 0o666);
    assert_eq!(cache.load_token(ALICE, None, Duration::ZERO), None);
    chmod(&entry, 0o644);
    assert_eq!(
        cache.load_token(ALICE, None, Duration::ZERO).map(cred),
        Some(token)
    );
    assert_eq!(mode(&entry), 0o600, "a 0644 leftover of ours is tightened");
}

#[cfg(unix)]
#[test]
fn links_are_never_followed() {
    let tmp = TempDir::new("links");
    let cache = Cache::new(tmp.path().join("c"));
    let token = creds(time::Duration::hours(1));
    cache.store_token(BOB, None, &token, ZERO).unwrap();
    // A link at alice's entry pointing at a valid entry: refused.
    let entry = cache.token_path(ALICE, None);
    std::os::unix::fs::symlink(cache.token_path(BOB, None), &entry).unwrap();
    assert_eq!(cache.load_token(ALICE, None, Duration::ZERO), None);
    // A link at `lock`: refused, and its target is never created.
    let target = tmp.path().join("victim-file");
    std::os::unix::fs::symlink(&target, tmp.path().join("c/lock")).unwrap();
    let e = cache.lock().unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(cache.try_lock().is_err());
    assert!(!target.exists(), "the lock's link was followed");
    // A store over the entry's link replaces the link, not its target.
    cache.store_token(ALICE, None, &token, ZERO).unwrap();
    assert!(!fs::symlink_metadata(&entry)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(cache.load_token(BOB, None, Duration::ZERO).is_some());
}

#[cfg(unix)]
#[test]
fn a_fifo_at_an_entry_never_hangs_a_load() {
    let tmp = TempDir::new("fifo");
    let cache = Cache::new(tmp.path());
    let entry = cache.token_path(ALICE, None);
    let made = std::process::Command::new("mkfifo")
        .arg(&entry)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = crossbeam_channel::bounded(1);
    let c = cache.clone();
    std::thread::spawn(move || {
        let _ = tx.send(c.load_token(ALICE, None, Duration::ZERO));
    });
    // Bounded wait: a hang is a failure, not a stuck test run.
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("loading a FIFO hung");
    assert_eq!(got, None);
    let listed = cache.entries().unwrap();
    assert_eq!(listed[0].problem.as_deref(), Some("not a regular file"));
    // A FIFO at `lock`: refused at once, not waited on.
    let made = std::process::Command::new("mkfifo")
        .arg(tmp.path().join("lock"))
        .status()
        .unwrap();
    assert!(made.success());
    let e = cache.lock().unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn a_relative_directory_is_refused() {
    // HOME unset and STSLIB_CACHE_DIR=~/x: no `./~/x` under the cwd.
    let env = Env::from_pairs([("STSLIB_CACHE_DIR", "~/x")]);
    let e = Cache::from_env(&env).unwrap_err();
    assert!(matches!(
        e,
        Error::InvalidInput {
            field: "STSLIB_CACHE_DIR",
            ..
        }
    ));
    assert!(e.to_string().contains("not an absolute path"), "{e}");
    let env = Env::from_pairs([("STSLIB_CACHE_DIR", "rel/dir")]);
    assert!(Cache::from_env(&env).is_err());
    // Made directly, it never writes anywhere.
    let cache = Cache::new("stslib-relative-cache-test");
    let e = cache
        .store_token(ALICE, None, &creds(time::Duration::hours(1)), ZERO)
        .unwrap_err();
    assert!(e.to_string().contains("absolute"), "{e}");
    assert!(cache.lock().is_err());
    assert!(!Path::new("stslib-relative-cache-test").exists());
}

// ---- Leftover temporary files (item 4) --------------------------------------

#[test]
fn temp_files_of_dead_writers_are_swept() {
    let tmp = TempDir::new("sweep");
    let cache = Cache::new(tmp.path());
    // A process that is gone: a child that has exited and been reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let now = std::time::SystemTime::now();
    let dead_file = tmp.path().join(format!(".tmp-{dead}-0-00000000deadbeef"));
    let old_file = tmp
        .path()
        .join(format!(".tmp-{}-7-0000000000000old", std::process::id()));
    let live_file = tmp
        .path()
        .join(format!(".tmp-{}-9-00000000000live", std::process::id()));
    for (path, age) in [(&dead_file, 5), (&old_file, 3600), (&live_file, 0)] {
        fs::write(path, format!("secret_access_key={SECRET}\n")).unwrap();
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    assert_eq!(cache.sweep(), 2);
    let left = names(tmp.path());
    assert_eq!(left, [live_file.file_name().unwrap().to_str().unwrap()]);
    // A store sweeps too.
    fs::write(&dead_file, "x").unwrap();
    let f = fs::File::options().write(true).open(&dead_file).unwrap();
    f.set_modified(now - Duration::from_secs(5)).unwrap();
    cache
        .store_token(ALICE, None, &creds(time::Duration::hours(1)), ZERO)
        .unwrap();
    assert!(!dead_file.exists());
    assert!(
        live_file.exists(),
        "a live writer's fresh file is left alone"
    );
}

// ---- The lock's holder and bounded wait (item 6) ----------------------------

#[test]
fn a_bounded_wait_names_the_holder() {
    let tmp = TempDir::new("holder");
    let cache = Cache::new(tmp.path().join("c"));
    let held = cache.lock().unwrap();
    let text = fs::read_to_string(held.path()).unwrap();
    assert!(
        text.starts_with(&format!("pid={}\nsince=", std::process::id())),
        "{text}"
    );
    let started = std::time::Instant::now();
    let e = cache.lock_within(Duration::from_millis(200)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "held after 200ms by pid {} (since ",
            std::process::id()
        )),
        "{text}"
    );
    match &e {
        Error::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("{other:?}"),
    }
    drop(held);
    // Released: the record is cleared and the next taker gets it at once.
    assert_eq!(fs::read_to_string(tmp.path().join("c/lock")).unwrap(), "");
    let again = cache.lock_within(Duration::from_millis(200)).unwrap();
    drop(again);
}

// ---- Listing and clearing (item 10) -----------------------------------------

#[test]
fn entries_list_and_clear_by_profile() {
    let tmp = TempDir::new("list");
    let cache = Cache::new(tmp.path().join("c"));
    assert!(
        cache.entries().unwrap().is_empty(),
        "absent dir lists nothing"
    );
    let c = creds(time::Duration::hours(1));
    cache.store_token(ALICE, Some(SERIAL), &c, ZERO).unwrap();
    cache.store_role(ALICE, "prod", ROLE_ARN, &c, ZERO).unwrap();
    cache.store_role(ALICE, "dev", ROLE_ARN, &c, ZERO).unwrap();
    cache.store_token(BOB, None, &c, ZERO).unwrap();
    let listed = cache.entries().unwrap();
    assert_eq!(listed.len(), 4);
    let prod = listed
        .iter()
        .find(|e| e.role_profile.as_deref() == Some("prod"))
        .unwrap();
    assert_eq!(prod.kind, "role");
    assert_eq!(prod.source_profile, "alice");
    assert_eq!(prod.role_arn.as_deref(), Some(ROLE_ARN));
    assert_eq!(prod.expiration, Some(c.expiration));
    let left = prod.remaining_at(OffsetDateTime::now_utc()).unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
    assert!(!format!("{listed:?}").contains(SECRET));

    // A role profile: just that role.
    let gone = cache.clear(Some("prod")).unwrap();
    assert_eq!(gone, [cache.role_path(ALICE, "prod", ROLE_ARN)]);
    // A user profile: its token and every role sourced from it.
    assert_eq!(cache.clear(Some("alice")).unwrap().len(), 2);
    assert!(cache.load_token(BOB, None, Duration::ZERO).is_some());
    // Everything.
    assert_eq!(cache.clear(None).unwrap().len(), 1);
    assert!(names(&tmp.path().join("c")).is_empty());
}

// ---- Sessions sharing a cache: the lock, evictions, clocks -----------------

mod sessions {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use stslib::emulator::{Action, Emulator, Fault};
    use stslib::profile::ProfileFiles;
    use stslib::{Session, TokenMiss, TokenOrigin};

    const KEY: &str = "AKIACACHESESSION0001";
    const USER_SECRET: &str = "cache/session/secret/000000000000000000000";
    const MFA: &str = "arn:aws:iam::123456789012:mfa/alice";
    const CODE: &str = "271828";
    const USER: CacheUser<'static> = CacheUser {
        profile: "alice",
        access_key_id: KEY,
    };

    fn emulator(offset: time::Duration) -> Emulator {
        Emulator::builder()
            .user("alice", KEY, USER_SECRET)
            .mfa_device("alice", MFA, CODE)
            .require_mfa(true)
            .clock_offset(offset)
            .start()
            .unwrap()
    }

    fn files(extra: &str) -> ProfileFiles {
        ProfileFiles::from_strings(
            &format!(
                "[profile alice]\nmfa_serial = {MFA}\n\
                 [profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = alice\n\
                 [profile r2]\nrole_arn = arn:aws:iam::123456789012:role/r2\nsource_profile = alice\n\
                 {extra}"
            ),
            &format!("[alice]\naws_access_key_id = {KEY}\naws_secret_access_key = {USER_SECRET}\n"),
        )
        .unwrap()
    }

    fn builder(emu: &Emulator, cache: &Cache, files: ProfileFiles) -> stslib::SessionBuilder {
        Session::builder()
            .env(Env::from_pairs([("AWS_ENDPOINT_URL_IAM", emu.endpoint())]))
            .files(files)
            .profile("alice")
            .endpoint(emu.endpoint())
            .refresh(false)
            .cache(cache.clone())
    }

    /// Item 6: the MFA provider (which may wait on a person) is never
    /// called while this session holds the cache's lock.
    #[test]
    fn the_mfa_prompt_never_runs_under_the_lock() {
        common::init_logger();
        let emu = emulator(time::Duration::ZERO);
        let tmp = TempDir::new("prompt-lock");
        let cache = Cache::new(tmp.path().join("c"));
        let free = Arc::new(AtomicBool::new(false));
        let (c, f) = (cache.clone(), free.clone());
        let session = builder(&emu, &cache, files(""))
            .mfa_provider(move |_| {
                f.store(c.try_lock().unwrap().is_some(), Ordering::SeqCst);
                Ok(Secret::new(CODE))
            })
            .build()
            .unwrap();
        let out = session.generate_credentials(&["r"]).unwrap();
        assert!(out["r"].is_ok());
        assert!(free.load(Ordering::SeqCst), "the prompt ran under the lock");
        assert_eq!(session.token_origin(), Some(TokenOrigin::Sts));
        assert_eq!(session.token_miss(), Some(TokenMiss::NotCached));
    }

    /// Item 6: a lock held elsewhere (a process stuck on a hung server) is
    /// waited for with a bound; then the session goes on without it.
    #[test]
    fn a_held_lock_is_waited_for_with_a_bound() {
        common::init_logger();
        let emu = emulator(time::Duration::ZERO);
        let tmp = TempDir::new("held-lock");
        let cache = Cache::new(tmp.path().join("c")).lock_wait(Duration::from_millis(300));
        let held = cache.lock().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = cache.clone();
        let files = files("");
        let endpoint = emu.endpoint();
        std::thread::spawn(move || {
            let session = Session::builder()
                .env(Env::from_pairs([(
                    "AWS_ENDPOINT_URL_IAM",
                    endpoint.clone(),
                )]))
                .files(files)
                .profile("alice")
                .endpoint(endpoint)
                .refresh(false)
                .cache(c)
                .mfa_provider(|_| Ok(Secret::new(CODE)))
                .build()
                .unwrap();
            let _ = tx.send(session.generate_credentials(&["r"]).map(|o| o["r"].is_ok()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the session waited for the lock without a bound");
        assert!(got.unwrap());
        drop(held);
        // What it got was stored all the same.
        assert!(cache.load_token(USER, Some(MFA), Duration::ZERO).is_some());
    }

    /// Item 6: the cache's lock is not held while STS is called: a server
    /// that checks it while answering finds it free, and finds the
    /// in-flight record naming this process.
    #[test]
    fn the_lock_is_free_while_sts_answers() {
        use common::responder::{Responder, Step};
        use std::sync::OnceLock;
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        static SEEN: std::sync::Mutex<Option<(bool, String)>> = std::sync::Mutex::new(None);
        fn respond(stream: &mut std::net::TcpStream) {
            use std::io::Write as _;
            let dir = DIR.get().unwrap();
            let free = Cache::new(dir).try_lock().unwrap().is_some();
            let pending = fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| {
                    let e = e.unwrap();
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with("pending-token-")
                        .then(|| fs::read_to_string(e.path()).unwrap())
                })
                .collect::<String>();
            *SEEN.lock().unwrap() = Some((free, pending));
            let expiration = (OffsetDateTime::now_utc() + time::Duration::hours(1))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let body = format!(
                "<GetSessionTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <GetSessionTokenResult><Credentials><AccessKeyId>ASIAFROMRESPONDER01</AccessKeyId>\
                 <SecretAccessKey>responderSecret</SecretAccessKey><SessionToken>responderToken</SessionToken>\
                 <Expiration>{expiration}</Expiration></Credentials></GetSessionTokenResult>\
                 <ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></GetSessionTokenResponse>"
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        let tmp = TempDir::new("free-during-call");
        let dir = tmp.path().join("c");
        DIR.set(dir.clone()).unwrap();
        let cache = Cache::new(&dir);
        let server = Responder::start(vec![Step::Raw(respond)]);
        let session = Session::builder()
            .env(Env::from_pairs([(
                "AWS_ENDPOINT_URL_IAM",
                server.url.clone(),
            )]))
            .files(files(""))
            .profile("alice")
            .endpoint(server.url.clone())
            .refresh(false)
            .cache(cache.clone())
            .mfa_provider(|_| Ok(Secret::new(CODE)))
            .build()
            .unwrap();
        let token = session
            .generate_session_token(Duration::from_secs(3600), None)
            .unwrap();
        assert_eq!(token.access_key_id, "ASIAFROMRESPONDER01");
        let (free, pending) = SEEN.lock().unwrap().take().expect("STS was called");
        assert!(free, "the lock was held across the STS call");
        assert!(
            pending.starts_with(&format!("pid={}\nsince=", std::process::id())),
            "{pending:?}"
        );
        // Done: the record is gone, the token is stored.
        assert!(!names(&dir).iter().any(|n| n.starts_with("pending-")));
        assert!(cache.load_token(USER, Some(MFA), Duration::ZERO).is_some());
    }

    /// Item 6: another process's in-flight fetch is waited for (its result
    /// is used, no second call); a record left by a dead process is not.
    #[test]
    fn another_processes_fetch_is_waited_for_unless_it_died() {
        common::init_logger();
        let emu = emulator(time::Duration::ZERO);
        let tmp = TempDir::new("in-flight");
        let cache = Cache::new(tmp.path().join("c")).lock_wait(Duration::from_secs(60));
        let token_path = cache.token_path(USER, Some(MFA));
        let pending = token_path.with_file_name(format!(
            "pending-{}",
            token_path.file_name().unwrap().to_str().unwrap()
        ));
        let since = OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let record = |pid: u32| {
            fs::create_dir_all(tmp.path().join("c")).unwrap();
            chmod(&tmp.path().join("c"), 0o700);
            fs::write(&pending, format!("pid={pid}\nsince={since}\n")).unwrap();
            chmod(&pending, 0o600);
        };
        let run = |cache: Cache| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let (files, endpoint) = (files(""), emu.endpoint());
            std::thread::spawn(move || {
                let session = Session::builder()
                    .env(Env::from_pairs([(
                        "AWS_ENDPOINT_URL_IAM",
                        endpoint.clone(),
                    )]))
                    .files(files)
                    .profile("alice")
                    .endpoint(endpoint)
                    .refresh(false)
                    .cache(cache)
                    .mfa_provider(|_| Ok(Secret::new(CODE)))
                    .build()
                    .unwrap();
                let _ = tx.send(
                    session
                        .generate_session_token(Duration::from_secs(3600), None)
                        .map(|t| (t, session.token_origin())),
                );
            });
            rx
        };

        // A live process (a child that sleeps) is fetching: its token lands
        // in the cache while this one waits, and is used.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        record(child.id());
        let rx = run(cache.clone());
        std::thread::sleep(Duration::from_millis(200));
        let theirs = creds(time::Duration::hours(10));
        cache.store_token(USER, Some(MFA), &theirs, ZERO).unwrap();
        let (got, origin) = rx.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
        assert_eq!(got, theirs);
        assert_eq!(origin, Some(TokenOrigin::Cache));
        assert_eq!(emu.request_count(Action::GetSessionToken), 0);
        child.kill().unwrap();
        child.wait().unwrap();

        // The same record of a process that is gone: not waited for (the
        // wait would be 60 s), fetched here at once.
        cache.remove_token(USER, Some(MFA)).unwrap();
        record(child.id());
        let rx = run(cache.clone());
        let (got, origin) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("waited on a dead process's record")
            .unwrap();
        assert_eq!(origin, Some(TokenOrigin::Sts));
        assert_ne!(got, theirs);
        assert_eq!(emu.request_count(Action::GetSessionToken), 1);
        assert!(!pending.exists() || fs::read_to_string(&pending).unwrap().is_empty());
    }

    /// Item 3: a cached token STS rejects is dropped from the cache and,
    /// with a code at hand, replaced in the same call.
    #[test]
    fn a_rejected_cached_token_is_evicted_and_replaced() {
        common::init_logger();
        let emu = emulator(time::Duration::ZERO);
        let tmp = TempDir::new("rejected");
        let cache = Cache::new(tmp.path().join("c"));
        // A token STS never issued (or has revoked), valid by its dates.
        let dead = creds(time::Duration::hours(10));
        cache.store_token(USER, Some(MFA), &dead, ZERO).unwrap();

        // No code source: the role keeps STS's answer, and the entry is gone.
        let session = builder(&emu, &cache, files("")).build().unwrap();
        let mut out = session.generate_credentials(&["r"]).unwrap();
        let e = out.remove("r").unwrap().unwrap_err();
        assert_eq!(e.code(), Some("InvalidClientTokenId"), "{e}");
        assert!(session.session_token().is_none());
        assert_eq!(
            session.token_miss(),
            Some(TokenMiss::Rejected {
                code: "InvalidClientTokenId".into()
            })
        );
        assert!(!cache.token_path(USER, Some(MFA)).exists());

        // With a code source: one call drops it and gets a new one.
        cache.store_token(USER, Some(MFA), &dead, ZERO).unwrap();
        let session = builder(&emu, &cache, files(""))
            .mfa_provider(|_| Ok(Secret::new(CODE)))
            .build()
            .unwrap();
        let out = session.generate_credentials(&["r"]).unwrap();
        assert!(out["r"].is_ok(), "{:?}", out["r"]);
        assert_eq!(emu.request_count(Action::GetSessionToken), 1);
        assert_eq!(session.token_origin(), Some(TokenOrigin::Sts));
        let now_cached = cache.load_token(USER, Some(MFA), Duration::ZERO).unwrap();
        assert_ne!(now_cached.credentials.access_key_id, dead.access_key_id);
    }

    /// Item 3: an explicit code always makes a new session, even over a
    /// valid cached one.
    #[test]
    fn an_explicit_code_makes_a_new_session() {
        let emu = emulator(time::Duration::ZERO);
        let tmp = TempDir::new("explicit");
        let cache = Cache::new(tmp.path().join("c"));
        let s1 = builder(&emu, &cache, files("")).build().unwrap();
        let first = s1
            .generate_session_token(Duration::from_secs(3600), Some(CODE))
            .unwrap();
        let s2 = builder(&emu, &cache, files("")).build().unwrap();
        let reused = s2
            .generate_session_token(Duration::from_secs(3600), None)
            .unwrap();
        assert_eq!(reused.access_key_id, first.access_key_id);
        assert_eq!(s2.token_origin(), Some(TokenOrigin::Cache));
        let second = s2
            .generate_session_token(Duration::from_secs(3600), Some(CODE))
            .unwrap();
        assert_ne!(second.access_key_id, first.access_key_id);
        assert_eq!(s2.token_origin(), Some(TokenOrigin::Sts));
        assert_eq!(emu.request_count(Action::GetSessionToken), 2);
        let renewed = s2
            .renew_session_token(Duration::from_secs(3600), Some(CODE))
            .unwrap();
        assert_ne!(renewed.access_key_id, second.access_key_id);
        assert_eq!(s2.token_miss(), Some(TokenMiss::Renewal));
    }

    /// Item 8: a cached 15-minute token serves the roles it must mint,
    /// whatever lifetime the caller would ask for a new token.
    #[test]
    fn reuse_depends_on_the_tokens_own_life_not_the_callers_lifetime() {
        let emu = emulator(time::Duration::ZERO);
        let tmp = TempDir::new("own-life");
        let cache = Cache::new(tmp.path().join("c"));
        let f = || {
            files("[profile short]\nrole_arn = arn:aws:iam::123456789012:role/s\nsource_profile = alice\nduration_seconds = 900\n")
        };
        let s1 = builder(&emu, &cache, f()).build().unwrap();
        s1.generate_session_token(Duration::from_secs(900), Some(CODE))
            .unwrap();
        // A later run asks 12 h for new tokens: the 15-min one still serves.
        let s2 = builder(&emu, &cache, f())
            .token_lifetime(Duration::from_secs(12 * 3600))
            .build()
            .unwrap();
        // A 1-hour role (a 15-minute refresh window) from a token that has
        // just under 15 minutes left.
        let out = s2.generate_credentials(&["r"]).unwrap();
        assert!(out["r"].is_ok(), "{:?}", out["r"]);
        let out = s2.generate_credentials(&["short"]).unwrap();
        assert!(out["short"].is_ok(), "{:?}", out["short"]);
        assert_eq!(emu.request_count(Action::GetSessionToken), 1);
        assert_eq!(s2.token_origin(), Some(TokenOrigin::Cache));
        // `generate_session_token` without a code reuses it too.
        let s3 = builder(&emu, &cache, f()).build().unwrap();
        s3.generate_session_token(Duration::from_secs(12 * 3600), None)
            .unwrap();
        assert_eq!(emu.request_count(Action::GetSessionToken), 1);
    }

    /// Item 16: with a local clock 2 h ahead of STS, the offset learnt by
    /// one process is kept with what it caches: the next process's role
    /// cache hits and its first request is signed right.
    #[test]
    fn the_learnt_clock_offset_is_kept_with_the_cache() {
        common::init_logger();
        let emu = emulator(time::Duration::hours(-2));
        let tmp = TempDir::new("clock");
        let cache = Cache::new(tmp.path().join("c"));
        let s1 = builder(&emu, &cache, files(""))
            .mfa_provider(|_| Ok(Secret::new(CODE)))
            .build()
            .unwrap();
        assert!(s1.generate_credentials(&["r"]).unwrap()["r"].is_ok());
        let rejected = |emu: &Emulator| {
            emu.requests()
                .iter()
                .filter(|r| r.code.as_deref().is_some_and(|c| c != "AccessDenied"))
                .count()
        };
        let paid = rejected(&emu);
        assert!(
            paid >= 1,
            "the first process learns the offset the hard way"
        );
        let before = emu.request_count(Action::Any);

        // A new process (a new client that has learnt nothing).
        let s2 = builder(&emu, &cache, files("")).build().unwrap();
        assert!(s2.generate_credentials(&["r"]).unwrap()["r"].is_ok());
        assert_eq!(
            emu.request_count(Action::Any),
            before,
            "the role cache missed"
        );
        // A role not cached yet: the cached token, signed right at once.
        assert!(s2.generate_credentials(&["r2"]).unwrap()["r2"].is_ok());
        assert_eq!(emu.request_count(Action::Any), before + 1);
        assert_eq!(rejected(&emu), paid, "a request was rejected for its time");
        let skew = s2.client().clock_skew();
        assert!(
            (skew + time::Duration::hours(2)).abs() < time::Duration::seconds(5),
            "{skew}"
        );
    }

    /// Item 9: no MFA device anywhere and IAM denies the lookup: with
    /// `require_mfa`, a clear error naming where it looked.
    #[test]
    fn no_mfa_device_found_is_an_error_when_mfa_is_required() {
        let emu = emulator(time::Duration::ZERO);
        emu.inject(Action::ListMFADevices, Fault::access_denied(), 10);
        let tmp = TempDir::new("no-mfa");
        let cache = Cache::new(tmp.path().join("c"));
        let bare = ProfileFiles::from_strings(
            "[profile alice]\n[profile r]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = alice\n",
            &format!("[alice]\naws_access_key_id = {KEY}\naws_secret_access_key = {USER_SECRET}\n"),
        )
        .unwrap();
        let session = builder(&emu, &cache, bare.clone())
            .require_mfa(true)
            .build()
            .unwrap();
        let e = session
            .generate_session_token(Duration::from_secs(3600), None)
            .unwrap_err();
        let text = e.to_string();
        for part in [
            "no MFA device found",
            "profile `alice` has no mfa_serial",
            "no role profile sourced from it names one",
            "ListMFADevices was denied",
            "--no-mfa",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert_eq!(emu.request_count(Action::GetSessionToken), 0);
        assert!(!cache.dir().exists() || cache.entries().unwrap().is_empty());
        // Without require_mfa a session without MFA is asked for (with a
        // warning); this STS requires MFA of this user, so it says no.
        let session = builder(&emu, &cache, bare).build().unwrap();
        let e = session
            .generate_session_token(Duration::from_secs(3600), None)
            .unwrap_err();
        assert_eq!(e.code(), Some("AccessDenied"), "{e}");
        let asked = emu.requests();
        let gst = asked
            .iter()
            .find(|r| r.action == Some(Action::GetSessionToken))
            .unwrap();
        assert_eq!(gst.serial_number, None);
    }
}
