//! `stslib kmsauth generate|validate`: python-kmsauth tokens from the
//! command line.
//!
//! Credentials for the KMS calls: `--profile` when given; else the
//! environment's keys (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) when set; else the profile `AWS_PROFILE` (or
//! `default`). A role profile is assumed through the cached session, as
//! `credential-process` does; a user profile signs with its own keys.

use std::io::{Read, Write};
use std::time::Duration;

use stslib::kms::KmsClient;
use stslib::kmsauth::{TokenGenerator, TokenValidator, UserType, ValidatedToken};
use stslib::{AccessKey, Secret};
use time::format_description::well_known::Rfc3339;

use crate::args::{parse_duration, CommandLine, Opts, Usage};
use crate::output::json_str;
use crate::{common_source, default_profile, io_error, role_region, session_for, CmdError};

pub(crate) fn cmd_kmsauth(
    cl: &CommandLine,
    env: &stslib::Env,
    out: &mut dyn Write,
) -> Result<(), CmdError> {
    match cl.args.first().map(String::as_str) {
        Some("generate") => generate(cl, env, out),
        Some("validate") => validate(cl, env, out),
        Some(other) => Err(Usage(format!(
            "unknown kmsauth command `{other}` (generate or validate)"
        ))
        .into()),
        None => Err(Usage("kmsauth needs a command: generate or validate".into()).into()),
    }
}

const COMMON: [&str; 3] = ["--profile", "--mfa-code", "--context"];

fn generate(cl: &CommandLine, env: &stslib::Env, out: &mut dyn Write) -> Result<(), CmdError> {
    let mut valued = COMMON.to_vec();
    valued.extend([
        "--key",
        "--from",
        "--to",
        "--user-type",
        "--token-version",
        "--lifetime",
        "--format",
    ]);
    let opts = Opts::parse(&cl.args[1..], &valued, &[])?;
    let need = |name: &str| {
        opts.value(name)
            .ok_or_else(|| CmdError::Usage(Usage(format!("kmsauth generate needs {name}"))))
    };
    let (key, from, to) = (need("--key")?, need("--from")?, need("--to")?);
    let user_type = match opts.value("--user-type").unwrap_or("service") {
        "service" => UserType::Service,
        "user" => UserType::User,
        other => {
            return Err(Usage(format!("unknown --user-type `{other}` (service or user)")).into())
        }
    };
    let version = match opts.value("--token-version").unwrap_or("2") {
        "1" => 1,
        "2" => 2,
        other => return Err(Usage(format!("unknown --token-version `{other}` (1 or 2)")).into()),
    };
    let lifetime = match opts.value("--lifetime") {
        Some(t) => parse_duration(t).map_err(Usage)?,
        None => Duration::from_secs(600),
    };
    let json = match opts.value("--format").unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => return Err(Usage(format!("unknown --format `{other}` (text or json)")).into()),
    };
    let (client, keys) = kms_for(cl, env, &opts)?;
    let mut b = TokenGenerator::builder(key, from, to)
        .user_type(user_type)
        .token_version(version)
        .lifetime(lifetime)
        .cache(false)
        .client(client)
        .access_key(keys);
    for (k, v) in context(&opts)? {
        b = b.context(k, v);
    }
    let t = b.build()?.token()?;
    let text = if json {
        format!(
            "{{\"username\": {}, \"token\": {}, \"not_before\": {}, \"not_after\": {}}}\n",
            json_str(&t.username),
            json_str(t.token.expose()),
            json_str(&t.not_before.format(&Rfc3339).unwrap_or_default()),
            json_str(&t.not_after.format(&Rfc3339).unwrap_or_default()),
        )
    } else {
        format!("{}\n", t.token.expose())
    };
    out.write_all(text.as_bytes()).map_err(io_error)
}

