//! Errors (`docs/connectors.md` section 3): throttling, storms and slow answers
//! are transient and leave nothing behind; the orchestrator's backoff then
//! succeeds; permanent errors are reported after one request, never retried.

use super::assert_error;
use crate::conformance::{
    CORRELATION, Harness, HarnessOptions, PlaneFault, at, canary_request, pilot_request,
};
use chrono::{DateTime, Utc};
use ringmaster::model::Plane;
use ringmaster::orchestrator::{BackoffPolicy, next_attempt};
use ringmaster::planes::{
    ConnectorError, ErrorClass, ErrorCode, ExecutionPlaneConnector, PublishRequest, PublishResult,
};
use std::time::Duration;

/// Publishes the way the orchestrator does: on a transient error, wait (on the
/// plane's clock, `now`) as `next_attempt` says and try again. Answers the
/// result, the errors on the way and the time of the successful attempt.
pub async fn publish_with_backoff(
    connector: &impl ExecutionPlaneConnector,
    request: &PublishRequest,
    start: DateTime<Utc>,
) -> (PublishResult, Vec<ConnectorError>, DateTime<Utc>) {
    let policy = BackoffPolicy::default();
    let mut now = start;
    let mut errors: Vec<ConnectorError> = Vec::new();
    loop {
        match connector.publish(request, now).await {
            Ok(result) => return (result, errors, now),
            Err(error) => {
                assert!(
                    error.is_retryable(),
                    "attempt {}: {error}",
                    errors.len() + 1
                );
                let retry_after = error
                    .retry_after
                    .map(|delay| chrono::Duration::from_std(delay).expect("retry after"));
                errors.push(error);
                let failed = u32::try_from(errors.len()).expect("attempts");
                now = next_attempt(now, failed, retry_after, 0.0, &policy)
                    .unwrap_or_else(|| panic!("gave up after {failed} attempts: {errors:?}"));
            }
        }
    }
}

/// Check 4: 429 with `Retry-After` is `rate_limit` carrying exactly that delay,
/// applies nothing, and the orchestrator's retry after it succeeds.
pub async fn rate_limit_with_retry_after_is_transient_and_honoured<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    // Longer than the orchestrator's first backoff (30 s), and fractional.
    let retry_after = Duration::from_millis(92_128);
    harness
        .inject(PlaneFault::RateLimited {
            retry_after: Some(retry_after),
        })
        .await;
    let (result, errors, succeeded_at) =
        publish_with_backoff(&connector, &canary_request(&harness), at(0)).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_error(
        &errors[0],
        ErrorClass::Transient,
        ErrorCode::RateLimit,
        "publish",
    );
    assert_eq!(errors[0].retry_after, Some(retry_after), "{}", errors[0]);
    assert_eq!(
        succeeded_at,
        at(0) + chrono::Duration::milliseconds(92_128),
        "waited as asked"
    );
    assert!(result.created);
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// Check 4: a 429 without `Retry-After` has `retry_after: None`.
pub async fn rate_limit_without_retry_after_has_none<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    harness
        .inject(PlaneFault::RateLimited { retry_after: None })
        .await;
    let error = connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect_err("429");
    assert_error(
        &error,
        ErrorClass::Transient,
        ErrorCode::RateLimit,
        "publish",
    );
    assert_eq!(error.retry_after, None, "{error}");
    assert_eq!(
        harness.app_count(CORRELATION).await,
        0,
        "a throttled call applies nothing"
    );
    harness
        .inject(PlaneFault::RateLimited { retry_after: None })
        .await;
    let error = connector
        .query_status(CORRELATION, at(1))
        .await
        .expect_err("429 on status");
    assert_error(
        &error,
        ErrorClass::Transient,
        ErrorCode::RateLimit,
        "query_status",
    );
}

