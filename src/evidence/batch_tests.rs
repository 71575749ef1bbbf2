//! Batch commits: written, verified (every chunk size), read back through
//! the reader in both layouts, and every kind of tampering inside a batch
//! named by `verify`.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use git2::Oid;
use serde_json::json;
use tempfile::TempDir;

use super::branch::{AppendContext, EvidenceBranch};
use super::keys::SigningKey;
use super::pack::{EvidencePackInput, GitIdentity, RecordType};
use super::tree_diff::TreeCache;
use super::verify::{ExpectedHead, VerifyReport, verify_branch_in_chunks};
use super::{EvidenceError, sha256_hex};

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
    // Spread over two months and many buckets of 100.
    let created_at = DateTime::parse_from_rfc3339("2026-11-30T23:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(number as i64);
    let identity = GitIdentity {
        name: "Alice".to_string(),
        email: "alice@example.com".to_string(),
        time: created_at.fixed_offset(),
    };
    EvidencePackInput {
        record_type: RecordType::Decision,
        intent_id: Some(format!("intent-{number}")),
        correlation_id: format!("corr-{number}"),
        source_commit: format!("{:040x}", 7),
        source_parent: None,
        author: identity.clone(),
        committer: identity,
        created_at,
        body: json!({"decision": "ALLOW", "number": number}),
    }
}

fn verify(path: &Path, signer: &SigningKey, chunk_size: usize) -> VerifyReport {
    verify_branch_in_chunks(path, "evidence", &signer.verifying_key(), None, chunk_size).unwrap()
}

/// 3 one-record commits, a batch of 150 (#4..#153), one more record
/// (#154), a batch of 2 (#155..#156).
fn mixed_branch(signer: &SigningKey) -> (TempDir, EvidenceBranch) {
    let repository = governed_repository();
    let branch = EvidenceBranch::open(repository.path(), "evidence").unwrap();
    let context = AppendContext::default();
    for number in 1..=3 {
        branch.append(input(number), signer, &context).unwrap();
    }
    let batch = branch
        .append_batch((4..=153).map(input).collect(), signer, &context)
        .unwrap();
    assert_eq!(batch.len(), 150);
    assert!(batch.iter().all(|record| record.commit == batch[0].commit));
    assert_eq!(
        (batch[0].sequence, batch[149].sequence),
        (4, 153),
        "consecutive sequences"
    );
    branch.append(input(154), signer, &context).unwrap();
    branch
        .append_batch(vec![input(155), input(156)], signer, &context)
        .unwrap();
    (repository, branch)
}

#[test]
fn a_mixed_branch_verifies_with_every_chunk_size_and_reads_back() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = mixed_branch(&signer);
    for chunk_size in 1..=7 {
        let report = verify(repository.path(), &signer, chunk_size);
        assert!(report.ok, "{report}");
        assert_eq!(report.records_checked, 156);
        assert_eq!(report.head.as_ref().unwrap().sequence, 156);
    }
    let tip = branch.tip().unwrap().unwrap();
    assert_eq!(tip.sequence, 156);

    let all = branch.records_before(None, 1000).unwrap();
    let sequences: Vec<u64> = all.iter().map(|record| record.tip.sequence).collect();
    assert_eq!(sequences, (1..=156).rev().collect::<Vec<_>>());
    for record in &all {
        assert_eq!(record.pack.sequence, record.tip.sequence);
    }
    let page: Vec<u64> = branch
        .records_before(Some(100), 5)
        .unwrap()
        .iter()
        .map(|record| record.tip.sequence)
        .collect();
    assert_eq!(page, vec![99, 98, 97, 96, 95]);

    for sequence in [1, 4, 77, 153, 154, 156] {
        let files = branch.record_files(sequence).unwrap().unwrap();
        assert_eq!(files.tip.sequence, sequence);
        assert_eq!(sha256_hex(&files.pack), files.tip.pack_sha256);
        let comment = signer
            .verifying_key()
            .verify(&files.pack, std::str::from_utf8(&files.signature).unwrap())
            .unwrap();
        assert!(comment.starts_with(&format!("ringmaster seq={sequence} ")));
    }
    assert!(branch.record_files(157).unwrap().is_none());
}

