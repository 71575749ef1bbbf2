//! Benchmark: cold `ringmaster validate` on a synthetic repository of N
//! intents (default 10,000; `RINGMASTER_BENCH_INTENTS` to change), and, in the
//! same run, `check-jsonschema` validating the same intent files against the
//! same schema when it is installed (`pip install check-jsonschema`).
//!
//! Run: `cargo bench --bench validate` (builds the release binary first).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed");
}

fn main() {
    let intents: usize = std::env::var("RINGMASTER_BENCH_INTENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // This bench runs from <target>/release/deps/; the binary is <target>/release/ringmaster.
    let binary = std::env::current_exe()
        .expect("bench path")
        .parent()
        .and_then(Path::parent)
        .expect("target/release")
        .join("ringmaster");
    let build = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "ringmaster"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(build.success(), "release build failed");

    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let files = ringmaster::synthetic::write(dir.path(), intents).expect("write synthetic repo");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(
        dir.path(),
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "commit",
            "-q",
            "-m",
            "synthetic",
        ],
    );
    println!(
        "generated {intents} intents ({files} files) and committed them in {:.2?}",
        started.elapsed()
    );

    for run in 1..=3 {
        let started = Instant::now();
        let output = Command::new(&binary)
            .args([
                "validate",
                "--format",
                "json",
                "--now",
                "2026-12-01T00:00:00Z",
            ])
            .arg(dir.path())
            .output()
            .expect("ringmaster runs");
        let elapsed = started.elapsed();
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("json report");
        let judged = report["intents"].as_array().map(Vec::len).unwrap_or(0);
        let allowed = report["intents"]
            .as_array()
            .map(|a| a.iter().filter(|i| i["decision"] == "ALLOW").count())
            .unwrap_or(0);
        assert_eq!(judged, intents, "every intent judged");
        println!(
            "run {run}: ringmaster validate (read git, parse, schema, links, risk, Rego): {:.3} s for {intents} intents ({allowed} ALLOW), exit {}",
            elapsed.as_secs_f64(),
            output.status.code().unwrap_or(-1)
        );
    }

    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/deployment-intent.schema.json");
    let mut intent_files: Vec<_> = std::fs::read_dir(dir.path().join("intents"))
        .expect("intents dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    intent_files.sort();
    let started = Instant::now();
    match Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema)
        .args(&intent_files)
        .output()
    {
        Ok(output) => println!(
            "check-jsonschema (schema only, same {} intent files, same schema): {:.3} s, exit {}",
            intent_files.len(),
            started.elapsed().as_secs_f64(),
            output.status.code().unwrap_or(-1)
        ),
        Err(_) => println!(
            "check-jsonschema not installed (pip install check-jsonschema) — skipped the comparison"
        ),
    }
}
