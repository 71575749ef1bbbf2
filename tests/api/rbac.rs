//! The role × action matrix of `docs/api.md`, one test per cell, over real
//! HTTP with real tokens. Each principal of the sample tenant holds one
//! role; the target is Finance's Chrome rollout (past its first ring), its
//! evidence, a drift finding on it, a Finance incident, or the tenant (a
//! reconciliation). A refusal is a 403 with a reason and leaves the store
//! as it was; a grant changes it (writes) or answers 200 (reads).

use crate::harness::{Api, ApiOptions, BENEFITS, BUILD_AGENT, CHROME, Tenant, oid, serve};
use crate::issuer::{Issuer, SigningKey, rsa_key};
use ringmaster::store::{EventOutcome, EventType, NewEvent};
use serde_json::json;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy)]
enum Act {
    Read,
    ReadEvidence,
    Hold,
    Resume,
    Rollback,
    AcknowledgeDrift,
    ManageIncident,
    Reconcile,
}

fn key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| rsa_key("matrix")).clone()
}

struct Cell {
    tenant: Tenant,
    _issuer: Issuer,
    api: Api,
    token: String,
    admin: String,
}

async fn cell(principal: &str) -> Cell {
    let key = key();
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let token = issuer.token(&key, &oid(principal));
    let admin = issuer.token(&key, &oid("olivia"));
    Cell {
        tenant,
        _issuer: issuer,
        api,
        token,
        admin,
    }
}

/// A drift finding on `intent` as the reconciler records it.
fn drift_finding(tenant: &Tenant, intent: &str) -> u64 {
    let mut store = tenant.store();
    let record = store.get_intent(intent).expect("store").expect("intent");
    store
        .append_event(NewEvent {
            correlation_id: record.correlation_id.clone(),
            intent_id: Some(intent.into()),
            event_type: EventType::DriftDetected,
            timestamp: tenant.now,
            actor: "ringmaster".into(),
            actor_role: "reconciler".into(),
            execution_plane: Some("intune".into()),
            ring: None,
            outcome: EventOutcome::Failure,
            details: json!({"devices": ["dev-1"], "expected": "131.0.6778", "observed": "130.0.6723"}),
        })
        .expect("append")
        .seq
}

/// The sequence of an evidence record about `intent`.
async fn evidence_of(cell: &Cell, intent: &str) -> u64 {
    let answer = cell
        .api
        .get("/api/v1/evidence?limit=1000", Some(&cell.admin))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["intent_id"] == intent)
        .and_then(|item| item["sequence"].as_u64())
        .expect("an evidence record of the intent")
}

/// What the cell acts on, staged before the footprint is taken.
struct Staged {
    evidence: Option<u64>,
    finding: Option<u64>,
}

async fn attempt(cell: &Cell, act: Act, intent: &str, staged: &Staged) -> crate::harness::Answer {
    let token = Some(cell.token.as_str());
    let reason = json!({"reason": "matrix test"});
    match act {
        Act::Read => {
            cell.api
                .get(&format!("/api/v1/intents/{intent}"), token)
                .await
        }
        Act::ReadEvidence => {
            let sequence = staged.evidence.expect("staged");
            cell.api
                .get(&format!("/api/v1/evidence/{sequence}"), token)
                .await
        }
        Act::Hold => {
            cell.api
                .post(&format!("/api/v1/intents/{intent}/hold"), token, reason)
                .await
        }
        Act::Resume => {
            cell.api
                .post(&format!("/api/v1/intents/{intent}/resume"), token, reason)
                .await
        }
        Act::Rollback => {
            cell.api
                .post(&format!("/api/v1/intents/{intent}/rollback"), token, reason)
                .await
        }
        Act::AcknowledgeDrift => {
            let finding = staged.finding.expect("staged");
            cell.api
                .post(
                    &format!("/api/v1/drift/{finding}/acknowledge"),
                    token,
                    json!({"reason": "known, ticketed", "ticket": "INC0012345"}),
                )
                .await
        }
        Act::ManageIncident => {
            let record = cell
                .tenant
                .store()
                .get_intent(intent)
                .expect("store")
                .expect("intent");
            cell.api
                .post(
                    "/api/v1/incidents",
                    token,
                    json!({"application_id": record.application_id, "business_unit": record.business_unit,
                           "severity": "critical", "summary": "crash loop after update"}),
                )
                .await
        }
        Act::Reconcile => cell.api.post("/api/v1/reconcile", token, reason).await,
    }
}

async fn check(principal: &str, act: Act, intent: &str, allowed: bool) {
    let cell = cell(principal).await;
    let staged = Staged {
        evidence: match act {
            Act::ReadEvidence => Some(evidence_of(&cell, intent).await),
            _ => None,
        },
        finding: matches!(act, Act::AcknowledgeDrift).then(|| drift_finding(&cell.tenant, intent)),
    };
    let before = cell.tenant.footprint();
    let answer = attempt(&cell, act, intent, &staged).await;
    let after = cell.tenant.footprint();
    let writes = !matches!(act, Act::Read | Act::ReadEvidence);
    if allowed {
        assert!(
            (200..300).contains(&answer.status),
            "{principal} {act:?} {intent}: expected a grant, got {} {:?}",
            answer.status,
            answer.body
        );
        if writes {
            assert!(
                after.events > before.events,
                "{principal} {act:?}: the write is an event"
            );
            assert!(
                after.siem_lines > before.siem_lines,
                "{principal} {act:?}: and a SIEM line"
            );
        }
    } else {
        assert_eq!(
            answer.status, 403,
            "{principal} {act:?} {intent}: expected 403, got {:?}",
            answer.body
        );
        let reason = answer.body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(principal),
            "the reason names who was refused: {reason}"
        );
        assert_eq!(after.events, before.events);
        assert_eq!(after.operator_requests, before.operator_requests);
        assert_eq!(after.reconcile_requests, before.reconcile_requests);
        assert_eq!(after.incidents, before.incidents);
        assert_eq!(after.siem_lines, before.siem_lines);
    }
}

