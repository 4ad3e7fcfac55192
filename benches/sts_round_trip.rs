//! AssumeRole through `StsClient` against the local emulator on loopback,
//! versus the floor: the same signed request written by hand with ureq +
//! aws-sigv4 + roxmltree on a default `ureq::Agent` (`benches/floor`, no
//! stslib code, no setting copied from stslib).
//!
//! Both sides send the same AssumeRole (same session-token credentials, same
//! parameters) to the same emulator and parse the answer into the
//! credential fields plus the expiration time; each keeps its connection
//! alive. Timing: rounds of interleaved calls (alternating who goes
//! first); each round makes both clients anew (new connections, new
//! emulator threads) and alternates who connects first. The target is the
//! median over rounds of each round's p50 ratio, as the outside
//! measurement of issue 10 took it, measured twice:
//! - on both vCPUs, as an application runs: where the scheduler puts each
//!   connection's emulator thread sets a round's ratio (seen: 0.46x to
//!   2.3x within one run, medians 0.95x to 1.31x between runs a minute
//!   apart), so this is context;
//! - on one vCPU (the bench re-run in a child under `taskset -c 0`, its
//!   emulator started there): no cross-CPU wake-ups, so the time is the
//!   work of both sides plus the same context switches, and rounds agree to
//!   a few percent. This is the target's figure. It still sees issue 10's
//!   defect: with ureq's overall timeout put back into the client (a
//!   resolver thread per request), 1.36x on one vCPU (rounds 1.25x to
//!   1.49x) and 1.43x on two, against 0.93x and 0.99x without.
//!
//! Counting, in child processes that run one side only against
//! this process's emulator (so the emulator's work is not counted):
//! - user-space instructions per call: `valgrind --tool=callgrind`, collected
//!   only inside the loop of calls (`--toggle-collect`);
//! - syscalls and thread creations (`clone`/`clone3`) per call: `strace -f
//!   -c` of a run of N1 and a run of N2 calls, the difference over N2 - N1
//!   (start-up cancels out).
//!
//! `STSLIB_BENCH_KEEP=1` keeps the callgrind files for `callgrind_annotate`.
//!
//! Targets: p50 <= 1.0x floor; instructions <= 0.9x floor; syscalls within
//! 2 of the floor's; no thread per call. A missing tool skips its count.

#[path = "common/mod.rs"]
mod common;
#[path = "floor/mod.rs"]
mod floor;

use std::hint::black_box;
use std::process::Command;

use stslib::sts::AssumeRoleRequest;
use stslib::{AccessKey, Secret, StsClient};

use common::{dist, pick, time_once, Stats};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/bench";
const SESSION_NAME: &str = "bench-session";

/// Env of a child that counts one side: `stslib` or `floor`.
const CHILD: &str = "STSLIB_BENCH_CHILD";

fn main() {
    if let Ok(side) = std::env::var(CHILD) {
        if side == "pinned" {
            return pinned_child();
        }
        return child(&side);
    }
    common::header(
        "sts_round_trip",
        "AssumeRole via StsClient vs hand-built ureq+aws-sigv4+roxmltree (defaults), loopback emulator",
    );
    let emu = common::emulator(None);
    let endpoint = emu.endpoint();

    let token = session_token(&endpoint);

    // Both vCPUs: as an application runs, the scheduler placing the
    // emulator's connection threads where it will.
    let free = time_rounds(&endpoint, &token);
    dist(
        "stslib StsClient::assume_role, 2 vCPUs, all rounds",
        &free.lib,
    );
    dist(
        "floor ureq+aws-sigv4+roxmltree, 2 vCPUs, all rounds",
        &free.base,
    );
    common::context(&format!(
        "2 vCPUs: {} rounds of {} calls per side, new clients each round; per-round p50 \
         ratio median {:.3}x (min {:.3}x, max {:.3}x): where each connection's emulator \
         thread lands sets a round's ratio, and the median moves by up to 30% between runs",
        free.ratios.len(),
        free.lib.len() / free.ratios.len().max(1),
        free.ratios.p50(),
        free.ratios.min(),
        free.ratios.max(),
    ));
    // One vCPU for everything (this bench re-run under `taskset`): no
    // cross-CPU wake-ups, so the time is the work of both sides plus the
    // same context switches; rounds then agree to a few percent.
    let ratio = match pinned() {
        Some(p) => {
            dist("stslib StsClient::assume_role, 1 vCPU, all rounds", &p.lib);
            dist(
                "floor ureq+aws-sigv4+roxmltree, 1 vCPU, all rounds",
                &p.base,
            );
            common::context(&format!(
                "1 vCPU (taskset -c 0, emulator included): per-round p50 ratio median {:.3}x \
                 (min {:.3}x, max {:.3}x)",
                p.ratios.p50(),
                p.ratios.min(),
                p.ratios.max()
            ));
            common::target(
                "p50 <= 1.0x floor (1 vCPU, median of rounds)",
                p.ratios.p50() <= 1.0,
                &format!("{:.3}x; 2 vCPUs: {:.3}x", p.ratios.p50(), free.ratios.p50()),
            );
            p.ratios.p50()
        }
        None => {
            common::target(
                "p50 <= 1.0x floor (2 vCPUs, median of rounds; taskset not found)",
                free.ratios.p50() <= 1.0,
                &format!("{:.3}x", free.ratios.p50()),
            );
            free.ratios.p50()
        }
    };

    count_instructions(&endpoint, &token);
    count_syscalls(&endpoint, &token);

    emu.stop();
    common::summary("sts_round_trip", free.lib.p50(), ratio, "floor p50");
}

