//! Credentials (`docs/connectors.md` section 4): tokens are refreshed once when
//! they expire, and no secret or token ever shows in an error, a Debug print or
//! a log line.

use super::assert_error;
use crate::conformance::capture::capture_logs;
use crate::conformance::{
    CORRELATION, Harness, HarnessOptions, PlaneFault, at, canary_request, pilot_request,
};
use ringmaster::planes::{ErrorClass, ErrorCode, ExecutionPlaneConnector};
use std::time::Duration;

/// An expired token costs one token request and no failed call.
pub async fn expired_token_is_refreshed_once<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("ring 1");
    let tokens_before = harness.token_requests().await;
    harness.inject(PlaneFault::TokenExpired).await;
    connector
        .publish(&pilot_request(&harness), at(10))
        .await
        .expect("ring 2 after expiry");
    assert_eq!(
        harness.token_requests().await,
        tokens_before + 1,
        "one refresh"
    );
    assert_eq!(harness.assignment_count(CORRELATION).await, 3);
}

/// Check 10: every error, the connector's Debug and every log line, with faults
/// of each kind and refused credentials, are free of secrets and tokens.
pub async fn credentials_never_appear_in_errors_or_logs<H: Harness>() {
    let (logs, _guard) = capture_logs();
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let mut seen: Vec<String> = vec![format!("{connector:?}")];
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    let faults = [
        PlaneFault::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        },
        PlaneFault::ServerErrors {
            status: 503,
            count: 1,
        },
        PlaneFault::Rejected { status: 400 },
        PlaneFault::Rejected { status: 403 },
        PlaneFault::SlowResponse,
    ];
    for fault in faults {
        harness.inject(fault).await;
        let error = connector
            .publish(&pilot_request(&harness), at(1))
            .await
            .expect_err("fault");
        seen.push(format!("{error} {error:?}"));
    }
    harness.inject(PlaneFault::TokenExpired).await;
    harness.revoke_credentials().await;
    let refused = connector
        .publish(&pilot_request(&harness), at(2))
        .await
        .expect_err("revoked");
    assert_error(
        &refused,
        ErrorClass::Permanent,
        ErrorCode::InvalidCredentials,
        "revoked",
    );
    seen.push(format!("{refused} {refused:?} {connector:?}"));
    let secrets = harness.secrets().await;
    assert!(
        !secrets.is_empty(),
        "the harness names the credentials to look for"
    );
    let logged = logs.text();
    for secret in &secrets {
        assert!(
            secret.len() >= 8,
            "a credential too short to search for: {secret:?}"
        );
        for text in &seen {
            assert!(
                !text.contains(secret.as_str()),
                "a credential leaked into: {text}"
            );
        }
        assert!(
            !logged.contains(secret.as_str()),
            "a credential leaked into the logs"
        );
    }
}
