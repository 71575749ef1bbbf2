//! The daemon on real Git repositories: evidence on a branch, verified by
//! `ringmaster verify` and by the real `minisign`; exactly-once processing
//! across a `kill -9`; watching a local repository; invalid commits; remotes.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{TestRepo, ringmaster, stderr, stdout};

struct Setup {
    repo: TestRepo,
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        let output = ringmaster(&["keygen", "--out", path(keys.path())], keys.path());
        assert!(output.status.success(), "{}", stderr(&output));
        Setup {
            repo,
            keys,
            state: tempfile::tempdir().expect("state"),
        }
    }

    fn key(&self) -> PathBuf {
        self.keys.path().join("ringmaster.key")
    }

    fn public_key(&self) -> PathBuf {
        self.keys.path().join("ringmaster.pub")
    }

    fn serve_args(&self) -> Vec<String> {
        vec![
            "serve".into(),
            "--repo".into(),
            path(&self.repo.path).into(),
            "--state".into(),
            path(self.state.path()).into(),
            "--key".into(),
            path(&self.key()).into(),
            "--config".into(),
            path(&support::sim_planes_config(self.keys.path())).into(),
        ]
    }

    fn serve_once(&self) -> std::process::Output {
        let mut args = self.serve_args();
        args.push("--once".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ringmaster(&args, &self.repo.path)
    }

    fn verify(&self, with_state: bool) -> std::process::Output {
        let public_key = self.public_key();
        let mut args = vec![
            "verify",
            path(&self.repo.path),
            "--public-key",
            path(&public_key),
        ];
        if with_state {
            args.extend(["--state", path(self.state.path())]);
        }
        ringmaster(&args, &self.repo.path)
    }

    fn events(&self) -> Vec<serde_json::Value> {
        let output = ringmaster(
            &[
                "events",
                "--state",
                path(self.state.path()),
                "--format",
                "json",
            ],
            &self.repo.path,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).expect("events json")
    }

    /// Subjects of the evidence commits that record policy decisions.
    fn decision_records(&self) -> Vec<String> {
        self.repo
            .git(&["log", "--format=%s", "evidence"])
            .lines()
            .filter(|subject| subject.starts_with("evidence: decision "))
            .map(str::to_owned)
            .collect()
    }

    fn evidence_files(&self) -> Vec<String> {
        self.repo
            .git(&["ls-tree", "-r", "--name-only", "evidence"])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn count(events: &[serde_json::Value], event_type: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .count()
}

#[test]
fn serve_once_commits_signed_evidence_that_verify_and_minisign_accept() {
    let setup = Setup::new();
    let output = setup.serve_once();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(
        setup.decision_records().len(),
        7,
        "one decision pack per sample intent"
    );
    let files = setup.evidence_files();
    let packs: Vec<&String> = files.iter().filter(|f| f.ends_with(".json")).collect();
    assert!(
        packs.len() > 7,
        "ring transitions are recorded too: {files:?}"
    );
    for pack in &packs {
        assert!(
            files.contains(&format!("{pack}.minisig")),
            "{pack} has its signature"
        );
    }

    let output = setup.verify(true);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    // Every signature verifies with the standard minisign tool.
    let scratch = tempfile::tempdir().expect("scratch");
    for pack in packs {
        let local = scratch.path().join("pack.json");
        std::fs::write(
            &local,
            setup.repo.git(&["show", &format!("evidence:{pack}")]) + "",
        )
        .expect("write");
        let bytes = Command::new("git")
            .args(["show", &format!("evidence:{pack}")])
            .current_dir(&setup.repo.path)
            .output()
            .expect("git show");
        std::fs::write(&local, &bytes.stdout).expect("write pack");
        let signature = Command::new("git")
            .args(["show", &format!("evidence:{pack}.minisig")])
            .current_dir(&setup.repo.path)
            .output()
            .expect("git show");
        std::fs::write(scratch.path().join("pack.json.minisig"), &signature.stdout)
            .expect("write sig");
        let minisign = Command::new("minisign")
            .args([
                "-V",
                "-m",
                path(&local),
                "-x",
                path(&scratch.path().join("pack.json.minisig")),
                "-p",
                path(&setup.public_key()),
            ])
            .output()
            .expect("the minisign tool is installed (scripts/test.sh installs it)");
        assert!(
            minisign.status.success(),
            "minisign rejected {pack}: {}",
            String::from_utf8_lossy(&minisign.stderr)
        );
    }

    // main was never touched; the governed work tree is clean.
    assert_eq!(
        setup.repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        "main"
    );
    assert_eq!(setup.repo.git(&["status", "--porcelain"]), "");

    // A second run finds nothing new and writes nothing.
    let output = setup.serve_once();
    assert!(
        stdout(&output).contains("nothing to process"),
        "{}",
        stdout(&output)
    );
    assert_eq!(setup.decision_records().len(), 7);
}

#[test]
fn a_new_approval_changes_one_decision_and_adds_one_pack() {
    let setup = Setup::new();
    // Without a forge, a record counts when its decider signed the commit
    // that wrote it: Dave lists a key made by the real ssh-keygen.
    let dave_key = setup.keys.path().join("dave-ssh");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dave", "-f"])
        .arg(&dave_key)
        .output()
        .expect("ssh-keygen must be installed (scripts/test.sh installs openssh-client)");
    assert!(keygen.status.success(), "{keygen:?}");
    let public = std::fs::read_to_string(dave_key.with_extension("pub")).expect("pub");
    setup.repo.edit(
        "principals/dave.yaml",
        "roles:\n",
        &format!("signing_keys:\n  - \"{}\"\nroles:\n", public.trim()),
    );
    setup.repo.commit_all("Dave's signing key");
    assert!(setup.serve_once().status.success());
    let digest = support::intent_sha256(&setup.repo.path, "osquery-6.0.0-it");
    setup.repo.write(
        "approvals/cab-2026-0150.yaml",
        &format!(
            "apiVersion: ringmaster.dev/v1
kind: ApprovalRecord
approval_id: cab-2026-0150
deployment_intent_id: osquery-6.0.0-it
intent_sha256: \"{digest}\"
decision: approved
decided_by: dave
decided_at: 2026-11-27T10:00:00Z
expiry: 2099-12-31T00:00:00Z
justification: Major osquery upgrade reviewed; pilot ring watched by SecOps.
"
        ),
    );
    setup.repo.git(&["add", "-A"]);
    setup.repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", path(&dave_key)),
        "commit",
        "-q",
        "-S",
        "-m",
        "CAB approval for osquery 6.0.0",
    ]);
    let commit = setup.repo.git(&["rev-parse", "HEAD"]);
    let output = setup.serve_once();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&commit[..10]),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("1 evidence record(s), 6 unchanged"),
        "{}",
        stdout(&output)
    );
    let events = setup.events();
    let osquery: Vec<_> = events
        .iter()
        .filter(|e| e["intent_id"] == "osquery-6.0.0-it" && e["event_type"] == "evidence_committed")
        .collect();
    assert_eq!(osquery.len(), 2);
    assert_eq!(osquery[1]["details"]["decision"], "ALLOW");
    assert_eq!(setup.verify(true).status.code(), Some(0));
}

