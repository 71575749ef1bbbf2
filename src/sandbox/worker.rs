//! The worker's side: `ringmaster policy-worker --memory-limit BYTES`.
//!
//! Limits itself first (address space, no core dumps), then compiles the
//! tenant files it is sent and answers requests until its input closes. A
//! watchdog thread ends the process when one message takes far longer than
//! its deadline, so a worker whose judge died mid-request does not run on.

use super::protocol::{FieldRead, FromWorker, InputValue, ToWorkerRead};
use crate::policy::{PolicyEngine, PolicyError};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the watchdog adds to a message's deadline before it gives up on the
/// judge (which should have killed this process by then).
const WATCHDOG_GRACE: Duration = Duration::from_secs(5);

/// Exit status when the watchdog ends the worker.
const WATCHDOG_EXIT: i32 = 70;

/// Runs a worker on this process's standard input and output. Returns the
/// process exit status: 0 when the input closed.
pub fn run(memory_limit: u64) -> i32 {
    // Started before the limit, so its stack is part of the baseline.
    let watchdog = Watchdog::start();
    if let Err(error) = limit_self(memory_limit) {
        eprintln!("policy worker: cannot set its resource limits: {error}");
        return 2;
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    let mut engine: Option<PolicyEngine> = None;
    // The shared values of batches, by id, as the judge defined them.
    let mut shared: HashMap<u64, regorus::Value> = HashMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(error) => {
                eprintln!("policy worker: cannot read its input: {error}");
                return 2;
            }
        }
        let message: ToWorkerRead = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(error) => {
                eprintln!("policy worker: unreadable message: {error}");
                return 2;
            }
        };
        let reply = match message {
            ToWorkerRead::Batch {
                define,
                forget,
                items,
            } => {
                for id in forget {
                    shared.remove(&id);
                }
                for (id, InputValue(value)) in define {
                    shared.insert(id, value);
                }
                for item in items {
                    watchdog.arm(item.deadline);
                    let reply = match &engine {
                        None => FromWorker::Failed(PolicyError::WorkerFailed {
                            message: "asked for an answer before compiling".into(),
                        }),
                        Some(engine) => match batch_input(&shared, item.fields) {
                            Err(error) => FromWorker::Failed(error),
                            Ok(input) => {
                                reply_of(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                                    || engine.answer_tenant_value(input, item.time_limit),
                                )))
                            }
                        },
                    };
                    // Flushed at once: the judge's deadline for the next
                    // item runs from this answer.
                    if let Err(error) = send(&mut output, &reply) {
                        eprintln!("policy worker: cannot answer: {error}");
                        return 2;
                    }
                }
                watchdog.disarm();
                continue;
            }
            ToWorkerRead::Compile {
                files,
                parse_time_limit,
            } => {
                watchdog.arm(parse_time_limit);
                let mut parsing = |path: &str| {
                    // The judge reads these as they come, to name a slow file.
                    let _ = send(&mut output, &FromWorker::Parsing(path.to_string()));
                };
                match PolicyEngine::in_process(&files, &mut parsing) {
                    Ok(compiled) => {
                        let packages = compiled.package_sets();
                        engine = Some(compiled);
                        FromWorker::Compiled(packages)
                    }
                    Err(errors) => FromWorker::Refused(errors),
                }
            }
            ToWorkerRead::Answer { request, deadline } => {
                watchdog.arm(deadline);
                match &engine {
                    None => FromWorker::Failed(PolicyError::WorkerFailed {
                        message: "asked for an answer before compiling".into(),
                    }),
                    Some(engine) => reply_of(std::panic::catch_unwind(
                        std::panic::AssertUnwindSafe(|| engine.answer(&request)),
                    )),
                }
            }
        };
        watchdog.disarm();
        if let Err(error) = send(&mut output, &reply) {
            eprintln!("policy worker: cannot answer: {error}");
            return 2;
        }
    }
}

/// The reply for an evaluation's result, a panic included.
fn reply_of(
    answered: std::thread::Result<Result<crate::policy::isolation::Answer, PolicyError>>,
) -> FromWorker {
    match answered {
        Ok(Ok(answer)) => FromWorker::Answered(answer),
        Ok(Err(error)) => FromWorker::Failed(error),
        Err(panic) => FromWorker::Failed(PolicyError::WorkerFailed {
            message: format!("evaluation panicked: {}", panic_text(panic.as_ref())),
        }),
    }
}

/// A batched item's input document: its fields, shared ones from `shared`.
fn batch_input(
    shared: &HashMap<u64, regorus::Value>,
    fields: Vec<(String, FieldRead)>,
) -> Result<regorus::Value, PolicyError> {
    let mut object = BTreeMap::new();
    for (name, field) in fields {
        let value = match field {
            FieldRead::Inline(InputValue(value)) => value,
            FieldRead::Shared(id) => {
                shared
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| PolicyError::WorkerFailed {
                        message: format!("the judge referred to shared value {id}, never defined"),
                    })?
            }
        };
        object.insert(regorus::Value::String(name.as_str().into()), value);
    }
    Ok(regorus::Value::from(object))
}

fn send(output: &mut impl Write, message: &FromWorker) -> std::io::Result<()> {
    serde_json::to_writer(&mut *output, message)?;
    output.write_all(b"\n")?;
    output.flush()
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Address space and core dumps: `memory_limit` bytes on top of what the
/// process maps before it reads anything (its code, its libraries, the
/// allocator's first reservation, which the judge keeps small with
/// `MIMALLOC_ARENA_RESERVE`).
fn limit_self(memory_limit: u64) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let memory_limit = mapped_bytes()?.saturating_add(memory_limit);
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    setrlimit(
        Resource::As,
        Rlimit {
            current: Some(memory_limit),
            maximum: Some(memory_limit),
        },
    )?;
    Ok(())
}

/// The process's virtual memory size now (`VmSize` of `/proc/self/status`).
fn mapped_bytes() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kilobytes| kilobytes * 1024)
        .ok_or_else(|| std::io::Error::other("no VmSize in /proc/self/status"))
}

/// Ends the process when an armed deadline (plus [`WATCHDOG_GRACE`]) passes.
struct Watchdog {
    /// Milliseconds since `epoch` at which to give up; 0 when disarmed.
    give_up_at: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watchdog {
    fn start() -> Watchdog {
        let give_up_at = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let shared = give_up_at.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let at = shared.load(Ordering::Relaxed);
                let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                if at != 0 && now > at {
                    eprintln!("policy worker: a message outlived its deadline; exiting");
                    std::process::exit(WATCHDOG_EXIT);
                }
            }
        });
        Watchdog { give_up_at, epoch }
    }

    fn arm(&self, deadline: Duration) {
        let at = self.epoch.elapsed() + deadline + WATCHDOG_GRACE;
        let at = u64::try_from(at.as_millis()).unwrap_or(u64::MAX).max(1);
        self.give_up_at.store(at, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.give_up_at.store(0, Ordering::Relaxed);
    }
}
