//! The judge's side: starting workers, talking to them under a deadline,
//! and a small pool of them per engine.

use super::protocol::{BatchItemRef, BatchRef, FieldRef, FromWorker, ToWorker};
use super::{
    DEFAULT_MARGIN, DEFAULT_MEMORY_LIMIT, DEFAULT_PARSE_TIME_LIMIT, MAX_MESSAGE_BYTES, MAX_WORKERS,
    WORKER_SUBCOMMAND, stopped,
};
use crate::policy::PolicyError;
use crate::policy::isolation::{
    Answer, IsolatedTenant, PackageSets, Request, TenantInput, TenantIsolation,
};
use serde_json::Value as Json;
use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Shared values a worker keeps at most ([`Known`]): by count, and by the
/// bytes of their JSON.
const KNOWN_VALUES: usize = 256;
const KNOWN_BYTES: usize = 8 * 1024 * 1024;

/// A shared value larger than this is sent inline with each input that
/// has it, never kept by the worker.
const LARGEST_SHARED: usize = 1024 * 1024;

/// Bytes of a worker's standard error kept (the first ones: the allocator's
/// or the panic's own line comes first) to explain how it stopped.
const STDERR_KEPT: usize = 4096;

/// Starts `program policy-worker` processes to compile and evaluate tenant
/// files (see the module documentation of `crate::sandbox`).
#[derive(Debug, Clone)]
pub struct WorkerIsolation {
    program: PathBuf,
    memory_limit: u64,
    parse_time_limit: Duration,
    margin: Duration,
}

impl WorkerIsolation {
    /// Workers run `program policy-worker`, with the default limits.
    pub fn new(program: impl Into<PathBuf>) -> WorkerIsolation {
        WorkerIsolation {
            program: program.into(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            parse_time_limit: DEFAULT_PARSE_TIME_LIMIT,
            margin: DEFAULT_MARGIN,
        }
    }

    /// Another address-space limit per worker, in bytes.
    pub fn with_memory_limit(mut self, bytes: u64) -> WorkerIsolation {
        self.memory_limit = bytes;
        self
    }

    /// Another time limit for parsing the tenant files.
    pub fn with_parse_time_limit(mut self, limit: Duration) -> WorkerIsolation {
        self.parse_time_limit = limit;
        self
    }

    /// Another margin added to an evaluation's time limit before a worker is killed.
    pub fn with_margin(mut self, margin: Duration) -> WorkerIsolation {
        self.margin = margin;
        self
    }

    /// Starts a worker and compiles `files` in it.
    fn start(
        &self,
        files: &[(String, String)],
    ) -> Result<(Worker, Vec<PackageSets>), Vec<PolicyError>> {
        let mut worker = Worker::spawn(self).map_err(|error| vec![error])?;
        let message = ToWorker::Compile {
            files: files.to_vec(),
            parse_time_limit: self.parse_time_limit,
        };
        let first_file = files
            .first()
            .map(|(path, _)| path.clone())
            .unwrap_or_default();
        let mut parsing = first_file;
        let reply = worker.exchange(&message, self.parse_time_limit, |path| {
            parsing = path.to_string();
        });
        match reply {
            Ok(FromWorker::Compiled(packages)) => Ok((worker, packages)),
            Ok(FromWorker::Refused(errors)) => Err(errors),
            Ok(other) => Err(vec![unexpected(&other)]),
            Err(Exchange::TimedOut) => Err(vec![PolicyError::ParseTimeLimitExceeded {
                file: parsing,
                limit: self.parse_time_limit,
            }]),
            Err(Exchange::Failed(error)) => Err(vec![error]),
        }
    }
}

impl TenantIsolation for WorkerIsolation {
    fn compile(
        &self,
        tenant_policies: &[(String, String)],
    ) -> Result<Arc<dyn IsolatedTenant>, Vec<PolicyError>> {
        let (worker, packages) = self.start(tenant_policies)?;
        let capacity = std::thread::available_parallelism()
            .map(|count| count.get())
            .unwrap_or(1)
            .clamp(1, MAX_WORKERS);
        Ok(Arc::new(Pool {
            isolation: self.clone(),
            files: tenant_policies.to_vec(),
            packages,
            capacity,
            state: Mutex::new(PoolState {
                idle: vec![worker],
                live: 1,
                spent: None,
            }),
            returned: Condvar::new(),
        }))
    }
}

/// The workers of one compiled bundle.
struct Pool {
    isolation: WorkerIsolation,
    /// Sent to every new worker.
    files: Vec<(String, String)>,
    packages: Vec<PackageSets>,
    capacity: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Worker>,
    /// Workers alive: idle or lent out.
    live: usize,
    /// Set when a worker had to be killed (or died): the bundle has shown it
    /// can exhaust a worker, so every later request fails at once with this
    /// error instead of costing another deadline each (a revision with a
    /// thousand intents would otherwise hold the judge for an hour).
    spent: Option<PolicyError>,
}

impl Pool {
    /// An idle worker, a new one when there is room, or the next one returned.
    fn take(&self) -> Result<Worker, PolicyError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(error) = &state.spent {
                return Err(PolicyError::WorkerFailed {
                    message: format!(
                        "not evaluated: the tenant policy already exhausted a worker on this revision ({error})"
                    ),
                });
            }
            if let Some(worker) = state.idle.pop() {
                return Ok(worker);
            }
            if state.live < self.capacity {
                state.live += 1;
                drop(state);
                return match self.isolation.start(&self.files) {
                    Ok((worker, _)) => Ok(worker),
                    Err(errors) => {
                        self.forget();
                        Err(errors.into_iter().next().unwrap_or_else(|| {
                            PolicyError::WorkerFailed {
                                message: "a new worker could not compile the bundle".into(),
                            }
                        }))
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn give_back(&self, worker: Worker) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.idle.push(worker);
        self.returned.notify_one();
    }

    /// A lent worker was killed: make room for a new one.
    fn forget(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.live = state.live.saturating_sub(1);
        self.returned.notify_one();
    }

    /// A lent worker was killed for `error`: no more requests for this bundle.
    fn spend(&self, error: &PolicyError) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.live = state.live.saturating_sub(1);
        state.spent.get_or_insert_with(|| error.clone());
        state.idle.clear();
        self.returned.notify_all();
    }
}

impl IsolatedTenant for Pool {
    fn packages(&self) -> &[PackageSets] {
        &self.packages
    }

