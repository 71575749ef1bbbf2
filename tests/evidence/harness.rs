//! Shared harness of the evidence tests: git run with a fixed identity, a
//! governed repository with keys, history rewrites with git commands, and
//! the minisign CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Duration, Utc};
use ringmaster::evidence::{
    AppendContext, AppendedRecord, EvidenceBranch, EvidencePackInput, ExpectedHead, Failure,
    GitIdentity, RecordType, SigningKey, VerifyReport, VerifyingKey, generate_keypair,
    verify_branch,
};
use serde_json::json;
use tempfile::TempDir;

pub const BRANCH: &str = "evidence";

/// Runs git in `directory` with a fixed identity and no user config.
pub fn git_output(directory: &Path, arguments: &[&str], environment: &[(&str, &str)]) -> Output {
    let mut command = Command::new("git");
    command
        .current_dir(directory)
        .args(arguments)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Mallory")
        .env("GIT_AUTHOR_EMAIL", "mallory@example.com")
        .env("GIT_COMMITTER_NAME", "Mallory")
        .env("GIT_COMMITTER_EMAIL", "mallory@example.com");
    for (name, value) in environment {
        command.env(name, value);
    }
    command.output().expect("git runs")
}

pub fn git(directory: &Path, arguments: &[&str]) -> String {
    git_with(directory, arguments, &[])
}

pub fn git_with(directory: &Path, arguments: &[&str], environment: &[(&str, &str)]) -> String {
    let output = git_output(directory, arguments, environment);
    assert!(
        output.status.success(),
        "git {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// A governed repository with one commit on `main`, and a signing key.
pub struct Governed {
    directory: TempDir,
    keys: TempDir,
    pub signer: SigningKey,
    pub verifier: VerifyingKey,
}

impl Governed {
    pub fn new() -> Self {
        let directory = TempDir::new().unwrap();
        git(directory.path(), &["init", "-q", "-b", "main"]);
        fs::write(
            directory.path().join("ringmaster.yaml"),
            "apiVersion: ringmaster.dev/v1\nkind: Config\n",
        )
        .unwrap();
        git(directory.path(), &["add", "ringmaster.yaml"]);
        git(directory.path(), &["commit", "-q", "-m", "initial config"]);
        let keys = TempDir::new().unwrap();
        let paths = generate_keypair(keys.path(), None, false).unwrap();
        let signer = SigningKey::load(&paths.secret_key, None).unwrap();
        let verifier = VerifyingKey::load(&paths.public_key).unwrap();
        Self {
            directory,
            keys,
            signer,
            verifier,
        }
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    pub fn branch(&self) -> EvidenceBranch {
        EvidenceBranch::open(self.path(), BRANCH).unwrap()
    }

    pub fn append(&self, count: u64) -> Vec<AppendedRecord> {
        let branch = self.branch();
        let start = branch.tip().unwrap().map_or(0, |tip| tip.sequence);
        (start + 1..=start + count)
            .map(|number| {
                branch
                    .append(
                        decision_input(number),
                        &self.signer,
                        &AppendContext::default(),
                    )
                    .unwrap()
            })
            .collect()
    }

    pub fn verify(&self, expected_head: Option<ExpectedHead>) -> VerifyReport {
        verify_branch(self.path(), BRANCH, &self.verifier, expected_head).unwrap()
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.keys.path().join("ringmaster.pub")
    }

    /// A file of the evidence branch, as committed.
    pub fn evidence_file(&self, path: &str) -> Vec<u8> {
        let output = git_output(self.path(), &["show", &format!("{BRANCH}:{path}")], &[]);
        assert!(output.status.success(), "{path} is on the branch");
        output.stdout
    }

    /// Rewrites the evidence branch with an interactive rebase whose todo
    /// list is edited by `sequence_editor` (a shell command given the todo
    /// file as its last argument), in a temporary worktree.
    pub fn rebase_evidence(&self, sequence_editor: &str) {
        let worktree = TempDir::new().unwrap();
        let worktree_path = worktree.path().join("rewrite");
        git(
            self.path(),
            &[
                "worktree",
                "add",
                "-q",
                worktree_path.to_str().unwrap(),
                BRANCH,
            ],
        );
        git_with(
            &worktree_path,
            &["rebase", "-q", "-i", "--root"],
            &[("GIT_SEQUENCE_EDITOR", sequence_editor)],
        );
        git(
            self.path(),
            &[
                "worktree",
                "remove",
                "--force",
                worktree_path.to_str().unwrap(),
            ],
        );
    }

    /// Adds a commit on the evidence branch that writes `files` (adding or
    /// replacing), with plumbing commands and a throw-away index.
    pub fn commit_on_evidence(&self, files: &[(&str, &[u8])], message: &str) {
        let scratch = TempDir::new().unwrap();
        let index = scratch.path().join("index");
        let index_env = [("GIT_INDEX_FILE", index.to_str().unwrap())];
        git_with(self.path(), &["read-tree", BRANCH], &index_env);
        for (path, contents) in files {
            let file = scratch.path().join("blob");
            fs::write(&file, contents).unwrap();
            let blob = git(self.path(), &["hash-object", "-w", file.to_str().unwrap()]);
            git_with(
                self.path(),
                &[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("100644,{blob},{path}"),
                ],
                &index_env,
            );
        }
        let tree = git_with(self.path(), &["write-tree"], &index_env);
        let commit = git(
            self.path(),
            &["commit-tree", &tree, "-p", BRANCH, "-m", message],
        );
        git(
            self.path(),
            &["update-ref", &format!("refs/heads/{BRANCH}"), &commit],
        );
    }
}

pub fn identity(time: DateTime<Utc>) -> GitIdentity {
    GitIdentity {
        name: "Alice Publisher".to_string(),
        email: "alice@example.com".to_string(),
        time: time.fixed_offset(),
    }
}

pub fn decision_input(number: u64) -> EvidencePackInput {
    let created_at = DateTime::parse_from_rfc3339("2026-11-03T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(number as i64);
    EvidencePackInput {
        record_type: RecordType::Decision,
        intent_id: Some(format!("vpn-2.{number}")),
        correlation_id: format!("corr-{number}"),
        source_commit: format!("{:040x}", number),
        source_parent: Some(format!("{:040x}", number + 1000)),
        author: identity(created_at - Duration::hours(1)),
        committer: identity(created_at - Duration::minutes(30)),
        created_at,
        body: json!({
            "decision": "ALLOW",
            "reasons": ["risk 42 below CAB threshold 60", "two cab-approver reviews on the head commit"],
            "risk": {"score": 42, "model_version": "2026.1"},
            "blast_radius": {"devices": 1200, "business_units": ["bu-finance"]},
            "forge": null
        }),
    }
}

pub fn failure_of(report: &VerifyReport) -> &Failure {
    assert!(!report.ok, "verification should fail: {report}");
    assert_eq!(report.exit_code(), 1);
    report.first_failure.as_ref().expect("a failure is named")
}

/// Runs the real minisign CLI; a missing CLI fails the test.
pub fn minisign(arguments: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("minisign")
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "the minisign CLI is needed to cross-check signatures but cannot run ({error}): install it with `apt-get install -y minisign`"
            )
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