macro_rules! cells {
    ($($name:ident: $principal:literal $act:ident $intent:ident => $allowed:literal;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                check($principal, Act::$act, $intent, $allowed).await;
            }
        )*
    };
}

cells! {
    // control-plane.admin (olivia): everything, everywhere.
    admin_read: "olivia" Read CHROME => true;
    admin_read_evidence: "olivia" ReadEvidence CHROME => true;
    admin_hold: "olivia" Hold CHROME => true;
    admin_resume: "olivia" Resume CHROME => true;
    admin_rollback: "olivia" Rollback CHROME => true;
    admin_acknowledge_drift: "olivia" AcknowledgeDrift CHROME => true;
    admin_manage_incident: "olivia" ManageIncident CHROME => true;
    admin_reconcile: "olivia" Reconcile CHROME => true;
    // control-plane.packaging (judy, every unit): reads; writes only before production rings.
    packaging_read: "judy" Read CHROME => true;
    packaging_read_evidence: "judy" ReadEvidence CHROME => false;
    packaging_hold_production: "judy" Hold CHROME => false;
    packaging_resume_production: "judy" Resume CHROME => false;
    packaging_rollback_production: "judy" Rollback CHROME => false;
    packaging_hold_staging: "judy" Hold BUILD_AGENT => true;
    packaging_acknowledge_drift: "judy" AcknowledgeDrift CHROME => false;
    packaging_manage_incident: "judy" ManageIncident CHROME => false;
    packaging_reconcile: "judy" Reconcile CHROME => false;
    // control-plane.publisher (alice, Finance only).
    publisher_read: "alice" Read CHROME => true;
    publisher_read_outside_scope: "alice" Read BENEFITS => false;
    publisher_read_evidence: "alice" ReadEvidence CHROME => false;
    publisher_hold: "alice" Hold CHROME => true;
    publisher_hold_outside_scope: "alice" Hold BENEFITS => false;
    publisher_resume: "alice" Resume CHROME => true;
    publisher_rollback: "alice" Rollback CHROME => true;
    publisher_acknowledge_drift: "alice" AcknowledgeDrift CHROME => false;
    publisher_manage_incident: "alice" ManageIncident CHROME => false;
    publisher_reconcile: "alice" Reconcile CHROME => false;
    // control-plane.cab-approver (carol, Contoso Finance/IT/HR): reads, evidence too.
    cab_read: "carol" Read CHROME => true;
    cab_read_evidence: "carol" ReadEvidence CHROME => true;
    cab_read_evidence_outside_scope: "frank" ReadEvidence CHROME => false;
    cab_hold: "carol" Hold CHROME => false;
    cab_resume: "carol" Resume CHROME => false;
    cab_rollback: "carol" Rollback CHROME => false;
    cab_acknowledge_drift: "carol" AcknowledgeDrift CHROME => false;
    cab_manage_incident: "carol" ManageIncident CHROME => false;
    cab_reconcile: "carol" Reconcile CHROME => false;
    // control-plane.security-reviewer (grace, everywhere): reads, evidence, incidents.
    security_read: "grace" Read CHROME => true;
    security_read_evidence: "grace" ReadEvidence CHROME => true;
    security_hold: "grace" Hold CHROME => false;
    security_resume: "grace" Resume CHROME => false;
    security_rollback: "grace" Rollback CHROME => false;
    security_acknowledge_drift: "grace" AcknowledgeDrift CHROME => false;
    security_manage_incident: "grace" ManageIncident CHROME => true;
    security_reconcile: "grace" Reconcile CHROME => false;
    // control-plane.endpoint-ops (heidi, every unit): operates and remediates.
    ops_read: "heidi" Read CHROME => true;
    ops_read_evidence: "heidi" ReadEvidence CHROME => false;
    ops_hold: "heidi" Hold CHROME => true;
    ops_resume: "heidi" Resume CHROME => true;
    ops_rollback: "heidi" Rollback CHROME => true;
    ops_acknowledge_drift: "heidi" AcknowledgeDrift CHROME => true;
    ops_manage_incident: "heidi" ManageIncident CHROME => true;
    ops_reconcile: "heidi" Reconcile CHROME => true;
    // control-plane.auditor (ivan): reads everything, writes nothing.
    auditor_read: "ivan" Read CHROME => true;
    auditor_read_evidence: "ivan" ReadEvidence CHROME => true;
    auditor_hold: "ivan" Hold CHROME => false;
    auditor_resume: "ivan" Resume CHROME => false;
    auditor_rollback: "ivan" Rollback CHROME => false;
    auditor_acknowledge_drift: "ivan" AcknowledgeDrift CHROME => false;
    auditor_manage_incident: "ivan" ManageIncident CHROME => false;
    auditor_reconcile: "ivan" Reconcile CHROME => false;
}

#[test]
fn docs_api_md_prints_the_table_the_code_enforces() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"),
    )
    .expect("docs/api.md");
    let table = ringmaster::api::auth::rbac::markdown_table();
    assert!(
        docs.contains(&table),
        "docs/api.md must hold the role table exactly as the code has it:\n{table}"
    );
}