fn validate(cl: &CommandLine, env: &stslib::Env, out: &mut dyn Write) -> Result<(), CmdError> {
    let mut valued = COMMON.to_vec();
    valued.extend([
        "--key",
        "--user-key",
        "--scoped-key",
        "--to",
        "--username",
        "--token",
        "--min-token-version",
        "--max-token-version",
        "--max-lifetime",
    ]);
    let opts = Opts::parse(&cl.args[1..], &valued, &[])?;
    let need = |name: &str| {
        opts.value(name)
            .ok_or_else(|| CmdError::Usage(Usage(format!("kmsauth validate needs {name}"))))
    };
    let (to, username) = (need("--to")?, need("--username")?);
    let token = match need("--token")? {
        "-" => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                CmdError::Failed(stslib::Error::Io {
                    path: "<stdin>".into(),
                    source: e,
                })
            })?;
            Secret::new(s.trim())
        }
        t => Secret::new(t),
    };
    let version = |name: &str, default: u32| match opts.value(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| CmdError::Usage(Usage(format!("{name} must be 1 or 2, not `{v}`")))),
    };
    let (min, max) = (
        version("--min-token-version", 1)?,
        version("--max-token-version", 2)?,
    );
    let max_lifetime = match opts.value("--max-lifetime") {
        Some(t) => parse_duration(t).map_err(Usage)?,
        None => Duration::from_secs(3600),
    };
    let (client, keys) = kms_for(cl, env, &opts)?;
    let mut b = TokenValidator::builder(to)
        .min_token_version(min)
        .max_token_version(max)
        .max_lifetime(max_lifetime)
        .cache_size(0)
        .client(client)
        .access_key(keys);
    for k in opts.values("--key") {
        b = b.service_key(k);
    }
    for k in opts.values("--user-key") {
        b = b.user_key(k);
    }
    for s in opts.values("--scoped-key") {
        let (k, account) = s
            .rsplit_once('=')
            .filter(|(k, a)| !k.is_empty() && !a.is_empty())
            .ok_or_else(|| Usage(format!("--scoped-key `{s}` is not KEY=ACCOUNT")))?;
        b = b.scoped_key(k, account);
    }
    for (k, v) in context(&opts)? {
        b = b.context(k, v);
    }
    let validator = b.build()?;
    match validator.validate(username, token.expose()) {
        Ok(ok) => out
            .write_all(validated_json(username, &ok).as_bytes())
            .map_err(io_error),
        Err(e @ stslib::Error::InvalidToken { .. }) => {
            // One line: python-kmsauth's message, then what caused it.
            match std::error::Error::source(&e) {
                Some(cause) => eprintln!("stslib: invalid token: {e} ({cause})"),
                None => eprintln!("stslib: invalid token: {e}"),
            }
            Err(CmdError::Reported)
        }
        Err(e) => Err(e.into()),
    }
}

fn validated_json(username: &str, ok: &ValidatedToken) -> String {
    let alias = json_str(&ok.key_alias);
    format!(
        "{{\"username\": {}, \"version\": {}, \"from\": {}, \"user_type\": {}, \"payload\": {}, \"key_alias\": {alias}}}\n",
        json_str(username),
        ok.version,
        json_str(&ok.from),
        json_str(ok.user_type.as_str()),
        // A JSON object the validator parsed (KMS's plaintext, verbatim).
        ok.payload.trim(),
    )
}

/// `--context K=V` pairs.
fn context(opts: &Opts) -> Result<Vec<(&str, &str)>, CmdError> {
    opts.values("--context")
        .into_iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| CmdError::Usage(Usage(format!("--context `{p}` is not K=V"))))
        })
        .collect()
}

/// The KMS client and the keys to sign with (see the module docs).
fn kms_for(
    cl: &CommandLine,
    env: &stslib::Env,
    opts: &Opts,
) -> Result<(KmsClient, AccessKey), CmdError> {
    let mut client = KmsClient::builder().env(env.clone());
    let from_env = match (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) if opts.value("--profile").is_none() && !id.is_empty() => {
            Some(AccessKey {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: env
                    .get("AWS_SESSION_TOKEN")
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
            })
        }
        _ => None,
    };
    let keys = match from_env {
        Some(k) => {
            if let Some(r) = &cl.global.region {
                client = client.region(r);
            }
            k
        }
        None => {
            let profile = opts
                .value("--profile")
                .map(str::to_owned)
                .unwrap_or_else(|| default_profile(env));
            let files = stslib::profile::ProfileFiles::load(env)?;
            let chain = files.chain(&profile)?;
            if let Some(r) = role_region(cl, &files, &profile) {
                client = client.region(r);
            }
            if let Some(url) = files.profile(&profile)?.get("endpoint_url") {
                client = client.profile_endpoint_url(url);
            }
            if chain.roles.is_empty() {
                chain.source.keys.clone()
            } else {
                let user = common_source(&files, &[&profile])?;
                let session = session_for(
                    cl,
                    env,
                    files,
                    &user,
                    stslib::DEFAULT_TOKEN_LIFETIME,
                    opts.value("--mfa-code"),
                )?;
                let mut outcomes = session.generate_credentials(&[&profile])?;
                let c = outcomes
                    .remove(&profile)
                    .unwrap_or_else(|| {
                        Err(stslib::Error::NoCredentials {
                            profile: profile.clone(),
                            message: "no outcome".into(),
                        })
                    })
                    .map_err(CmdError::Failed)?;
                c.access_key()
            }
        }
    };
    Ok((client.build()?, keys))
}
