//! `verify`: walks an evidence branch from its root commit and checks every
//! rule of the format, naming the first record that breaks one.
//!
//! Per record, in this order: history is linear; the commit only adds
//! files, exactly one `packs/….json` and its `.minisig`; the pack is
//! canonical JSON of the pack format; its sequence is its position (1, 2,
//! 3…); its `previous_pack_sha256` is the previous pack's SHA-256; it sits
//! at the path its content implies; the signature verifies with the given
//! public key; the trusted comment binds sequence, pack hash, previous hash
//! and source commit; the pack id is the one derived from the content; the
//! commit message and trailers are the ones the pack implies. With an
//! expected head, the branch must still hold that record with that hash.
//!
//! Reading git is sequential (one walker); the per-record checks — mostly
//! the two Ed25519 verifications — run on every core.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, PoisonError};

use git2::{ErrorCode, Oid, Repository};
use serde_json::Value;

use super::branch::short;
use super::canonical::{canonical_json, sha256_hex};
use super::keys::VerifyingKey;
use super::pack::{
    EvidencePack, GENESIS_PREVIOUS_PACK_SHA256, PACK_FORMAT, commit_message, pack_id_of, pack_path,
    trusted_comment,
};
use super::tree_diff::TreeCache;
use super::{EvidenceError, Result, git_context};

/// A record the branch must still contain (as last seen by the caller):
/// verification fails if it was dropped or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    pub sequence: u64,
    pub pack_sha256: String,
}

/// The first rule broken, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The record's position on the branch (its expected sequence).
    pub sequence: u64,
    /// The commit at fault, when there is one.
    pub commit: Option<String>,
    /// The file at fault, when there is one.
    pub path: Option<String>,
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "record #{}", self.sequence)?;
        match (&self.path, &self.commit) {
            (Some(path), Some(commit)) => write!(formatter, " ({path}, commit {})", short(commit))?,
            (None, Some(commit)) => write!(formatter, " (commit {})", short(commit))?,
            (Some(path), None) => write!(formatter, " ({path})")?,
            (None, None) => {}
        }
        write!(formatter, ": {}", self.reason)
    }
}

/// The outcome of [`verify_branch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub branch: String,
    /// The commit the branch pointed to.
    pub tip_commit: String,
    /// Records that passed every check before the first failure.
    pub records_checked: u64,
    pub ok: bool,
    /// The last record, when everything verified: keep it and pass it as
    /// `expected_head` next time.
    pub head: Option<ExpectedHead>,
    pub first_failure: Option<Failure>,
}

impl VerifyReport {
    /// 0 when the branch verified, 1 when it did not.
    pub fn exit_code(&self) -> u8 {
        if self.ok { 0 } else { 1 }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.head, &self.first_failure) {
            (Some(head), None) => write!(
                formatter,
                "evidence branch {:?} verified: {} records, head #{} sha256 {} (commit {})",
                self.branch,
                self.records_checked,
                head.sequence,
                head.pack_sha256,
                short(&self.tip_commit)
            ),
            (_, Some(failure)) => write!(
                formatter,
                "evidence branch {:?} FAILED verification after {} good records\n{failure}",
                self.branch, self.records_checked
            ),
            (None, None) => write!(formatter, "evidence branch {:?}: no records", self.branch),
        }
    }
}

/// One record as read from git, for the per-record checks.
struct RecordCandidate {
    position: u64,
    commit: String,
    commit_message: String,
    pack_path: String,
    pack_bytes: Vec<u8>,
    signature_bytes: Vec<u8>,
    pack_sha256: String,
    previous_pack_sha256: String,
}

/// The earliest failure found so far, shared by walker and checkers.
struct FirstFailure {
    lowest_sequence: AtomicU64,
    failure: Mutex<Option<Failure>>,
}

impl FirstFailure {
    fn record(&self, failure: Failure) {
        self.lowest_sequence
            .fetch_min(failure.sequence, Ordering::SeqCst);
        let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_none_or(|current| failure.sequence < current.sequence)
        {
            *slot = Some(failure);
        }
    }

    fn is_before(&self, position: u64) -> bool {
        self.lowest_sequence.load(Ordering::SeqCst) < position
    }
}

