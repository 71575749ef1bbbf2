//! `ringmaster rebuild` at scale (a plain `harness = false` binary that
//! prints figures): a tenant of N intents (default 10,000) made by
//! `ringmaster generate`, one real `serve --once` on simulated planes
//! (every intent judged and recorded, the allowed rollouts started: their
//! ring-start records signed and committed, the first rings published),
//! then the state directory is deleted and `ringmaster rebuild` makes it
//! again from the evidence branch and the planes. Prints the branch's size
//! and the rebuild's time; then `verify --state` must pass on the result.
//!
//! `cargo bench --bench rebuild`; environment: `RINGMASTER_BENCH_INTENTS`
//! (default 10000).

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

fn main() {
    let intents = environment_number("RINGMASTER_BENCH_INTENTS", 10_000);
    let work = tempfile::tempdir().expect("temp dir");
    let repo = work.path().join("governed");
    let keys = work.path().join("keys");
    let planes = work.path().join("planes");
    let state = work.path().join("state");
    std::fs::create_dir_all(&planes).expect("planes dir");
    let started = Instant::now();
    ringmaster(
        &["generate", text(&repo), "--intents", &intents.to_string()],
        work.path(),
    );
    ringmaster(&["keygen", "--out", text(&keys)], work.path());
    let config = keys.join("daemon.yaml");
    let mut yaml = String::from("planes:\n");
    for plane in ["intune", "jamf", "sccm", "landscape", "ansible"] {
        yaml.push_str(&format!(
            "  {plane}: {{type: sim, seed: 11, default_success_rate: 1.0, install_delay_seconds: [300, 3600], state_file: {}}}\n",
            planes.join(format!("{plane}.json")).display()
        ));
    }
    std::fs::write(&config, yaml).expect("config");
    println!(
        "tenant: {intents} intents generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let now = "2026-12-01T08:00:00Z";
    let serve = Instant::now();
    ringmaster(
        &[
            "serve",
            "--repo",
            text(&repo),
            "--state",
            text(&state),
            "--key",
            text(&keys.join("ringmaster.key")),
            "--config",
            text(&config),
            "--once",
            "--now",
            now,
        ],
        &repo,
    );
    let records = String::from_utf8_lossy(
        &Command::new("git")
            .args(["rev-list", "--count", "evidence"])
            .current_dir(&repo)
            .output()
            .expect("git")
            .stdout,
    )
    .trim()
    .to_owned();
    println!(
        "daemon: first serve --once in {:.1} s; evidence branch: {records} records",
        serve.elapsed().as_secs_f64()
    );

    std::fs::remove_dir_all(&state).expect("the state is lost");
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
            "--config",
            text(&config),
            "--now",
            now,
            "--json",
        ],
        &repo,
    );
    let wall = rebuild.elapsed().as_secs_f64();
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the summary is JSON");
    println!(
        "rebuild: {wall:.2} s wall ({:.2} s inside) for {} records: {} intents, {} runs, {} rings published, {} journal entries, {} plane status queries",
        summary["elapsed_seconds"].as_f64().unwrap_or(0.0),
        summary["records"],
        summary["intents"],
        summary["runs"],
        summary["rings_published"],
        summary["journal_entries"],
        summary["plane_queries"],
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
