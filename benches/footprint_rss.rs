//! Peak RSS of the `stslib` binary doing real work against the emulator,
//! against the same binary printing its help (loading and exiting: the
//! floor of any run). Measured with `/usr/bin/time -v` (GNU time).
//!
//! The binary is `$STSLIB_BIN` when set (benches/footprint.sh points it at
//! the size-tuned release build), else the one cargo built for this bench.
//! `stslib --no-cache --no-mfa credential-process --profile r0` does the whole
//! work each run (GetSessionToken, then AssumeRole, no cache hit).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::pick;

const TIME: &str = "/usr/bin/time";

fn main() {
    common::header(
        "footprint_rss",
        "peak RSS of `stslib whoami` / `stslib credential-process` vs `stslib help`",
    );
    let bin = std::env::var_os("STSLIB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stslib")));
    common::context(&format!("binary: {}", bin.display()));
    if !Path::new(TIME).exists() {
        common::context("/usr/bin/time is missing (apt-get install time): nothing measured");
        println!("footprint_rss: n/a KiB (n/a x stslib help)");
        return;
    }

    let emu = common::emulator(None);
    let dir = std::env::temp_dir().join(format!("stslib-footprint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(
        &config,
        format!(
            "[profile alice]\nregion = us-east-1\n\n[profile r0]\nrole_arn = arn:aws:iam::{}:role/bench-0\nsource_profile = alice\n",
            common::ACCOUNT
        ),
    )
    .expect("config");
    std::fs::write(
        &credentials,
        format!(
            "[alice]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            common::KEY_ID,
            common::SECRET
        ),
    )
    .expect("credentials");

    let endpoint = emu.endpoint();
    let files = Files {
        config: &config,
        credentials: &credentials,
        dir: &dir,
        endpoint: &endpoint,
    };
    let runs = pick(7, 2);
    let measure = |args: &[&str]| -> Vec<f64> {
        (0..runs)
            .map(|_| peak_rss_kib(&bin, args, &files))
            .collect()
    };
    let help = Spread::of(measure(&["help"]));
    let whoami = Spread::of(measure(&[
        "--endpoint",
        &endpoint,
        "whoami",
        "--profile",
        "alice",
    ]));
    let creds = Spread::of(measure(&[
        "--no-cache",
        "--no-mfa",
        "--endpoint",
        &endpoint,
        "credential-process",
        "--profile",
        "r0",
    ]));
    emu.stop();
    let _ = std::fs::remove_dir_all(&dir);

    common::context(&format!(
        "stslib help: {help} KiB peak RSS (median, range over {runs} runs)"
    ));
    common::context(&format!("stslib whoami --profile alice: {whoami} KiB"));
    common::context(&format!(
        "stslib --no-cache --no-mfa credential-process --profile r0: {creds} KiB"
    ));
    common::summary_with(
        "footprint_rss",
        &format!("{:.0}", creds.median),
        "KiB",
        creds.median / help.median,
        "stslib help",
    );
}

/// Median and range of some runs.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        v.sort_by(f64::total_cmp);
        Spread {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} ({:.0}-{:.0})", self.median, self.min, self.max)
    }
}

/// Where the child's AWS files and endpoint are.
#[derive(Clone, Copy)]
struct Files<'a> {
    config: &'a Path,
    credentials: &'a Path,
    dir: &'a Path,
    endpoint: &'a str,
}

/// Runs `bin args` under GNU time with the AWS files of `files`, every
/// endpoint at the emulator, and nothing else from the environment; returns its
/// "Maximum resident set size" in KiB. Panics if the command fails.
fn peak_rss_kib(bin: &Path, args: &[&str], files: &Files<'_>) -> f64 {
    let Files {
        config,
        credentials,
        dir,
        endpoint,
    } = *files;
    let report = dir.join("time.txt");
    let out = Command::new(TIME)
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(bin)
        .args(args)
        .env_clear()
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("HOME", dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    assert!(
        out.status.success(),
        "stslib {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).expect("time report");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak RSS in the report")
}
