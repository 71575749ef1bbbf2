//! The `ringmaster` binary: parse the command line, read the clock once, run.

use clap::Parser;

/// Policy evaluation allocates and frees many small values; mimalloc keeps
/// that from dominating `validate` on large repositories.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything is freed (a purge scheduled under the default delay
    // keeps it): the command is found by its name among the arguments, not
    // in the parsed command line, whose parsing allocates and frees.
    if std::env::args_os().skip(1).any(|arg| arg == "validate") {
        purge_freed_memory_sooner();
    }
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

/// mimalloc's `mi_option_purge_delay`, in the `mi_option_e` of the v3
/// headers the `mimalloc` crate builds (its default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc's default purge delay, in milliseconds (`options.c` of v3).
const DEFAULT_PURGE_DELAY: std::ffi::c_long = 1000;

unsafe extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `validate` judges on more threads than cores (`evaluation`), each
/// freeing what it allocated for a chunk of intents; mimalloc gives freed
/// pages back to the system 2 ms after, not a second after (longer than
/// the whole run): with twice the threads, peak RSS on a 10,000-intent
/// repository stays at ~95 MiB instead of 95-108 MiB, no slower. Left
/// alone when the option does not hold its default (set in the
/// environment, or another mimalloc).
fn purge_freed_memory_sooner() {
    // SAFETY: plain option calls of the allocator linked in above.
    unsafe {
        if mi_option_get(MI_OPTION_PURGE_DELAY) == DEFAULT_PURGE_DELAY {
            mi_option_set(MI_OPTION_PURGE_DELAY, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option named is the linked mimalloc's purge delay: the only
    /// option whose default is a second, and `validate` sets it to 2 ms.
    #[test]
    fn the_purge_delay_option_is_the_linked_mimallocs() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: plain option calls of the allocator linked in above.
        let get = || unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), DEFAULT_PURGE_DELAY);
        purge_freed_memory_sooner();
        assert_eq!(get(), 2);
    }
}
