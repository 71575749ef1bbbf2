//! A positioned, defensive YAML reader.
//!
//! Governed files are small, hand-written and untrusted. This reader turns one
//! YAML document into a `serde_json::Value` (what the JSON Schemas and the Rego
//! input speak) plus a map from every JSON pointer to its line and column, so that
//! every later stage can point at the exact place it is unhappy with.
//!
//! It refuses what a hostile file could use against the daemon: aliases (the
//! "billion laughs" expansion), nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_NODES`] nodes, duplicate keys, non-scalar keys and multi-document files.
//! It also refuses tags (`!custom`, `!!python/object`, `!!binary`, ...): a
//! tag asks for a meaning this reader would not give the value, and a value
//! read differently from what its author wrote must be an error, not a
//! silent drop. Only the core schema's `!!str`, `!!map` and `!!seq` are
//! accepted, with their meaning (`!!str 1.10` is the string `"1.10"`).
//! Scalars follow the YAML 1.2 core schema, so `version: 1.10` is a number (and
//! the schema then asks for quotes) rather than silently becoming `1.1`.
//!
//! Why not `serde_yaml` here: it reports positions only for syntax errors, and
//! diagnostics must carry a line for every semantic finding too. `serde_yaml` is
//! still what writes YAML (`init`, generators).

use crate::diagnostic::Position;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of mappings and sequences a governed file may use.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, mappings, sequences) one file may hold.
pub const MAX_NODES: usize = 200_000;

/// A parsed document and where each of its values stands in the file.
///
/// Positions are what diagnostics need, and most documents never have one:
/// the map from every JSON pointer to its position is built only when a
/// position is first asked for, by reading the (kept) text again with the
/// same reader, so it is exactly what a first reading would have recorded.
/// A loaded snapshot therefore holds each file's text once, not a map of
/// every pointer of every file (`model::load` also moves `value` out once
/// the typed object is built).
///
/// A document can also be made without its text ([`parse_found_again`]):
/// it then keeps a way to find the very same text again (a Git blob by its
/// id, for `validate`), asked only when a position is first wanted.
#[derive(Clone)]
pub struct Document {
    pub value: Value,
    source: Source,
    /// Boxed: most documents never have one, and an empty map is larger
    /// than a pointer (48 bytes against 8, for each loaded object).
    #[allow(clippy::box_collection)]
    positions: OnceLock<Box<HashMap<String, Position>>>,
}

/// Finds the text of a document made by [`parse_found_again`] again, by the
/// key it was made with: exactly the text it was parsed from, or `None`
/// when it can no longer be read. Asked at most once per document (the
/// first time a position is wanted), from any thread.
pub trait FindText: Send + Sync {
    fn text(&self, key: usize) -> Option<String>;
}

/// Where a document's text is.
#[derive(Clone)]
enum Source {
    /// The file's text, moved in when the caller owns it (never copied twice).
    Kept(Box<str>),
    /// Not kept: found again, by its key, when a position is first asked for.
    Elsewhere(Arc<dyn FindText>, usize),
}

/// A YAML problem with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub position: Position,
    pub message: String,
}

impl std::fmt::Debug for Document {
    /// The value: where the text is and which positions were read so far
    /// (in no fixed order) say nothing about the document.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Document")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Source {
    /// The same for both: where the text is says nothing about the document.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Source")
    }
}

impl Document {
    /// Where the value at `pointer` starts; falls back to the nearest ancestor
    /// that exists, so a "missing property" finding points at its parent.
    ///
    /// A document whose text cannot be found again (its repository gone
    /// while the command ran) has no positions: every finding on it is about
    /// the file as a whole (line 0), never at a line it was not found at.
    pub fn position(&self, pointer: &str) -> Position {
        let positions = self.positions.get_or_init(|| match &self.source {
            Source::Kept(text) => positions_of(text),
            Source::Elsewhere(find, key) => find
                .text(*key)
                .map(|text| positions_of(&text))
                .unwrap_or_default(),
        });
        if positions.is_empty() && matches!(self.source, Source::Elsewhere(..)) {
            return Position::default();
        }
        lookup(positions, pointer)
    }

