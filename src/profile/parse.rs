//! The parse passes of the profile files (see the parent module's docs):
//! the lexer (AWS line grammar to canonical INI), `rust-ini` (sections and
//! values), the normaliser (AWS naming rules). The public types they
//! produce are in the parent module.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::{FileKind, Origin, Property};
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Pass 1: the lexer.

/// Whitespace as the AWS grammar counts it.
pub(super) const WS: &[char] = &[' ', '\t'];
const COMMENT: &[char] = &['#', ';'];

/// A section or property line seen by the lexer, in document order.
#[derive(Debug)]
enum Record {
    Section {
        line: usize,
    },
    Property {
        line: usize,
        key: String,
        block: bool,
    },
}

#[derive(Debug, Default)]
struct Lexed {
    /// The canonical INI text for rust-ini.
    ini: String,
    /// Source line of each line of `ini` (for rust-ini's own errors).
    source_lines: Vec<usize>,
    records: Vec<Record>,
}

impl Lexed {
    fn emit(&mut self, text: &str, line: usize) {
        self.ini.push_str(text);
        self.ini.push('\n');
        self.source_lines.push(line);
    }
}

/// The AWS line grammar; see the module docs.
fn lex(text: &str, file: &Path) -> Result<Lexed> {
    enum State {
        Start,
        // In a section; `Some(block)` after a property line, `block` true
        // when its value was empty (continuations are sub-properties).
        Section(Option<bool>),
    }
    let err = |line: usize, message: &str| Error::Parse {
        file: file.to_path_buf(),
        line,
        message: message.to_owned(),
    };
    let mut out = Lexed::default();
    let mut state = State::Start;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim_matches(WS).is_empty() || raw.starts_with(COMMENT) {
            continue;
        }
        if raw.starts_with('[') {
            let body = strip_comment(raw, false);
            let Some(name) = body.strip_prefix('[').and_then(|b| b.strip_suffix(']')) else {
                return Err(err(line, "Profile definition must end with ']'"));
            };
            let name = name.trim();
            out.emit(&format!("[{}]", escape(name, &[']'])), line);
            out.records.push(Record::Section { line });
            state = State::Section(None);
        } else if raw.starts_with(WS) {
            let block = match state {
                State::Start => return Err(err(line, "Expected a profile definition")),
                State::Section(None) => {
                    return Err(err(
                        line,
                        "Expected a property definition, found continuation",
                    ))
                }
                State::Section(Some(block)) => block,
            };
            let content = raw.trim_matches(WS);
            if block {
                match strip_comment(content, true).split_once('=') {
                    None => return Err(err(line, "Expected an '=' sign defining a sub-property")),
                    Some((k, _)) if k.trim_matches(WS).is_empty() => {
                        return Err(err(line, "Sub-property did not have a name"))
                    }
                    Some(_) => {}
                }
            }
            out.emit(&format!("\t{}", escape(content, &[])), line);
        } else {
            if let State::Start = state {
                return Err(err(line, "Expected a profile definition"));
            }
            let Some((key, value)) = strip_comment(raw, true).split_once('=') else {
                return Err(err(line, "Expected an '=' sign defining a property"));
            };
            let key = key.trim_matches(WS);
            let value = value.trim_matches(WS);
            if key.is_empty() {
                return Err(err(line, "Property did not have a name"));
            }
            out.emit(
                &format!("{}={}", escape(key, &[':']), escape(value, &[])),
                line,
            );
            let block = value.is_empty();
            out.records.push(Record::Property {
                line,
                key: key.to_owned(),
                block,
            });
            state = State::Section(Some(block));
        }
    }
    Ok(out)
}

/// `line` trimmed, without a trailing `#` or `;` comment. With
/// `needs_space`, a comment character counts only after whitespace.
fn strip_comment(line: &str, needs_space: bool) -> &str {
    let line = line.trim_matches(WS);
    let mut after_space = false;
    for (i, c) in line.char_indices() {
        if COMMENT.contains(&c) && (after_space || !needs_space) {
            return line[..i].trim_matches(WS);
        }
        after_space = c.is_whitespace();
    }
    line
}

