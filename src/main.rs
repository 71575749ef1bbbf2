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
    ringmaster::cli::run(cli, std::sync::Arc::new(chrono::Utc::now))
}