/// Session-token credentials, taken by the floor, used by both sides.
fn session_token(endpoint: &str) -> floor::Keys {
    let user = floor::Keys {
        access_key_id: common::KEY_ID.into(),
        secret: common::SECRET.into(),
        token: None,
    };
    floor::Floor::new(endpoint).get_session_token(&user).keys
}

/// Timings of one run of rounds.
struct Rounds {
    lib: Stats,
    base: Stats,
    /// Each round's stslib p50 over its floor p50.
    ratios: Stats,
}

/// Rounds of interleaved calls; each round makes both clients anew (new
/// connections, new emulator threads) and alternates who connects first.
fn time_rounds(endpoint: &str, token: &floor::Keys) -> Rounds {
    let rounds = pick(30, 4);
    let calls = pick(500, 100);
    let warmup = pick(20, 5);
    let mut lib = Vec::with_capacity(rounds * calls);
    let mut base = Vec::with_capacity(rounds * calls);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let side = Side::new(endpoint, token);
        for _ in 0..warmup {
            if round % 2 == 0 {
                side.stslib();
                side.floor();
            } else {
                side.floor();
                side.stslib();
            }
        }
        let (mut l, mut b) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for i in 0..calls {
            if i % 2 == 0 {
                l.push(time_once(|| side.stslib()).0);
                b.push(time_once(|| side.floor()).0);
            } else {
                b.push(time_once(|| side.floor()).0);
                l.push(time_once(|| side.stslib()).0);
            }
        }
        lib.extend_from_slice(&l);
        base.extend_from_slice(&b);
        ratios.push(Stats::new(l).p50() / Stats::new(b).p50());
    }
    Rounds {
        lib: Stats::new(lib),
        base: Stats::new(base),
        ratios: Stats::new(ratios),
    }
}

