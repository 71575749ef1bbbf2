//! `odata`: the query options of an OData service (Microsoft Graph) checked
//! against the entity type an operation answers: `$select` and `$filter`
//! may name its declared properties, or a derived type's through a cast
//! segment (`microsoft.graph.mobileLobApp/committedContentVersion`). Graph
//! answers 400 for anything else ("Could not find a property named ...").

use super::schema::{self, pointer_escape};
use super::{Operation, Violation};
use serde_json::Value;

/// The entity type (component name) an operation answers: the item type of
/// a collection (`value`), or the type itself.
pub fn entity_type(document: &Value, operation: &Value) -> Option<String> {
    let responses = operation.get("responses")?;
    let success = responses
        .get("200")
        .or_else(|| responses.get("2XX"))
        .or_else(|| responses.get("201"))?;
    let success = schema::resolve(document, success);
    let media = success.get("content")?.get("application/json")?;
    let schema_ref = media.get("schema")?;
    let name = schema::ref_name(schema_ref)?.to_string();
    let properties = schema::properties(document, schema::resolve(document, schema_ref));
    if let Some(value) = properties.get("value")
        && let Some(items) = value.get("items")
        && let Some(item) = schema::ref_name(items)
    {
        return Some(item.to_string());
    }
    Some(name)
}

/// Whether the component `type_name` declares `property` (its own or
/// inherited through `allOf`).
fn declares(document: &Value, type_name: &str, property: &str) -> bool {
    document
        .pointer(&format!(
            "/components/schemas/{}",
            pointer_escape(type_name)
        ))
        .is_some_and(|component| schema::properties(document, component).contains_key(property))
}

fn short(type_name: &str) -> &str {
    type_name.rsplit('.').next().unwrap_or(type_name)
}

/// Whether `path` (`notes`, `microsoft.graph.mobileLobApp/committedContentVersion`,
/// `target/groupId`) names a property of `entity`.
fn resolves(document: &Value, entity: &str, path: &str) -> Result<(), String> {
    let mut segments = path.split('/');
    let first = segments.next().unwrap_or_default();
    let (type_name, property) = if first.contains('.') {
        let cast = first.to_string();
        if document
            .pointer(&format!("/components/schemas/{}", pointer_escape(&cast)))
            .is_none()
        {
            return Err(format!("the type '{cast}' is not declared"));
        }
        if !schema::derives_from(document, &cast, entity) {
            return Err(format!("the type '{cast}' does not derive from '{entity}'"));
        }
        let Some(property) = segments.next() else {
            return Ok(()); // a bare cast
        };
        (cast, property)
    } else {
        (entity.to_string(), first)
    };
    if declares(document, &type_name, property) {
        Ok(())
    } else {
        Err(format!(
            "Could not find a property named '{property}' on type '{type_name}'"
        ))
    }
}

pub fn check_select(
    document: &Value,
    operation: &Value,
    value: &str,
    found: &Operation,
) -> Result<(), Violation> {
    let Some(entity) = entity_type(document, operation) else {
        return Ok(());
    };
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        resolves(document, &entity, item).map_err(|reason| {
            Violation::refused(
                400,
                "BadRequest",
                format!(
                    "{}: $select={item}: {reason} ({} declares it on a derived type only if it is cast, e.g. microsoft.graph.<derivedType>/{item})",
                    found.id,
                    short(&entity)
                ),
            )
        })?;
    }
    Ok(())
}

const KEYWORDS: [&str; 20] = [
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "gt",
    "ge",
    "lt",
    "le",
    "in",
    "has",
    "true",
    "false",
    "null",
    "isof",
    "startswith",
    "endswith",
    "contains",
    "any",
    "all",
];

/// The property paths a `$filter` names (string literals, numbers, GUIDs and
/// keywords left out).
pub fn filter_properties(filter: &str) -> Vec<String> {
    let mut without_literals = String::with_capacity(filter.len());
    let mut in_string = false;
    let mut characters = filter.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '\'' {
            if in_string && characters.peek() == Some(&'\'') {
                characters.next();
                continue;
            }
            in_string = !in_string;
            without_literals.push(' ');
            continue;
        }
        if !in_string {
            without_literals.push(character);
        }
    }
    without_literals
        .split(|character: char| character.is_whitespace() || "(),".contains(character))
        .filter(|token| !token.is_empty())
        .filter(|token| !KEYWORDS.contains(&token.to_ascii_lowercase().as_str()))
        .filter(|token| token.starts_with(|first: char| first.is_ascii_alphabetic()))
        .filter(|token| !token.contains(':')) // lambda variables (a:a/x) left alone
        .map(str::to_string)
        .collect()
}

pub fn check_filter(
    document: &Value,
    operation: &Value,
    value: &str,
    found: &Operation,
) -> Result<(), Violation> {
    let Some(entity) = entity_type(document, operation) else {
        return Ok(());
    };
    for property in filter_properties(value) {
        // Only the first segment (and a cast) is checked: deeper segments
        // belong to complex types the extract may not expand.
        let head: String = {
            let mut parts = property.split('/');
            let first = parts.next().unwrap_or_default();
            if first.contains('.') {
                match parts.next() {
                    Some(second) => format!("{first}/{second}"),
                    None => first.to_string(),
                }
            } else {
                first.to_string()
            }
        };
        resolves(document, &entity, &head).map_err(|reason| {
            Violation::refused(
                400,
                "BadRequest",
                format!("{}: $filter={value}: {reason}", found.id),
            )
        })?;
    }
    Ok(())
}
