//! `http`: what every HTTP connector shares: the contract's mapping of status
//! codes and transport failures to [`ConnectorError`]s, `Retry-After` in both
//! of its forms, and descriptions of a request that never carry a query string
//! (a SAS signature, a filter) or a host.

use crate::planes::{ConnectorError, ErrorClass, ErrorCode};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// The path of a URL without its host and query, for messages and logs.
pub fn describe(target: &str) -> String {
    let without_query = target.split('?').next().unwrap_or_default();
    match without_query.find("://") {
        Some(scheme_end) => {
            let after_host = without_query[scheme_end + 3..]
                .find('/')
                .map(|slash| &without_query[scheme_end + 3 + slash..]);
            after_host.unwrap_or("/").to_string()
        }
        None => without_query.to_string(),
    }
}

/// A request that got no HTTP answer: `timeout` when the client gave up,
/// `service_unavailable` when the connection failed. The plane may have
/// applied it.
pub fn transport_error(
    plane: &str,
    method: &Method,
    target: &str,
    error: &reqwest::Error,
) -> ConnectorError {
    let operation = format!("{method} {}", describe(target));
    super::http_send::transport_failure(plane, &operation, error)
}

/// `Retry-After` as seconds (possibly fractional) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The answer's `Retry-After`, if it has a readable one.
pub fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after)
}

/// The contract's HTTP mapping (`docs/connectors.md` section 3).
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        429 => ErrorCode::RateLimit,
        401 => ErrorCode::InvalidCredentials,
        403 => ErrorCode::Unauthorized,
        404 => ErrorCode::ResourceNotFound,
        408 => ErrorCode::Timeout,
        400 | 409 | 412 | 422 => ErrorCode::InvalidRequest,
        _ => ErrorCode::ServiceUnavailable,
    }
}

/// `retry_after` is carried only on transient errors.
pub fn transient_retry_after(code: ErrorCode, retry_after: Option<Duration>) -> Option<Duration> {
    retry_after.filter(|_| code.class() == ErrorClass::Transient)
}

fn truncate(text: &str, limit: usize) -> &str {
    match text.char_indices().nth(limit) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// The code and message of an OData error body, `{"error": {"code",
/// "message", ...}}` (Graph and AdminService alike), shortened.
pub fn odata_error_text(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let code = error
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str);
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {}", truncate(message, 300)),
        (Some(code), None) => code.to_string(),
        (None, Some(message)) => truncate(message, 300).to_string(),
        _ => "no error body".to_string(),
    }
}

/// Percent-encodes a query value (OData filters hold spaces and quotes).
pub fn encode_query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// An OData string literal: single quotes doubled.
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` and `+` in a query component (for simulators).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                match (hex_value(bytes[index + 1]), hex_value(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        decoded.push(high * 16 + low);
                        index += 3;
                        continue;
                    }
                    _ => decoded.push(b'%'),
                }
            }
            b'+' => decoded.push(b' '),
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The decoded value of a query parameter (`$filter`, `$skip`, ...), for simulators.
pub fn query_value(raw_query: Option<&str>, name: &str) -> Option<String> {
    raw_query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}
