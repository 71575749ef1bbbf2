//! The state file as it was written before the compact device store
//! (issue 17): a real run's file and a scripted scenario's, both written by
//! the previous representation, read back and written byte for byte as
//! then; and devices kept in the order of their id text.

use super::super::*;
use super::htop_request as request;
use chrono::TimeZone;
use serde_json::json;

/// The fixtures' directory.
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sim")
        .join(name)
}

/// Loads `source` (snapshot and journal), saves it compacted, and answers
/// the bytes written.
fn load_and_save(source: &Path) -> Vec<u8> {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("sim.json");
    std::fs::copy(source, &path).unwrap();
    let sim = SimConnector::load(&path).unwrap();
    sim.save().unwrap();
    std::fs::read(&path).unwrap()
}

/// A real run's Intune file (12 intents, `serve --once` at 09:00 then at
/// 13:30: groups, publishes and canary publishes journalled on an empty
/// snapshot), and the file the previous representation wrote when it
/// loaded and saved it.
#[test]
fn a_real_runs_state_file_reads_back_and_writes_as_the_previous_representation_did() {
    let journalled = fixture("intune-12-intents.json");
    let saved = std::fs::read(fixture("intune-12-intents.saved.json")).unwrap();
    assert!(load_and_save(&journalled) == saved, "replayed and saved");
    assert!(
        load_and_save(&fixture("intune-12-intents.saved.json")) == saved,
        "a snapshot of devices reads back and writes byte for byte"
    );
}

fn at_nanos(seconds: i64, nanos: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
        + chrono::Duration::seconds(seconds)
        + chrono::Duration::nanoseconds(i64::from(nanos))
}

/// Every kind of device history: failures, drift, a widened scope,
/// redeploy, rollback, halt, uninstall, times with nanoseconds, and groups
/// whose names sort differently from their ids (`g`, `g-2`, `g.x`, `G`).
/// Answers the statuses and remediations seen on the way.
async fn scenario(sim: &SimConnector) -> Vec<serde_json::Value> {
    for (group, devices) in [("g", 12), ("g-2", 5), ("g.x", 3), ("G", 2), ("h", 4)] {
        sim.add_group(group, devices).unwrap();
    }
    sim.set_success_rate("htop", "3.3.0", 0.6).unwrap();
    let mut seen = Vec::new();
    let first = "corr-first";
    let second = "corr-second";
    sim.publish(&request(first, "lab", &["g-2"]), at_nanos(0, 123_456_789))
        .await
        .unwrap();
    sim.publish(
        &request(first, "canary", &["g", "g.x"]),
        at_nanos(420, 1_000),
    )
    .await
    .unwrap();
    sim.publish(&request(second, "lab", &["h", "g"]), at_nanos(30, 500_000))
        .await
        .unwrap();
    for (seconds, nanos) in [(600, 0), (1800, 999_999_999), (4000, 7)] {
        let status = sim
            .query_status(first, at_nanos(seconds, nanos))
            .await
            .unwrap();
        seen.push(serde_json::to_value(status).unwrap());
    }
    sim.inject_drift(
        first,
        Drift::VersionReverted {
            to_version: "3.2.2".into(),
            devices: 6,
        },
        at_nanos(10_800, 250_000_001),
    )
    .unwrap();
    sim.inject_drift(
        first,
        Drift::ScopeWidened {
            extra_group: "G".into(),
        },
        at_nanos(10_860, 0),
    )
    .unwrap();
    let remediations = [
        (first, Remediation::Redeploy, 10_920),
        (
            first,
            Remediation::Rollback {
                to_version: "3.2.2".into(),
                strategy: None,
            },
            10_980,
        ),
        (first, Remediation::Halt, 11_000),
        (second, Remediation::RingPin { ring: "lab".into() }, 11_040),
        (second, Remediation::Uninstall, 11_100),
    ];
    for (correlation_id, remediation, seconds) in remediations {
        let result = sim
            .remediate(correlation_id, &remediation, at_nanos(seconds, 42))
            .await
            .unwrap();
        seen.push(serde_json::to_value(result).unwrap());
    }
    for correlation_id in [first, second] {
        for seconds in [11_050, 20_000] {
            let status = sim
                .query_status(correlation_id, at_nanos(seconds, 3))
                .await
                .unwrap();
            seen.push(serde_json::to_value(status).unwrap());
        }
    }
    // A call journalled last: the file's call counters are the fleet's.
    let halted = sim
        .remediate(second, &Remediation::Halt, at_nanos(20_000, 3))
        .await
        .unwrap();
    seen.push(serde_json::to_value(halted).unwrap());
    seen
}

/// The scenario's answers and its saved state file are those the previous
/// representation gave and wrote (fixtures written by it); its file reads
/// back and writes byte for byte.
#[tokio::test]
async fn a_scenario_answers_and_writes_as_the_previous_representation_did() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        seed: 11,
        install_delay: (Duration::from_secs(60), Duration::from_secs(3600)),
        default_success_rate: 0.9,
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    let seen = scenario(&sim).await;
    let journalled = std::fs::read(&path).unwrap();
    sim.save().unwrap();
    let saved = std::fs::read(&path).unwrap();

    let answers: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("scenario.answers.json")).unwrap()).unwrap();
    assert_eq!(json!(seen), answers);
    assert!(
        journalled == std::fs::read(fixture("scenario.journalled.json")).unwrap(),
        "the journalled file"
    );
    assert!(
        saved == std::fs::read(fixture("scenario.saved.json")).unwrap(),
        "the saved file"
    );
    assert!(load_and_save(&fixture("scenario.journalled.json")) == saved);
    assert!(load_and_save(&fixture("scenario.saved.json")) == saved);
}

