//! The AWS profile files, `~/.aws/config` and `~/.aws/credentials`, read
//! into named profiles as the AWS CLI and SDKs read them.
//!
//! The public types (files, profiles, properties and where each came from)
//! are here; the parse passes are in `parse.rs`.
//!
//! # Pipeline
//!
//! Each file goes through three passes; the result of the two files is then
//! merged (credentials-file values win over config-file values).
//!
//! 1. **Lexer (this crate).** One pass over the lines applies the AWS line
//!    grammar, which differs from generic INI in ways `rust-ini` cannot be
//!    configured for:
//!    - whether a line is a comment, a section, a property or a
//!      continuation depends on its *first* character (an indented `# x` is
//!      a continuation, not a comment);
//!    - `#`/`;` start an inline comment after a section header anywhere, but
//!      after a property value only when preceded by whitespace, and never
//!      in a continuation line;
//!    - `=` is the only separator (`key : value` is an error, while `:` is a
//!      legal key character);
//!    - a property whose value is empty takes *sub-properties*, which must
//!      each contain `=`;
//!    - errors carry the AWS wording and a 1-based line number.
//!
//!    The lexer reports those errors and writes a canonical INI text: one
//!    `[section]` or `key=value` per line, continuations indented by a tab,
//!    comments and blank lines dropped, and `\`, `\r`, `:` (in keys) and `]`
//!    (in section names) escaped with `\`. It records, in document order,
//!    the source line of every section and property.
//! 2. **rust-ini.** The canonical text is parsed by `rust-ini` (escapes on,
//!    quotes off, indented multi-line values on), which assembles the
//!    sections, the ordered (possibly repeated) properties and the
//!    multi-line values. rust-ini keeps document order, so its sections and
//!    properties are paired with the lexer's line records one to one.
//!    rust-ini drops the leading line break of a value whose first line is
//!    empty (a sub-property block); the pairing puts it back.
//! 3. **Normaliser (this crate).** The AWS naming rules: `[profile x]` in
//!    the config file, `[x]` in the credentials file, `[default]` in both
//!    but ignored in the config file when `[profile default]` exists,
//!    `[sso-session x]` in the config file only; names and keys must match
//!    `[A-Za-z0-9_\-/.%@:+]+` or the section or key is ignored (with a
//!    `log` warning); keys are lower-cased; repeated sections merge and the
//!    last value of a key wins.
//!
//! # Known differences from the AWS SDKs
//!
//! rust-ini trims Unicode whitespace around keys and values where the AWS
//! grammar trims only spaces and tabs, so a value ending in, say, a
//! no-break space loses it, and a key made only of such whitespace is a
//! parse error rather than an ignored key. Neither occurs in the
//! conformance cases or in real profile files. Repeated sections merge in
//! file order (the Rust SDK merges differently spelled headers of the same
//! profile in hash order).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod parse;

pub use crate::chain::{Chain, RoleHop, SourceKeys};
pub use crate::location::{FileLocations, Platform};

use self::parse::{parse_file, Section, SectionKind, WS};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::location::{expand_tilde, home_dir};
use crate::words::REDACTED;

/// What `Error::Parse` and [`Origin`] name as the file for text given to
/// [`ProfileFiles::from_strings`].
const STRING_FILE: &str = "<string>";

/// Keys whose values are secrets: never printed by `Debug`.
const SECRET_KEYS: &[&str] = &[
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
];

/// Which of the two profile files a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// The config file (`~/.aws/config`): sections `[profile x]`,
    /// `[default]`, `[sso-session x]`.
    Config,
    /// The credentials file (`~/.aws/credentials`): sections `[x]`.
    Credentials,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Config => "config",
            FileKind::Credentials => "credentials",
        })
    }
}

/// Where a property was set: file and 1-based line.
///
/// `Display` prints `file:line`, for error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Origin {
    file: Arc<Path>,
    kind: FileKind,
    line: usize,
}

impl Origin {
    /// The file's path; `<string>` for text from
    /// [`ProfileFiles::from_strings`].
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether the file is the config or the credentials file.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The 1-based line of the property's first line.
    pub fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self, self.kind)
    }
}

/// One `key = value` of a profile, with where it was set.
///
/// `Debug` prints `**redacted**` instead of the value of
/// `aws_secret_access_key`, `aws_session_token` and `aws_security_token`,
/// and of any value with a continuation or sub-property line that sets one
/// of them (an indented `aws_secret_access_key = ...` line continues the
/// property above it).
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    key: String,
    value: String,
    sub: Option<BTreeMap<String, String>>,
    origin: Origin,
}

