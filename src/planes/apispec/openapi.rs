//! `openapi`: matching a request to an operation of an OpenAPI description
//! (path template, method, `deprecated`), its query parameters and JSON
//! body, and an answer to the operation's declared responses.

use super::schema::{self, Mode};
use super::{Description, Dialect, Operation, Request, Violation, awx, odata, query_pairs};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

pub fn operations(document: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(Value::Object(paths)) = document.get("paths") {
        for (path, item) in paths {
            for method in METHODS {
                if item.get(method).is_some() {
                    found.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    found
}

/// The path template that matches `path` best (most literal segments).
fn match_path<'a>(document: &'a Value, path: &str) -> Option<&'a str> {
    let Value::Object(paths) = document.get("paths")? else {
        return None;
    };
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&str, usize)> = None;
    for template in paths.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let fits = parts.iter().zip(&segments).all(|(part, segment)| {
            if part.starts_with('{') && part.ends_with('}') {
                !segment.is_empty()
            } else if part == segment {
                literal += 1;
                true
            } else {
                false
            }
        });
        if fits && best.is_none_or(|(_, count)| literal > count) {
            best = Some((template, literal));
        }
    }
    best.map(|(template, _)| template)
}

fn mode_of(description: &Description) -> Mode {
    Mode {
        odata: description.dialect == Dialect::OData,
        required: true,
    }
}

fn not_found(description: &Description, message: String) -> Violation {
    match description.dialect {
        Dialect::OData => Violation::refused(400, "BadRequest", message),
        _ => Violation::refused(404, "NotFound", message),
    }
}

pub fn check_request(
    description: &Description,
    request: &Request<'_>,
) -> Result<Operation, Violation> {
    let document = &description.document;
    let relative = request
        .path
        .strip_prefix(&description.base_path)
        .unwrap_or(request.path);
    let Some(path_key) = match_path(document, relative) else {
        return Err(not_found(
            description,
            format!(
                "{} {} is not an operation of {} (version {}): no such path",
                request.method, request.path, description.name, description.version
            ),
        ));
    };
    let method = request.method.to_ascii_lowercase();
    let item = &document["paths"][path_key];
    let Some(operation) = item.get(&method) else {
        return Err(Violation::refused(
            405,
            "MethodNotAllowed",
            format!(
                "{} {path_key} is not an operation of {} (version {}): the path has no {}",
                request.method, description.name, description.version, request.method
            ),
        ));
    };
    let found = Operation {
        id: format!("{} {path_key}", request.method.to_ascii_uppercase()),
        method: method.clone(),
        path_key: path_key.to_string(),
    };
    check_query(description, item, operation, request, &found)?;
    check_body(description, operation, request, &found)?;
    if operation.get("deprecated").and_then(Value::as_bool) == Some(true) {
        let note = operation
            .pointer("/x-ms-deprecation/description")
            .and_then(Value::as_str)
            .unwrap_or("deprecated");
        return Err(Violation::advisory(
            "Deprecated",
            format!("{} is deprecated in {}: {note}", found.id, description.name),
        ));
    }
    Ok(found)
}

fn declared_parameters<'a>(
    item: &'a Value,
    operation: &'a Value,
    document: &'a Value,
) -> Vec<&'a Value> {
    let mut found = Vec::new();
    for source in [item.get("parameters"), operation.get("parameters")] {
        if let Some(Value::Array(parameters)) = source {
            for parameter in parameters {
                let parameter = schema::resolve(document, parameter);
                if parameter.get("in").and_then(Value::as_str) == Some("query") {
                    found.push(parameter);
                }
            }
        }
    }
    found
}

