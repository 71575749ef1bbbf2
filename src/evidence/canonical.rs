//! Canonical JSON: the exact bytes an evidence pack is hashed, signed and
//! committed as.
//!
//! The form is deliberately small and fully specified, so that any verifier
//! (this crate, a script, an auditor's tool) can reproduce it:
//!
//! - object keys are sorted recursively by the bytes of their UTF-8
//!   encoding (which is Unicode code point order; note that this differs
//!   from RFC 8785, which sorts by UTF-16 code units, only for keys outside
//!   the Basic Multilingual Plane);
//! - no insignificant whitespace: no space after `:` or `,`, no indentation;
//! - strings are UTF-8 and escaped as `serde_json` escapes them: `"` and `\`
//!   with a backslash, `\b \f \n \r \t` by their short forms, every other
//!   control character below U+0020 as `\u00XX` (lower-case hex); nothing
//!   else is escaped (not `/`, not non-ASCII characters);
//! - numbers as `serde_json` prints them: integers in decimal, floats in
//!   their shortest round-tripping form (evidence bodies should prefer
//!   integers and strings: a float's text is only as portable as that rule);
//! - the document ends with exactly one `\n` (a line feed), which is part of
//!   the hashed and signed bytes: the committed file is a well-formed text
//!   file and `sha256sum packs/…/00000007-vpn.json` gives the pack hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Serialises `value` in the canonical form described in the module
/// documentation, including the trailing line feed.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut output = Vec::with_capacity(1024);
    write_canonical(value, &mut output);
    output.push(b'\n');
    output
}

/// The canonical form of the object `value` without its top-level member
/// `skipped_key` (used to derive pack ids without copying the pack).
pub(crate) fn canonical_json_without_member(value: &Value, skipped_key: &str) -> Vec<u8> {
    let mut output = Vec::with_capacity(1024);
    match value {
        Value::Object(map) => write_object(
            map.iter().filter(|(key, _)| key.as_str() != skipped_key),
            &mut output,
        ),
        other => write_canonical(other, &mut output),
    }
    output.push(b'\n');
    output
}

/// The lower-case hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_canonical(value: &Value, output: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map.iter(), output),
        Value::Array(items) => {
            output.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    output.push(b',');
                }
                write_canonical(item, output);
            }
            output.push(b']');
        }
        Value::String(text) => write_string(text, output),
        // Null, booleans and numbers have exactly one compact rendering.
        scalar => output.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn write_object<'value>(
    members: impl Iterator<Item = (&'value String, &'value Value)>,
    output: &mut Vec<u8>,
) {
    let mut entries: Vec<(&String, &Value)> = members.collect();
    entries.sort_unstable_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
    output.push(b'{');
    for (index, (key, entry_value)) in entries.into_iter().enumerate() {
        if index > 0 {
            output.push(b',');
        }
        write_string(key, output);
        output.push(b':');
        write_canonical(entry_value, output);
    }
    output.push(b'}');
}

fn write_string(text: &str, output: &mut Vec<u8>) {
    // serde_json's string escaping is the documented canonical escaping;
    // writing a `&str` into a Vec cannot fail.
    serde_json::to_writer(&mut *output, text).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expected: &str) {
        let bytes = canonical_json(&input);
        assert_eq!(String::from_utf8(bytes).unwrap(), format!("{expected}\n"));
    }

    #[test]
    fn canonical_form_sorts_keys_recursively_and_drops_whitespace() {
        check(json!({"b": 1, "a": 2}), r#"{"a":2,"b":1}"#);
        check(
            json!({"z": {"y": [3, {"d": null, "c": true}], "x": false}, "a": []}),
            r#"{"a":[],"z":{"x":false,"y":[3,{"c":true,"d":null}]}}"#,
        );
        check(json!({}), "{}");
        check(json!([]), "[]");
        check(json!("plain"), r#""plain""#);
    }

    #[test]
    fn canonical_form_sorts_keys_by_utf8_bytes() {
        check(
            json!({"é": 1, "z": 2, "Z": 3, "aa": 4, "a": 5}),
            r#"{"Z":3,"a":5,"aa":4,"z":2,"é":1}"#,
        );
    }

    #[test]
    fn canonical_form_escapes_only_what_json_requires() {
        check(
            json!({"text": "quote \" backslash \\ slash / tab \t newline \n bell \u{7} é ✓"}),
            r#"{"text":"quote \" backslash \\ slash / tab \t newline \n bell \u0007 é ✓"}"#,
        );
    }

    #[test]
    fn canonical_form_prints_numbers_compactly() {
        check(
            json!([0, -1, 18446744073709551615u64, 1.5, -0.25]),
            "[0,-1,18446744073709551615,1.5,-0.25]",
        );
    }

    #[test]
    fn canonical_form_is_independent_of_insertion_order() {
        let mut first = serde_json::Map::new();
        first.insert("one".into(), json!(1));
        first.insert("two".into(), json!(2));
        let mut second = serde_json::Map::new();
        second.insert("two".into(), json!(2));
        second.insert("one".into(), json!(1));
        assert_eq!(
            canonical_json(&Value::Object(first)),
            canonical_json(&Value::Object(second))
        );
    }

    #[test]
    fn canonical_form_can_leave_out_one_top_level_member() {
        let value = json!({"b": {"pack_id": 1}, "pack_id": "x", "a": 2});
        assert_eq!(
            canonical_json_without_member(&value, "pack_id"),
            b"{\"a\":2,\"b\":{\"pack_id\":1}}\n".to_vec()
        );
    }

    #[test]
    fn sha256_hex_is_lower_case_and_64_characters() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
