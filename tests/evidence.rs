//! Evidence branch, keys and verification against real parts: git
//! repositories made with the `git` CLI in temporary directories, history
//! rewritten with git commands, signatures cross-checked with the `minisign`
//! CLI, a bare remote reached by path.

#[path = "evidence/harness.rs"]
mod harness;
#[path = "evidence/keys.rs"]
mod keys;
#[path = "evidence/tamper.rs"]
mod tamper;

use std::fs;

use ringmaster::evidence::{
    AppendContext, EvidenceBranch, EvidenceError, FetchOutcome, verify_branch,
};
use serde_json::json;
use tempfile::TempDir;

use harness::{BRANCH, Governed, decision_input, git};

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
            .append(
                decision_input(number),
                &governed.signer,
                &AppendContext::default(),
            )
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
        .append(decision_input(3), &first.signer, &AppendContext::default())
        .unwrap();
    let remote_tip = second_branch.push(remote_path).unwrap().commit;

    // The first writer appended meanwhile: its push must not replace the remote's record.
    let first_branch = first.branch();
    first_branch
        .append(decision_input(30), &first.signer, &AppendContext::default())
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
        .append(decision_input(3), &writer.signer, &AppendContext::default())
        .unwrap();
    assert!(matches!(
        reader_branch.fetch("origin").unwrap(),
        FetchOutcome::LocalAhead { .. }
    ));
}
