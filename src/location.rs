//! Where the AWS profile files are, and which profile is selected.
//!
//! Pure: everything comes from a [`crate::Env`]; nothing here touches the
//! file system. The rules are the AWS CLI/SDK ones:
//!
//! - config file: `AWS_CONFIG_FILE`, else `<home>/.aws/config`;
//! - credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else
//!   `<home>/.aws/credentials`;
//! - profile: `AWS_PROFILE`, else `default`;
//! - home: `HOME`; on Windows, when `HOME` is unset, `USERPROFILE`, then
//!   `HOMEDRIVE` + `HOMEPATH`;
//! - a path that is `~` or starts with `~/` (or `~\` on Windows) has the `~`
//!   replaced by the home directory.
//!
//! The platform is a parameter ([`Platform`]) so the Windows rules can be
//! tested anywhere; [`FileLocations::from_env`] uses the platform the crate
//! was compiled for.

use std::path::PathBuf;

use crate::env::Env;

/// The profile used when `AWS_PROFILE` is not set.
pub(crate) const DEFAULT_PROFILE: &str = "default";

/// Which platform's rules to apply for the home directory and path
/// separators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Platform {
    /// Linux, macOS and other Unix: home is `HOME`, separator `/`.
    Unix,
    /// Windows: home is `HOME`, else `USERPROFILE`, else `HOMEDRIVE` +
    /// `HOMEPATH`; separator `\`.
    Windows,
}

impl Platform {
    /// The platform this crate was compiled for.
    pub fn current() -> Self {
        if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Unix
        }
    }

    fn separator(self) -> char {
        match self {
            Platform::Unix => '/',
            Platform::Windows => '\\',
        }
    }
}

/// The profile files and profile an AWS CLI would use in a given
/// environment.
///
/// ```
/// use stslib::profile::{FileLocations, Platform};
/// use stslib::Env;
/// let env = Env::from_pairs([("HOME", "/home/u"), ("AWS_PROFILE", "dev")]);
/// let loc = FileLocations::for_platform(&env, Platform::Unix);
/// assert_eq!(loc.config.as_deref(), Some("/home/u/.aws/config".as_ref()));
/// assert_eq!(loc.credentials.as_deref(), Some("/home/u/.aws/credentials".as_ref()));
/// assert_eq!(loc.profile, "dev");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileLocations {
    /// The config file; `None` when neither `AWS_CONFIG_FILE` nor a home
    /// directory is known.
    pub config: Option<PathBuf>,
    /// The credentials file; `None` when neither
    /// `AWS_SHARED_CREDENTIALS_FILE` nor a home directory is known.
    pub credentials: Option<PathBuf>,
    /// The selected profile: `AWS_PROFILE`, else `default`.
    pub profile: String,
}

impl FileLocations {
    /// The locations for the platform this crate was compiled for.
    pub fn from_env(env: &Env) -> Self {
        Self::for_platform(env, Platform::current())
    }

    /// The locations under `platform`'s rules.
    pub fn for_platform(env: &Env, platform: Platform) -> Self {
        let home = home_dir(env, platform);
        let file = |var: &str, name: &str| match env.get(var) {
            Some(p) => Some(expand_tilde(&p, home.as_deref(), platform)),
            None => home
                .as_deref()
                .map(|h| PathBuf::from(join(h, &[".aws", name], platform))),
        };
        FileLocations {
            config: file("AWS_CONFIG_FILE", "config"),
            credentials: file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile: env
                .get("AWS_PROFILE")
                .unwrap_or_else(|| DEFAULT_PROFILE.to_owned()),
        }
    }
}

/// The home directory under `platform`'s rules, if the environment names
/// one.
pub(crate) fn home_dir(env: &Env, platform: Platform) -> Option<String> {
    if let Some(home) = env.get("HOME") {
        return Some(home);
    }
    match platform {
        Platform::Unix => None,
        Platform::Windows => env.get("USERPROFILE").or_else(|| {
            let drive = env.get("HOMEDRIVE")?;
            let path = env.get("HOMEPATH")?;
            Some(format!("{drive}{path}"))
        }),
    }
}