    /// [`Document::position`] given the text the document was parsed from
    /// (what [`parse_found_again`] did not keep): the same answer, without
    /// finding the text again.
    pub fn position_in(&self, pointer: &str, text: &str) -> Position {
        lookup(self.positions.get_or_init(|| positions_of(text)), pointer)
    }
}

/// Every pointer's position in `text`, as a first reading records them.
#[allow(clippy::box_collection)] // what `Document::positions` holds
fn positions_of(text: &str) -> Box<HashMap<String, Position>> {
    Box::new(
        read(text, true)
            .map(|(_, positions)| positions.unwrap_or_default())
            .unwrap_or_default(),
    )
}

/// The position of `pointer`, or of its nearest ancestor that has one.
fn lookup(positions: &HashMap<String, Position>, mut pointer: &str) -> Position {
    loop {
        if let Some(position) = positions.get(pointer) {
            return *position;
        }
        match pointer.rfind('/') {
            Some(cut) => pointer = &pointer[..cut],
            None => return Position { line: 1, column: 1 },
        }
    }
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn position(marker: Marker) -> Position {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Position {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

enum Frame {
    Sequence {
        pointer: String,
        items: Vec<Value>,
    },
    Mapping {
        pointer: String,
        entries: Map<String, Value>,
        /// The key read and waiting for its value.
        pending_key: Option<String>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    /// Recorded only when asked for (see [`Document`]).
    positions: Option<HashMap<String, Position>>,
    root: Option<Value>,
    nodes: usize,
}

impl Builder {
    /// The pointer of the node about to start, given the innermost open frame.
    fn next_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Sequence { pointer, items }) => format!("{pointer}/{}", items.len()),
            Some(Frame::Mapping {
                pointer,
                pending_key: Some(key),
                ..
            }) => format!("{pointer}/{}", escape_token(key)),
            Some(Frame::Mapping { pointer, .. }) => pointer.clone(),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Mapping {
                pending_key: None,
                ..
            })
        )
    }

    fn count_node(&mut self, at: Position) -> Result<(), YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                position: at,
                message: format!("file has more than {MAX_NODES} YAML nodes; split it up"),
            });
        }
        Ok(())
    }

    /// Places a finished value into its parent (or makes it the root).
    fn attach(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, .. }) => items.push(value),
            Some(Frame::Mapping {
                entries,
                pending_key,
                ..
            }) => {
                if let Some(key) = pending_key.take() {
                    entries.insert(key, value);
                }
            }
        }
    }

    fn scalar(&mut self, text: String, style: TScalarStyle, at: Position) -> Result<(), YamlError> {
        self.count_node(at)?;
        if self.expecting_key() {
            let Some(Frame::Mapping {
                pointer,
                entries,
                pending_key,
            }) = self.stack.last_mut()
            else {
                unreachable!("expecting_key checked the frame")
            };
            if entries.contains_key(&text) {
                return Err(YamlError {
                    position: at,
                    message: format!("duplicate key \"{text}\"; each key may appear once"),
                });
            }
            if let Some(positions) = &mut self.positions {
                let key_pointer = format!("{pointer}/{}", escape_token(&text));
                positions.insert(key_pointer, at);
            }
            *pending_key = Some(text);
            return Ok(());
        }
        if self.positions.is_some() {
            let pointer = self.next_pointer();
            // A value's own position wins over its key's, except for empty values.
            let empty_plain = text.is_empty() && style == TScalarStyle::Plain;
            if let Some(positions) = &mut self.positions
                && !(empty_plain && positions.contains_key(&pointer))
            {
                positions.insert(pointer, at);
            }
        }
        let value = if style == TScalarStyle::Plain {
            plain_scalar(&text)
        } else {
            Value::String(text)
        };
        self.attach(value);
        Ok(())
    }

    fn open(&mut self, sequence: bool, at: Position) -> Result<(), YamlError> {
        self.count_node(at)?;
        if self.expecting_key() {
            return Err(YamlError {
                position: at,
                message: "mapping keys must be plain strings, not mappings or sequences".into(),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError {
                position: at,
                message: format!("nesting deeper than {MAX_DEPTH} levels is not allowed"),
            });
        }
        // Frames keep their pointer only while positions are recorded.
        let pointer = if self.positions.is_some() {
            self.next_pointer()
        } else {
            String::new()
        };
        if let Some(positions) = &mut self.positions {
            positions.entry(pointer.clone()).or_insert(at);
        }
        self.stack.push(if sequence {
            Frame::Sequence {
                pointer,
                items: Vec::new(),
            }
        } else {
            Frame::Mapping {
                pointer,
                entries: Map::new(),
                pending_key: None,
            }
        });
        Ok(())
    }

    fn close(&mut self) {
        let value = match self.stack.pop() {
            Some(Frame::Sequence { items, .. }) => Value::Array(items),
            Some(Frame::Mapping { entries, .. }) => Value::Object(entries),
            None => return,
        };
        self.attach(value);
    }
}