impl Property {
    /// The key, lower-case.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value as the AWS SDKs store it: trimmed, continuation lines
    /// joined with `\n`, and for a sub-property block the raw lines after a
    /// leading `\n` (`"\nkey = value"`).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// For a property written as a block of sub-properties (`s3 =` followed
    /// by indented `key = value` lines), those keys and values, trimmed, as
    /// written (keys are not lower-cased or validated). `None` for an
    /// ordinary property.
    pub fn sub_properties(&self) -> Option<&BTreeMap<String, String>> {
        self.sub.as_ref()
    }

    /// Where the property was set.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// True for keys whose values are secrets (`aws_secret_access_key`,
    /// `aws_session_token`, `aws_security_token`), and for values whose
    /// continuation or sub-property lines set one of those keys: a printer
    /// should redact them unless asked not to.
    ///
    /// ```
    /// use stslib::profile::ProfileFiles;
    /// let files = ProfileFiles::from_strings(
    ///     "",
    ///     "[p]\naws_access_key_id = AKIA1\n  aws_secret_access_key = s3cr3t\nregion = x\n",
    /// )?;
    /// let p = files.profile("p")?;
    /// assert!(p.property("aws_access_key_id").unwrap().is_secret());
    /// assert!(!p.property("region").unwrap().is_secret());
    /// assert!(!format!("{p:?}").contains("s3cr3t"));
    /// # Ok::<(), stslib::Error>(())
    /// ```
    pub fn is_secret(&self) -> bool {
        let names_secret = |line: &str| {
            line.split_once('=').is_some_and(|(k, _)| {
                SECRET_KEYS.contains(&k.trim_matches(WS).to_ascii_lowercase().as_str())
            })
        };
        SECRET_KEYS.contains(&self.key.as_str()) || self.value.lines().skip(1).any(names_secret)
    }
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Property");
        d.field("key", &self.key);
        if self.is_secret() {
            d.field("value", &REDACTED);
            if self.sub.is_some() {
                d.field("sub_properties", &REDACTED);
            }
        } else {
            d.field("value", &self.value);
            if let Some(sub) = &self.sub {
                d.field("sub_properties", sub);
            }
        }
        d.field("origin", &self.origin).finish()
    }
}

/// A named profile (or `[sso-session]` section) after both files are
/// merged.
///
/// `Debug` redacts secret values (see [`Property`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    name: String,
    properties: BTreeMap<String, Property>,
    /// `endpoint_url` per service from the `[services NAME]` section that
    /// the profile's `services = NAME` names.
    service_endpoints: BTreeMap<String, String>,
}

impl Profile {
    fn new(name: &str) -> Self {
        Profile {
            name: name.to_owned(),
            properties: BTreeMap::new(),
            service_endpoints: BTreeMap::new(),
        }
    }

    /// The `endpoint_url` that the profile's `services = NAME` gives
    /// `service` (`sts`, `iam`, ...) in the config file's `[services NAME]`
    /// section, as the AWS SDKs read it:
    ///
    /// ```
    /// use stslib::profile::ProfileFiles;
    /// let files = ProfileFiles::from_strings(
    ///     "[profile dev]\nservices = local\n\
    ///      [services local]\nsts =\n  endpoint_url = http://127.0.0.1:5000\n",
    ///     "",
    /// )?;
    /// let dev = files.profile("dev")?;
    /// assert_eq!(dev.service_endpoint_url("sts"), Some("http://127.0.0.1:5000"));
    /// assert_eq!(dev.service_endpoint_url("iam"), None);
    /// # Ok::<(), stslib::Error>(())
    /// ```
    pub fn service_endpoint_url(&self, service: &str) -> Option<&str> {
        self.service_endpoints
            .get(&service.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The profile's name (`default`, `dev`, ... without `profile `).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key` (case-insensitive), if set. See
    /// [`Property::value`] for its form.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.property(key).map(Property::value)
    }

    /// The property `key` (case-insensitive), with its origin.
    pub fn property(&self, key: &str) -> Option<&Property> {
        match self.properties.get(key) {
            Some(p) => Some(p),
            None => self.properties.get(&key.to_ascii_lowercase()),
        }
    }

    /// The sub-properties of `key`, when it is a sub-property block.
    pub fn sub_properties(&self, key: &str) -> Option<&BTreeMap<String, String>> {
        self.property(key).and_then(Property::sub_properties)
    }

    /// All properties, sorted by key.
    pub fn properties(&self) -> impl Iterator<Item = &Property> + '_ {
        self.properties.values()
    }

