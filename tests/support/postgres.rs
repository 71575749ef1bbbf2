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
pub fn server_user() -> Option<(u32, u32)> {
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

pub fn as_server_user(command: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
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
    init_data(&bin, &data, user);
    let port: u16 = 5432;
    let socket_dir = root.clone();
    let pid = spawn_postgres(&bin, &data, &socket_dir, port, user, &["listen_addresses="]);
    PgServer {
        root,
        socket_dir,
        port,
        bin,
        pid,
    }
}

/// The server gets SIGINT (a fast shutdown) when the test process dies, so
/// no server outlives its test, even after `kill -9` of the test.
pub fn dies_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: only an async-signal-safe system call between fork and exec.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::INT))
                .map_err(std::io::Error::from)
        });
    }
    command
}

/// `initdb` of a data directory, trusting local and loopback logins.
pub fn init_data(bin: &Path, data: &Path, user: Option<(u32, u32)>) {
    let output = as_server_user(&mut Command::new(bin.join("initdb")), user)
        .args(["-D"])
        .arg(data)
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
}

/// Starts `postgres` on `data` (socket in `socket_dir`, `port`, the test
/// settings plus `settings` as `-c` options) from a thread that lives as
/// long as the process; returns its pid once it accepts connections.
fn spawn_postgres(
    bin: &Path,
    data: &Path,
    socket_dir: &Path,
    port: u16,
    user: Option<(u32, u32)>,
    settings: &[&str],
) -> u32 {
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel();
    let bin = bin.to_path_buf();
    let data = data.to_path_buf();
    let socket_dir = socket_dir.to_path_buf();
    let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
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
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "logging_collector=off",
                ]);
            for setting in &settings {
                command.args(["-c", setting]);
            }
            command.stdout(Stdio::null()).stderr(Stdio::piped());
            dies_with_parent(&mut command);
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
    ready_receiver
        .recv()
        .expect("the server thread reports")
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Two servers on 127.0.0.1 over TCP, for the TLS tests: one with
/// `ssl=on` and a certificate for the DNS name `localhost` issued by a CA
/// made here with the `openssl` command line, one without TLS. Started on
/// first use, once per test binary, like [`server`].
pub struct TcpServers {
    pub root: PathBuf,
    /// The server with TLS on.
    pub tls_port: u16,
    /// The server without TLS.
    pub plain_port: u16,
    /// The CA that issued the TLS server's certificate (PEM).
    pub ca: PathBuf,
    /// Another CA, which issued nothing the servers hold (PEM).
    pub other_ca: PathBuf,
}

static TCP_SERVERS: OnceLock<TcpServers> = OnceLock::new();

const OPENSSL_HINT: &str = "the `openssl` command line is needed to make the test CA and \
     certificates; install it (Debian/Ubuntu: `apt-get install -y openssl`; scripts/test.sh \
     does this when it is missing)";

/// The TCP servers, started on first use.
pub fn tcp_servers() -> &'static TcpServers {
    TCP_SERVERS.get_or_init(start_tcp_servers)
}

impl TcpServers {
    /// A new, empty database on the server at `port` (created through its
    /// unix socket); its name.
    pub fn fresh_database(&self, port: u16) -> String {
        let number = DATABASES.fetch_add(1, Ordering::SeqCst);
        let name = format!("ringmaster_tls_{number}");
        let host = self.root.to_str().expect("UTF-8 path").replace('/', "%2F");
        let mut admin = postgres::Client::connect(
            &format!("postgres://postgres@{host}:{port}/postgres"),
            postgres::NoTls,
        )
        .expect("connect to the TCP test server through its socket");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        name
    }
}

fn openssl(arguments: &[&str], directory: &Path) {
    let output = Command::new("openssl")
        .args(arguments)
        .current_dir(directory)
        .output()
        .unwrap_or_else(|error| panic!("cannot run openssl ({error}); {OPENSSL_HINT}"));
    assert!(
        output.status.success(),
        "openssl {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`NAME.crt`, `NAME.key`) in `directory`.
fn make_ca(directory: &Path, name: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3",
            "-subj",
            &format!("/CN=ringmaster test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        directory,
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

fn start_tcp_servers() -> TcpServers {
    let bin = find_bin().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
    let user = server_user();
    let base = std::env::temp_dir();
    remove_stale_roots(&base);
    let root = base.join(format!("ringmaster-pg-{}-tcp", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the server directory");
    let certificates = root.join("tls");
    std::fs::create_dir_all(&certificates).expect("create the certificate directory");
    make_ca(&certificates, "ca");
    make_ca(&certificates, "other-ca");
    std::fs::write(
        certificates.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &certificates,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3",
            "-extfile",
            "server.ext",
        ],
        &certificates,
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let key = certificates.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("key mode 0600");
        if let Some((uid, gid)) = user {
            for path in [&root, &certificates, &key, &certificates.join("server.crt")] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
            }
        }
    }
    let tls_data = root.join("data-tls");
    init_data(&bin, &tls_data, user);
    let plain_data = root.join("data-plain");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&tls_data)
        .arg(&plain_data)
        .status()
        .expect("copy the data directory");
    assert!(copied.success(), "cp -a of the data directory failed");
    let tls_port = free_port();
    let cert = certificates.join("server.crt");
    let key = certificates.join("server.key");
    spawn_postgres(
        &bin,
        &tls_data,
        &root,
        tls_port,
        user,
        &[
            "listen_addresses=127.0.0.1",
            "ssl=on",
            &format!("ssl_cert_file={}", cert.display()),
            &format!("ssl_key_file={}", key.display()),
        ],
    );
    let plain_port = free_port();
    spawn_postgres(
        &bin,
        &plain_data,
        &root,
        plain_port,
        user,
        &["listen_addresses=127.0.0.1", "ssl=off"],
    );
    TcpServers {
        ca: certificates.join("ca.crt"),
        other_ca: certificates.join("other-ca.crt"),
        root,
        tls_port,
        plain_port,
    }
}
