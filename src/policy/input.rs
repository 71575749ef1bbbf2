//! The input document as a regorus [`Value`], built straight from the JSON,
//! and whether it has the shape the compiled path needs (`super::shape`).
//!
//! `regorus::Value::from(serde_json::Value)` goes through serde and needs an
//! owned copy of the document; walking the borrowed JSON is faster and gives
//! the same value (numbers as the deserializer makes them: unsigned, then
//! signed, then float).
//!
//! Most of an input repeats from one evaluation to the next: one `config`
//! per repository, a few publishers, the same application, version and
//! artifact for the intents of one application. Each top-level field other
//! than the intent is therefore looked up, by equality, among the last few
//! values that field had on this thread; a hit reuses the converted value
//! (regorus values are reference-counted and never changed in place) and the
//! shape check, a miss converts and checks it. Each remembered value has a
//! process-wide id, so a guarded worker can be given it once and then be
//! told "the value with this id" (`crate::sandbox`).

use super::shape;
use regorus::Value;
use serde_json::Value as Json;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// Recent values remembered per top-level field and thread.
const RECENT_PER_FIELD: usize = 8;

/// Top-level fields that differ on every evaluation, never worth remembering.
const UNCACHED_FIELDS: &[&str] = &["intent"];

thread_local! {
    static RECENT: RefCell<HashMap<String, Vec<Converted>>> = RefCell::new(HashMap::new());
}

/// Ids of remembered values: never reused in a process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One top-level field's JSON, its regorus value, and its shape check.
struct Converted {
    json: Json,
    value: Value,
    conforms: bool,
    /// Unique to this entry: two fields with the same id are equal.
    id: u64,
}

/// An input document ready for the compiled path.
pub(crate) struct PreparedInput {
    /// Equal to `Value::from(input.clone())`.
    pub(crate) value: Value,
    /// [`shape::conforms`] of the input.
    pub(crate) conforms: bool,
    /// Per top-level field, in order: the id of its remembered value, if
    /// it is one (empty when the input is not an object).
    pub(crate) shared: Vec<Option<u64>>,
}

/// Converts `input` and checks its shape, reusing recent fields.
pub(crate) fn prepare(input: &Json) -> PreparedInput {
    let Json::Object(fields) = input else {
        return PreparedInput {
            value: convert(input),
            conforms: false,
            shared: Vec::new(),
        };
    };
    let mut conforms = shape::has_required_fields(fields);
    let mut shared = Vec::with_capacity(fields.len());
    let object: BTreeMap<Value, Value> = RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        fields
            .iter()
            .map(|(name, field)| {
                let remembered = match field {
                    Json::Object(map) => !map.is_empty(),
                    Json::Array(items) => !items.is_empty(),
                    _ => false,
                } && !UNCACHED_FIELDS.contains(&name.as_str());
                let (value, field_conforms, id) = if remembered {
                    let recent = match recent.get_mut(name.as_str()) {
                        Some(recent) => recent,
                        None => recent.entry(name.clone()).or_default(),
                    };
                    let (value, conforms, id) = lookup_or_convert(recent, name, field);
                    (value, conforms, Some(id))
                } else {
                    (convert(field), shape::field_conforms(name, field), None)
                };
                shared.push(id);
                conforms &= field_conforms;
                (Value::String(name.as_str().into()), value)
            })
            .collect()
    });
    PreparedInput {
        value: Value::from(object),
        conforms,
        shared,
    }
}

/// The converted value, shape check and id of `field`, from `recent` (most
/// recent last) or computed and remembered.
fn lookup_or_convert(recent: &mut Vec<Converted>, name: &str, field: &Json) -> (Value, bool, u64) {
    if let Some(index) = recent.iter().rposition(|entry| entry.json == *field) {
        let entry = recent.remove(index);
        let found = (entry.value.clone(), entry.conforms, entry.id);
        recent.push(entry);
        return found;
    }
    let entry = Converted {
        json: field.clone(),
        value: convert(field),
        conforms: shape::field_conforms(name, field),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
    };
    let found = (entry.value.clone(), entry.conforms, entry.id);
    if recent.len() >= RECENT_PER_FIELD {
        recent.remove(0);
    }
    recent.push(entry);
    found
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(document: Json) {
        let expected = Value::from(document.clone());
        assert_eq!(convert(&document), expected, "{document}");
        // Twice: the second time the fields come from the recent values.
        for _ in 0..2 {
            let prepared = prepare(&document);
            assert_eq!(prepared.value, expected, "{document}");
            assert_eq!(prepared.conforms, shape::conforms(&document), "{document}");
        }
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
    fn remembered_fields_are_told_apart_by_content() {
        let first = json!({"config": {"a": 1}, "publisher": {"id": "alice"}});
        let second = json!({"config": {"a": 1.0}, "publisher": {"id": "bob"}});
        for document in [&first, &second, &first] {
            assert_eq!(prepare(document).value, Value::from(document.clone()));
        }
        // More distinct values than are remembered, then the first again.
        for index in 0..=RECENT_PER_FIELD {
            let document = json!({"config": {"a": index}});
            assert_eq!(prepare(&document).value, Value::from(document.clone()));
        }
        assert_eq!(prepare(&first).value, Value::from(first.clone()));
    }
}
