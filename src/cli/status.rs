//! `status`, `hold`, `resume` and `rollback`: the rollouts as the store sees them.

use super::Format;
use crate::api::v1::view::IntentView;
pub(super) use crate::api::v1::view::RulesInForceView;
use crate::store::Store;
use anyhow::bail;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

fn open(state: &Path) -> anyhow::Result<Store> {
    Ok(Store::open_existing_location(&super::store_location(
        state,
    ))?)
}

pub(super) fn status(state: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let store = open(state)?;
    let intents: Vec<IntentView> = store.list_intents()?.iter().map(IntentView::of).collect();
    let rules: Vec<RulesInForceView> = store
        .rules_states()?
        .iter()
        .map(RulesInForceView::of)
        .collect();
    report_unauthorised(&rules);
    // On a shared (PostgreSQL) store: which replica leads (on stderr, so
    // the report's shape stays the same).
    if let Some(leadership) = store.leadership()? {
        eprintln!(
            "leader: {} (epoch {}, lease until {})",
            leadership.holder,
            leadership.epoch,
            leadership
                .lease_expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    print_status(&intents, format)?;
    Ok(ExitCode::SUCCESS)
}

/// A change to the rules that is not in force is reported until a later
/// authorised commit (on stderr: the report's shape stays the same), local
/// or `--server` alike.
pub(super) fn report_unauthorised(rules: &[RulesInForceView]) {
    for rules in rules {
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
                rules.rules_commit.escape_debug(),
            );
        }
    }
}

/// Prints intents as `status` does (local or `--server`: the same table).
pub(super) fn print_status(intents: &[IntentView], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json | Format::Github => println!("{}", serde_json::to_string_pretty(intents)?),
        Format::Human => print!("{}", status_table(intents)),
    }
    Ok(())
}

fn short_ring(ring: &str) -> String {
    // ring-2-pilot → pilot
    ring.splitn(3, '-').nth(2).unwrap_or(ring).to_owned()
}

/// The human table of `ringmaster status`, local or `--server`.
pub(super) fn status_table(intents: &[IntentView]) -> String {
    let rows: Vec<Vec<String>> = intents
        .iter()
        .map(|intent| {
            let progress = intent
                .rings
                .iter()
                .map(|ring| {
                    let mark = match (&ring.completed_at, &ring.started_at) {
                        (Some(_), _) => "done",
                        (None, Some(_)) => "live",
                        (None, None) => "-",
                    };
                    match &ring.observed {
                        Some(observed) if ring.started_at.is_some() => format!(
                            "{}:{mark} {}/{}{}",
                            short_ring(&ring.ring),
                            observed["installed"].as_u64().unwrap_or(0),
                            observed["targeted"].as_u64().unwrap_or(0),
                            ring.gate
                                .as_ref()
                                .map(|gate| format!(
                                    " {} {:.0}%",
                                    gate_verdict(&gate["verdict"]),
                                    gate["success_rate"].as_f64().unwrap_or(0.0) * 100.0
                                ))
                                .unwrap_or_default()
                        ),
                        _ => format!("{}:{mark}", short_ring(&ring.ring)),
                    }
                })
                .collect::<Vec<_>>()
                .join("  ");
            let plane = match (&intent.plane, intent.plane_mode.as_deref()) {
                (Some(plane), Some("simulated")) => format!("{plane} (SIMULATED)"),
                (Some(plane), _) => plane.clone(),
                (None, _) => "-".into(),
            };
            vec![
                intent.intent_id.clone(),
                plane,
                intent.decision.clone().unwrap_or_default(),
                intent.state.clone(),
                progress,
            ]
        })
        .collect();
    super::output::table(
        &[
            "INTENT",
            "PLANE",
            "DECISION",
            "STATE",
            "RINGS (installed/targeted, gate)",
        ],
        &rows,
    )
}

/// The verdict as `{:?}` printed it before (`Pass`, `Fail`, `Inconclusive`).
fn gate_verdict(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
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
