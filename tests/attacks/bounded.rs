//! The judges with a deadline: an attack that hangs a judge must fail its
//! test, not hang the suite. `validate` and the daemon (`serve --once`) run
//! as the real binary, as an operator runs them (with the guarded policy
//! worker `main` installs); the PR check runs in a thread of this process.

#![allow(dead_code)]

use crate::support::{NOW, TestRepo};
use ringmaster::forge::check::{PullRequestInput, PullRequestVerdict};
use ringmaster::forge::wire::{BranchRef, PullRequest, User};
use ringmaster::source::GovernedRepo;
use ringmaster::store::{CommitOutcome, ProcessedCommit, Store};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Far beyond what any judge needs here (a few seconds at most); only a
/// judge that hangs reaches it.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Runs the ringmaster binary; panics (failing the test) if it is still
/// running after [`DEADLINE`], after killing it.
pub fn ringmaster(args: &[&str], cwd: &Path) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringmaster starts");
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(DEADLINE) {
        Ok(output) => output.expect("ringmaster ran"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("ringmaster {args:?} still ran after {DEADLINE:?}: the judge hangs");
        }
    }
}

/// Runs `work` in a thread; panics if it has not finished after [`DEADLINE`].
pub fn within_deadline<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} still ran after {DEADLINE:?}: the judge hangs"))
}

/// `ringmaster validate` of `rev` as JSON, at [`NOW`]: (exit code, report).
pub fn validate(repo: &TestRepo, rev: &str) -> (i32, serde_json::Value) {
    let output = ringmaster(
        &[
            "validate", ".", "--rev", rev, "--now", NOW, "--format", "json",
        ],
        &repo.path,
    );
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "validate printed no JSON ({error}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// Error diagnostics of a validate report as `file:line: message`.
pub fn errors(report: &serde_json::Value) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["severity"] == "error")
        .map(|d| {
            format!(
                "{}:{}: {}",
                d["file"].as_str().unwrap_or_default(),
                d["line"],
                d["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// The PR check of `head` into `base` (branch names), nobody reviewing.
pub fn pr_check(repo: &TestRepo, base: &str, head: &str) -> PullRequestVerdict {
    let path = repo.path.clone();
    let (base, head) = (base.to_string(), head.to_string());
    within_deadline("the PR check", move || {
        let repo = GovernedRepo::open(&path).expect("repo");
        let head_id = repo.resolve(&head).expect("head");
        let base_id = repo.resolve(&base).expect("base");
        let fork_point = repo
            .repository
            .merge_base(head_id, base_id)
            .expect("merge base");
        let pull_request = PullRequest {
            number: 7,
            state: "open".into(),
            html_url: None,
            user: Some(User {
                login: "mallory".into(),
            }),
            head: BranchRef {
                name: head.clone(),
                sha: head_id.to_string(),
            },
            base: BranchRef {
                name: base.clone(),
                sha: base_id.to_string(),
            },
            draft: false,
            merged_at: None,
            merge_commit_sha: None,
            updated_at: None,
        };
        let head_entries = repo.entries_at(head_id).expect("head entries");
        let base_entries = repo.entries_at(base_id).expect("base entries");
        let fork_point_entries = repo.entries_at(fork_point).expect("fork entries");
        let history = ringmaster::source::history::change_history(&repo, fork_point, head_id)
            .expect("history");
        ringmaster::forge::check::judge(&PullRequestInput {
            pull_request: &pull_request,
            head_entries: &head_entries,
            base_entries: &base_entries,
            base_sha: &base_id.to_string(),
            fork_point_entries: &fork_point_entries,
            reviews: &[],
            history: &history,
            runtime: &ringmaster::evaluation::NoRuntime,
            now: NOW.parse().expect("NOW"),
        })
    })
}

/// A daemon on a repository: a key, a state directory, `serve --once`.
pub struct Daemon {
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
    repo: PathBuf,
}

impl Daemon {
    pub fn new(repo: &TestRepo) -> Daemon {
        let keys = tempfile::tempdir().expect("keys");
        let out = keys.path().to_str().expect("utf-8 path").to_string();
        let output = ringmaster(&["keygen", "--out", &out], keys.path());
        assert!(output.status.success(), "keygen: {output:?}");
        Daemon {
            keys,
            state: tempfile::tempdir().expect("state"),
            repo: repo.path.clone(),
        }
    }

    /// One daemon step: every new commit of `main`, judged at [`NOW`].
    pub fn step(&self) -> Output {
        let key = self.keys.path().join("ringmaster.key");
        let output = ringmaster(
            &[
                "serve",
                "--repo",
                self.repo.to_str().expect("utf-8"),
                "--state",
                self.state.path().to_str().expect("utf-8"),
                "--key",
                key.to_str().expect("utf-8"),
                "--config",
                crate::support::sim_planes_config(self.keys.path())
                    .to_str()
                    .expect("utf-8"),
                "--once",
            ],
            &self.repo,
        );
        assert!(
            output.status.success(),
            "bad input never stops the daemon: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The state directory, for `events`/`status --state`.
    pub fn state_dir(&self) -> &str {
        self.state.path().to_str().expect("utf-8 path")
    }

    /// The daemon's record of `commit`.
    pub fn processed(&self, commit: &str) -> ProcessedCommit {
        let store = Store::open(&self.state.path().join("ringmaster.db")).expect("store");
        let last = store
            .last_processed_commit("main")
            .expect("store")
            .expect("a processed commit");
        assert_eq!(last.commit_sha, commit, "the daemon's last commit");
        last
    }

    /// Intents the daemon holds a decision for.
    pub fn decisions(&self) -> Vec<(String, String)> {
        let store = Store::open(&self.state.path().join("ringmaster.db")).expect("store");
        store
            .list_intents()
            .expect("intents")
            .into_iter()
            .filter_map(|record| Some((record.intent_id, record.decision?)))
            .collect()
    }
}

/// Whether `commit` was recorded invalid with an error about `file`.
pub fn refused_for(processed: &ProcessedCommit, file: &str) -> bool {
    processed.outcome == CommitOutcome::Invalid
        && processed
            .diagnostics
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["severity"] == "error" && d["file"] == file)
}
