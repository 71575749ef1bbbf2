//! Hostile and broken tokens: each refused with the right status, and
//! nothing changed in the store (a hold is attempted every time).

use crate::harness::{Api, ApiOptions, Tenant, oid, serve};
use crate::issuer::{AUDIENCE, Issuer, SigningKey, ec_key, forged, rsa_key, sign};
use serde_json::json;

struct Setup {
    tenant: Tenant,
    issuer: Issuer,
    key: SigningKey,
    api: Api,
}

async fn setup() -> Setup {
    let key = rsa_key("key-1");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    Setup {
        tenant,
        issuer,
        key,
        api,
    }
}

const HOLD: &str = "/api/v1/intents/chrome-131-finance/hold";

/// Tries a hold with `token`; asserts the status, the reason and no change.
async fn refused(setup: &Setup, token: Option<&str>, status: u16, reason: &str) {
    let before = setup.tenant.footprint();
    let answer = setup
        .api
        .post(HOLD, token, json!({"reason": "hostile token test"}))
        .await;
    assert_eq!(answer.status, status, "{:?}", answer.body);
    let text = answer.body["reason"].as_str().unwrap_or_default();
    assert!(text.contains(reason), "reason {text:?} lacks {reason:?}");
    assert!(answer.request_id.is_some(), "every answer has a request id");
    assert_eq!(
        setup.tenant.footprint(),
        before,
        "a refused request changed the store"
    );
}

#[tokio::test]
async fn a_valid_token_of_a_principal_in_scope_queues_the_hold() {
    let setup = setup().await;
    let before = setup.tenant.footprint();
    let token = setup.issuer.token(&setup.key, &oid("alice"));
    let answer = setup
        .api
        .post(HOLD, Some(&token), json!({"reason": "finance freeze"}))
        .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let after = setup.tenant.footprint();
    assert_eq!(after.operator_requests, before.operator_requests + 1);
    assert_eq!(after.events, before.events + 1);
}

#[tokio::test]
async fn no_token_is_401() {
    let setup = setup().await;
    refused(&setup, None, 401, "no credentials").await;
}