#[test]
fn the_writer_checks_a_known_head_inside_a_batch() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (_repository, branch) = mixed_branch(&signer);
    let record_77 = branch.record_files(77).unwrap().unwrap();
    let holds = AppendContext {
        known_head: Some(ExpectedHead {
            sequence: 77,
            pack_sha256: record_77.tip.pack_sha256.clone(),
        }),
        event_chain: None,
    };
    branch.append(input(157), &signer, &holds).unwrap();
    let forged = AppendContext {
        known_head: Some(ExpectedHead {
            sequence: 77,
            pack_sha256: "cd".repeat(32),
        }),
        event_chain: None,
    };
    let refused = branch.append_batch(vec![input(158), input(159)], &signer, &forged);
    assert!(
        matches!(refused, Err(EvidenceError::Rewritten { sequence: 77, .. })),
        "{refused:?}"
    );
    assert_eq!(branch.tip().unwrap().unwrap().sequence, 157);
}

/// Replaces the tip commit (a batch) by one whose added files are
/// `change(files)` and whose message is `message(original)`.
fn rewrite_tip_batch(
    branch: &EvidenceBranch,
    change: impl FnOnce(&git2::Repository, &mut Vec<(String, Oid)>),
    message: impl FnOnce(&str) -> String,
) {
    let repository = &branch.repository;
    let tip = branch.tip_commit().unwrap().unwrap();
    let commit = repository.find_commit(tip).unwrap();
    let parent = commit.parent(0).unwrap();
    let mut trees = TreeCache::new(repository);
    let added = trees
        .added_files(Some(parent.tree_id()), commit.tree_id())
        .unwrap();
    let mut files: Vec<(String, Oid)> = added
        .into_iter()
        .map(|file| (file.path, file.blob))
        .collect();
    change(repository, &mut files);
    let split: Vec<(Vec<&str>, Oid)> = files
        .iter()
        .map(|(path, blob)| (path.split('/').collect(), *blob))
        .collect();
    let references: Vec<(&[&str], Oid)> = split
        .iter()
        .map(|(components, blob)| (components.as_slice(), *blob))
        .collect();
    let tree_id = branch
        .tree_with_many_files(
            repository,
            Some(&parent.tree().unwrap()),
            &references,
            "",
            &mut Vec::new(),
        )
        .unwrap();
    let tree = repository.find_tree(tree_id).unwrap();
    let new_message = message(commit.message().unwrap());
    let new_commit = repository
        .commit(
            None,
            &commit.author(),
            &commit.committer(),
            &new_message,
            &tree,
            &[&parent],
        )
        .unwrap();
    repository
        .reference("refs/heads/evidence", new_commit, true, "tamper")
        .unwrap();
}

/// A branch of 5 one-record commits and a batch #6..#45.
fn batch_at_tip(signer: &SigningKey) -> (TempDir, EvidenceBranch) {
    let repository = governed_repository();
    let branch = EvidenceBranch::open(repository.path(), "evidence").unwrap();
    for number in 1..=5 {
        branch
            .append(input(number), signer, &AppendContext::default())
            .unwrap();
    }
    branch
        .append_batch(
            (6..=45).map(input).collect(),
            signer,
            &AppendContext::default(),
        )
        .unwrap();
    assert!(verify(repository.path(), signer, 512).ok);
    (repository, branch)
}

fn assert_fails_at(
    repository: &Path,
    signer: &SigningKey,
    sequence: u64,
    reason_contains: &str,
) -> VerifyReport {
    for chunk_size in [1, 2, 512] {
        let report = verify(repository, signer, chunk_size);
        let failure = report.first_failure.as_ref().expect("tampering is found");
        assert!(!report.ok);
        assert_eq!(failure.sequence, sequence, "{report}");
        assert!(failure.reason.contains(reason_contains), "{report}");
        assert_eq!(report.records_checked, sequence - 1, "{report}");
    }
    verify(repository, signer, 512)
}

