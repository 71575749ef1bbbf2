//! Unit tests of the sim plane's internals: pin rules, tie-breaking, entitlement
//! registration, attempts replaced mid-flight, the state file's write.

use super::super::fleet::device_id;
use super::super::*;
use crate::model::{PlaneGroup, Posture, SegmentScope};
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
    super::htop_request(CORRELATION, ring, &[group])
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

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn file_names(directory: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn a_change_is_appended_to_the_state_files_journal_not_the_whole_fleet_rewritten() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    sim.add_group("lab", 3).unwrap();
    assert_eq!(
        file_names(directory.path()),
        vec!["landscape.json".to_string()]
    );
    let snapshot_line = lines(&path)[0].to_string();
    sim.add_group("canary", 5).unwrap();
    sim.publish(&request("lab", "lab"), at(0)).await.unwrap();
    let written = lines(&path);
    // The snapshot stays as it was; each change is one more line.
    assert_eq!(written.len(), 4, "{written:?}");
    assert_eq!(written[0].to_string(), snapshot_line);
    assert_eq!(written[0]["format_version"], 2);
    assert_eq!(written[1]["change"], "groups");
    assert_eq!(written[2]["groups"][0], serde_json::json!(["canary", 5]));
    assert_eq!(written[3]["change"], "call");
    assert_eq!(written[3]["call"]["operation"], "publish");
    // Reading replays the journal onto the snapshot: the same fleet.
    let loaded = SimConnector::load(&path).unwrap();
    assert_eq!(*loaded.lock(), *sim.lock());

    // A read without a fault changes nothing but the call counter: nothing
    // is written (the counter is, with the next change).
    sim.query_status(CORRELATION, at(30)).await.unwrap();
    assert_eq!(lines(&path).len(), 4);
    assert_eq!(
        file_names(directory.path()),
        vec!["landscape.json".to_string()]
    );

    // Saving compacts: one snapshot line, the same fleet.
    sim.save().unwrap();
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(*SimConnector::load(&path).unwrap().lock(), *sim.lock());

    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        SimConnector::load(&path),
        Err(SimError::StateFormat { .. })
    ));
}

#[tokio::test]
async fn a_replayed_fleet_is_the_fleet_that_answered_faults_drift_and_remediations_included() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        install_delay: (Duration::from_secs(60), Duration::from_secs(3600)),
        default_success_rate: 0.7,
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    for group in ["lab", "canary", "pilot"] {
        sim.add_group(group, 40).unwrap();
    }
    sim.set_success_rate("htop", "3.3.0", 0.5).unwrap();
    publish_rings(&sim, &[("lab", "lab")]).await;
    // A fault used by a read is journalled (the queue changed).
    sim.inject_fault(Fault::ServiceUnavailable).unwrap();
    assert!(sim.query_status(CORRELATION, at(5)).await.is_err());
    sim.inject_publish_fault(Fault::ResponseLostAfterApply)
        .unwrap();
    assert!(
        sim.publish(&request("canary", "canary"), at(10))
            .await
            .is_err()
    );
    sim.inject_drift(
        CORRELATION,
        Drift::AssignmentMissing {
            group: "lab".into(),
        },
        at(20),
    )
    .unwrap();
    sim.set_outage(Some(Fault::Timeout)).unwrap();
    assert!(
        sim.publish(&request("pilot", "pilot"), at(25))
            .await
            .is_err()
    );
    sim.set_outage(None).unwrap();
    sim.remediate(CORRELATION, &Remediation::Redeploy, at(30))
        .await
        .unwrap();
    sim.inject_remediate_fault(Fault::Timeout).unwrap();
    let before = sim.calls();
    let loaded = SimConnector::load(&path).unwrap();
    assert_eq!(*loaded.lock(), *sim.lock());
    assert_eq!(loaded.calls(), before);
    assert_eq!(
        loaded.query_status(CORRELATION, at(600)).await.unwrap(),
        sim.query_status(CORRELATION, at(600)).await.unwrap()
    );
}

#[tokio::test]
async fn a_torn_last_line_is_a_change_never_answered_and_is_cut_off_by_the_next() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    sim.add_group("lab", 3).unwrap();
    // A crash in the middle of an append.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, b"{\"change\":\"groups\",\"groups\":[[\"ca").unwrap();
    drop(file);
    let loaded = SimConnector::load(&path).unwrap();
    assert_eq!(*loaded.lock(), *sim.lock());
    loaded.add_group("pilot", 7).unwrap();
    let reloaded = SimConnector::load(&path).unwrap();
    let groups = reloaded.lock().groups.clone();
    assert_eq!(groups.get("lab"), Some(&3));
    assert_eq!(groups.get("pilot"), Some(&7));
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(lines(&path).len(), 3);

    // A line that does not read in the middle of the journal is an error
    // naming the file and line.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut broken: Vec<&str> = text.lines().collect();
    broken.insert(1, "{ not a change");
    std::fs::write(&path, broken.join("\n") + "\n").unwrap();
    let error = SimConnector::load(&path).unwrap_err().to_string();
    assert!(error.contains("landscape.json:2"), "{error}");
}

#[tokio::test]
async fn another_process_changes_are_kept_and_a_format_1_file_still_reads() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let daemon = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    daemon.add_group("lab", 3).unwrap();
    // A test (another handle on the file) makes the plane fail.
    let other = SimConnector::load(&path).unwrap();
    other.set_success_rate("htop", "3.3.0", 0.1).unwrap();
    // The first handle writes after it: both changes are in the file.
    daemon.add_group("canary", 4).unwrap();
    let loaded = SimConnector::load(&path).unwrap();
    assert_eq!(loaded.lock().success_rate("htop", "3.3.0"), 0.1);
    assert_eq!(loaded.lock().groups.get("canary"), Some(&4));
    // Another process compacts (renames a new file in): appends follow it.
    other.save().unwrap();
    daemon.add_group("pilot", 5).unwrap();
    assert_eq!(
        SimConnector::load(&path)
            .unwrap()
            .lock()
            .groups
            .get("pilot"),
        Some(&5)
    );

    // Format 1: the whole fleet, no newline, no journal.
    let fleet = daemon.lock().clone();
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({"format_version": 1, "fleet": fleet})).unwrap(),
    )
    .unwrap();
    let old = SimConnector::load(&path).unwrap();
    assert_eq!(*old.lock(), fleet);
    old.add_group("global", 9).unwrap();
    assert_eq!(
        SimConnector::load(&path)
            .unwrap()
            .lock()
            .groups
            .get("global"),
        Some(&9)
    );
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
