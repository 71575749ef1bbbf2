//! Idempotency on the correlation id (`docs/connectors.md` section 2): replays,
//! races, lost answers, later rings, and what a restarted daemon finds.

use crate::conformance::{
    CORRELATION, Harness, HarnessOptions, LostAnswer, PlaneFault, at, canary_request, pilot_request,
};
use ringmaster::planes::{ErrorClass, ErrorCode, ExecutionPlaneConnector};

/// Check 1: publish twice → one app, one assignment, `created` true then false;
/// a restarted daemon finds the same app.
pub async fn publish_twice_creates_one_app_and_one_assignment<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let request = canary_request(&harness);
    let first = connector
        .publish(&request, at(0))
        .await
        .expect("first publish");
    let replay = connector.publish(&request, at(1)).await.expect("replay");
    assert!(first.created, "the first publish creates");
    assert!(!replay.created, "a replay creates nothing");
    assert_eq!(first.external_id, replay.external_id);
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);

    let restarted = harness.restarted_connector();
    let after_restart = restarted
        .publish(&request, at(2))
        .await
        .expect("publish after restart");
    assert!(
        !after_restart.created,
        "a restarted daemon finds the app on the plane"
    );
    assert_eq!(after_restart.external_id, first.external_id);
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// Check 3: concurrent publishes of one request through clones of one handle.
pub async fn concurrent_publishes_create_one_app_and_one_assignment_per_group<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let request = pilot_request(&harness);
    let (left, right) = (harness.connector(), harness.connector());
    let (first, second) = tokio::join!(
        left.publish(&request, at(0)),
        right.publish(&request, at(0))
    );
    let (first, second) = (first.expect("first racer"), second.expect("second racer"));
    assert_eq!(first.external_id, second.external_id);
    assert!(
        first.created != second.created,
        "exactly one racer creates: {first:?} {second:?}"
    );
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(
        harness.assignment_count(CORRELATION).await,
        2,
        "pilot and broad, once each"
    );
}

/// A second ring adds its groups to the same app and keeps the first ring's.
pub async fn a_later_ring_adds_its_groups_to_the_same_app<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let canary = connector
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("ring 1");
    let pilot = connector
        .publish(&pilot_request(&harness), at(60))
        .await
        .expect("ring 2");
    assert!(pilot.created, "ring 2 creates its assignments");
    assert_eq!(
        pilot.external_id, canary.external_id,
        "one app for every ring"
    );
    assert_eq!(harness.assignment_count(CORRELATION).await, 3);
    let replay = connector
        .publish(&canary_request(&harness), at(61))
        .await
        .expect("ring 1 again");
    assert!(!replay.created);
    assert_eq!(harness.assignment_count(CORRELATION).await, 3);
    let status = connector
        .query_status(CORRELATION, at(62))
        .await
        .expect("status");
    let rings: Vec<&str> = status.rings.keys().map(String::as_str).collect();
    assert_eq!(
        rings,
        [crate::conformance::RING_1, crate::conformance::RING_2]
    );
    let groups = harness.groups();
    let mut expected = vec![groups.canary.id, groups.pilot.id, groups.broad.id];
    expected.sort();
    assert_eq!(status.observed.assigned_groups, expected);
}

/// Check 2: the assignment is made but its answer is lost; the retry finds it.
pub async fn response_lost_after_assignment_is_found_by_the_retry<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let request = canary_request(&harness);
    harness
        .inject(PlaneFault::ResponseLostAfterApply {
            on: LostAnswer::AssignmentChange,
        })
        .await;
    let lost = connector
        .publish(&request, at(0))
        .await
        .expect_err("the answer is lost");
    assert_eq!(lost.class, ErrorClass::Transient, "{lost}");
    assert_eq!(lost.code, ErrorCode::Timeout, "{lost}");
    assert_eq!(
        harness.assignment_count(CORRELATION).await,
        1,
        "it was applied"
    );
    assert!(
        connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .expect("verify")
    );
    let retry = connector.publish(&request, at(2)).await.expect("retry");
    assert!(!retry.created, "the retry finds what the lost call made");
    assert_eq!(harness.app_count(CORRELATION).await, 1);
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// Check 2: the app is created but that answer is lost; the retry reuses it.
pub async fn response_lost_after_app_creation_is_found_by_the_retry<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let connector = harness.connector();
    let request = canary_request(&harness);
    harness
        .inject(PlaneFault::ResponseLostAfterApply {
            on: LostAnswer::AppCreation,
        })
        .await;
    let lost = connector
        .publish(&request, at(0))
        .await
        .expect_err("the answer is lost");
    assert!(lost.is_retryable(), "{lost}");
    assert_eq!(
        harness.app_count(CORRELATION).await,
        1,
        "the app was created"
    );
    connector.publish(&request, at(2)).await.expect("retry");
    let replay = connector.publish(&request, at(3)).await.expect("replay");
    assert!(!replay.created);
    assert_eq!(
        harness.app_count(CORRELATION).await,
        1,
        "the retry reused the app"
    );
    assert_eq!(harness.assignment_count(CORRELATION).await, 1);
}

/// `verify_idempotency` asks the plane: a restarted daemon that never published
/// still finds the deployment; an unknown correlation id is `false` and
/// `resource_not_found` elsewhere.
pub async fn verify_idempotency_answers_from_the_plane<H: Harness>() {
    let harness = H::start(HarnessOptions::default()).await;
    let restarted = harness.restarted_connector();
    assert!(
        !restarted
            .verify_idempotency(CORRELATION, at(0))
            .await
            .expect("verify")
    );
    harness
        .connector()
        .publish(&canary_request(&harness), at(0))
        .await
        .expect("publish");
    assert!(
        restarted
            .verify_idempotency(CORRELATION, at(1))
            .await
            .expect("verify")
    );
    let unknown = "00000000-0000-5000-8000-000000000000";
    assert!(
        !restarted
            .verify_idempotency(unknown, at(1))
            .await
            .expect("verify unknown")
    );
    let status = restarted
        .query_status(unknown, at(1))
        .await
        .expect_err("unknown status");
    assert_eq!(status.code, ErrorCode::ResourceNotFound, "{status}");
    let remediation = restarted
        .remediate(unknown, &ringmaster::planes::Remediation::Redeploy, at(1))
        .await
        .expect_err("unknown remediation");
    assert_eq!(
        remediation.code,
        ErrorCode::ResourceNotFound,
        "{remediation}"
    );
}
