//! The `ringmaster` binary: parse the command line, read the clock once, run.

use clap::Parser;

/// Policy evaluation allocates and frees many small values; mimalloc keeps
/// that from dominating `validate` on large repositories.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGMASTER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = ringmaster::cli::Cli::parse();
    // Tenant Rego runs in guarded worker processes (this same binary), with
    // a memory limit and a deadline the judge's own process cannot enforce.
    ringmaster::sandbox::install_current_exe();
    ringmaster::cli::run(cli, clock())
}

/// The wall clock; shifted by `RINGMASTER_TEST_CLOCK_OFFSET_MS` when a
/// test sets it (replicas of `serve` sharing one simulated instant, where
/// `--now` would freeze time: tests/failover.rs).
fn clock() -> ringmaster::daemon::Clock {
    let offset = std::env::var("RINGMASTER_TEST_CLOCK_OFFSET_MS")
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .map(chrono::Duration::milliseconds);
    match offset {
        Some(offset) => std::sync::Arc::new(move || chrono::Utc::now() + offset),
        None => std::sync::Arc::new(chrono::Utc::now),
    }
}
