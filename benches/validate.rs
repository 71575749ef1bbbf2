//! Benchmark: cold `ringmaster validate` on a synthetic repository of N
//! intents (default 10,000; `RINGMASTER_BENCH_INTENTS` to change), and, in the
//! same run, `check-jsonschema` validating the same intent files against the
//! same schema when it is installed (`pip install check-jsonschema`).
//!
//! Prints each run's time and peak RSS, the median of several runs after a
//! warm-up, the time and memory of each stage of the last run
//! (`RINGMASTER_TIMINGS=1`), and the ratio to check-jsonschema's median.
//!
//! Run: `cargo bench --bench validate` (cargo builds the release binary first);
//! `RINGMASTER_BENCH_RUNS` (default 5), `RINGMASTER_BENCH_CHECKER_RUNS`
//! (default 3). `RINGMASTER_BENCH_BASELINE=/path/to/an/older/ringmaster`
//! also runs that binary, alternating with this one in the same run, prints
//! its median, and checks that both JSON reports are byte-identical. Each
//! run's CPU time (user + system, the process and the policy workers it
//! waits for) is printed next to its wall time.

#[path = "support/timed.rs"]
mod timed;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use timed::{cpu_seconds, run_timed, timed};

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
    // The release binary cargo built for this bench (in the target
    // directory, wherever the build directory is).
    let binary = Path::new(env!("CARGO_BIN_EXE_ringmaster")).to_path_buf();

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

    // One warm-up run (page cache, binary), then the median of
    // `RINGMASTER_BENCH_RUNS` runs (default 5). Each run is the whole
    // process as a user runs it; its peak RSS is read from GNU time when
    // installed (`/usr/bin/time`).
    let runs: usize = std::env::var("RINGMASTER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let baseline = std::env::var_os("RINGMASTER_BENCH_BASELINE").map(std::path::PathBuf::from);
    let mut validate_runs = Vec::new();
    let mut baseline_runs = Vec::new();
    let mut validate_cpu = Vec::new();
    for run in 0..=runs {
        if let Some(baseline) = &baseline {
            let mut command = timed(baseline);
            command.args([
                "validate",
                "--format",
                "json",
                "--now",
                "2026-12-01T00:00:00Z",
            ]);
            command.arg(dir.path());
            let (output, elapsed, peak_kib) = run_timed(command);
            let cpu = cpu_seconds(&output);
            println!(
                "{}: baseline {}: {elapsed:.3} s, CPU {}, peak RSS {}",
                if run == 0 {
                    "warm-up".to_string()
                } else {
                    format!("run {run}")
                },
                baseline.display(),
                cpu.map_or("n/a".to_string(), |cpu| format!("{cpu:.2} s")),
                peak_kib.map_or("n/a".to_string(), |kib| format!(
                    "{:.0} MiB",
                    kib as f64 / 1024.0
                )),
            );
            if run > 0 {
                baseline_runs.push((elapsed, cpu, peak_kib, output.stdout));
            }
        }
        let mut command = timed(&binary);
        command.args([
            "validate",
            "--format",
            "json",
            "--now",
            "2026-12-01T00:00:00Z",
        ]);
        command.arg(dir.path());
        // Each stage's time and memory on stderr (printed for the last run).
        command.env("RINGMASTER_TIMINGS", "1");
        let (output, elapsed, peak_kib) = run_timed(command);
        let cpu = cpu_seconds(&output);
        let stages: Vec<String> = String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| line.starts_with("timing: "))
            .map(str::to_owned)
            .collect();
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("json report");
        let judged = report["intents"].as_array().map(Vec::len).unwrap_or(0);
        let allowed = report["intents"]
            .as_array()
            .map(|a| a.iter().filter(|i| i["decision"] == "ALLOW").count())
            .unwrap_or(0);
        assert_eq!(judged, intents, "every intent judged");
        println!(
            "{}: ringmaster validate (read git, parse, schema, links, risk, Rego): {:.3} s, CPU {}, peak RSS {} for {intents} intents ({allowed} ALLOW), exit {}",
            if run == 0 {
                "warm-up".to_string()
            } else {
                format!("run {run}")
            },
            elapsed,
            cpu.map_or("n/a".to_string(), |cpu| format!("{cpu:.2} s")),
            peak_kib.map_or("n/a".to_string(), |kib| format!(
                "{:.0} MiB",
                kib as f64 / 1024.0
            )),
            output.status.code().unwrap_or(-1)
        );
        if run > 0 {
            if let Some((.., baseline_report)) = baseline_runs.last() {
                assert!(
                    *baseline_report == output.stdout,
                    "the JSON report differs from the baseline binary's"
                );
            }
            validate_runs.push((elapsed, peak_kib));
            validate_cpu.extend(cpu);
        }
        if run == runs {
            println!("stages of run {run} (RINGMASTER_TIMINGS=1):");
            for stage in &stages {
                println!("  {stage}");
            }
        }
    }
    let validate_median = median(validate_runs.iter().map(|(elapsed, _)| *elapsed).collect());
    let validate_peak = validate_runs.iter().filter_map(|(_, peak)| *peak).max();
    println!(
        "ringmaster validate: median {validate_median:.3} s over {runs} runs, median CPU {}, peak RSS {} (max over runs)",
        if validate_cpu.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.2} s", median(validate_cpu))
        },
        validate_peak.map_or("n/a".to_string(), |kib| format!(
            "{:.0} MiB",
            kib as f64 / 1024.0
        ))
    );
    if !baseline_runs.is_empty() {
        let cpus: Vec<f64> = baseline_runs.iter().filter_map(|run| run.1).collect();
        println!(
            "baseline: median {:.3} s over {runs} runs, median CPU {}, peak RSS {} (max over runs); reports byte-identical",
            median(baseline_runs.iter().map(|run| run.0).collect()),
            if cpus.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.2} s", median(cpus))
            },
            baseline_runs.iter().filter_map(|run| run.2).max().map_or(
                "n/a".to_string(),
                |kib| format!("{:.0} MiB", kib as f64 / 1024.0)
            )
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
    let checker_runs: usize = std::env::var("RINGMASTER_BENCH_CHECKER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut checker_times = Vec::new();
    for _ in 0..checker_runs {
        let mut command = timed(Path::new("check-jsonschema"));
        command.arg("--schemafile").arg(&schema).args(&intent_files);
        if Command::new("check-jsonschema")
            .arg("--version")
            .output()
            .is_err()
        {
            break;
        }
        let (output, elapsed, peak_kib) = run_timed(command);
        println!(
            "check-jsonschema (schema only, same {} intent files, same schema): {elapsed:.3} s, peak RSS {}, exit {}",
            intent_files.len(),
            peak_kib.map_or("n/a".to_string(), |kib| format!(
                "{:.0} MiB",
                kib as f64 / 1024.0
            )),
            output.status.code().unwrap_or(-1)
        );
        checker_times.push(elapsed);
    }
    if checker_times.is_empty() {
        println!(
            "check-jsonschema not installed (pip install check-jsonschema) — skipped the comparison"
        );
    } else {
        let checker_median = median(checker_times);
        println!(
            "check-jsonschema: median {checker_median:.3} s over {checker_runs} runs; ringmaster validate is {:.1}x faster",
            checker_median / validate_median
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
