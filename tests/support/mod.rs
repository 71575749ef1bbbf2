//! Shared test harness: real Git repositories in temp dirs, made with the
//! `git` command line, and the `ringmaster` binary run as a user would.

#![allow(dead_code)]

pub mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The instant tests judge the sample tenant at: its approvals and live
/// exception are valid then, the expired exception is expired.
pub const NOW: &str = "2026-12-01T00:00:00Z";

/// A governed repository in a temporary directory, committed with real git.
pub struct TestRepo {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestRepo {
    /// A new repository holding the embedded sample tenant, committed on `main`.
    pub fn sample() -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("governed");
        ringmaster::sample::write_to(&path).expect("write sample");
        let repo = TestRepo { _dir: dir, path };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit_all("sample tenant");
        repo
    }

    /// A synthetic tenant of `intents` intents written and committed by
    /// `ringmaster generate` (the binary under test).
    pub fn generated(intents: usize) -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("governed");
        let output = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .arg("generate")
            .arg(&path)
            .arg("--intents")
            .arg(intents.to_string())
            .output()
            .expect("ringmaster generate runs");
        assert!(
            output.status.success(),
            "ringmaster generate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        TestRepo { _dir: dir, path }
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .current_dir(&self.path)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn write(&self, relative: &str, text: &str) -> &Self {
        let path = self.path.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path.join(relative)).expect("read")
    }

    /// Replaces `from` by `to` in a file; panics if `from` is not there.
    pub fn edit(&self, relative: &str, from: &str, to: &str) -> &Self {
        let text = self.read(relative);
        assert!(text.contains(from), "{relative} does not contain {from:?}");
        self.write(relative, &text.replacen(from, to, 1))
    }
}

/// Runs the ringmaster binary built for these tests.
pub fn ringmaster(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("ringmaster runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a daemon config in `dir` that runs every plane of the sample tenant
/// on the simulated fleet, explicitly (`type: sim`): `serve` refuses to start
/// with a plane that has no connector. Returns its path, for `--config`.
pub fn sim_planes_config(dir: &Path) -> PathBuf {
    let path = dir.join("ringmaster-daemon.yaml");
    std::fs::write(
        &path,
        "planes:\n  intune: {type: sim}\n  jamf: {type: sim}\n  sccm: {type: sim}\n  landscape: {type: sim}\n  ansible: {type: sim}\n",
    )
    .expect("write the daemon config");
    path
}

/// The digest an approval of `intent` must carry, as a user gets it:
/// `ringmaster plan <repo> <intent> --format json`.
pub fn intent_sha256(repo: &Path, intent: &str) -> String {
    let output = ringmaster(
        &[
            "plan",
            repo.to_str().expect("utf-8 path"),
            intent,
            "--format",
            "json",
        ],
        repo,
    );
    assert!(output.status.success(), "plan: {}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("plan JSON");
    plan["intent_sha256"]
        .as_str()
        .expect("plan prints intent_sha256")
        .to_owned()
}