#[tokio::test]
async fn a_header_that_is_not_a_bearer_token_is_401() {
    let setup = setup().await;
    let before = setup.tenant.footprint();
    let answer = setup
        .api
        .http
        .post(setup.api.url(HOLD))
        .header("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 401);
    assert_eq!(setup.tenant.footprint(), before);
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let setup = setup().await;
    let mut claims = setup.issuer.claims(&oid("olivia"));
    let now = chrono::Utc::now().timestamp();
    claims["exp"] = json!(now - 600);
    claims["nbf"] = json!(now - 4000);
    refused(&setup, Some(&sign(&setup.key, &claims)), 401, "expired").await;
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted_and_beyond_it_refused() {
    let setup = setup().await;
    let now = chrono::Utc::now().timestamp();
    let mut claims = setup.issuer.claims(&oid("olivia"));
    claims["exp"] = json!(now - 20);
    let answer = setup
        .api
        .get("/api/v1/intents", Some(&sign(&setup.key, &claims)))
        .await;
    assert_eq!(answer.status, 200, "20 s of skew is within the 60 s leeway");
    claims["exp"] = json!(now - 120);
    let answer = setup
        .api
        .get("/api/v1/intents", Some(&sign(&setup.key, &claims)))
        .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn a_token_not_yet_valid_is_401() {
    let setup = setup().await;
    let mut claims = setup.issuer.claims(&oid("olivia"));
    claims["nbf"] = json!(chrono::Utc::now().timestamp() + 900);
    refused(
        &setup,
        Some(&sign(&setup.key, &claims)),
        401,
        "not valid before",
    )
    .await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_401() {
    let setup = setup().await;
    let mut claims = setup.issuer.claims(&oid("olivia"));
    claims["aud"] = json!("api://some-other-app");
    refused(&setup, Some(&sign(&setup.key, &claims)), 401, "audience").await;
}

#[tokio::test]
async fn a_token_of_another_issuer_is_401() {
    let setup = setup().await;
    let mut claims = setup.issuer.claims(&oid("olivia"));
    claims["iss"] = json!("https://login.microsoftonline.com/evil-tenant/v2.0");
    refused(&setup, Some(&sign(&setup.key, &claims)), 401, "issuer").await;
}

#[tokio::test]
async fn alg_none_is_401() {
    let setup = setup().await;
    let claims = setup.issuer.claims(&oid("olivia"));
    let token = forged(
        &json!({"alg": "none", "typ": "JWT", "kid": "key-1"}),
        &claims,
        None,
    );
    refused(&setup, Some(&token), 401, "algorithm").await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_401() {
    let setup = setup().await;
    let claims = setup.issuer.claims(&oid("olivia"));
    let token = forged(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"}),
        &claims,
        Some(setup.key.public_pem.as_bytes()),
    );
    refused(&setup, Some(&token), 401, "algorithm").await;
}

#[tokio::test]
async fn a_token_signed_by_a_stranger_under_a_known_kid_is_401() {
    let setup = setup().await;
    let mut stranger = rsa_key("key-1");
    stranger.kid = setup.key.kid.clone();
    let token = setup.issuer.token(&stranger, &oid("olivia"));
    refused(&setup, Some(&token), 401, "signature").await;
}

#[tokio::test]
async fn a_tampered_payload_is_401() {
    let setup = setup().await;
    let token = setup.issuer.token(&setup.key, &oid("alice"));
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = setup.issuer.claims(&oid("olivia"));
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 3600);
    use base64::Engine as _;
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    refused(&setup, Some(&tampered), 401, "signature").await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused_until_the_issuer_rotates_then_accepted_without_restart() {
    let setup = setup().await;
    let rotated = ec_key("key-2");
    let token = setup.issuer.token(&rotated, &oid("olivia"));
    let fetches = setup.issuer.fetches();
    refused(&setup, Some(&token), 401, "no signing key").await;
    assert!(
        setup.issuer.fetches() > fetches,
        "an unknown kid refetches the JWKS"
    );
    setup.issuer.publish(&[&setup.key, &rotated]);
    let answer = setup.api.get("/api/v1/intents", Some(&token)).await;
    assert_eq!(
        answer.status, 200,
        "the rotated ES256 key is picked up: {:?}",
        answer.body
    );
}

#[tokio::test]
async fn a_token_for_an_unknown_principal_is_403() {
    let setup = setup().await;
    let token = setup.issuer.token(&setup.key, "oid-mallory");
    refused(&setup, Some(&token), 403, "no principal").await;
}

#[tokio::test]
async fn a_principal_whose_scope_does_not_cover_the_rollout_is_403() {
    let setup = setup().await;
    // Bob publishes for IT and HR, not Finance.
    let token = setup.issuer.token(&setup.key, &oid("bob"));
    refused(&setup, Some(&token), 403, "not acq-001/bu-finance").await;
}

#[tokio::test]
async fn a_garbage_token_is_401() {
    let setup = setup().await;
    refused(&setup, Some("not-a-jwt"), 401, "not a JWT").await;
    let huge = "a".repeat(20_000);
    refused(
        &setup,
        Some(&format!("{huge}.{huge}.{huge}")),
        401,
        "larger than",
    )
    .await;
}

#[tokio::test]
async fn the_per_principal_rate_limit_answers_429_with_retry_after_and_changes_nothing() {
    let key = rsa_key("key-1");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let mut options = ApiOptions::for_issuer(&issuer);
    options.limits.per_principal_per_minute = 2;
    options.limits.burst = 2;
    let api = serve(&tenant, options).await;
    let token = issuer.token(&key, &oid("olivia"));
    for _ in 0..2 {
        let answer = api.get("/api/v1/intents", Some(&token)).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let before = tenant.footprint();
    let answer = api
        .post(HOLD, Some(&token), json!({"reason": "one too many"}))
        .await;
    assert_eq!(answer.status, 429, "{:?}", answer.body);
    let retry: u64 = answer
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(tenant.footprint(), before);
    // Another principal is not limited by olivia's use.
    let other = issuer.token(&key, &oid("ivan"));
    assert_eq!(api.get("/api/v1/intents", Some(&other)).await.status, 200);
}

#[tokio::test]
async fn the_per_address_rate_limit_answers_429_before_authentication() {
    let key = rsa_key("key-1");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let mut options = ApiOptions::for_issuer(&issuer);
    options.limits.per_address_per_minute = 3;
    options.limits.burst = 3;
    let api = serve(&tenant, options).await;
    for _ in 0..3 {
        assert_eq!(api.get("/api/v1/intents", None).await.status, 401);
    }
    let answer = api.get("/api/v1/intents", None).await;
    assert_eq!(answer.status, 429);
    assert!(answer.retry_after.is_some());
}

#[tokio::test]
async fn a_body_over_the_cap_is_413_and_changes_nothing() {
    let setup = setup().await;
    let before = setup.tenant.footprint();
    let token = setup.issuer.token(&setup.key, &oid("olivia"));
    let answer = setup
        .api
        .post(
            HOLD,
            Some(&token),
            json!({"reason": "x".repeat(100 * 1024)}),
        )
        .await;
    assert_eq!(answer.status, 413);
    assert_eq!(setup.tenant.footprint(), before);
}

#[tokio::test]
async fn the_openapi_document_needs_no_token_and_matches_docs() {
    let setup = setup().await;
    let answer = setup.api.get("/api/v1/openapi.json", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["openapi"], "3.1.0");
    assert!(answer.body["paths"]["/api/v1/intents/{intent_id}/hold"]["post"].is_object());
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"),
    )
    .expect("docs/openapi.json is committed");
    assert_eq!(
        String::from_utf8(answer.bytes).expect("utf-8"),
        committed,
        "docs/openapi.json is stale: regenerate with `cargo run -- openapi > docs/openapi.json`"
    );
    let _ = AUDIENCE;
}
