//! `signature`: the legacy API's request signature (version 2, HmacSHA256),
//! shared by the client that signs and the simulator that checks.
//!
//! StringToSign is `VERB\nlowercase-host[:port]\n<path>\n<canonical query>`;
//! the canonical query is every parameter but `signature`, sorted by name,
//! names and values percent-encoded as RFC 3986 says (unreserved
//! `A-Za-z0-9-_.~` untouched, space as `%20`). The signature is the base64 of
//! the HMAC-SHA256 of StringToSign keyed with the secret key.

use crate::planes::http::encode_query_value;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The API version every legacy request names.
pub const API_VERSION: &str = "2011-08-01";
/// `signature_method`.
pub const SIGNATURE_METHOD: &str = "HmacSHA256";
/// `signature_version`.
pub const SIGNATURE_VERSION: &str = "2";
/// How `timestamp` is written: UTC, seconds, `Z`.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// The parameters sorted by name (then value), percent-encoded, joined by `&`.
pub fn canonical_query(parameters: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = parameters
        .iter()
        .filter(|(name, _)| name != "signature")
        .collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(name, value)| format!("{}={}", encode_query_value(name), encode_query_value(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `VERB\nhost\npath\ncanonical query`, the host lower-cased.
pub fn string_to_sign(
    method: &str,
    host: &str,
    path: &str,
    parameters: &[(String, String)],
) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        method.to_uppercase(),
        host.to_lowercase(),
        path,
        canonical_query(parameters)
    )
}

/// The base64 HMAC-SHA256 of `string_to_sign` under `secret_key`.
pub fn sign(secret_key: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is the one `secret_key` makes for the request, compared
/// in constant time.
pub fn verify(secret_key: &str, string_to_sign: &str, signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}
