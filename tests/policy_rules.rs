//! Table-driven tests of every built-in policy rule, both sides, plus tenant
//! policies (added findings, refused packages, syntax errors, time limit).
//!
//! Each case starts from `baseline()`, a realistic input that evaluates to
//! ALLOW, mutates it, and checks the decision and the rule ids that fired.
//!
//! Every evaluation goes through both paths, `PolicyEngine::evaluate` (RVM
//! for the built-in rules) and `PolicyEngine::evaluate_interpreted` (the
//! reference), and asserts that they give the same outcome or the same error
//! (see `evaluate_both`), so no table case can pass on one path only.

use ringmaster::policy::{
    Decision, EvaluationPath, PolicyEngine, PolicyError, PolicyOutcome, ReasonKind,
};
use serde_json::{Value as Json, json};
use std::sync::OnceLock;

/// The built-in bundle, compiled once and shared by every test thread.
fn builtin_engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PolicyEngine::new(&[]).expect("built-in bundle compiles"))
}

fn principal(id: &str, roles: &[&str], business_units: &[&str]) -> Json {
    json!({
        "id": id,
        "email": format!("{id}@example.com"),
        "forge_login": id,
        "roles": roles,
        "scope": {"acquisition_boundaries": ["acq-001"], "business_units": business_units},
    })
}

/// The baseline intent's digest (`intent_sha256`): approvals carry it.
const INTENT_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// The baseline artifact's hash: exceptions are granted for it.
const ARTIFACT_SHA256: &str =
    "sha256:9f2c6a0d4e1b3c5a7f9e8d6c4b2a0f1e3d5c7b9a8f6e4d2c0b1a3f5e7d9c8b6a";

fn approval(id: &str, decided_by: &str, decision: &str, expiry: &str) -> Json {
    json!({
        "approval_id": id,
        "deployment_intent_id": "vpn-6.3-finance",
        "intent_sha256": INTENT_DIGEST,
        "decision": decision,
        "decided_by": decided_by,
        "decided_at": "2026-11-27T09:30:00Z",
        "submitted_by": "alice",
        "assigned_to": [decided_by],
        "conditions": [{"description": "hold at pilot for 48h", "hold_at_ring": "ring-2-pilot", "min_soak_hours": 48.0}],
        "expiry": expiry,
        "justification": "Reviewed test evidence from the lab ring.",
        "emergency_override": false,
    })
}

fn vulnerability_exception(id: &str, approved_by: &str, expiry: &str) -> Json {
    json!({
        "exception_id": id,
        "artifact_id": "vpn-6.3.0-win",
        "artifact_sha256": ARTIFACT_SHA256,
        "exception_type": "vulnerability",
        "severity": "high",
        "details": "OpenSSL CVE reachable only through the disabled legacy API.",
        "cves": ["CVE-2026-1234"],
        "compensating_controls": ["legacy API disabled by configuration profile"],
        "approved_by": approved_by,
        "approved_at": "2026-11-20T10:00:00Z",
        "expiry": expiry,
        "owner": "alice",
    })
}

/// A realistic intent that passes every rule: alice publishes VPN 6.3.0 to
/// acq-001/bu-finance up to the pilot ring, risk 62 (CAB needed) with one
/// counted approval by carol, and a high CVE covered by dave's exception.
fn baseline() -> Json {
    json!({
        "now": "2026-11-28T12:00:00Z",
        "intent_sha256": INTENT_DIGEST,
        "intent": {
            "intent_id": "vpn-6.3-finance",
            "application_id": "vpn",
            "version": "6.3.0",
            "artifact_hash": "sha256:9f2c6a0d4e1b3c5a7f9e8d6c4b2a0f1e3d5c7b9a8f6e4d2c0b1a3f5e7d9c8b6a",
            "target_scope": {
                "acquisition_boundary": "acq-001",
                "business_unit": "bu-finance",
                "rings": ["ring-0-lab", "ring-1-canary", "ring-2-pilot"],
            },
            "schedule": {"ring-0-lab": {"start": "2026-11-29T08:00:00Z", "duration_hours": 24.0}},
            "promotion_gates": {"success_rate_threshold": 0.97},
            "rollback_plan": {
                "strategy": "intune-supersedence",
                "rollback_version": "6.2.1",
                "validated": true,
                "validation_date": "2026-11-25T14:00:00Z",
            },
            "requested_by": "alice",
            "description": "VPN client 6.3.0 for finance",
            "supersedes": "vpn-6.2.1-finance",
        },
        "application": {
            "id": "vpn",
            "name": "Corporate VPN client",
            "owner": "alice",
            "category": "network",
            "support_tier": "tier-1",
            "licensing": "enterprise",
            "privileged": false,
            "planes": ["intune", "jamf"],
            "allowed_scope": {"acquisition_boundaries": ["acq-001"], "business_units": ["bu-finance", "bu-hr"]},
        },
        "version": {
            "application_id": "vpn",
            "version": "6.3.0",
            "os_matrix": [{"os": "windows", "min_version": "10.0.19045", "arch": ["x64"]}],
            "dependencies": [],
            "artifacts": [],
        },
        "artifact": {
            "id": "vpn-6.3.0-win",
            "plane": "intune",
            "file": "vpn-6.3.0-x64.intunewin",
            "sha256": "sha256:9f2c6a0d4e1b3c5a7f9e8d6c4b2a0f1e3d5c7b9a8f6e4d2c0b1a3f5e7d9c8b6a",
            "signature": {"signed": true, "signer": "Example VPN Vendor Inc.", "verified": true},
            "provenance": {"source": "vendor", "slsa_level": 2},
            "sbom": {
                "format": "cyclonedx",
                "components": 212,
                "cves": [
                    {"id": "CVE-2026-1234", "severity": "high", "component": "openssl", "fixed_in": "3.0.16"},
                    {"id": "CVE-2026-0042", "severity": "medium", "component": "zlib"},
                ],
            },
            "install": "setup.exe /quiet",
            "uninstall": "setup.exe /uninstall /quiet",
            "detection": {"type": "msi_product_code", "value": "{5A1B2C3D-0000-4000-8000-000000000001}", "version": "6.3.0"},
        },
        "publisher": principal("alice", &["publisher"], &["bu-finance"]),
        "config": {
            "tenant": "example-corp",
            "risk_model_version": "v1.0",
            "rings": [
                {"id": "ring-0-lab", "name": "Lab", "soak_hours": 24.0},
                {"id": "ring-1-canary", "name": "Canary", "soak_hours": 48.0},
                {"id": "ring-2-pilot", "name": "Pilot", "soak_hours": 72.0},
                {"id": "ring-3-department", "name": "Department", "soak_hours": 96.0},
                {"id": "ring-4-global", "name": "Global", "soak_hours": 0.0},
            ],
            "gates": {"success_rate_threshold": 0.95, "time_to_compliance_hours": 48.0, "max_incidents": 0, "min_reporting_devices": 5},
            "cab": {
                "risk_threshold": 50,
                "from_ring": "ring-2-pilot",
                "approvals_by_risk": [{"above": 50, "approvals": 1}, {"above": 75, "approvals": 2}],
            },
            "change_freezes": [],
            "planes": ["intune", "jamf"],
            "remediation": "ticket",
        },
        "rings": [
            {"id": "ring-0-lab", "index": 0},
            {"id": "ring-1-canary", "index": 1},
            {"id": "ring-2-pilot", "index": 2},
        ],
        "cab_ring_index": 2,
        "risk": {
            "risk_score": 62,
            "risk_model_version": "v1.0",
            "threshold": "CAB_REQUIRED",
            "factors": [
                {"name": "privilege_impact", "normalized_value": 0.5, "weight": 20, "contribution": 10.0},
                {"name": "blast_radius", "normalized_value": 0.8, "weight": 25, "contribution": 20.0},
            ],
        },
        "approvals": [{
            "record": approval("apr-1", "carol", "approved", "2026-12-31T00:00:00Z"),
            "approver": principal("carol", &["cab-approver"], &["bu-finance", "bu-hr"]),
        }],
        "exceptions": [{
            "record": vulnerability_exception("exc-1", "dave", "2027-02-01T00:00:00Z"),
            "approver": principal("dave", &["security-reviewer"], &["*"]),
        }],
        "conflicts": [],
        "active_changes": [],
        "rolled_back_versions": [],
        "previous_application": null,
    })
}