    /// True when the profile has no properties.
    pub fn is_empty(&self) -> bool {
        self.properties.is_empty()
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("properties", &self.properties.values().collect::<Vec<_>>())
            .finish()
    }
}

/// The AWS config and credentials files, parsed and merged.
///
/// ```
/// use stslib::profile::ProfileFiles;
/// let files = ProfileFiles::from_strings(
///     "[profile dev]\nregion = eu-west-1\n",
///     "[dev]\naws_access_key_id = AKIAEXAMPLE\n",
/// )?;
/// let dev = files.profile("dev")?;
/// assert_eq!(dev.get("region"), Some("eu-west-1"));
/// assert_eq!(dev.get("AWS_ACCESS_KEY_ID"), Some("AKIAEXAMPLE"));
/// assert_eq!(files.profile_names().collect::<Vec<_>>(), ["dev"]);
/// # Ok::<(), stslib::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ProfileFiles {
    config_path: Option<PathBuf>,
    credentials_path: Option<PathBuf>,
    profiles: BTreeMap<String, Profile>,
    sso_sessions: BTreeMap<String, Profile>,
}

impl ProfileFiles {
    /// Reads the files the AWS CLI would read in `env` (see
    /// [`FileLocations`]). A file that does not exist reads as empty; one
    /// that exists but cannot be read is an [`Error::Io`] naming it.
    pub fn load(env: &Env) -> Result<Self> {
        let loc = FileLocations::from_env(env);
        Self::read(loc.config, false, loc.credentials, false)
    }

    /// Reads the given files; for `None`, the file [`ProfileFiles::load`]
    /// would read. A leading `~` is expanded with the home directory from
    /// `env`. A file given here must exist ([`Error::Io`] otherwise); a
    /// default one that does not exist reads as empty.
    pub fn from_paths(
        config: Option<&Path>,
        credentials: Option<&Path>,
        env: &Env,
    ) -> Result<Self> {
        let platform = Platform::current();
        let home = home_dir(env, platform);
        let expand = |p: &Path| match p.to_str() {
            Some(s) => expand_tilde(s, home.as_deref(), platform),
            None => p.to_path_buf(),
        };
        let loc = FileLocations::for_platform(env, platform);
        let (config, config_given) = match config {
            Some(p) => (Some(expand(p)), true),
            None => (loc.config, false),
        };
        let (credentials, credentials_given) = match credentials {
            Some(p) => (Some(expand(p)), true),
            None => (loc.credentials, false),
        };
        Self::read(config, config_given, credentials, credentials_given)
    }

    /// Parses file contents held in memory. Errors and origins name the
    /// file `<string>`.
    pub fn from_strings(config: &str, credentials: &str) -> Result<Self> {
        let file: Arc<Path> = Arc::from(Path::new(STRING_FILE));
        Self::parse(config, &file, credentials, &file)
    }

    fn read(
        config: Option<PathBuf>,
        config_required: bool,
        credentials: Option<PathBuf>,
        credentials_required: bool,
    ) -> Result<Self> {
        let config_text = read_file(config.as_deref(), config_required)?;
        let credentials_text = read_file(credentials.as_deref(), credentials_required)?;
        let name = |p: &Option<PathBuf>| -> Arc<Path> {
            Arc::from(p.as_deref().unwrap_or(Path::new(STRING_FILE)))
        };
        let mut files = Self::parse(
            &config_text,
            &name(&config),
            &credentials_text,
            &name(&credentials),
        )?;
        files.config_path = config;
        files.credentials_path = credentials;
        Ok(files)
    }

    fn parse(
        config: &str,
        config_file: &Arc<Path>,
        credentials: &str,
        credentials_file: &Arc<Path>,
    ) -> Result<Self> {
        let mut files = ProfileFiles::default();
        let config_sections = parse_file(config, config_file, FileKind::Config)?;
        let credentials_sections =
            parse_file(credentials, credentials_file, FileKind::Credentials)?;
        let mut services = BTreeMap::new();
        files.merge(config_sections, &mut services);
        files.merge(credentials_sections, &mut services);
        files.link_services(&services);
        Ok(files)
    }

    /// Gives each profile naming `services = NAME` the endpoints of that
    /// `[services NAME]` section (unknown names are ignored, as the SDKs
    /// ignore them).
    fn link_services(&mut self, services: &BTreeMap<String, Profile>) {
        for profile in self.profiles.values_mut() {
            let Some(section) = profile.get("services").and_then(|n| services.get(n)) else {
                continue;
            };
            let endpoints: BTreeMap<String, String> = section
                .properties()
                .filter_map(|p| {
                    let url = p.sub_properties()?.get("endpoint_url")?;
                    Some((p.key().to_owned(), url.clone()))
                })
                .collect();
            profile.service_endpoints = endpoints;
        }
    }

