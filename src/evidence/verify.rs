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
//! The report carries the last record's anchor of the state store's event
//! log ([`VerifyReport::event_chain_anchor`]) for `verify --state` to check
//! against the store.
//!
//! The work — reading git objects and, mostly, the two Ed25519
//! verifications per record — runs on every core (see [`verify_branch`]).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use git2::{ErrorCode, Oid, Repository};
use sha2::{Digest, Sha256};

use super::batch::batch_record_files;
use super::branch::short;
use super::canonical::sha256_hex;
use super::keys::VerifyingKey;
use super::pack::{EventChainAnchor, GENESIS_PREVIOUS_PACK_SHA256};
use super::pack::{batch_commit_message, claimed_record_count};
use super::record::{
    RecordView, broken_chain_reason, check_record, commit_message_difference, record_files,
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
    /// Records (of those checked) whose plane was simulated
    /// (`plane_mode: simulated`): what happened there happened on no device.
    pub simulated_records: u64,
    /// The anchor of the state store's event log in the last record that
    /// has one, with that record's sequence: the store must still hold that
    /// event with that hash (checked by `verify --state`).
    pub event_chain_anchor: Option<(u64, EventChainAnchor)>,
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

/// The earliest failure found so far, shared by all walkers.
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

/// Records per chunk of the chain handed to one walker at a time.
const CHUNK_SIZE: usize = 512;

/// How a chunk links to its neighbours in the hash chain.
#[derive(Default, Clone)]
struct ChunkLinks {
    /// The first record's `previous_pack_sha256`, as the pack claims it.
    first_claimed_previous: Option<String>,
    /// The last record's sha256.
    last_pack_sha256: Option<String>,
}

/// The record matching the caller's expected head, as found.
struct ReachedRecord {
    commit: String,
    pack_path: String,
    pack_sha256: String,
}

/// State shared by the walkers of one verification.
struct Verification<'shared> {
    repository_path: &'shared Path,
    chain: &'shared [ChainCommit],
    chunk_size: usize,
    key: &'shared VerifyingKey,
    expected_head: Option<&'shared ExpectedHead>,
    next_chunk: AtomicUsize,
    progress: &'shared dyn crate::progress::Progress,
    chunk_links: Mutex<Vec<ChunkLinks>>,
    reached: Mutex<Option<ReachedRecord>>,
    first_failure: FirstFailure,
    simulated_records: AtomicU64,
    /// The anchor of the highest record that has one.
    latest_anchor: Mutex<Option<(u64, EventChainAnchor)>>,
}

/// Verifies the evidence branch `branch` (a branch name, or a full
/// reference such as `refs/remotes/origin/evidence`) of the repository at
/// `repository_path` against `key`. Integrity problems are reported in the
/// [`VerifyReport`]; `Err` means verification could not run at all.
///
/// The chain is cut into chunks that walkers on every core take in turn,
/// each with its own handle on the repository; the hash links between
/// chunks are checked once all are done.
pub fn verify_branch(
    repository_path: &Path,
    branch: &str,
    key: &VerifyingKey,
    expected_head: Option<ExpectedHead>,
) -> Result<VerifyReport> {
    verify_branch_in_chunks(repository_path, branch, key, expected_head, CHUNK_SIZE)
}

/// [`verify_branch`], reporting the records checked (`ringmaster verify`
/// draws them on a terminal).
pub fn verify_branch_with_progress(
    repository_path: &Path,
    branch: &str,
    key: &VerifyingKey,
    expected_head: Option<ExpectedHead>,
    progress: &dyn crate::progress::Progress,
) -> Result<VerifyReport> {
    verify_chunks(
        repository_path,
        branch,
        key,
        expected_head,
        CHUNK_SIZE,
        progress,
    )
}

/// [`verify_branch`] with a given chunk size (tests use tiny chunks to
/// exercise the links between them).
pub(crate) fn verify_branch_in_chunks(
    repository_path: &Path,
    branch: &str,
    key: &VerifyingKey,
    expected_head: Option<ExpectedHead>,
    chunk_size: usize,
) -> Result<VerifyReport> {
    verify_chunks(
        repository_path,
        branch,
        key,
        expected_head,
        chunk_size,
        &crate::progress::Silent,
    )
}

