//! The binary's logger: `log` records to stderr, one line each.
//!
//! Warnings (and errors) from every crate by default, so a cache that is
//! refused, a store that fails or a clock that is off is never silent.
//! `-v` raises stslib's own level to `info`, `-vv` to `debug`, `-vvv` to
//! `trace`; `STSLIB_LOG` does the same in writing (`info`, `debug`, ...)
//! and can name other crates (`STSLIB_LOG=debug,ureq=debug`). Other crates
//! never go past `warn` unless named: ureq's `trace` prints raw wire bytes
//! with credentials in them.

use std::io::Write;
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable that sets the log levels.
pub(crate) const LOG_ENV: &str = "STSLIB_LOG";

/// Which level each target gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// stslib's own level (targets `stslib` and `stslib::...`).
    own: LevelFilter,
    /// Other crates named explicitly, by target prefix.
    named: Vec<(String, LevelFilter)>,
    /// Every other target.
    rest: LevelFilter,
}

impl Filter {
    /// The filter for `verbose` (`-v` count) and the `STSLIB_LOG` value.
    /// Returns the filter and a complaint about the value, if any.
    pub(crate) fn new(verbose: u8, spec: Option<&str>) -> (Filter, Option<String>) {
        let mut f = Filter {
            own: match verbose {
                0 => LevelFilter::Warn,
                1 => LevelFilter::Info,
                2 => LevelFilter::Debug,
                _ => LevelFilter::Trace,
            },
            named: Vec::new(),
            rest: LevelFilter::Warn,
        };
        let mut bad = None;
        for item in spec.unwrap_or("").split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let (target, level) = match item.split_once('=') {
                Some((t, l)) => (Some(t.trim()), l.trim()),
                None => (None, item),
            };
            let Ok(level) = level.parse::<LevelFilter>() else {
                bad = Some(format!(
                    "{LOG_ENV}: `{}` is not a level (off, error, warn, info, debug, trace)",
                    item.chars().take(40).collect::<String>()
                ));
                continue;
            };
            match target {
                None | Some("stslib") => f.own = f.own.max(level),
                Some(t) => f.named.push((t.to_owned(), level)),
            }
        }
        (f, bad)
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        if is_under(target, "stslib") {
            return self.own;
        }
        self.named
            .iter()
            .filter(|(t, _)| is_under(target, t))
            .max_by_key(|(t, _)| t.len())
            .map_or(self.rest, |(_, l)| *l)
    }

    fn max(&self) -> LevelFilter {
        self.named
            .iter()
            .map(|(_, l)| *l)
            .fold(self.own.max(self.rest), Ord::max)
    }
}

/// True when `target` is `prefix` or a module under it.
fn is_under(target: &str, prefix: &str) -> bool {
    target
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

struct Stderr {
    filter: OnceLock<Filter>,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        self.filter
            .get()
            .is_some_and(|f| m.level() <= f.level_for(m.target()))
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let line = if is_under(r.target(), "stslib") {
            format!("stslib: {level}: {}\n", r.args())
        } else {
            format!("stslib: {level} [{}]: {}\n", r.target(), r.args())
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr {
    filter: OnceLock::new(),
};

/// Installs the logger (once per process). A bad `STSLIB_LOG` is reported
/// as a warning and otherwise ignored.
pub(crate) fn init(verbose: u8, spec: Option<&str>) {
    let (filter, bad) = Filter::new(verbose, spec);
    let max = filter.max();
    if LOGGER.filter.set(filter).is_err() || log::set_logger(&LOGGER).is_err() {
        return;
    }
    log::set_max_level(max);
    if let Some(bad) = bad {
        log::warn!("{bad}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_by_default_and_verbosity_raises_only_stslib() {
        let (f, bad) = Filter::new(0, None);
        assert_eq!(bad, None);
        assert_eq!(f.level_for("stslib::cache"), LevelFilter::Warn);
        assert_eq!(f.level_for("ureq::unversioned"), LevelFilter::Warn);
        let (f, _) = Filter::new(3, None);
        assert_eq!(f.level_for("stslib::sts"), LevelFilter::Trace);
        assert_eq!(f.level_for("stslib"), LevelFilter::Trace);
        assert_eq!(
            f.level_for("ureq::unversioned::transport"),
            LevelFilter::Warn
        );
        assert_eq!(f.level_for("stslibx"), LevelFilter::Warn);
    }

    #[test]
    fn stslib_log_names_levels_and_crates() {
        let (f, _) = Filter::new(0, Some("debug"));
        assert_eq!(f.level_for("stslib::cache"), LevelFilter::Debug);
        assert_eq!(f.level_for("ureq"), LevelFilter::Warn);
        // `trace` alone never reaches ureq: it prints raw secrets.
        let (f, _) = Filter::new(0, Some("trace"));
        assert_eq!(f.level_for("ureq::unversioned"), LevelFilter::Warn);
        let (f, _) = Filter::new(1, Some("ureq=trace, stslib=debug"));
        assert_eq!(f.level_for("ureq::unversioned"), LevelFilter::Trace);
        assert_eq!(f.level_for("stslib::sts"), LevelFilter::Debug);
        assert_eq!(f.max(), LevelFilter::Trace);
        // -v and STSLIB_LOG: the higher wins.
        let (f, _) = Filter::new(2, Some("info"));
        assert_eq!(f.level_for("stslib"), LevelFilter::Debug);
    }

    #[test]
    fn a_bad_value_is_named_not_fatal() {
        let (f, bad) = Filter::new(0, Some("loud,ureq=verbose"));
        assert!(bad.unwrap().contains("is not a level"));
        assert_eq!(f.level_for("stslib"), LevelFilter::Warn);
        assert_eq!(f.level_for("ureq"), LevelFilter::Warn);
    }
}
