//! `http`: what every simulated legacy request goes through: the error body
//! `{"error": "<Code>", "message": "..."}`, the request counter, the fault
//! layer, and authentication: a valid JWT from the login, or a signature
//! version 2 that matches (access key known, method and version as
//! documented, timestamp within the tolerance, HMAC-SHA256 over the canonical
//! query).

use super::LandscapeSimulator;
use super::state::SimulatorFault;
use crate::planes::http::percent_decode;
use crate::planes::landscape::signature::{
    self, API_VERSION, SIGNATURE_METHOD, SIGNATURE_VERSION, TIMESTAMP_FORMAT,
};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A legacy API error answer.
pub fn legacy_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

/// Every parameter of a raw query string, decoded, in order.
pub fn parameters(raw_query: Option<&str>) -> Vec<(String, String)> {
    raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// A POST's form body moved into the URI's query (the body emptied), so
/// that every handler and the signature check read one parameter list.
async fn form_as_query(request: Request) -> Result<Request, Response> {
    if request.method() != axum::http::Method::POST {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .map_err(|_| legacy_error(StatusCode::BAD_REQUEST, "InvalidQuery", "unreadable body"))?;
    let form = String::from_utf8_lossy(&bytes);
    let uri = format!("{}?{form}", parts.uri.path());
    parts.uri = uri.parse().map_err(|_| {
        legacy_error(
            StatusCode::BAD_REQUEST,
            "InvalidQuery",
            "unreadable form body",
        )
    })?;
    Ok(Request::from_parts(parts, axum::body::Body::empty()))
}

pub fn parameter<'a>(parameters: &'a [(String, String)], name: &str) -> Option<&'a str> {
    parameters
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn fault_response(fault: SimulatorFault) -> Option<Response> {
    match fault {
        SimulatorFault::Throttle { retry_after } => {
            let mut response = legacy_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Too many requests; slow down.",
            );
            if let Some(delay) = retry_after
                && let Ok(value) = HeaderValue::from_str(&format!("{}", delay.as_secs_f64()))
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Some(response)
        }
        SimulatorFault::ServerErrors { status, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some(legacy_error(
                status,
                "InternalServerError",
                "The server could not complete the request.",
            ))
        }
        SimulatorFault::Reject { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let code = match status.as_u16() {
                401 => "InvalidCredentials",
                403 => "Unauthorised",
                404 => "UnknownComputer",
                _ => "InvalidParameter",
            };
            Some(legacy_error(
                status,
                code,
                "The request was refused by the simulator's injected fault.",
            ))
        }
        SimulatorFault::Slow | SimulatorFault::LoseAnswer(_) => None,
    }
}

/// Checks a signed request; `None` when it passes.
fn check_signature(
    simulator: &LandscapeSimulator,
    method: &str,
    host: &str,
    path: &str,
    parameters: &[(String, String)],
) -> Option<Response> {
    let state = simulator.lock();
    let unauthorised =
        |code: &str, message: &str| Some(legacy_error(StatusCode::UNAUTHORIZED, code, message));
    let (Some(access_key), Some(given)) = (
        parameter(parameters, "access_key_id"),
        parameter(parameters, "signature"),
    ) else {
        return unauthorised(
            "AuthFailure",
            "Requests need access_key_id and signature, or a bearer token.",
        );
    };
    if access_key != state.access_key || state.credentials_revoked {
        return unauthorised("InvalidCredentials", "The access key is not valid.");
    }
    if parameter(parameters, "signature_method") != Some(SIGNATURE_METHOD)
        || parameter(parameters, "signature_version") != Some(SIGNATURE_VERSION)
        || parameter(parameters, "version") != Some(API_VERSION)
    {
        return Some(legacy_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "signature_method must be HmacSHA256, signature_version 2, version 2011-08-01.",
        ));
    }
    let timestamp = parameter(parameters, "timestamp")
        .and_then(|text| chrono::NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT).ok())
        .map(|naive| naive.and_utc());
    let fresh =
        timestamp.is_some_and(|at| (chrono::Utc::now() - at).abs() <= state.timestamp_tolerance);
    if !fresh {
        return unauthorised(
            "AuthFailure",
            "The timestamp is missing, malformed or too far from the server's clock.",
        );
    }
    let to_sign = signature::string_to_sign(method, host, path, parameters);
    if !signature::verify(state.secret_key.expose(), &to_sign, given) {
        return unauthorised(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    None
}

/// Counts requests, plays the next fault, checks authentication, and holds
/// the answer of a request whose answer is to be lost.
pub async fn faults_and_auth(
    State(simulator): State<LandscapeSimulator>,
    request: Request,
    next: Next,
) -> Response {
    // What the legacy API refuses (parameters in the query string of a POST,
    // an undeclared or missing parameter), refused as it would be; see
    // `planes::apispec`. Canonical's client sends a POST's parameters as a
    // form body: the handlers then read them as they read a GET's query.
    let request =
        match crate::planes::apispec::screen(crate::planes::apispec::landscape(), request).await {
            Ok(request) => request,
            Err(violation) => {
                let status = StatusCode::from_u16(violation.refused_with.unwrap_or(400))
                    .unwrap_or(StatusCode::BAD_REQUEST);
                return legacy_error(status, violation.code, &violation.message);
            }
        };
    let request = match form_as_query(request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let parameters = parameters(request.uri().query());
    let action = parameter(&parameters, "action")
        .unwrap_or_default()
        .to_string();
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
        let lose = match state.lost_answers.front() {
            Some(kind) if fault.is_none() && kind.matches(&action) => {
                state.lost_answers.pop_front()
            }
            _ => None,
        };
        (fault, lose)
    };
    if let Some(fault) = fault {
        return match fault_response(fault) {
            Some(response) => response,
            None => {
                simulator.held_until_shutdown().await;
                legacy_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "The simulator is shutting down.",
                )
            }
        };
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_string);
    let refused = match bearer {
        Some(token) => {
            let state = simulator.lock();
            let valid = state.tokens.get(&token) == Some(&true) && !state.credentials_revoked;
            (!valid).then(|| {
                legacy_error(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorised",
                    "The token is invalid or has expired; log in again.",
                )
            })
        }
        None => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .unwrap_or_default()
                .to_string();
            check_signature(
                &simulator,
                request.method().as_str(),
                &host,
                request.uri().path(),
                &parameters,
            )
        }
    };
    if let Some(response) = refused {
        return response;
    }
    let response = next.run(request).await;
    if lose.is_some() && response.status().is_success() {
        simulator.held_until_shutdown().await;
        return legacy_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The simulator is shutting down.",
        );
    }
    response
}
