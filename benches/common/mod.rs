//! The benches' small timing harness (no criterion: it would double the
//! build time) and the emulator/session setup they share.
//!
//! Every bench measures stslib against a baseline in the same run and
//! reports the ratio; absolute times are printed as context only, since the
//! machine is small and shared. Each bench prints context lines, then
//! PASS/MISS per target (a miss never fails the process: benches are
//! measurements), then exactly one summary line
//! `name: VALUE UNIT (RATIOx BASELINE)`.
//!
//! `STSLIB_BENCH_QUICK=1` shrinks every bench to a smoke run.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use stslib::emulator::Emulator;
use stslib::profile::ProfileFiles;
use stslib::{RefreshPolicy, Session};

/// The IAM user every bench's emulator knows.
pub const USER: &str = "alice";
/// Its access key id.
pub const KEY_ID: &str = "AKIAALICEBENCH000001";
/// Its secret access key.
pub const SECRET: &str = "alice/bench/secret/key/00000000000000000";
/// The account of the roles.
pub const ACCOUNT: &str = "123456789012";

/// True when `STSLIB_BENCH_QUICK` asks for a smoke run.
pub fn quick() -> bool {
    std::env::var("STSLIB_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `normal`, or `quick` in a smoke run.
pub fn pick<T>(normal: T, quick_value: T) -> T {
    if quick() {
        quick_value
    } else {
        normal
    }
}

/// Nanoseconds of a duration, as a float.
pub fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Sorted samples (nanoseconds) and their percentiles.
#[derive(Debug, Clone)]
pub struct Stats {
    sorted: Vec<f64>,
}

impl Stats {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<f64>) -> Stats {
        samples.retain(|s| s.is_finite());
        samples.sort_by(f64::total_cmp);
        Stats { sorted: samples }
    }

    /// The samples, sorted.
    pub fn samples(&self) -> &[f64] {
        &self.sorted
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The nearest-rank percentile `p` (0..=100); NaN without samples.
    pub fn pct(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// The median.
    pub fn p50(&self) -> f64 {
        self.pct(50.0)
    }

    /// The 99th percentile (the maximum below 100 samples).
    pub fn p99(&self) -> f64 {
        self.pct(99.0)
    }

    /// The smallest sample.
    pub fn min(&self) -> f64 {
        self.sorted.first().copied().unwrap_or(f64::NAN)
    }

    /// The largest sample.
    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(f64::NAN)
    }

    /// The arithmetic mean.
    pub fn mean(&self) -> f64 {
        self.sorted.iter().sum::<f64>() / self.sorted.len().max(1) as f64
    }
}

/// A duration in nanoseconds, human-scaled (`812 ns`, `143.2 us`, `20.4 ms`).
pub fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if a < 1e3 {
        format!("{ns:.1} ns")
    } else if a < 1e6 {
        format!("{:.1} us", ns / 1e3)
    } else if a < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The bench's title and the machine it runs on.
pub fn header(name: &str, what: &str) {
    println!("== {name}: {what}");
    println!("   machine: {}", machine());
    if quick() {
        println!("   mode: QUICK (STSLIB_BENCH_QUICK): few samples, figures are a smoke test");
    }
}

/// Set in a bench re-run by [`confine_to_one_cpu`].
const ONE_CPU: &str = "STSLIB_BENCH_ONE_CPU";

/// Re-runs this bench confined to CPU 0 (`taskset -c 0`, inheriting its
/// output) and exits with its status; returns in that child, or when
/// `taskset` is missing (saying so). Everything the bench starts after this
/// (its emulator's threads too) shares the one CPU: no cross-CPU wake-ups,
/// whose placement otherwise moves a loopback round trip's p50 by tens of
/// percent from one connection to the next (see `sts_round_trip`).
pub fn confine_to_one_cpu() {
    if std::env::var_os(ONE_CPU).is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let status = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .env(ONE_CPU, "1")
        .status();
    match status {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) => println!("   taskset not runnable ({e}): timing on every CPU"),
    }
}

/// `2 cpus, AMD EPYC, load 0.52 0.40 0.33`.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} cpus, {model}, load {load}")
}

