//! Canonical JSON: the one byte string a JSON value hashes as.
//!
//! Object keys are sorted by their UTF-8 bytes, there is no whitespace, strings are
//! escaped as `serde_json` escapes them, and numbers are written as `serde_json`
//! writes them. The result does not depend on whether `serde_json`'s
//! `preserve_order` feature is enabled somewhere in the dependency graph, which is
//! why this does not simply call `serde_json::to_string`.

use serde_json::Value;

/// The canonical text of `value`.
pub fn canonical_json(value: &Value) -> String {
    let mut output = String::new();
    write_canonical(value, &mut output);
    output
}

fn write_canonical(value: &Value, output: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            // Scalars have exactly one serde_json rendering.
            output.push_str(&value.to_string());
        }
        Value::Array(items) => {
            output.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    output.push(',');
                }
                write_canonical(item, output);
            }
            output.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            output.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    output.push(',');
                }
                output.push_str(&Value::String(key.clone()).to_string());
                output.push(':');
                write_canonical(item, output);
            }
            output.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: &str, expected: &str) {
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(canonical_json(&value), expected, "input: {input}");
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        check(
            r#"{"b": 1, "a": {"d": [3, {"z": 1, "y": 2}], "c": null}}"#,
            r#"{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}"#,
        );
        check(r#"  [ true, false , "x" ] "#, r#"[true,false,"x"]"#);
        check(r#"{"é": 1, "e": 2, "E": 3}"#, r#"{"E":3,"e":2,"é":1}"#);
        check(r#""line\nbreak \"quoted\"""#, r#""line\nbreak \"quoted\"""#);
        check("1.5", "1.5");
        check("{}", "{}");
    }

    #[test]
    fn canonical_form_is_stable_under_reparse() {
        let value = json!({"failed_installs": 5, "ratio": 0.98, "reasons": {"timeout": 3}});
        let text = canonical_json(&value);
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&reparsed), text);
    }
}
