//! Validating tokens: python-kmsauth's `KMSTokenValidator.decrypt_token`,
//! step for step and message for message, without its quirks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::lru::Lru;
use super::token::{self, PlaintextError, UserType, Username, MAX_VERSION, MIN_VERSION};
use super::{reject, reject_because, KeySource, TokenRejection};
use crate::credentials::AccessKey;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms, KmsClient};
use crate::session::Session;

/// The default size of the cache of validated tokens.
pub const DEFAULT_CACHE_SIZE: usize = 4096;
/// The default maximum token lifetime, 60 minutes.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// The longest token read: the base64 of KMS's largest ciphertext (6144
/// bytes) is 8192 characters; twice that leaves room for line breaks.
const MAX_TOKEN_LEN: usize = 2 * 8192;

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidatedToken {
    /// The token version from the username.
    pub version: u32,
    /// Who sent it.
    pub from: String,
    /// The sender's type.
    pub user_type: UserType,
    /// The decrypted JSON object, as KMS returned it (it holds at least
    /// `not_before` and `not_after`).
    pub payload: String,
    /// Start of the validity window (UTC).
    pub not_before: OffsetDateTime,
    /// End of the validity window (UTC, inclusive).
    pub not_after: OffsetDateTime,
    /// The configured key entry (alias, key id or ARN, as given) that
    /// matched the decrypting key.
    pub key_alias: String,
    /// For a scoped key, the account name it was configured with.
    pub account: Option<String>,
}

/// What the cache keeps for a token that decrypted.
#[derive(Debug, Clone)]
struct Decrypted {
    payload: String,
    validity: token::Validity,
    key_alias: String,
    account: Option<String>,
}

/// The cache key: the token and the parts of the context that vary per
/// token. `to` and the extra context are fixed for a validator, so the key
/// covers the whole context, version included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    token: String,
    username: Username,
}

