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
use std::sync::Arc;
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
                let (value, field_conforms, id) = prepare_field(&mut recent, name, field);
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

/// [`prepare`] of an input given as its fields: a [`SharedField`] is
/// taken as it is (converted and checked once, for every input that has
/// it), every other field as [`prepare`] takes it. The same value, shape
/// check and kind of ids as [`prepare`] of [`PolicyInput::document`].
pub(crate) fn prepare_parts(input: &PolicyInput) -> PreparedInput {
    let mut conforms = shape::REQUIRED_FIELDS
        .iter()
        .all(|required| input.fields.iter().any(|(name, _)| name == required));
    let mut shared = Vec::with_capacity(input.fields.len());
    let object: BTreeMap<Value, Value> = RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        input
            .fields
            .iter()
            .map(|(name, field)| {
                let (value, field_conforms, id) = match field {
                    InputField::Shared(field) => {
                        (field.value.clone(), field.conforms, Some(field.id))
                    }
                    InputField::Own(json) => prepare_field(&mut recent, name, json),
                };
                shared.push(id);
                conforms &= field_conforms;
                (Value::String((*name).into()), value)
            })
            .collect()
    });
    PreparedInput {
        value: Value::from(object),
        conforms,
        shared,
    }
}

/// One top-level field for [`prepare`]: its value, whether it conforms,
/// and its id when it is remembered among the recent values.
fn prepare_field(
    recent: &mut HashMap<String, Vec<Converted>>,
    name: &str,
    field: &Json,
) -> (Value, bool, Option<u64>) {
    let remembered = match field {
        Json::Object(map) => !map.is_empty(),
        Json::Array(items) => !items.is_empty(),
        _ => false,
    } && !UNCACHED_FIELDS.contains(&name);
    if remembered {
        let recent = match recent.get_mut(name) {
            Some(recent) => recent,
            None => recent.entry(name.to_owned()).or_default(),
        };
        let (value, conforms, id) = lookup_or_convert(recent, name, field);
        (value, conforms, Some(id))
    } else {
        (convert(field), shape::field_conforms(name, field), None)
    }
}

/// A top-level field many policy inputs share (the config, an
/// application, a version, an artifact, a publisher), converted and
/// checked once and then given to every input that has it by reference
/// count: no copy, no comparison, no conversion per input. Its id, unique
/// in the process, lets a guarded worker be given it once.
#[derive(Debug)]
pub struct SharedField {
    json: Json,
    value: Value,
    conforms: bool,
    id: u64,
}

impl SharedField {
    /// The value `json` of the top-level field `name`.
    pub fn new(name: &str, json: Json) -> SharedField {
        SharedField {
            value: convert(&json),
            conforms: shape::field_conforms(name, &json),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            json,
        }
    }

    /// The field's JSON.
    pub fn json(&self) -> &Json {
        &self.json
    }
}

/// A top-level field of a [`PolicyInput`].
#[derive(Debug, Clone)]
pub enum InputField {
    /// A value many inputs share.
    Shared(Arc<SharedField>),
    /// This input's own value.
    Own(Json),
}

impl InputField {
    /// The field's JSON.
    pub fn json(&self) -> &Json {
        match self {
            InputField::Shared(field) => &field.json,
            InputField::Own(json) => json,
        }
    }
}

/// A policy input document (see `docs/policy-input.md`) given as its
/// top-level fields, each named once, so the fields many inputs share are
/// not copied into each ([`super::PolicyEngine::evaluate_inputs`]).
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    fields: Vec<(&'static str, InputField)>,
}

impl PolicyInput {
    /// An input without fields.
    pub fn new() -> PolicyInput {
        PolicyInput::default()
    }

    /// Adds the top-level field `name` (not in the input yet).
    pub fn field(&mut self, name: &'static str, value: InputField) {
        debug_assert!(self.fields.iter().all(|(known, _)| *known != name));
        self.fields.push((name, value));
    }

    /// The top-level fields, in the order they were added.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &Json)> + '_ {
        self.fields
            .iter()
            .map(|(name, field)| (*name, field.json()))
    }

    /// The input document: a JSON object of the fields.
    pub fn document(&self) -> Json {
        Json::Object(
            self.fields
                .iter()
                .map(|(name, field)| ((*name).to_owned(), field.json().clone()))
                .collect(),
        )
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
