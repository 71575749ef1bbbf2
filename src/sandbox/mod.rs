//! The guarded worker: tenant Rego parsed and evaluated in a child process
//! with a memory limit and a deadline.
//!
//! `policy::limits` refuses what can be seen in a tenant file's text; what
//! only shows at evaluation cannot be stopped inside the judge's process
//! (see `policy::isolation`). So the `ringmaster` binary installs a
//! [`WorkerIsolation`] at start: every policy engine with tenant files then
//! starts `ringmaster policy-worker` — the same binary — and talks to it
//! over its standard input and output, one JSON message per line
//! ([`protocol`]).
//!
//! - **Memory.** The worker limits its own address space (`RLIMIT_AS`,
//!   [`DEFAULT_MEMORY_LIMIT`]) and core dumps before it reads anything. An
//!   allocation over the limit fails, the worker aborts, and the engine
//!   reports [`PolicyError::MemoryLimitExceeded`].
//! - **Time.** Parsing has [`DEFAULT_PARSE_TIME_LIMIT`], each answer the
//!   evaluation's time limit plus [`DEFAULT_MARGIN`]; past it the worker is
//!   killed. The worker also keeps its own watchdog, so an orphan (its
//!   judge gone) ends by itself.
//! - **Everything else** a worker can do wrong — crash, overflow its stack,
//!   print something that is not an answer, answer too much
//!   ([`MAX_MESSAGE_BYTES`]) — is a [`PolicyError::WorkerFailed`] for that
//!   one evaluation, which fails closed, and the worker is replaced.
//!
//! Each engine keeps a small pool of workers (one per evaluating thread, at
//! most [`MAX_WORKERS`]), started on demand and killed when the engine is
//! dropped.

mod pool;
pub mod protocol;
pub mod worker;

pub use pool::WorkerIsolation;

use crate::policy::PolicyError;
use crate::policy::isolation;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Address space a worker may use: room for the interpreter and a large
/// tenant's values, far from what hurts the machine.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1024 * 1024 * 1024;

/// How long parsing and preparing the tenant files may take in a worker.
/// The limits scan bounds the worst parse to well under a second; this is
/// the backstop.
pub const DEFAULT_PARSE_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Added to an evaluation's time limit before the worker is killed: the
/// worker's own timer stops ordinary loops at the limit and answers; only a
/// single step that cannot be interrupted runs into the margin.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(2);

/// The largest message a worker may send (one answer's JSON line).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Workers per engine at most.
pub const MAX_WORKERS: usize = 4;

/// The hidden subcommand that runs a worker.
pub const WORKER_SUBCOMMAND: &str = "policy-worker";

/// Installs a [`WorkerIsolation`] running `program policy-worker` for every
/// later policy engine with tenant files. Returns `false` when an isolation
/// was installed already.
pub fn install(program: impl Into<PathBuf>) -> bool {
    isolation::install(Arc::new(WorkerIsolation::new(program)))
}

/// Installs the isolation with this very executable as the worker (what
/// `ringmaster`'s `main` does). An executable that cannot be found leaves
/// tenant rules in process, with a warning.
pub fn install_current_exe() -> bool {
    match std::env::current_exe() {
        Ok(program) => install(program),
        Err(error) => {
            tracing::warn!(
                %error,
                "cannot find this executable; tenant policies are evaluated in process, without a memory limit"
            );
            false
        }
    }
}

/// How a worker that stopped is reported.
fn stopped(
    status: Option<std::process::ExitStatus>,
    stderr: &str,
    memory_limit: u64,
) -> PolicyError {
    use std::os::unix::process::ExitStatusExt as _;
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return PolicyError::MemoryLimitExceeded {
            limit_bytes: memory_limit,
        };
    }
    let how = match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was stopped by signal {signal}"),
            (None, None) => "stopped".to_string(),
        },
        None => "stopped".to_string(),
    };
    let last_line = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| format!(": {}", line.trim()))
        .unwrap_or_default();
    PolicyError::WorkerFailed {
        message: format!("the worker evaluating tenant policy {how}{last_line}"),
    }
}
