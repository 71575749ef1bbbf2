//! `landscape`: the legacy API as Canonical's client sends it
//! (`landscape_api/base.py`): a POST to `/api/` with every parameter in an
//! `application/x-www-form-urlencoded` body (or a GET with them in the
//! query), `action` and `version` naming an action of `schemas.json`, list
//! parameters as `name.1`, `name.2`, booleans as `true`/`false`, every
//! required parameter present and no undeclared one.

use super::{Operation, Request, Violation, query_pairs};
use serde_json::Value;

pub fn operations(document: &Value) -> Vec<String> {
    document
        .get("actions")
        .and_then(Value::as_object)
        .map(|actions| {
            actions
                .keys()
                .map(|name| format!("POST /api/ {name}"))
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(message: String) -> Violation {
    Violation::refused(400, "InvalidQuery", message)
}

pub fn check_request(document: &Value, request: &Request<'_>) -> Result<Operation, Violation> {
    let client = &document["x-client"];
    let content_type = client["content-type"].as_str().unwrap_or_default();
    let signed: Vec<&str> = client["signed-parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let pairs = match request.method {
        "POST" => {
            if request.query.is_some_and(|query| !query.is_empty()) {
                return Err(invalid(format!(
                    "POST {}: parameters travel in the query string; Canonical's client sends them as a {content_type} body",
                    request.path
                )));
            }
            if !request
                .content_type
                .is_some_and(|kind| kind.starts_with(content_type))
            {
                return Err(invalid(format!(
                    "POST {}: the body is {:?}, not {content_type}",
                    request.path, request.content_type
                )));
            }
            let body = String::from_utf8_lossy(request.body);
            query_pairs(Some(&body))
        }
        "GET" => query_pairs(request.query),
        other => {
            return Err(Violation::refused(
                405,
                "MethodNotAllowed",
                format!(
                    "{other} {}: the legacy API takes POST (or GET)",
                    request.path
                ),
            ));
        }
    };
    let value_of = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let version = document
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if value_of("version") != Some(version) {
        return Err(invalid(format!(
            "{} {}: version {:?} is not {version}",
            request.method,
            request.path,
            value_of("version")
        )));
    }
    let action_name = value_of("action").unwrap_or_default();
    let Some(action) = document.pointer(&format!("/actions/{action_name}")) else {
        return Err(invalid(format!(
            "action {action_name:?} is not an action of the description"
        )));
    };
    let found = Operation {
        id: format!("POST /api/ {action_name}"),
        method: "post".into(),
        path_key: action_name.to_string(),
    };
    let parameters: Vec<&Value> = action["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for (key, value) in &pairs {
        if signed.contains(&key.as_str()) || key == "signature" {
            continue;
        }
        let base = key.split('.').next().unwrap_or_default();
        let Some(parameter) = parameters
            .iter()
            .find(|parameter| parameter["name"].as_str() == Some(base))
        else {
            return Err(invalid(format!(
                "{}: parameter {key} is not a parameter of {action_name}",
                found.id
            )));
        };
        let kind = parameter["type"].as_str().unwrap_or_default();
        let indexed = key.len() > base.len();
        match kind {
            "list" => {
                let index = key[base.len()..]
                    .strip_prefix('.')
                    .and_then(|n| n.parse::<u32>().ok());
                if index.is_none_or(|n| n < 1) {
                    return Err(invalid(format!(
                        "{}: list parameter {key} must be sent as {base}.1, {base}.2, ...",
                        found.id
                    )));
                }
            }
            _ if indexed => {
                return Err(invalid(format!(
                    "{}: {key}: {base} is not a list",
                    found.id
                )));
            }
            "integer" if value.parse::<i64>().is_err() => {
                return Err(invalid(format!(
                    "{}: {key}={value} is not an integer",
                    found.id
                )));
            }
            "boolean" if !matches!(value.as_str(), "true" | "false") => {
                return Err(invalid(format!(
                    "{}: {key}={value} is not true or false",
                    found.id
                )));
            }
            _ => {}
        }
    }
    for parameter in &parameters {
        let name = parameter["name"].as_str().unwrap_or_default();
        let optional = parameter["optional"].as_bool().unwrap_or(false);
        let present = pairs
            .iter()
            .any(|(key, _)| key == name || key.starts_with(&format!("{name}.")));
        if !optional && !present {
            return Err(invalid(format!(
                "{}: required parameter {name} is missing",
                found.id
            )));
        }
    }
    Ok(found)
}

pub fn check_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), Violation> {
    if body.is_empty() || !(200..300).contains(&status) {
        return Ok(());
    }
    if content_type.is_some_and(|kind| kind.contains("json"))
        && serde_json::from_slice::<Value>(body).is_err()
    {
        return Err(Violation::advisory(
            "BadResponse",
            format!("a {status} answer is not JSON"),
        ));
    }
    Ok(())
}