/// `path` with a leading `~` (alone, or followed by a separator) replaced by
/// `home`. Anything else, including `~user/...`, is returned unchanged, as
/// is every path when `home` is `None`.
pub(crate) fn expand_tilde(path: &str, home: Option<&str>, platform: Platform) -> PathBuf {
    let Some(home) = home else {
        return PathBuf::from(path);
    };
    let Some(rest) = path.strip_prefix('~') else {
        return PathBuf::from(path);
    };
    let is_sep = |c: char| c == '/' || (platform == Platform::Windows && c == '\\');
    if rest.is_empty() {
        return PathBuf::from(home);
    }
    if rest.starts_with(is_sep) {
        let rest = rest.trim_start_matches(is_sep);
        return PathBuf::from(join(home, &[rest], platform));
    }
    PathBuf::from(path)
}

/// Joins path parts as text with the platform's separator, so Windows paths
/// come out with `\` even when the crate runs elsewhere.
fn join(base: &str, parts: &[&str], platform: Platform) -> String {
    let sep = platform.separator();
    let mut out = base.to_owned();
    for part in parts {
        if !out.ends_with(['/', sep]) {
            out.push(sep);
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pairs: &[(&str, &str)], platform: Platform) -> FileLocations {
        FileLocations::for_platform(&Env::from_pairs(pairs.iter().copied()), platform)
    }

    #[test]
    fn defaults_under_home() {
        let l = loc(&[("HOME", "/home/u")], Platform::Unix);
        assert_eq!(l.config, Some(PathBuf::from("/home/u/.aws/config")));
        assert_eq!(
            l.credentials,
            Some(PathBuf::from("/home/u/.aws/credentials"))
        );
        assert_eq!(l.profile, "default");
    }

    #[test]
    fn trailing_slash_in_home_is_not_doubled() {
        let l = loc(&[("HOME", "/home/u/")], Platform::Unix);
        assert_eq!(l.config, Some(PathBuf::from("/home/u/.aws/config")));
    }

    #[test]
    fn no_home_no_default_paths() {
        let l = loc(&[("AWS_CONFIG_FILE", "/etc/aws")], Platform::Unix);
        assert_eq!(l.config, Some(PathBuf::from("/etc/aws")));
        assert_eq!(l.credentials, None);
        // USERPROFILE only counts on Windows.
        let l = loc(&[("USERPROFILE", "C:\\u")], Platform::Unix);
        assert_eq!(l.config, None);
    }

    #[test]
    fn tilde_expansion() {
        let home = Some("/home/u");
        let u = Platform::Unix;
        assert_eq!(expand_tilde("~", home, u), PathBuf::from("/home/u"));
        assert_eq!(expand_tilde("~/a/b", home, u), PathBuf::from("/home/u/a/b"));
        assert_eq!(expand_tilde("~user/a", home, u), PathBuf::from("~user/a"));
        assert_eq!(expand_tilde("/x/~/a", home, u), PathBuf::from("/x/~/a"));
        assert_eq!(expand_tilde("~/a", None, u), PathBuf::from("~/a"));
        // `~\` is a separator only on Windows.
        assert_eq!(expand_tilde("~\\a", home, u), PathBuf::from("~\\a"));
        let w = Platform::Windows;
        assert_eq!(
            expand_tilde("~\\a", Some("C:\\u"), w),
            PathBuf::from("C:\\u\\a")
        );
        let l = loc(
            &[("HOME", "/h"), ("AWS_SHARED_CREDENTIALS_FILE", "~/creds")],
            Platform::Unix,
        );
        assert_eq!(l.credentials, Some(PathBuf::from("/h/creds")));
    }
}
