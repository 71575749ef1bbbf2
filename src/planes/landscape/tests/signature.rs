//! The legacy signature: a known answer computed independently (Python's
//! `hmac`, `hashlib.sha256`, `base64` and `urllib.parse.quote(safe="-_.~")`
//! over the same inputs), and the simulator refusing what does not match.

use super::super::signature::{canonical_query, sign, string_to_sign, verify};
use super::{ACCESS_KEY, account_with, at, request};
use crate::planes::{ErrorCode, ExecutionPlaneConnector, Secret};

fn parameters() -> Vec<(String, String)> {
    [
        ("action", "InstallPackages"),
        ("access_key_id", ACCESS_KEY),
        ("signature_method", "HmacSHA256"),
        ("signature_version", "2"),
        ("timestamp", "2024-05-01T10:00:00Z"),
        ("version", "2011-08-01"),
        ("query", "tag:ring-canary NOT tag:kiosks"),
        ("packages.1", "contoso-agent=1.2.3~ubuntu1"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

#[test]
fn canonical_query_sorts_and_encodes_as_rfc3986() {
    assert_eq!(
        canonical_query(&parameters()),
        "access_key_id=3OTS8UWJOH4XBSRMSOYQ&action=InstallPackages\
         &packages.1=contoso-agent%3D1.2.3~ubuntu1\
         &query=tag%3Aring-canary%20NOT%20tag%3Akiosks\
         &signature_method=HmacSHA256&signature_version=2\
         &timestamp=2024-05-01T10%3A00%3A00Z&version=2011-08-01"
    );
}

#[test]
fn signature_matches_an_independently_computed_hmac() {
    let to_sign = string_to_sign("post", "Landscape.Example.com:8443", "/api/", &parameters());
    assert!(to_sign.starts_with("POST\nlandscape.example.com:8443\n/api/\naccess_key_id="));
    let secret = "6RB9D4Q2T4w/8jrVd0Sb+q8VRgsGvfgPEtVHyWAs";
    let signature = sign(secret, &to_sign);
    assert_eq!(signature, "ManpaH2R/J2VJbv84gFOBd3PD3eWmujKZRMESTC2Mxk=");
    assert!(verify(secret, &to_sign, &signature));
    assert!(!verify("another-secret", &to_sign, &signature));
    assert!(!verify(secret, &to_sign, "not base64!"));
}

#[test]
fn a_signature_parameter_is_not_signed() {
    let mut with_signature = parameters();
    with_signature.push(("signature".into(), "abc".into()));
    assert_eq!(
        canonical_query(&with_signature),
        canonical_query(&parameters())
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_with_signature_does_not_match() {
    let account = account_with(
        |options| options.secret_key = Secret::new("the-key-the-server-holds"),
        |_| {},
    )
    .await;
    let error = account
        .connector
        .publish(&request(), at(0))
        .await
        .expect_err("wrong secret");
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(error.message.contains("SignatureDoesNotMatch"), "{error}");
    assert!(!error.message.contains(super::SECRET_KEY), "{error}");
    assert_eq!(
        account
            .simulator
            .live_install_activities("vpn-client", "2.1.0"),
        0
    );
}

#[tokio::test]
async fn a_timestamp_outside_the_tolerance_is_refused() {
    let account = account_with(
        |options| options.timestamp_tolerance = chrono::Duration::seconds(-1),
        |_| {},
    )
    .await;
    let error = account
        .connector
        .publish(&request(), at(0))
        .await
        .expect_err("stale");
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(error.message.contains("AuthFailure"), "{error}");
}

#[tokio::test]
async fn an_unknown_access_key_is_refused() {
    let account = account_with(|options| options.access_key = "OTHERKEY".into(), |_| {}).await;
    let error = account
        .connector
        .publish(&request(), at(0))
        .await
        .expect_err("unknown key");
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(error.message.contains("InvalidCredentials"), "{error}");
}