/// How many records the walker hands to a checker at once.
const BATCH_SIZE: usize = 64;

/// Verifies the evidence branch `branch` (a branch name, or a full
/// reference such as `refs/remotes/origin/evidence`) of the repository at
/// `repository_path` against `key`. Integrity problems are reported in the
/// [`VerifyReport`]; `Err` means verification could not run at all.
pub fn verify_branch(
    repository_path: &Path,
    branch: &str,
    key: &VerifyingKey,
    expected_head: Option<ExpectedHead>,
) -> Result<VerifyReport> {
    let repository = Repository::open(repository_path).map_err(git_context(format!(
        "cannot open repository {}",
        repository_path.display()
    )))?;
    let reference_name = if branch.starts_with("refs/") {
        branch.to_string()
    } else {
        format!("refs/heads/{branch}")
    };
    let tip = match repository.find_reference(&reference_name) {
        Ok(reference) => reference
            .resolve()
            .ok()
            .and_then(|reference| reference.target()),
        Err(error) if error.code() == ErrorCode::NotFound => None,
        Err(error) => return Err(git_context(format!("cannot read {reference_name}"))(error)),
    }
    .ok_or_else(|| EvidenceError::BranchNotFound {
        branch: branch.to_string(),
        repository: repository_path.to_path_buf(),
    })?;
    let chain = first_parent_chain(&repository, tip)?;

    let first_failure = FirstFailure {
        lowest_sequence: AtomicU64::new(u64::MAX),
        failure: Mutex::new(None),
    };
    let checker_count = std::thread::available_parallelism().map_or(2, usize::from);
    let (sender, receiver) = sync_channel::<Vec<RecordCandidate>>(checker_count * 4);
    let receiver = Mutex::new(receiver);
    let walk = std::thread::scope(|scope| {
        for _ in 0..checker_count {
            scope.spawn(|| {
                loop {
                    let batch = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok(batch) = batch else { break };
                    for candidate in batch {
                        if first_failure.is_before(candidate.position) {
                            continue;
                        }
                        if let Err(reason) = check_record(&candidate, key) {
                            first_failure.record(Failure {
                                sequence: candidate.position,
                                commit: Some(candidate.commit),
                                path: Some(candidate.pack_path),
                                reason,
                            });
                        }
                    }
                }
            });
        }
        let walk = walk_records(
            &repository,
            &chain,
            expected_head.as_ref(),
            &first_failure,
            |batch| {
                // A send fails only when every checker has stopped, which they
                // do only once the channel closes.
                let _ = sender.send(batch);
            },
        );
        drop(sender);
        walk
    });

    if let (Some(expected), Some(reached)) = (&expected_head, &walk.expected_record) {
        if reached.pack_sha256 != expected.pack_sha256 {
            first_failure.record(Failure {
                sequence: expected.sequence,
                commit: Some(reached.commit.clone()),
                path: Some(reached.pack_path.clone()),
                reason: format!(
                    "pack sha256 is {}, but record #{} was {} when last verified: the branch history was rewritten",
                    reached.pack_sha256, expected.sequence, expected.pack_sha256
                ),
            });
        }
    } else if let Some(expected) = &expected_head
        && walk.completed
        && walk.records_walked < expected.sequence
    {
        first_failure.record(Failure {
            sequence: expected.sequence,
            commit: None,
            path: None,
            reason: format!(
                "the branch ends at record #{}, but record #{} (sha256 {}) was there before: records were dropped by a history rewrite or force-push",
                walk.records_walked, expected.sequence, expected.pack_sha256
            ),
        });
    }

    let failure = first_failure
        .failure
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let records_checked = match &failure {
        Some(failure) => (failure.sequence - 1).min(walk.records_walked),
        None => walk.records_walked,
    };
    let head = match (&failure, walk.last_pack_sha256) {
        (None, Some(pack_sha256)) => Some(ExpectedHead {
            sequence: walk.records_walked,
            pack_sha256,
        }),
        _ => None,
    };
    Ok(VerifyReport {
        branch: branch.to_string(),
        tip_commit: tip.to_string(),
        records_checked,
        ok: failure.is_none(),
        head,
        first_failure: failure,
    })
}

