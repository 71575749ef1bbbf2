//! A real PostgreSQL server for the tests: `initdb` into a temporary
//! directory and `postgres` listening on a unix socket there (no TCP, no
//! system service), one server per test binary, a fresh database per test.
//!
//! The binaries are found on `PATH` or under `/usr/lib/postgresql/*/bin`
//! (where Debian puts them). initdb refuses to run as root, so as root the
//! server runs as the `postgres` user (the Debian package creates it) in a
//! directory it owns. The server is a direct child started from a thread
//! that lives as long as the test process, with the parent-death signal set
//! to SIGINT (PostgreSQL's fast shutdown): it stops when the tests exit,
//! however they exit. Leftover directories of dead runs are removed at the
//! next start.
//!
//! Missing PostgreSQL is a loud failure, never a skip.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The running server of this test binary.
pub struct PgServer {
    /// The directory holding the data directory and the socket.
    pub root: PathBuf,
    /// The socket directory (`host` in URLs).
    pub socket_dir: PathBuf,
    pub port: u16,
    pub bin: PathBuf,
    /// The server's process id.
    pub pid: u32,
}

const INSTALL_HINT: &str = "PostgreSQL is needed by this test and was not found on PATH or under \
     /usr/lib/postgresql/*/bin; install it (Debian/Ubuntu: `apt-get install -y postgresql`; \
     scripts/test.sh does this when it is missing)";

static SERVER: OnceLock<PgServer> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(start)
}

/// A URL of a new, empty database on the server.
pub fn fresh_database() -> String {
    let server = server();
    let number = DATABASES.fetch_add(1, Ordering::SeqCst);
    let name = format!("ringmaster_test_{number}");
    let mut admin = postgres::Client::connect(&server.url("postgres"), postgres::NoTls)
        .expect("connect to the test server's postgres database");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    server.url(&name)
}

impl PgServer {
    /// The URL of `database` on this server, as the `postgres` role.
    pub fn url(&self, database: &str) -> String {
        let host = self
            .socket_dir
            .to_str()
            .expect("socket path is UTF-8")
            .replace('/', "%2F");
        format!("postgres://postgres@{host}:{}/{database}", self.port)
    }
}

/// The directory holding `initdb` and `postgres`.
pub fn find_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for directory in std::env::split_paths(&path) {
            if directory.join("initdb").is_file() && directory.join("postgres").is_file() {
                return Some(directory);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The (uid, gid) the server runs as: ours, or `postgres`'s when we are root.
fn server_user() -> Option<(u32, u32)> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .unwrap_or_else(|| {
            panic!(
                "the tests run as root and initdb refuses root, but there is no `postgres` \
                 user to run the server as; {INSTALL_HINT}"
            )
        });
    let fields: Vec<&str> = line.split(':').collect();
    Some((
        fields[2].parse().expect("postgres uid"),
        fields[3].parse().expect("postgres gid"),
    ))
}

fn as_server_user(command: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
        // HOME of root is not readable by postgres.
        command.env("HOME", "/tmp");
    }
    command
}

/// Removes the directories of earlier runs whose process is gone.
fn remove_stale_roots(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("ringmaster-pg-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> PgServer {
    let bin = find_bin().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
    let user = server_user();
    let base = std::env::temp_dir();
    remove_stale_roots(&base);
    let root = base.join(format!(
        "ringmaster-pg-{}-{}",
        std::process::id(),
        DATABASES.load(Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the server directory");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).expect("chown server directory");
    }
    let data = root.join("data");
    let output = as_server_user(&mut Command::new(bin.join("initdb")), user)
        .args(["-D"])
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--locale=C.UTF-8",
            "-E",
            "UTF8",
        ])
        .output()
        .expect("run initdb");
    assert!(
        output.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let port: u16 = 5432;
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel();
    let socket_dir = root.clone();
    {
        let bin = bin.clone();
        let data = data.clone();
        let socket_dir = socket_dir.clone();
        // The server's parent thread lives as long as the process: the
        // parent-death signal fires when the test process ends, not when
        // the test that started the server does.
        std::thread::Builder::new()
            .name("postgres-server".to_string())
            .spawn(move || {
                let mut command = Command::new(bin.join("postgres"));
                as_server_user(&mut command, user)
                    .arg("-D")
                    .arg(&data)
                    .arg("-k")
                    .arg(&socket_dir)
                    .args([
                        "-p",
                        &port.to_string(),
                        "-c",
                        "listen_addresses=",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=200",
                        "-c",
                        "logging_collector=off",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                // SAFETY: only async-signal-safe work between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        rustix::process::set_parent_process_death_signal(Some(
                            rustix::process::Signal::INT,
                        ))
                        .map_err(std::io::Error::from)
                    });
                }
                let mut child = match command.spawn() {
                    Ok(child) => child,
                    Err(error) => {
                        let _ = ready_sender.send(Err(format!("cannot start postgres: {error}")));
                        return;
                    }
                };
                let pid = child.id();
                let stderr = child.stderr.take().expect("piped stderr");
                let mut log = String::new();
                let mut ready = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !ready {
                        log.push_str(&line);
                        log.push('\n');
                        if line.contains("database system is ready to accept connections") {
                            ready = true;
                            let _ = ready_sender.send(Ok(pid));
                        }
                    }
                }
                if !ready {
                    let _ = ready_sender.send(Err(format!("postgres exited before ready:\n{log}")));
                }
                let _ = child.wait();
            })
            .expect("spawn the server thread");
    }
    let pid = ready_receiver
        .recv()
        .expect("the server thread reports")
        .unwrap_or_else(|error| panic!("{error}"));
    PgServer {
        root,
        socket_dir,
        port,
        bin,
        pid,
    }
}