fn keep_message(message: &str) -> String {
    message.to_string()
}

#[test]
fn an_edited_pack_inside_a_batch_is_named() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = batch_at_tip(&signer);
    rewrite_tip_batch(
        &branch,
        |repository, files| {
            let (_, blob) = files
                .iter_mut()
                .find(|(path, _)| path.contains("/00000020-") && path.ends_with(".json"))
                .unwrap();
            let content = repository.find_blob(*blob).unwrap().content().to_vec();
            let edited = String::from_utf8(content)
                .unwrap()
                .replace("\"ALLOW\"", "\"DENY\"");
            *blob = repository.blob(edited.as_bytes()).unwrap();
        },
        keep_message,
    );
    assert_fails_at(repository.path(), &signer, 20, "");
}

#[test]
fn a_record_removed_from_a_batch_is_named() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = batch_at_tip(&signer);
    rewrite_tip_batch(
        &branch,
        |_, files| files.retain(|(path, _)| !path.contains("/00000030-")),
        keep_message,
    );
    assert_fails_at(
        repository.path(),
        &signer,
        30,
        "removed, inserted or reordered",
    );
}

#[test]
fn a_signature_moved_to_another_record_of_the_batch_is_named() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = batch_at_tip(&signer);
    rewrite_tip_batch(
        &branch,
        |_, files| {
            let signature_of = |files: &Vec<(String, Oid)>, number: &str| {
                files
                    .iter()
                    .position(|(path, _)| path.contains(number) && path.ends_with(".minisig"))
                    .unwrap()
            };
            let (a, b) = (
                signature_of(files, "/00000011-"),
                signature_of(files, "/00000012-"),
            );
            let blob_a = files[a].1;
            files[a].1 = files[b].1;
            files[b].1 = blob_a;
        },
        keep_message,
    );
    assert_fails_at(repository.path(), &signer, 11, "");
}

#[test]
fn a_batch_message_that_lies_about_its_records_is_named() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = batch_at_tip(&signer);
    rewrite_tip_batch(
        &branch,
        |_, _| {},
        |message| message.replace("Evidence-Records: 40", "Evidence-Records: 39"),
    );
    assert_fails_at(
        repository.path(),
        &signer,
        6,
        "commit message does not match",
    );
}

#[test]
fn an_extra_file_in_a_batch_is_named() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = batch_at_tip(&signer);
    rewrite_tip_batch(
        &branch,
        |repository, files| {
            let blob = repository.blob(b"not evidence").unwrap();
            files.push(("packs/2026/12/notes.txt".to_string(), blob));
        },
        keep_message,
    );
    assert_fails_at(repository.path(), &signer, 6, "notes.txt");
}

#[test]
fn a_record_of_a_batch_dropped_by_a_rewrite_is_caught_against_the_expected_head() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let (repository, branch) = batch_at_tip(&signer);
    let head = verify(repository.path(), &signer, 512).head.unwrap();
    assert_eq!(head.sequence, 45);
    // Rewind the branch to before the batch: every record of it is gone.
    let tip = branch.tip_commit().unwrap().unwrap();
    let parent = branch
        .repository
        .find_commit(tip)
        .unwrap()
        .parent_id(0)
        .unwrap();
    branch
        .repository
        .reference("refs/heads/evidence", parent, true, "rewind")
        .unwrap();
    let report = verify_branch_in_chunks(
        repository.path(),
        "evidence",
        &signer.verifying_key(),
        Some(head),
        512,
    )
    .unwrap();
    assert!(!report.ok);
    assert!(
        report
            .first_failure
            .as_ref()
            .unwrap()
            .reason
            .contains("records were dropped"),
        "{report}"
    );
}

