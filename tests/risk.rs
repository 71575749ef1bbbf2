//! The risk rubric v1.0, factor by factor: one mutation of the sample tenant
//! per line, and the normalized value each factor must then take.

use ringmaster::model::{self, Entry, Severity, Snapshot};
use ringmaster::risk::{self, Threshold};
use ringmaster::sample::SAMPLE_REPO;

fn sample() -> Snapshot {
    let entries: Vec<Entry> = SAMPLE_REPO
        .iter()
        .map(|(p, b)| Entry::file(*p, b.to_vec()))
        .collect();
    let (snapshot, diagnostics) = model::load(&entries);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    snapshot
}

const INTENT: &str = "chrome-131-finance";

/// Applies `mutate` to a fresh sample, scores the intent, and checks one factor.
fn check(factor: &str, mutate: impl FnOnce(&mut Snapshot), expected: f64) {
    let mut snapshot = sample();
    mutate(&mut snapshot);
    let intent = snapshot.intents[INTENT].value.clone();
    let assessment = risk::assess(&snapshot, &intent).expect("assessable");
    let value = assessment
        .factors
        .iter()
        .find(|f| f.name == factor)
        .unwrap_or_else(|| panic!("no factor {factor}"))
        .normalized_value;
    assert!(
        (value - expected).abs() < 1e-9,
        "{factor}: expected {expected}, got {value} ({assessment:#?})"
    );
}

fn artifact(snapshot: &mut Snapshot) -> &mut model::Artifact {
    let intent = snapshot.intents[INTENT].value.clone();
    let version = snapshot
        .versions
        .get_mut(&(intent.application_id.clone(), intent.version.clone()))
        .expect("version");
    version
        .value
        .artifacts
        .iter_mut()
        .find(|a| a.sha256 == intent.artifact_hash)
        .expect("artifact")
}

fn application(snapshot: &mut Snapshot) -> &mut model::Application {
    let id = snapshot.intents[INTENT].application_id.clone();
    &mut snapshot.applications.get_mut(&id).expect("app").value
}

fn cve(severity: Severity) -> model::Cve {
    model::Cve {
        id: "CVE-2026-0001".into(),
        severity,
        component: "libx 1.0".into(),
        fixed_in: None,
    }
}

#[test]
fn privilege_impact() {
    check("privilege_impact", |_| {}, 0.1);
    check(
        "privilege_impact",
        |s| application(s).privileged = true,
        1.0,
    );
    check(
        "privilege_impact",
        |s| application(s).category = "security-agent".into(),
        0.5,
    );
    check(
        "privilege_impact",
        |s| application(s).category = "driver".into(),
        0.5,
    );
}

#[test]
fn supply_chain_trust() {
    check("supply_chain_trust", |_| {}, 0.1);
    check(
        "supply_chain_trust",
        |s| artifact(s).signature.signed = false,
        1.0,
    );
    check(
        "supply_chain_trust",
        |s| artifact(s).signature.verified = false,
        0.6,
    );
    check(
        "supply_chain_trust",
        |s| artifact(s).provenance.source = "unknown".into(),
        0.8,
    );
    check(
        "supply_chain_trust",
        |s| artifact(s).provenance.slsa_level = Some(1),
        0.3,
    );
    check(
        "supply_chain_trust",
        |s| artifact(s).provenance.source = "repackaged".into(),
        0.3,
    );
}

#[test]
fn vulnerability_exposure_takes_the_worst_cve() {
    check("vulnerability_exposure", |_| {}, 0.0);
    check(
        "vulnerability_exposure",
        |s| artifact(s).sbom.cves = vec![cve(Severity::Low)],
        0.2,
    );
    check(
        "vulnerability_exposure",
        |s| artifact(s).sbom.cves = vec![cve(Severity::Medium)],
        0.4,
    );
    check(
        "vulnerability_exposure",
        |s| artifact(s).sbom.cves = vec![cve(Severity::Low), cve(Severity::High)],
        0.8,
    );
    check(
        "vulnerability_exposure",
        |s| artifact(s).sbom.cves = vec![cve(Severity::Critical)],
        1.0,
    );
}

#[test]
fn blast_radius_follows_entitled_devices() {
    let only_lab = |s: &mut Snapshot| {
        s.intents
            .get_mut(INTENT)
            .expect("intent")
            .value
            .target_scope
            .rings = vec!["ring-0-lab".into()];
    };
    let lab_devices = {
        let s = sample();
        let rule = s
            .entitlement_for(model::Plane::Intune, "ring-0-lab", "acq-001", "bu-finance")
            .expect("lab entitlement");
        f64::from(rule.expected_devices)
    };
    let expected = ((1.0 + lab_devices).log10() / 4.0 * 100.0).round() / 100.0;
    check("blast_radius", only_lab, expected);
    let huge = |s: &mut Snapshot| {
        for rule in s.entitlements.values_mut() {
            rule.value.expected_devices = 100_000;
        }
    };
    check("blast_radius", huge, 1.0);
}

#[test]
fn change_magnitude_compares_with_the_previous_version() {
    // 130.0.6723 → 131.0.6778 is a major step in semver terms.
    check("change_magnitude", |_| {}, 1.0);
    let only_version = |s: &mut Snapshot| {
        let keep = s.intents[INTENT].version.clone();
        s.versions
            .retain(|(app, version), _| app != "google-chrome" || *version == keep);
    };
    check("change_magnitude", only_version, 0.6);
}

#[test]
fn rollback_readiness() {
    check("rollback_readiness", |_| {}, 0.0);
    let unvalidated = |s: &mut Snapshot| {
        s.intents
            .get_mut(INTENT)
            .expect("intent")
            .value
            .rollback_plan
            .as_mut()
            .expect("plan")
            .validated = false;
    };
    check("rollback_readiness", unvalidated, 0.6);
    let none = |s: &mut Snapshot| {
        s.intents
            .get_mut(INTENT)
            .expect("intent")
            .value
            .rollback_plan = None
    };
    check("rollback_readiness", none, 1.0);
}

#[test]
fn score_is_the_rounded_sum_and_threshold_follows_the_config() {
    let mut snapshot = sample();
    let intent = snapshot.intents[INTENT].value.clone();
    let assessment = risk::assess(&snapshot, &intent).expect("assessable");
    let sum: f64 = assessment
        .factors
        .iter()
        .map(|f| f.weight * f.normalized_value)
        .sum();
    assert_eq!(assessment.risk_score, sum.round() as u32);
    assert_eq!(assessment.risk_model_version, "v1.0");
    assert_eq!(assessment.threshold, Threshold::AutomatedAllowed);
    snapshot
        .config
        .as_mut()
        .expect("config")
        .value
        .cab
        .risk_threshold = assessment.risk_score - 1;
    let assessment = risk::assess(&snapshot, &intent).expect("assessable");
    assert_eq!(assessment.threshold, Threshold::CabRequired);
}

#[test]
fn unknown_risk_model_is_an_error() {
    let mut snapshot = sample();
    snapshot
        .config
        .as_mut()
        .expect("config")
        .value
        .risk_model_version = "v9".into();
    let intent = snapshot.intents[INTENT].value.clone();
    assert!(matches!(
        risk::assess(&snapshot, &intent),
        Err(risk::RiskError::UnknownModel(_))
    ));
}