// --- the check helpers ---------------------------------------------------------

/// Sets the value at a JSON pointer (the parent must exist).
fn set(input: &mut Json, pointer: &str, value: Json) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let parent = input
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match parent {
        Json::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Json::Array(items) => items[key.parse::<usize>().expect("array index")] = value,
        other => panic!("{pointer}: parent is {other}"),
    }
}

fn remove(input: &mut Json, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let parent = input.pointer_mut(parent).and_then(Json::as_object_mut);
    parent
        .unwrap_or_else(|| panic!("no object at {pointer}"))
        .remove(key);
}

fn push(input: &mut Json, pointer: &str, value: Json) {
    let list = input.pointer_mut(pointer).and_then(Json::as_array_mut);
    list.unwrap_or_else(|| panic!("no array at {pointer}"))
        .push(value);
}

/// Evaluates through both paths and asserts that they agree exactly, outcome
/// or error; inputs of the documented shape must take the compiled path.
fn evaluate_both(engine: &PolicyEngine, input: &Json) -> Result<PolicyOutcome, PolicyError> {
    let compiled = engine.evaluate(input);
    let interpreted = engine.evaluate_interpreted(input);
    assert_eq!(compiled, interpreted, "the two paths disagree on {input:#}");
    compiled
}

fn evaluate_with(engine: &PolicyEngine, mutate: impl FnOnce(&mut Json)) -> PolicyOutcome {
    let mut input = baseline();
    mutate(&mut input);
    assert_eq!(
        engine.evaluation_path(&input),
        EvaluationPath::Compiled,
        "table inputs have the documented shape"
    );
    evaluate_both(engine, &input).expect("evaluation succeeds")
}

/// Mutates the baseline, evaluates, and checks the decision and the rule ids
/// of the deciding reasons (sorted by kind, then id; without repeats).
fn check(mutate: impl FnOnce(&mut Json), decision: Decision, rules: &[&str]) -> PolicyOutcome {
    let outcome = evaluate_with(builtin_engine(), mutate);
    assert_eq!(
        (outcome.decision, outcome.rule_ids()),
        (decision, rules.to_vec()),
        "reasons: {:#?}",
        outcome.reasons
    );
    outcome
}

/// Rule ids of the notes, in order.
fn note_ids(outcome: &PolicyOutcome) -> Vec<&str> {
    outcome
        .notes
        .iter()
        .map(|note| note.rule.as_str())
        .collect()
}

fn message_of<'a>(outcome: &'a PolicyOutcome, rule: &str) -> &'a str {
    let found = outcome
        .reasons
        .iter()
        .chain(&outcome.notes)
        .find(|r| r.rule == rule);
    &found
        .unwrap_or_else(|| panic!("no {rule} in {outcome:#?}"))
        .message
}

const EXPIRED: &str = "2026-11-01T00:00:00Z";
const LIVE: &str = "2026-12-31T00:00:00Z";

// --- baseline -------------------------------------------------------------------

#[test]
fn baseline_is_allowed_with_one_counted_approval() {
    let outcome = check(|_| {}, Decision::Allow, &[]);
    assert_eq!(outcome.approvals_required, 1);
    assert_eq!(outcome.counted_approvals, vec!["apr-1"]);
    assert!(outcome.notes.is_empty(), "{:#?}", outcome.notes);
}

// --- approvals and exceptions bound to content -----------------------------------

