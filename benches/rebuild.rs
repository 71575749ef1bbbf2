//! `ringmaster rebuild` at scale (a plain `harness = false` binary that
//! prints figures): a tenant of N intents (default 10,000) made by
//! `ringmaster generate`, and its evidence branch as the daemon would have
//! left it once every rollout completed: per intent, a decision record (the
//! verdict in `evaluation_facts`) and a ring record carrying the run
//! (`summary.run`, a completed five-ring rollout: the demo's stored state as
//! a template, as `benches/metrics.rs` seeds its store), all signed and
//! chained, written with the evidence writer's batch commits. Then
//! `ringmaster rebuild` (the release binary) makes the store from it into an
//! empty state directory — verification of every signature included — and
//! `verify --state` must pass on the result.
//!
//! `cargo bench --bench rebuild`; environment: `RINGMASTER_BENCH_INTENTS`
//! (default 10000).

use chrono::{TimeZone as _, Utc};
use ringmaster::evidence::{
    AppendContext, EvidenceBranch, EvidencePackInput, GitIdentity, RecordType, SigningKey,
};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

fn environment_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn ringmaster(arguments: &[&str], directory: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(arguments)
        .current_dir(directory)
        .output()
        .expect("ringmaster runs");
    assert!(
        output.status.success(),
        "ringmaster {arguments:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Records per batch commit.
const BATCH: usize = 1000;

fn main() {
    let intents = environment_number("RINGMASTER_BENCH_INTENTS", 10_000);
    let work = tempfile::tempdir().expect("temp dir");
    let repo = work.path().join("governed");
    let keys = work.path().join("keys");
    let state = work.path().join("state");
    let started = Instant::now();
    ringmaster(
        &["generate", text(&repo), "--intents", &intents.to_string()],
        work.path(),
    );
    ringmaster(&["keygen", "--out", text(&keys)], work.path());
    println!(
        "tenant: {intents} intents generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The evidence branch of a tenant whose rollouts all completed.
    let seeding = Instant::now();
    let governed = ringmaster::source::GovernedRepo::open(&repo).expect("repository");
    let head = governed
        .repository
        .head()
        .and_then(|head| head.peel_to_commit())
        .expect("a commit");
    let commit = head.id().to_string();
    let (snapshot, _) = ringmaster::model::load(&governed.entries_at(head.id()).expect("entries"));
    let template: Value =
        serde_json::from_str(include_str!("data/completed_intent_state.json")).expect("template");
    let signer = SigningKey::load(&keys.join("ringmaster.key"), None).expect("key");
    let branch = EvidenceBranch::open(governed.repository.path(), "evidence").expect("branch");
    let at = Utc
        .with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
        .single()
        .expect("date");
    let identity = GitIdentity {
        name: "ringmaster".into(),
        email: "ringmaster@localhost".into(),
        time: at.fixed_offset(),
    };
    let input = |record_type, intent_id: &str, body: Value| EvidencePackInput {
        record_type,
        intent_id: Some(intent_id.to_owned()),
        correlation_id: ringmaster::store::correlation_id_for(intent_id),
        source_commit: commit.clone(),
        source_parent: None,
        author: identity.clone(),
        committer: identity.clone(),
        created_at: at,
        body,
    };
    let mut inputs = Vec::new();
    for (intent_id, intent) in &snapshot.intents {
        let intent = &intent.value;
        let mut evaluation = template["evaluation"].clone();
        evaluation["version"] = json!(intent.version);
        evaluation["commit"] = json!(commit);
        let mut run = template["run"].clone();
        run["intent_id"] = json!(intent_id);
        run["application_id"] = json!(intent.application_id);
        run["version"] = json!(intent.version);
        inputs.push(input(
            RecordType::Decision,
            intent_id,
            json!({
                "decision": "ALLOW",
                "intent": intent,
                "fingerprint": ringmaster::evidence::sha256_hex(intent_id.as_bytes()),
                "risk": {"risk_score": 41},
                "evaluation_facts": evaluation,
                "rules_in_force": {"commit": commit},
            }),
        ));
        inputs.push(input(
            RecordType::RingTransition,
            intent_id,
            json!({
                "transition_id": format!("{intent_id}/0011-completed"),
                "transition": "completed",
                "summary": {"intent_id": intent_id, "phase": "completed", "run": run},
                "execution_plane": "intune",
                "plane_mode": "simulated",
            }),
        ));
    }
    let records = inputs.len();
    while !inputs.is_empty() {
        let rest = inputs.split_off(inputs.len().min(BATCH));
        branch
            .append_batch(inputs, &signer, &AppendContext::default())
            .expect("append");
        inputs = rest;
    }
    println!(
        "evidence branch: {records} records (a decision and a completed run per intent) signed and committed in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let rebuild = Instant::now();
    let output = ringmaster(
        &[
            "rebuild",
            "--repo",
            text(&repo),
            "--state",
            text(&state),
            "--public-key",
            text(&keys.join("ringmaster.pub")),
            "--key",
            text(&keys.join("ringmaster.key")),
            "--json",
        ],
        &repo,
    );
    let wall = rebuild.elapsed().as_secs_f64();
    let summary: Value = serde_json::from_slice(&output.stdout).expect("the summary is JSON");
    println!(
        "rebuild: {wall:.2} s wall ({:.2} s inside) for {} records: {} intents, {} runs, {} rings completed, {} journal entries, {} processed commit(s)",
        summary["elapsed_seconds"].as_f64().unwrap_or(0.0),
        summary["records"],
        summary["intents"],
        summary["runs"],
        summary["rings_completed"],
        summary["journal_entries"],
        summary["processed_commits"],
    );
    let verify = Instant::now();
    ringmaster(
        &[
            "verify",
            text(&repo),
            "--public-key",
            text(&keys.join("ringmaster.pub")),
            "--state",
            text(&state),
        ],
        &repo,
    );
    println!(
        "verify --state on the rebuilt store: ok in {:.2} s",
        verify.elapsed().as_secs_f64()
    );
}
