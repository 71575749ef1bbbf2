//! Verification across chunk boundaries: the same branch verified with
//! every chunk size gives the same report, including when the hash link
//! that breaks is the one between two chunks.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use git2::{Oid, Signature, Time};
use serde_json::json;
use tempfile::TempDir;

use super::branch::{AppendContext, EvidenceBranch};
use super::keys::SigningKey;
use super::pack::{ChainPosition, EvidencePackInput, GitIdentity, RecordType, prepare_record};
use super::verify::{VerifyReport, verify_branch_in_chunks};

fn governed_repository() -> TempDir {
    let directory = TempDir::new().unwrap();
    let status = Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .current_dir(directory.path())
        .status()
        .unwrap();
    assert!(status.success());
    directory
}

fn input(number: u64) -> EvidencePackInput {
    let created_at = DateTime::parse_from_rfc3339("2026-11-03T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(number as i64);
    let identity = GitIdentity {
        name: "Alice".to_string(),
        email: "alice@example.com".to_string(),
        time: created_at.fixed_offset(),
    };
    EvidencePackInput {
        record_type: RecordType::GateResult,
        intent_id: Some(format!("intent-{number}")),
        correlation_id: format!("corr-{number}"),
        source_commit: format!("{number:040x}"),
        source_parent: None,
        author: identity.clone(),
        committer: identity,
        created_at,
        body: json!({"gate": "success_rate", "passed": true}),
    }
}

/// Commits, as record `sequence`, a correctly signed pack whose
/// `previous_pack_sha256` does not match the previous pack.
fn append_record_with_a_broken_link(branch: &EvidenceBranch, sequence: u64, signer: &SigningKey) {
    let position = ChainPosition {
        sequence,
        previous_pack_sha256: "ab".repeat(32),
    };
    let record = prepare_record(input(sequence), &position, signer).unwrap();
    let repository = &branch.repository;
    let parent_id = branch.tip_commit().unwrap().unwrap();
    let parent = repository.find_commit(parent_id).unwrap();
    let pack_blob = repository.blob(&record.pack_bytes).unwrap();
    let signature_blob = repository.blob(record.signature.as_bytes()).unwrap();
    let mut directories: Vec<&str> = record.pack_path.split('/').collect();
    let pack_name = directories.pop().unwrap();
    let signature_name = format!("{pack_name}.minisig");
    let files = [
        (pack_name, pack_blob),
        (signature_name.as_str(), signature_blob),
    ];
    let tree_id = branch
        .tree_with_files(
            Some(&parent.tree().unwrap()),
            &directories,
            &files,
            &mut Vec::new(),
        )
        .unwrap();
    let tree = repository.find_tree(tree_id).unwrap();
    let identity = Signature::new("ringmaster", "ringmaster@localhost", &Time::new(0, 0)).unwrap();
    let commit: Oid = repository
        .commit(
            None,
            &identity,
            &identity,
            &record.commit_message,
            &tree,
            &[&parent],
        )
        .unwrap();
    branch.move_branch(Some(parent_id), commit, "test").unwrap();
}

fn verify_with_every_chunk_size(
    path: &Path,
    signer: &SigningKey,
    records: usize,
) -> Vec<VerifyReport> {
    (1..=records + 1)
        .map(|chunk_size| {
            verify_branch_in_chunks(path, "evidence", &signer.verifying_key(), None, chunk_size)
                .unwrap()
        })
        .collect()
}

#[test]
fn every_chunk_size_verifies_a_clean_branch_the_same_way() {
    let repository = governed_repository();
    let signer = SigningKey::generate_ephemeral().unwrap();
    let branch = EvidenceBranch::open(repository.path(), "evidence").unwrap();
    for number in 1..=7 {
        branch
            .append(input(number), &signer, &AppendContext::default())
            .unwrap();
    }
    let reports = verify_with_every_chunk_size(repository.path(), &signer, 7);
    for report in &reports {
        assert!(report.ok, "{report}");
        assert_eq!(report.records_checked, 7);
        assert_eq!(report.head, reports[0].head);
    }
}

#[test]
fn a_broken_hash_link_is_found_at_and_between_chunk_boundaries() {
    let repository = governed_repository();
    let signer = SigningKey::generate_ephemeral().unwrap();
    let branch = EvidenceBranch::open(repository.path(), "evidence").unwrap();
    for number in 1..=4 {
        branch
            .append(input(number), &signer, &AppendContext::default())
            .unwrap();
    }
    append_record_with_a_broken_link(&branch, 5, &signer);
    for number in 6..=8 {
        branch
            .append(input(number), &signer, &AppendContext::default())
            .unwrap();
    }
    append_record_with_a_broken_link(&branch, 9, &signer);
    for report in verify_with_every_chunk_size(repository.path(), &signer, 9) {
        let failure = report
            .first_failure
            .as_ref()
            .expect("the broken link is found");
        assert_eq!(failure.sequence, 5, "{report}");
        assert!(
            failure.reason.contains("the hash chain is broken"),
            "{report}"
        );
        assert!(failure.reason.contains(&"ab".repeat(32)), "{report}");
        assert_eq!(report.records_checked, 4);
    }
}
