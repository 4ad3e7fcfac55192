//! JSON for the AWS JSON 1.1 protocol, on `aws-smithy-json` (the AWS SDKs'
//! own token-streaming codec; no serde).
//!
//! Writing uses its object writer. Reading turns one top-level JSON object
//! into [`Fields`]: string values and nested objects kept (two levels deep,
//! enough for `KeyMetadata` and `EncryptionContext`), anything else noted by
//! kind and skipped iteratively, so a hostile body cannot recurse the stack.
//! A later duplicate key replaces an earlier one, as Python's `json.loads`
//! does.

use std::collections::BTreeMap;

use aws_smithy_json::deserialize::{json_token_iter, Token};
use aws_smithy_json::serialize::JsonObjectWriter;

/// How deep nested objects are kept; deeper values are skipped.
const KEEP_DEPTH: usize = 2;

/// A value of a [`Fields`] object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A string, unescaped.
    Str(String),
    /// An object, when within [`KEEP_DEPTH`].
    Obj(Fields),
    /// A number, kept as written.
    Num(String),
    /// `true`, `false`, `null`, an array, or an object nested too deep.
    Other,
}

/// The members of one JSON object, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Fields(pub(crate) BTreeMap<String, Value>);

impl Fields {
    /// The string value of `key`, if it is a string.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The object value of `key`, if it is an object.
    pub(crate) fn obj(&self, key: &str) -> Option<&Fields> {
        match self.0.get(key) {
            Some(Value::Obj(o)) => Some(o),
            _ => None,
        }
    }