/// Validates kmsauth tokens. Thread-safe: share one (`Arc`) across threads.
///
/// ```no_run
/// use stslib::kmsauth::TokenValidator;
/// use stslib::kms::KmsClient;
/// use stslib::Session;
///
/// let session = Session::builder().profile("alice").build()?;
/// session.generate_credentials(&["confidant"])?;
/// let validator = TokenValidator::builder("confidant-production")
///     .service_key("alias/authnz-production")
///     .user_key("alias/authnz-users")
///     .client(KmsClient::builder().region("us-east-1").build()?)
///     .session_role(&session, "confidant")
///     .build()?;
/// let ok = validator.validate("2/service/svc-a", "AQICAHh...")?;
/// println!("{} ({}) via {}", ok.from, ok.user_type, ok.key_alias);
/// # Ok::<(), stslib::Error>(())
/// ```
pub struct TokenValidator {
    kms: Arc<dyn Kms>,
    keys: KeySource,
    to: String,
    service_keys: Vec<String>,
    user_keys: Vec<String>,
    scoped_keys: Vec<(String, String)>,
    min_version: u32,
    max_version: u32,
    max_lifetime: time::Duration,
    extra_context: EncryptionContext,
    cache: Mutex<Lru<CacheKey, Arc<Decrypted>>>,
    /// Key entry → key ARN, from DescribeKey (or the entry itself).
    resolved: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("to", &self.to)
            .field("service_keys", &self.service_keys)
            .field("user_keys", &self.user_keys)
            .field("scoped_keys", &self.scoped_keys)
            .field("versions", &(self.min_version..=self.max_version))
            .field("max_lifetime", &self.max_lifetime)
            .field("extra_context", &self.extra_context)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenValidator`].
#[must_use]
pub struct TokenValidatorBuilder {
    kms: Option<Arc<dyn Kms>>,
    keys: KeySource,
    to: String,
    service_keys: Vec<String>,
    user_keys: Vec<String>,
    scoped_keys: Vec<(String, String)>,
    min_version: u32,
    max_version: u32,
    max_lifetime: Duration,
    extra_context: EncryptionContext,
    cache_size: usize,
}

impl fmt::Debug for TokenValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidatorBuilder")
            .field("to", &self.to)
            .field("service_keys", &self.service_keys)
            .field("user_keys", &self.user_keys)
            .field("scoped_keys", &self.scoped_keys)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    /// A builder for a validator that accepts tokens addressed to `to`
    /// (python-kmsauth's `to_auth_context`).
    pub fn builder(to: impl Into<String>) -> TokenValidatorBuilder {
        TokenValidatorBuilder {
            kms: None,
            keys: KeySource::Unset,
            to: to.into(),
            service_keys: Vec::new(),
            user_keys: Vec::new(),
            scoped_keys: Vec::new(),
            min_version: MIN_VERSION,
            max_version: MAX_VERSION,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            extra_context: EncryptionContext::new(),
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

impl TokenValidatorBuilder {
    /// Adds a key accepted for `service` tokens: an alias (`alias/name`), a
    /// key id or a key ARN. An alias ARN is compared as it is with the key
    /// ARN KMS reports, so it never matches (as in python-kmsauth); the
    /// build logs a warning for one. Defaults to none.
    pub fn service_key(mut self, key: impl Into<String>) -> Self {
        self.service_keys.push(key.into());
        self
    }

    /// Adds a key accepted for `user` tokens. Defaults to none.
    pub fn user_key(mut self, key: impl Into<String>) -> Self {
        self.user_keys.push(key.into());
        self
    }

    /// Adds a key accepted for `service` tokens and mapped to an account
    /// name, reported in [`ValidatedToken::account`] (python-kmsauth's
    /// `scoped_auth_keys`). Defaults to none.
    pub fn scoped_key(mut self, key: impl Into<String>, account: impl Into<String>) -> Self {
        self.scoped_keys.push((key.into(), account.into()));
        self
    }

    /// The lowest token version accepted, 1 or 2. Defaults to 1.
    pub fn min_token_version(mut self, version: u32) -> Self {
        self.min_version = version;
        self
    }

    /// The highest token version accepted, 1 or 2. Defaults to 2.
    pub fn max_token_version(mut self, version: u32) -> Self {
        self.max_version = version;
        self
    }

    /// The longest `not_after - not_before` accepted (inclusive). Defaults
    /// to 60 minutes.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Adds a pair every token's encryption context must hold (agreed with
    /// the generators). `to`, `from` and `user_type` here are ignored: the
    /// real ones win. Defaults to none.
    pub fn context(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_context.insert(key.into(), value.into());
        self
    }

    /// How many validated tokens to remember (0: none). Defaults to 4096.
    pub fn cache_size(mut self, entries: usize) -> Self {
        self.cache_size = entries;
        self
    }

    /// The KMS client (region, endpoint, timeouts, and the clock the
    /// validity window is checked by, corrected with any skew learnt from
    /// KMS). Defaults to
    /// `KmsClient::builder().build()`: the region and endpoint from the
    /// environment.
    pub fn client(mut self, client: KmsClient) -> Self {
        self.kms = Some(Arc::new(client));
        self
    }

    /// Sign KMS calls with these keys. Defaults to unset (one of this and
    /// [`session_role`](Self::session_role) is required).
    pub fn access_key(mut self, keys: AccessKey) -> Self {
        self.keys = KeySource::Static(keys);
        self
    }

    /// Sign KMS calls with the credentials `session` holds for the role
    /// profile `profile`, read afresh for each call (the session's
    /// refresher keeps them valid). Defaults to unset.
    pub fn session_role(mut self, session: &Session, profile: &str) -> Self {
        self.keys = KeySource::role(session, profile);
        self
    }

    #[cfg(test)]
    pub(crate) fn kms(mut self, kms: Arc<dyn Kms>) -> Self {
        self.kms = Some(kms);
        self
    }

    /// Checks the settings (python-kmsauth's `ConfigurationError` cases,
    /// plus: at least one key, no empty entries, `to` not empty).
    pub fn build(self) -> Result<TokenValidator> {
        let version_ok = |v: u32| (MIN_VERSION..=MAX_VERSION).contains(&v);
        if !version_ok(self.min_version) {
            return Err(Error::invalid_input(
                "min_token_version",
                format!("{} is not 1 or 2", self.min_version),
            ));
        }
        if !version_ok(self.max_version) {
            return Err(Error::invalid_input(
                "max_token_version",
                format!("{} is not 1 or 2", self.max_version),
            ));
        }
        if self.min_version > self.max_version {
            return Err(Error::invalid_input(
                "min_token_version",
                format!(
                    "{} is greater than max_token_version {}",
                    self.min_version, self.max_version
                ),
            ));
        }
        if self.to.is_empty() || self.to.contains('/') {
            return Err(Error::invalid_input(
                "to",
                "must be a non-empty name without `/`",
            ));
        }
        if self.service_keys.is_empty() && self.user_keys.is_empty() && self.scoped_keys.is_empty()
        {
            return Err(Error::invalid_input(
                "keys",
                "no service, user or scoped key: every token would be refused",
            ));
        }
        let entries = self
            .service_keys
            .iter()
            .chain(&self.user_keys)
            .chain(self.scoped_keys.iter().map(|(k, _)| k));
        if entries.clone().any(|k| k.trim().is_empty()) {
            return Err(Error::invalid_input("keys", "a key entry is empty"));
        }
        self.keys.check()?;
        for key in ["to", "from", "user_type"] {
            if self.extra_context.contains_key(key) {
                log::warn!("kmsauth: `{key}` in the validator's extra context is ignored");
            }
        }
        let mut resolved = HashMap::new();
        for entry in entries {
            if is_arn(entry) {
                if !is_key_arn(entry) {
                    log::warn!(
                        "kmsauth: allow-list entry {} is an ARN but not a key ARN: it never \
                         matches the key ARN KMS reports (use the alias name or the key ARN)",
                        crate::error::cap(entry)
                    );
                }
                resolved.insert(entry.clone(), entry.clone());
            }
        }
        let kms = match self.kms {
            Some(k) => k,
            None => Arc::new(KmsClient::builder().build()?),
        };
        Ok(TokenValidator {
            kms,
            keys: self.keys,
            to: self.to,
            service_keys: self.service_keys,
            user_keys: self.user_keys,
            scoped_keys: self.scoped_keys,
            min_version: self.min_version,
            max_version: self.max_version,
            max_lifetime: time::Duration::try_from(self.max_lifetime)
                .unwrap_or(time::Duration::MAX),
            extra_context: self.extra_context,
            cache: Mutex::new(Lru::new(self.cache_size)),
            resolved: Mutex::new(resolved),
        })
    }
}

/// Any ARN is compared as is with the Decrypt `KeyId` and never described
/// (SPEC §1.5 and python-kmsauth): a key ARN can match, an alias ARN never
/// does.
fn is_arn(entry: &str) -> bool {
    entry.starts_with("arn:")
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID`.
fn is_key_arn(entry: &str) -> bool {
    let parts: Vec<&str> = entry.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "kms"
        && parts[5].starts_with("key/")
        && parts[5].len() > 4
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// python-kmsauth's split: connection failures, then everything else.
fn kms_failure(e: Error) -> Error {
    let reason = if matches!(e, Error::Transport { .. }) {
        TokenRejection::ConnectionFailure
    } else {
        TokenRejection::GeneralError
    };
    reject_because(reason, e)
}

impl TokenValidator {
    /// Validates `token` sent with `username` (python-kmsauth's
    /// `decrypt_token`). A refusal is [`Error::InvalidToken`], whose
    /// message is python-kmsauth's; other errors (no credentials for the
    /// KMS call) keep their own variants.
    pub fn validate(&self, username: &str, token: &str) -> Result<ValidatedToken> {
        // 1. Username.
        let name = token::parse_username(username)
            .ok_or_else(|| reject(TokenRejection::UnsupportedUsernameFormat))?;
        // 2. Version range.
        if name.version < self.min_version || name.version > self.max_version {
            return Err(reject(TokenRejection::UnacceptableTokenVersion));
        }
        // A token longer than any KMS ciphertext is refused before it is
        // copied, decoded or sent (python-kmsauth sends it and KMS answers
        // ValidationException: the same `General error.`).
        if token.len() > MAX_TOKEN_LEN {
            return Err(reject(TokenRejection::GeneralError));
        }
        // 3. Cache.
        let key = CacheKey {
            token: token.to_owned(),
            username: name,
        };
        let cached = lock(&self.cache).get(&key);
        let hit = cached.is_some();
        let decrypted = match cached {
            Some(d) => d,
            // 4-6. Decrypt, key check, plaintext.
            None => Arc::new(self.decrypt(&key.username, token)?),
        };
        // 7. Time checks, on hits too.
        let validity = &decrypted.validity;
        if validity.not_after - validity.not_before > self.max_lifetime {
            return Err(reject(TokenRejection::LifetimeExceeded));
        }
        let now = self.kms.now();
        if now < validity.not_before || now > validity.not_after {
            return Err(reject(TokenRejection::InvalidTimeValidity));
        }
        // 8. Remember the success (a hit is already the most recent entry:
        // `get` moved it there).
        let out = ValidatedToken {
            version: key.username.version,
            from: key.username.from.clone(),
            user_type: UserType::parse(&key.username.user_type).unwrap_or(UserType::Service),
            payload: decrypted.payload.clone(),
            not_before: validity.not_before,
            not_after: validity.not_after,
            key_alias: decrypted.key_alias.clone(),
            account: decrypted.account.clone(),
        };
        if !hit {
            lock(&self.cache).put(key, decrypted);
        }
        Ok(out)
    }

    fn decrypt(&self, name: &Username, token: &str) -> Result<Decrypted> {
        let blob =
            token::decode_token(token).ok_or_else(|| reject(TokenRejection::GeneralError))?;
        let context = token::context(
            &self.extra_context,
            name.version,
            &self.to,
            &name.from,
            &name.user_type,
        );
        let keys = self.keys.keys()?;
        let out = self
            .kms
            .decrypt(&keys, &blob, &context)
            .map_err(kms_failure)?;
        let (key_alias, account) = match UserType::parse(&name.user_type) {
            Some(UserType::Service) => {
                let plain = self.service_keys.iter().map(|k| (k, None));
                let scoped = self.scoped_keys.iter().map(|(k, a)| (k, Some(a)));
                self.find_key(&keys, &out.key_id, plain.chain(scoped))?
            }
            Some(UserType::User) => {
                self.find_key(&keys, &out.key_id, self.user_keys.iter().map(|k| (k, None)))?
            }
            None => return Err(reject(TokenRejection::UnsupportedUserType)),
        };
        let Some((key_alias, account)) = key_alias.map(|k| (k, account)) else {
            return Err(reject(TokenRejection::WrongKey));
        };
        let validity = match token::parse_plaintext(&out.plaintext) {
            Ok(v) => v,
            Err(PlaintextError::NotJson(m)) => {
                return Err(reject_because(
                    TokenRejection::GeneralError,
                    Error::Response {
                        action: "Decrypt",
                        message: format!("the plaintext is {m}"),
                        request_id: None,
                    },
                ))
            }
            Err(PlaintextError::MissingValidity) => {
                return Err(reject(TokenRejection::MissingValidity))
            }
        };
        Ok(Decrypted {
            payload: String::from_utf8_lossy(&out.plaintext).into_owned(),
            validity,
            key_alias,
            account,
        })
    }

    /// The first entry of `entries` whose key ARN is `arn`, resolving
    /// entries with DescribeKey as needed (cached). An entry KMS does not
    /// know (`NotFoundException`) matches nothing, and the others are
    /// still tried.
    fn find_key<'a>(
        &self,
        keys: &AccessKey,
        arn: &str,
        entries: impl Iterator<Item = (&'a String, Option<&'a String>)>,
    ) -> Result<(Option<String>, Option<String>)> {
        for (entry, account) in entries {
            let known = lock(&self.resolved).get(entry).cloned();
            let resolved = match known {
                Some(a) => a,
                None => match self.kms.describe_key(keys, entry) {
                    Ok(meta) => {
                        lock(&self.resolved).insert(entry.clone(), meta.arn.clone());
                        meta.arn
                    }
                    Err(e) if e.code() == Some("NotFoundException") => {
                        log::warn!("kmsauth: key `{entry}` does not exist; skipped");
                        continue;
                    }
                    Err(e) => return Err(kms_failure(e)),
                },
            };
            if resolved == arn {
                return Ok((Some(entry.clone()), account.cloned()));
            }
        }
        Ok((None, None))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::fake::{keys, service_error, FakeKms, ARN_A, ARN_B};
    use super::super::TokenGenerator;
    use super::*;

    const T0: i64 = 1_796_282_167; // 2026-12-03T07:16:07Z

    struct Rig {
        kms: Arc<FakeKms>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                kms: Arc::new(FakeKms::at(T0)),
            }
        }

        fn validator(
            &self,
            f: impl FnOnce(TokenValidatorBuilder) -> TokenValidatorBuilder,
        ) -> TokenValidator {
            f(TokenValidator::builder("svc-b")
                .kms(self.kms.clone())
                .access_key(keys()))
            .build()
            .unwrap()
        }

        fn generate(
            &self,
            f: impl FnOnce(super::super::TokenGeneratorBuilder) -> super::super::TokenGeneratorBuilder,
        ) -> (String, String) {
            let g = f(TokenGenerator::builder("alias/a", "svc-a", "svc-b")
                .kms(self.kms.clone())
                .access_key(keys()))
            .build()
            .unwrap();
            let t = g.token().unwrap();
            (t.username, t.token.expose().to_owned())
        }

        fn plaintext_token(&self, username: &str, plaintext: &str) -> String {
            let name = token::parse_username(username).unwrap();
            let ctx = token::context(
                &Default::default(),
                name.version,
                "svc-b",
                &name.from,
                &name.user_type,
            );
            token::encode_token(
                format!(
                    "{ARN_A}|{}|{plaintext}",
                    ctx.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&")
                )
                .as_bytes(),
            )
        }
    }

