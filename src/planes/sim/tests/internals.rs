//! Unit tests of the sim plane's internals: pin rules, tie-breaking, entitlement
//! registration, attempts replaced mid-flight, the state file's write.

use super::super::fleet::device_id;
use super::super::*;
use crate::model::{PlaneGroup, Posture, SegmentScope};
use crate::planes::ArtifactRef;
use chrono::TimeZone;

const CORRELATION: &str = "corr-unit";

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

fn sim() -> SimConnector {
    let sim = SimConnector::new(SimConfig {
        install_delay: (Duration::from_secs(60), Duration::from_secs(3600)),
        default_success_rate: 1.0,
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    for group in ["lab", "canary", "pilot", "global"] {
        sim.add_group(group, 10).unwrap();
    }
    sim
}

fn request(ring: &str, group: &str) -> PublishRequest {
    PublishRequest {
        correlation_id: CORRELATION.into(),
        intent_id: "htop-3.3".into(),
        application_id: "htop".into(),
        application_name: "htop".into(),
        version: "3.3.0".into(),
        plane: Plane::Landscape,
        ring: ring.into(),
        artifact: ArtifactRef {
            id: "htop-3.3.0-deb".into(),
            file: "htop_3.3.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "0f".repeat(32)),
            install: "apt-get install -y htop=3.3.0".into(),
            uninstall: "apt-get remove -y htop".into(),
            detection_type: "package".into(),
            detection_value: "htop".into(),
        },
        groups: vec![group.into()],
        exclusions: Vec::new(),
        expected_devices: 10,
        supersedes_version: Some("3.2.2".into()),
        sites: None,
    }
}

async fn publish_rings(sim: &SimConnector, rings: &[(&str, &str)]) {
    for (ring, group) in rings {
        sim.publish(&request(ring, group), at(0)).await.unwrap();
    }
}

#[tokio::test]
async fn pin_allows_the_pinned_ring_and_the_ones_before_it_only() {
    let cases: [(&str, &[(&str, bool)]); 2] = [
        (
            "canary",
            &[
                ("lab", true),
                ("canary", true),
                ("pilot", false),
                ("global", false),
            ],
        ),
        // Pinned at a ring not published yet: earlier rings and that ring only.
        (
            "pilot",
            &[
                ("lab", true),
                ("canary", true),
                ("pilot", true),
                ("global", false),
            ],
        ),
    ];
    for (pinned, expectations) in cases {
        let sim = sim();
        publish_rings(&sim, &[("lab", "lab"), ("canary", "canary")]).await;
        let pin = Remediation::RingPin {
            ring: pinned.into(),
        };
        sim.remediate(CORRELATION, &pin, at(1)).await.unwrap();
        for (ring, allowed) in expectations {
            let outcome = sim.publish(&request(ring, ring), at(2)).await;
            assert_eq!(
                outcome.is_ok(),
                *allowed,
                "pinned at {pinned}, publish {ring}: {outcome:?}"
            );
        }
    }
}

#[tokio::test]
async fn observed_version_breaks_a_tie_toward_the_delivered_version() {
    let sim = sim();
    sim.publish(&request("lab", "lab"), at(0)).await.unwrap();
    let drift = Drift::VersionReverted {
        to_version: "3.2.2".into(),
        devices: 5,
    };
    sim.inject_drift(CORRELATION, drift, at(60)).unwrap();
    let observed = sim
        .query_status(CORRELATION, at(60))
        .await
        .unwrap()
        .observed;
    assert_eq!(observed.installed_versions.get("3.2.2"), Some(&5));
    assert_eq!(observed.installed_versions.get("3.3.0"), Some(&5));
    assert_eq!(observed.version.as_deref(), Some("3.3.0"));
}

#[test]
fn an_entitlement_shares_its_expected_devices_among_its_groups() {
    let sim = sim();
    let group = |id: &str| PlaneGroup {
        id: id.into(),
        name: None,
    };
    let mut rule = EntitlementRule {
        id: "landscape-ring-1".into(),
        plane: Plane::Landscape,
        ring: "ring-1-canary".into(),
        scope: SegmentScope {
            acquisition_boundary: "acq-002".into(),
            business_unit: "bu-engineering".into(),
        },
        groups: vec![group("tag:a"), group("tag:b"), group("tag:c")],
        exclusions: vec![group("tag:excluded")],
        posture: Posture::default(),
        expected_devices: 10,
    };
    sim.register_entitlement(&rule).unwrap();
    let groups = sim.lock().groups.clone();
    assert_eq!(groups.get("tag:a"), Some(&4));
    assert_eq!(groups.get("tag:b"), Some(&3));
    assert_eq!(groups.get("tag:c"), Some(&3));
    assert!(!groups.contains_key("tag:excluded"));
    rule.plane = Plane::Intune;
    assert!(matches!(
        sim.register_entitlement(&rule),
        Err(SimError::PlaneMismatch { .. })
    ));
}

#[tokio::test]
async fn rollback_before_any_report_leaves_no_device_on_the_new_version() {
    let sim = sim();
    sim.publish(&request("lab", "lab"), at(0)).await.unwrap();
    let rollback = Remediation::Rollback {
        to_version: "3.2.2".into(),
        strategy: None,
    };
    sim.remediate(CORRELATION, &rollback, at(0)).await.unwrap();
    let observed = sim
        .query_status(CORRELATION, at(24 * 60))
        .await
        .unwrap()
        .observed;
    assert_eq!(observed.installed_versions.len(), 1, "{observed:?}");
    assert_eq!(observed.installed_versions.get("3.2.2"), Some(&10));
}

#[tokio::test]
async fn redeploy_retries_failed_installs_once() {
    let sim = sim();
    sim.set_success_rate("htop", "3.3.0", 0.0).unwrap();
    sim.publish(&request("lab", "lab"), at(0)).await.unwrap();
    let failed = sim.query_status(CORRELATION, at(60)).await.unwrap();
    assert_eq!(failed.rings["lab"].failed, 10);
    sim.set_success_rate("htop", "3.3.0", 1.0).unwrap();
    let retried = sim
        .remediate(CORRELATION, &Remediation::Redeploy, at(60))
        .await
        .unwrap();
    assert!(retried.applied, "{}", retried.detail);
    assert!(
        retried.detail.contains("to 10 device(s)"),
        "{}",
        retried.detail
    );
    let in_flight = sim
        .remediate(CORRELATION, &Remediation::Redeploy, at(61))
        .await
        .unwrap();
    assert!(
        !in_flight.applied,
        "retries in flight are not started again: {}",
        in_flight.detail
    );
    let after = sim.query_status(CORRELATION, at(120)).await.unwrap();
    assert_eq!(after.rings["lab"].installed, 10);
    assert!(after.rings["lab"].failure_reasons.is_empty());
}

#[tokio::test]
async fn devices_are_numbered_within_their_group() {
    let sim = sim();
    sim.publish(&request("lab", "lab"), at(0)).await.unwrap();
    let fleet = sim.lock();
    let app = fleet.app(CORRELATION).unwrap();
    assert!(app.devices.contains_key(&device_id("lab", 0)));
    assert!(app.devices.contains_key(&device_id("lab", 9)));
    assert_eq!(app.devices.len(), 10);
    assert_eq!(device_id("lab", 7), "lab/device-00007");
}

#[tokio::test]
async fn the_state_file_is_replaced_whole_and_no_temporary_file_remains() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    sim.add_group("lab", 3).unwrap();
    let names: Vec<String> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["landscape.json".to_string()]);
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["fleet"]["groups"]["lab"], 3);

    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        SimConnector::load(&path),
        Err(SimError::StateFormat { .. })
    ));
}

#[test]
fn invalid_configurations_are_refused() {
    let inverted = SimConfig {
        install_delay: (Duration::from_secs(60), Duration::from_secs(1)),
        ..SimConfig::for_plane(Plane::Sccm)
    };
    assert!(matches!(
        SimConnector::new(inverted),
        Err(SimError::InvalidConfig(_))
    ));
    let sim = SimConnector::new(SimConfig::for_plane(Plane::Sccm)).unwrap();
    assert!(sim.set_success_rate("app", "1.0", -0.1).is_err());
    assert!(sim.add_group(" ", 3).is_err());
    assert!(matches!(sim.save(), Err(SimError::NoStateFile)));
}
