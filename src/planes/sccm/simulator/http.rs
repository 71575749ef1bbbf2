//! `http`: the AdminService conventions the simulated routes share: the OData
//! error body, `$filter` (the `eq` and `startswith` forms clients use), paging
//! by `$top`/`$skip` with or without `@odata.nextLink`, the bearer check, and
//! the fault layer.

use super::SccmSimulator;
use super::state::{LostRequest, Paging};
use crate::planes::http::query_value;
use crate::planes::simulators::kit;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An OData error answer: `{"error": {"code", "message"}}`.
pub fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

pub fn not_found(what: &str) -> Response {
    odata_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} was not found"),
    )
}

pub fn bad_request(message: &str) -> Response {
    odata_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// A WMI failure as the provider reports it (the status and text are [U]).
pub fn wmi_error(message: &str) -> Response {
    odata_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        &format!("WMI error: Generic failure. {message}"),
    )
}

fn literal(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return Some(Value::String(inner.replace("''", "'")));
    }
    match text {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        number => number.parse::<i64>().ok().map(Value::from),
    }
}

/// The integer a `$filter` compares `property` to with `eq` (`AssignmentID
/// eq 16777217`), if a top-level clause does: the simulator looks the rows
/// up by it instead of building every row of the class.
pub fn integer_eq(raw_query: Option<&str>, property: &str) -> Option<i64> {
    let filter = query_value(raw_query, "$filter")?;
    filter.split(" and ").find_map(|clause| {
        let (left, right) = clause.trim().split_once(" eq ")?;
        (left.trim() == property)
            .then(|| literal(right))
            .flatten()?
            .as_i64()
    })
}

/// Whether `item` passes `filter`: clauses `Property eq literal` and
/// `startswith(Property,'text') eq true`, joined by `and`.
pub fn filter_matches(filter: &str, item: &Value) -> Result<bool, String> {
    let mut matches = true;
    for clause in filter.split(" and ") {
        let clause = clause.trim();
        let (left, right) = clause
            .split_once(" eq ")
            .ok_or_else(|| format!("unsupported filter clause {clause:?}"))?;
        let wanted = literal(right).ok_or_else(|| format!("unsupported literal in {clause:?}"))?;
        if let Some(arguments) = left
            .strip_prefix("startswith(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            let (property, prefix) = arguments
                .split_once(',')
                .ok_or_else(|| format!("unsupported filter clause {clause:?}"))?;
            let Some(Value::String(prefix)) = literal(prefix) else {
                return Err(format!("unsupported filter clause {clause:?}"));
            };
            let starts = item
                .get(property.trim())
                .and_then(Value::as_str)
                .is_some_and(|value| value.starts_with(&prefix));
            matches &= Value::Bool(starts) == wanted;
        } else {
            matches &= item.get(left.trim()) == Some(&wanted);
        }
    }
    Ok(matches)
}

/// Filters and pages `items` as the request asks.
pub fn list(
    items: Vec<Value>,
    headers: &HeaderMap,
    path: &str,
    raw_query: Option<&str>,
    page_size: usize,
    paging: Paging,
) -> Response {
    let items = match query_value(raw_query, "$filter") {
        Some(filter) => {
            let mut kept = Vec::new();
            for item in items {
                match filter_matches(&filter, &item) {
                    Ok(true) => kept.push(item),
                    Ok(false) => {}
                    Err(message) => return bad_request(&message),
                }
            }
            kept
        }
        None => items,
    };
    let skip = query_value(raw_query, "$skip")
        .and_then(|skip| skip.parse::<usize>().ok())
        .unwrap_or(0);
    let top = query_value(raw_query, "$top").and_then(|top| top.parse::<usize>().ok());
    let size = top.map_or(page_size, |top| top.min(page_size)).max(1);
    let end = (skip + size).min(items.len());
    let value: Vec<Value> = items
        .get(skip..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let class = path.rsplit('/').next().unwrap_or_default();
    let mut body =
        json!({"@odata.context": format!("/AdminService/wmi/$metadata#{class}"), "value": value});
    let wanted_more = top.is_none_or(|top| top > size);
    if paging == Paging::NextLink && end < items.len() && wanted_more {
        let query = kit::query_with(raw_query, "$skip", &end.to_string());
        body["@odata.nextLink"] = json!(kit::absolute_link(headers, path, &query));
    }
    axum::Json(body).into_response()
}

fn lost_request_of(method: &Method, path: &str) -> Option<LostRequest> {
    match (method, path) {
        (&Method::POST, "/AdminService/wmi/SMS_Application") => {
            Some(LostRequest::ApplicationCreation)
        }
        (&Method::POST, "/AdminService/wmi/SMS_ApplicationAssignment") => {
            Some(LostRequest::AssignmentCreation)
        }
        _ => None,
    }
}

/// The AdminService's words for the answers the kit gives.
struct AdminServiceAnswers;

impl kit::Answers for AdminServiceAnswers {
    fn throttled(&self, _retry_after: Option<std::time::Duration>) -> Response {
        odata_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return wmi_error("The SMS Provider reported an error.");
        }
        odata_error(
            status,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        )
    }

    fn rejected(&self, status: StatusCode) -> Response {
        odata_error(
            status,
            "InjectedFault",
            "The request was refused by the simulator's injected fault.",
        )
    }

    fn shutting_down(&self) -> Response {
        odata_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The simulator is shutting down.",
        )
    }
}

/// Counts requests, plays the next fault, checks the bearer token.
pub async fn faults_and_auth(
    State(simulator): State<SccmSimulator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path.ends_with("/oauth2/v2.0/token") {
        return next.run(request).await;
    }
    let kind = lost_request_of(request.method(), &path);
    let drawn = simulator.lock().faults.draw(|lost| Some(*lost) == kind);
    if let Some(fault) = drawn.fault {
        return kit::play(fault, &AdminServiceAnswers, &simulator.shutdown).await;
    }
    let valid =
        kit::bearer(request.headers()).is_some_and(|token| simulator.lock().tokens.is_valid(token));
    if !valid {
        return odata_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Authorization has been denied for this request.",
        );
    }
    let response = next.run(request).await;
    kit::lose_if_drawn(
        drawn.lose,
        response,
        &AdminServiceAnswers,
        &simulator.shutdown,
    )
    .await
}
