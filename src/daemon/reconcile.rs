//! Reconciliation, the shell around `reconciler`: for each rolled-out run,
//! read the facts (what the plane holds, through the performer; the run's
//! earlier drift reports, from the event log), ask the pure core what to do
//! ([`reconciler::decide`]), and have the performer do it.
//!
//! A drift is recorded evidence first: the signed drift record, then one
//! `drift_detected` event per drift, then what was decided — a remediation
//! through the journal (its record, then its `remediation_result` event), a
//! ticket, or a deferral while the run is held or frozen. Every step is keyed
//! by the drift record's id, so a crash between any two is finished by the
//! next pass without repeating what was done.

use super::performer::{DriftRemediation, Performer, plane_correlation_id};
use super::process::ACTOR;
use super::rollout::{DriveError, IntentState};
use crate::model::Plane;
use crate::orchestrator::IntentRun;
use crate::reconciler::{
    DesiredState, Drift, DriftAction, LastReport, ReconcileDecision, ReconcileFacts,
    RemediationOutcome, RemediationPlan, ReportedAction, compare, decide, wants_reconcile,
};
use crate::store::{Event as StoredEvent, EventFilter, EventOutcome, EventType};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// What one reconciliation found and did.
/// Stored intents read per page.
const INTENT_PAGE: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    pub intents_checked: usize,
    pub drifts: usize,
    pub remediated: usize,
    pub tickets: usize,
    /// Remediations that waited for a hold or a freeze to end.
    pub deferred: usize,
}

/// The latest drift report of an intent's run in its event history, and how
/// many drift records the run has had.
fn last_report(history: &[StoredEvent], generation: u32) -> (Option<LastReport>, usize) {
    let of_run = |event: &&StoredEvent| {
        event
            .details
            .get("run_generation")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            == u64::from(generation)
    };
    let records: BTreeSet<&str> = history
        .iter()
        .filter(of_run)
        .filter(|event| event.event_type == EventType::DriftDetected)
        .filter_map(|event| event.details.get("drift_record").and_then(Value::as_str))
        .collect();
    let Some(drift) = history
        .iter()
        .filter(of_run)
        .rev()
        .find(|event| event.event_type == EventType::DriftDetected)
    else {
        return (None, records.len());
    };
    let record_id = drift
        .details
        .get("drift_record")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let results: Vec<&StoredEvent> = history
        .iter()
        .filter(|event| {
            event.seq > drift.seq
                && event.event_type == EventType::RemediationResult
                && event.details.get("drift_record").and_then(Value::as_str)
                    == Some(record_id.as_str())
        })
        .collect();
    let outcome_of = |event: &StoredEvent| {
        event
            .details
            .get("remediation_result")
            .and_then(Value::as_str)
            .and_then(RemediationOutcome::parse)
    };
    let action = match drift
        .details
        .get("remediation_action")
        .and_then(Value::as_str)
    {
        Some("auto") => ReportedAction::Auto,
        Some("deferred") => ReportedAction::Deferred,
        _ => ReportedAction::ManualTicket,
    };
    let report = LastReport {
        record_id,
        signature: drift
            .details
            .get("signature")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        action,
        outcome: results.last().and_then(|event| outcome_of(event)),
        failures: u32::try_from(
            results
                .iter()
                .filter(|event| outcome_of(event) == Some(RemediationOutcome::Failed))
                .count(),
        )
        .unwrap_or(u32::MAX),
    };
    (Some(report), records.len())
}

/// The id of a run's `n`-th drift record (its evidence record and journal key).
fn drift_record_id(run: &IntentRun, n: usize) -> String {
    if run.generation <= 1 {
        format!("{}/drift-{n:04}", run.intent_id)
    } else {
        format!("{}/run-{}/drift-{n:04}", run.intent_id, run.generation)
    }
}