fn check_query(
    description: &Description,
    item: &Value,
    operation: &Value,
    request: &Request<'_>,
    found: &Operation,
) -> Result<(), Violation> {
    let document = &description.document;
    let declared = declared_parameters(item, operation, document);
    let pairs = query_pairs(request.query);
    if description.dialect == Dialect::Awx {
        awx::check_filters(document, operation, &pairs, found)?;
    }
    for (name, value) in &pairs {
        let parameter = declared
            .iter()
            .find(|parameter| parameter.get("name").and_then(Value::as_str) == Some(name));
        let Some(parameter) = parameter else {
            match description.dialect {
                Dialect::Awx => continue, // filters, checked above
                Dialect::OData if name.starts_with('$') => {
                    return Err(Violation::refused(
                        400,
                        "BadRequest",
                        format!("{}: query option {name} is not supported here", found.id),
                    ));
                }
                _ => {
                    return Err(Violation::advisory(
                        "UndeclaredParameter",
                        format!("{}: query parameter {name} is not declared", found.id),
                    ));
                }
            }
        };
        let schema_of = parameter.get("schema").cloned().unwrap_or(Value::Null);
        if description.dialect == Dialect::OData && name == "$select" {
            odata::check_select(document, operation, value, found)?;
            continue;
        }
        if description.dialect == Dialect::OData && name == "$filter" {
            odata::check_filter(document, operation, value, found)?;
            continue;
        }
        check_parameter_value(document, &schema_of, name, value, found)?;
    }
    for parameter in &declared {
        if parameter.get("required").and_then(Value::as_bool) == Some(true) {
            let name = parameter
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !pairs.iter().any(|(key, _)| key == name) {
                return Err(Violation::refused(
                    400,
                    "BadRequest",
                    format!("{}: required query parameter {name} is missing", found.id),
                ));
            }
        }
    }
    Ok(())
}

fn check_parameter_value(
    document: &Value,
    parameter_schema: &Value,
    name: &str,
    value: &str,
    found: &Operation,
) -> Result<(), Violation> {
    let parameter_schema = schema::resolve(document, parameter_schema);
    if let Some(fields) = parameter_schema
        .get("x-rsql-fields")
        .and_then(Value::as_array)
    {
        return check_rsql(fields, name, value, found);
    }
    if let Some(fields) = parameter_schema
        .pointer("/x-sort-fields")
        .and_then(Value::as_array)
    {
        for term in value.split(',') {
            let field = term.split(':').next().unwrap_or_default();
            if !fields.iter().any(|known| known.as_str() == Some(field)) {
                return Err(Violation::refused(
                    400,
                    "INVALID_FIELD",
                    format!(
                        "{}: {name}={value}: {field} is not a sortable field",
                        found.id
                    ),
                ));
            }
        }
        return Ok(());
    }
    let typed = |text: &str, item: &Value| -> Value {
        match schema::resolve(document, item)
            .get("type")
            .and_then(Value::as_str)
        {
            Some("integer") => text
                .parse::<i64>()
                .map_or_else(|_| Value::String(text.into()), Value::from),
            Some("number") => text
                .parse::<f64>()
                .map_or_else(|_| Value::String(text.into()), Value::from),
            Some("boolean") => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => Value::String(other.into()),
            },
            _ => Value::String(text.into()),
        }
    };
    let candidate = if parameter_schema.get("type").and_then(Value::as_str) == Some("array") {
        let item = parameter_schema
            .get("items")
            .cloned()
            .unwrap_or(Value::Null);
        Value::Array(value.split(',').map(|part| typed(part, &item)).collect())
    } else {
        typed(value, parameter_schema)
    };
    schema::validate(
        document,
        parameter_schema,
        &candidate,
        name,
        Mode {
            odata: false,
            required: true,
        },
    )
    .map_err(|reason| {
        Violation::refused(
            400,
            "BadRequest",
            format!("{}: query parameter {reason}", found.id),
        )
    })
}

/// An RSQL filter (`notes=="x";id=in=(1,2)`): every field it compares must
/// be one the operation lets a client filter on.
fn check_rsql(
    fields: &[Value],
    name: &str,
    value: &str,
    found: &Operation,
) -> Result<(), Violation> {
    const OPERATORS: [&str; 10] = [
        "==", "!=", "=in=", "=out=", "=lt=", "=le=", "=gt=", "=ge=", "<", ">",
    ];
    let mut rest = value;
    while !rest.is_empty() {
        let Some((position, operator)) = OPERATORS
            .iter()
            .filter_map(|operator| rest.find(operator).map(|position| (position, *operator)))
            .min_by_key(|(position, _)| *position)
        else {
            break;
        };
        let field = rest[..position]
            .trim_start_matches(['(', ')', ';', ',', ' '])
            .trim_start_matches("and ")
            .trim_start_matches("or ")
            .trim();
        if !field.is_empty() && !fields.iter().any(|known| known.as_str() == Some(field)) {
            return Err(Violation::refused(
                400,
                "INVALID_FIELD",
                format!(
                    "{}: {name}={value}: {field} is not a filterable field",
                    found.id
                ),
            ));
        }
        // Skip the compared value: a quoted string, a (list), or a word.
        let after = &rest[position + operator.len()..];
        let skip = if let Some(quoted) = after.strip_prefix('"') {
            quoted.find('"').map_or(after.len(), |end| end + 2)
        } else if after.starts_with('(') {
            after.find(')').map_or(after.len(), |end| end + 1)
        } else {
            after.find([';', ',', ')']).unwrap_or(after.len())
        };
        rest = &after[skip.min(after.len())..];
    }
    Ok(())
}

