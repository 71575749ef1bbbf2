//! The input document as a regorus [`Value`], built straight from the JSON.
//!
//! `regorus::Value::from(serde_json::Value)` goes through serde and needs an
//! owned copy of the document; walking the borrowed JSON is faster and gives
//! the same value (numbers as the deserializer makes them: unsigned, then
//! signed, then float).
//!
//! Most of an input repeats from intent to intent: one `config` per
//! repository, a few publishers, one application and artifact for many
//! intents. Top-level sub-documents other than the intent itself are
//! therefore converted once per thread and shared afterwards (regorus values
//! are reference-counted and never changed in place), in a small cache keyed
//! by their content and checked for equality on every hit.

use regorus::Value;
use serde_json::Value as Json;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// Sub-documents cached per thread before the cache is emptied and refilled.
const MAX_CACHED: usize = 512;

/// Top-level fields that differ on every evaluation, never worth caching.
const UNCACHED_FIELDS: &[&str] = &["intent", "now"];

thread_local! {
    static CONVERTED: RefCell<SubdocumentCache> = RefCell::new(SubdocumentCache::default());
}

/// The input document as a regorus value, equal to `Value::from(input.clone())`.
pub(crate) fn to_value(input: &Json) -> Value {
    let Json::Object(fields) = input else {
        return convert(input);
    };
    CONVERTED.with(|cache| {
        let mut cache = cache.borrow_mut();
        let object: BTreeMap<Value, Value> = fields
            .iter()
            .map(|(key, field)| {
                let cacheable = match field {
                    Json::Object(map) => !map.is_empty(),
                    Json::Array(items) => !items.is_empty(),
                    _ => false,
                } && !UNCACHED_FIELDS.contains(&key.as_str());
                let value = if cacheable {
                    cache.get_or_convert(field)
                } else {
                    convert(field)
                };
                (Value::String(key.as_str().into()), value)
            })
            .collect();
        Value::from(object)
    })
}

/// Converts one JSON value, the way regorus's deserializer would.
pub(crate) fn convert(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Bool(*flag),
        Json::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(unsigned), _, _) => Value::from(unsigned),
            (None, Some(signed), _) => Value::from(signed),
            (None, None, Some(float)) => Value::from(float),
            // serde_json holds no other numbers without arbitrary_precision.
            (None, None, None) => Value::Undefined,
        },
        Json::String(text) => Value::String(text.as_str().into()),
        Json::Array(items) => Value::from(items.iter().map(convert).collect::<Vec<_>>()),
        Json::Object(map) => Value::from(
            map.iter()
                .map(|(key, value)| (Value::String(key.as_str().into()), convert(value)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// Converted sub-documents by content hash, each with its JSON to rule out collisions.
#[derive(Default)]
struct SubdocumentCache {
    entries: HashMap<u64, Vec<(Json, Value)>>,
    len: usize,
}

impl SubdocumentCache {
    fn get_or_convert(&mut self, json: &Json) -> Value {
        let mut hasher = FoldHasher::default();
        hash_json(json, &mut hasher);
        let key = hasher.finish();
        if let Some(value) = self.entries.get(&key).and_then(|bucket| {
            bucket
                .iter()
                .find(|(cached, _)| cached == json)
                .map(|(_, value)| value.clone())
        }) {
            return value;
        }
        let value = convert(json);
        if self.len >= MAX_CACHED {
            self.entries.clear();
            self.len = 0;
        }
        self.entries
            .entry(key)
            .or_default()
            .push((json.clone(), value.clone()));
        self.len += 1;
        value
    }
}

/// Feeds a JSON value to a hasher; equal values (`==`) hash equally.
fn hash_json(json: &Json, hasher: &mut impl Hasher) {
    match json {
        Json::Null => hasher.write_u8(0),
        Json::Bool(flag) => {
            hasher.write_u8(1);
            flag.hash(hasher);
        }
        Json::Number(number) => {
            hasher.write_u8(2);
            match (number.as_u64(), number.as_i64(), number.as_f64()) {
                (Some(unsigned), _, _) => unsigned.hash(hasher),
                (None, Some(signed), _) => signed.hash(hasher),
                (None, None, Some(float)) => float.to_bits().hash(hasher),
                (None, None, None) => {}
            }
        }
        Json::String(text) => {
            hasher.write_u8(3);
            text.hash(hasher);
        }
        Json::Array(items) => {
            hasher.write_u8(4);
            hasher.write_usize(items.len());
            for item in items {
                hash_json(item, hasher);
            }
        }
        Json::Object(map) => {
            hasher.write_u8(5);
            hasher.write_usize(map.len());
            for (key, value) in map {
                key.hash(hasher);
                hash_json(value, hasher);
            }
        }
    }
}

/// A fast, non-cryptographic hasher (multiply-rotate over 8-byte words); the
/// cache checks equality, so collisions only cost a comparison.
#[derive(Default)]
struct FoldHasher {
    state: u64,
}

impl FoldHasher {
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(document: Json) {
        let expected = Value::from(document.clone());
        assert_eq!(convert(&document), expected, "{document}");
        // Twice: the second conversion comes from the cache.
        assert_eq!(to_value(&document), expected, "{document}");
        assert_eq!(to_value(&document), expected, "{document}");
    }

    #[test]
    fn conversion_matches_regorus_deserialization() {
        check(json!(null));
        check(json!({"a": 1, "b": -2, "c": 2.5, "d": 24.0, "e": u64::MAX, "f": i64::MIN}));
        check(
            json!({"config": {"rings": [{"id": "r", "soak_hours": 0.0}], "x": [true, false, null]}}),
        );
        check(
            json!({"intent": {"id": "x"}, "empty": {}, "none": [], "now": "2026-01-01T00:00:00Z"}),
        );
        check(json!([1, "two", {"three": [3]}]));
    }

    #[test]
    fn cached_sub_documents_are_told_apart_by_content() {
        let first = json!({"config": {"a": 1}, "publisher": {"id": "alice"}});
        let second = json!({"config": {"a": 1.0}, "publisher": {"id": "bob"}});
        for document in [&first, &second, &first] {
            assert_eq!(to_value(document), Value::from(document.clone()));
        }
    }

    #[test]
    fn equal_values_hash_equally() {
        let hash = |json: &Json| {
            let mut hasher = FoldHasher::default();
            hash_json(json, &mut hasher);
            hasher.finish()
        };
        let left: Json = serde_json::from_str(r#"{"b": [1, 2], "a": "x"}"#).unwrap();
        let right: Json = serde_json::from_str(r#"{"a": "x", "b": [1, 2]}"#).unwrap();
        assert_eq!(left, right);
        assert_eq!(hash(&left), hash(&right));
        assert_ne!(hash(&json!([1, 2])), hash(&json!([2, 1])));
    }
}