/// The commits from the root to `tip`, following first parents.
fn first_parent_chain(repository: &Repository, tip: Oid) -> Result<Vec<Oid>> {
    let mut chain = Vec::new();
    let mut cursor = Some(tip);
    while let Some(commit_id) = cursor {
        let commit = repository
            .find_commit(commit_id)
            .map_err(git_context(format!("cannot read commit {commit_id}")))?;
        chain.push(commit_id);
        cursor = commit.parent_id(0).ok();
    }
    chain.reverse();
    Ok(chain)
}

/// The record matching the caller's expected head, as found.
struct ReachedRecord {
    commit: String,
    pack_path: String,
    pack_sha256: String,
}

struct Walk {
    records_walked: u64,
    completed: bool,
    last_pack_sha256: Option<String>,
    expected_record: Option<ReachedRecord>,
}

/// Reads each commit's added files, checks the structure and hands the
/// records to `dispatch` in batches.
fn walk_records(
    repository: &Repository,
    chain: &[Oid],
    expected_head: Option<&ExpectedHead>,
    first_failure: &FirstFailure,
    mut dispatch: impl FnMut(Vec<RecordCandidate>),
) -> Walk {
    let mut trees = TreeCache::new(repository);
    let mut previous_tree = None;
    let mut previous_pack_sha256 = GENESIS_PREVIOUS_PACK_SHA256.to_string();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut walk = Walk {
        records_walked: 0,
        completed: false,
        last_pack_sha256: None,
        expected_record: None,
    };
    for (index, commit_id) in chain.iter().enumerate() {
        let position = index as u64 + 1;
        if first_failure.is_before(position) {
            dispatch(batch);
            return walk;
        }
        let fail = |path: Option<String>, reason: String| {
            first_failure.record(Failure {
                sequence: position,
                commit: Some(commit_id.to_string()),
                path,
                reason,
            })
        };
        let candidate = match read_record(repository, &mut trees, *commit_id, previous_tree) {
            Ok((candidate_parts, tree_id)) => {
                previous_tree = Some(tree_id);
                candidate_parts
            }
            Err((path, reason)) => {
                fail(path, reason);
                dispatch(batch);
                return walk;
            }
        };
        trees.advance();
        let (commit_message, pack_path, pack_bytes, signature_bytes) = candidate;
        let pack_sha256 = sha256_hex(&pack_bytes);
        if expected_head.is_some_and(|expected| expected.sequence == position) {
            walk.expected_record = Some(ReachedRecord {
                commit: commit_id.to_string(),
                pack_path: pack_path.clone(),
                pack_sha256: pack_sha256.clone(),
            });
        }
        batch.push(RecordCandidate {
            position,
            commit: commit_id.to_string(),
            commit_message,
            pack_path,
            pack_bytes,
            signature_bytes,
            pack_sha256: pack_sha256.clone(),
            previous_pack_sha256: std::mem::replace(&mut previous_pack_sha256, pack_sha256),
        });
        if batch.len() == BATCH_SIZE {
            dispatch(std::mem::replace(
                &mut batch,
                Vec::with_capacity(BATCH_SIZE),
            ));
        }
        walk.records_walked = position;
    }
    dispatch(batch);
    walk.completed = true;
    walk.last_pack_sha256 = Some(previous_pack_sha256);
    walk
}

type RecordParts = (String, String, Vec<u8>, Vec<u8>);

