//! Replicas of `ringmaster serve` on one PostgreSQL store: real processes of
//! the binary under test, one governed repository (the evidence branch in
//! it), simulated planes whose fleets live outside every replica (each
//! `type: sim` plane in a shared state file, rebuilt by the replica that
//! takes the lead), and a clock shared by all replicas
//! (`RINGMASTER_TEST_CLOCK_OFFSET_MS`), set so the sample tenant is judged
//! at a fixed instant whatever day the tests run.
//!
//! Each replica's stderr is read by a thread into a list of lines that a
//! test waits on ([`Replica::wait_for`]): a condition polled until a
//! deadline, never a sleep.

#![allow(dead_code)]

use crate::support::TestRepo;
use chrono::{DateTime, TimeZone as _, Utc};
use ringmaster::planes::sim::SimConnector;
use ringmaster::store::{ActionState, EventFilter, Store, StoreLocation};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const PLANES: [&str; 5] = ["intune", "jamf", "sccm", "landscape", "ansible"];

/// How long any one condition may take before a test fails: generous, since
/// five engineers' builds may share two cores; conditions usually hold in
/// a second or two.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The instant the replicas' clock starts at (the sample's approvals and
/// live exception hold then; no change freeze).
pub fn start_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date")
}

/// One tenant, its keys, its planes and its store, shared by the replicas.
pub struct Site {
    pub repo: TestRepo,
    pub keys: tempfile::TempDir,
    pub planes: tempfile::TempDir,
    pub url: String,
    pub config: PathBuf,
    pub lease_seconds: u64,
    /// `--poll-seconds` (1 unless a test wants no poll after the first).
    pub poll_seconds: u64,
    /// Milliseconds from the wall clock to the replicas' clock.
    pub clock_offset_ms: i64,
}

impl Site {
    /// The sample tenant on the store at `url`, with a lease of
    /// `lease_seconds`.
    pub fn new(url: String, lease_seconds: u64) -> Site {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
        let planes = tempfile::tempdir().expect("planes");
        let config = keys.path().join("daemon.yaml");
        std::fs::write(&config, planes_yaml(planes.path())).expect("config");
        let clock_offset_ms = (start_instant() - Utc::now()).num_milliseconds();
        Site {
            repo,
            keys,
            planes,
            url,
            config,
            lease_seconds,
            poll_seconds: 1,
            clock_offset_ms,
        }
    }

    pub fn key(&self) -> PathBuf {
        self.keys.path().join("ringmaster.key")
    }

    pub fn public_key(&self) -> PathBuf {
        self.keys.path().join("ringmaster.pub")
    }

    /// `serve` (long-running) as a replica, with `env` added (pause points).
    pub fn spawn(&self, name: &str, env: &[(&str, &str)]) -> Replica {
        self.spawn_with(name, env, &[])
    }