#[test]
fn every_commit_is_processed_in_order() {
    let setup = Setup::new();
    assert!(setup.serve_once().status.success());
    let first = setup
        .repo
        .edit(
            "intents/chrome-131-finance.yaml",
            "Monthly Chrome",
            "Monthly Chrome (reviewed)",
        )
        .commit_all("one");
    let second = setup
        .repo
        .edit(
            "intents/zoom-6.3.0-finance.yaml",
            "description:",
            "description: >-\n  Reviewed.\n  ",
        )
        .commit_all("two");
    let output = setup.serve_once();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    let at_first = text.find(&first[..10]).expect("first commit processed");
    let at_second = text.find(&second[..10]).expect("second commit processed");
    assert!(at_first < at_second, "{text}");
    let events = setup.events();
    let commits: Vec<&str> = events
        .iter()
        .filter(|e| e["event_type"] == "commit_processed")
        .map(|e| e["details"]["commit"].as_str().expect("commit"))
        .collect();
    assert_eq!(&commits[1..], &[first.as_str(), second.as_str()]);
}

#[test]
fn an_invalid_commit_is_recorded_and_the_daemon_carries_on() {
    let setup = Setup::new();
    assert!(setup.serve_once().status.success());
    setup.repo.write(
        "intents/broken.yaml",
        "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: [oops\n",
    );
    let bad = setup.repo.commit_all("broken intent");
    let output = setup.serve_once();
    assert!(
        output.status.success(),
        "bad input never fails the daemon: {}",
        stderr(&output)
    );
    assert!(stdout(&output).contains("invalid"), "{}", stdout(&output));
    assert_eq!(
        setup.decision_records().len(),
        7,
        "no decision evidence for an invalid commit"
    );
    let events = setup.events();
    let failure = events
        .iter()
        .find(|e| e["event_type"] == "commit_processed" && e["details"]["commit"] == bad.as_str())
        .expect("the invalid commit is recorded");
    assert_eq!(failure["outcome"], "failure");
    assert!(
        failure["details"]["diagnostics"]
            .to_string()
            .contains("intents/broken.yaml")
    );

    // The fix is processed normally afterwards.
    std::fs::remove_file(setup.repo.path.join("intents/broken.yaml")).expect("rm");
    setup.repo.commit_all("remove the broken intent");
    let output = setup.serve_once();
    assert!(stdout(&output).contains(" ok: "), "{}", stdout(&output));
}

