//! Command-line parsing: global options, per-command options, durations.

/// A usage error: exit 2 with the message and a hint.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

/// Global options, valid before or after the command name.
#[derive(Debug, Default)]
pub(crate) struct Global {
    pub(crate) region: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) no_cache: bool,
    /// A session token without MFA is meant (no MFA device is an error
    /// otherwise).
    pub(crate) no_mfa: bool,
    /// `-v` count: 1 info, 2 debug, 3 trace (stslib's own logs only).
    pub(crate) verbose: u8,
}

/// The command line, split into the command and its own arguments.
#[derive(Debug)]
pub(crate) struct CommandLine {
    pub(crate) global: Global,
    pub(crate) command: Option<String>,
    pub(crate) args: Vec<String>,
    pub(crate) help: bool,
    /// `--version` or `-V` was given.
    pub(crate) version: bool,
}

pub(crate) fn split_args(argv: impl IntoIterator<Item = String>) -> Result<CommandLine, Usage> {
    let mut global = Global::default();
    let mut command = None;
    let mut args = Vec::new();
    let mut help = false;
    let mut version = false;
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            // The rest is `exec`'s command line, passed on untouched: its
            // `--region` or `--help` are the command's own.
            args.push(a);
            args.extend(it.by_ref());
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--region" | "--endpoint" => {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| Usage(format!("{flag} needs a value")))?,
                };
                if flag == "--region" {
                    global.region = Some(v);
                } else {
                    global.endpoint = Some(v);
                }
            }
            "-h" | "--help" => help = true,
            "-V" | "--version" => version = true,
            "--no-cache" => global.no_cache = true,
            "--no-mfa" => global.no_mfa = true,
            "--verbose" => global.verbose = global.verbose.saturating_add(1),
            v if v.len() > 1 && v.starts_with('-') && v[1..].bytes().all(|b| b == b'v') => {
                global.verbose = global.verbose.saturating_add((v.len() - 1) as u8);
            }
            _ if command.is_none() && !a.starts_with('-') => command = Some(a),
            _ => args.push(a),
        }
    }
    Ok(CommandLine {
        global,
        command,
        args,
        help,
        version,
    })
}

/// A command's own options: `--name value`, `--name=value` and bare flags.
#[derive(Debug, Default)]
pub(crate) struct Opts {
    pub(crate) pairs: Vec<(String, Option<String>)>,
}

impl Opts {
    /// Parses `args` given the options that take a value and the bare flags.
    pub(crate) fn parse(args: &[String], valued: &[&str], flags: &[&str]) -> Result<Opts, Usage> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (a.as_str(), None),
            };
            if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| Usage(format!("{name} needs a value")))?,
                };
                pairs.push((name.to_owned(), Some(v)));
            } else if flags.contains(&name) && inline.is_none() {
                pairs.push((name.to_owned(), None));
            } else {
                return Err(Usage(format!("unexpected argument `{a}`")));
            }
        }
        Ok(Opts { pairs })
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    /// The last value given for `name`.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for `name`, in order.
    #[allow(dead_code)]
    pub(crate) fn values(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
}

/// `900s`, `45m`, `12h`, `1h30m`, `2d`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration `{text}` (examples: 900s, 45m, 12h, 1h30m)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn global_options_anywhere() {
        let cl = split_args(argv(
            "--region eu-west-1 whoami --profile x --endpoint=http://127.0.0.1:1",
        ))
        .unwrap();
        assert_eq!(cl.command.as_deref(), Some("whoami"));
        assert_eq!(cl.global.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cl.global.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(cl.args, argv("--profile x"));
    }

    #[test]
    fn everything_after_double_dash_is_kept_verbatim() {
        let cl = split_args(argv(
            "--endpoint http://127.0.0.1:1 exec --profile p -- aws --region eu-west-1 --help -- x",
        ))
        .unwrap();
        assert_eq!(cl.command.as_deref(), Some("exec"));
        assert_eq!(cl.global.region, None);
        assert!(!cl.help);
        assert_eq!(
            cl.args,
            argv("--profile p -- aws --region eu-west-1 --help -- x")
        );
        let cl = split_args(argv("--version")).unwrap();
        assert!(cl.version && cl.command.is_none());
    }

    #[test]
    fn opts_values_flags_and_errors() {
        let o = Opts::parse(
            &argv("--profile a --profile=b --json"),
            &["--profile"],
            &["--json"],
        )
        .unwrap();
        assert_eq!(o.values("--profile"), vec!["a", "b"]);
        assert_eq!(o.value("--profile"), Some("b"));
        assert!(o.flag("--json"));
        assert!(Opts::parse(&argv("--profile"), &["--profile"], &[]).is_err());
        assert!(Opts::parse(&argv("--bogus"), &["--profile"], &[]).is_err());
    }

    #[test]
    fn durations() {
        let s = |t| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(s("900s"), Ok(900));
        assert_eq!(s("45m"), Ok(2700));
        assert_eq!(s("12h"), Ok(43_200));
        assert_eq!(s("1h30m"), Ok(5400));
        assert_eq!(s("3600"), Ok(3600));
        for bad in ["", "h", "1x", "12h5", "-1h", "99999999999999999999h"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }
}