#[test]
fn a_bundle_of_a_mixed_branch_exports_and_verifies() {
    use super::bundle::{BundleFilter, ExportOptions, export_bundle, verify_bundle};
    use super::keys::{VerifyingKey, generate_keypair};
    let keys = TempDir::new().unwrap();
    generate_keypair(keys.path(), None, false).unwrap();
    let signer = SigningKey::load(&keys.path().join("ringmaster.key"), None).unwrap();
    let (_repository, branch) = mixed_branch(&signer);
    let out = keys.path().join("bundle.tar.gz");
    let public_key = keys.path().join("ringmaster.pub");
    let options = ExportOptions {
        filter: BundleFilter::default(),
        exported_by: "test".into(),
        exported_at: Utc::now(),
        public_key: &public_key,
        store: None,
    };
    let summary = export_bundle(&branch, &options, &out, &mut |_| {}).unwrap();
    assert_eq!(summary.records, 156);
    let report = verify_bundle(&out, &VerifyingKey::load(&public_key).unwrap()).unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.records, 156);
}

/// A batch's records are byte for byte the records made one at a time
/// (same bytes, hashes, signed comments and commit messages), though the batch
/// keeps no bodies (issue 17: a batch holds each body only while its bytes
/// are made).
#[test]
fn a_batch_prepares_the_records_one_at_a_time_would_without_their_bodies() {
    use super::pack::{ChainPosition, prepare_anchored_record, prepare_anchored_records};
    let signer = SigningKey::generate_ephemeral().unwrap();
    let batch = prepare_anchored_records(
        (1..=70).map(input),
        &ChainPosition::genesis(),
        None,
        &signer,
    )
    .unwrap();
    assert_eq!(batch.len(), 70);
    let mut position = ChainPosition::genesis();
    for (number, batched) in (1..=70).zip(&batch) {
        let single = prepare_anchored_record(input(number), &position, None, &signer).unwrap();
        assert_eq!(batched.pack_bytes, single.pack_bytes, "record {number}");
        assert_eq!(batched.pack_sha256, single.pack_sha256);
        // Signing is randomised; what is signed (the trusted comment) is the same.
        assert_eq!(
            batched.signature.lines().nth(2),
            single.signature.lines().nth(2)
        );
        assert_eq!(batched.pack_path, single.pack_path);
        assert_eq!(batched.commit_message, single.commit_message);
        assert!(batched.commit_message.contains("Decision: ALLOW"));
        assert_eq!(single.pack.body, input(number).body);
        assert_eq!(batched.pack.body, serde_json::Value::Null);
        position = ChainPosition {
            sequence: single.pack.sequence + 1,
            previous_pack_sha256: single.pack_sha256,
        };
    }
}

/// Inputs made only as the batch reads them commit exactly what the same
/// inputs in a vector commit: the same records in the same commit.
#[test]
fn a_batch_read_from_a_lazy_iterator_commits_what_a_vector_would() {
    let signer = SigningKey::generate_ephemeral().unwrap();
    let context = AppendContext::default();
    let from_vector = governed_repository();
    let from_iterator = governed_repository();
    let vector = EvidenceBranch::open(from_vector.path(), "evidence")
        .unwrap()
        .append_batch((1..=40).map(input).collect::<Vec<_>>(), &signer, &context)
        .unwrap();
    let made = std::cell::Cell::new(0);
    let lazy = EvidenceBranch::open(from_iterator.path(), "evidence")
        .unwrap()
        .append_batch_from(
            (1u32..41).map(|number| {
                made.set(made.get() + 1);
                input(u64::from(number))
            }),
            &signer,
            &context,
        )
        .unwrap();
    assert_eq!(made.get(), 40, "every input is read once");
    assert_eq!(vector.len(), 40);
    for (from_vector, lazy) in vector.iter().zip(&lazy) {
        assert_eq!(from_vector.pack_sha256, lazy.pack_sha256);
        assert_eq!(from_vector.pack_path, lazy.pack_path);
        assert_eq!(from_vector.sequence, lazy.sequence);
    }
}