#[test]
fn blocked_evidence_branch_blocks_and_is_retried() {
    let setup = Setup::new();
    // Something in the way of the evidence ref's lock that is not a lock
    // file the daemon left (a directory): the branch cannot be written.
    let lock = setup.repo.path.join(".git/refs/heads/evidence.lock");
    std::fs::create_dir(&lock).expect("lock");
    let output = setup.serve_once();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("publishing is blocked"),
        "{}",
        stderr(&output)
    );
    let events = setup.events();
    assert!(count(&events, "publish_blocked") >= 1, "{events:#?}");
    assert_eq!(
        count(&events, "commit_processed"),
        0,
        "the commit stays pending"
    );

    std::fs::remove_dir(&lock).expect("unlock");
    let output = setup.serve_once();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(setup.decision_records().len(), 7);
    assert_eq!(setup.verify(true).status.code(), Some(0));
}

#[test]
fn a_stale_ref_lock_left_by_a_killed_daemon_is_removed_at_start() {
    let setup = Setup::new();
    let output = setup.serve_once();
    assert!(output.status.success(), "{}", stderr(&output));
    let records = setup.decision_records().len();
    // What `kill -9` during a ref update leaves: Git's lock on the evidence ref.
    let lock = setup.repo.path.join(".git/refs/heads/evidence.lock");
    std::fs::write(&lock, "").expect("lock");
    setup.repo.edit(
        "intents/chrome-131-finance.yaml",
        "Monthly Chrome stable update",
        "Monthly Chrome stable update, re-described,",
    );
    setup.repo.commit_all("a new commit to record");
    let output = setup.serve_once();
    assert!(
        output.status.success(),
        "the daemon starts and publishes on its own: {}",
        stderr(&output)
    );
    assert!(!lock.exists(), "the stale lock was removed");
    let events = setup.events();
    let removed: Vec<_> = events
        .iter()
        .filter(|event| event["details"]["kind"] == "stale_lock_removed")
        .collect();
    assert_eq!(removed.len(), 1, "{events:#?}");
    assert!(
        removed[0]["details"]["path"]
            .as_str()
            .is_some_and(|path| path.ends_with("refs/heads/evidence.lock")),
        "{:#?}",
        removed[0]
    );
    assert!(
        setup.decision_records().len() > records,
        "the new decision was recorded past the old lock"
    );
    assert_eq!(setup.verify(true).status.code(), Some(0));
}

