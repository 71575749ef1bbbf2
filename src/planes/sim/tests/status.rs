//! Status over simulated time: pending at publish, converging to the success rate;
//! deterministic for a seed; success rate per (application, version).

use super::*;
use crate::planes::sim::FAILURE_REASONS;

#[tokio::test]
async fn status_starts_all_pending_and_converges_to_the_success_rate_after_the_max_delay() {
    let sim = fleet(42);
    sim.publish(&canary(), at(0)).await.unwrap();
    let at_publish = sim.query_status(CORRELATION, at(0)).await.unwrap();
    let first = ring(&at_publish, "ring-1-canary");
    assert_eq!(
        (first.targeted, first.pending, first.installed, first.failed),
        (400, 400, 0, 0)
    );
    assert_eq!((first.first_install_at, first.last_report_at), (None, None));
    assert_eq!(
        at_publish.observed.version.as_deref(),
        Some("2.0.5"),
        "devices still run the superseded version"
    );

    let mut previous_reported = 0;
    for minutes in [5, 30, 60, 90, MAX_DELAY_MINUTES] {
        let status = sim.query_status(CORRELATION, at(minutes)).await.unwrap();
        let now = ring(&status, "ring-1-canary");
        assert_counts_add_up(now);
        let reported = now.installed + now.failed;
        assert!(
            reported >= previous_reported,
            "reports only accumulate: {minutes} min"
        );
        previous_reported = reported;
    }
    let midway = sim.query_status(CORRELATION, at(60)).await.unwrap();
    let midway = ring(&midway, "ring-1-canary");
    assert!(
        midway.pending > 0 && midway.installed > 0,
        "half-way through: {midway:?}"
    );

    let settled = sim
        .query_status(CORRELATION, at(MAX_DELAY_MINUTES))
        .await
        .unwrap();
    let canary = ring(&settled, "ring-1-canary");
    assert_eq!(canary.pending, 0, "every device reported by the max delay");
    assert!(
        (330..=390).contains(&canary.installed),
        "≈ 0.9 × 400: {canary:?}"
    );
    assert!(
        canary
            .failure_reasons
            .keys()
            .all(|reason| FAILURE_REASONS.iter().any(|(known, _)| known == reason))
    );
    let first_install = canary.first_install_at.expect("first install");
    assert!(first_install >= at(10) && first_install <= at(MAX_DELAY_MINUTES));
    assert!(canary.last_report_at.expect("last report") <= at(MAX_DELAY_MINUTES));
    assert_eq!(settled.observed.version.as_deref(), Some("2.1.0"));
    assert_eq!(
        settled.observed.installed_versions.values().sum::<u32>(),
        400
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_fleet_and_another_seed_another() {
    let mut statuses = Vec::new();
    for seed in [7, 7, 8] {
        let sim = fleet(seed);
        sim.publish(&canary(), at(0)).await.unwrap();
        statuses.push(sim.query_status(CORRELATION, at(45)).await.unwrap());
    }
    assert_eq!(statuses[0], statuses[1]);
    assert_ne!(statuses[0], statuses[2]);
}

#[tokio::test]
async fn a_bad_version_fails_most_devices_while_others_keep_the_default_rate() {
    let sim = fleet(3);
    sim.set_success_rate("vpn-client", "2.1.0", 0.2).unwrap();
    sim.publish(&canary(), at(0)).await.unwrap();
    let status = sim
        .query_status(CORRELATION, at(MAX_DELAY_MINUTES))
        .await
        .unwrap();
    let canary = ring(&status, "ring-1-canary");
    assert_counts_add_up(canary);
    assert!(
        (50..=110).contains(&canary.installed),
        "≈ 0.2 × 400: {canary:?}"
    );
    assert!(canary.failed >= 290, "{canary:?}");
    assert_eq!(
        status.observed.version.as_deref(),
        Some("2.0.5"),
        "failed devices keep the old version"
    );

    let mut good = canary_for_other_app();
    good.groups = vec![PILOT.into()];
    sim.publish(&good, at(0)).await.unwrap();
    let other = sim
        .query_status(&good.correlation_id, at(MAX_DELAY_MINUTES))
        .await
        .unwrap();
    assert!(
        ring(&other, "ring-1-canary").installed >= 250,
        "default 0.9 of 300"
    );
}

fn canary_for_other_app() -> PublishRequest {
    PublishRequest {
        correlation_id: "other-correlation".into(),
        intent_id: "browser-120".into(),
        application_id: "browser".into(),
        version: "120.0".into(),
        supersedes_version: None,
        sites: None,
        ..canary()
    }
}