/// Types a plain (unquoted) scalar by the YAML 1.2 core schema.
fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let bytes = text.as_bytes();
    let numeric_start = bytes
        .first()
        .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
    if !numeric_start {
        return Value::String(text.to_owned());
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(n) = i64::from_str_radix(hex, 16)
    {
        return Value::Number(n.into());
    }
    if let Some(octal) = text.strip_prefix("0o")
        && let Ok(n) = i64::from_str_radix(octal, 8)
    {
        return Value::Number(n.into());
    }
    let is_integer = {
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if is_integer && let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    let is_float = {
        let body = text.strip_prefix(['-', '+']).unwrap_or(text);
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(cut) => (&body[..cut], Some(&body[cut + 1..])),
            None => (body, None),
        };
        let mantissa_ok = !mantissa.is_empty()
            && mantissa != "."
            && mantissa.bytes().filter(|b| *b == b'.').count() <= 1
            && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let exponent_ok = exponent.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        });
        mantissa_ok && exponent_ok
    };
    if is_float && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// Parses exactly one YAML document.
pub fn parse(text: &str) -> Result<Document, YamlError> {
    let (value, _) = read(text, false)?;
    Ok(Document {
        value,
        source: Source::Kept(Box::from(text)),
        positions: OnceLock::new(),
    })
}

/// [`parse`] without keeping `text`: `find` gives the same text again, by
/// `key`, when a position is first asked for ([`Document::position_in`]
/// answers from the text in hand while the caller still has it).
pub fn parse_found_again(
    text: &str,
    find: &Arc<dyn FindText>,
    key: usize,
) -> Result<Document, YamlError> {
    let (value, _) = read(text, false)?;
    Ok(Document {
        value,
        source: Source::Elsewhere(find.clone(), key),
        positions: OnceLock::new(),
    })
}

/// [`parse`], keeping `text` itself (no copy) for positions.
pub fn parse_owned(text: String) -> Result<Document, YamlError> {
    let (value, _) = read(&text, false)?;
    Ok(Document {
        value,
        source: Source::Kept(text.into_boxed_str()),
        positions: OnceLock::new(),
    })
}

/// Reads one document; with `positions`, also where each pointer starts.
fn read(
    text: &str,
    positions: bool,
) -> Result<(Value, Option<HashMap<String, Position>>), YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        stack: Vec::new(),
        positions: positions.then(HashMap::new),
        root: None,
        nodes: 0,
    };
    let mut documents = 0;
    loop {
        let (event, marker) = parser.next_token().map_err(|error| YamlError {
            position: position(*error.marker()),
            message: error.info().to_owned(),
        })?;
        let at = position(marker);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        position: at,
                        message: "only one YAML document per file; remove the extra `---`".into(),
                    });
                }
            }
            Event::Alias(_) => {
                return Err(YamlError {
                    position: at,
                    message: "YAML aliases (*name) are not allowed in governed files; write the value out".into(),
                });
            }
            Event::Scalar(text, style, _, tag) => {
                let style = match tag {
                    None => style,
                    // Quoted: what `!!str` means.
                    Some(tag) if is_core(&tag, "str") => TScalarStyle::SingleQuoted,
                    Some(tag) => return Err(tag_refused(&tag, at)),
                };
                builder.scalar(text, style, at)?
            }
            Event::SequenceStart(_, tag) => {
                if let Some(tag) = tag.filter(|tag| !is_core(tag, "seq")) {
                    return Err(tag_refused(&tag, at));
                }
                builder.open(true, at)?
            }
            Event::MappingStart(_, tag) => {
                if let Some(tag) = tag.filter(|tag| !is_core(tag, "map")) {
                    return Err(tag_refused(&tag, at));
                }
                builder.open(false, at)?
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
    }
    Ok((builder.root.unwrap_or(Value::Null), builder.positions))
}