    fn reason(r: Result<ValidatedToken>) -> TokenRejection {
        match r {
            Err(Error::InvalidToken { reason, .. }) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_v1_and_v2_with_alias_reported() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a"));
        let (user, tok) = rig.generate(|g| g);
        assert_eq!(user, "2/service/svc-a");
        let ok = v.validate(&user, &tok).unwrap();
        assert_eq!(
            (ok.version, ok.from.as_str(), ok.user_type),
            (2, "svc-a", UserType::Service)
        );
        assert_eq!(ok.key_alias, "alias/a");
        assert_eq!(ok.not_after - ok.not_before, time::Duration::minutes(10));
        let (user, tok) = rig.generate(|g| g.token_version(1));
        assert_eq!(user, "svc-a");
        assert_eq!(v.validate(&user, &tok).unwrap().version, 1);
    }

    #[test]
    fn messages_are_pythons() {
        let m = |r: TokenRejection| r.to_string();
        assert_eq!(
            m(TokenRejection::GeneralError),
            "Authentication error. General error."
        );
        assert_eq!(
            m(TokenRejection::WrongKey),
            "Authentication error (wrong KMS key)."
        );
        let e = reject(TokenRejection::InvalidTimeValidity);
        assert_eq!(
            e.to_string(),
            "Authentication error. Invalid time validity for token."
        );
    }

    #[test]
    fn username_and_version_checks_come_first() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a").min_token_version(2));
        assert_eq!(
            reason(v.validate("a/b", "x")),
            TokenRejection::UnsupportedUsernameFormat
        );
        assert_eq!(
            reason(v.validate("x/service/a", "x")),
            TokenRejection::UnsupportedUsernameFormat
        );
        assert_eq!(
            reason(v.validate("svc-a", "x")),
            TokenRejection::UnacceptableTokenVersion
        );
        assert_eq!(
            reason(v.validate("3/service/a", "x")),
            TokenRejection::UnacceptableTokenVersion
        );
        assert_eq!(
            reason(v.validate("2/service/a", "%%%")),
            TokenRejection::GeneralError
        );
        assert!(
            rig.kms.calls.lock().unwrap().is_empty(),
            "no KMS call for these"
        );
    }