#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused() {
    let setup = Setup::new();
    let mut args = setup.serve_args();
    args.push("--once".into());
    // The first daemon pauses (holding its state directory) after its first record.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(&args)
        .env("RINGMASTER_TEST_PAUSE_AT", "after-evidence-append")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let paused = BufReader::new(stderr_pipe)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("RINGMASTER-PAUSED-AT after-evidence-append"));
    assert!(paused, "the first daemon reached the pause point");
    let second = setup.serve_once();
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert_eq!(second.status.code(), Some(2), "{}", stdout(&second));
    assert!(
        stderr(&second).contains("another ringmaster daemon is running"),
        "{}",
        stderr(&second)
    );
    // Once the first is gone (killed), the next start goes on by itself.
    let output = setup.serve_once();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn kill_between_evidence_and_event_leaves_one_pack_and_one_event() {
    let setup = Setup::new();
    let mut args = setup.serve_args();
    args.push("--once".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(&args)
        .env("RINGMASTER_TEST_PAUSE_AT", "after-evidence-append")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr_pipe).lines();
    let paused = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("RINGMASTER-PAUSED-AT after-evidence-append"));
    assert!(paused, "the daemon reached the pause point");
    child.kill().expect("kill -9"); // SIGKILL on Unix
    child.wait().expect("reaped");
    assert_eq!(
        setup.evidence_files().len(),
        2,
        "exactly the first pack was committed before the kill"
    );

    let output = setup.serve_once();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let mut decisions: Vec<String> = setup
        .decision_records()
        .iter()
        .map(|subject| subject.rsplit_once(" #").expect("numbered").0.to_owned())
        .collect();
    assert_eq!(
        decisions.len(),
        7,
        "one decision pack per intent: {decisions:?}"
    );
    decisions.sort();
    decisions.dedup();
    assert_eq!(decisions.len(), 7, "none repeated: {decisions:?}");
    let events = setup.events();
    assert_eq!(
        count(&events, "evidence_committed"),
        7,
        "one event per pack"
    );
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    let mut evidence_sequences: Vec<u64> = events
        .iter()
        .filter(|e| e["event_type"] == "evidence_committed")
        .map(|e| e["details"]["evidence_sequence"].as_u64().expect("n"))
        .collect();
    evidence_sequences.sort_unstable();
    assert_eq!(evidence_sequences, (1..=7).collect::<Vec<_>>());
    assert_eq!(setup.verify(true).status.code(), Some(0));
}

/// A first start that changes many decisions (here 40, past the batch
/// threshold of 32) writes them as one evidence commit of individually
/// signed records; a `kill -9` after that commit, before the store heard
/// of it, loses nothing and repeats nothing: the restart finds the batch on
/// the tip, records one event per pack, and `verify --state` passes.
#[test]
fn a_kill_after_a_batch_of_decisions_is_committed_loses_and_repeats_nothing() {
    let setup = Setup {
        repo: TestRepo::generated(40),
        ..Setup::new()
    };
    let mut args = setup.serve_args();
    args.push("--once".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(&args)
        .env("RINGMASTER_TEST_PAUSE_AT", "after-evidence-append")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let paused = BufReader::new(stderr_pipe)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("RINGMASTER-PAUSED-AT after-evidence-append"));
    assert!(paused, "the daemon reached the pause point");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let subjects = setup.repo.git(&["log", "--format=%s", "evidence"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["evidence: batch #1..#40 (40 records)"],
        "the 40 decisions were committed as one batch before the kill"
    );
    assert_eq!(setup.evidence_files().len(), 80, "40 packs, 40 signatures");
    assert_eq!(
        count(&setup.events(), "evidence_committed"),
        0,
        "the store had not heard of the batch"
    );

    let output = setup.serve_once();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let subjects = setup
        .repo
        .git(&["log", "--reverse", "--format=%s", "evidence"]);
    assert_eq!(
        subjects.lines().next(),
        Some("evidence: batch #1..#40 (40 records)")
    );
    assert!(
        !subjects
            .lines()
            .any(|subject| subject.starts_with("evidence: decision ")),
        "no decision was appended again: {subjects}"
    );
    // Later commits carry the rollouts' records (the ring starts of one
    // step, as a batch of their own), never a decision again.
    let decision_packs = setup
        .evidence_files()
        .iter()
        .filter(|file| file.ends_with(".json"))
        .filter(|file| {
            let pack: serde_json::Value =
                serde_json::from_str(&setup.repo.git(&["show", &format!("evidence:{file}")]))
                    .expect("pack");
            pack["record_type"] == "decision"
        })
        .count();
    assert_eq!(
        decision_packs, 40,
        "no decision was appended again: {subjects}"
    );
    let events = setup.events();
    let mut decided: Vec<(String, u64)> = events
        .iter()
        .filter(|e| e["event_type"] == "evidence_committed")
        .map(|e| {
            (
                e["intent_id"].as_str().expect("intent").to_owned(),
                e["details"]["evidence_sequence"].as_u64().expect("n"),
            )
        })
        .collect();
    decided.sort_by_key(|(_, sequence)| *sequence);
    assert_eq!(
        decided
            .iter()
            .map(|(_, sequence)| *sequence)
            .collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>(),
        "one event per pack of the batch"
    );
    let mut intents: Vec<&str> = decided.iter().map(|(intent, _)| intent.as_str()).collect();
    intents.sort_unstable();
    intents.dedup();
    assert_eq!(intents.len(), 40, "one decision per intent");
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    let verified = setup.verify(true);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
    // A second start finds nothing to decide again.
    let again = setup.serve_once();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        count(&setup.events(), "evidence_committed"),
        40,
        "nothing recorded twice"
    );
}