/// One distribution line: `label: n=.. p50=.. p99=.. min=.. max=..`.
pub fn dist(label: &str, s: &Stats) {
    println!(
        "   {label}: n={} p50={} p99={} min={} max={}",
        s.len(),
        fmt_ns(s.p50()),
        fmt_ns(s.p99()),
        fmt_ns(s.min()),
        fmt_ns(s.max())
    );
}

/// One free-form context line.
pub fn context(text: &str) {
    println!("   {text}");
}

/// `target <what>: PASS|MISS (<detail>)`; returns whether it passed.
pub fn target(what: &str, pass: bool, detail: &str) -> bool {
    println!(
        "   target {what}: {} ({detail})",
        if pass { "PASS" } else { "MISS" }
    );
    pass
}

/// The one summary line for a time: `name: VALUE UNIT (RATIOx BASELINE)`.
pub fn summary(name: &str, value_ns: f64, ratio: f64, baseline: &str) {
    let (value, unit) = scaled(value_ns);
    summary_with(name, &value, unit, ratio, baseline);
}

/// The one summary line for any quantity.
pub fn summary_with(name: &str, value: &str, unit: &str, ratio: f64, baseline: &str) {
    println!("{name}: {value} {unit} ({ratio:.2}x {baseline})");
}

fn scaled(ns: f64) -> (String, &'static str) {
    let a = ns.abs();
    if a < 1e3 {
        (format!("{ns:.1}"), "ns")
    } else if a < 1e6 {
        (format!("{:.1}", ns / 1e3), "us")
    } else if a < 1e9 {
        (format!("{:.2}", ns / 1e6), "ms")
    } else {
        (format!("{:.2}", ns / 1e9), "s")
    }
}

/// Times `f` once, in nanoseconds.
pub fn time_once<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let t = Instant::now();
    let r = f();
    (ns(t.elapsed()), r)
}

/// Per-call nanoseconds of `batches` batches of `iters` calls of `f`.
pub fn per_call(batches: usize, iters: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            ns(t.elapsed()) / iters as f64
        })
        .collect()
}

/// An emulator with the bench user (no MFA), optionally capping role
/// lifetimes.
pub fn emulator(role_lifetime: Option<Duration>) -> Emulator {
    let mut b = Emulator::builder().user(USER, KEY_ID, SECRET);
    if let Some(l) = role_lifetime {
        b = b.role_lifetime(l);
    }
    b.start().expect("emulator starts")
}

/// Profile files: user `alice` and role profiles `r0`..`r{roles-1}`.
pub fn files(roles: usize) -> ProfileFiles {
    let mut config = String::from("[profile alice]\nregion = us-east-1\n");
    for i in 0..roles {
        config.push_str(&format!(
            "\n[profile r{i}]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/bench-{i}\nsource_profile = alice\n"
        ));
    }
    let credentials =
        format!("[alice]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n");
    ProfileFiles::from_strings(&config, &credentials).expect("profile files parse")
}

/// The names `r0`..`r{n-1}`.
pub fn role_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

/// A session builder on `emu` for `alice` with `roles` role profiles and
/// an environment of only `AWS_ENDPOINT_URL` (so IAM `ListMFADevices`, which
/// resolves the user's MFA device, also goes to the emulator).
pub fn builder(emu: &Emulator, roles: usize) -> stslib::SessionBuilder {
    Session::builder()
        .files(files(roles))
        .env(stslib::Env::from_pairs([(
            "AWS_ENDPOINT_URL",
            emu.endpoint(),
        )]))
        .profile(USER)
        .endpoint(emu.endpoint())
}

/// A session on `emu` for `alice` with `roles` role profiles and a session
/// token already taken (no roles assumed yet).
pub fn session(emu: &Emulator, roles: usize, policy: RefreshPolicy) -> Session {
    token(
        builder(emu, roles)
            .refresh_policy(policy)
            .build()
            .expect("session builds"),
    )
}

/// `session` after taking a one-hour session token.
pub fn token(session: Session) -> Session {
    session
        .generate_session_token(Duration::from_secs(3600), None)
        .expect("session token");
    session
}

/// Assumes `names` in `session`; panics if any fails.
pub fn assume(session: &Session, names: &[String]) {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for (profile, outcome) in session.generate_credentials(&refs).expect("roles") {
        if let Err(e) = outcome {
            panic!("role {profile}: {e}");
        }
    }
}