    #[test]
    fn keys_by_user_type_and_scoped_accounts() {
        let rig = Rig::new();
        let v = rig.validator(|b| {
            b.service_key("alias/gone")
                .service_key("bbbbbbbb-0000")
                .user_key("alias/a")
                .scoped_key(ARN_A, "sandbox")
        });
        let (user, tok) = rig.generate(|g| g);
        let ok = v.validate(&user, &tok).unwrap();
        assert_eq!(
            (ok.key_alias.as_str(), ok.account.as_deref()),
            (ARN_A, Some("sandbox"))
        );
        // A stale alias is skipped, not fatal; key ARNs are never described.
        let calls = rig.kms.calls.lock().unwrap().clone();
        assert!(
            calls.contains(&"DescribeKey alias/gone".to_owned()),
            "{calls:?}"
        );
        assert!(!calls
            .iter()
            .any(|c| c.contains(ARN_A) && c.starts_with("DescribeKey")));

        let (user, tok) = rig.generate(|g| g.user_type(UserType::User));
        let ok = v.validate(&user, &tok).unwrap();
        assert_eq!(
            (ok.user_type, ok.key_alias.as_str()),
            (UserType::User, "alias/a")
        );

        let only_b = rig.validator(|b| b.service_key("alias/b").user_key("alias/a"));
        let (user, tok) = rig.generate(|g| g);
        assert_eq!(
            reason(only_b.validate(&user, &tok)),
            TokenRejection::WrongKey
        );
        let (user, tok) = rig.generate(|g| g.key("alias/b").user_type(UserType::User));
        assert_eq!(
            reason(only_b.validate(&user, &tok)),
            TokenRejection::WrongKey
        );
        let _ = ARN_B;
    }

