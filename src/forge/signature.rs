//! Webhook signatures: HMAC-SHA256 of the raw request body under the shared
//! secret, sent by GitHub as `X-Hub-Signature-256: sha256=<hex>`.
//!
//! Verification runs over the bytes exactly as received, before anything
//! parses them, and compares in constant time (`hmac`'s `verify_slice`), so
//! the time a forged request takes says nothing about the right signature.

use super::secret::WebhookSecret;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The header GitHub puts the signature in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-Hub-Signature-256 header; configure the webhook with a secret")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body; check the webhook secret")]
    Mismatch,
}

fn mac(secret: &WebhookSecret) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC accepts keys of any length")
}

/// Checks `header` (the `X-Hub-Signature-256` value, if any) against `body`.
pub fn verify(
    secret: &WebhookSecret,
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digits = header
        .strip_prefix(PREFIX.as_bytes())
        .ok_or(SignatureError::Malformed)?;
    if hex_digits.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` (for tests, benches and
/// tools that replay deliveries).
pub fn sign(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's documented test vector ("Validating webhook deliveries").
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_test_vector_verifies() {
        let secret = WebhookSecret::new(SECRET);
        assert_eq!(sign(&secret, BODY), SIGNATURE);
        assert_eq!(verify(&secret, BODY, Some(SIGNATURE.as_bytes())), Ok(()));
    }

    #[test]
    fn wrong_missing_or_malformed_signatures_are_refused() {
        let secret = WebhookSecret::new(SECRET);
        let check =
            |header: Option<&str>, body: &[u8]| verify(&secret, body, header.map(str::as_bytes));
        assert_eq!(check(None, BODY), Err(SignatureError::Missing));
        assert_eq!(
            check(Some(SIGNATURE), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        let other = sign(&WebhookSecret::new("another secret"), BODY);
        assert_eq!(check(Some(&other), BODY), Err(SignatureError::Mismatch));
        assert_eq!(
            check(Some(&SIGNATURE[7..]), BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some("sha1=757107ea"), BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some(&SIGNATURE.replace('7', "z")), BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some(&SIGNATURE[..60]), BODY),
            Err(SignatureError::Malformed)
        );
    }
}
