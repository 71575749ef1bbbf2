#![allow(dead_code)] // each test binary uses a part of it
//! Shared by the observability tests: one run of the demo story per test
//! binary, kept on disk, and a `ringmaster serve` on a private copy of it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The demo's kept directory (repository, keys, state), made once.
pub fn demo_dir() -> &'static Path {
    static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let keep = dir.path().join("demo");
        let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args(["demo", "--json", "--keep"])
            .arg(&keep)
            .output()
            .expect("ringmaster demo runs");
        assert!(
            output.status.success(),
            "the demo story failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .path()
}

/// A daemon serving a copy of the demo's state; killed on drop.
pub struct Served {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("demo/state")
    }
}

/// Copies the demo and runs `ringmaster serve --listen 127.0.0.1:0` on it.
pub fn serve_demo(extra_args: &[&str]) -> Served {
    serve_demo_with(extra_args, |_| {})
}

/// A commit on the demo copy's governed repository (`demo` is the copy's
/// directory): the daemon judges it at start, so the policy is evaluated
/// in the serving process.
pub fn commit_to_demo(demo: &Path) {
    let repo = demo.join("contoso");
    let readme = repo.join("README.md");
    let mut text = std::fs::read_to_string(&readme).expect("README");
    text.push_str("\nA later commit of the observability tests.\n");
    std::fs::write(&readme, text).expect("write README");
    let committed = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args([
            "-c",
            "user.name=Observability Test",
            "-c",
            "user.email=test@example.invalid",
            "commit",
            "-q",
            "-am",
            "docs: a later commit",
        ])
        .status()
        .expect("git runs");
    assert!(committed.success(), "committing to the demo copy failed");
}

/// As [`serve_demo`], with `prepare` run on the copy first.
pub fn serve_demo_with(extra_args: &[&str], prepare: impl FnOnce(&Path)) -> Served {
    let source = demo_dir().join("demo");
    let dir = tempfile::tempdir().expect("temp dir");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(dir.path())
        .status()
        .expect("cp runs");
    assert!(copied.success(), "copying the demo failed");
    let demo = dir.path().join("demo");
    prepare(&demo);
    // Every plane of the demo tenant explicitly on the simulated fleet
    // (`serve` refuses a plane without a connector).
    let planes = dir.path().join("planes.yaml");
    std::fs::write(
        &planes,
        "planes:\n  intune: {type: sim}\n  jamf: {type: sim}\n  sccm: {type: sim}\n  landscape: {type: sim}\n  ansible: {type: sim}\n",
    )
    .expect("write the planes config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .arg("serve")
        .arg("--repo")
        .arg(demo.join("contoso"))
        .arg("--state")
        .arg(demo.join("state"))
        .arg("--key")
        .arg(demo.join("keys/ringmaster.key"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&planes)
        .args(extra_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringmaster serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("ringmaster serve never listened: {seen:#?}"));
        if let Some(address) = line.split("listening on ").nth(1) {
            break address.trim().to_owned();
        }
        seen.push(line);
    };
    std::thread::spawn(move || while lines.recv().is_ok() {});
    Served { child, url, dir }
}

/// The path of an installed tool, or a loud failure naming the package.
pub fn required_tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not installed: scripts/test.sh installs the Debian package {package}")
        })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
