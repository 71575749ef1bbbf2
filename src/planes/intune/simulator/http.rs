//! `http`: the Graph conventions every simulated route shares: the error body,
//! OData paging with an opaque `@odata.nextLink`, query parsing, the bearer
//! check, and the fault layer that throttles, fails, stalls or loses answers.

use super::IntuneSimulator;
use super::state::LostRequest;
use crate::planes::http::query_value;
use crate::planes::simulators::kit;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A Graph error answer: `{"error": {"code", "message", "innerError": {...}}}`.
pub fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": uuid::Uuid::new_v4().to_string(),
        }
    }});
    (status, axum::Json(body)).into_response()
}

pub fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("{what} was not found"),
    )
}

pub fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// One page of `items`, with an `@odata.nextLink` to the rest. The skip token
/// is opaque to clients; the link repeats the request's other parameters.
pub fn page(
    items: Vec<Value>,
    headers: &HeaderMap,
    path: &str,
    raw_query: Option<&str>,
    page_size: usize,
) -> Response {
    page_of(
        items.len(),
        |range| items.get(range).map(<[Value]>::to_vec).unwrap_or_default(),
        headers,
        path,
        raw_query,
        page_size,
    )
}

/// As [`page`], for a list of `total` items of which only the page asked
/// for is built (`items_in` answers the items of a range of positions).
pub fn page_of(
    total: usize,
    items_in: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
    headers: &HeaderMap,
    path: &str,
    raw_query: Option<&str>,
    page_size: usize,
) -> Response {
    let offset = query_value(raw_query, "$skiptoken")
        .and_then(|token| {
            token
                .strip_prefix("RMv1.")
                .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        })
        .unwrap_or(0);
    let top = query_value(raw_query, "$top").and_then(|top| top.parse::<usize>().ok());
    let size = top.map_or(page_size, |top| top.min(page_size)).max(1);
    let end = (offset + size).min(total);
    let value = items_in(offset..end);
    let mut body = json!({"@odata.context": format!("{path}/$metadata"), "value": value});
    if end < total {
        let query = kit::query_with(raw_query, "$skiptoken", &format!("RMv1.{end:x}"));
        body["@odata.nextLink"] = json!(kit::absolute_link(headers, path, &query));
    }
    axum::Json(body).into_response()
}

fn is_token_route(path: &str) -> bool {
    path.ends_with("/oauth2/v2.0/token")
}

fn is_blob_route(path: &str) -> bool {
    path.starts_with("/blob/")
}

fn lost_request_of(method: &Method, path: &str) -> Option<LostRequest> {
    if *method != Method::POST {
        return None;
    }
    if path.ends_with("/deviceAppManagement/mobileApps") {
        Some(LostRequest::AppCreation)
    } else if path.ends_with("/assign") {
        Some(LostRequest::Assign)
    } else {
        None
    }
}

/// Graph's words for the answers the kit gives.
struct GraphAnswers;

impl kit::Answers for GraphAnswers {
    fn throttled(&self, _retry_after: Option<std::time::Duration>) -> Response {
        graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Please retry again later.",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        graph_error(
            status,
            "UnknownError",
            "The service is temporarily unavailable.",
        )
    }

    fn rejected(&self, status: StatusCode) -> Response {
        let code = match status.as_u16() {
            403 => "Forbidden",
            404 => "ResourceNotFound",
            409 => "Conflict",
            _ => "BadRequest",
        };
        graph_error(
            status,
            code,
            "The request was refused by the simulator's injected fault.",
        )
    }

    fn shutting_down(&self) -> Response {
        graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UnknownError",
            "The simulator is shutting down.",
        )
    }
}

/// Counts requests, plays the next fault, checks the bearer token.
pub async fn faults_and_auth(
    State(simulator): State<IntuneSimulator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if is_token_route(&path) {
        return next.run(request).await;
    }
    let kind = lost_request_of(request.method(), &path);
    let drawn = simulator.lock().faults.draw(|lost| Some(*lost) == kind);
    if let Some(fault) = drawn.fault {
        tracing::debug!(?fault, path, "intune simulator plays a fault");
        return kit::play(fault, &GraphAnswers, &simulator.shutdown).await;
    }
    if !is_blob_route(&path) {
        let valid = kit::bearer(request.headers())
            .is_some_and(|token| simulator.lock().tokens.is_valid(token));
        if !valid {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
    }
    // What Graph itself refuses, as Graph answers it (400 BadRequest).
    let description = if path.starts_with("/beta/") {
        Some(crate::planes::apispec::graph_beta())
    } else if path.starts_with("/v1.0/") {
        Some(crate::planes::apispec::graph_v1())
    } else {
        None
    };
    let request = match description {
        Some(description) => match kit::screen(description, request, graph_error).await {
            Ok(request) => request,
            Err(refused) => return refused,
        },
        None => request,
    };
    let client_request_id = request.headers().get("client-request-id").cloned();
    let mut response = next.run(request).await;
    if let Some(id) = client_request_id {
        response.headers_mut().insert("client-request-id", id);
    }
    kit::lose_if_drawn(drawn.lose, response, &GraphAnswers, &simulator.shutdown).await
}