    fn merge(&mut self, sections: Vec<Section>, services: &mut BTreeMap<String, Profile>) {
        for section in sections {
            let map = match section.kind {
                SectionKind::Profile => &mut self.profiles,
                SectionKind::SsoSession => &mut self.sso_sessions,
                SectionKind::Services => &mut *services,
            };
            let profile = map
                .entry(section.name.clone())
                .or_insert_with(|| Profile::new(&section.name));
            for p in section.properties {
                profile.properties.insert(p.key.clone(), p);
            }
        }
    }

    /// The named profile, or [`Error::ProfileNotFound`] listing the
    /// profiles that exist.
    pub fn profile(&self, name: &str) -> Result<&Profile> {
        self.profiles
            .get(name)
            .ok_or_else(|| Error::ProfileNotFound {
                profile: name.to_owned(),
                available: self.profiles.keys().cloned().collect(),
            })
    }

    /// The names of all profiles, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.profiles.keys().map(String::as_str)
    }

    /// The names of all `[sso-session x]` sections, sorted.
    pub fn sso_sessions(&self) -> impl Iterator<Item = &str> + '_ {
        self.sso_sessions.keys().map(String::as_str)
    }

    /// The named `[sso-session x]` section.
    pub fn sso_session(&self, name: &str) -> Option<&Profile> {
        self.sso_sessions.get(name)
    }

    /// The config file read, if any (`None` for
    /// [`ProfileFiles::from_strings`], or when no home directory is known).
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The credentials file read, if any (as for
    /// [`ProfileFiles::config_path`]).
    pub fn credentials_path(&self) -> Option<&Path> {
        self.credentials_path.as_deref()
    }
}

