//! `status`, `hold`, `resume` and `rollback`: the rollouts as the store sees them.

use super::Format;
use crate::daemon::rollout::IntentState;
use crate::store::Store;
use anyhow::bail;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

fn open(state: &Path) -> anyhow::Result<Store> {
    Ok(Store::open_existing(&state.join("ringmaster.db"))?)
}

pub(super) fn status(state: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let store = open(state)?;
    let records = store.list_intents()?;
    let mut report = Vec::new();
    for record in &records {
        let intent_state = IntentState::from_record(record);
        let rings: Vec<serde_json::Value> = intent_state
            .run
            .as_ref()
            .map(|run| {
                run.rings
                    .iter()
                    .map(|ring| {
                        json!({
                            "ring": ring.ring,
                            "started_at": ring.started_at,
                            "completed_at": ring.completed_at,
                            "observed": ring.observed,
                            "gate": ring.gate,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        report.push(json!({
            "intent_id": record.intent_id,
            "correlation_id": record.correlation_id,
            "plane": intent_state.plane.as_ref().map(|p| p.plane.clone()),
            "plane_mode": intent_state.plane.as_ref().map(|p| p.mode.as_str()),
            "decision": record.decision,
            "risk_score": record.risk_score,
            "state": intent_state.run.as_ref().map(|r| r.phase.name()).unwrap_or(record.state.as_str()),
            "phase": intent_state.run.as_ref().map(|r| &r.phase),
            "rings": rings,
            "updated_at": record.updated_at,
        }));
    }
    // A change to the rules that is not in force is reported until a later
    // authorised commit (on stderr: the report's shape stays the same).
    for rules in store.rules_states()? {
        if let Some(change) = &rules.unauthorised {
            let paths: Vec<&str> = change["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str())
                .collect();
            eprintln!(
                "governance_change_unauthorised on {}: commit {} changes {} without an admin's authorisation ({}); judged by the rules in force of commit {}",
                rules.branch.escape_debug(),
                change["commit"].as_str().unwrap_or_default().escape_debug(),
                paths.join(", ").escape_debug(),
                change["reason"].as_str().unwrap_or_default().escape_debug(),
                rules.rules_commit,
            );
        }
    }
    match format {
        Format::Json | Format::Github => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Human => {
            let mut rows = Vec::new();
            for (record, entry) in records.iter().zip(&report) {
                let intent_state = IntentState::from_record(record);
                let progress = intent_state
                    .run
                    .as_ref()
                    .map(|run| {
                        run.rings
                            .iter()
                            .map(|ring| {
                                let mark = match (&ring.completed_at, &ring.started_at) {
                                    (Some(_), _) => "done",
                                    (None, Some(_)) => "live",
                                    (None, None) => "-",
                                };
                                match &ring.observed {
                                    Some(o) if ring.started_at.is_some() => format!(
                                        "{}:{mark} {}/{}{}",
                                        short_ring(&ring.ring),
                                        o.installed,
                                        o.targeted,
                                        ring.gate
                                            .as_ref()
                                            .map(|g| format!(
                                                " {:?} {:.0}%",
                                                g.verdict,
                                                g.success_rate.unwrap_or(0.0) * 100.0
                                            ))
                                            .unwrap_or_default()
                                    ),
                                    _ => format!("{}:{mark}", short_ring(&ring.ring)),
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("  ")
                    })
                    .unwrap_or_default();
                let plane = intent_state
                    .plane
                    .as_ref()
                    .map(|facts| match facts.mode {
                        crate::daemon::planes::PlaneMode::Simulated => {
                            format!("{} (SIMULATED)", facts.plane)
                        }
                        crate::daemon::planes::PlaneMode::Live => facts.plane.clone(),
                    })
                    .unwrap_or_else(|| "-".into());
                rows.push(vec![
                    record.intent_id.clone(),
                    plane,
                    record.decision.clone().unwrap_or_default(),
                    entry["state"].as_str().unwrap_or_default().to_owned(),
                    progress,
                ]);
            }
            print!(
                "{}",
                super::output::table(
                    &[
                        "INTENT",
                        "PLANE",
                        "DECISION",
                        "STATE",
                        "RINGS (installed/targeted, gate)"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn short_ring(ring: &str) -> String {
    // ring-2-pilot → pilot
    ring.splitn(3, '-').nth(2).unwrap_or(ring).to_owned()
}

/// Queues an operator action for the daemon (applied at its next step).
pub(super) fn operator(
    state: &Path,
    intent: &str,
    action: &str,
    reason: &str,
    actor: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<ExitCode> {
    let mut store = open(state)?;
    if store.get_intent(intent)?.is_none() {
        let known: Vec<String> = store
            .list_intents()?
            .into_iter()
            .map(|r| r.intent_id)
            .collect();
        bail!(
            "no intent \"{intent}\" in the store; known: [{}]",
            known.join(", ")
        );
    }
    if reason.trim().is_empty() {
        bail!("--reason must say why (it goes into the audit trail)");
    }
    let actor = actor
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let id = store.request_operator_action(intent, action, reason, &actor, now)?;
    println!(
        "queued {action} of {intent} by {actor} (request #{id}); the daemon applies it at its next step and records it as an event and evidence"
    );
    Ok(ExitCode::SUCCESS)
}
