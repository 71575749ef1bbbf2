//! `http`: the conventions the simulated routes share: the Jamf Pro API's
//! JSON error body and the Classic API's HTML error page, XML answers, the
//! Jamf Pro API's paging (`page`, `page-size`, `totalCount`) and RSQL
//! `filter` (`==` with `*` wildcards, `=in=`, `;` and `and`), the bearer
//! check, the connection cap and the fault layer.

use super::JamfSimulator;
use super::state::LostRequest;
use crate::planes::http::{percent_decode, query_value};
use crate::planes::simulators::kit;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// A Jamf Pro API error: `{"httpStatus", "errors": [{"code", "field", "description", "id"}]}`.
pub fn api_error(
    status: StatusCode,
    code: &str,
    field: Option<&str>,
    description: &str,
) -> Response {
    let mut error = json!({"code": code, "description": description, "id": "0"});
    if let Some(field) = field {
        error["field"] = json!(field);
    }
    let body = json!({"httpStatus": status.as_u16(), "errors": [error]});
    (status, axum::Json(body)).into_response()
}

/// A Classic API error page, as Jamf's Tomcat renders it.
pub fn classic_error(status: StatusCode, message: &str) -> Response {
    let page = format!(
        "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body style=\"font-family:sans-serif;\">\n<p style=\"font-size:1.2em;font-face:sans-serif;\"><b>{}</b></p>\n<p>{message}</p>\n<p>You can get technical details <a href=\"http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html\">here</a>.<br>\nPlease continue your visit at our <a href=\"/\">home page</a>.\n</p>\n</body>\n</html>\n",
        reason(status)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        page,
    )
        .into_response()
}

/// The error shape of the API a path belongs to.
pub fn error_for(path: &str, status: StatusCode, code: &str, message: &str) -> Response {
    if path.starts_with("/JSSResource/") {
        classic_error(status, message)
    } else {
        api_error(status, code, None, message)
    }
}

pub fn classic_not_found() -> Response {
    classic_error(
        StatusCode::NOT_FOUND,
        "The server has not found anything matching the request URI",
    )
}

/// An XML answer of the Classic API.
pub fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}"),
    )
        .into_response()
}

fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |value, key| value.get(key))
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    match text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => text.to_string(),
    }
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (index, part) in parts.iter().enumerate() {
        if index == 0 {
            match rest.strip_prefix(part) {
                Some(after) => rest = after,
                None => return false,
            }
        } else if index == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Splits on `;` (and `" and "`) outside quotes.
fn clauses(filter: &str) -> Vec<String> {
    let normalized = filter.replace(" and ", ";");
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut previous = ' ';
    for character in normalized.chars() {
        if character == '"' && previous != '\\' {
            quoted = !quoted;
        }
        if character == ';' && !quoted {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(character);
        }
        previous = character;
    }
    parts.push(current);
    parts
}

/// Whether `item` passes an RSQL filter.
pub fn filter_matches(filter: &str, item: &Value) -> Result<bool, String> {
    for clause in clauses(filter) {
        let clause = clause.trim();
        if let Some((name, list)) = clause.split_once("=in=") {
            let list = list
                .trim()
                .strip_prefix('(')
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| format!("invalid =in= list in {clause:?}"))?;
            let value = field(item, name.trim()).map(as_text).unwrap_or_default();
            if !list.split(',').any(|wanted| unquote(wanted) == value) {
                return Ok(false);
            }
        } else if let Some((name, wanted)) = clause.split_once("==") {
            let value = field(item, name.trim()).map(as_text).unwrap_or_default();
            if !wildcard_match(&unquote(wanted), &value) {
                return Ok(false);
            }
        } else {
            return Err(format!("unsupported filter expression {clause:?}"));
        }
    }
    Ok(true)
}

/// Filters and pages `items` as a Jamf Pro API list: `{"totalCount", "results"}`.
pub fn page(items: Vec<Value>, raw_query: Option<&str>, default_page_size: usize) -> Response {
    let items = match query_value(raw_query, "filter") {
        Some(filter) => {
            let mut kept = Vec::new();
            for item in items {
                match filter_matches(&filter, &item) {
                    Ok(true) => kept.push(item),
                    Ok(false) => {}
                    Err(message) => {
                        return api_error(
                            StatusCode::BAD_REQUEST,
                            "INVALID_RSQL_FILTER",
                            Some("filter"),
                            &message,
                        );
                    }
                }
            }
            kept
        }
        None => items,
    };
    let number = query_value(raw_query, "page")
        .and_then(|page| page.parse::<usize>().ok())
        .unwrap_or(0);
    let size = query_value(raw_query, "page-size")
        .and_then(|size| size.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, default_page_size.max(1));
    let start = number.saturating_mul(size).min(items.len());
    let end = (start + size).min(items.len());
    axum::Json(json!({"totalCount": items.len(), "results": items[start..end]})).into_response()
}