/// The structural checks of one commit: linear, adds exactly a pack and
/// its signature under `packs/`. Returns (message, pack path, pack bytes,
/// signature bytes) and the commit's tree.
fn read_record(
    repository: &Repository,
    trees: &mut TreeCache<'_>,
    commit_id: Oid,
    previous_tree: Option<Oid>,
) -> Result<(RecordParts, Oid), (Option<String>, String)> {
    let commit = repository
        .find_commit(commit_id)
        .map_err(|error| (None, format!("commit cannot be read: {}", error.message())))?;
    if commit.parent_count() > 1 {
        return Err((
            None,
            "is a merge commit: the evidence history must be linear".to_string(),
        ));
    }
    let tree_id = commit.tree_id();
    let added = trees
        .added_files(previous_tree, tree_id)
        .map_err(|violation| (Some(violation.path), violation.reason))?;
    if let Some(outside) = added.iter().find(|file| !file.path.starts_with("packs/")) {
        return Err((
            Some(outside.path.clone()),
            format!("adds {} outside packs/", outside.path),
        ));
    }
    let pack = added.iter().find(|file| file.path.ends_with(".json"));
    let signature = pack.and_then(|pack| {
        let signature_path = format!("{}.minisig", pack.path);
        added.iter().find(|file| file.path == signature_path)
    });
    let (Some(pack), Some(signature), 2) = (pack, signature, added.len()) else {
        let paths: Vec<&str> = added.iter().map(|file| file.path.as_str()).collect();
        return Err((
            added.first().map(|file| file.path.clone()),
            format!(
                "adds {} file(s) [{}]; a record commit adds exactly one pack and its .minisig",
                added.len(),
                paths.join(", ")
            ),
        ));
    };
    let read_blob = |id: Oid, path: &str| {
        repository
            .find_blob(id)
            .map(|blob| blob.content().to_vec())
            .map_err(|error| {
                (
                    Some(path.to_string()),
                    format!("cannot be read: {}", error.message()),
                )
            })
    };
    let pack_bytes = read_blob(pack.blob, &pack.path)?;
    let signature_bytes = read_blob(signature.blob, &signature.path)?;
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    Ok((
        (message, pack.path.clone(), pack_bytes, signature_bytes),
        tree_id,
    ))
}

/// The per-record checks that need no git access (see module docs).
fn check_record(candidate: &RecordCandidate, key: &VerifyingKey) -> Result<(), String> {
    let pack_value: Value = serde_json::from_slice(&candidate.pack_bytes)
        .map_err(|error| format!("pack is not JSON: {error}"))?;
    if canonical_json(&pack_value) != candidate.pack_bytes {
        return Err("pack is not in canonical JSON form (was it edited?)".to_string());
    }
    let pack: EvidencePack = serde_json::from_value(pack_value.clone())
        .map_err(|error| format!("pack does not follow the evidence pack format: {error}"))?;
    if pack.format != PACK_FORMAT {
        return Err(format!(
            "pack format is {:?}, expected {PACK_FORMAT:?}",
            pack.format
        ));
    }
    if pack.sequence != candidate.position {
        return Err(format!(
            "pack has sequence {} at position {}: records were removed, inserted or reordered",
            pack.sequence, candidate.position
        ));
    }
    if pack.previous_pack_sha256 != candidate.previous_pack_sha256 {
        return Err(format!(
            "previous_pack_sha256 is {}, but the previous pack's sha256 is {}: the hash chain is broken",
            pack.previous_pack_sha256, candidate.previous_pack_sha256
        ));
    }
    let expected_path = pack_path(&pack);
    if expected_path != candidate.pack_path {
        return Err(format!("pack belongs at {expected_path}"));
    }
    let signature_text = std::str::from_utf8(&candidate.signature_bytes)
        .map_err(|_| "signature file is not UTF-8 text".to_string())?;
    let comment = key.verify(&candidate.pack_bytes, signature_text)?;
    let expected_comment = trusted_comment(
        pack.sequence,
        &candidate.pack_sha256,
        &pack.previous_pack_sha256,
        &pack.source_commit,
    );
    if comment != expected_comment {
        return Err(format!(
            "trusted comment {comment:?} does not match the pack (expected {expected_comment:?})"
        ));
    }
    let derived_pack_id = pack_id_of(&pack_value);
    if pack.pack_id != derived_pack_id {
        return Err(format!(
            "pack_id {} is not the id derived from the content ({derived_pack_id})",
            pack.pack_id
        ));
    }
    let expected_message = commit_message(&pack, &candidate.pack_path, &candidate.pack_sha256);
    if candidate.commit_message != expected_message {
        let actual_lines = candidate
            .commit_message
            .lines()
            .chain(std::iter::repeat(""));
        let (actual, expected) = actual_lines
            .zip(expected_message.lines())
            .find(|(actual, expected)| actual != expected)
            .unwrap_or(("", "(trailing text)"));
        return Err(format!(
            "commit message does not match the pack: {actual:?} where {expected:?} was expected"
        ));
    }
    Ok(())
}