    #[test]
    fn an_alias_arn_entry_never_matches_and_is_not_described() {
        // SPEC §1.5 step 5 and python-kmsauth: ARNs are compared verbatim
        // with the key ARN Decrypt reports, so an alias ARN is wrong key.
        let rig = Rig::new();
        let alias_arn = ARN_A
            .replace(":key/", ":alias/")
            .replace(ARN_A.rsplit('/').next().unwrap(), "a");
        assert!(alias_arn.contains(":alias/a"), "{alias_arn}");
        let v = rig.validator(|b| b.service_key(alias_arn.clone()));
        let (user, tok) = rig.generate(|g| g);
        assert_eq!(reason(v.validate(&user, &tok)), TokenRejection::WrongKey);
        let calls = rig.kms.calls.lock().unwrap().clone();
        assert!(
            !calls.iter().any(|c| c.starts_with("DescribeKey")),
            "{calls:?}"
        );
    }

    #[test]
    fn an_oversized_token_is_refused_without_a_kms_call() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a"));
        let huge = "A".repeat(1 << 20); // valid base64, 768 KiB decoded
        assert_eq!(
            reason(v.validate("2/service/svc-a", &huge)),
            TokenRejection::GeneralError
        );
        assert!(rig.kms.calls.lock().unwrap().is_empty(), "no KMS call");
        // KMS's largest ciphertext, with MIME line breaks, still reaches KMS.
        let largest = token::encode_token(&[7u8; 6144]);
        let wrapped: Vec<&str> = largest
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let _ = v.validate("2/service/svc-a", &wrapped.join("\r\n"));
        assert_eq!(*rig.kms.calls.lock().unwrap(), ["Decrypt"]);
    }

    #[test]
    fn unsupported_user_type_only_after_decrypt() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a"));
        let tok = rig.plaintext_token(
            "2/robot/svc-a",
            &token::format_plaintext("20261203T071309Z", "20261203T072309Z"),
        );
        assert_eq!(
            reason(v.validate("2/robot/svc-a", &tok)),
            TokenRejection::UnsupportedUserType
        );
        assert_eq!(rig.kms.decrypts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn context_is_bound() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a").context("env", "prod"));
        let (user, tok) = rig.generate(|g| g.context("env", "prod"));
        assert!(v.validate(&user, &tok).is_ok());
        let (user, tok) = rig.generate(|g| g.context("env", "dev"));
        assert_eq!(
            reason(v.validate(&user, &tok)),
            TokenRejection::GeneralError
        );
        let (user, tok) = rig.generate(|g| g);
        assert_eq!(
            reason(v.validate(&user, &tok)),
            TokenRejection::GeneralError
        );
        // Presenting it under another `from`, or v2 as v1.
        let (_, tok) = rig.generate(|g| g.context("env", "prod"));
        assert_eq!(
            reason(v.validate("2/service/svc-x", &tok)),
            TokenRejection::GeneralError
        );
        assert_eq!(
            reason(v.validate("svc-a", &tok)),
            TokenRejection::GeneralError
        );
        // `from` in the extra context is overridden.
        let v = rig.validator(|b| b.service_key("alias/a").context("from", "svc-x"));
        let (user, tok) = rig.generate(|g| g);
        assert!(v.validate(&user, &tok).is_ok());
    }

    #[test]
    fn plaintext_failures() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a"));
        let cases = [
            ("{", TokenRejection::GeneralError),
            ("[1]", TokenRejection::MissingValidity),
            (
                r#"{"not_before": "2026-12-03T07:13:09Z", "not_after": "20261203T072309Z"}"#,
                TokenRejection::MissingValidity,
            ),
        ];
        for (plain, want) in cases {
            let tok = rig.plaintext_token("svc-a", plain);
            assert_eq!(reason(v.validate("svc-a", &tok)), want, "{plain}");
        }
    }

    #[test]
    fn lifetimes_whole_duration_inclusive() {
        let rig = Rig::new();
        let mk = |minutes: i64| {
            let nb = OffsetDateTime::from_unix_timestamp(T0 - 60).unwrap();
            rig.plaintext_token(
                "svc-a",
                &token::format_plaintext(
                    &token::format_time(nb),
                    &token::format_time(nb + time::Duration::minutes(minutes)),
                ),
            )
        };
        let v60 = rig.validator(|b| b.service_key("alias/a"));
        assert!(v60.validate("svc-a", &mk(60)).is_ok());
        assert_eq!(
            reason(v60.validate("svc-a", &mk(61))),
            TokenRejection::LifetimeExceeded
        );
        // Python's timedelta.seconds would count 24 h 5 min as 5 min.
        assert_eq!(
            reason(v60.validate("svc-a", &mk(24 * 60 + 5))),
            TokenRejection::LifetimeExceeded
        );
        let v61 = rig.validator(|b| {
            b.service_key("alias/a")
                .max_lifetime(Duration::from_secs(61 * 60))
        });
        assert!(v61.validate("svc-a", &mk(61)).is_ok());
    }

    #[test]
    fn validity_window_inclusive_and_checked_on_cache_hits() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a"));
        let (user, tok) = rig.generate(|g| g);
        let ok = v.validate(&user, &tok).unwrap();
        assert_eq!(rig.kms.decrypts.load(Ordering::SeqCst), 1);
        rig.kms
            .now
            .store(ok.not_after.unix_timestamp(), Ordering::SeqCst);
        assert!(v.validate(&user, &tok).is_ok(), "not_after is inclusive");
        assert_eq!(
            rig.kms.decrypts.load(Ordering::SeqCst),
            1,
            "served from the cache"
        );
        rig.kms
            .now
            .store(ok.not_after.unix_timestamp() + 1, Ordering::SeqCst);
        assert_eq!(
            reason(v.validate(&user, &tok)),
            TokenRejection::InvalidTimeValidity
        );
        rig.kms
            .now
            .store(ok.not_before.unix_timestamp() - 1, Ordering::SeqCst);
        assert_eq!(
            reason(v.validate(&user, &tok)),
            TokenRejection::InvalidTimeValidity
        );
        rig.kms
            .now
            .store(ok.not_before.unix_timestamp(), Ordering::SeqCst);
        assert!(v.validate(&user, &tok).is_ok(), "not_before is inclusive");
        assert_eq!(rig.kms.decrypts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cache_key_includes_version_and_user_type() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a").user_key("alias/a"));
        let (user, tok) = rig.generate(|g| g);
        assert!(v.validate(&user, &tok).is_ok());
        // The same token under another version or type is a miss: KMS decides.
        assert_eq!(
            reason(v.validate("1/service/svc-a", &tok)),
            TokenRejection::GeneralError
        );
        assert_eq!(
            reason(v.validate("2/user/svc-a", &tok)),
            TokenRejection::GeneralError
        );
        assert_eq!(rig.kms.decrypts.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn kms_errors_split_connection_from_general() {
        let rig = Rig::new();
        let v = rig.validator(|b| b.service_key("alias/a"));
        let (user, tok) = rig.generate(|g| g);
        rig.kms.fail_next.lock().unwrap().push(Error::Transport {
            action: "Decrypt",
            message: "connection refused".into(),
            source: None,
        });
        assert_eq!(
            reason(v.validate(&user, &tok)),
            TokenRejection::ConnectionFailure
        );
        rig.kms
            .fail_next
            .lock()
            .unwrap()
            .push(service_error("Decrypt", "AccessDeniedException"));
        let e = v.validate(&user, &tok).unwrap_err();
        assert_eq!(e.to_string(), "Authentication error. General error.");
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert!(cause.contains("AccessDeniedException"), "{cause}");
        assert!(v.validate(&user, &tok).is_ok());
    }

    #[test]
    fn configuration_errors() {
        let rig = Rig::new();
        let b = || {
            TokenValidator::builder("svc-b")
                .kms(rig.kms.clone())
                .access_key(keys())
        };
        let field = |r: Result<TokenValidator>| match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(b().build()), "keys");
        assert_eq!(
            field(b().service_key("a").min_token_version(0).build()),
            "min_token_version"
        );
        assert_eq!(
            field(b().service_key("a").max_token_version(3).build()),
            "max_token_version"
        );
        assert_eq!(
            field(
                b().service_key("a")
                    .min_token_version(2)
                    .max_token_version(1)
                    .build()
            ),
            "min_token_version"
        );
        assert_eq!(field(b().service_key(" ").build()), "keys");
        assert_eq!(
            field(
                TokenValidator::builder("")
                    .kms(rig.kms.clone())
                    .access_key(keys())
                    .service_key("a")
                    .build()
            ),
            "to"
        );
        assert_eq!(
            field(
                TokenValidator::builder("b")
                    .kms(rig.kms.clone())
                    .service_key("a")
                    .build()
            ),
            "credentials"
        );
    }

    #[test]
    fn is_thread_safe() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TokenValidator>();
    }
}
