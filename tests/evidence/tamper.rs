//! Tampering with the evidence branch through git commands: each case
//! must make verification fail and name the record.

use std::fs;

use ringmaster::evidence::{AppendContext, EvidenceError, SigningKey};
use serde_json::json;
use tempfile::TempDir;

use super::harness::{BRANCH, Governed, decision_input, failure_of, git};

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
    branch
        .append(replacement, &governed.signer, &AppendContext::default())
        .unwrap();
    branch
        .append(
            decision_input(5),
            &governed.signer,
            &AppendContext::default(),
        )
        .unwrap();
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
        .append(decision_input(4), &intruder, &AppendContext::default())
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
        .append(
            decision_input(3),
            &governed.signer,
            &AppendContext::default(),
        )
        .unwrap_err();
    assert!(matches!(error, EvidenceError::CorruptTip { .. }), "{error}");
    assert!(error.to_string().contains("has sha256"), "{error}");
}
