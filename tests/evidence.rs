//! Evidence branch, keys and verification against real parts: git
//! repositories made with the `git` CLI in temporary directories, history
//! rewritten with git commands, signatures cross-checked with the `minisign`
//! CLI, a bare remote reached by path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Duration, Utc};
use ringmaster::evidence::{
    AppendedRecord, EvidenceBranch, EvidenceError, EvidencePackInput, ExpectedHead, FetchOutcome,
    GitIdentity, RecordType, SigningKey, VerifyReport, VerifyingKey, generate_keypair,
    verify_branch,
};
use serde_json::json;
use tempfile::TempDir;

const BRANCH: &str = "evidence";

/// Runs git in `directory` with a fixed identity and no user config.
fn git_output(directory: &Path, arguments: &[&str], environment: &[(&str, &str)]) -> Output {
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

fn git(directory: &Path, arguments: &[&str]) -> String {
    git_with(directory, arguments, &[])
}

fn git_with(directory: &Path, arguments: &[&str], environment: &[(&str, &str)]) -> String {
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
struct Governed {
    directory: TempDir,
    keys: TempDir,
    signer: SigningKey,
    verifier: VerifyingKey,
}

impl Governed {
    fn new() -> Self {
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

    fn path(&self) -> &Path {
        self.directory.path()
    }

    fn branch(&self) -> EvidenceBranch {
        EvidenceBranch::open(self.path(), BRANCH).unwrap()
    }

    fn append(&self, count: u64) -> Vec<AppendedRecord> {
        let branch = self.branch();
        let start = branch.tip().unwrap().map_or(0, |tip| tip.sequence);
        (start + 1..=start + count)
            .map(|number| branch.append(decision_input(number), &self.signer).unwrap())
            .collect()
    }

    fn verify(&self, expected_head: Option<ExpectedHead>) -> VerifyReport {
        verify_branch(self.path(), BRANCH, &self.verifier, expected_head).unwrap()
    }

    fn public_key_path(&self) -> PathBuf {
        self.keys.path().join("ringmaster.pub")
    }

    /// A file of the evidence branch, as committed.
    fn evidence_file(&self, path: &str) -> Vec<u8> {
        let output = git_output(self.path(), &["show", &format!("{BRANCH}:{path}")], &[]);
        assert!(output.status.success(), "{path} is on the branch");
        output.stdout
    }

    /// Rewrites the evidence branch with an interactive rebase whose todo
    /// list is edited by `sequence_editor` (a shell command given the todo
    /// file as its last argument), in a temporary worktree.
    fn rebase_evidence(&self, sequence_editor: &str) {
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
    fn commit_on_evidence(&self, files: &[(&str, &[u8])], message: &str) {
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

fn identity(time: DateTime<Utc>) -> GitIdentity {
    GitIdentity {
        name: "Alice Publisher".to_string(),
        email: "alice@example.com".to_string(),
        time: time.fixed_offset(),
    }
}

fn decision_input(number: u64) -> EvidencePackInput {
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

fn failure_of(report: &VerifyReport) -> &ringmaster::evidence::Failure {
    assert!(!report.ok, "verification should fail: {report}");
    assert_eq!(report.exit_code(), 1);
    report.first_failure.as_ref().expect("a failure is named")
}

/// Runs the real minisign CLI; a missing CLI fails the test.
fn minisign(arguments: &[&str], stdin: &str) -> Output {
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

#[test]
fn signatures_verify_with_the_minisign_cli() {
    let governed = Governed::new();
    let records = governed.append(2);
    let scratch = TempDir::new().unwrap();
    let record = &records[1];
    let pack_file = scratch.path().join("pack.json");
    let signature_file = scratch.path().join("pack.json.minisig");
    fs::write(&pack_file, governed.evidence_file(&record.pack_path)).unwrap();
    fs::write(
        &signature_file,
        governed.evidence_file(&record.signature_path),
    )
    .unwrap();

    let output = minisign(
        &[
            "-Vm",
            pack_file.to_str().unwrap(),
            "-x",
            signature_file.to_str().unwrap(),
            "-p",
            governed.public_key_path().to_str().unwrap(),
        ],
        "",
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "minisign -V failed: {printed}");
    let expected_comment = format!(
        "Trusted comment: ringmaster seq=2 sha256={} prev={} source={:040x}",
        record.pack_sha256, records[0].pack_sha256, 2
    );
    assert!(printed.contains(&expected_comment), "{printed}");

    // The same check fails once the pack changes: the test can fail.
    let mut tampered = fs::read(&pack_file).unwrap();
    let position = tampered
        .windows(5)
        .position(|window| window == b"ALLOW")
        .unwrap();
    tampered[position..position + 5].copy_from_slice(b"DENY_");
    fs::write(&pack_file, tampered).unwrap();
    let output = minisign(
        &[
            "-Vm",
            pack_file.to_str().unwrap(),
            "-x",
            signature_file.to_str().unwrap(),
            "-p",
            governed.public_key_path().to_str().unwrap(),
        ],
        "",
    );
    assert!(
        !output.status.success(),
        "minisign accepted a tampered pack"
    );
}

#[test]
fn committed_pack_file_hashes_to_its_recorded_sha256() {
    let governed = Governed::new();
    let record = governed.append(1).remove(0);
    let bytes = governed.evidence_file(&record.pack_path);
    assert_eq!(ringmaster::evidence::sha256_hex(&bytes), record.pack_sha256);
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(ringmaster::evidence::canonical_json(&value), bytes);
    assert!(bytes.ends_with(b"}\n"));
}

#[test]
fn secret_key_file_is_mode_0600_and_public_key_is_readable() {
    let keys = TempDir::new().unwrap();
    let paths = generate_keypair(&keys.path().join("new-dir"), None, false).unwrap();
    let secret_mode = fs::metadata(&paths.secret_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(secret_mode, 0o600, "secret key mode {secret_mode:o}");
    let public_mode = fs::metadata(&paths.public_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(public_mode, 0o644);
    assert_eq!(paths.key_id.len(), 16);
    assert!(paths.to_string().contains("mode 0600"));
}

#[test]
fn generate_keypair_refuses_to_overwrite_unless_forced() {
    let keys = TempDir::new().unwrap();
    let first = generate_keypair(keys.path(), None, false).unwrap();
    let refused = generate_keypair(keys.path(), None, false).unwrap_err();
    assert!(
        matches!(refused, EvidenceError::KeyExists { .. }),
        "{refused}"
    );
    assert_eq!(
        VerifyingKey::load(&first.public_key).unwrap().key_id(),
        first.key_id
    );
    let replaced = generate_keypair(keys.path(), None, true).unwrap();
    assert_ne!(replaced.key_id, first.key_id);
    let mode = fs::metadata(&replaced.secret_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        SigningKey::load(&replaced.secret_key, None)
            .unwrap()
            .key_id(),
        replaced.key_id
    );
}

#[test]
fn password_protected_key_round_trip() {
    let keys = TempDir::new().unwrap();
    let paths = generate_keypair(keys.path(), Some("correct horse"), false).unwrap();
    assert!(paths.password_protected);
    let signer = SigningKey::load(&paths.secret_key, Some("correct horse")).unwrap();
    assert_eq!(signer.key_id(), paths.key_id);
    assert!(format!("{signer:?}").contains("secret: ***"));

    let wrong = SigningKey::load(&paths.secret_key, Some("wrong")).unwrap_err();
    assert!(matches!(wrong, EvidenceError::KeyLoad { .. }), "{wrong}");
    let missing = SigningKey::load(&paths.secret_key, None).unwrap_err();
    assert!(missing.to_string().contains("password"), "{missing}");

    // The key signs packs that verify, with this crate and the minisign CLI.
    let scratch = TempDir::new().unwrap();
    let file = scratch.path().join("data");
    fs::write(&file, b"evidence\n").unwrap();
    let signature = signer
        .sign(b"evidence\n", "ringmaster test", "test")
        .unwrap();
    let verifier = VerifyingKey::load(&paths.public_key).unwrap();
    assert_eq!(
        verifier.verify(b"evidence\n", &signature).unwrap(),
        "ringmaster test"
    );
    fs::write(scratch.path().join("data.minisig"), &signature).unwrap();
    let output = minisign(
        &[
            "-Vm",
            file.to_str().unwrap(),
            "-p",
            paths.public_key.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // And the minisign CLI reads the encrypted secret key file.
    let cli_signed = scratch.path().join("cli.minisig");
    let output = minisign(
        &[
            "-S",
            "-s",
            paths.secret_key.to_str().unwrap(),
            "-m",
            file.to_str().unwrap(),
            "-x",
            cli_signed.to_str().unwrap(),
            "-t",
            "signed by the cli",
        ],
        "correct horse\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cli_signature = fs::read_to_string(&cli_signed).unwrap();
    assert_eq!(
        verifier.verify(b"evidence\n", &cli_signature).unwrap(),
        "signed by the cli"
    );
}

#[test]
fn minisign_cli_signs_with_an_unencrypted_ringmaster_key() {
    let keys = TempDir::new().unwrap();
    let paths = generate_keypair(keys.path(), None, false).unwrap();
    assert!(!paths.password_protected);
    let file = keys.path().join("data");
    fs::write(&file, b"x").unwrap();
    let output = minisign(
        &[
            "-S",
            "-s",
            paths.secret_key.to_str().unwrap(),
            "-m",
            file.to_str().unwrap(),
            "-t",
            "cli",
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signature = fs::read_to_string(keys.path().join("data.minisig")).unwrap();
    let verifier = VerifyingKey::load(&paths.public_key).unwrap();
    assert_eq!(verifier.verify(b"x", &signature).unwrap(), "cli");
}

#[test]
fn append_builds_a_contiguous_hash_chain() {
    let governed = Governed::new();
    let records = governed.append(5);
    assert_eq!(records[0].previous_pack_sha256, "0".repeat(64));
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.sequence, index as u64 + 1);
        if index > 0 {
            assert_eq!(record.previous_pack_sha256, records[index - 1].pack_sha256);
        }
        assert_eq!(
            record.pack_path,
            format!(
                "packs/2026/11/000000xx/{:08}-vpn-2.{}.json",
                index + 1,
                index + 1
            )
        );
    }
    // Linear history, rooted in an orphan commit, one record per commit.
    let log = git(governed.path(), &["log", "--format=%H %P", BRANCH]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines.last().unwrap().split(' ').count(),
        1,
        "root commit has no parent"
    );
    let message = git(governed.path(), &["log", "-1", "--format=%B", BRANCH]);
    assert!(
        message.starts_with("evidence: decision vpn-2.5 #5\n\n"),
        "{message}"
    );
    for trailer in [
        "Intent-Id: vpn-2.5",
        "Correlation-Id: corr-5",
        "Decision: ALLOW",
        &format!("Source-Commit: {:040x}", 5),
        &format!("Evidence-Sha256: {}", records[4].pack_sha256),
        "Evidence-Sequence: 5",
    ] {
        assert!(
            message.contains(trailer),
            "{trailer} missing from {message}"
        );
    }
    let tip = governed.branch().tip().unwrap().unwrap();
    assert_eq!(tip.sequence, 5);
    assert_eq!(tip.commit, records[4].commit);
}

#[test]
fn verify_passes_on_a_clean_branch() {
    let governed = Governed::new();
    let records = governed.append(4);
    let report = governed.verify(Some(records[2].expected_head()));
    assert!(report.ok, "{report}");
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.records_checked, 4);
    assert_eq!(report.head, Some(records[3].expected_head()));
    assert!(report.to_string().contains("4 records"), "{report}");
    let report = governed.verify(Some(records[3].expected_head()));
    assert!(report.ok, "{report}");
}

#[test]
fn verify_fails_when_a_new_commit_edits_a_pack() {
    let governed = Governed::new();
    let records = governed.append(5);
    let mut edited = governed.evidence_file(&records[2].pack_path);
    let position = edited
        .windows(5)
        .position(|window| window == b"ALLOW")
        .unwrap();
    edited[position..position + 5].copy_from_slice(b"DENY_");
    governed.commit_on_evidence(&[(&records[2].pack_path, &edited)], "fix typo");
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 6);
    assert_eq!(failure.path.as_deref(), Some(records[2].pack_path.as_str()));
    assert!(failure.reason.starts_with("modifies packs/"), "{failure}");
    assert_eq!(report.records_checked, 5);
}

#[test]
fn verify_fails_when_a_pack_is_edited_by_rewriting_history() {
    let governed = Governed::new();
    let records = governed.append(5);
    let target = &records[2].pack_path;
    governed.rebase_evidence(&format!(
        "sed -i '3a exec sed -i s/ALLOW/DENY_/ {target} && git commit -q -a --amend --no-edit'"
    ));
    assert_ne!(
        git(governed.path(), &["rev-parse", BRANCH]),
        records[4].commit,
        "history was rewritten"
    );
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 3, "{failure}");
    assert_eq!(failure.path.as_deref(), Some(target.as_str()));
    assert!(
        failure.reason.contains("signature does not verify"),
        "{failure}"
    );
    assert!(
        report
            .to_string()
            .contains(&format!("record #3 ({target}, commit ")),
        "{report}"
    );
}

#[test]
fn verify_fails_when_a_signature_is_replaced_by_one_from_another_key() {
    let governed = Governed::new();
    let records = governed.append(5);
    let other_key = SigningKey::generate_ephemeral().unwrap();
    let pack = governed.evidence_file(&records[2].pack_path);
    let original = String::from_utf8(governed.evidence_file(&records[2].signature_path)).unwrap();
    let trusted_comment = original
        .lines()
        .find_map(|line| line.strip_prefix("trusted comment: "))
        .unwrap();
    let forged = other_key.sign(&pack, trusted_comment, "forged").unwrap();
    let scratch = TempDir::new().unwrap();
    let forged_file = scratch.path().join("forged.minisig");
    fs::write(&forged_file, forged).unwrap();
    governed.rebase_evidence(&format!(
        "sed -i '3a exec cp {} {} && git commit -q -a --amend --no-edit'",
        forged_file.display(),
        records[2].signature_path
    ));
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 3, "{failure}");
    assert!(
        failure
            .reason
            .contains(&format!("made by key {}", other_key.key_id())),
        "{failure}"
    );
}

#[test]
fn verify_fails_when_a_record_is_deleted_from_history() {
    let governed = Governed::new();
    governed.append(5);
    governed.rebase_evidence("sed -i '3d'");
    assert_eq!(git(governed.path(), &["rev-list", "--count", BRANCH]), "4");
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 3, "{failure}");
    assert!(
        failure
            .path
            .as_deref()
            .unwrap()
            .contains("00000004-vpn-2.4.json"),
        "{failure}"
    );
    assert!(
        failure.reason.contains("sequence 4 at position 3"),
        "{failure}"
    );
    assert_eq!(report.records_checked, 2);
}

#[test]
fn verify_fails_when_two_records_are_reordered() {
    let governed = Governed::new();
    governed.append(5);
    governed.rebase_evidence("sed -i -e '3{h;d}' -e '4G'");
    let subjects = git(
        governed.path(),
        &["log", "--reverse", "--format=%s", BRANCH],
    );
    assert!(
        subjects.contains("#4\nevidence: decision vpn-2.3 #3"),
        "{subjects}"
    );
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 3, "{failure}");
    assert!(failure.reason.contains("reordered"), "{failure}");
}

#[test]
fn verify_detects_a_branch_rewritten_shorter_through_expected_head() {
    let governed = Governed::new();
    let records = governed.append(5);
    git(
        governed.path(),
        &["branch", "-f", BRANCH, &records[2].commit],
    );
    // On its own the shortened branch is a valid chain...
    let report = governed.verify(None);
    assert!(report.ok, "{report}");
    assert_eq!(report.records_checked, 3);
    // ...but not against the head seen before.
    let report = governed.verify(Some(records[4].expected_head()));
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 5);
    assert!(failure.reason.contains("records were dropped"), "{failure}");
    assert_eq!(
        report.to_string().lines().last().unwrap(),
        failure.to_string()
    );
}

#[test]
fn verify_detects_a_branch_rewritten_to_another_valid_chain_through_expected_head() {
    let governed = Governed::new();
    let records = governed.append(5);
    git(
        governed.path(),
        &["branch", "-f", BRANCH, &records[2].commit],
    );
    let branch = governed.branch();
    let mut replacement = decision_input(4);
    replacement.body = json!({"decision": "DENY"});
    branch.append(replacement, &governed.signer).unwrap();
    branch.append(decision_input(5), &governed.signer).unwrap();
    assert!(governed.verify(None).ok);
    let report = governed.verify(Some(records[4].expected_head()));
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 5);
    assert!(
        failure.reason.contains("history was rewritten"),
        "{failure}"
    );
}

#[test]
fn verify_fails_on_a_pack_signed_by_another_key() {
    let governed = Governed::new();
    governed.append(3);
    let intruder = SigningKey::generate_ephemeral().unwrap();
    governed
        .branch()
        .append(decision_input(4), &intruder)
        .unwrap();
    governed.append(1);
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 4, "{failure}");
    assert!(
        failure
            .reason
            .contains("signature does not verify with the given public key"),
        "{failure}"
    );
    assert_eq!(report.records_checked, 3);
}

#[test]
fn verify_fails_when_a_commit_adds_a_file_outside_packs() {
    let governed = Governed::new();
    governed.append(2);
    governed.commit_on_evidence(&[("README.md", b"hello\n")], "add readme");
    let report = governed.verify(None);
    let failure = failure_of(&report);
    assert_eq!(failure.sequence, 3);
    assert_eq!(failure.path.as_deref(), Some("README.md"));
    assert!(failure.reason.contains("outside packs/"), "{failure}");
}

#[test]
fn append_refuses_to_chain_onto_a_tampered_tip() {
    let governed = Governed::new();
    let records = governed.append(2);
    let mut edited = governed.evidence_file(&records[1].pack_path);
    edited.insert(1, b' ');
    // Rewrite the tip commit in place: same message, edited pack.
    git(
        governed.path(),
        &["branch", "-f", BRANCH, &records[0].commit],
    );
    governed.commit_on_evidence(
        &[
            (&records[1].pack_path, &edited),
            (
                &records[1].signature_path,
                &governed.evidence_file(&records[0].signature_path),
            ),
        ],
        &git(
            governed.path(),
            &["log", "-1", "--format=%B", &records[1].commit],
        ),
    );
    let error = governed
        .branch()
        .append(decision_input(3), &governed.signer)
        .unwrap_err();
    assert!(matches!(error, EvidenceError::CorruptTip { .. }), "{error}");
    assert!(error.to_string().contains("has sha256"), "{error}");
}

#[test]
fn append_never_touches_head_index_or_worktree() {
    let governed = Governed::new();
    let head_before = git(governed.path(), &["rev-parse", "HEAD"]);
    let index_before = fs::read(governed.path().join(".git/index")).unwrap();
    governed.append(3);
    assert_eq!(
        git(
            governed.path(),
            &["status", "--porcelain", "--untracked-files=all"]
        ),
        ""
    );
    assert_eq!(git(governed.path(), &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        git(governed.path(), &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
    assert_eq!(git(governed.path(), &["rev-parse", "main"]), head_before);
    assert_eq!(
        fs::read(governed.path().join(".git/index")).unwrap(),
        index_before
    );
    assert!(!governed.path().join("packs").exists());
    assert_eq!(
        git(
            governed.path(),
            &["branch", "--list", "--format=%(refname:short)"]
        ),
        "evidence\nmain"
    );
}

#[test]
fn open_refuses_main_master_and_the_checked_out_branch() {
    let governed = Governed::new();
    for name in ["main", "master", "bad..name"] {
        let error = EvidenceBranch::open(governed.path(), name).unwrap_err();
        assert!(
            matches!(error, EvidenceError::UnusableBranch { .. }),
            "{name}: {error}"
        );
    }
    git(governed.path(), &["checkout", "-q", "-b", "audit"]);
    let error = EvidenceBranch::open(governed.path(), "audit").unwrap_err();
    assert!(error.to_string().contains("HEAD"), "{error}");
}

#[test]
fn append_and_verify_work_on_a_bare_repository() {
    let governed = Governed::new();
    let bare = TempDir::new().unwrap();
    git(bare.path(), &["init", "-q", "--bare"]);
    let branch = EvidenceBranch::open(bare.path(), BRANCH).unwrap();
    for number in 1..=3 {
        branch
            .append(decision_input(number), &governed.signer)
            .unwrap();
    }
    let report = verify_branch(bare.path(), BRANCH, &governed.verifier, None).unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.records_checked, 3);
    assert_eq!(git(bare.path(), &["fsck", "--strict", "--no-progress"]), "");
}

#[test]
fn verify_reports_a_missing_branch_as_an_error() {
    let governed = Governed::new();
    let error = verify_branch(governed.path(), BRANCH, &governed.verifier, None).unwrap_err();
    assert!(
        matches!(error, EvidenceError::BranchNotFound { .. }),
        "{error}"
    );
}

#[test]
fn packs_validate_against_the_evidence_pack_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/evidence-pack.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let governed = Governed::new();
    let records = governed.append(2);
    for record in &records {
        let pack: serde_json::Value =
            serde_json::from_slice(&governed.evidence_file(&record.pack_path)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&pack)
            .map(|error| error.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let mut with_extra_member = pack.clone();
        with_extra_member["unexpected"] = json!(1);
        assert!(!validator.is_valid(&with_extra_member));
    }
}

#[test]
fn push_is_fast_forward_only_and_a_diverged_remote_is_push_rejected() {
    let remote = TempDir::new().unwrap();
    git(remote.path(), &["init", "-q", "--bare"]);
    let remote_path = remote.path().to_str().unwrap();
    let first = Governed::new();
    first.append(2);
    let pushed = first.branch().push(remote_path).unwrap();
    assert_eq!(git(remote.path(), &["rev-parse", BRANCH]), pushed.commit);

    // A second writer with the same key picks the branch up and appends.
    let second = Governed::new();
    let second_branch = second.branch();
    let fetched = second_branch.fetch(remote_path).unwrap();
    assert_eq!(
        fetched,
        FetchOutcome::FastForwarded {
            from: None,
            to: pushed.commit.clone()
        }
    );
    second_branch
        .append(decision_input(3), &first.signer)
        .unwrap();
    let remote_tip = second_branch.push(remote_path).unwrap().commit;

    // The first writer appended meanwhile: its push must not replace the remote's record.
    let first_branch = first.branch();
    first_branch
        .append(decision_input(30), &first.signer)
        .unwrap();
    let error = first_branch.push(remote_path).unwrap_err();
    assert!(
        matches!(error, EvidenceError::PushRejected { .. }),
        "{error}"
    );
    assert_eq!(git(remote.path(), &["rev-parse", BRANCH]), remote_tip);

    // Fetch says so, replay puts the local record after the remote's, push succeeds.
    let outcome = first_branch.fetch(remote_path).unwrap();
    let FetchOutcome::Diverged {
        remote: diverged_remote,
        ..
    } = outcome
    else {
        panic!("expected Diverged, got {outcome:?}");
    };
    assert_eq!(diverged_remote, remote_tip);
    let replayed = first_branch
        .replay_onto(&diverged_remote, &first.signer)
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].sequence, 4);
    assert_eq!(replayed[0].intent_id.as_deref(), Some("vpn-2.30"));
    first_branch.push(remote_path).unwrap();
    let report = verify_branch(remote.path(), BRANCH, &first.verifier, None).unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.records_checked, 4);
    assert_eq!(
        second_branch.fetch(remote_path).unwrap(),
        FetchOutcome::FastForwarded {
            from: Some(remote_tip),
            to: replayed[0].commit.clone()
        }
    );
    assert!(matches!(
        second_branch.fetch(remote_path).unwrap(),
        FetchOutcome::UpToDate { .. }
    ));
}

#[test]
fn fetch_through_a_named_remote_updates_its_tracking_branch() {
    let remote = TempDir::new().unwrap();
    git(remote.path(), &["init", "-q", "--bare"]);
    let writer = Governed::new();
    writer.append(2);
    writer
        .branch()
        .push(remote.path().to_str().unwrap())
        .unwrap();
    let reader = Governed::new();
    git(
        reader.path(),
        &["remote", "add", "origin", remote.path().to_str().unwrap()],
    );
    let reader_branch = reader.branch();
    assert!(matches!(
        reader_branch.fetch("origin").unwrap(),
        FetchOutcome::FastForwarded { .. }
    ));
    let report = verify_branch(
        reader.path(),
        "refs/remotes/origin/evidence",
        &writer.verifier,
        None,
    )
    .unwrap();
    assert!(report.ok, "{report}");
    reader_branch
        .append(decision_input(3), &writer.signer)
        .unwrap();
    assert!(matches!(
        reader_branch.fetch("origin").unwrap(),
        FetchOutcome::LocalAhead { .. }
    ));
}