/// `text` with `\`, `\r` and `extra` escaped for rust-ini (escapes on).
fn escape(text: &str, extra: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            c if extra.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Pass 2: rust-ini, paired with the lexer's records.

/// A section as written, with its properties in order.
#[derive(Debug)]
struct RawSection {
    header: String,
    line: usize,
    properties: Vec<(String, String, usize)>,
}

fn parse_raw(text: &str, file: &Path) -> Result<Vec<RawSection>> {
    let lexed = lex(text, file)?;
    let opt = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: true,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    let parsed = ini::Ini::load_from_str_opt(&lexed.ini, opt).map_err(|e| Error::Parse {
        file: file.to_path_buf(),
        line: lexed
            .source_lines
            .get(e.line.saturating_sub(1))
            .or(lexed.source_lines.last())
            .copied()
            .unwrap_or(1),
        message: e.msg.into_owned(),
    })?;

    let out_of_step = |line: usize| Error::Parse {
        file: file.to_path_buf(),
        line,
        message: "line not understood (unsupported characters in a name?)".to_owned(),
    };
    let mut records = lexed.records.into_iter();
    let mut sections = Vec::new();
    for (header, props) in parsed.iter() {
        let Some(header) = header else {
            // The general section: always present, empty, because the
            // lexer rejects properties before the first section.
            if let Some((_, _)) = props.iter().next() {
                return Err(out_of_step(1));
            }
            continue;
        };
        let line = match records.next() {
            Some(Record::Section { line }) => line,
            Some(Record::Property { line, .. }) => return Err(out_of_step(line)),
            None => return Err(out_of_step(1)),
        };
        let mut section = RawSection {
            header: header.to_owned(),
            line,
            properties: Vec::new(),
        };
        for (key, value) in props.iter() {
            let (line, lexed_key, block) = match records.next() {
                Some(Record::Property { line, key, block }) => (line, key, block),
                Some(Record::Section { line }) => return Err(out_of_step(line)),
                None => return Err(out_of_step(line)),
            };
            if lexed_key.trim() != key {
                return Err(out_of_step(line));
            }
            let value = if block && !value.is_empty() {
                format!("\n{value}")
            } else {
                value.to_owned()
            };
            section.properties.push((lexed_key, value, line));
        }
        sections.push(section);
    }
    if let Some(Record::Section { line } | Record::Property { line, .. }) = records.next() {
        return Err(out_of_step(line));
    }
    Ok(sections)
}

// ---------------------------------------------------------------------------
// Pass 3: the normaliser.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SectionKind {
    Profile,
    SsoSession,
    /// `[services NAME]`: per-service settings that profiles name.
    Services,
}

/// A valid section of one file, ready to merge.
#[derive(Debug)]
pub(super) struct Section {
    pub(super) kind: SectionKind,
    pub(super) name: String,
    pub(super) properties: Vec<Property>,
}

/// What a header names: `Some((kind, name, prefixed))` or `None` to ignore
/// it.
fn classify(header: &str, kind: FileKind) -> Option<(SectionKind, &str, bool)> {
    let header = header.trim_matches(WS);
    let (prefix, name) = match header.split_once(WS) {
        Some((p, n)) => (Some(p), n.trim_matches(WS)),
        None => (None, header),
    };
    if !is_identifier(name) {
        return None;
    }
    match (kind, prefix) {
        (FileKind::Config, Some("profile")) => Some((SectionKind::Profile, name, true)),
        (FileKind::Config, Some("sso-session")) => Some((SectionKind::SsoSession, name, true)),
        (FileKind::Config, Some("services")) => Some((SectionKind::Services, name, true)),
        (FileKind::Config, None) if name == "default" => Some((SectionKind::Profile, name, false)),
        (FileKind::Credentials, None) => Some((SectionKind::Profile, name, false)),
        _ => None,
    }
}

/// AWS identifiers: `[A-Za-z0-9_\-/.%@:+]+`.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c))
}

pub(super) fn parse_file(text: &str, file: &Arc<Path>, kind: FileKind) -> Result<Vec<Section>> {
    let raw = parse_raw(text, file)?;
    let classified: Vec<_> = raw.iter().map(|s| (s, classify(&s.header, kind))).collect();
    let has_prefixed_default = classified
        .iter()
        .any(|(_, c)| matches!(c, Some((SectionKind::Profile, "default", true))));
    let mut out = Vec::new();
    for (raw, class) in classified {
        let Some((section_kind, name, prefixed)) = class else {
            log::warn!(
                "{}:{}: section [{}] ignored (not valid in the {} file)",
                file.display(),
                raw.line,
                raw.header,
                kind
            );
            continue;
        };
        if section_kind == SectionKind::Profile
            && name == "default"
            && !prefixed
            && has_prefixed_default
        {
            log::warn!(
                "{}:{}: [default] ignored because [profile default] exists",
                file.display(),
                raw.line
            );
            continue;
        }
        let mut section = Section {
            kind: section_kind,
            name: name.to_owned(),
            properties: Vec::new(),
        };
        for (key, value, line) in &raw.properties {
            if !is_identifier(key) {
                log::warn!(
                    "{}:{}: key `{}` ignored (not a valid name)",
                    file.display(),
                    line,
                    key
                );
                continue;
            }
            section.properties.push(Property {
                key: key.to_ascii_lowercase(),
                sub: value.strip_prefix('\n').map(parse_sub_properties),
                value: value.clone(),
                origin: Origin {
                    file: Arc::clone(file),
                    kind,
                    line: *line,
                },
            });
        }
        out.push(section);
    }
    Ok(out)
}

fn parse_sub_properties(block: &str) -> BTreeMap<String, String> {
    block
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim_matches(WS).to_owned(), v.trim_matches(WS).to_owned()))
        .collect()
}