fn verify_chunks(
    repository_path: &Path,
    branch: &str,
    key: &VerifyingKey,
    expected_head: Option<ExpectedHead>,
    chunk_size: usize,
    progress: &dyn crate::progress::Progress,
) -> Result<VerifyReport> {
    let chunk_size = chunk_size.max(1);
    let repository = open_repository(repository_path)?;
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
    drop(repository);
    progress.stage(&format!("reading {branch}"), None);
    let chain = first_parent_chain(repository_path, tip)?;
    let chain_records = chain
        .last()
        .map_or(0, |last| last.first_position - 1 + last.claimed_records);
    progress.stage("verifying records", Some(chain_records));

    let chunk_count = chain.len().div_ceil(chunk_size);
    let verification = Verification {
        repository_path,
        chain: &chain,
        chunk_size,
        key,
        expected_head: expected_head.as_ref(),
        next_chunk: AtomicUsize::new(0),
        progress,
        chunk_links: Mutex::new(vec![ChunkLinks::default(); chunk_count]),
        reached: Mutex::new(None),
        latest_anchor: Mutex::new(None),
        first_failure: FirstFailure {
            lowest_sequence: AtomicU64::new(u64::MAX),
            failure: Mutex::new(None),
        },
        simulated_records: AtomicU64::new(0),
    };
    let walker_count = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(chunk_count.max(1));
    let walker_results: Vec<Result<()>> = std::thread::scope(|scope| {
        let walkers: Vec<_> = (0..walker_count)
            .map(|_| scope.spawn(|| verification.walk_chunks()))
            .collect();
        walkers
            .into_iter()
            .map(|walker| {
                walker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for result in walker_results {
        result?;
    }
    verification.check_chunk_links();

    let chain_length = chain_records;
    let reached = verification
        .reached
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(expected) = &expected_head {
        match reached {
            Some(reached) if reached.pack_sha256 != expected.pack_sha256 => {
                verification.first_failure.record(Failure {
                    sequence: expected.sequence,
                    commit: Some(reached.commit),
                    path: Some(reached.pack_path),
                    reason: format!(
                        "pack sha256 is {}, but record #{} was {} when last verified: the branch history was rewritten",
                        reached.pack_sha256, expected.sequence, expected.pack_sha256
                    ),
                });
            }
            None if chain_length < expected.sequence => {
                verification.first_failure.record(Failure {
                    sequence: expected.sequence,
                    commit: None,
                    path: None,
                    reason: format!(
                        "the branch ends at record #{chain_length}, but record #{} (sha256 {}) was there before: records were dropped by a history rewrite or force-push",
                        expected.sequence, expected.pack_sha256
                    ),
                });
            }
            _ => {}
        }
    }

    let failure = verification
        .first_failure
        .failure
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let last_pack_sha256 = verification
        .chunk_links
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .and_then(|links| links.last_pack_sha256);
    let (records_checked, head) = match (&failure, last_pack_sha256) {
        (None, Some(pack_sha256)) => (
            chain_length,
            Some(ExpectedHead {
                sequence: chain_length,
                pack_sha256,
            }),
        ),
        (Some(failure), _) => ((failure.sequence - 1).min(chain_length), None),
        (None, None) => (0, None),
    };
    let event_chain_anchor = verification
        .latest_anchor
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .filter(|(record, _)| *record <= records_checked);
    Ok(VerifyReport {
        branch: branch.to_string(),
        tip_commit: tip.to_string(),
        records_checked,
        ok: failure.is_none(),
        head,
        first_failure: failure,
        simulated_records: verification.simulated_records.load(Ordering::SeqCst),
        event_chain_anchor,
    })
}

fn open_repository(repository_path: &Path) -> Result<Repository> {
    Repository::open(repository_path).map_err(git_context(format!(
        "cannot open repository {}",
        repository_path.display()
    )))
}

/// What the walkers need of a commit, read once while finding the chain.
struct ChainCommit {
    id: Oid,
    tree: Oid,
    parent_count: usize,
    /// The position of its first record: one more than the records the
    /// commits before it claim (see [`claimed_record_count`]).
    first_position: u64,
    /// The records it claims to add (1, or a batch's `Evidence-Records`).
    claimed_records: u64,
    /// SHA-256 of the commit message, compared with the expected message's
    /// (the commit is read again only to explain a mismatch).
    message_sha256: [u8; 32],
}

/// Commits read through one repository handle before it is reopened.
/// libgit2 caches every object read (up to 256 MiB per handle) although
/// verification never reads one twice; a fresh handle now and then keeps
/// memory flat and the allocator fast.
const COMMITS_PER_HANDLE: usize = 8192;

/// The commits from the root to `tip`, following first parents.
fn first_parent_chain(repository_path: &Path, tip: Oid) -> Result<Vec<ChainCommit>> {
    let mut chain = Vec::new();
    let mut repository = open_repository(repository_path)?;
    let mut cursor = Some(tip);
    while let Some(commit_id) = cursor {
        if chain.len() % COMMITS_PER_HANDLE == COMMITS_PER_HANDLE - 1 {
            repository = open_repository(repository_path)?;
        }
        let commit = repository
            .find_commit(commit_id)
            .map_err(git_context(format!("cannot read commit {commit_id}")))?;
        chain.push(ChainCommit {
            id: commit_id,
            tree: commit.tree_id(),
            parent_count: commit.parent_count(),
            first_position: 0,
            claimed_records: claimed_record_count(&String::from_utf8_lossy(commit.message_bytes())),
            message_sha256: Sha256::digest(commit.message_bytes()).into(),
        });
        cursor = commit.parent_id(0).ok();
    }
    chain.reverse();
    let mut next_position = 1u64;
    for commit in &mut chain {
        commit.first_position = next_position;
        next_position = next_position.saturating_add(commit.claimed_records);
    }
    Ok(chain)
}

impl Verification<'_> {
    /// One walker: takes chunks until none is left, each through a fresh
    /// repository handle (see [`COMMITS_PER_HANDLE`]).
    fn walk_chunks(&self) -> Result<()> {
        loop {
            let chunk_index = self.next_chunk.fetch_add(1, Ordering::SeqCst);
            let start = chunk_index * self.chunk_size;
            if start >= self.chain.len() {
                return Ok(());
            }
            let repository = open_repository(self.repository_path)?;
            let end = (start + self.chunk_size).min(self.chain.len());
            let links = self.walk_chunk(&repository, start, end);
            self.chunk_links
                .lock()
                .unwrap_or_else(PoisonError::into_inner)[chunk_index] = links;
        }
    }

    /// Checks the records at chain indexes `start..end`.
    fn walk_chunk(&self, repository: &Repository, start: usize, end: usize) -> ChunkLinks {
        let mut links = ChunkLinks::default();
        let mut trees = TreeCache::new(repository);
        let mut previous_tree = start
            .checked_sub(1)
            .map(|parent_index| self.chain[parent_index].tree);
        let mut previous_pack_sha256 =
            (start == 0).then(|| GENESIS_PREVIOUS_PACK_SHA256.to_string());
        for index in start..end {
            let position = self.chain[index].first_position;
            if self.first_failure.is_before(position) {
                return links;
            }
            let checked = self.check_commit(
                repository,
                &mut trees,
                index,
                previous_tree,
                previous_pack_sha256.as_deref(),
            );
            match checked {
                Ok(checked) => {
                    if index == start {
                        links.first_claimed_previous = Some(checked.claimed_previous_pack_sha256);
                    }
                    previous_tree = Some(checked.tree);
                    previous_pack_sha256 = Some(checked.pack_sha256);
                }
                Err((position, path, reason)) => {
                    self.fail(index, position, path, reason);
                    return links;
                }
            }
            trees.advance();
        }
        links.last_pack_sha256 = previous_pack_sha256;
        links
    }

    fn fail(&self, index: usize, position: u64, path: Option<String>, reason: String) {
        self.first_failure.record(Failure {
            sequence: position,
            commit: Some(self.chain[index].id.to_string()),
            path,
            reason,
        });
    }

    /// Structure and content of the commit at chain index `index`: its one
    /// record, or every record of a batch commit in sequence order. An
    /// error carries the position it is reported at: a record's own, or
    /// for what concerns the whole commit its first record's.
    fn check_commit(
        &self,
        repository: &Repository,
        trees: &mut TreeCache<'_>,
        index: usize,
        previous_tree: Option<Oid>,
        previous_pack_sha256: Option<&str>,
    ) -> Result<CheckedRecord, (u64, Option<String>, String)> {
        let commit = &self.chain[index];
        let first = commit.first_position;
        let at_commit = |(path, reason): (Option<String>, String)| (first, path, reason);
        if commit.parent_count > 1 {
            return Err((
                first,
                None,
                "is a merge commit: the evidence history must be linear".to_string(),
            ));
        }
        let tree = commit.tree;
        let added = trees
            .added_files(previous_tree, tree)
            .map_err(|violation| (first, Some(violation.path), violation.reason))?;
        let batch = commit.claimed_records > 1;
        let pairs = if batch {
            batch_record_files(&added).map_err(at_commit)?
        } else {
            vec![record_files(&added).map_err(at_commit)?]
        };
        if pairs.is_empty() {
            return Err((first, None, "adds no record".to_string()));
        }
        let mut previous = previous_pack_sha256.map(str::to_string);
        let mut first_claimed_previous = None;
        let mut last_path = String::new();
        for (offset, (pack, signature)) in pairs.iter().enumerate() {
            let position = first + offset as u64;
            let at_record = |reason: String| (position, Some(pack.path.clone()), reason);
            let read_blob = |id: Oid, path: &str| {
                repository.find_blob(id).map_err(|error| {
                    (
                        position,
                        Some(path.to_string()),
                        format!("cannot be read: {}", error.message()),
                    )
                })
            };
            let pack_blob = read_blob(pack.blob, &pack.path)?;
            let signature_blob = read_blob(signature.blob, &signature.path)?;
            let pack_sha256 = sha256_hex(pack_blob.content());
            if self
                .expected_head
                .is_some_and(|expected| expected.sequence == position)
            {
                *self.reached.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(ReachedRecord {
                        commit: commit.id.to_string(),
                        pack_path: pack.path.clone(),
                        pack_sha256: pack_sha256.clone(),
                    });
            }
            let record = RecordView {
                position,
                pack_path: &pack.path,
                pack_bytes: pack_blob.content(),
                signature_bytes: signature_blob.content(),
                pack_sha256: &pack_sha256,
                previous_pack_sha256: previous.as_deref(),
            };
            let content = check_record(&record, self.key).map_err(at_record)?;
            if content.simulated {
                self.simulated_records.fetch_add(1, Ordering::SeqCst);
            }
            if !batch {
                let expected_message_sha256 =
                    Sha256::digest(content.expected_commit_message.as_bytes());
                if expected_message_sha256.as_slice() != commit.message_sha256 {
                    let reason = commit_message_difference(
                        repository,
                        commit.id,
                        &content.expected_commit_message,
                    );
                    return Err(at_record(reason));
                }
            }
            if let Some(anchor) = content.event_chain {
                let mut latest = self
                    .latest_anchor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if latest.as_ref().is_none_or(|(record, _)| *record < position) {
                    *latest = Some((position, anchor));
                }
            }
            if offset == 0 {
                first_claimed_previous = Some(content.claimed_previous_pack_sha256);
            }
            previous = Some(pack_sha256);
            last_path.clone_from(&pack.path);
            self.progress.advance(1);
        }
        let pack_sha256 = previous.unwrap_or_default();
        if batch {
            let last_position = first + pairs.len() as u64 - 1;
            let expected_message =
                batch_commit_message(first, last_position, &last_path, &pack_sha256);
            if Sha256::digest(expected_message.as_bytes()).as_slice() != commit.message_sha256 {
                let reason = commit_message_difference(repository, commit.id, &expected_message);
                return Err((first, None, reason));
            }
        }
        Ok(CheckedRecord {
            tree,
            pack_sha256,
            claimed_previous_pack_sha256: first_claimed_previous.unwrap_or_default(),
        })
    }

    /// The hash links across chunk boundaries.
    fn check_chunk_links(&self) {
        let links = self
            .chunk_links
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (chunk_index, pair) in links.windows(2).enumerate() {
            let (Some(previous), Some(claimed)) =
                (&pair[0].last_pack_sha256, &pair[1].first_claimed_previous)
            else {
                continue;
            };
            if previous != claimed {
                let index = (chunk_index + 1) * self.chunk_size;
                self.fail(
                    index,
                    self.chain[index].first_position,
                    None,
                    broken_chain_reason(claimed, previous),
                );
            }
        }
    }
}

struct CheckedRecord {
    tree: Oid,
    pack_sha256: String,
    claimed_previous_pack_sha256: String,
}
