//! No OS thread per request: calls on one client, over a kept-alive
//! connection, create no thread (issue 10). ureq 3 spawns a resolver thread
//! on every request when an overall, per-call or resolve timeout is set.
//!
//! Its own test binary, with one test, so no other test's threads fall in
//! the window. Two detectors:
//! - a counting global allocator that notes every thread on its first
//!   allocation (a thread that comes and goes between two looks at
//!   `/proc/self/task` is still seen: the resolver thread allocates the
//!   address list it returns);
//! - the set of live thread ids in `/proc/self/task` before and after.
//!
//! The positive control makes the same calls with a plain ureq agent given
//! an overall timeout and requires the detector to see its threads.

mod common;
#[path = "common/thread_counter.rs"]
mod thread_counter;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{emulator_with_alice, role_arn, ALICE_KEY, ALICE_SECRET};
use stslib::sts::AssumeRoleRequest;
use stslib::{AccessKey, Secret, StsClient};

/// This process's live thread ids.
fn task_ids() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task (Linux)")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Threads created (and live thread ids before/after) while `f` runs.
fn threads_created(f: impl FnOnce()) -> (usize, BTreeSet<String>, BTreeSet<String>) {
    let tasks_before = task_ids();
    let before = thread_counter::threads_seen();
    f();
    let created = thread_counter::threads_seen() - before;
    (created, tasks_before, task_ids())
}

const CALLS: usize = 60;

#[test]
fn calls_on_one_client_create_no_thread() {
    let emulator = emulator_with_alice(Duration::from_secs(3600))
        .start()
        .unwrap();
    let endpoint = emulator.endpoint();
    let keys = AccessKey {
        access_key_id: ALICE_KEY.into(),
        secret_access_key: Secret::new(ALICE_SECRET),
        session_token: None,
    };
    let client = StsClient::builder()
        .region("us-east-1")
        .endpoint(&endpoint)
        .build()
        .unwrap();
    let request = AssumeRoleRequest::new(role_arn("threads"), "threads-test");
    // Warm up: the emulator's connection thread and the kept-alive
    // connection exist before the window opens.
    client.get_caller_identity(&keys).unwrap();
    client.assume_role(&keys, &request).unwrap();

    let (created, before, after) = threads_created(|| {
        for i in 0..CALLS {
            if i % 2 == 0 {
                client.assume_role(&keys, &request).unwrap();
            } else {
                client.get_caller_identity(&keys).unwrap();
            }
        }
    });
    assert_eq!(
        emulator.connection_count(),
        1,
        "the calls did not share one kept-alive connection"
    );
    assert_eq!(created, 0, "{CALLS} calls created {created} threads");
    assert_eq!(before, after, "live threads changed");

    // Positive control: a plain ureq agent with an overall timeout makes the
    // same kind of POST and spawns its resolver thread on every request.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let post = || {
        let mut r = agent
            .post(&endpoint)
            .content_type("application/x-www-form-urlencoded")
            .send("Action=GetCallerIdentity&Version=2011-06-15")
            .unwrap();
        let _ = r.body_mut().read_to_vec().unwrap();
    };
    post();
    let (created, _, _) = threads_created(|| (0..CALLS).for_each(|_| post()));
    assert!(
        created >= CALLS,
        "control: {CALLS} calls with timeout_global created {created} threads; the detector is blind"
    );
}
