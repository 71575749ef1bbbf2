//! `http`: the Graph conventions every simulated route shares: the error body,
//! OData paging with an opaque `@odata.nextLink`, query parsing, the bearer
//! check, and the fault layer that throttles, fails, stalls or loses answers.

use super::IntuneSimulator;
use super::state::{LostRequest, SimulatorFault};
use crate::planes::http::{percent_decode, query_value};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
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
    let offset = query_value(raw_query, "$skiptoken")
        .and_then(|token| {
            token
                .strip_prefix("RMv1.")
                .and_then(|hex| usize::from_str_radix(hex, 16).ok())
        })
        .unwrap_or(0);
    let top = query_value(raw_query, "$top").and_then(|top| top.parse::<usize>().ok());
    let size = top.map_or(page_size, |top| top.min(page_size)).max(1);
    let end = (offset + size).min(items.len());
    let value: Vec<Value> = items
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut body = json!({"@odata.context": format!("{path}/$metadata"), "value": value});
    if end < items.len() {
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("127.0.0.1");
        let kept: Vec<&str> = raw_query
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let key = percent_decode(pair.split('=').next().unwrap_or_default());
                key != "$skiptoken"
            })
            .collect();
        let mut query = kept.join("&");
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("$skiptoken=RMv1.{end:x}"));
        body["@odata.nextLink"] = json!(format!("http://{host}{path}?{query}"));
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
    let (fault, lose) = {
        let mut state = simulator.lock();
        state.api_requests += 1;
        let fault = match state.faults.front_mut() {
            Some(SimulatorFault::ServerErrors { status, count }) if *count > 1 => {
                *count -= 1;
                Some(SimulatorFault::ServerErrors {
                    status: *status,
                    count: 1,
                })
            }
            Some(_) => state.faults.pop_front(),
            None => None,
        };
        let lose = match lost_request_of(request.method(), &path) {
            Some(kind) if fault.is_none() && state.lost_answers.front() == Some(&kind) => {
                state.lost_answers.pop_front()
            }
            _ => None,
        };
        (fault, lose)
    };
    if let Some(fault) = fault {
        tracing::debug!(?fault, path, "intune simulator plays a fault");
        return match fault {
            SimulatorFault::Throttle { retry_after } => {
                let mut response = graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Please retry again later.",
                );
                if let Some(delay) = retry_after
                    && let Ok(value) = HeaderValue::from_str(&format!("{}", delay.as_secs_f64()))
                {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            SimulatorFault::ServerErrors { status, .. } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                graph_error(
                    status,
                    "UnknownError",
                    "The service is temporarily unavailable.",
                )
            }
            SimulatorFault::Reject { status } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
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
            SimulatorFault::Slow | SimulatorFault::LoseAnswer(_) => {
                simulator.held_until_shutdown().await;
                graph_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UnknownError",
                    "The simulator is shutting down.",
                )
            }
        };
    }
    if !is_blob_route(&path) {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let valid = token.is_some_and(|token| simulator.lock().tokens.get(token) == Some(&true));
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
        Some(description) => match crate::planes::apispec::screen(description, request).await {
            Ok(request) => request,
            Err(violation) => {
                let status = StatusCode::from_u16(violation.refused_with.unwrap_or(400))
                    .unwrap_or(StatusCode::BAD_REQUEST);
                return graph_error(status, violation.code, &violation.message);
            }
        },
        None => request,
    };
    let client_request_id = request.headers().get("client-request-id").cloned();
    let mut response = next.run(request).await;
    if lose.is_some() && response.status().is_success() {
        tracing::debug!(
            path,
            "intune simulator applied a request and loses its answer"
        );
        simulator.held_until_shutdown().await;
        return graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UnknownError",
            "The simulator is shutting down.",
        );
    }
    if let Some(id) = client_request_id {
        response.headers_mut().insert("client-request-id", id);
    }
    response
}
