//! Bypass 8: `target_scope.sites` parsed and silently ignored. An intent
//! that says "only these sites" must not be rolled out to the whole
//! business unit: no connector narrows its assignment by site, so every
//! judge refuses such an intent on every plane with file:line, and the
//! connector boundary refuses a publish request that still carries sites.

use crate::harness::{Attack, NOW, each_judge};
use chrono::{DateTime, Utc};
use ringmaster::planes::{
    Connector, ConnectorConfig, ErrorCode, ExecutionPlaneConnector, PublishRequest,
};

/// One intent per plane of the sample tenant.
const INTENTS: [(&str, &str); 5] = [
    ("chrome-131-finance", "intune"),
    ("zoom-6.3.0-finance", "jamf"),
    ("7zip-25.1.0-engineering", "sccm"),
    ("osquery-6.0.0-it", "landscape"),
    ("build-agent-2.8.0-engineering", "ansible"),
];

/// Each intent of the sample limited to one site, as a site-limited
/// publisher would write it: inside every scope, so policy alone says ALLOW.
fn site_limited() -> Attack {
    let attack = Attack::new();
    for (intent, _) in INTENTS {
        let path = format!("intents/{intent}.yaml");
        let text = attack.repo.read(&path);
        let boundary = text
            .lines()
            .find(|line| line.trim_start().starts_with("acquisition_boundary:"))
            .expect("a target boundary")
            .to_owned();
        attack.repo.edit(
            &path,
            &boundary,
            &format!("{boundary}\n  sites: [geo-apac-sydney]"),
        );
    }
    attack.commit("limit every rollout to the Sydney site");
    attack
}

#[test]
fn sites_no_plane_narrows_by_are_refused_by_every_judge() {
    let attack = site_limited();
    each_judge(&attack, |judge, verdict| {
        for (intent, plane) in INTENTS {
            let expected = format!(
                "intents/{intent}.yaml: target_scope.sites [geo-apac-sydney] cannot be honoured on plane {plane}"
            );
            assert!(
                verdict.errors.iter().any(|e| e.starts_with(&expected)),
                "{judge} did not refuse the sites of {intent}: {verdict:#?}"
            );
        }
    });
}

/// `validate` names the line of `sites`, and `plan` refuses the same intent.
#[test]
fn the_refusal_points_at_the_sites_line_in_validate_and_plan() {
    let attack = site_limited();
    let path = &attack.repo.path;
    let output =
        crate::support::ringmaster(&["validate", ".", "--rev", "attack", "--now", NOW], path);
    let shown = format!(
        "{}{}",
        crate::support::stdout(&output),
        crate::support::stderr(&output)
    );
    assert_eq!(output.status.code(), Some(1), "{shown}");
    for (intent, _) in INTENTS {
        let text = attack.repo.read(&format!("intents/{intent}.yaml"));
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("sites:"))
            .expect("sites line")
            + 1;
        assert!(
            shown.contains(&format!("intents/{intent}.yaml:{line}")),
            "validate does not point at intents/{intent}.yaml:{line}: {shown}"
        );
    }
    let output = crate::support::ringmaster(
        &[
            "plan",
            ".",
            "osquery-6.0.0-it",
            "--rev",
            "attack",
            "--now",
            NOW,
        ],
        path,
    );
    let shown = format!(
        "{}{}",
        crate::support::stdout(&output),
        crate::support::stderr(&output)
    );
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("cannot be honoured on plane landscape"),
        "plan does not refuse: {shown}"
    );
}

/// Without the sites the same intents load without an error and are
/// judged: the refusal is about sites, not the intents.
#[test]
fn the_same_intents_without_sites_are_judged() {
    let attack = Attack::new();
    attack.repo.write("NOTES.md", "nothing governed changes\n");
    attack.commit("no change");
    let verdict = attack.validate();
    assert!(verdict.errors.is_empty(), "{verdict:#?}");
    for (intent, _) in INTENTS {
        assert_ne!(verdict.decision(intent), "(not judged)", "{verdict:#?}");
    }
}

fn request(sites: Option<Vec<String>>) -> PublishRequest {
    PublishRequest {
        correlation_id: "corr-sites".into(),
        intent_id: "osquery-6.0.0-it".into(),
        application_id: "osquery".into(),
        application_name: "osquery".into(),
        version: "6.0.0".into(),
        plane: ringmaster::model::Plane::Landscape,
        ring: "ring-0-lab".into(),
        artifact: ringmaster::planes::ArtifactRef {
            id: "osquery-deb".into(),
            file: "osquery_6.0.0_amd64.deb".into(),
            sha256: format!("sha256:{}", "ab".repeat(32)),
            install: "apt-get install -y osquery=6.0.0".into(),
            uninstall: "apt-get remove -y osquery".into(),
            detection_type: "package".into(),
            detection_value: "osquery".into(),
        },
        groups: vec!["group-0".into()],
        exclusions: vec![],
        expected_devices: 5,
        supersedes_version: None,
        sites,
    }
}

/// Defence in depth: a publish request that carries sites (from a judge
/// that let it through, or a hand-made request) never reaches the plane.
#[test]
fn the_connector_boundary_refuses_a_request_with_sites() {
    let config: ConnectorConfig = serde_json::from_value(serde_json::json!({
        "type": "sim", "plane": "landscape", "seed": 7
    }))
    .expect("sim config");
    let connector: Connector = config.build().expect("sim connector");
    let now: DateTime<Utc> = NOW.parse().expect("now");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let refused = runtime
        .block_on(connector.publish(&request(Some(vec!["geo-apac-sydney".into()])), now))
        .expect_err("sites are refused");
    assert_eq!(refused.code, ErrorCode::InvalidRequest, "{refused:?}");
    assert!(
        refused
            .message
            .contains("cannot be honoured on plane landscape"),
        "{refused:?}"
    );
    assert!(
        !runtime
            .block_on(connector.verify_idempotency("corr-sites", now))
            .expect("asked"),
        "the refused request reached the plane"
    );
}

/// An entitlement's posture is not applied by any connector: every judge
/// says so with file:line on the rule, and the blast radius lists it as not
/// applied instead of implying the devices were filtered.
#[test]
fn posture_no_connector_applies_is_shown_as_not_applied_in_the_blast_radius() {
    let attack = Attack::new();
    let rule = "entitlements/landscape-acq001-it-ring-1-canary.yaml";
    attack.repo.edit(
        rule,
        "encryption_required: false",
        "encryption_required: true",
    );
    attack.commit("the Landscape canary needs encrypted disks");
    let path = &attack.repo.path;
    let output = crate::support::ringmaster(
        &[
            "plan",
            ".",
            "osquery-6.0.0-it",
            "--rev",
            "attack",
            "--now",
            NOW,
            "--format",
            "json",
        ],
        path,
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("plan prints JSON");
    let canary = plan["blast_radius"]
        .as_array()
        .expect("blast radius")
        .iter()
        .find(|row| row["ring"] == "ring-1-canary")
        .expect("canary row");
    assert_eq!(
        canary["posture_not_applied"],
        serde_json::json!(["min_os_version 22.04", "encryption_required"]),
        "{plan:#}"
    );
}