    /// The inputs in batches, each on one worker: an answer line per input,
    /// each under its own deadline; what fails one input fails only that
    /// one, and a worker that had to be killed is handled exactly as after
    /// a single request (later inputs get the "exhausted a worker" error).
    fn answer_batch(&self, inputs: &[TenantInput<'_>]) -> Vec<Result<Answer, PolicyError>> {
        let mut results = Vec::with_capacity(inputs.len());
        while results.len() < inputs.len() {
            let mut worker = match self.take() {
                Ok(worker) => worker,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            let rest = &inputs[results.len()..];
            match self.run_batch(&mut worker, rest, &mut results) {
                AfterBatch::Keep => self.give_back(worker),
                AfterBatch::Replace => {
                    drop(worker);
                    self.forget();
                }
                AfterBatch::Spend(error) => {
                    drop(worker);
                    self.spend(&error);
                }
            }
        }
        results
    }

    fn answer(&self, request: &Request) -> Result<Answer, PolicyError> {
        let time_limit = match request {
            Request::TenantOutputs { time_limit, .. } | Request::Interpreted { time_limit, .. } => {
                *time_limit
            }
        };
        let deadline = time_limit + self.isolation.margin;
        let mut worker = self.take()?;
        let message = ToWorker::Answer {
            request: request.clone(),
            deadline,
        };
        match worker.exchange(&message, deadline, |_| {}) {
            Ok(FromWorker::Answered(answer)) => {
                self.give_back(worker);
                Ok(answer)
            }
            Ok(FromWorker::Failed(error)) => {
                if matches!(error, PolicyError::TimeLimitExceeded { .. }) {
                    // The bundle needs more than the limit: the revision fails
                    // anyway, so do not spend the limit again on every intent.
                    drop(worker);
                    self.spend(&error);
                } else {
                    self.give_back(worker);
                }
                Err(error)
            }
            Ok(other) => {
                drop(worker);
                self.forget();
                Err(unexpected(&other))
            }
            Err(failure) => {
                drop(worker);
                let error = match failure {
                    Exchange::TimedOut => PolicyError::TimeLimitExceeded { limit: time_limit },
                    Exchange::Failed(error) => error,
                };
                self.spend(&error);
                Err(error)
            }
        }
    }
}

impl Pool {
    /// One batch (or what is left of it) on `worker`: each answer pushed to
    /// `results` as it comes. Says what is to become of the worker.
    fn run_batch(
        &self,
        worker: &mut Worker,
        items: &[TenantInput<'_>],
        results: &mut Vec<Result<Answer, PolicyError>>,
    ) -> AfterBatch {
        let margin = self.isolation.margin;
        let line = match worker.batch_message(items, margin) {
            Ok(line) => line,
            Err(error) => {
                results.push(Err(error));
                // What it was to keep was not sent: start afresh.
                return AfterBatch::Replace;
            }
        };
        if let Err(failure) = worker.send(&line) {
            let error = failure.into_error(items[0].time_limit);
            results.push(Err(error.clone()));
            return AfterBatch::Spend(error);
        }
        for item in items {
            // Each item's deadline runs from the previous answer, as if it
            // had been sent alone then.
            match worker.receive(item.time_limit + margin, |_| {}) {
                Ok(FromWorker::Answered(answer)) => results.push(Ok(answer)),
                Ok(FromWorker::Failed(error)) => {
                    let timed_out = matches!(error, PolicyError::TimeLimitExceeded { .. });
                    results.push(Err(error.clone()));
                    if timed_out {
                        // As for a single request: the revision fails
                        // anyway, do not spend the limit on every intent.
                        return AfterBatch::Spend(error);
                    }
                }
                Ok(other) => {
                    results.push(Err(unexpected(&other)));
                    return AfterBatch::Replace;
                }
                Err(failure) => {
                    let error = failure.into_error(item.time_limit);
                    results.push(Err(error.clone()));
                    return AfterBatch::Spend(error);
                }
            }
        }
        AfterBatch::Keep
    }
}

/// What becomes of a worker after a batch.
enum AfterBatch {
    /// Back to the pool.
    Keep,
    /// Killed; a new one may be started.
    Replace,
    /// Killed for this error; no more requests for this bundle.
    Spend(PolicyError),
}

fn encode(message: &ToWorker) -> Result<Vec<u8>, PolicyError> {
    let mut line = serde_json::to_vec(message).map_err(|error| PolicyError::WorkerFailed {
        message: format!("cannot encode a message for the worker: {error}"),
    })?;
    line.push(b'\n');
    Ok(line)
}

fn unexpected(message: &FromWorker) -> PolicyError {
    PolicyError::WorkerFailed {
        message: format!("unexpected message from the worker: {message:?}"),
    }
}

/// How an exchange with a worker went wrong.
enum Exchange {
    /// No answer before the deadline; the worker was killed.
    TimedOut,
    /// The worker stopped or said something unreadable.
    Failed(PolicyError),
}

impl Exchange {
    /// The error of an evaluation with this time limit.
    fn into_error(self, time_limit: Duration) -> PolicyError {
        match self {
            Exchange::TimedOut => PolicyError::TimeLimitExceeded { limit: time_limit },
            Exchange::Failed(error) => error,
        }
    }
}

/// The shared values a worker was given and still keeps, oldest first,
/// within [`KNOWN_VALUES`] and [`KNOWN_BYTES`].
#[derive(Default)]
struct Known {
    order: VecDeque<(u64, usize)>,
    ids: HashSet<u64>,
    bytes: usize,
}

/// One running worker process. Dropping it kills the process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Result<FromWorker, String>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Reads `stderr` until the process closes it.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    memory_limit: u64,
    /// What this worker keeps of the shared values of batches.
    known: Known,
}

impl Worker {
    fn spawn(isolation: &WorkerIsolation) -> Result<Worker, PolicyError> {
        let mut child = Command::new(&isolation.program)
            .arg(WORKER_SUBCOMMAND)
            .arg("--memory-limit")
            .arg(isolation.memory_limit.to_string())
            // mimalloc reserves 1 GiB of address space up front by default;
            // a small first reservation keeps the limit close to real use.
            .env("MIMALLOC_ARENA_RESERVE", "64MiB")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| PolicyError::WorkerFailed {
                message: format!(
                    "cannot start {} {WORKER_SUBCOMMAND}: {error}",
                    isolation.program.display()
                ),
            })?;
        let missing = |what: &str| PolicyError::WorkerFailed {
            message: format!("the worker has no {what}"),
        };
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| missing("standard input"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| missing("standard output"))?;
        let stderr_pipe = child
            .stderr
            .take()
            .ok_or_else(|| missing("standard error"))?;

        let (sender, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                let read = (&mut reader)
                    .take(MAX_MESSAGE_BYTES as u64 + 1)
                    .read_until(b'\n', &mut line);
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line.last() != Some(&b'\n') && line.len() > MAX_MESSAGE_BYTES => {
                        let _ = sender.send(Err(format!(
                            "the worker sent a message over {MAX_MESSAGE_BYTES} bytes"
                        )));
                        return;
                    }
                    Ok(_) => {
                        let parsed = serde_json::from_slice(&line).map_err(|error| {
                            format!("the worker sent something that is not a message: {error}")
                        });
                        if sender.send(parsed).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut pipe = stderr_pipe;
            let mut buffer = [0u8; 1024];
            while let Ok(count) = pipe.read(&mut buffer) {
                if count == 0 {
                    return;
                }
                let mut kept = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..count.min(room)]);
            }
        });
        Ok(Worker {
            child,
            stdin,
            messages,
            stderr,
            stderr_reader: Some(stderr_reader),
            memory_limit: isolation.memory_limit,
            known: Known::default(),
        })
    }

