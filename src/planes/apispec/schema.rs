//! `schema`: the JSON Schema subset OpenAPI 3.0 descriptions use, evaluated
//! against a value: `$ref`, `allOf`, `anyOf`/`oneOf`, `nullable`, `type`,
//! `enum`, `properties`, `required`, `additionalProperties`, `items`,
//! `minimum`. For OData, objects are closed (an undeclared property is
//! refused) and `@odata.type` selects the derived type a value is checked
//! against.

use serde_json::{Map, Value};

/// How strict object checks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// OData: undeclared properties refused, `@odata.type` casts followed.
    pub odata: bool,
    /// Whether `required` properties must be present (not for recorded
    /// payloads older than the description).
    pub required: bool,
}

/// Follows `$ref`s to the schema they name.
pub fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..32 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(reference) => match reference
                .strip_prefix('#')
                .and_then(|pointer| document.pointer(pointer))
            {
                Some(target) => current = target,
                None => return current,
            },
            None => return current,
        }
    }
    current
}

/// The name a `$ref` points at (`microsoft.graph.mobileApp`).
pub fn ref_name(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.rsplit('/').next())
}

/// Every property a schema declares, through `allOf` (inherited ones
/// included), with the schema of each.
/// Borrowed from the document: nothing is copied (a request's check walks
/// these for every field it names).
pub fn properties<'a>(
    document: &'a Value,
    schema: &'a Value,
) -> std::collections::BTreeMap<&'a str, &'a Value> {
    let mut found = std::collections::BTreeMap::new();
    collect_properties(document, schema, &mut found, 0);
    found
}

fn collect_properties<'a>(
    document: &'a Value,
    schema: &'a Value,
    found: &mut std::collections::BTreeMap<&'a str, &'a Value>,
    depth: u32,
) {
    if depth > 32 {
        return;
    }
    let schema = resolve(document, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            collect_properties(document, part, found, depth + 1);
        }
    }
    if let Some(Value::Object(own)) = schema.get("properties") {
        for (name, property) in own {
            found.insert(name.as_str(), property);
        }
    }
}

/// Whether `derived` (a component name) is `base` or inherits from it
/// through `allOf`.
pub fn derives_from(document: &Value, derived: &str, base: &str) -> bool {
    let mut name = derived.to_string();
    for _ in 0..32 {
        if name == base {
            return true;
        }
        let Some(schema) =
            document.pointer(&format!("/components/schemas/{}", pointer_escape(&name)))
        else {
            return false;
        };
        let parent = schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|parts| parts.iter().find_map(ref_name));
        match parent {
            Some(parent) => name = parent.to_string(),
            None => return false,
        }
    }
    false
}

pub fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The component schema an OData `@odata.type` names (`#microsoft.graph.x`).
pub fn odata_component<'a>(document: &'a Value, odata_type: &str) -> Option<(&'a Value, String)> {
    let name = odata_type.trim_start_matches('#');
    document
        .pointer(&format!("/components/schemas/{}", pointer_escape(name)))
        .map(|schema| (schema, name.to_string()))
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn nullable(document: &Value, schema: &Value) -> bool {
    let schema = resolve(document, schema);
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
        || schema
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|types| types.iter().any(|kind| kind == "null"))
}

/// Checks `value` against `schema`; the error names the JSON pointer.
pub fn validate(
    document: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    mode: Mode,
) -> Result<(), String> {
    validate_at(document, schema, value, at, mode, 0)
}