/// [`time_rounds`] in a child process confined to CPU 0 by `taskset`, with
/// its own emulator (started after the confinement, so its threads inherit
/// it); `None` when `taskset` is missing or the child fails.
fn pinned() -> Option<Rounds> {
    if !have("taskset") {
        common::context("taskset not found: the 1-vCPU timing is skipped");
        return None;
    }
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe())
        .env(CHILD, "pinned")
        .output()
        .ok()?;
    if !out.status.success() {
        common::context(&format!(
            "1-vCPU child failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<Vec<f64>> {
        let line = text.lines().find_map(|l| l.strip_prefix(name))?;
        line.split(',').map(|v| v.trim().parse().ok()).collect()
    };
    Some(Rounds {
        lib: Stats::new(field("lib=")?),
        base: Stats::new(field("base=")?),
        ratios: Stats::new(field("ratios=")?),
    })
}

/// The 1-vCPU child: its own emulator and token, the rounds, the samples
/// on stdout for the parent.
fn pinned_child() {
    let emu = common::emulator(None);
    let endpoint = emu.endpoint();
    let r = time_rounds(&endpoint, &session_token(&endpoint));
    let join = |s: &Stats| {
        s.samples()
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!("lib={}", join(&r.lib));
    println!("base={}", join(&r.base));
    println!(
        "ratios={}",
        r.ratios
            .samples()
            .iter()
            .map(|v| format!("{v:.5}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    emu.stop();
}

/// Both clients, ready to call.
struct Side {
    client: StsClient,
    keys: AccessKey,
    request: AssumeRoleRequest,
    floor: floor::Floor,
    floor_keys: floor::Keys,
}

impl Side {
    fn new(endpoint: &str, token: &floor::Keys) -> Side {
        Side {
            client: StsClient::builder()
                .env(stslib::Env::from_pairs::<String, String>([]))
                .endpoint(endpoint)
                .build()
                .expect("client"),
            keys: AccessKey {
                access_key_id: token.access_key_id.clone(),
                secret_access_key: Secret::new(token.secret.clone()),
                session_token: token.token.clone().map(Secret::new),
            },
            request: AssumeRoleRequest::new(ROLE_ARN, SESSION_NAME).duration_seconds(3600),
            floor: floor::Floor::new(endpoint),
            floor_keys: token.clone(),
        }
    }

    fn stslib(&self) {
        let r = self
            .client
            .assume_role(&self.keys, &self.request)
            .expect("stslib AssumeRole");
        black_box(r);
    }

    fn floor(&self) {
        black_box(
            self.floor
                .assume_role(&self.floor_keys, ROLE_ARN, SESSION_NAME),
        );
    }
}

// ---- Counting in child processes ------------------------------------------

/// A child: warm up, then `STSLIB_BENCH_CALLS` calls of one side.
fn child(side_name: &str) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} unset"));
    let token = floor::Keys {
        access_key_id: var("STSLIB_BENCH_AKID"),
        secret: var("STSLIB_BENCH_SECRET"),
        token: Some(var("STSLIB_BENCH_TOKEN")),
    };
    let side = Side::new(&var("STSLIB_BENCH_ENDPOINT"), &token);
    let calls: usize = var("STSLIB_BENCH_CALLS").parse().expect("calls");
    let once: &dyn Fn() = match side_name {
        "stslib" => &|| side.stslib(),
        _ => &|| side.floor(),
    };
    for _ in 0..3 {
        once();
    }
    counted_calls(once, calls);
}

/// The loop callgrind collects in (`--toggle-collect=*counted_calls*`).
#[inline(never)]
fn counted_calls(once: &dyn Fn(), calls: usize) {
    for _ in 0..calls {
        once();
    }
}

fn child_command(
    program: &str,
    side: &str,
    calls: usize,
    endpoint: &str,
    token: &floor::Keys,
) -> Command {
    let mut c = Command::new(program);
    c.env(CHILD, side)
        .env("STSLIB_BENCH_CALLS", calls.to_string())
        .env("STSLIB_BENCH_ENDPOINT", endpoint)
        .env("STSLIB_BENCH_AKID", &token.access_key_id)
        .env("STSLIB_BENCH_SECRET", &token.secret)
        .env("STSLIB_BENCH_TOKEN", token.token.as_deref().unwrap_or(""));
    c
}

fn exe() -> String {
    std::env::current_exe()
        .expect("current exe")
        .to_string_lossy()
        .into_owned()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Instructions per call of each side under callgrind.
fn count_instructions(endpoint: &str, token: &floor::Keys) {
    if !have("valgrind") {
        common::context("valgrind is missing (apt-get install valgrind): instructions not counted");
        return;
    }
    let calls = pick(200, 40);
    let per_call = |side: &str| -> Option<f64> {
        let out = std::env::temp_dir().join(format!(
            "stslib-bench-callgrind-{side}-{}.out",
            std::process::id()
        ));
        let mut c = child_command("valgrind", side, calls, endpoint, token);
        c.arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg("--collect-atstart=no")
            .arg("--toggle-collect=*counted_calls*")
            .arg(exe());
        let status = c.output().ok()?.status;
        let text = std::fs::read_to_string(&out).ok();
        if std::env::var_os("STSLIB_BENCH_KEEP").is_some() {
            common::context(&format!("kept {} (callgrind_annotate it)", out.display()));
        } else {
            let _ = std::fs::remove_file(&out);
        }
        if !status.success() {
            return None;
        }
        let total: f64 = text?
            .lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(total / calls as f64)
    };
    let (Some(lib), Some(base)) = (per_call("stslib"), per_call("floor")) else {
        common::context("callgrind run failed: instructions not counted");
        return;
    };
    let ratio = lib / base;
    common::context(&format!(
        "instructions per call (callgrind, user space, {calls} calls): stslib {:.0} k, floor {:.0} k",
        lib / 1e3,
        base / 1e3
    ));
    common::target(
        "instructions <= 0.9x floor",
        ratio <= 0.9,
        &format!("{ratio:.3}x"),
    );
}

/// One `strace -f -c` run: all syscalls, clones, and the count of each.
struct StraceRun {
    total: u64,
    clones: u64,
    by_name: Vec<(String, u64)>,
}

/// Per-call figures from two runs.
struct PerCall {
    syscalls: f64,
    clones: f64,
    breakdown: Vec<(String, f64)>,
}

/// Syscalls and clones per call of each side under strace.
fn count_syscalls(endpoint: &str, token: &floor::Keys) {
    if !have("strace") {
        common::context("strace is missing (apt-get install strace): syscalls not counted");
        return;
    }
    let (n1, n2) = (pick(50, 10), pick(250, 50));
    let run = |side: &str, calls: usize| -> Option<StraceRun> {
        let out = std::env::temp_dir().join(format!(
            "stslib-bench-strace-{side}-{calls}-{}.txt",
            std::process::id()
        ));
        let mut c = child_command("strace", side, calls, endpoint, token);
        c.arg("-f").arg("-c").arg("-o").arg(&out).arg(exe());
        let status = c.output().ok()?.status;
        let text = std::fs::read_to_string(&out).ok();
        let _ = std::fs::remove_file(&out);
        if !status.success() {
            return None;
        }
        let mut total = None;
        let mut clones = 0;
        let mut by_name = Vec::new();
        for line in text?.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            // % time, seconds, usecs/call, calls, [errors,] syscall
            if f.len() < 5 || f[0].starts_with('%') || f[0].starts_with('-') {
                continue;
            }
            let name = *f.last()?;
            let Ok(n) = f[3].parse::<u64>() else { continue };
            if name == "total" {
                total = Some(n);
            } else {
                if name == "clone" || name == "clone3" {
                    clones += n;
                }
                by_name.push((name.to_owned(), n));
            }
        }
        Some(StraceRun {
            total: total?,
            clones,
            by_name,
        })
    };
    let per_call = |side: &str| -> Option<PerCall> {
        let StraceRun {
            total: t1,
            clones: c1,
            by_name: b1,
        } = run(side, n1)?;
        let StraceRun {
            total: t2,
            clones: c2,
            by_name: b2,
        } = run(side, n2)?;
        let d = (n2 - n1) as f64;
        let mut breakdown: Vec<(String, f64)> = b2
            .iter()
            .map(|(name, n)| {
                let before = b1.iter().find(|(m, _)| m == name).map_or(0, |(_, k)| *k);
                (name.clone(), (*n as f64 - before as f64) / d)
            })
            .filter(|(_, per)| *per >= 0.05)
            .collect();
        breakdown.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(PerCall {
            syscalls: (t2 as f64 - t1 as f64) / d,
            clones: (c2 as f64 - c1 as f64) / d,
            breakdown,
        })
    };
    let (Some(lib), Some(base)) = (per_call("stslib"), per_call("floor")) else {
        common::context("strace run failed: syscalls not counted");
        return;
    };
    let (lib, lib_clones, lib_by) = (lib.syscalls, lib.clones, lib.breakdown);
    let (base, base_clones, base_by) = (base.syscalls, base.clones, base.breakdown);
    let show = |by: &[(String, f64)]| {
        by.iter()
            .map(|(n, k)| format!("{n} {k:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    common::context(&format!(
        "syscalls per call (strace -f -c, runs of {n1} and {n2} calls): stslib {lib:.1} ({}), floor {base:.1} ({})",
        show(&lib_by),
        show(&base_by)
    ));
    common::context(&format!(
        "threads created per call (clone/clone3): stslib {lib_clones:.2}, floor {base_clones:.2}"
    ));
    common::target(
        "syscalls within 2 of the floor's",
        lib <= base + 2.0,
        &format!("{:+.1} per call", lib - base),
    );
    common::target(
        "no thread per call",
        lib_clones == 0.0,
        &format!("{lib_clones:.2} per call"),
    );
}