    /// `serve` as a replica with `args` added (a forge configuration).
    pub fn spawn_with(&self, name: &str, env: &[(&str, &str)], args: &[String]) -> Replica {
        let state = tempfile::tempdir().expect("state");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmaster"));
        command
            .arg("serve")
            .arg("--repo")
            .arg(&self.repo.path)
            .arg("--state")
            .arg(state.path())
            .arg("--key")
            .arg(self.key())
            .arg("--config")
            .arg(&self.config)
            .arg("--store")
            .arg(&self.url)
            .arg("--leader-lease-seconds")
            .arg(self.lease_seconds.to_string())
            .arg("--poll-seconds")
            .arg(self.poll_seconds.to_string())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env(
                "RINGMASTER_TEST_CLOCK_OFFSET_MS",
                self.clock_offset_ms.to_string(),
            )
            .env_remove("RINGMASTER_TEST_PAUSE_AT")
            .env_remove("RINGMASTER_TEST_PAUSE_STOPS")
            .current_dir(&self.repo.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn serve");
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let pipe = child.stderr.take().expect("stderr");
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let (list, changed) = &*lines;
                    list.lock().expect("lines").push(line);
                    changed.notify_all();
                }
                let (list, changed) = &*lines;
                list.lock().expect("lines").push(EXITED.to_string());
                changed.notify_all();
            });
        }
        let mut replica = Replica {
            name: name.to_owned(),
            child,
            state,
            lines,
            address: None,
        };
        let line = replica.wait_for("listening on http://");
        let address = line
            .split("http://")
            .nth(1)
            .expect("address")
            .trim()
            .to_owned();
        replica.address = Some(address);
        replica
    }

    pub fn store(&self) -> Store {
        Store::open_location(&StoreLocation::parse(&self.url).expect("store URL")).expect("store")
    }

    /// Every stored webhook delivery, read with SQL of the test's own:
    /// (delivery id, processed, processed at), by delivery id.
    pub fn webhook_deliveries(&self) -> Vec<(String, i64, Option<String>)> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        client
            .query(
                "SELECT delivery_id, processed, processed_at FROM webhook_deliveries ORDER BY delivery_id",
                &[],
            )
            .expect("webhook deliveries")
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    pub fn sim(&self, plane: &str) -> Option<SimConnector> {
        let file = self.planes.path().join(format!("{plane}.json"));
        file.exists()
            .then(|| SimConnector::load(&file).expect("fleet state"))
    }

    /// Publish calls each plane received, in [`PLANES`] order.
    pub fn publish_calls(&self) -> Vec<u64> {
        PLANES
            .iter()
            .map(|plane| self.sim(plane).map_or(0, |sim| sim.publish_calls()))
            .collect()
    }

    /// Assignments the planes hold in all.
    pub fn assignments(&self) -> usize {
        let store = self.store();
        let intents = store.list_intents().expect("intents");
        PLANES
            .iter()
            .filter_map(|plane| self.sim(plane))
            .map(|sim| {
                intents
                    .iter()
                    .map(|record| sim.assignment_count(&record.correlation_id))
                    .sum::<usize>()
            })
            .sum()
    }

    /// Whether nothing is in flight in the journal and the planes hold
    /// `expected` assignments.
    pub fn settled_at(&self, expected: usize) -> bool {
        let store = self.store();
        let actions = store.actions().expect("journal");
        !actions.is_empty()
            && actions
                .iter()
                .all(|action| action.state != ActionState::Sent)
            && self.assignments() == expected
    }

    /// Polls `condition` until it holds; fails the test after [`PATIENCE`],
    /// showing what the `replicas` said.
    pub fn wait_until(&self, what: &str, replicas: &[&Replica], condition: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !condition() {
            if Instant::now() >= deadline {
                let said: Vec<String> = replicas
                    .iter()
                    .map(|replica| format!("--- {}:\n{}", replica.name, replica.stderr()))
                    .collect();
                panic!("timed out waiting for {what}\n{}", said.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The invariants every failover must leave: each plane holds one
    /// assignment per group its confirmed publishes named (none lost, none
    /// doubled), nothing in flight, a gap-free event chain that verifies,
    /// and an evidence branch that `ringmaster verify --state` accepts.
    /// Answers the assignments held.
    pub fn check(&self, state: &Path) -> usize {
        let store = self.store();
        let journal = store.actions().expect("journal");
        assert!(
            journal
                .iter()
                .all(|action| action.state != ActionState::Sent),
            "nothing left in flight"
        );
        let mut total = 0;
        for plane in PLANES {
            let Some(sim) = self.sim(plane) else {
                continue;
            };
            for record in store.list_intents().expect("intents") {
                let mut groups: Vec<String> = journal
                    .iter()
                    .filter(|action| {
                        action.intent_id == record.intent_id
                            && action.plane == plane
                            && action.action == "publish"
                            && action.state == ActionState::Confirmed
                    })
                    .flat_map(|action| {
                        action.request["groups"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|group| group.as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                groups.sort();
                groups.dedup();
                let held = sim.assignment_count(&record.correlation_id);
                assert_eq!(
                    held,
                    groups.len(),
                    "{} on {plane}: one assignment per group published ({groups:?})",
                    record.intent_id
                );
                total += held;
            }
        }
        let events = store.events(&EventFilter::default()).expect("events");
        let sequences: Vec<u64> = events.iter().map(|event| event.seq).collect();
        assert_eq!(
            sequences,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "no gaps in the event log"
        );
        assert!(
            store
                .verify_event_chain()
                .expect("chain")
                .first_break
                .is_none(),
            "the event chain verifies"
        );
        let verify = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .arg("verify")
            .arg(&self.repo.path)
            .arg("--public-key")
            .arg(self.public_key())
            .arg("--state")
            .arg(state)
            .arg("--store")
            .arg(&self.url)
            .current_dir(&self.repo.path)
            .output()
            .expect("verify runs");
        assert!(
            verify.status.success(),
            "verify --state: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        total
    }

    /// The assignments an uninterrupted single daemon leaves after its
    /// first step on the same tenant (SQLite, its own planes): what every
    /// failover must converge to.
    pub fn expected_assignments(&self) -> usize {
        let twin = Site::new(String::new(), self.lease_seconds);
        let state = tempfile::tempdir().expect("state");
        let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .arg("serve")
            .arg("--repo")
            .arg(&twin.repo.path)
            .arg("--state")
            .arg(state.path())
            .arg("--key")
            .arg(twin.key())
            .arg("--config")
            .arg(&twin.config)
            .arg("--once")
            .arg("--now")
            .arg(start_instant().to_rfc3339())
            .current_dir(&twin.repo.path)
            .output()
            .expect("serve --once");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let store = Store::open_existing(&state.path().join("ringmaster.db")).expect("store");
        let intents = store.list_intents().expect("intents");
        PLANES
            .iter()
            .filter_map(|plane| twin.sim(plane))
            .map(|sim| {
                intents
                    .iter()
                    .map(|record| sim.assignment_count(&record.correlation_id))
                    .sum::<usize>()
            })
            .sum()
    }
}

/// The `planes:` section: every plane of the sample on a fast, reliable
/// simulated fleet kept in `dir` (outside every replica).
pub fn planes_yaml(dir: &Path) -> String {
    let mut yaml = String::from("planes:\n");
    for plane in PLANES {
        yaml.push_str(&format!(
            "  {plane}: {{type: sim, seed: 11, default_success_rate: 1.0, install_delay_seconds: [300, 3600], state_file: {}}}\n",
            dir.join(format!("{plane}.json")).display()
        ));
    }
    yaml
}

const EXITED: &str = "<replica exited>";

/// One `serve` process.
pub struct Replica {
    pub name: String,
    pub child: Child,
    pub state: tempfile::TempDir,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    /// The HTTP server's address (`/healthz`, webhooks).
    pub address: Option<String>,
}

impl Replica {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line of stderr contains `text`; answers it.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_for_count(text, 1)
    }

    /// Waits until `count` lines of stderr contain `text`; answers the last.
    pub fn wait_for_count(&self, text: &str, count: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        let (list, changed) = &*self.lines;
        let mut lines = list.lock().expect("lines");
        loop {
            let matching: Vec<&String> = lines.iter().filter(|line| line.contains(text)).collect();
            if matching.len() >= count {
                return matching[count - 1].clone();
            }
            let exited = lines.iter().any(|line| line == EXITED);
            let now = Instant::now();
            if exited || now >= deadline {
                let said = lines.join("\n");
                drop(lines);
                panic!(
                    "replica {}: no line with {text:?} ({}):\n{said}",
                    self.name,
                    if exited { "it exited" } else { "timed out" },
                );
            }
            lines = changed
                .wait_timeout(lines, deadline - now)
                .expect("lines")
                .0;
        }
    }

    /// Whether any line of stderr so far contains `text`.
    pub fn said(&self, text: &str) -> bool {
        let (list, _) = &*self.lines;
        list.lock()
            .expect("lines")
            .iter()
            .any(|line| line.contains(text))
    }

    pub fn stderr(&self) -> String {
        let (list, _) = &*self.lines;
        list.lock().expect("lines").join("\n")
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("signal the replica");
    }

    /// The replica's `/healthz` as JSON.
    pub fn healthz(&self) -> serde_json::Value {
        let address = self.address.as_deref().expect("listening");
        let body = http_get(address, "/healthz");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGKILL promptly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET over a TCP socket; answers the body.
pub fn http_get(address: &str, path: &str) -> String {
    http(address, "GET", path, &[], b"").1
}

/// One HTTP/1.1 request; answers the status code and the body.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

impl Replica {
    /// SIGTERM, and waits for the replica to finish its wake-up and exit.
    pub fn stop(&mut self) {
        self.signal(rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

/// A PostgreSQL server of the test's own, which the test stops and starts
/// again (the shared server of `support::postgres` serves other tests).
/// The server is a direct child with the parent-death signal set, so it
/// never outlives the test process.
pub struct OwnPostgres {
    _root: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    server: Mutex<Option<Child>>,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        let bin = crate::support::postgres::find_bin().expect(
            "PostgreSQL is needed by this test (apt-get install -y postgresql; scripts/test.sh does)",
        );
        let user = crate::support::postgres::server_user();
        let root = tempfile::tempdir().expect("server directory");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = root.path().join("data");
        crate::support::postgres::init_data(&bin, &data, user);
        let server = OwnPostgres {
            socket_dir: root.path().to_path_buf(),
            _root: root,
            data,
            bin,
            user,
            server: Mutex::new(None),
        };
        server.resume();
        let mut admin =
            postgres::Client::connect(&server.url("postgres"), postgres::NoTls).expect("connect");
        admin
            .batch_execute("CREATE DATABASE ringmaster")
            .expect("create database");
        server
    }

    pub fn url(&self, database: &str) -> String {
        let host = self.socket_dir.to_str().expect("UTF-8").replace('/', "%2F");
        format!("postgres://postgres@{host}:5432/{database}")
    }

    /// Fast shutdown (SIGINT): sessions are cut, the server exits.
    pub fn stop(&self) {
        let mut server = self.server.lock().expect("server");
        if let Some(mut child) = server.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            let _ = child.wait();
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let mut command = Command::new(self.bin.join("postgres"));
        crate::support::postgres::as_server_user(&mut command, self.user);
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-p", "5432", "-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", "max_connections=100", "-c", "logging_collector=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::support::postgres::dies_with_parent(&mut command);
        let mut child = command.spawn().expect("start postgres");
        let pipe = child.stderr.take().expect("stderr");
        let (ready, readiness) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = String::new();
            let mut told = false;
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if !told {
                    log.push_str(&line);
                    log.push('\n');
                    if line.contains("ready to accept connections") {
                        told = true;
                        let _ = ready.send(Ok(()));
                    }
                }
            }
            if !told {
                let _ = ready.send(Err(log));
            }
        });
        match readiness.recv_timeout(PATIENCE) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("postgres exited before ready:\n{log}"),
            Err(error) => panic!("postgres did not start: {error}"),
        }
        *self.server.lock().expect("server") = Some(child);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