    /// Sends `message` and waits up to `deadline` for the reply, passing each
    /// `Parsing` notice to `parsing` on the way.
    fn exchange(
        &mut self,
        message: &ToWorker,
        deadline: Duration,
        parsing: impl FnMut(&str),
    ) -> Result<FromWorker, Exchange> {
        let line = encode(message).map_err(Exchange::Failed)?;
        self.send(&line)?;
        self.receive(deadline, parsing)
    }

    /// Writes one message line.
    fn send(&mut self, line: &[u8]) -> Result<(), Exchange> {
        if self
            .stdin
            .write_all(line)
            .and_then(|()| self.stdin.flush())
            .is_err()
        {
            return Err(Exchange::Failed(self.stopped()));
        }
        Ok(())
    }

    /// The message line of a batch of `items`: the shared values this
    /// worker does not keep yet are defined (within what it may keep), the
    /// oldest it keeps forgotten to make room, and every other field inline.
    fn batch_message(
        &mut self,
        items: &[TenantInput<'_>],
        margin: Duration,
    ) -> Result<Vec<u8>, PolicyError> {
        let mut define: Vec<(u64, &Json)> = Vec::new();
        let mut forget = Vec::new();
        // Ids in this batch that go inline (too large to keep).
        let mut inline: HashSet<u64> = HashSet::new();
        // Ids this batch uses: never forgotten to make room for another.
        let mut used: HashSet<u64> = HashSet::new();
        let mut encoded_items = Vec::with_capacity(items.len());
        for item in items {
            let mut encoded = Vec::with_capacity(item.fields.len());
            for &(name, value, id) in &item.fields {
                let field = match id {
                    Some(id) if self.known.ids.contains(&id) => {
                        used.insert(id);
                        FieldRef::Shared(id)
                    }
                    Some(id) if !inline.contains(&id) => {
                        let bytes = serde_json::to_vec(value)
                            .map(|b| b.len())
                            .unwrap_or(usize::MAX);
                        if bytes > LARGEST_SHARED {
                            inline.insert(id);
                            FieldRef::Inline(value)
                        } else {
                            while self.known.order.len() >= KNOWN_VALUES
                                || self.known.bytes + bytes > KNOWN_BYTES
                            {
                                let Some(position) = self
                                    .known
                                    .order
                                    .iter()
                                    .position(|(old, _)| !used.contains(old))
                                else {
                                    break;
                                };
                                if let Some((old, size)) = self.known.order.remove(position) {
                                    self.known.ids.remove(&old);
                                    self.known.bytes -= size;
                                    forget.push(old);
                                }
                            }
                            self.known.order.push_back((id, bytes));
                            self.known.ids.insert(id);
                            self.known.bytes += bytes;
                            used.insert(id);
                            define.push((id, value));
                            FieldRef::Shared(id)
                        }
                    }
                    _ => FieldRef::Inline(value),
                };
                encoded.push((name, field));
            }
            encoded_items.push(BatchItemRef {
                fields: encoded,
                time_limit: item.time_limit,
                deadline: item.time_limit + margin,
            });
        }
        let message = BatchRef::Batch {
            define,
            forget,
            items: encoded_items,
        };
        let mut line = serde_json::to_vec(&message).map_err(|error| PolicyError::WorkerFailed {
            message: format!("cannot encode a message for the worker: {error}"),
        })?;
        line.push(b'\n');
        Ok(line)
    }

    /// Waits up to `deadline` for the next message other than `Parsing`
    /// notices, which go to `parsing`.
    fn receive(
        &mut self,
        deadline: Duration,
        mut parsing: impl FnMut(&str),
    ) -> Result<FromWorker, Exchange> {
        let started = Instant::now();
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            match self.messages.recv_timeout(left) {
                Ok(Ok(FromWorker::Parsing(path))) => parsing(&path),
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(problem)) => {
                    self.kill();
                    return Err(Exchange::Failed(PolicyError::WorkerFailed {
                        message: problem,
                    }));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(Exchange::TimedOut);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Exchange::Failed(self.stopped()));
                }
            }
        }
    }

    /// Why the worker stopped, once it has.
    fn stopped(&mut self) -> PolicyError {
        let status = self.child.wait().ok();
        // The process is gone, so its standard error is closed and the
        // reader ends after taking in the last lines.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let text = String::from_utf8_lossy(
            &self
                .stderr
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
        .into_owned();
        stopped(status, &text, self.memory_limit)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}