#[test]
fn approval_of_other_content_is_stale_and_does_not_count() {
    let outcome = check(
        |input| {
            set(
                input,
                "/intent_sha256",
                json!("sha256:2222222222222222222222222222222222222222222222222222222222222222"),
            )
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.approval_stale"]);
    assert!(
        message_of(&outcome, "cab.approval_stale").contains("intent_sha256: sha256:2222"),
        "the note tells the digest to record"
    );
}

#[test]
fn approval_without_a_digest_does_not_count() {
    let outcome = check(
        |input| {
            input["approvals"][0]["record"]
                .as_object_mut()
                .expect("record")
                .remove("intent_sha256");
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.approval_stale"]);
}

#[test]
fn a_swapped_binary_loses_its_exception() {
    let outcome = check(
        |input| {
            set(
                input,
                "/artifact/sha256",
                json!("sha256:3333333333333333333333333333333333333333333333333333333333333333"),
            )
        },
        Decision::RequireException,
        &["exception.vulnerability"],
    );
    assert_eq!(note_ids(&outcome), vec!["exception.artifact_changed"]);
}

// --- scope.publisher_unknown ----------------------------------------------------

#[test]
fn unknown_publisher_is_denied() {
    check(
        |input| set(input, "/publisher", Json::Null),
        Decision::Deny,
        &["scope.publisher_unknown"],
    );
}

#[test]
fn requester_without_publisher_role_is_denied() {
    check(
        |input| set(input, "/publisher/roles", json!(["packaging"])),
        Decision::Deny,
        &["scope.publisher_unknown"],
    );
}

// --- scope.cross_boundary -------------------------------------------------------

/// Opens acq-002 to the application and to carol, so only the publisher decides.
fn target_acq_002(input: &mut Json) {
    set(
        input,
        "/intent/target_scope/acquisition_boundary",
        json!("acq-002"),
    );
    set(
        input,
        "/application/allowed_scope/acquisition_boundaries",
        json!(["acq-001", "acq-002"]),
    );
    set(
        input,
        "/approvals/0/approver/scope/acquisition_boundaries",
        json!(["*"]),
    );
}

#[test]
fn target_in_another_boundary_is_denied() {
    let outcome = check(target_acq_002, Decision::Deny, &["scope.cross_boundary"]);
    assert!(
        message_of(&outcome, "scope.cross_boundary").starts_with(
            r#"target_scope.acquisition_boundary "acq-002" is outside publisher alice's boundaries [acq-001]"#
        ),
        "{outcome:#?}"
    );
}

#[test]
fn publisher_of_every_boundary_may_cross() {
    check(
        |input| {
            target_acq_002(input);
            set(
                input,
                "/publisher/scope/acquisition_boundaries",
                json!(["*"]),
            );
        },
        Decision::Allow,
        &[],
    );
}

// --- scope.outside_publisher ----------------------------------------------------

#[test]
fn business_unit_outside_publisher_scope_is_denied() {
    let outcome = check(
        |input| set(input, "/intent/target_scope/business_unit", json!("bu-hr")),
        Decision::Deny,
        &["scope.outside_publisher"],
    );
    assert!(
        message_of(&outcome, "scope.outside_publisher").starts_with(
            r#"target_scope.business_unit "bu-hr" is outside publisher alice's scope [bu-finance]"#
        ),
        "{outcome:#?}"
    );
}

#[test]
fn publisher_limited_to_sites_cannot_target_every_site() {
    check(
        |input| set(input, "/publisher/scope/sites", json!(["geo-us-east"])),
        Decision::Deny,
        &["scope.outside_publisher"],
    );
}

#[test]
fn publisher_limited_to_sites_may_target_those_sites() {
    check(
        |input| {
            set(
                input,
                "/publisher/scope/sites",
                json!(["geo-us-east", "geo-us-west"]),
            );
            set(input, "/intent/target_scope/sites", json!(["geo-us-east"]));
        },
        Decision::Allow,
        &[],
    );
}

#[test]
fn site_outside_publisher_sites_is_denied() {
    let outcome = check(
        |input| {
            set(input, "/publisher/scope/sites", json!(["geo-us-east"]));
            set(
                input,
                "/intent/target_scope/sites",
                json!(["geo-us-east", "geo-emea-london"]),
            );
        },
        Decision::Deny,
        &["scope.outside_publisher"],
    );
    assert!(message_of(&outcome, "scope.outside_publisher").contains("\"geo-emea-london\""));
}

#[test]
fn publisher_with_every_site_wildcard_may_target_every_site() {
    check(
        |input| set(input, "/publisher/scope/sites", json!(["*"])),
        Decision::Allow,
        &[],
    );
}

// --- scope.outside_application ----------------------------------------------------

#[test]
fn business_unit_outside_application_scope_is_denied() {
    check(
        |input| {
            set(input, "/intent/target_scope/business_unit", json!("bu-it"));
            set(input, "/publisher/scope/business_units", json!(["*"]));
            set(
                input,
                "/approvals/0/approver/scope/business_units",
                json!(["*"]),
            );
        },
        Decision::Deny,
        &["scope.outside_application"],
    );
}

#[test]
fn boundary_outside_application_scope_is_denied() {
    check(
        |input| {
            target_acq_002(input);
            set(
                input,
                "/publisher/scope/acquisition_boundaries",
                json!(["*"]),
            );
            set(
                input,
                "/application/allowed_scope/acquisition_boundaries",
                json!(["acq-001"]),
            );
        },
        Decision::Deny,
        &["scope.outside_application"],
    );
}

#[test]
fn application_limited_to_sites_cannot_go_to_every_site() {
    check(
        |input| {
            set(
                input,
                "/application/allowed_scope/sites",
                json!(["geo-us-east"]),
            )
        },
        Decision::Deny,
        &["scope.outside_application"],
    );
}

#[test]
fn application_limited_to_sites_may_go_to_those_sites() {
    check(
        |input| {
            set(
                input,
                "/application/allowed_scope/sites",
                json!(["geo-us-east"]),
            );
            set(input, "/intent/target_scope/sites", json!(["geo-us-east"]));
        },
        Decision::Allow,
        &[],
    );
}

// --- scope.publisher_scope_mismatch ------------------------------------------------

#[test]
fn declared_publisher_scope_that_differs_is_denied() {
    check(
        |input| {
            let declared = json!({"acquisition_boundaries": ["acq-001"], "business_units": ["bu-finance", "bu-hr"]});
            set(input, "/intent/publisher_scope", declared);
        },
        Decision::Deny,
        &["scope.publisher_scope_mismatch"],
    );
}

#[test]
fn declared_publisher_scope_equal_up_to_order_is_accepted() {
    check(
        |input| {
            set(
                input,
                "/publisher/scope/business_units",
                json!(["bu-finance", "bu-hr"]),
            );
            let declared = json!({"acquisition_boundaries": ["acq-001"], "business_units": ["bu-hr", "bu-finance"]});
            set(input, "/intent/publisher_scope", declared);
        },
        Decision::Allow,
        &[],
    );
}

// --- cab.approval_required and which approvals count -----------------------------

#[test]
fn missing_approval_above_threshold_requires_approval() {
    let outcome = check(
        |input| set(input, "/approvals", json!([])),
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(outcome.approvals_required, 1);
    let message = message_of(&outcome, "cab.approval_required");
    assert!(
        message.contains("risk score 62 is above the CAB threshold 50"),
        "{message}"
    );
    assert!(
        message.contains("needs 1 CAB approval(s) and 0 count"),
        "{message}"
    );
}

#[test]
fn low_risk_needs_no_approval() {
    let outcome = check(
        |input| {
            set(input, "/risk/risk_score", json!(40));
            set(input, "/approvals", json!([]));
        },
        Decision::Allow,
        &[],
    );
    assert_eq!(outcome.approvals_required, 0);
}

#[test]
fn risk_equal_to_threshold_needs_no_approval() {
    check(
        |input| {
            set(input, "/risk/risk_score", json!(50));
            set(input, "/approvals", json!([]));
        },
        Decision::Allow,
        &[],
    );
}

#[test]
fn expired_approval_is_ignored() {
    let outcome = check(
        |input| set(input, "/approvals/0/record/expiry", json!(EXPIRED)),
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.approval_expired"]);
    assert!(outcome.counted_approvals.is_empty());
}

#[test]
fn self_approval_is_ignored() {
    let outcome = check(
        |input| {
            set(input, "/approvals/0/record/decided_by", json!("alice"));
            let alice = principal("alice", &["publisher", "cab-approver"], &["bu-finance"]);
            set(input, "/approvals/0/approver", alice);
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.self_approval"]);
}

#[test]
fn approval_by_non_approver_is_ignored() {
    let outcome = check(
        |input| {
            set(
                input,
                "/approvals/0/approver/roles",
                json!(["endpoint-ops"]),
            )
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.not_an_approver"]);
}

#[test]
fn approval_by_unknown_principal_is_ignored() {
    let outcome = check(
        |input| set(input, "/approvals/0/approver", Json::Null),
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.not_an_approver"]);
}

#[test]
fn approval_by_approver_of_another_business_unit_is_ignored() {
    let outcome = check(
        |input| {
            set(
                input,
                "/approvals/0/approver/scope/business_units",
                json!(["bu-hr"]),
            )
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.approver_scope"]);
}

#[test]
fn pending_approval_does_not_count() {
    let outcome = check(
        |input| set(input, "/approvals/0/record/decision", json!("pending")),
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.approval_pending"]);
}

/// Risk 80 is above the 75 band: two approvers are needed.
fn high_risk(input: &mut Json) {
    set(input, "/risk/risk_score", json!(80));
}

#[test]
fn one_approval_is_not_enough_above_the_75_band() {
    let outcome = check(
        high_risk,
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(outcome.approvals_required, 2);
    assert_eq!(outcome.counted_approvals, vec!["apr-1"]);
}

#[test]
fn two_approvals_satisfy_the_75_band() {
    let outcome = check(
        |input| {
            high_risk(input);
            let erin = principal("erin", &["cab-approver"], &["bu-finance"]);
            push(
                input,
                "/approvals",
                json!({"record": approval("apr-2", "erin", "approved", LIVE), "approver": erin}),
            );
        },
        Decision::Allow,
        &[],
    );
    assert_eq!(outcome.approvals_required, 2);
    assert_eq!(outcome.counted_approvals, vec!["apr-1", "apr-2"]);
}

#[test]
fn two_records_by_one_approver_count_once_toward_the_quorum() {
    let outcome = check(
        |input| {
            high_risk(input);
            let carol = input["approvals"][0]["approver"].clone();
            push(
                input,
                "/approvals",
                json!({"record": approval("apr-2", "carol", "approved", LIVE), "approver": carol}),
            );
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert_eq!(outcome.approvals_required, 2);
    assert!(
        message_of(&outcome, "cab.approval_required")
            .contains("needs 2 CAB approval(s) and 1 count")
    );
}

#[test]
fn denied_approval_denies() {
    let outcome = check(
        |input| {
            let erin = principal("erin", &["cab-approver"], &["bu-finance"]);
            push(
                input,
                "/approvals",
                json!({"record": approval("apr-2", "erin", "denied", LIVE), "approver": erin}),
            );
        },
        Decision::Deny,
        &["cab.denied"],
    );
    assert!(message_of(&outcome, "cab.denied").starts_with("approval apr-2 by erin denies"));
}

#[test]
fn expired_denial_is_ignored() {
    let outcome = check(
        |input| {
            let erin = principal("erin", &["cab-approver"], &["bu-finance"]);
            push(
                input,
                "/approvals",
                json!({"record": approval("apr-2", "erin", "denied", EXPIRED), "approver": erin}),
            );
        },
        Decision::Allow,
        &[],
    );
    assert_eq!(note_ids(&outcome), vec!["cab.approval_expired"]);
}

#[test]
fn privileged_application_needs_cab_even_at_low_risk() {
    let outcome = check(
        |input| {
            set(input, "/risk/risk_score", json!(20));
            set(input, "/application/privileged", json!(true));
            set(input, "/approvals", json!([]));
        },
        Decision::RequireApproval,
        &["cab.approval_required"],
    );
    assert!(
        message_of(&outcome, "cab.approval_required").starts_with("application vpn is privileged")
    );
}

#[test]
fn privileged_application_with_counted_approval_is_allowed() {
    check(
        |input| {
            set(input, "/risk/risk_score", json!(20));
            set(input, "/application/privileged", json!(true));
        },
        Decision::Allow,
        &[],
    );
}

/// Lab and canary only: below config.cab.from_ring.
fn rings_0_and_1_only(input: &mut Json) {
    set(
        input,
        "/intent/target_scope/rings",
        json!(["ring-0-lab", "ring-1-canary"]),
    );
    set(
        input,
        "/rings",
        json!([{"id": "ring-0-lab", "index": 0}, {"id": "ring-1-canary", "index": 1}]),
    );
}

#[test]
fn intent_only_in_rings_0_and_1_needs_no_cab() {
    let outcome = check(
        |input| {
            rings_0_and_1_only(input);
            set(input, "/risk/risk_score", json!(90));
            set(input, "/application/privileged", json!(true));
            set(input, "/approvals", json!([]));
        },
        Decision::Allow,
        &[],
    );
    assert_eq!(outcome.approvals_required, 0);
}

// --- exception.vulnerability -------------------------------------------------------

#[test]
fn high_cve_with_live_exception_is_allowed() {
    check(|_| {}, Decision::Allow, &[]);
}

#[test]
fn high_cve_with_expired_exception_requires_exception() {
    let outcome = check(
        |input| set(input, "/exceptions/0/record/expiry", json!(EXPIRED)),
        Decision::RequireException,
        &["exception.vulnerability"],
    );
    assert_eq!(note_ids(&outcome), vec!["exception.expired"]);
    assert!(message_of(&outcome, "exception.vulnerability").contains("CVE-2026-1234"));
}

#[test]
fn exception_approved_by_non_reviewer_is_ignored() {
    let outcome = check(
        |input| set(input, "/exceptions/0/approver/roles", json!(["packaging"])),
        Decision::RequireException,
        &["exception.vulnerability"],
    );
    assert_eq!(note_ids(&outcome), vec!["exception.not_a_reviewer"]);
}

#[test]
fn exception_approved_by_the_requester_is_ignored() {
    let outcome = check(
        |input| {
            set(input, "/exceptions/0/record/approved_by", json!("alice"));
            set(
                input,
                "/exceptions/0/approver",
                principal("alice", &["security-reviewer"], &["*"]),
            );
        },
        Decision::RequireException,
        &["exception.vulnerability"],
    );
    assert_eq!(note_ids(&outcome), vec!["exception.self_approval"]);
}

#[test]
fn exception_for_another_cve_does_not_cover() {
    check(
        |input| set(input, "/exceptions/0/record/cves", json!(["CVE-2025-9999"])),
        Decision::RequireException,
        &["exception.vulnerability"],
    );
}

#[test]
fn each_uncovered_critical_cve_is_named() {
    let outcome = check(
        |input| {
            let critical =
                json!({"id": "CVE-2026-7777", "severity": "critical", "component": "libcurl"});
            push(input, "/artifact/sbom/cves", critical);
        },
        Decision::RequireException,
        &["exception.vulnerability"],
    );
    assert_eq!(outcome.reasons.len(), 1);
    assert!(
        outcome.reasons[0]
            .message
            .contains("critical CVE CVE-2026-7777 in libcurl")
    );
}

#[test]
fn low_and_medium_cves_need_no_exception() {
    check(
        |input| {
            set(input, "/exceptions", json!([]));
            set(input, "/artifact/sbom/cves/0/severity", json!("low"));
        },
        Decision::Allow,
        &[],
    );
}

// --- exception.unsigned -------------------------------------------------------------

fn unsigned(input: &mut Json) {
    set(
        input,
        "/artifact/signature",
        json!({"signed": false, "verified": false}),
    );
}

#[test]
fn unsigned_artifact_requires_exception() {
    check(
        unsigned,
        Decision::RequireException,
        &["exception.unsigned"],
    );
}

#[test]
fn unsigned_artifact_with_live_unsigned_package_exception_is_allowed() {
    check(
        |input| {
            unsigned(input);
            let mut record = vulnerability_exception("exc-2", "dave", LIVE);
            set(&mut record, "/exception_type", json!("unsigned_package"));
            set(&mut record, "/cves", json!([]));
            let dave = principal("dave", &["security-reviewer"], &["*"]);
            push(
                input,
                "/exceptions",
                json!({"record": record, "approver": dave}),
            );
        },
        Decision::Allow,
        &[],
    );
}

#[test]
fn vulnerability_exception_does_not_cover_an_unsigned_artifact() {
    check(
        unsigned,
        Decision::RequireException,
        &["exception.unsigned"],
    );
}

#[test]
fn exception_outranks_approval_in_the_decision() {
    check(
        |input| {
            unsigned(input);
            set(input, "/approvals", json!([]));
        },
        Decision::RequireException,
        &["exception.unsigned", "cab.approval_required"],
    );
}

// --- concurrency.one_active_change -----------------------------------------------------

#[test]
fn conflicting_intent_is_denied_and_named() {
    let outcome = check(
        |input| {
            set(
                input,
                "/conflicts",
                json!([{"intent_id": "vpn-6.2.9-finance", "rings": ["ring-1-canary"]}]),
            )
        },
        Decision::Deny,
        &["concurrency.one_active_change"],
    );
    let message = message_of(&outcome, "concurrency.one_active_change");
    assert!(
        message.contains("vpn-6.2.9-finance") && message.contains("ring-1-canary"),
        "{message}"
    );
}

#[test]
fn active_change_is_denied_and_named() {
    let outcome = check(
        |input| {
            set(
                input,
                "/active_changes",
                json!([{"intent_id": "vpn-6.2.1-finance", "ring": "ring-2-pilot"}]),
            )
        },
        Decision::Deny,
        &["concurrency.change_in_flight"],
    );
    let message = message_of(&outcome, "concurrency.change_in_flight");
    assert!(
        message.contains("vpn-6.2.1-finance") && message.contains("ring-2-pilot"),
        "{message}"
    );
    // The intent it waits on is a field of the finding, not only prose:
    // what the daemon reads to wait instead of failing the run.
    let finding = outcome
        .reasons
        .iter()
        .find(|reason| reason.rule == "concurrency.change_in_flight")
        .expect("finding");
    assert_eq!(finding.waits_on.as_deref(), Some("vpn-6.2.1-finance"));
    assert_eq!(
        ringmaster::daemon::rollout::runtime_deny_waits_on(&outcome),
        vec!["vpn-6.2.1-finance".to_owned()]
    );
}

// --- rollback.plan_required ------------------------------------------------------------

#[test]
fn missing_rollback_plan_is_denied_from_the_cab_ring() {
    check(
        |input| remove(input, "/intent/rollback_plan"),
        Decision::Deny,
        &["rollback.plan_required"],
    );
}

#[test]
fn unvalidated_rollback_plan_is_denied() {
    check(
        |input| set(input, "/intent/rollback_plan/validated", json!(false)),
        Decision::Deny,
        &["rollback.plan_required"],
    );
}

#[test]
fn rollback_plan_without_version_is_denied() {
    check(
        |input| remove(input, "/intent/rollback_plan/rollback_version"),
        Decision::Deny,
        &["rollback.plan_required"],
    );
}

#[test]
fn halt_strategy_needs_no_validation_or_version() {
    check(
        |input| set(input, "/intent/rollback_plan", json!({"strategy": "halt"})),
        Decision::Allow,
        &[],
    );
}

#[test]
fn rings_0_and_1_need_no_rollback_plan() {
    check(
        |input| {
            rings_0_and_1_only(input);
            remove(input, "/intent/rollback_plan");
        },
        Decision::Allow,
        &[],
    );
}

// --- rollback.strategy_plane ------------------------------------------------------------

#[test]
fn a_rollback_strategy_of_another_plane_is_denied() {
    let outcome = check(
        |input| {
            set(
                input,
                "/intent/rollback_plan/strategy",
                json!("jamf-uninstall-policy"),
            )
        },
        Decision::Deny,
        &["rollback.strategy_plane"],
    );
    let message = message_of(&outcome, "rollback.strategy_plane");
    assert!(
        message.contains("jamf-uninstall-policy") && message.contains("intune-supersedence"),
        "names the strategy and the plane's own: {message}"
    );
}

#[test]
fn a_rollback_strategy_of_another_plane_is_denied_before_the_cab_ring_too() {
    check(
        |input| {
            rings_0_and_1_only(input);
            set(
                input,
                "/intent/rollback_plan/strategy",
                json!("sccm-uninstall-deployment"),
            );
        },
        Decision::Deny,
        &["rollback.strategy_plane"],
    );
}

#[test]
fn redeploy_previous_suits_the_artifacts_plane() {
    check(
        |input| {
            set(
                input,
                "/intent/rollback_plan/strategy",
                json!("redeploy-previous"),
            )
        },
        Decision::Allow,
        &[],
    );
}

/// The rule and the connectors agree on every strategy the schema allows,
/// on every plane: the rule denies exactly what `rollback_method` refuses
/// (but `halt`, which is no rollback: the orchestrator halts instead).
#[test]
fn the_strategy_rule_agrees_with_what_the_planes_carry_out() {
    use ringmaster::model::Plane;
    let schema: Json =
        serde_json::from_str(include_str!("../schemas/deployment-intent.schema.json"))
            .expect("schema parses");
    let strategies: Vec<String> = schema["$defs"]["RollbackPlan"]["properties"]["strategy"]["enum"]
        .as_array()
        .expect("the schema lists the strategies")
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect();
    assert!(strategies.len() >= 7, "{strategies:?}");
    for strategy in strategies.iter().filter(|s| *s != "halt") {
        for plane in Plane::ALL {
            let outcome = evaluate_with(builtin_engine(), |input| {
                set(input, "/intent/rollback_plan/strategy", json!(strategy));
                set(input, "/artifact/plane", json!(plane.as_str()));
            });
            let denied = outcome.rule_ids().contains(&"rollback.strategy_plane");
            let refused = ringmaster::planes::rollback_method(strategy, plane).is_err();
            assert_eq!(
                denied,
                refused,
                "{strategy} on {}: the rule {} it, the plane {} it",
                plane.as_str(),
                if denied { "denies" } else { "allows" },
                if refused { "refuses" } else { "carries out" }
            );
        }
    }
}

// --- scope.application_scope_changed ------------------------------------------------------

/// The base revision's application allowed only bu-finance; now bu-hr too.
fn application_scope_widened(input: &mut Json) {
    let mut previous = input["application"].clone();
    set(
        &mut previous,
        "/allowed_scope/business_units",
        json!(["bu-finance"]),
    );
    set(input, "/previous_application", previous);
}

#[test]
fn application_scope_change_without_approval_requires_approval() {
    let outcome = check(
        |input| {
            application_scope_widened(input);
            set(input, "/risk/risk_score", json!(30));
            set(input, "/approvals", json!([]));
        },
        Decision::RequireApproval,
        &["scope.application_scope_changed"],
    );
    assert_eq!(outcome.approvals_required, 1);
    let message = message_of(&outcome, "scope.application_scope_changed");
    assert!(
        message.contains("business units [bu-finance]") && message.contains("[bu-finance, bu-hr]")
    );
}

/// A scope approval of the widened scope: `application_scope` naming the
/// application and `digest`, decided by carol (a cab-approver).
fn scope_approval(input: &mut Json, digest: &str) {
    let application = input["application"]["id"].clone();
    let mut record = approval("scope-1", "carol", "approved", "2026-12-31T00:00:00Z");
    set(
        &mut record,
        "/application_scope",
        json!({"application_id": application, "scope_sha256": digest}),
    );
    remove(&mut record, "/deployment_intent_id");
    set(input, "/application_scope_sha256", json!("sha256:widened"));
    set(
        input,
        "/scope_approvals",
        json!([{
            "record": record,
            "approver": principal("carol", &["cab-approver"], &["bu-finance", "bu-hr"]),
        }]),
    );
}

#[test]
fn application_scope_change_with_a_release_approval_still_requires_approval() {
    // apr-1 approves the release (it counts for the intent), not the scope.
    let outcome = check(
        application_scope_widened,
        Decision::RequireApproval,
        &["scope.application_scope_changed"],
    );
    assert_eq!(outcome.counted_approvals, vec!["apr-1".to_owned()]);
    assert!(
        note_ids(&outcome).contains(&"scope.release_approval_not_for_scope"),
        "{outcome:#?}"
    );
}

#[test]
fn application_scope_change_with_a_scope_approval_of_its_digest_is_allowed() {
    check(
        |input| {
            application_scope_widened(input);
            scope_approval(input, "sha256:widened");
        },
        Decision::Allow,
        &[],
    );
}

#[test]
fn a_scope_approval_of_another_scope_or_by_a_non_approver_does_not_count() {
    check(
        |input| {
            application_scope_widened(input);
            scope_approval(input, "sha256:some-other-scope");
        },
        Decision::RequireApproval,
        &["scope.application_scope_changed"],
    );
    check(
        |input| {
            application_scope_widened(input);
            scope_approval(input, "sha256:widened");
            set(
                input,
                "/scope_approvals/0/approver",
                principal("carol", &["publisher"], &["*"]),
            );
        },
        Decision::RequireApproval,
        &["scope.application_scope_changed"],
    );
}

#[test]
fn application_scope_reordered_is_not_a_change() {
    check(
        |input| {
            let mut previous = input["application"].clone();
            set(
                &mut previous,
                "/allowed_scope/business_units",
                json!(["bu-hr", "bu-finance"]),
            );
            set(input, "/previous_application", previous);
            set(input, "/approvals", json!([]));
            set(input, "/risk/risk_score", json!(30));
        },
        Decision::Allow,
        &[],
    );
}

// --- version.rolled_back ---------------------------------------------------------------------

#[test]
fn rolled_back_version_is_denied() {
    check(
        |input| set(input, "/rolled_back_versions", json!(["6.2.0", "6.3.0"])),
        Decision::Deny,
        &["version.rolled_back"],
    );
}

#[test]
fn other_rolled_back_version_does_not_matter() {
    check(
        |input| set(input, "/rolled_back_versions", json!(["6.2.0"])),
        Decision::Allow,
        &[],
    );
}

// --- several rules at once --------------------------------------------------------------------

#[test]
fn reasons_are_sorted_by_severity_then_rule_and_stable() {
    let mutate = |input: &mut Json| {
        unsigned(input);
        set(input, "/approvals", json!([]));
        set(input, "/rolled_back_versions", json!(["6.3.0"]));
        set(
            input,
            "/conflicts",
            json!([{"intent_id": "vpn-x", "rings": ["ring-0-lab"]}]),
        );
    };
    let expected = [
        "concurrency.one_active_change",
        "version.rolled_back",
        "exception.unsigned",
        "cab.approval_required",
    ];
    let first = check(mutate, Decision::Deny, &expected);
    let second = check(mutate, Decision::Deny, &expected);
    assert_eq!(first, second);
    assert_eq!(first.reasons[0].kind, ReasonKind::Deny);
    assert!(
        first
            .reasons
            .iter()
            .all(|reason| reason.source == "builtin")
    );
}

#[test]
fn one_engine_serves_several_threads() {
    let engine = builtin_engine().clone();
    let handles: Vec<_> = [true, false]
        .into_iter()
        .map(|signed| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut input = baseline();
                set(&mut input, "/artifact/signature/signed", json!(signed));
                engine.evaluate(&input).map(|outcome| outcome.decision)
            })
        })
        .collect();
    let decisions: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        decisions,
        vec![Ok(Decision::Allow), Ok(Decision::RequireException)]
    );
}

// --- tenant policies ----------------------------------------------------------------------------

fn tenant(files: &[(&str, &str)]) -> Result<PolicyEngine, Vec<PolicyError>> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(path, source)| (path.to_string(), source.to_string()))
        .collect();
    PolicyEngine::new(&files)
}

const FINANCE_POLICY: &str = r#"# Finance may not ship vendor software below SLSA level 3 beyond the lab.
package ringmaster.tenant.finance

deny contains {
	"rule": "finance.slsa_level",
	"message": sprintf("artifact %s has SLSA level %d; finance requires level 3", [input.artifact.id, input.artifact.provenance.slsa_level]),
} if {
	input.intent.target_scope.business_unit == "bu-finance"
	input.artifact.provenance.slsa_level < 3
}

notes contains {"rule": "finance.reviewed", "message": "finance tenant policy evaluated"}
"#;

#[test]
fn tenant_policy_adds_a_deny_with_its_package_as_source() {
    let engine = tenant(&[("policies/finance.rego", FINANCE_POLICY)]).expect("compiles");
    assert_eq!(
        engine.tenant_package_names(),
        vec!["ringmaster.tenant.finance"]
    );
    let outcome = evaluate_with(&engine, |_| {});
    assert_eq!(outcome.decision, Decision::Deny);
    assert_eq!(outcome.rule_ids(), vec!["finance.slsa_level"]);
    assert_eq!(outcome.reasons[0].source, "ringmaster.tenant.finance");
    assert_eq!(
        outcome.reasons[0].message,
        "artifact vpn-6.3.0-win has SLSA level 2; finance requires level 3"
    );
    assert_eq!(note_ids(&outcome), vec!["finance.reviewed"]);
}

/// The example in docs/policy-input.md compiles and does what it says.
#[test]
fn documented_example_tenant_policy_works() {
    let documentation = include_str!("../docs/policy-input.md");
    let example = documentation
        .split("```rego\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/policy-input.md has a rego example");
    let engine = tenant(&[("policies/finance.rego", example)]).expect("example compiles");
    let outcome = evaluate_with(&engine, |_| {});
    assert_eq!(outcome.decision, Decision::Deny);
    assert_eq!(
        outcome.rule_ids(),
        vec!["finance.slsa_level", "finance.month_end_close"]
    );
    assert_eq!(note_ids(&outcome), vec!["finance.policy_applied"]);
    let outcome = evaluate_with(&engine, |input| {
        set(input, "/artifact/provenance/slsa_level", json!(3));
        set(input, "/now", json!("2026-11-16T12:00:00Z"));
    });
    assert_eq!(
        (outcome.decision, outcome.rule_ids()),
        (Decision::Allow, vec![])
    );
}

#[test]
fn tenant_policy_that_does_not_fire_leaves_the_decision_alone() {
    let engine = tenant(&[("policies/finance.rego", FINANCE_POLICY)]).expect("compiles");
    let outcome = evaluate_with(&engine, |input| {
        set(input, "/artifact/provenance/slsa_level", json!(3))
    });
    assert_eq!(
        (outcome.decision, outcome.rule_ids()),
        (Decision::Allow, vec![])
    );
}

#[test]
fn tenant_sets_of_root_and_sub_packages_are_all_collected() {
    let root = "package ringmaster.tenant\n\nrequire_approval contains {\"rule\": \"tenant.root\", \"message\": \"root\"} if true\n";
    let deep = "package ringmaster.tenant.a.b\n\nrequire_exception contains {\"rule\": \"tenant.deep\", \"message\": \"deep\"} if true\n";
    let engine =
        tenant(&[("policies/root.rego", root), ("policies/deep.rego", deep)]).expect("compiles");
    let outcome = evaluate_with(&engine, |_| {});
    assert_eq!(outcome.decision, Decision::RequireException);
    let sources: Vec<_> = outcome
        .reasons
        .iter()
        .map(|r| (r.rule.as_str(), r.source.as_str()))
        .collect();
    assert_eq!(
        sources,
        vec![
            ("tenant.deep", "ringmaster.tenant.a.b"),
            ("tenant.root", "ringmaster.tenant")
        ]
    );
}

#[test]
fn tenant_file_in_the_builtin_package_is_refused_with_its_line() {
    let source = "# Try to switch a built-in rule off.\n\npackage ringmaster.builtin\n\nbundle_loaded := true\n";
    let errors = tenant(&[("policies/override.rego", source)]).expect_err("refused");
    assert_eq!(
        errors,
        vec![PolicyError::TenantPackageRefused {
            file: "policies/override.rego".to_string(),
            line: 3,
            package: "ringmaster.builtin".to_string(),
        }]
    );
    assert!(
        errors[0]
            .to_string()
            .starts_with("policies/override.rego:3: package ringmaster.builtin")
    );
}

#[test]
fn tenant_file_in_a_lookalike_package_is_refused() {
    let errors =
        tenant(&[("policies/x.rego", "package ringmaster.tenantx\n")]).expect_err("refused");
    assert!(
        matches!(
            &errors[..],
            [PolicyError::TenantPackageRefused { line: 1, .. }]
        ),
        "{errors:?}"
    );
}

#[test]
fn tenant_syntax_error_names_file_and_line() {
    let source = "package ringmaster.tenant\n\ndeny contains x if {\n\tx := \n}\n";
    let errors = tenant(&[("policies/broken.rego", source)]).expect_err("syntax error");
    let [PolicyError::Syntax { file, position, .. }] = &errors[..] else {
        panic!("{errors:?}");
    };
    assert_eq!((file.as_str(), position.line), ("policies/broken.rego", 4));
    assert!(
        errors[0].to_string().starts_with("policies/broken.rego:4:"),
        "{}",
        errors[0]
    );
}

#[test]
fn every_bad_tenant_file_is_reported_at_once() {
    let errors = tenant(&[
        ("policies/a.rego", "package ringmaster.builtin\n"),
        (
            "policies/b.rego",
            "package ringmaster.tenant\ndeny contains if\n",
        ),
        ("policies/c.rego", "package other\n"),
    ])
    .expect_err("refused");
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn tenant_call_to_unknown_function_is_an_error_naming_file_and_line() {
    // regorus resolves function names when a rule body runs, so this surfaces
    // at evaluation, not when the engine is built.
    let source = "package ringmaster.tenant\n\ndeny contains {\"rule\": \"x\", \"message\": m} if {\n\tm := no_such_function(1)\n}\n";
    let engine = tenant(&[("policies/undefined.rego", source)]).expect("parses");
    let error = evaluate_both(&engine, &baseline()).expect_err("unknown function");
    let PolicyError::Evaluation { message } = &error else {
        panic!("{error:?}");
    };
    assert!(
        message.starts_with("policies/undefined.rego:4:"),
        "{message}"
    );
    assert!(message.contains("no_such_function"), "{message}");
}

/// regorus 0.14.1 evaluates a partial set split across files wrongly when a
/// whole package is queried; the engine reads rules one by one instead.
#[test]
fn tenant_package_split_across_files_is_evaluated_rule_by_rule() {
    let first = "package ringmaster.tenant\n\ndeny contains {\"rule\": \"t.first\", \"message\": \"m\"} if input.never_set\n";
    let second = "package ringmaster.tenant\n\n\
        deny contains {\"rule\": \"t.second\", \"message\": \"m\"} if {\n\
        \tnot waived\n\
        }\n\n\
        waived if {\n\
        \tsome entry in input.exceptions\n\
        \tentry.record.exception_id == \"exc-1\"\n\
        }\n";
    let engine =
        tenant(&[("policies/1.rego", first), ("policies/2.rego", second)]).expect("compiles");
    let outcome = evaluate_with(&engine, |_| {});
    assert_eq!(
        (outcome.decision, outcome.rule_ids()),
        (Decision::Allow, vec![])
    );
    let outcome = evaluate_with(&engine, |input| set(input, "/exceptions", json!([])));
    assert_eq!(
        outcome.rule_ids(),
        vec!["t.second", "exception.vulnerability"]
    );
}

#[test]
fn recursive_tenant_rules_fail_the_evaluation_naming_the_file() {
    let source = "package ringmaster.tenant\n\ndeny contains {\"rule\": \"r\", \"message\": \"m\"} if loops\n\nloops if again\n\nagain if loops\n";
    let engine = tenant(&[("policies/recursive.rego", source)]).expect("parses");
    let error = evaluate_both(&engine, &baseline()).expect_err("recursion");
    let PolicyError::Evaluation { message } = &error else {
        panic!("{error:?}");
    };
    assert!(message.starts_with("policies/recursive.rego:"), "{message}");
}

#[test]
fn malformed_tenant_output_is_an_error() {
    let source = "package ringmaster.tenant\n\ndeny contains \"no objects here\" if true\n";
    let engine = tenant(&[("policies/strings.rego", source)]).expect("compiles");
    let error = evaluate_both(&engine, &baseline()).expect_err("malformed");
    assert!(
        matches!(&error, PolicyError::MalformedOutput { package, set, .. } if package == "ringmaster.tenant" && set == "deny"),
        "{error:?}"
    );
}

#[test]
fn slow_tenant_policy_hits_the_time_limit() {
    // 900³ iterations over the characters of a string (numbers.range is refused).
    let source = format!(
        "package ringmaster.tenant\n\nchars := split(\"{}\", \"\")\n\n\
        deny contains {{\"rule\": \"slow\", \"message\": \"never\"}} if {{\n\
        \tsome a in chars\n\
        \tsome b in chars\n\
        \tsome c in chars\n\
        \tconcat(\"\", [a, b, c]) == \"b\"\n\
        }}\n",
        "a".repeat(900)
    );
    let engine = tenant(&[("policies/slow.rego", &source)])
        .expect("compiles")
        .with_time_limit(std::time::Duration::from_millis(100));
    let error = evaluate_both(&engine, &baseline()).expect_err("times out");
    assert_eq!(
        error,
        PolicyError::TimeLimitExceeded {
            limit: std::time::Duration::from_millis(100)
        }
    );
}

// --- both paths --------------------------------------------------------------------------------

/// Sets defined from a parent package (`b.deny` in `ringmaster.tenant.a`) or
/// by a rule at a prefix of their path are read on both paths alike.
#[test]
fn tenant_sets_defined_from_a_parent_package_are_read() {
    let parent = "package ringmaster.tenant.a\n\n\
        b.deny contains {\"rule\": \"t.from_parent\", \"message\": \"m\"} if true\n\n\
        c := {\"notes\": [{\"rule\": \"t.prefix\", \"message\": \"m\"}]}\n";
    let child = "package ringmaster.tenant.a.b\n\nx := 1\n";
    let grandchild = "package ringmaster.tenant.a.c\n\ny := 1\n";
    let engine = tenant(&[
        ("policies/parent.rego", parent),
        ("policies/child.rego", child),
        ("policies/grandchild.rego", grandchild),
    ])
    .expect("compiles");
    let outcome = evaluate_with(&engine, |_| {});
    assert_eq!(outcome.rule_ids(), vec!["t.from_parent"]);
    assert_eq!(note_ids(&outcome), vec!["t.prefix"]);
}

#[test]
fn conflicting_tenant_values_fail_on_both_paths() {
    let source = "package ringmaster.tenant\n\nlevel := 1 if true\n\nlevel := 2 if true\n\n\
        deny contains {\"rule\": \"t\", \"message\": \"m\"} if level > 0\n";
    let engine = tenant(&[("policies/conflict.rego", source)]).expect("compiles");
    let error = evaluate_both(&engine, &baseline()).expect_err("conflict");
    assert!(matches!(error, PolicyError::Evaluation { .. }), "{error:?}");
}

/// An input the built-in rules could fail on goes to the interpreter, which
/// reports the error (fail closed) instead of skipping the rule.
#[test]
fn input_of_another_shape_is_judged_by_the_interpreter() {
    let engine = builtin_engine();
    let mut input = baseline();
    set(&mut input, "/now", json!("yesterday"));
    assert_eq!(engine.evaluation_path(&input), EvaluationPath::Interpreted);
    let error = evaluate_both(engine, &input).expect_err("unparsable time");
    assert!(matches!(error, PolicyError::Evaluation { .. }), "{error:?}");

    // Iterating a null target site list fails once the publisher limits sites.
    let mut input = baseline();
    set(&mut input, "/publisher/scope/sites", json!(["site-1"]));
    set(&mut input, "/intent/target_scope/sites", json!(null));
    assert_eq!(engine.evaluation_path(&input), EvaluationPath::Interpreted);
    evaluate_both(engine, &input).expect_err("null sites");

    let mut input = baseline();
    set(&mut input, "/rings/0/index", json!("0"));
    assert_eq!(engine.evaluation_path(&input), EvaluationPath::Interpreted);
    evaluate_both(engine, &input).expect("the interpreter compares across types");
}

/// Every intent of the sample repository and of a synthetic one, with and
/// without the tenant policy they ship, on both paths.
#[test]
fn both_paths_agree_on_sample_and_synthetic_repositories() {
    use ringmaster::evaluation::{NoRuntime, engine_for, policy_input};
    use ringmaster::model::{self, Entry};

    let now = "2026-11-28T12:00:00Z".parse().expect("time");
    let sample: Vec<Entry> = ringmaster::sample::SAMPLE_REPO
        .iter()
        .map(|(path, bytes)| Entry::file(*path, *bytes))
        .collect();
    let synthetic: Vec<Entry> = ringmaster::synthetic::files(40)
        .into_iter()
        .map(|(path, text)| Entry::file(path, text))
        .collect();
    for entries in [sample, synthetic] {
        let (snapshot, _) = model::load(&entries);
        let (engine, diagnostics) = engine_for(&snapshot);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert!(!engine.tenant_package_names().is_empty());
        for intent in snapshot.intents.values() {
            let input = policy_input(&snapshot, intent, None, now, &NoRuntime).expect("input");
            for engine in [&engine, builtin_engine()] {
                assert_eq!(
                    engine.evaluation_path(&input),
                    EvaluationPath::Compiled,
                    "{}",
                    intent.intent_id
                );
                evaluate_both(engine, &input).expect("evaluation succeeds");
            }
        }
    }
}

/// Every JSON pointer of the baseline (with an approval that is denied and
/// one that expired, an exception, a conflict and an active change, so every
/// rule body runs), replaced by values of other types or removed: both paths
/// agree each time, so the shape check sends to the interpreter every input
/// the RVM would judge differently.
#[test]
fn both_paths_agree_when_any_field_has_another_type() {
    let mut start = baseline();
    push(
        &mut start,
        "/approvals",
        json!({
            "record": approval("apr-2", "erin", "denied", LIVE),
            "approver": principal("erin", &["cab-approver"], &["bu-finance"]),
        }),
    );
    push(
        &mut start,
        "/approvals",
        json!({"record": approval("apr-3", "alice", "pending", EXPIRED), "approver": null}),
    );
    set(
        &mut start,
        "/conflicts",
        json!([{"intent_id": "vpn-x", "rings": ["ring-0-lab"]}]),
    );
    set(
        &mut start,
        "/active_changes",
        json!([{"intent_id": "vpn-y", "ring": "ring-1-canary"}]),
    );
    set(
        &mut start,
        "/intent/publisher_scope",
        json!({"acquisition_boundaries": ["acq-001"], "business_units": ["bu-hr"], "sites": ["s"]}),
    );
    let application = start["application"].clone();
    set(&mut start, "/previous_application", application);
    let replacements = [
        json!(null),
        json!(7),
        json!(1.5),
        json!("x"),
        json!({}),
        json!([1]),
    ];
    let mut pointers = Vec::new();
    collect_pointers(&start, String::new(), &mut pointers);
    let engine = builtin_engine();
    let mut compiled = 0;
    for pointer in &pointers {
        let mut variants: Vec<Json> = replacements
            .iter()
            .map(|replacement| {
                let mut input = start.clone();
                *input.pointer_mut(pointer).expect("pointer") = replacement.clone();
                input
            })
            .collect();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        if let Some(Json::Object(_)) = start.pointer(parent) {
            let mut input = start.clone();
            remove(&mut input, &format!("{parent}/{key}"));
            variants.push(input);
        }
        for input in variants {
            if engine.evaluation_path(&input) == EvaluationPath::Compiled {
                compiled += 1;
            }
            let _ = evaluate_both(engine, &input);
        }
    }
    assert!(
        compiled > pointers.len(),
        "most variants take the compiled path"
    );
}

/// Many approvals, exceptions, CVEs and conflicts: far more work than the
/// RVM's default instruction budget allows, and still the same outcome.
#[test]
fn both_paths_agree_on_a_large_input() {
    let mut input = baseline();
    for index in 0..60 {
        let decision = ["approved", "denied", "pending"][index % 3];
        let expiry = if index % 4 == 0 { EXPIRED } else { LIVE };
        let decider = format!("approver-{index}");
        push(
            &mut input,
            "/approvals",
            json!({
                "record": approval(&format!("apr-x{index}"), &decider, decision, expiry),
                "approver": principal(&decider, &["cab-approver"], &["bu-hr"]),
            }),
        );
        push(
            &mut input,
            "/artifact/sbom/cves",
            json!({"id": format!("CVE-2026-9{index:03}"), "severity": "critical", "component": "lib"}),
        );
        push(
            &mut input,
            "/exceptions",
            json!({
                "record": vulnerability_exception(&format!("exc-x{index}"), "dave", expiry),
                "approver": principal("dave", &["security-reviewer"], &["*"]),
            }),
        );
        push(
            &mut input,
            "/conflicts",
            json!({"intent_id": format!("other-{index}"), "rings": ["ring-2-pilot"]}),
        );
    }
    // Unoptimised test builds are slow; the limit is not what is tested here.
    let engine = builtin_engine()
        .clone()
        .with_time_limit(std::time::Duration::from_secs(60));
    assert_eq!(engine.evaluation_path(&input), EvaluationPath::Compiled);
    let outcome = evaluate_both(&engine, &input).expect("evaluation succeeds");
    assert_eq!(outcome.decision, Decision::Deny);
    assert!(outcome.reasons.len() > 100, "{}", outcome.reasons.len());
}

fn collect_pointers(value: &Json, prefix: String, pointers: &mut Vec<String>) {
    let children: Vec<(String, &Json)> = match value {
        Json::Object(map) => map
            .iter()
            .map(|(key, child)| (key.clone(), child))
            .collect(),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, child)| (index.to_string(), child))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        let pointer = format!("{prefix}/{key}");
        pointers.push(pointer.clone());
        collect_pointers(child, pointer, pointers);
    }
}