/// The pack a batch streams is the one its objects made in one buffer
/// (`encode_pack`, how batches were written before): every object, however
/// large or empty, compressed alike, the same header and the same trailer.
#[test]
fn a_streamed_pack_is_the_pack_made_in_one_buffer() {
    use super::batch::{PackSpool, encode_pack};
    use git2::ObjectType;
    // Bytes that compress badly, so entries cross the spool's chunks.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let text = "ringmaster evidence ".repeat(5_000);
    let objects: Vec<(ObjectType, &[u8])> = vec![
        (ObjectType::Blob, b""),
        (ObjectType::Blob, b"x"),
        (ObjectType::Blob, &noise),
        (ObjectType::Blob, text.as_bytes()),
        (ObjectType::Blob, &noise[..15]),
        (ObjectType::Blob, &noise[..16]),
        (ObjectType::Blob, &noise[..2048]),
        (ObjectType::Tree, &noise[..70_000]),
        (ObjectType::Commit, b"tree 0\n\nmessage\n"),
    ];
    for count in [1, 2, objects.len()] {
        let mut spool = PackSpool::new();
        for (kind, data) in &objects[..count] {
            spool.push(*kind, data).unwrap();
        }
        let mut streamed = Vec::new();
        let trailer = spool.write_to(&mut streamed).unwrap();
        let whole = encode_pack(&objects[..count]).unwrap();
        assert_eq!(streamed, whole, "{count} objects");
        assert_eq!(&trailer[..], &whole[whole.len() - 20..]);
    }
}

