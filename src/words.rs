//! Words the library and the `stslib` binary print alike: durations in
//! words and the redaction of secrets. The binary includes this file by
//! path, so neither needs a public export.

use time::Duration;

/// What `Debug` and `Display` print instead of a secret.
pub(crate) const REDACTED: &str = "**redacted**";

/// A duration in words, as the Python stslib prints time left: the largest
/// non-zero unit and the one below it (omitted when zero). Units: `day(s)`,
/// `hour(s)`, `min`, `sec`. Negative durations count as zero; sub-second
/// remainders are dropped.
///
pub(crate) fn humanize(d: Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let parts = [
        (secs / 86_400, "day", "days"),
        (secs / 3600 % 24, "hour", "hours"),
        (secs / 60 % 60, "min", "min"),
        (secs % 60, "sec", "sec"),
    ];
    let word =
        |(n, one, many): (i64, &str, &str)| format!("{n} {}", if n == 1 { one } else { many });
    match parts.iter().position(|p| p.0 != 0) {
        None => "0 sec".to_owned(),
        Some(i) => match parts.get(i + 1) {
            Some(next) if next.0 != 0 => format!("{}, {}", word(parts[i]), word(*next)),
            _ => word(parts[i]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_two_largest_units() {
        assert_eq!(
            humanize(Duration::seconds(4 * 3600 + 59 * 60 + 30)),
            "4 hours, 59 min"
        );
        assert_eq!(humanize(Duration::seconds(12 * 60 + 5)), "12 min, 5 sec");
        assert_eq!(
            humanize(Duration::seconds(26 * 3600 + 120)),
            "1 day, 2 hours"
        );
        assert_eq!(humanize(Duration::hours(1)), "1 hour");
        assert_eq!(humanize(Duration::seconds(59)), "59 sec");
        assert_eq!(humanize(Duration::seconds(-5)), "0 sec");
    }
}