/// Whether `tag` is the core schema's `!!name`.
fn is_core(tag: &Tag, name: &str) -> bool {
    matches!(tag.handle.as_str(), "!!" | "tag:yaml.org,2002:") && tag.suffix == name
}

fn tag_refused(tag: &Tag, at: Position) -> YamlError {
    let shown = match tag.handle.as_str() {
        "tag:yaml.org,2002:" => format!("!!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    };
    YamlError {
        position: at,
        message: format!(
            "YAML tag {} is not allowed in governed files; write the value without it (quote it to make it a string)",
            crate::escape::terminal(&shown)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(text: &str, expected: Value) {
        let document = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        assert_eq!(document.value, expected, "{text:?}");
    }

    fn check_error(text: &str, line: usize, needle: &str) {
        let error = parse(text).expect_err(text);
        assert_eq!(error.position.line, line, "{text:?}: {error:?}");
        assert!(error.message.contains(needle), "{text:?}: {error:?}");
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        check("a: 1", json!({"a": 1}));
        check("a: -7", json!({"a": -7}));
        check("a: 1.5", json!({"a": 1.5}));
        check("a: 6.2.1", json!({"a": "6.2.1"}));
        check("a: '1.0'", json!({"a": "1.0"}));
        check("a: true", json!({"a": true}));
        check("a: yes", json!({"a": "yes"}));
        check("a: ~", json!({"a": null}));
        check("a:", json!({"a": null}));
        check("a: 0x1F", json!({"a": 31}));
        check(
            "a: 2026-01-05T00:00:00Z",
            json!({"a": "2026-01-05T00:00:00Z"}),
        );
        check("a: sha256:00ff", json!({"a": "sha256:00ff"}));
        check("- .", json!(["."]));
    }

    #[test]
    fn nested_structures_and_positions() {
        let document = parse("a:\n  b:\n    - x\n    - y: 2\n").unwrap();
        assert_eq!(document.value, json!({"a": {"b": ["x", {"y": 2}]}}));
        assert_eq!(
            document.position("/a/b/1/y"),
            Position {
                line: 4,
                column: 10
            }
        );
        assert_eq!(document.position("/a/b/0"), Position { line: 3, column: 7 });
        // A pointer that does not exist resolves to its nearest ancestor.
        assert_eq!(document.position("/a/b/1/missing").line, 4);
    }

    #[test]
    fn hostile_documents_are_refused_with_a_position() {
        check_error("a: &x [1]\nb: *x\n", 2, "aliases");
        check_error("a: 1\na: 2\n", 2, "duplicate key");
        check_error("a: 1\n---\nb: 2\n", 2, "one YAML document");
        check_error("? [a]\n: 1\n", 1, "plain strings");
        check_error("a: [\n", 2, "");
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        check_error(&deep, 1, "nesting deeper");
    }

    #[test]
    fn billion_laughs_is_refused_before_expansion() {
        let mut text = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev},*a{prev},*a{prev},*a{prev},*a{prev}]\n"
            ));
        }
        check_error(&text, 2, "aliases");
    }

    #[test]
    fn tags_are_refused_where_they_stand() {
        check_error("a: 1\nb: !custom x\n", 2, "YAML tag !custom");
        check_error("a: !!python/object:os.system [ls]\n", 1, "!!python/object");
        check_error("a:\n  - !!binary aGk=\n", 2, "!!binary");
        check_error("a: !!int \"5\"\n", 1, "!!int");
        check_error("a: !<tag:example.com,2000:x> 1\n", 1, "YAML tag");
        // A block mapping starts at its first key.
        check_error("!mapping\na: 1\n", 2, "YAML tag !mapping");
        check_error("a: !seqtag [1, 2]\n", 1, "YAML tag !seqtag");
    }

    #[test]
    fn core_string_map_and_seq_tags_keep_their_meaning() {
        check("v: !!str 1.10\n", json!({"v": "1.10"}));
        check(
            "v: !!seq [1]\nw: !!map {a: 1}\n",
            json!({"v": [1], "w": {"a": 1}}),
        );
    }
}
