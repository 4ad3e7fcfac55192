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

use stslib::{Cache, Credentials, Env, Error, Secret};
use time::OffsetDateTime;

const SERIAL: &str = "arn:aws:iam::123456789012:mfa/alice";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/Admin";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
const TOKEN: &str = "FwoGZXIvYXdzEJr//////////SESSIONTOKEN==";

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
        fs::create_dir_all(&dir).unwrap();
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
    assert_eq!(cache.load_token("alice", Some(SERIAL), zero), None);

    let token = creds(time::Duration::hours(12));
    cache.store_token("alice", Some(SERIAL), &token).unwrap();
    assert_eq!(
        cache.load_token("alice", Some(SERIAL), zero),
        Some(token.clone())
    );
    // Another key misses.
    assert_eq!(cache.load_token("alice", None, zero), None);
    assert_eq!(cache.load_token("bob", Some(SERIAL), zero), None);

    let role = creds(time::Duration::hours(1));
    cache.store_role("alice", "prod", ROLE_ARN, &role).unwrap();
    assert_eq!(
        cache.load_role("alice", "prod", ROLE_ARN, zero),
        Some(role.clone())
    );
    assert_eq!(cache.load_role("alice", "dev", ROLE_ARN, zero), None);
    assert_eq!(
        cache.load_role("alice", "prod", "arn:aws:iam::1:role/X", zero),
        None
    );

    // A margin longer than the time left is a miss.
    assert_eq!(
        cache.load_role("alice", "prod", ROLE_ARN, Duration::from_secs(2 * 3600)),
        None
    );

    // A replacement wins.
    let newer = creds(time::Duration::hours(11));
    cache.store_token("alice", Some(SERIAL), &newer).unwrap();
    assert_eq!(cache.load_token("alice", Some(SERIAL), zero), Some(newer));

    cache.remove_token("alice", Some(SERIAL)).unwrap();
    cache.remove_token("alice", Some(SERIAL)).unwrap(); // missing is fine
    assert_eq!(cache.load_token("alice", Some(SERIAL), zero), None);
    cache.remove_role("alice", "prod", ROLE_ARN).unwrap();
    assert_eq!(cache.load_role("alice", "prod", ROLE_ARN, zero), None);
}

#[test]
fn expired_entries_are_ignored() {
    let tmp = TempDir::new("expired");
    let cache = Cache::new(tmp.path());
    let mut old = creds(time::Duration::hours(1));
    old.start_time -= time::Duration::hours(3);
    old.expiration -= time::Duration::hours(2);
    cache.store_token("alice", None, &old).unwrap();
    assert_eq!(cache.load_token("alice", None, Duration::ZERO), None);
}

#[test]
fn file_names_and_contents_placement() {
    let tmp = TempDir::new("names");
    let cache = Cache::new(tmp.path());
    cache
        .store_token("alice", Some(SERIAL), &creds(time::Duration::hours(1)))
        .unwrap();
    cache
        .store_role("alice", "prod", ROLE_ARN, &creds(time::Duration::hours(1)))
        .unwrap();
    let token_path = cache.token_path("alice", Some(SERIAL));
    let role_path = cache.role_path("alice", "prod", ROLE_ARN);
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
        .store_token("alice", None, &creds(time::Duration::hours(1)))
        .unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("home/.stslib")), 0o700);
    assert_eq!(mode(&cache.token_path("alice", None)), 0o600);
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
        cache.store_token("alice", Some(SERIAL), &c).unwrap();
        cache.store_role("alice", "prod", ROLE_ARN, &c).unwrap();
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
    let target = cache.token_path("alice", None);
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), "x").unwrap();
    let err = cache
        .store_token("alice", None, &creds(time::Duration::hours(1)))
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
    assert_eq!(cache.load_token("alice", None, Duration::ZERO), None);
}

#[test]
fn unwritable_location_is_an_io_error() {
    let tmp = TempDir::new("unwritable");
    let file = tmp.path().join("plain-file");
    fs::write(&file, "not a directory").unwrap();
    let cache = Cache::new(file.join("cache"));
    let err = cache
        .store_token("alice", None, &creds(time::Duration::hours(1)))
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path == &file.join("cache")),
        "{err:?}"
    );
    assert!(matches!(cache.lock(), Err(Error::Io { .. })));
    // Reads just miss.
    assert_eq!(cache.load_token("alice", None, Duration::ZERO), None);

    // The cache path itself being a file is refused too.
    let err = Cache::new(&file)
        .store_token("alice", None, &creds(time::Duration::hours(1)))
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
    cache.store_token("alice", Some(SERIAL), &good).unwrap();
    let path = cache.token_path("alice", Some(SERIAL));
    let text = fs::read(&path).unwrap();

    // Truncated, garbage, binary, and another entry's contents.
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert_eq!(
        cache.load_token("alice", Some(SERIAL), Duration::ZERO),
        None
    );
    fs::write(&path, "garbage\n").unwrap();
    assert_eq!(
        cache.load_token("alice", Some(SERIAL), Duration::ZERO),
        None
    );
    fs::write(&path, [0xff, 0xfe, 0, 1, 2]).unwrap();
    assert_eq!(
        cache.load_token("alice", Some(SERIAL), Duration::ZERO),
        None
    );
    cache.store_token("bob", Some(SERIAL), &good).unwrap();
    fs::copy(cache.token_path("bob", Some(SERIAL)), &path).unwrap();
    assert_eq!(
        cache.load_token("alice", Some(SERIAL), Duration::ZERO),
        None
    );

    cache.store_token("alice", Some(SERIAL), &good).unwrap();
    assert_eq!(
        cache.load_token("alice", Some(SERIAL), Duration::ZERO),
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
        .store_role("alice", "prod", ROLE_ARN, &creds(time::Duration::hours(1)))
        .unwrap();
    assert!(cache.role_path("alice", "prod", ROLE_ARN).is_file());
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
                match cache.load_token("alice", Some(SERIAL), margin) {
                    Some(c) => c,
                    None => {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let c = creds(time::Duration::hours(12));
                        cache.store_token("alice", Some(SERIAL), &c).unwrap();
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