fn check_body(
    description: &Description,
    operation: &Value,
    request: &Request<'_>,
    found: &Operation,
) -> Result<(), Violation> {
    let document = &description.document;
    let request_body = operation
        .get("requestBody")
        .map(|body| schema::resolve(document, body));
    if request.body.is_empty() {
        if request_body
            .and_then(|body| body.get("required"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Err(Violation::refused(
                400,
                "BadRequest",
                format!("{}: the request body is required", found.id),
            ));
        }
        return Ok(());
    }
    let Some(request_body) = request_body else {
        return Err(Violation::refused(
            400,
            "BadRequest",
            format!("{}: the operation takes no request body", found.id),
        ));
    };
    let Some(Value::Object(contents)) = request_body.get("content") else {
        return Ok(());
    };
    let Some((_, media)) = contents
        .iter()
        .find(|(media_type, _)| media_type.contains("json"))
    else {
        return Ok(());
    };
    let value: Value = serde_json::from_slice(request.body).map_err(|error| {
        Violation::refused(
            400,
            "BadRequest",
            format!("{}: the body is not JSON: {error}", found.id),
        )
    })?;
    let Some(body_schema) = media.get("schema") else {
        return Ok(());
    };
    schema::validate(document, body_schema, &value, "body", mode_of(description))
        .map_err(|reason| Violation::refused(400, "BadRequest", format!("{}: {reason}", found.id)))
}

fn response_for(operation: &Value, status: u16) -> Option<&Value> {
    let responses = operation.get("responses")?;
    let exact = status.to_string();
    let class = format!("{}XX", status / 100);
    responses
        .get(&exact)
        .or_else(|| responses.get(&class))
        .or_else(|| responses.get(class.to_lowercase()))
        .or_else(|| responses.get("default"))
}

pub fn check_response(
    description: &Description,
    operation: &Operation,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), Violation> {
    let document = &description.document;
    let Some(definition) = document.pointer(&format!(
        "/paths/{}/{}",
        schema::pointer_escape(&operation.path_key),
        operation.method
    )) else {
        return Ok(());
    };
    // Throttling and outages come from any front end, described or not.
    if matches!(status, 429 | 500 | 502 | 503 | 504) && response_for(definition, status).is_none() {
        return Ok(());
    }
    let Some(response) =
        response_for(definition, status).map(|response| schema::resolve(document, response))
    else {
        return Err(Violation::advisory(
            "UndeclaredStatus",
            format!(
                "{}: status {status} is not a declared response",
                operation.id
            ),
        ));
    };
    if body.is_empty() {
        return Ok(());
    }
    let Some(Value::Object(contents)) = response.get("content") else {
        return Ok(());
    };
    let is_json = content_type.is_none_or(|kind| kind.contains("json"));
    let Some((_, media)) = contents
        .iter()
        .find(|(media_type, _)| media_type.contains("json"))
    else {
        return Ok(());
    };
    if !is_json {
        return Ok(());
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        Violation::advisory(
            "BadResponse",
            format!("{}: the {status} answer is not JSON: {error}", operation.id),
        )
    })?;
    let Some(body_schema) = media.get("schema") else {
        return Ok(());
    };
    schema::validate(
        document,
        body_schema,
        &value,
        "response",
        mode_of(description),
    )
    .map_err(|reason| {
        Violation::advisory(
            "BadResponse",
            format!(
                "{}: the {status} answer does not fit the description: {reason}",
                operation.id
            ),
        )
    })
}
