//! `http`: what every simulated legacy request goes through: the error body
//! `{"error": "<Code>", "message": "..."}`, the request counter, the fault
//! layer, and authentication: a valid JWT from the login, or a signature
//! version 2 that matches (access key known, method and version as
//! documented, timestamp within the tolerance, HMAC-SHA256 over the canonical
//! query).

use super::LandscapeSimulator;
use crate::planes::http::percent_decode;
use crate::planes::landscape::signature::{
    self, API_VERSION, SIGNATURE_METHOD, SIGNATURE_VERSION, TIMESTAMP_FORMAT,
};
use crate::planes::simulators::kit;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
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

/// The legacy API's words for the answers the kit gives.
struct LegacyAnswers;

impl kit::Answers for LegacyAnswers {
    fn throttled(&self, _retry_after: Option<std::time::Duration>) -> Response {
        legacy_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttled",
            "Too many requests; slow down.",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        legacy_error(
            status,
            "InternalServerError",
            "The server could not complete the request.",
        )
    }

    fn rejected(&self, status: StatusCode) -> Response {
        let code = match status.as_u16() {
            401 => "InvalidCredentials",
            403 => "Unauthorised",
            404 => "UnknownComputer",
            _ => "InvalidParameter",
        };
        legacy_error(
            status,
            code,
            "The request was refused by the simulator's injected fault.",
        )
    }

    fn shutting_down(&self) -> Response {
        legacy_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The simulator is shutting down.",
        )
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
    if access_key != state.access_key || state.tokens.credentials_revoked() {
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
        match kit::screen(crate::planes::apispec::landscape(), request, legacy_error).await {
            Ok(request) => request,
            Err(refused) => return refused,
        };
    let request = match form_as_query(request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let parameters = parameters(request.uri().query());
    let action = parameter(&parameters, "action")
        .unwrap_or_default()
        .to_string();
    let drawn = simulator.lock().faults.draw(|lost| lost.matches(&action));
    if let Some(fault) = drawn.fault {
        return kit::play(fault, &LegacyAnswers, &simulator.shutdown).await;
    }
    let bearer = kit::bearer(request.headers()).map(str::to_string);
    let refused = match bearer {
        Some(token) => {
            let state = simulator.lock();
            let valid = state.tokens.is_valid(&token) && !state.tokens.credentials_revoked();
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
    kit::lose_if_drawn(drawn.lose, response, &LegacyAnswers, &simulator.shutdown).await
}