/// Every value of a repeated query parameter (`section=GENERAL&section=...`).
pub fn query_values(raw_query: Option<&str>, name: &str) -> Vec<String> {
    raw_query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
        .collect()
}

fn lost_request_of(method: &Method, path: &str) -> Option<LostRequest> {
    match (method, path) {
        (&Method::POST, "/api/v1/packages") => Some(LostRequest::PackageCreation),
        (&Method::POST, "/JSSResource/policies/id/0") => Some(LostRequest::PolicyCreation),
        _ => None,
    }
}

/// Decrements the in-flight count however the request ends.
struct InFlight(JamfSimulator);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        self.0.in_flight.send_replace(state.in_flight);
    }
}

fn is_token_path(path: &str) -> bool {
    matches!(path, "/api/v1/oauth/token" | "/api/v1/auth/token")
}

/// Counts in-flight requests and refuses one past the cap (503), counts
/// requests, plays the next fault, checks the bearer token.
pub async fn faults_and_auth(
    State(simulator): State<JamfSimulator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    {
        let mut state = simulator.lock();
        if state.in_flight >= state.max_connections {
            state.refused_busy += 1;
            return error_for(
                &path,
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Too many concurrent connections; Jamf allows an API client no more than 5.",
            );
        }
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        simulator.in_flight.send_replace(state.in_flight);
    }
    let _in_flight = InFlight(simulator.clone());
    let balance_id = simulator.lock().balance_id.clone();
    let sticky = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|cookies| {
            cookies
                .split(';')
                .any(|pair| pair.trim() == format!("APBALANCEID={balance_id}"))
        });
    let mut response = answer(&simulator, request, next, &path, sticky).await;
    if !sticky
        && let Ok(value) = HeaderValue::from_str(&format!(
            "APBALANCEID={balance_id}; Path=/; HttpOnly; Secure"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Jamf's words for the answers the kit gives: the Classic API's error page
/// or the Jamf Pro API's error body, by the request's path.
struct JamfAnswers<'a> {
    path: &'a str,
}

impl kit::Answers for JamfAnswers<'_> {
    fn throttled(&self, _retry_after: Option<std::time::Duration>) -> Response {
        error_for(
            self.path,
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "Too many requests",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        error_for(self.path, status, "SERVER_ERROR", reason(status))
    }

    fn rejected(&self, status: StatusCode) -> Response {
        error_for(
            self.path,
            status,
            "INJECTED_FAULT",
            "Error: the request was refused by the simulator's injected fault",
        )
    }

    fn shutting_down(&self) -> Response {
        error_for(
            self.path,
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The simulator is shutting down.",
        )
    }
}

async fn answer(
    simulator: &JamfSimulator,
    request: Request,
    next: Next,
    path: &str,
    sticky: bool,
) -> Response {
    if is_token_path(path) {
        return next.run(request).await;
    }
    let latency = simulator.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let answers = JamfAnswers { path };
    let kind = lost_request_of(request.method(), path);
    let drawn = {
        let mut state = simulator.lock();
        state.sticky_requests += u64::from(sticky);
        state.faults.draw(|lost| Some(*lost) == kind)
    };
    if let Some(fault) = drawn.fault {
        return kit::play(fault, &answers, &simulator.shutdown).await;
    }
    let valid =
        kit::bearer(request.headers()).is_some_and(|token| simulator.lock().tokens.is_valid(token));
    if !valid {
        return if path.starts_with("/JSSResource/") {
            classic_error(
                StatusCode::UNAUTHORIZED,
                "The request requires user authentication",
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"httpStatus": 401, "errors": []})),
            )
                .into_response()
        };
    }
    // What Jamf itself refuses (an operation its description does not have,
    // an RSQL field it does not filter on, a package field of the wrong kind),
    // as Jamf answers it; see `planes::apispec`.
    let description = if path.starts_with("/JSSResource/") {
        crate::planes::apispec::jamf_classic()
    } else {
        crate::planes::apispec::jamf_pro()
    };
    let refuse = |status, code, message: &str| error_for(path, status, code, message);
    let request = match kit::screen(description, request, refuse).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let response = next.run(request).await;
    kit::lose_if_drawn(drawn.lose, response, &answers, &simulator.shutdown).await
}