/// Compares each rolled-out intent with what its plane holds and acts as
/// [`decide`] says. Idempotent: with no drift and nothing owed it only reads.
pub async fn reconcile(
    performer: &mut Performer<'_>,
    now: DateTime<Utc>,
) -> Result<ReconcileReport, DriveError> {
    let mut report = ReconcileReport::default();
    let snapshot = performer.snapshot;
    let default_policy = snapshot
        .config
        .as_ref()
        .map(|c| c.remediation)
        .unwrap_or_default();
    // A page of stored states at a time (a pass over 10,000 runs held
    // them all at once: about 200 MiB).
    let mut page: std::collections::VecDeque<crate::store::IntentRecord> = Default::default();
    let mut after: Option<String> = None;
    loop {
        if page.is_empty() {
            page = performer
                .store
                .list_intents_page(after.as_deref(), INTENT_PAGE)?
                .into();
        }
        let Some(record) = page.pop_front() else {
            break;
        };
        after = Some(record.intent_id.clone());
        let Some(run) = IntentState::from_record(&record).run else {
            continue;
        };
        if !wants_reconcile(&run) {
            continue;
        }
        let Some(intent) = snapshot.intents.get(&record.intent_id).map(|i| &i.value) else {
            continue;
        };
        let Some(artifact) = snapshot.artifact_of(intent) else {
            continue;
        };
        let plane = artifact.plane;
        if performer.planes.connector(plane).is_none() {
            continue;
        }
        let scope = &intent.target_scope;
        let mut groups = Vec::new();
        let mut devices = 0;
        for ring in run.rings.iter().filter(|ring| ring.started_at().is_some()) {
            if let Some(rule) = snapshot.entitlement_for(
                plane,
                &ring.ring,
                &scope.acquisition_boundary,
                &scope.business_unit,
            ) {
                groups.extend(rule.groups.iter().map(|g| g.id.clone()));
                devices += rule.expected_devices;
            }
        }
        let desired = DesiredState {
            version: intent.version.clone(),
            groups,
            assigned_devices: devices,
        };
        let correlation_id = plane_correlation_id(&run);
        let reconcile_status = performer.query_status(plane, &correlation_id, now);
        let status = match crate::planes::budget::with_priority(
            crate::planes::budget::Priority::Reconcile,
            reconcile_status,
        )
        .await
        {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(intent = %intent.intent_id, %error, "reconcile: status query failed; next run retries");
                continue;
            }
        };
        report.intents_checked += 1;
        let drifts = compare(&desired, &status);
        let history = performer.store.events(&EventFilter {
            intent_id: Some(intent.intent_id.clone()),
            ..EventFilter::default()
        })?;
        let (last, records) = last_report(&history, run.generation);
        let facts = ReconcileFacts {
            run: &run,
            drifts: drifts.clone(),
            policy: intent.remediation.unwrap_or(default_policy),
            last_report: last,
            now,
        };
        let mut act = Act {
            performer: &mut *performer,
            run: &run,
            plane,
            report: &mut report,
            now,
        };
        match decide(&facts) {
            ReconcileDecision::InSync | ReconcileDecision::AlreadyReported => {}
            ReconcileDecision::Report { signature, action } => {
                let record_id = drift_record_id(&run, records + 1);
                act.report_drift(
                    &record_id,
                    &signature,
                    &drifts,
                    &desired,
                    &status.observed,
                    &action,
                )
                .await?;
            }
            ReconcileDecision::Remediate { record_id, plan } => {
                act.remediate(&record_id, &plan).await?;
            }
            ReconcileDecision::Defer { record_id, reason } => {
                act.result(
                    &record_id,
                    RemediationOutcome::Deferred,
                    json!({"reason": reason}),
                )?;
                act.report.deferred += 1;
            }
            ReconcileDecision::Close { record_id } => {
                // A remediation the journal has as sent (the daemon died
                // between the plane's answer and the journal) whose drift is
                // gone was carried out: the journal says so now.
                let found_done = act
                    .performer
                    .confirm_sent_remediation(act.run, act.plane, &record_id, act.now)?;
                let details = if found_done {
                    json!({"reason": "the remediation sent before a restart was carried out: the plane matches the intent",
                           "journal": "confirmed"})
                } else {
                    json!({"reason": "the drift was gone before its remediation was sent"})
                };
                act.result(&record_id, RemediationOutcome::NotNeeded, details)?;
            }
        }
    }
    Ok(report)
}

/// Acting on one run's decision.
struct Act<'p, 'a> {
    performer: &'p mut Performer<'a>,
    run: &'p IntentRun,
    plane: Plane,
    report: &'p mut ReconcileReport,
    now: DateTime<Utc>,
}