    /// The number value of `key` as written, if it is a number.
    #[cfg(test)]
    pub(crate) fn num(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Value::Num(n)) => Some(n),
            _ => None,
        }
    }

    /// The object as a string map, when every member is a string.
    #[cfg(any(test, feature = "emulator"))]
    pub(crate) fn string_map(&self) -> Option<BTreeMap<String, String>> {
        self.0
            .iter()
            .map(|(k, v)| match v {
                Value::Str(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Why a body is not one JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not well-formed JSON (the codec's message).
    Syntax(String),
    /// Well-formed, but the top-level value is not an object.
    NotAnObject,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Syntax(m) => write!(f, "not valid JSON: {m}"),
            JsonError::NotAnObject => f.write_str("not a JSON object"),
        }
    }
}

/// Parses `body` as exactly one JSON object (surrounding whitespace allowed).
pub(crate) fn parse_object(body: &[u8]) -> Result<Fields, JsonError> {
    let syntax =
        |e: aws_smithy_json::deserialize::error::DeserializeError| JsonError::Syntax(e.to_string());
    let mut tokens = json_token_iter(body);
    // Stack of objects being filled, each with the key its parent awaits.
    let mut stack: Vec<(Fields, Option<String>)> = Vec::new();
    let mut pending_key: Option<String> = None;
    let mut root: Option<Fields> = None;
    let mut first = true;
    loop {
        let Some(token) = tokens.next() else {
            break;
        };
        let token = token.map_err(syntax)?;
        if first {
            first = false;
            if !matches!(token, Token::StartObject { .. }) {
                // Well-formed check of the rest, so syntax errors win.
                skip_rest(&token, &mut tokens).map_err(syntax)?;
                if tokens.next().is_some() {
                    return Err(JsonError::Syntax("trailing data".into()));
                }
                return Err(JsonError::NotAnObject);
            }
            stack.push((Fields::default(), None));
            continue;
        }
        if root.is_some() {
            return Err(JsonError::Syntax("trailing data after the object".into()));
        }
        let value = match token {
            Token::ObjectKey { key, .. } => {
                let key = key
                    .to_unescaped()
                    .map_err(|e| JsonError::Syntax(e.to_string()))?;
                pending_key = Some(key.into_owned());
                continue;
            }
            Token::StartObject { .. } => {
                if stack.len() >= KEEP_DEPTH {
                    skip_to_end(&mut tokens).map_err(syntax)?;
                    Value::Other
                } else {
                    stack.push((Fields::default(), pending_key.take()));
                    continue;
                }
            }
            Token::EndObject { .. } => {
                let Some((fields, key)) = stack.pop() else {
                    return Err(JsonError::Syntax("unbalanced object".into()));
                };
                if stack.is_empty() {
                    root = Some(fields);
                    continue;
                }
                pending_key = key;
                Value::Obj(fields)
            }
            Token::StartArray { .. } => {
                skip_to_end(&mut tokens).map_err(syntax)?;
                Value::Other
            }
            Token::ValueString { value, .. } => Value::Str(
                value
                    .to_unescaped()
                    .map_err(|e| JsonError::Syntax(e.to_string()))?
                    .into_owned(),
            ),
            Token::ValueNumber { value, .. } => Value::Num(number_text(value)),
            Token::ValueBool { .. } | Token::ValueNull { .. } => Value::Other,
            Token::EndArray { .. } => return Err(JsonError::Syntax("unbalanced array".into())),
        };
        let (Some(key), Some((fields, _))) = (pending_key.take(), stack.last_mut()) else {
            return Err(JsonError::Syntax("value without a key".into()));
        };
        fields.0.insert(key, value);
    }
    root.ok_or_else(|| JsonError::Syntax("unexpected end of input".into()))
}

fn number_text(n: aws_smithy_types::Number) -> String {
    match n {
        aws_smithy_types::Number::PosInt(v) => v.to_string(),
        aws_smithy_types::Number::NegInt(v) => v.to_string(),
        aws_smithy_types::Number::Float(v) => v.to_string(),
    }
}

type Tokens<'a> = aws_smithy_json::deserialize::JsonTokenIterator<'a>;
type DeError = aws_smithy_json::deserialize::error::DeserializeError;

/// After a start token has been read, skips to its matching end (iterative).
fn skip_to_end(tokens: &mut Tokens<'_>) -> Result<(), DeError> {
    let mut depth = 1usize;
    while depth > 0 {
        match tokens.next().transpose()? {
            Some(Token::StartObject { .. } | Token::StartArray { .. }) => depth += 1,
            Some(Token::EndObject { .. } | Token::EndArray { .. }) => depth -= 1,
            Some(_) => {}
            None => return Err(DeError::custom("unexpected end of input")),
        }
    }
    Ok(())
}

/// Skips the rest of a top-level value whose first token was `first`.
fn skip_rest(first: &Token<'_>, tokens: &mut Tokens<'_>) -> Result<(), DeError> {
    match first {
        Token::StartObject { .. } | Token::StartArray { .. } => skip_to_end(tokens),
        _ => Ok(()),
    }
}

/// Writes a JSON object with `write` filling it; returns the text.
pub(crate) fn object(write: impl FnOnce(&mut JsonObjectWriter<'_>)) -> String {
    let mut out = String::new();
    let mut obj = JsonObjectWriter::new(&mut out);
    write(&mut obj);
    obj.finish();
    out
}

/// Writes `map` as a nested object member `key`.
pub(crate) fn write_map(obj: &mut JsonObjectWriter<'_>, key: &str, map: &BTreeMap<String, String>) {
    let mut inner = obj.key(key).start_object();
    for (k, v) in map {
        inner.key(k).string(v);
    }
    inner.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_nested_objects_and_skips_the_rest() {
        let f = parse_object(
            br#" {"KeyMetadata": {"Arn": "arn:x", "CreationDate": 1.5, "Tags": [1, [2], {"a": {}}],
                "Deep": {"x": {"y": 1}}}, "s": "a\"b\u00e9", "n": null, "b": true, "i": -3} "#,
        )
        .unwrap();
        let km = f.obj("KeyMetadata").unwrap();
        assert_eq!(km.str("Arn"), Some("arn:x"));
        assert_eq!(km.num("CreationDate"), Some("1.5"));
        assert_eq!(km.0.get("Tags"), Some(&Value::Other));
        assert_eq!(km.0.get("Deep"), Some(&Value::Other));
        assert_eq!(f.str("s"), Some("a\"b\u{e9}"));
        assert_eq!(f.0.get("n"), Some(&Value::Other));
        assert_eq!(f.num("i"), Some("-3"));
    }

    #[test]
    fn later_duplicate_wins() {
        let f = parse_object(br#"{"a": "1", "a": "2"}"#).unwrap();
        assert_eq!(f.str("a"), Some("2"));
    }

    #[test]
    fn refuses_non_objects_and_bad_syntax() {
        for body in [&b"[]"[..], b"\"x\"", b"3", b"null"] {
            assert_eq!(parse_object(body), Err(JsonError::NotAnObject), "{body:?}");
        }
        for body in [
            &b""[..],
            b"{",
            b"{\"a\"}",
            b"{\"a\": }",
            b"{}{}",
            b"{} x",
            b"{\"a\": [}",
            b"{'a': 1}",
            b"\xff",
        ] {
            assert!(
                matches!(parse_object(body), Err(JsonError::Syntax(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut body = String::from("{\"a\": ");
        body.push_str(&"[".repeat(100_000));
        body.push_str(&"]".repeat(100_000));
        body.push('}');
        let f = parse_object(body.as_bytes()).unwrap();
        assert_eq!(f.0.get("a"), Some(&Value::Other));
    }

    #[test]
    fn writes_escaped_objects() {
        let mut ctx = BTreeMap::new();
        ctx.insert("to".to_owned(), "b\"\n".to_owned());
        let text = object(|o| {
            o.key("KeyId").string("alias/x");
            write_map(o, "EncryptionContext", &ctx);
        });
        assert_eq!(
            text,
            r#"{"KeyId":"alias/x","EncryptionContext":{"to":"b\"\n"}}"#
        );
        let back = parse_object(text.as_bytes()).unwrap();
        assert_eq!(
            back.obj("EncryptionContext").unwrap().string_map(),
            Some(ctx)
        );
    }
}