#[test]
fn a_watched_repository_is_processed_without_a_restart() {
    let setup = Setup::new();
    let mut args = setup.serve_args();
    args.extend(["--poll-seconds".into(), "3600".into()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(&args)
        .env("RINGMASTER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let (lines_sender, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    };
    // The first poll tick processes the current tip.
    let tip = setup.repo.git(&["rev-parse", "HEAD"]);
    assert!(wait_for(&tip), "initial tip processed");
    let commit = setup
        .repo
        .edit(
            "intents/chrome-131-finance.yaml",
            "Monthly Chrome",
            "Monthly Chrome (watched)",
        )
        .commit_all("watched change");
    let seen = wait_for(&commit);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen,
        "the new commit was processed through the watcher, with polling at one hour"
    );
    let events = setup.events();
    assert!(
        events
            .iter()
            .any(|e| e["details"]["commit"] == commit.as_str())
    );
}

#[test]
fn a_remote_repository_is_mirrored_and_evidence_is_pushed() {
    let setup = Setup::new();
    let remote_dir = tempfile::tempdir().expect("remote");
    let remote = remote_dir.path().join("tenant.git");
    let status = Command::new("git")
        .args([
            "clone",
            "-q",
            "--bare",
            path(&setup.repo.path),
            path(&remote),
        ])
        .status()
        .expect("git clone");
    assert!(status.success());
    let url = format!("file://{}", path(&remote));
    let state = tempfile::tempdir().expect("state");
    let output = ringmaster(
        &[
            "serve",
            "--repo",
            &url,
            "--state",
            path(state.path()),
            "--key",
            path(&setup.key()),
            "--config",
            path(&support::sim_planes_config(setup.keys.path())),
            "--once",
        ],
        state.path(),
    );
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(state.path().join("mirror.git").is_dir());
    let output = ringmaster(
        &[
            "verify",
            path(&remote),
            "--public-key",
            path(&setup.public_key()),
        ],
        state.path(),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "evidence reached the remote: {}{}",
        stdout(&output),
        stderr(&output)
    );
}

#[test]
fn verify_with_state_catches_a_branch_rewritten_shorter() {
    let setup = Setup::new();
    assert!(setup.serve_once().status.success());
    // Drop the last commit's records by moving the branch back one commit
    // (a force-push); the last record is the tip commit's last (a commit
    // may carry a batch of records).
    let records = setup
        .repo
        .git(&[
            "log",
            "-1",
            "--format=%(trailers:key=Evidence-Sequence,valueonly)",
            "evidence",
        ])
        .trim()
        .to_owned();
    setup.repo.git(&["branch", "-f", "evidence", "evidence~1"]);
    let output = setup.verify(false);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the shorter branch is self-consistent"
    );
    let output = setup.verify(true);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains(&format!("#{records}")),
        "names the missing record: {}",
        stdout(&output)
    );
}

#[test]
fn policy_violations_go_to_the_siem_file() {
    let setup = Setup::new();
    let siem = setup.state.path().join("siem.jsonl");
    let mut args = setup.serve_args();
    args.extend(["--once".into(), "--siem".into(), path(&siem).into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(ringmaster(&args, &setup.repo.path).status.success());
    let text = std::fs::read_to_string(&siem).expect("siem file written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let intents: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "policy_violation")
        .map(|l| l["intent_id"].as_str().expect("id"))
        .collect();
    assert!(intents.contains(&"osquery-6.0.0-it"), "{lines:#?}");
    assert!(
        intents.contains(&"build-agent-2.8.0-engineering"),
        "{lines:#?}"
    );
    assert!(!intents.contains(&"chrome-131-finance"));
}
