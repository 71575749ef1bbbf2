//! Benchmark: microseconds per `PolicyEngine::evaluate` (built-in rules on the
//! RVM, tenant packages on the interpreter) against the reference path
//! `PolicyEngine::evaluate_interpreted` (everything on the interpreter).
//!
//! Inputs are real policy inputs: the embedded sample repository's intents
//! (approvals, exceptions, CVEs, privileged apps) and a synthetic repository
//! of `RINGMASTER_BENCH_INTENTS` intents (default 2,000), each evaluated with
//! the tenant policy the repository ships and with the built-in bundle alone.
//! Every input is also checked to get the same outcome on both paths.
//!
//! Prints, per path, the median of five rounds of wall-clock time on one
//! thread (and of that thread's CPU time, which the load of a shared machine
//! disturbs less), and the wall-clock time per evaluation when two threads share the
//! inputs the way `ringmaster validate` does (each thread half of them),
//! times two: on a machine with two idle cores that equals the one-thread
//! figure, and what it adds is contention (allocator, caches, other load).
//!
//! Run: `cargo bench --bench policy`.

use chrono::{DateTime, Utc};
use ringmaster::evaluation::{NoRuntime, engine_for, policy_input};
use ringmaster::model::{self, Entry};
use ringmaster::policy::{EvaluationPath, PolicyEngine};
use serde_json::Value as Json;
use std::time::Instant;

const ROUNDS: usize = 5;

/// Policy inputs of every intent of a repository, and its engine.
fn inputs(entries: &[Entry], now: DateTime<Utc>) -> (PolicyEngine, Vec<Json>) {
    let (snapshot, _) = model::load(entries);
    let (engine, diagnostics) = engine_for(&snapshot);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let inputs = snapshot
        .intents
        .values()
        .filter_map(|intent| policy_input(&snapshot, intent, None, now, &NoRuntime))
        .collect();
    (engine, inputs)
}

/// Nanoseconds this thread has run on a CPU (Linux), to see through the
/// load of a shared machine; `None` elsewhere.
fn thread_cpu_nanoseconds() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Median microseconds per evaluation over `ROUNDS` rounds of `iterations`
/// evaluations cycling through `inputs`: wall-clock and, where the system
/// tells, CPU time of this thread.
fn microseconds_per_evaluation(
    inputs: &[Json],
    iterations: usize,
    mut evaluate: impl FnMut(&Json),
) -> (f64, Option<f64>) {
    let mut wall = Vec::with_capacity(ROUNDS);
    let mut cpu = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let cpu_started = thread_cpu_nanoseconds();
        let started = Instant::now();
        for input in inputs.iter().cycle().take(iterations) {
            evaluate(input);
        }
        wall.push(started.elapsed().as_secs_f64() * 1e6 / iterations as f64);
        if let (Some(before), Some(after)) = (cpu_started, thread_cpu_nanoseconds()) {
            cpu.push(after.saturating_sub(before) as f64 / 1e3 / iterations as f64);
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let cpu = (cpu.len() == ROUNDS).then(|| median(cpu));
    (median(wall), cpu)
}

/// Wall-clock microseconds per evaluation, times the thread count, when two
/// threads each evaluate one half of `inputs` (cycled to `iterations` in all).
fn microseconds_per_evaluation_on_two_threads(
    inputs: &[Json],
    iterations: usize,
    evaluate: impl Fn(&Json) + Sync,
) -> f64 {
    let half = inputs.len().div_ceil(2);
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            std::thread::scope(|scope| {
                for chunk in inputs.chunks(half) {
                    let evaluate = &evaluate;
                    scope.spawn(move || {
                        for input in chunk.iter().cycle().take(iterations / 2) {
                            evaluate(input);
                        }
                    });
                }
            });
            started.elapsed().as_secs_f64() * 1e6 * 2.0 / iterations as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn compare(label: &str, engine: &PolicyEngine, inputs: &[Json], iterations: usize) {
    let compiled_inputs = inputs
        .iter()
        .filter(|input| engine.evaluation_path(input) == EvaluationPath::Compiled)
        .count();
    for input in inputs {
        assert_eq!(
            engine.evaluate(input),
            engine.evaluate_interpreted(input),
            "the paths disagree on {input:#}"
        );
    }
    let interpreted = microseconds_per_evaluation(inputs, iterations, |input| {
        std::hint::black_box(engine.evaluate_interpreted(input).ok());
    });
    let compiled = microseconds_per_evaluation(inputs, iterations, |input| {
        std::hint::black_box(engine.evaluate(input).ok());
    });
    let interpreted_two = microseconds_per_evaluation_on_two_threads(inputs, iterations, |input| {
        std::hint::black_box(engine.evaluate_interpreted(input).ok());
    });
    let compiled_two = microseconds_per_evaluation_on_two_threads(inputs, iterations, |input| {
        std::hint::black_box(engine.evaluate(input).ok());
    });
    println!(
        "{label} ({} inputs, {compiled_inputs} on the compiled path)",
        inputs.len()
    );
    let (interpreted, interpreted_cpu) = interpreted;
    let (compiled, compiled_cpu) = compiled;
    println!(
        "    one thread:  interpreter {interpreted:>7.1} µs  evaluate {compiled:>6.1} µs  ×{:.1}",
        interpreted / compiled
    );
    if let (Some(interpreted), Some(compiled)) = (interpreted_cpu, compiled_cpu) {
        println!(
            "    its CPU:     interpreter {interpreted:>7.1} µs  evaluate {compiled:>6.1} µs  ×{:.1}",
            interpreted / compiled
        );
    }
    println!(
        "    two threads: interpreter {interpreted_two:>7.1} µs  evaluate {compiled_two:>6.1} µs  ×{:.1}",
        interpreted_two / compiled_two
    );
}

fn main() {
    let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().expect("time");
    let synthetic_intents: usize = std::env::var("RINGMASTER_BENCH_INTENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2_000);

    let sample: Vec<Entry> = ringmaster::sample::SAMPLE_REPO
        .iter()
        .map(|(path, bytes)| Entry::file(*path, *bytes))
        .collect();
    let synthetic: Vec<Entry> = ringmaster::synthetic::files(synthetic_intents)
        .into_iter()
        .map(|(path, text)| Entry::file(path, text))
        .collect();

    let builtin_only = PolicyEngine::new(&[]).expect("built-in bundle compiles");
    for (name, entries) in [("sample", &sample), ("synthetic", &synthetic)] {
        let (engine, inputs) = inputs(entries, now);
        let iterations = 2_000.max(inputs.len());
        let tenants = engine.tenant_package_names().join(", ");
        compare(
            &format!("{name}, with {tenants}"),
            &engine,
            &inputs,
            iterations,
        );
        compare(
            &format!("{name}, built-in rules only"),
            &builtin_only,
            &inputs,
            iterations,
        );
    }
}
