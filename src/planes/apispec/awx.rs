//! `awx`: AWX list filters as `awx/api/filters.py` (`FieldLookupBackend`)
//! reads them: reserved names pass, `chain__`/`or__`/`not__` prefixes and a
//! lookup suffix are stripped, the first field must be a field of the
//! model (400 "Cannot resolve keyword") and never one marked
//! `prevent_search` (403 "Filtering on extra_vars is not allowed.").

use super::{Operation, Violation};
use serde_json::Value;

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

pub fn check_filters(
    document: &Value,
    operation: &Value,
    pairs: &[(String, String)],
    found: &Operation,
) -> Result<(), Violation> {
    let filters = document
        .get("x-awx-filters")
        .cloned()
        .unwrap_or(Value::Null);
    let reserved = strings(filters.get("reserved"));
    let lookups = strings(filters.get("lookups"));
    let prefixes = strings(filters.get("prefixes"));
    for (key, value) in pairs {
        if reserved.contains(key) {
            continue;
        }
        let Some(model_name) = operation.get("x-awx-model").and_then(Value::as_str) else {
            return Err(Violation::advisory(
                "UndeclaredParameter",
                format!("{}: query parameter {key} on a detail endpoint", found.id),
            ));
        };
        let model = &filters["models"][model_name];
        let fields = strings(model.get("fields"));
        let prevented = strings(model.get("prevent_search"));
        let mut lookup = key.as_str();
        for prefix in &prefixes {
            lookup = lookup.strip_prefix(prefix.as_str()).unwrap_or(lookup);
        }
        lookup = lookup.strip_suffix("__int").unwrap_or(lookup);
        let (path, suffix) = match lookup.rsplit_once("__") {
            Some((path, suffix)) if lookups.iter().any(|known| known == suffix) => (path, suffix),
            _ => (lookup, "exact"),
        };
        let field = path.split("__").next().unwrap_or_default();
        if prevented.iter().any(|name| name == field) {
            return Err(Violation::refused(
                403,
                "permission_denied",
                format!("Filtering on {field} is not allowed."),
            ));
        }
        if !fields.iter().any(|name| name == field) {
            return Err(Violation::refused(
                400,
                "parse_error",
                format!("Cannot resolve keyword '{field}' into field."),
            ));
        }
        if suffix == "in" && value.is_empty() {
            return Err(Violation::refused(
                400,
                "parse_error",
                "cannot provide empty value for __in".to_string(),
            ));
        }
    }
    Ok(())
}