impl Act<'_, '_> {
    /// A new drift: its signed record, its events, then what was decided.
    async fn report_drift(
        &mut self,
        record_id: &str,
        signature: &str,
        drifts: &[Drift],
        desired: &DesiredState,
        observed: &crate::planes::ObservedState,
        action: &DriftAction,
    ) -> Result<(), DriveError> {
        let intent_id = self.run.intent_id.clone();
        let action_name = match action {
            DriftAction::Remediate(_) => "auto",
            DriftAction::Ticket => "manual_ticket",
            DriftAction::Defer { .. } => "deferred",
        };
        self.report.drifts += drifts.len();
        let written = self.performer.record_evidence(
            &intent_id,
            record_id,
            "drift",
            json!({"drifts": drifts, "desired": desired, "observed": observed,
                   "remediation_action": action_name}),
            self.now,
        )?;
        for drift in drifts {
            let details = json!({
                "event_type": "drift_detected",
                "drift_type": drift.drift_type,
                "desired_state": drift.desired_state,
                "actual_state": drift.actual_state,
                "detail": drift.detail,
                "remediation_action": action_name,
                "signature": signature,
                "drift_record": record_id,
                "run_generation": self.run.generation,
            });
            self.performer.event(
                &intent_id,
                (EventType::DriftDetected, EventOutcome::Failure),
                ACTOR,
                None,
                details.clone(),
                self.now,
            )?;
            self.performer.siem.emit(
                &json!({"type": "drift", "intent_id": intent_id, "drift": details, "at": self.now}),
            );
        }
        if let Err(error) = written {
            // Evidence first: without its record nothing is done on the plane.
            let details = json!({"reason": error});
            return self.result(record_id, RemediationOutcome::Blocked, details);
        }
        match action {
            DriftAction::Remediate(plan) => self.remediate(record_id, plan).await,
            DriftAction::Ticket => {
                self.report.tickets += 1;
                let ticket = format!("RM-{}", record_id.replace('/', "-"));
                self.result(
                    record_id,
                    RemediationOutcome::Pending,
                    json!({"remediation_action": "manual_ticket", "ticket": ticket}),
                )
            }
            DriftAction::Defer { reason } => {
                self.report.deferred += 1;
                self.result(
                    record_id,
                    RemediationOutcome::Deferred,
                    json!({"reason": reason}),
                )
            }
        }
    }

    /// Carries out an owed remediation through the performer and records
    /// its result (evidence record, then event).
    async fn remediate(
        &mut self,
        record_id: &str,
        plan: &RemediationPlan,
    ) -> Result<(), DriveError> {
        let outcome = self
            .performer
            .remediate_drift(self.run, self.plane, record_id, plan, self.now)
            .await?;
        match outcome {
            DriftRemediation::Applied(result) => {
                self.report.remediated += 1;
                let details = json!({"remediation_action": "auto", "action": result.action,
                                     "applied": result.applied, "detail": result.detail,
                                     "freeze_override": plan.freeze_override});
                let evidence_id = format!("{record_id}/remediation");
                let intent_id = self.run.intent_id.clone();
                if let Err(error) = self.performer.record_evidence(
                    &intent_id,
                    &evidence_id,
                    "remediation",
                    details.clone(),
                    self.now,
                )? {
                    tracing::warn!(intent = %intent_id, %error, "the remediation was carried out but its record could not be written");
                }
                self.result(record_id, RemediationOutcome::Success, details)
            }
            DriftRemediation::Failed(error) => self.result(
                record_id,
                RemediationOutcome::Failed,
                json!({"remediation_action": "auto", "error": error}),
            ),
            DriftRemediation::NotSent { reason, deferred } => {
                let outcome = if deferred {
                    self.report.deferred += 1;
                    RemediationOutcome::Deferred
                } else {
                    RemediationOutcome::Blocked
                };
                self.result(record_id, outcome, json!({"reason": reason}))
            }
        }
    }

    /// The `remediation_result` event of a drift record.
    fn result(
        &mut self,
        record_id: &str,
        outcome: RemediationOutcome,
        details: Value,
    ) -> Result<(), DriveError> {
        let mut details = details;
        details["remediation_result"] = json!(outcome.as_str());
        details["drift_record"] = json!(record_id);
        details["run_generation"] = json!(self.run.generation);
        let event_outcome = match outcome {
            RemediationOutcome::Success | RemediationOutcome::NotNeeded => EventOutcome::Success,
            RemediationOutcome::Failed | RemediationOutcome::Blocked => EventOutcome::Failure,
            RemediationOutcome::Pending | RemediationOutcome::Deferred => EventOutcome::Pending,
        };
        let intent_id = self.run.intent_id.clone();
        self.performer.event(
            &intent_id,
            (EventType::RemediationResult, event_outcome),
            ACTOR,
            None,
            details,
            self.now,
        )
    }
}