/// The trees written from hashed blob ids alone are the trees libgit2's
/// tree builder writes from blobs in the repository, names that sort
/// differently as files and as directories included; and a file that would
/// replace anything is refused with the same error.
#[test]
fn trees_of_hashed_blobs_are_the_trees_the_tree_builder_writes() {
    use git2::{ObjectType, Repository};
    let directory = governed_repository();
    let branch = EvidenceBranch::open(directory.path(), "evidence").unwrap();
    let repository = &branch.repository;
    let split = |files: &[(&'static str, Oid)]| -> Vec<(Vec<&'static str>, Oid)> {
        files
            .iter()
            .map(|(path, blob)| (path.split('/').collect(), *blob))
            .collect()
    };
    fn references<'a>(split: &'a [(Vec<&'static str>, Oid)]) -> Vec<(&'a [&'static str], Oid)> {
        split
            .iter()
            .map(|(components, blob)| (components.as_slice(), *blob))
            .collect()
    }
    let base_files: Vec<(&str, Oid)> = ["a.b", "a/x", "a-", "a0", "b/c/d", "z", "packs/2026/x"]
        .into_iter()
        .map(|path| (path, repository.blob(path.as_bytes()).unwrap()))
        .collect();
    let base_split = split(&base_files);
    let base_id = branch
        .tree_with_many_files(
            repository,
            None,
            &references(&base_split),
            "",
            &mut Vec::new(),
        )
        .unwrap();
    let base = repository.find_tree(base_id).unwrap();

    let new_paths = [
        "a/y",
        "a.c",
        "a/b",
        "ab/c",
        "a/x.json",
        "a/x.json.minisig",
        "b/c/e",
        "b.d/f",
        "b/c.d",
        "c",
        "packs/2026/11/000000xx/00000001-a.json",
        "packs/2026/11/000000xx/00000001-a.json.minisig",
        "packs/2026/12/000001xx/00000100-b.json",
    ];
    let content = |path: &str| format!("new {path}");
    let hashed: Vec<(&str, Oid)> = new_paths
        .iter()
        .map(|path| {
            let id = Oid::hash_object(ObjectType::Blob, content(path).as_bytes()).unwrap();
            assert!(!repository.odb().unwrap().exists(id), "not written yet");
            (*path, id)
        })
        .collect();
    let hashed_split = split(&hashed);
    // Written the way a batch writes them: trees to memory, blobs nowhere.
    let scratch = Repository::open(repository.path()).unwrap();
    let odb = scratch.odb().unwrap();
    let _mempack = odb.add_new_mempack_backend(1000).unwrap();
    let scratch_base = scratch.find_tree(base_id).unwrap();
    let mut ours = Vec::new();
    let our_root = branch
        .tree_of_new_files(
            &scratch,
            &odb,
            Some(&scratch_base),
            &references(&hashed_split),
            "",
            &mut ours,
        )
        .unwrap();

    for path in new_paths {
        repository.blob(content(path).as_bytes()).unwrap();
    }
    let mut theirs = Vec::new();
    let their_root = branch
        .tree_with_many_files(
            repository,
            Some(&base),
            &references(&hashed_split),
            "",
            &mut theirs,
        )
        .unwrap();
    assert_eq!(our_root, their_root);
    assert_eq!(ours, theirs, "the same trees, written in the same order");

    for conflicting in ["z", "a/x", "b/c", "z/q", "packs/2026"] {
        let files = split(&[(conflicting, hashed[0].1)]);
        let ours = branch
            .tree_of_new_files(
                &scratch,
                &odb,
                Some(&scratch_base),
                &references(&files),
                "",
                &mut Vec::new(),
            )
            .unwrap_err();
        let theirs = branch
            .tree_with_many_files(
                repository,
                Some(&base),
                &references(&files),
                "",
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(ours.to_string(), theirs.to_string(), "{conflicting}");
        assert!(ours.to_string().contains("already exists"), "{ours}");
    }
}

/// The pack a batch commit is stored in is byte for byte the pack of its
/// objects made in one buffer, in the order batches have always used: each
/// record's pack and signature blobs in sequence order, the new trees in
/// the order of their ids, the commit last (so the pack has the name it
/// always had); and its tree is the tree libgit2's builder makes.
#[test]
fn a_batch_is_stored_in_the_pack_its_objects_always_made() {
    use super::batch::encode_pack;
    use git2::ObjectType;
    let signer = SigningKey::generate_ephemeral().unwrap();
    let directory = governed_repository();
    let branch = EvidenceBranch::open(directory.path(), "evidence").unwrap();
    let context = AppendContext::default();
    let genesis = branch
        .append_batch(vec![input(1), input(2)], &signer, &context)
        .unwrap();
    branch.append(input(3), &signer, &context).unwrap();
    // Spans two months and many buckets of 100.
    let batch = branch
        .append_batch((4..=153).map(input).collect(), &signer, &context)
        .unwrap();
    assert!(verify(directory.path(), &signer, 512).ok);
    let repository = &branch.repository;
    for records in [genesis, batch] {
        let commit = repository
            .find_commit(Oid::from_str(&records[0].commit).unwrap())
            .unwrap();
        let tree = commit.tree().unwrap();
        let blob_at = |path: &str| tree.get_path(Path::new(path)).unwrap().id();
        let mut blobs = Vec::new();
        let mut files = Vec::new();
        for record in &records {
            for path in [&record.pack_path, &record.signature_path] {
                blobs.push(repository.find_blob(blob_at(path)).unwrap());
                files.push((path.split('/').collect::<Vec<_>>(), blob_at(path)));
            }
        }
        let references: Vec<(&[&str], Oid)> = files
            .iter()
            .map(|(components, blob)| (components.as_slice(), *blob))
            .collect();
        let parent_tree = commit.parent(0).ok().map(|parent| parent.tree().unwrap());
        let mut trees = Vec::new();
        let tree_id = branch
            .tree_with_many_files(
                repository,
                parent_tree.as_ref(),
                &references,
                "",
                &mut trees,
            )
            .unwrap();
        assert_eq!(tree_id, commit.tree_id());
        trees.sort();
        trees.dedup();
        let odb = repository.odb().unwrap();
        let raw: Vec<_> = trees
            .iter()
            .chain(std::iter::once(&commit.id()))
            .map(|id| odb.read(*id).unwrap())
            .collect();
        let mut objects: Vec<(ObjectType, &[u8])> = blobs
            .iter()
            .map(|blob| (ObjectType::Blob, blob.content()))
            .collect();
        objects.extend(raw.iter().map(|object| (object.kind(), object.data())));
        let expected = encode_pack(&objects).unwrap();
        let name = hex::encode(&expected[expected.len() - 20..]);
        let stored = std::fs::read(
            repository
                .path()
                .join(format!("objects/pack/pack-{name}.pack")),
        )
        .unwrap();
        assert!(
            stored == expected,
            "pack-{name}.pack is the pack made in one buffer"
        );
    }
}