/// The file's text; empty when there is no path, or the file is missing and
/// not `required`.
fn read_file(path: Option<&Path>, required: bool) -> Result<String> {
    let Some(path) = path else {
        return Ok(String::new());
    };
    match std::fs::read_to_string(path) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            log::debug!("{} not found; read as empty", path.display());
            Ok(String::new())
        }
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: &str, credentials: &str) -> ProfileFiles {
        ProfileFiles::from_strings(config, credentials).expect("parses")
    }

    fn parse_err(config: &str) -> (usize, String) {
        match ProfileFiles::from_strings(config, "") {
            Err(Error::Parse { line, message, .. }) => (line, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn errors_carry_line_numbers() {
        assert_eq!(
            parse_err("# c\n\n[profile a]\nx = 1\n[profile b"),
            (5, "Profile definition must end with ']'".into())
        );
        assert_eq!(parse_err("\n\nx = 1").0, 3);
        assert_eq!(
            parse_err("[profile a]\r\nx = 1\r\n y\r\nz : 2"),
            (4, "Expected an '=' sign defining a property".into())
        );
        assert_eq!(parse_err("[profile a]\ns3 =\n a = 1\n\n b").0, 5);
        let e = ProfileFiles::from_strings("", "[a]\n= 1").unwrap_err();
        assert_eq!(e.to_string(), "<string>:2: Property did not have a name");
    }

    #[test]
    fn origins_name_file_and_line() {
        let f = parse("[profile a]\n\nregion = x\n", "\n[a]\nkey = y\n");
        let a = f.profile("a").unwrap();
        let region = a.property("region").unwrap();
        assert_eq!(
            (region.origin().kind(), region.origin().line()),
            (FileKind::Config, 3)
        );
        let key = a.property("KEY").unwrap();
        assert_eq!(
            (key.origin().kind(), key.origin().line()),
            (FileKind::Credentials, 3)
        );
        assert_eq!(key.origin().to_string(), "<string>:3");
    }

    #[test]
    fn credentials_win_over_config() {
        let f = parse(
            "[profile a]\naws_access_key_id = FROMCONFIG\nregion = r\n",
            "[a]\naws_access_key_id = FROMCREDS\n",
        );
        let a = f.profile("a").unwrap();
        assert_eq!(a.get("aws_access_key_id"), Some("FROMCREDS"));
        assert_eq!(a.get("region"), Some("r"));
    }

    #[test]
    fn profile_not_found_lists_sorted_names() {
        let f = parse("[profile zeta]\n[default]\n", "[alpha]\n");
        match f.profile("nope") {
            Err(Error::ProfileNotFound { profile, available }) => {
                assert_eq!(profile, "nope");
                assert_eq!(available, ["alpha", "default", "zeta"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sub_properties_and_escapes() {
        let f = parse(
            "[profile a]\ns3 =\n  max_concurrent_requests = 20\n  addressing_style=path\n\
             path = C:\\dir\\\nnext = x:y\nkey:colon = v\n",
            "",
        );
        let a = f.profile("a").unwrap();
        let s3 = a.sub_properties("s3").unwrap();
        assert_eq!(s3["max_concurrent_requests"], "20");
        assert_eq!(s3["addressing_style"], "path");
        assert_eq!(a.get("path"), Some("C:\\dir\\"));
        assert_eq!(a.get("next"), Some("x:y"));
        assert_eq!(a.get("key:colon"), Some("v"));
        assert_eq!(a.sub_properties("path"), None);
    }

    #[test]
    fn rust_ini_quirks_are_neutralised() {
        // Quotes, backslash escapes and `\`-newline mean nothing in AWS
        // files; an indented `[x]` or `# x` is a continuation.
        let f = parse(
            "[profile a]\nq = \"quoted\" 'single'\nesc = a\\nb\\x41\\\nnext = 1\n\
             multi = first\n  [not a section]\n  # not a comment\nsemi = a;b #c\n",
            "",
        );
        let a = f.profile("a").unwrap();
        assert_eq!(a.get("q"), Some("\"quoted\" 'single'"));
        assert_eq!(a.get("esc"), Some("a\\nb\\x41\\"));
        assert_eq!(a.get("next"), Some("1"));
        assert_eq!(
            a.get("multi"),
            Some("first\n[not a section]\n# not a comment")
        );
        assert_eq!(a.get("semi"), Some("a;b"));
        assert_eq!(f.profile_names().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn sso_sessions_are_separate() {
        let f = parse(
            "[sso-session corp]\nsso_region = eu-west-1\n[profile a]\n",
            "",
        );
        assert_eq!(f.sso_sessions().collect::<Vec<_>>(), ["corp"]);
        assert_eq!(
            f.sso_session("corp").unwrap().get("sso_region"),
            Some("eu-west-1")
        );
        assert_eq!(f.profile_names().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn debug_redacts_secrets() {
        let f = parse(
            "[profile a]\naws_session_token = TOKENVALUE\n",
            "[a]\naws_access_key_id = AKIAVISIBLE\naws_secret_access_key = SECRETVALUE\n",
        );
        let all = format!("{f:?} {:?} {:#?}", f.profile("a").unwrap(), f);
        assert!(!all.contains("SECRETVALUE"), "{all}");
        assert!(!all.contains("TOKENVALUE"), "{all}");
        assert!(all.contains("AKIAVISIBLE"));
        assert!(all.contains(REDACTED));
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "stslib-profile-{tag}-{}-{}",
            std::process::id(),
            crate::rand::u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_default_files_read_as_empty() {
        let dir = temp_dir("missing");
        let env = Env::from_pairs([("HOME", dir.to_str().unwrap())]);
        let f = ProfileFiles::load(&env).unwrap();
        assert_eq!(f.profile_names().count(), 0);
        assert_eq!(f.config_path(), Some(dir.join(".aws/config").as_path()));
        // No home at all: nothing to read, no paths.
        let f = ProfileFiles::load(&Env::from_pairs::<&str, &str>([])).unwrap();
        assert_eq!((f.config_path(), f.credentials_path()), (None, None));
        // An explicitly given file must exist.
        let e = ProfileFiles::from_paths(None, Some(Path::new("~/nope")), &env).unwrap_err();
        match e {
            Error::Io { path, .. } => assert_eq!(path, dir.join("nope")),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn from_paths_expands_tilde_and_reads() {
        let dir = temp_dir("paths");
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(dir.join(".aws/config"), "[profile a]\nregion = r\n").unwrap();
        std::fs::write(dir.join("other-creds"), "[a]\naws_access_key_id = K\n").unwrap();
        let env = Env::from_pairs([("HOME", dir.to_str().unwrap())]);
        let f = ProfileFiles::from_paths(None, Some(Path::new("~/other-creds")), &env).unwrap();
        assert_eq!(
            f.credentials_path(),
            Some(dir.join("other-creds").as_path())
        );
        let a = f.profile("a").unwrap();
        assert_eq!(a.get("region"), Some("r"));
        assert_eq!(
            a.property("aws_access_key_id").unwrap().origin().file(),
            dir.join("other-creds")
        );
        // A directory where a file should be is an I/O error naming it.
        let e = ProfileFiles::from_paths(Some(&dir), None, &env).unwrap_err();
        assert!(
            matches!(&e, Error::Io { path, .. } if path == &dir),
            "{e:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
