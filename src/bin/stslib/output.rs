//! What the commands print: JSON (written by hand; no serde in the
//! binary), the typed "vault" text, redaction of secrets.

/// JSON string literal for `s`.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value printed for a property: secrets are always redacted.
pub(crate) fn shown_value(p: &stslib::profile::Property) -> &str {
    if p.is_secret() {
        crate::words::REDACTED
    } else {
        p.value()
    }
}

/// A sub-property's value as printed: redacted when the property holds a
/// secret anywhere (an indented `aws_session_token = ...` line makes a
/// sub-property of the line above it).
fn shown_sub_value<'a>(p: &stslib::profile::Property, value: &'a str) -> &'a str {
    if p.is_secret() {
        crate::words::REDACTED
    } else {
        value
    }
}

/// `{"profiles": {...}, "sso_sessions": {...}}`, the conformance suite's shape.
pub(crate) fn profiles_json(files: &stslib::profile::ProfileFiles) -> String {
    fn section<'a>(
        out: &mut String,
        names: impl Iterator<Item = &'a str>,
        get: impl Fn(&str) -> Option<&'a stslib::profile::Profile>,
    ) {
        out.push('{');
        for (i, name) in names.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_str(name));
            out.push_str(":{");
            if let Some(profile) = get(name) {
                for (j, p) in profile.properties().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_str(p.key()));
                    out.push(':');
                    match p.sub_properties() {
                        Some(subs) => {
                            out.push('{');
                            for (k, (sk, sv)) in subs.iter().enumerate() {
                                if k > 0 {
                                    out.push(',');
                                }
                                out.push_str(&json_str(sk));
                                out.push(':');
                                out.push_str(&json_str(shown_sub_value(p, sv)));
                            }
                            out.push('}');
                        }
                        None => out.push_str(&json_str(shown_value(p))),
                    }
                }
            }
            out.push('}');
        }
        out.push('}');
    }
    let mut out = String::from("{\"profiles\":");
    section(&mut out, files.profile_names(), |n| files.profile(n).ok());
    out.push_str(",\"sso_sessions\":");
    section(&mut out, files.sso_sessions(), |n| files.sso_session(n));
    out.push_str("}\n");
    out
}

/// One block per profile: its name, then `key = value` lines.
pub(crate) fn profiles_text(files: &stslib::profile::ProfileFiles) -> String {
    let mut out = String::new();
    for name in files.profile_names() {
        out.push_str(&format!("[{name}]\n"));
        if let Ok(profile) = files.profile(name) {
            for p in profile.properties() {
                match p.sub_properties() {
                    Some(subs) => {
                        out.push_str(&format!("{} =\n", p.key()));
                        for (k, v) in subs {
                            out.push_str(&format!("  {k} = {}\n", shown_sub_value(p, v)));
                        }
                    }
                    None => out.push_str(&format!("{} = {}\n", p.key(), shown_value(p))),
                }
            }
        }
        out.push('\n');
    }
    out
}

/// The `--format` of `credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Vault,
    Boto,
    Json,
}

pub(crate) fn secret_text(s: &stslib::Secret, show: bool) -> &str {
    if show {
        s.expose()
    } else {
        crate::words::REDACTED
    }
}

/// The typed ("vault") form: one block per role.
pub(crate) fn vault_text(ok: &[(&str, &stslib::Credentials)], show: bool) -> String {
    let mut out = String::new();
    for (profile, c) in ok {
        out.push_str(&format!(
            "[{profile}]\n\
             access_key_id     = {}\n\
             secret_access_key = {}\n\
             session_token     = {}\n\
             start             = {}\n\
             expiration        = {}\n\
             duration          = {}\n\
             remaining         = {}\n\n",
            c.access_key_id,
            secret_text(&c.secret_access_key, show),
            secret_text(&c.session_token, show),
            c.start_time_iso(),
            c.expiration_iso(),
            crate::words::humanize(c.duration()),
            c.humanized_remaining(),
        ));
    }
    out
}

/// `{"PREFIXprofile": {"AccessKeyId": ..., ...}}`; `with_start` adds the
/// STS map's `StartTime`.
pub(crate) fn fields_json(
    ok: &[(&str, &stslib::Credentials)],
    show: bool,
    prefix: &str,
    with_start: bool,
) -> String {
    let mut out = String::from("{");
    for (i, (profile, c)) in ok.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut fields = vec![
            ("AccessKeyId", c.access_key_id.clone()),
            (
                "SecretAccessKey",
                secret_text(&c.secret_access_key, show).to_owned(),
            ),
            (
                "SessionToken",
                secret_text(&c.session_token, show).to_owned(),
            ),
            ("Expiration", c.expiration_iso()),
        ];
        if with_start {
            fields.push(("StartTime", c.start_time_iso()));
        }
        out.push_str(&json_str(&format!("{prefix}{profile}")));
        out.push_str(":{");
        for (j, (k, v)) in fields.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&json_str(k));
            out.push(':');
            out.push_str(&json_str(v));
        }
        out.push('}');
    }
    out.push_str("}\n");
    out
}

/// The AWS `credential_process` JSON (`Version` 1); it carries the secrets,
/// as the protocol requires.
pub(crate) fn credential_process_json(c: &stslib::Credentials) -> String {
    format!(
        "{{\"Version\":1,\"AccessKeyId\":{},\"SecretAccessKey\":{},\"SessionToken\":{},\"Expiration\":{}}}\n",
        json_str(&c.access_key_id),
        json_str(c.secret_access_key.expose()),
        json_str(c.session_token.expose()),
        json_str(&c.expiration_iso()),
    )
}

/// POSIX shell single-quoting.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The `--format` of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    /// `export NAME='value'` (POSIX shells).
    Sh,
    /// `set -gx NAME 'value'`.
    Fish,
    /// `$Env:NAME = 'value'`.
    PowerShell,
    /// `NAME=value`, a dotenv file (`docker run --env-file`, python-dotenv).
    Dotenv,
}

/// fish single quotes: only `\` and `'` are escaped.
fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// PowerShell single quotes: `'` is doubled.
fn powershell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The credential variables (and the region, when known, as both
/// `AWS_REGION` and `AWS_DEFAULT_REGION`) in `format`.
pub(crate) fn export_lines(
    c: &stslib::Credentials,
    region: Option<&str>,
    format: ExportFormat,
) -> String {
    let expiration = c.expiration_iso();
    let mut vars = vec![
        ("AWS_ACCESS_KEY_ID", c.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.expose()),
        ("AWS_SESSION_TOKEN", c.session_token.expose()),
        ("AWS_CREDENTIAL_EXPIRATION", &expiration),
    ];
    if let Some(r) = region {
        vars.push(("AWS_REGION", r));
        vars.push(("AWS_DEFAULT_REGION", r));
    }
    vars.iter()
        .map(|(k, v)| match format {
            ExportFormat::Sh => format!("export {k}={}\n", shell_quote(v)),
            ExportFormat::Fish => format!("set -gx {k} {};\n", fish_quote(v)),
            ExportFormat::PowerShell => format!("$Env:{k} = {}\n", powershell_quote(v)),
            // Values are key ids, base64 and ISO times: no quoting needed,
            // and docker's --env-file would keep quotes literally.
            ExportFormat::Dotenv => format!("{k}={}\n", v.replace(['\n', '\r'], "")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn fish_and_powershell_quoting() {
        assert_eq!(fish_quote("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(powershell_quote("it's"), "'it''s'");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