fn validate_at(
    document: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    mode: Mode,
    depth: u32,
) -> Result<(), String> {
    if depth > 64 {
        return Ok(());
    }
    let reference = ref_name(schema).map(str::to_string);
    let schema = resolve(document, schema);
    if value.is_null() {
        if nullable(document, schema) || schema.as_object().is_some_and(Map::is_empty) {
            return Ok(());
        }
        // anyOf [X] with nullable on the wrapper is handled by the caller's
        // nullable flag; a null with no nullable is refused.
        if let Some(options) = schema
            .get("anyOf")
            .or(schema.get("oneOf"))
            .and_then(Value::as_array)
            && options.iter().any(|option| nullable(document, option))
        {
            return Ok(());
        }
        return Err(format!("{at}: null is not allowed here"));
    }
    // OData: an @odata.type on an object names the derived type to check.
    if mode.odata
        && let Value::Object(fields) = value
        && let Some(odata_type) = fields.get("@odata.type").and_then(Value::as_str)
    {
        let declared = reference.clone().or_else(|| {
            schema
                .get("title")
                .and_then(Value::as_str)
                .map(|title| format!("microsoft.graph.{title}"))
        });
        match odata_component(document, odata_type) {
            None => {
                return Err(format!(
                    "{at}: @odata.type {odata_type} is not a type of this description"
                ));
            }
            Some((derived, derived_name)) => {
                if let Some(declared) = &declared
                    && Some(declared.as_str()) != Some(derived_name.as_str())
                {
                    if !derives_from(document, &derived_name, declared) {
                        return Err(format!(
                            "{at}: @odata.type {odata_type} does not derive from {declared}"
                        ));
                    }
                    return validate_object(
                        document,
                        derived,
                        fields,
                        at,
                        mode,
                        depth,
                        &derived_name,
                    );
                }
            }
        }
    }
    if let Some(options) = schema
        .get("anyOf")
        .or(schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let mut reasons = Vec::new();
        for option in options {
            match validate_at(document, option, value, at, mode, depth + 1) {
                Ok(()) => return Ok(()),
                Err(reason) => reasons.push(reason),
            }
        }
        return Err(reasons
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("{at}: no option matches")));
    }
    let declared_type = schema.get("type").and_then(Value::as_str);
    let is_object = declared_type == Some("object")
        || schema.get("properties").is_some()
        || schema.get("allOf").is_some();
    if let Some(expected) = declared_type {
        let actual = type_name(value);
        let fits = actual == expected || (expected == "number" && actual == "integer");
        if !fits {
            return Err(format!("{at}: expected {expected}, found {actual}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let fits = allowed.contains(value)
            || (mode.odata
                && value.as_str().is_some_and(|text| {
                    // OData flag enums travel as "a,b".
                    text.split(',').all(|part| {
                        allowed
                            .iter()
                            .any(|option| option.as_str() == Some(part.trim()))
                    })
                }));
        if !fits {
            return Err(format!(
                "{at}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }
    if let (Some(minimum), Some(number)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && number < minimum
    {
        return Err(format!("{at}: {number} is below the minimum {minimum}"));
    }
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    validate_at(
                        document,
                        item_schema,
                        item,
                        &format!("{at}/{index}"),
                        mode,
                        depth + 1,
                    )?;
                }
            }
            Ok(())
        }
        Value::Object(fields) if is_object => {
            let name = reference.unwrap_or_default();
            validate_object(document, schema, fields, at, mode, depth, &name)
        }
        _ => Ok(()),
    }
}

fn validate_object(
    document: &Value,
    schema: &Value,
    fields: &Map<String, Value>,
    at: &str,
    mode: Mode,
    depth: u32,
    name: &str,
) -> Result<(), String> {
    let declared = properties(document, schema);
    let mut required: Vec<String> = Vec::new();
    if mode.required {
        collect_required(document, schema, &mut required, 0);
    }
    for field in &required {
        if !fields.contains_key(field) {
            return Err(format!("{at}: required property {field:?} is missing"));
        }
    }
    let closed = mode.odata
        || resolve(document, schema).get("additionalProperties") == Some(&Value::Bool(false));
    let type_label = if name.is_empty() {
        resolve(document, schema)
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("object")
            .to_string()
    } else {
        name.to_string()
    };
    for (field, value) in fields {
        match declared.get(field.as_str()) {
            Some(property) => {
                validate_at(
                    document,
                    property,
                    value,
                    &format!("{at}/{field}"),
                    mode,
                    depth + 1,
                )?;
            }
            None if mode.odata && (field.starts_with("@odata.") || field.contains("@odata.")) => {}
            None if closed => {
                return Err(format!(
                    "{at}: the property '{field}' does not exist on type '{type_label}'"
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn collect_required(document: &Value, schema: &Value, found: &mut Vec<String>, depth: u32) {
    if depth > 32 {
        return;
    }
    let schema = resolve(document, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            collect_required(document, part, found, depth + 1);
        }
    }
    if let Some(names) = schema.get("required").and_then(Value::as_array) {
        found.extend(names.iter().filter_map(Value::as_str).map(str::to_string));
    }
}