/// Check 4: a storm of 5xx answers, each one attempt's failure (the connector
/// does not retry by itself); the orchestrator's backoff then succeeds once.
pub async fn server_error_storm_backs_off_then_succeeds<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    for status in [503, 500, 502, 504] {
        harness
            .inject(PlaneFault::ServerErrors { status, count: 1 })
            .await;
    }
    let (result, errors, succeeded_at) =
        publish_with_backoff(&connector, &canary_request(&harness), at(0)).await;
    assert_eq!(
        errors.len(),
        4,
        "one failed attempt per 5xx answer: {errors:?}"
    );
    for error in &errors {
        assert_error(
            error,
            ErrorClass::Transient,
            ErrorCode::ServiceUnavailable,
            "publish",
        );
        assert_eq!(error.retry_after, None, "{error}");
    }
    let policy = BackoffPolicy::default();
    let waited = (succeeded_at - at(0)).num_seconds();
    let expected: u64 = (0..4)
        .map(|doubling| policy.base_delay_seconds << doubling)
        .sum();
    assert_eq!(
        waited,
        i64::try_from(expected).expect("seconds"),
        "backoff 30+60+120+240 s"
    );
    assert!(result.created);
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// Check 4: no answer within the client timeout is `timeout`; nothing applied.
pub async fn slow_response_is_a_timeout_and_the_retry_completes<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    harness.inject(PlaneFault::SlowResponse).await;
    let request = canary_request(&harness);
    let error = connector.publish(&request, at(0)).await.expect_err("slow");
    assert_error(&error, ErrorClass::Transient, ErrorCode::Timeout, "publish");
    let retry = connector.publish(&request, at(5)).await.expect("retry");
    assert!(retry.created);
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// Permanent and policy errors are reported after the one request that met
/// them: the simulator sees exactly one more request, and the next call works.
/// (A 404 is left out: on a lookup by a remembered id it rightly means "gone,
/// look again", not a failed call.)
pub async fn permanent_errors_are_not_retried<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("ring 1");
    let cases = [
        (400, ErrorClass::Permanent, ErrorCode::InvalidRequest),
        (409, ErrorClass::Permanent, ErrorCode::InvalidRequest),
        (403, ErrorClass::PolicyViolation, ErrorCode::Unauthorized),
    ];
    for (status, class, code) in cases {
        let before = harness.api_requests().await;
        harness.inject(PlaneFault::Rejected { status }).await;
        let error = connector
            .publish(&pilot_request(&harness), at(10))
            .await
            .expect_err("rejected");
        assert_error(
            &error,
            class,
            code,
            &format!("publish answered HTTP {status}"),
        );
        assert_eq!(
            harness.api_requests().await - before,
            1,
            "HTTP {status} was retried"
        );
    }
    connector
        .publish(&pilot_request(&harness), at(20))
        .await
        .expect("ring 2 after the faults");
    assert_eq!(harness.assignment_count(CORRELATION).await, 3);
}

/// Check 5: requests the plane can never accept are permanent; the malformed
/// ones are refused before anything is created.
pub async fn invalid_publishes_are_permanent<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let groups = harness.groups();
    let mut no_groups = canary_request(&harness);
    no_groups.groups.clear();
    let mut wrong_plane = canary_request(&harness);
    wrong_plane.plane = if H::PLANE == Plane::Jamf {
        Plane::Intune
    } else {
        Plane::Jamf
    };
    let mut malformed_hash = canary_request(&harness);
    malformed_hash.artifact.sha256 = "sha256:XYZ".into();
    for (name, request) in [
        ("no groups", no_groups),
        ("wrong plane", wrong_plane),
        ("malformed hash", malformed_hash),
    ] {
        let error = connector.publish(&request, at(0)).await.expect_err(name);
        assert_eq!(error.class, ErrorClass::Permanent, "{name}: {error}");
        assert_eq!(
            harness.app_count(CORRELATION).await,
            0,
            "{name} created something"
        );
    }

    let mut unknown_group = canary_request(&harness);
    unknown_group.groups = vec![groups.unknown.clone()];
    let error = connector
        .publish(&unknown_group, at(1))
        .await
        .expect_err("unknown group");
    assert_eq!(error.class, ErrorClass::Permanent, "unknown group: {error}");
    assert!(
        error.message.contains(&groups.unknown),
        "names the group: {error}"
    );
    assert_eq!(harness.assignment_count(CORRELATION).await, 0);

    connector
        .publish(&canary_request(&harness), at(2))
        .await
        .expect("the valid request");
    let mut other_version = canary_request(&harness);
    other_version.version = "2.2.0".into();
    let error = connector
        .publish(&other_version, at(3))
        .await
        .expect_err("other version");
    assert_error(
        &error,
        ErrorClass::Permanent,
        ErrorCode::InvalidRequest,
        "other version",
    );
    assert_eq!(harness.app_count(CORRELATION).await, 1);
}