/// Devices are iterated (drift, status, the state file) in the order of
/// their id text: `g-2/…` before `g/…` (`-` sorts before `/`), and within
/// a group `…-10000`, `…-100000`, `…-10001` (an index above 99999 is six
/// digits wide). `VersionReverted` takes the first devices in that order.
#[tokio::test]
async fn devices_are_kept_in_the_order_of_their_id_text() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        install_delay: (Duration::from_secs(60), Duration::from_secs(600)),
        default_success_rate: 1.0,
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    sim.add_group("g", 100_002).unwrap();
    sim.add_group("g-2", 3).unwrap();
    sim.publish(&request("corr-order", "lab", &["g", "g-2"]), at_nanos(0, 0))
        .await
        .unwrap();
    // g-2's three devices, g's 00000 to 10000 (10,001), then g/device-100000.
    let reverted = 3 + 10_001 + 1;
    sim.inject_drift(
        "corr-order",
        Drift::VersionReverted {
            to_version: "3.2.2".into(),
            devices: reverted,
        },
        at_nanos(3600, 0),
    )
    .unwrap();
    sim.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let position = |id: &str| {
        text.find(&format!("\"{id}\":{{"))
            .unwrap_or_else(|| panic!("{id} in the state file"))
    };
    let in_order = [
        "g-2/device-00000",
        "g-2/device-00002",
        "g/device-00000",
        "g/device-09999",
        "g/device-10000",
        "g/device-100000",
        "g/device-100001",
        "g/device-10001",
        "g/device-99999",
    ];
    for pair in in_order.windows(2) {
        assert!(position(pair[0]) < position(pair[1]), "{pair:?}");
    }
    let file: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let devices = file["fleet"]["apps"][0]["devices"].as_object().unwrap();
    let attempts = |id: &str| devices[id]["attempts"].as_array().unwrap().len();
    for id in ["g-2/device-00002", "g/device-10000", "g/device-100000"] {
        assert_eq!(attempts(id), 2, "{id} reverted");
    }
    for id in ["g/device-100001", "g/device-10001", "g/device-99999"] {
        assert_eq!(attempts(id), 1, "{id} not reverted");
    }
    let reverted_count = devices
        .values()
        .filter(|device| device["attempts"].as_array().unwrap().len() == 2)
        .count();
    assert_eq!(reverted_count, reverted as usize);
    let status = sim
        .query_status("corr-order", at_nanos(3600, 0))
        .await
        .unwrap();
    assert_eq!(
        status.observed.installed_versions.get("3.2.2"),
        Some(&reverted)
    );
}

/// Every text the fleet repeats (groups, rings, versions, an app's id in
/// its assignments), each with the first record that held it: a text held
/// twice is not this first one.
fn texts_held_twice(fleet: &super::super::fleet::SimFleet) -> Vec<String> {
    use super::super::shared::Shared;
    let mut texts: Vec<&Shared> = Vec::new();
    for app in &fleet.apps {
        texts.push(&app.published_version);
        texts.extend(&app.delivered_version);
        texts.extend(&app.supersedes_version);
        texts.extend(&app.pinned_ring);
        texts.extend(app.devices.texts().shared());
        for published in &app.rings {
            texts.push(&published.ring);
            texts.extend(published.groups.iter().chain(&published.exclusions));
        }
    }
    for assignment in &fleet.assignments {
        let app = fleet.apps.iter().find(|app| app.id == assignment.app_id);
        texts.extend([&assignment.group, &assignment.ring]);
        texts.extend(app.map(|app| &app.id));
        texts.push(&assignment.app_id);
    }
    let mut first: std::collections::HashMap<&str, &Shared> = Default::default();
    let mut twice = Vec::new();
    for text in texts {
        let held = first.entry(text.as_str()).or_insert(text);
        if !held.is(text) {
            twice.push(text.to_string());
        }
    }
    twice
}

/// Issue 17: the fleet holds each text its records repeat once, and a
/// fleet read from its state file (snapshot and journal, or snapshot
/// alone) holds them once as well, and is the same fleet.
#[tokio::test]
async fn a_fleet_holds_each_repeated_text_once_and_so_does_one_read_back() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("landscape.json");
    let sim = SimConnector::new(SimConfig {
        state_file: Some(path.clone()),
        seed: 11,
        ..SimConfig::for_plane(Plane::Landscape)
    })
    .unwrap();
    scenario(&sim).await;
    // The scenario's last calls withdrew every assignment: one app more.
    sim.publish(
        &request("corr-third", "lab", &["g", "h"]),
        at_nanos(30_000, 0),
    )
    .await
    .unwrap();
    let journalled = SimConnector::load(&path).unwrap();
    sim.save().unwrap();
    let saved = SimConnector::load(&path).unwrap();
    let live = sim.lock();
    assert!(live.assignments.len() == 2 && live.apps.len() == 3);
    assert_eq!(texts_held_twice(&live), Vec::<String>::new(), "live");
    for (name, read) in [("journalled", journalled), ("saved", saved)] {
        let read = read.lock();
        assert!(*read == *live, "{name}");
        assert_eq!(texts_held_twice(&read), Vec::<String>::new(), "{name}");
    }
}
