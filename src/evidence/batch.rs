//! Batches: many records in one evidence commit, and reading the records of
//! any record commit whatever its layout.
//!
//! A decision that changes many things at once (a policy edit touching
//! 10,000 intents) is written by [`EvidenceBranch::append_batch`] as ONE
//! commit that adds every record's pack and `.minisig`. Each record is still
//! individually signed (its trusted comment binds its sequence, hash,
//! previous hash and source commit) and chained to the one before, exactly
//! as in a one-record commit: a batch changes how many records a commit
//! carries, never what a record is. The commit message names the range
//! ([`super::pack::batch_commit_message`]) and its `Evidence-Path`,
//! `Evidence-Sequence` and `Evidence-Sha256` trailers name the last record,
//! so the tip of the branch reads the same in both layouts.
//!
//! Durability: the objects of a batch are written as one pack file through
//! the repository's pack writer; the pack and its index are fsynced (with
//! `objects/pack/` and `objects/`) before the branch moves, and the
//! reference after. One fsync'd file per batch instead of three loose files
//! per record is where the speed comes from.
//!
//! Memory (issue 17): each record's content is held once. As each record is
//! signed its two blobs are hashed (never stored in an object database) and
//! compressed into the pack being built, and its bytes are dropped; the
//! trees are made from the blob ids (only they and the commit go to a
//! libgit2 mempack, on a separate repository handle), and the pack is
//! streamed to the pack writer, its SHA-1 trailer computed as it goes. The
//! pack is byte for byte the one the objects made in one buffer before.
//!
//! Reading: [`EvidenceBranch::records_in_commit`] answers for both layouts;
//! the API's reader, the bundle export, the WORM copy and the replay onto a
//! remote go through it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid, Repository, Signature, Time, Tree};

use super::branch::{AppendContext, AppendedRecord, ChainTip, EvidenceBranch};
use super::keys::{SigningKey, sync_directory};
use super::pack::{
    BATCH_FIRST_TRAILER, ChainPosition, EventChainAnchor, EvidencePack, EvidencePackInput, Kept,
    MAX_RECORDS_PER_COMMIT, PreparedRecord, batch_commit_message, claimed_record_count, pack_path,
    prepare_anchored_records_each, trailer_value,
};
use super::tree_diff::{AddedFile, TreeCache};
use super::{EvidenceError, Result, git_context, io_context, sha256_hex};

/// One record of a record commit, as [`EvidenceBranch::records_in_commit`]
/// reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRecord {
    /// The record's place: `commit` is the commit that added it (for a
    /// batch, the batch commit).
    pub tip: ChainTip,
    pub pack: EvidencePack,
    /// The blob of the pack file.
    pub pack_blob: Oid,
    /// The blob of the `.minisig` file.
    pub signature_blob: Oid,
}

/// A pack and its signature among a commit's added files.
pub(crate) type RecordFilePair<'files> = (&'files AddedFile, &'files AddedFile);

/// The packs and signatures a batch commit adds, in sequence order, or why
/// its added files are not a batch of records: every file under `packs/`,
/// every `.json` with its `.minisig` beside it and nothing else, and file
/// names starting with distinct sequence numbers.
pub(crate) fn batch_record_files(
    added: &[AddedFile],
) -> std::result::Result<Vec<RecordFilePair<'_>>, (Option<String>, String)> {
    if let Some(outside) = added.iter().find(|file| !file.path.starts_with("packs/")) {
        return Err((
            Some(outside.path.clone()),
            format!("adds {} outside packs/", outside.path),
        ));
    }
    let by_path: BTreeMap<&str, &AddedFile> = added
        .iter()
        .map(|file| (file.path.as_str(), file))
        .collect();
    let mut pairs = Vec::with_capacity(added.len() / 2);
    for file in added {
        if file.path.ends_with(".json") {
            let signature_path = format!("{}.minisig", file.path);
            let Some(signature) = by_path.get(signature_path.as_str()) else {
                return Err((
                    Some(file.path.clone()),
                    format!("adds {} without its signature {signature_path}", file.path),
                ));
            };
            let Some(sequence) = file_sequence(&file.path) else {
                return Err((
                    Some(file.path.clone()),
                    format!("{} is not named SSSSSSSS-LABEL.json", file.path),
                ));
            };
            pairs.push((sequence, file, *signature));
        } else if !file
            .path
            .strip_suffix(".minisig")
            .is_some_and(|pack| pack.ends_with(".json") && by_path.contains_key(pack))
        {
            return Err((
                Some(file.path.clone()),
                format!(
                    "adds {}, which is neither a pack nor the signature of one it adds",
                    file.path
                ),
            ));
        }
    }
    pairs.sort_by_key(|(sequence, _, _)| *sequence);
    if let Some(pair) = pairs.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err((
            Some(pair[1].1.path.clone()),
            format!(
                "adds two packs with sequence {} ({} and {})",
                pair[0].0, pair[0].1.path, pair[1].1.path
            ),
        ));
    }
    Ok(pairs
        .into_iter()
        .map(|(_, pack, signature)| (pack, signature))
        .collect())
}

/// The sequence a pack's file name starts with (`SSSSSSSS-LABEL.json`).
fn file_sequence(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    let digits = name.split('-').next()?;
    if digits.len() < 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl EvidenceBranch {
    /// Signs and commits `inputs` as consecutive records in ONE commit and
    /// returns once they are durable (see the module documentation). Each
    /// record is signed and chained as [`Self::append`] would; the checks
    /// before signing (`context.known_head`), the compare-and-swap of the
    /// branch and the WORM copy are the same, for the whole batch. One
    /// input is appended as a one-record commit; none appends nothing.
    pub fn append_batch(
        &self,
        inputs: Vec<EvidencePackInput>,
        signer: &SigningKey,
        context: &AppendContext,
    ) -> Result<Vec<AppendedRecord>> {
        self.append_batch_from(inputs.into_iter(), signer, context)
    }

    /// [`Self::append_batch`] of inputs read one at a time, as each record
    /// is built: a caller may make them as they are asked for, so that a
    /// batch's bodies are not all held at once (issue 17).
    pub fn append_batch_from(
        &self,
        mut inputs: impl ExactSizeIterator<Item = EvidencePackInput>,
        signer: &SigningKey,
        context: &AppendContext,
    ) -> Result<Vec<AppendedRecord>> {
        match inputs.len() {
            0 => return Ok(Vec::new()),
            1 => {
                let input = inputs.next().expect("one input");
                return self
                    .append(input, signer, context)
                    .map(|record| vec![record]);
            }
            count if count as u64 > MAX_RECORDS_PER_COMMIT => {
                return Err(EvidenceError::InvalidInput {
                    reason: format!(
                        "a batch of {count} records is more than one commit may carry ({MAX_RECORDS_PER_COMMIT}); split it"
                    ),
                });
            }
            _ => {}
        }
        self.ensure_not_head()?;
        let parent_id = self.tip_commit()?;
        if let Some(known) = &context.known_head {
            self.check_holds(parent_id, known)?;
        }
        // The latest `created_at`, seen as the inputs are read.
        let mut created_at: Option<DateTime<Utc>> = None;
        let inputs = inputs.inspect(|input| {
            created_at = created_at.max(Some(input.created_at));
        });
        let records =
            self.write_batch_commit(parent_id, inputs, context.event_chain.clone(), signer)?;
        let created_at = created_at.expect("a batch has inputs");
        let last = records.last().expect("a batch has records");
        let commit_id = Oid::from_str(&last.commit).map_err(git_context("invalid commit id"))?;
        self.move_branch(
            parent_id,
            commit_id,
            &format!(
                "ringmaster: evidence #{}..#{}",
                records[0].sequence, last.sequence
            ),
        )?;
        if self.copy_on_append {
            let last_sequence = last.sequence;
            self.copy_to_worm(created_at)
                .map_err(|source| EvidenceError::NotCopied {
                    sequence: last_sequence,
                    source: Box::new(source),
                })?;
        }
        Ok(records)
    }

    /// Writes (durably) the batch commit of `inputs` on top of the record
    /// commit `parent_id`, without moving any reference.
    ///
    /// Each record's content is held once (issue 17): as each record is
    /// signed, its two blobs are hashed and compressed into the pack being
    /// built, and its bytes dropped; the trees are written from the blob ids
    /// alone ([`Self::tree_of_new_files`]), and the pack is streamed into the
    /// repository's pack writer from the compressed entries.
    pub(super) fn write_batch_commit(
        &self,
        parent_id: Option<Oid>,
        inputs: impl IntoIterator<Item = EvidencePackInput>,
        event_chain: Option<EventChainAnchor>,
        signer: &SigningKey,
    ) -> Result<Vec<AppendedRecord>> {
        let position = match parent_id {
            Some(parent_id) => {
                let tip = self.read_record_commit(parent_id)?;
                ChainPosition {
                    sequence: tip.sequence + 1,
                    previous_pack_sha256: tip.pack_sha256,
                }
            }
            None => ChainPosition::genesis(),
        };
        let inputs = inputs.into_iter();
        let mut records: Vec<AppendedRecord> = Vec::with_capacity(inputs.size_hint().0);
        let mut blobs: Vec<(Oid, Oid)> = Vec::with_capacity(inputs.size_hint().0);
        let mut pack = PackSpool::new();
        let mut last_created_at = None;
        prepare_anchored_records_each(
            inputs,
            &position,
            event_chain,
            signer,
            Kept::BytesOnly,
            |record: PreparedRecord| {
                let hash = |data: &[u8]| {
                    Oid::hash_object(ObjectType::Blob, data)
                        .map_err(git_context("cannot hash a blob"))
                };
                let pack_blob = hash(&record.pack_bytes)?;
                let signature_blob = hash(record.signature.as_bytes())?;
                pack.push(ObjectType::Blob, &record.pack_bytes)?;
                pack.push(ObjectType::Blob, record.signature.as_bytes())?;
                blobs.push((pack_blob, signature_blob));
                last_created_at = Some(record.pack.created_at);
                records.push(AppendedRecord {
                    sequence: record.pack.sequence,
                    pack_id: record.pack.pack_id,
                    record_type: record.pack.record_type,
                    intent_id: record.pack.intent_id,
                    pack_sha256: record.pack_sha256,
                    previous_pack_sha256: record.pack.previous_pack_sha256,
                    pack_path: record.pack_path,
                    signature_path: record.signature_path,
                    commit: String::new(),
                });
                Ok(())
            },
        )?;
        let (Some(first), Some(last), Some(last_created_at)) =
            (records.first(), records.last(), last_created_at)
        else {
            return Ok(Vec::new());
        };
        let message = batch_commit_message(
            first.sequence,
            last.sequence,
            &last.pack_path,
            &last.pack_sha256,
        );
        let time = Time::new(last_created_at.timestamp(), 0);

        // A handle of its own whose writes (the trees and the commit) all go
        // to memory.
        let scratch = Repository::open(self.repository.path()).map_err(git_context(format!(
            "cannot open repository {}",
            self.repository_path.display()
        )))?;
        let odb = scratch
            .odb()
            .map_err(git_context("cannot open the object database"))?;
        let _mempack = odb
            .add_new_mempack_backend(1000)
            .map_err(git_context("cannot start an in-memory object store"))?;
        let parent = parent_id
            .map(|id| scratch.find_commit(id))
            .transpose()
            .map_err(git_context("cannot read the branch tip"))?;
        let base_tree = parent
            .as_ref()
            .map(|commit| commit.tree())
            .transpose()
            .map_err(git_context("cannot read the branch tip's tree"))?;
        let entries: Vec<(Vec<&str>, Oid)> = records
            .iter()
            .zip(&blobs)
            .flat_map(|(record, (pack_blob, signature_blob))| {
                [
                    (record.pack_path.split('/').collect(), *pack_blob),
                    (record.signature_path.split('/').collect(), *signature_blob),
                ]
            })
            .collect();
        drop(blobs);
        let references: Vec<(&[&str], Oid)> = entries
            .iter()
            .map(|(components, blob)| (components.as_slice(), *blob))
            .collect();
        let mut trees = Vec::new();
        let tree_id = self.tree_of_new_files(
            &scratch,
            &odb,
            base_tree.as_ref(),
            &references,
            "",
            &mut trees,
        )?;
        drop(references);
        drop(entries);
        let tree = scratch
            .find_tree(tree_id)
            .map_err(git_context("cannot read the new tree"))?;
        let identity = Signature::new(&self.committer_name, &self.committer_email, &time)
            .map_err(git_context("invalid committer identity"))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let commit_id = scratch
            .commit(None, &identity, &identity, &message, &tree, &parents)
            .map_err(git_context("cannot write the evidence commit"))?;
        drop(tree);
        drop(base_tree);
        drop(parent);

        // The pack: every blob (already in `pack`), the new trees in the
        // order of their ids, then the commit; undeltified (a delta search
        // over thousands of small blobs costs more than the bytes it saves).
        trees.sort();
        trees.dedup();
        for id in trees.iter().chain(std::iter::once(&commit_id)) {
            let object = odb
                .read(*id)
                .map_err(git_context(format!("cannot read back object {id}")))?;
            pack.push(object.kind(), object.data())?;
        }
        drop(odb);
        drop(scratch);
        self.write_pack_durably(pack)?;

        let commit = commit_id.to_string();
        for record in &mut records {
            record.commit.clone_from(&commit);
        }
        Ok(records)
    }

    /// [`Self::tree_with_many_files`] for files whose blobs need not exist
    /// in `repository` (they are hashed, not written: issue 17): builds
    /// `base` plus `files`, creating directories as needed and refusing to
    /// replace anything that exists, writes each new tree through `odb` and
    /// names it in `written_trees`. The trees are the ones libgit2's tree
    /// builder writes (git's entry order and `%o` modes; see the test that
    /// compares both).
    pub(super) fn tree_of_new_files(
        &self,
        repository: &Repository,
        odb: &git2::Odb<'_>,
        base: Option<&Tree<'_>>,
        files: &[(&[&str], Oid)],
        prefix: &str,
        written_trees: &mut Vec<Oid>,
    ) -> Result<Oid> {
        let conflict = |name: &str| EvidenceError::CorruptTip {
            branch: self.branch_name.clone(),
            commit: String::new(),
            reason: format!(
                "{prefix}{name} already exists on the branch; records are never replaced"
            ),
        };
        // Name → (mode, id), as the tree builder holds them.
        let mut entries: BTreeMap<Vec<u8>, (u32, Oid)> = BTreeMap::new();
        if let Some(base) = base {
            for entry in base.iter() {
                let mode = u32::try_from(entry.filemode_raw()).unwrap_or(0) & 0xffff;
                entries.insert(entry.name_bytes().to_vec(), (mode, entry.id()));
            }
        }
        let mut directories: BTreeMap<&str, Vec<(&[&str], Oid)>> = BTreeMap::new();
        for (components, blob) in files {
            match components {
                [] => {}
                [name] => {
                    if entries.contains_key(name.as_bytes()) {
                        return Err(conflict(name));
                    }
                    check_entry_name(name, prefix)?;
                    entries.insert(name.as_bytes().to_vec(), (0o100644, *blob));
                }
                [directory, deeper @ ..] => {
                    directories
                        .entry(directory)
                        .or_default()
                        .push((deeper, *blob));
                }
            }
        }
        for (directory, deeper) in directories {
            let existing = match base.and_then(|tree| tree.get_name(directory)) {
                Some(entry) if entry.kind() == Some(ObjectType::Tree) => Some(
                    repository
                        .find_tree(entry.id())
                        .map_err(git_context(format!("cannot read {prefix}{directory}")))?,
                ),
                Some(_) => return Err(conflict(directory)),
                None => None,
            };
            let subtree = self.tree_of_new_files(
                repository,
                odb,
                existing.as_ref(),
                &deeper,
                &format!("{prefix}{directory}/"),
                written_trees,
            )?;
            check_entry_name(directory, prefix)?;
            entries.insert(directory.as_bytes().to_vec(), (0o040000, subtree));
        }
        let tree_id = odb
            .write(ObjectType::Tree, &tree_content(entries))
            .map_err(git_context("cannot write a tree"))?;
        written_trees.push(tree_id);
        Ok(tree_id)
    }

    /// Builds `base` plus `files` (paths split into components), creating
    /// directories as needed and refusing to replace anything that exists,
    /// with libgit2's tree builder (so every blob must exist in
    /// `repository`). The reference [`Self::tree_of_new_files`] is held to.
    #[cfg(test)]
    pub(super) fn tree_with_many_files(
        &self,
        repository: &Repository,
        base: Option<&Tree<'_>>,
        files: &[(&[&str], Oid)],
        prefix: &str,
        written_trees: &mut Vec<Oid>,
    ) -> Result<Oid> {
        let conflict = |name: &str| EvidenceError::CorruptTip {
            branch: self.branch_name.clone(),
            commit: String::new(),
            reason: format!(
                "{prefix}{name} already exists on the branch; records are never replaced"
            ),
        };
        let mut builder = repository
            .treebuilder(base)
            .map_err(git_context("cannot start a tree"))?;
        let mut directories: BTreeMap<&str, Vec<(&[&str], Oid)>> = BTreeMap::new();
        for (components, blob) in files {
            match components {
                [] => {}
                [name] => {
                    if builder
                        .get(name)
                        .map_err(git_context("cannot read a tree"))?
                        .is_some()
                    {
                        return Err(conflict(name));
                    }
                    builder
                        .insert(name, *blob, 0o100644)
                        .map_err(git_context(format!("cannot add {prefix}{name}")))?;
                }
                [directory, deeper @ ..] => {
                    directories
                        .entry(directory)
                        .or_default()
                        .push((deeper, *blob));
                }
            }
        }
        for (directory, deeper) in directories {
            let existing = match base.and_then(|tree| tree.get_name(directory)) {
                Some(entry) if entry.kind() == Some(ObjectType::Tree) => Some(
                    repository
                        .find_tree(entry.id())
                        .map_err(git_context(format!("cannot read {prefix}{directory}")))?,
                ),
                Some(_) => return Err(conflict(directory)),
                None => None,
            };
            let subtree = self.tree_with_many_files(
                repository,
                existing.as_ref(),
                &deeper,
                &format!("{prefix}{directory}/"),
                written_trees,
            )?;
            builder
                .insert(directory, subtree, 0o040000)
                .map_err(git_context(format!("cannot add {prefix}{directory}")))?;
        }
        let tree_id = builder
            .write()
            .map_err(git_context("cannot write a tree"))?;
        written_trees.push(tree_id);
        Ok(tree_id)
    }

    /// Streams `pack` into the repository's `objects/pack/` (indexed as it
    /// goes) and fsyncs the pack, its index and the directories holding
    /// them.
    fn write_pack_durably(&self, pack: PackSpool) -> Result<()> {
        if u32::try_from(pack.objects).is_err() {
            return Err(EvidenceError::InvalidInput {
                reason: "too many objects for one pack".to_string(),
            });
        }
        let odb = self
            .repository
            .odb()
            .map_err(git_context("cannot open the object database"))?;
        let mut writer = odb
            .packwriter()
            .map_err(git_context("cannot start writing a pack"))?;
        let checksum = pack
            .write_to(&mut writer)
            .map_err(|error| EvidenceError::Io {
                path: self.repository.path().join("objects/pack"),
                source: error,
            })?;
        writer
            .commit()
            .map_err(git_context("cannot index the batch's pack"))?;
        drop(writer);
        let objects = self.repository.commondir().join("objects");
        let pack_directory = objects.join("pack");
        // libgit2 names a pack after its trailing checksum.
        let name = format!("pack-{}", hex::encode(checksum));
        let mut synced = 0;
        for extension in ["pack", "idx", "rev"] {
            let path = pack_directory.join(format!("{name}.{extension}"));
            if sync_file_if_present(&path)? {
                synced += 1;
            }
        }
        if synced < 2 {
            // Not where expected: make every pack file durable.
            for entry in std::fs::read_dir(&pack_directory).map_err(io_context(&pack_directory))? {
                let path = entry.map_err(io_context(&pack_directory))?.path();
                sync_file_if_present(&path)?;
            }
        }
        sync_directory(&pack_directory)?;
        sync_directory(&objects)
    }

    /// The records a record commit adds, in sequence order: one for a
    /// one-record commit, all of them for a batch. Checks what
    /// [`Self::tip`] checks of each (its path and sequence are the ones its
    /// content implies, the last one's hash is the commit's), not the
    /// signatures: that is `verify`'s work.
    pub fn records_in_commit(&self, commit_id: Oid) -> Result<Vec<CommitRecord>> {
        let corrupt = |reason: String| EvidenceError::CorruptTip {
            branch: self.branch_name.clone(),
            commit: commit_id.to_string(),
            reason,
        };
        let commit = self
            .repository
            .find_commit(commit_id)
            .map_err(|error| corrupt(format!("not a commit: {error}")))?;
        let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        let count = claimed_record_count(&message);
        let tree = commit
            .tree()
            .map_err(|error| corrupt(format!("tree unreadable: {error}")))?;
        if count == 1 {
            let (tip, pack) = self.read_record_commit_with_pack(commit_id)?;
            let blob_of = |path: &str| -> Result<Oid> {
                tree.get_path(Path::new(path))
                    .map(|entry| entry.id())
                    .map_err(|_| corrupt(format!("{path} is missing from the commit")))
            };
            let pack_blob = blob_of(&tip.pack_path)?;
            let signature_blob = blob_of(&format!("{}.minisig", tip.pack_path))?;
            return Ok(vec![CommitRecord {
                tip,
                pack,
                pack_blob,
                signature_blob,
            }]);
        }
        let last = self.read_record_commit(commit_id)?;
        let first: u64 = trailer_value(&message, BATCH_FIRST_TRAILER)
            .and_then(|first| first.parse().ok())
            .ok_or_else(|| corrupt(format!("batch commit has no {BATCH_FIRST_TRAILER} trailer")))?;
        let parent_tree = commit.parent(0).ok().map(|parent| parent.tree_id());
        let mut trees = TreeCache::new(&self.repository);
        let added = trees
            .added_files(parent_tree, commit.tree_id())
            .map_err(|violation| corrupt(violation.reason))?;
        let pairs = batch_record_files(&added).map_err(|(_, reason)| corrupt(reason))?;
        if pairs.len() as u64 != count || last.sequence + 1 != first + count {
            return Err(corrupt(format!(
                "batch commit says records #{first}..#{} ({count}) but adds {} record(s)",
                last.sequence,
                pairs.len()
            )));
        }
        let mut records = Vec::with_capacity(pairs.len());
        for (index, (pack_file, signature_file)) in pairs.into_iter().enumerate() {
            let blob = self
                .repository
                .find_blob(pack_file.blob)
                .map_err(|_| corrupt(format!("{} is not a file", pack_file.path)))?;
            let pack: EvidencePack = serde_json::from_slice(blob.content()).map_err(|error| {
                corrupt(format!(
                    "{} is not an evidence pack: {error}",
                    pack_file.path
                ))
            })?;
            let sequence = first + index as u64;
            if pack.sequence != sequence || pack_path(&pack) != pack_file.path {
                return Err(corrupt(format!(
                    "{} holds record #{} where record #{sequence} belongs",
                    pack_file.path, pack.sequence
                )));
            }
            records.push(CommitRecord {
                tip: ChainTip {
                    commit: commit_id.to_string(),
                    sequence,
                    pack_sha256: sha256_hex(blob.content()),
                    pack_path: pack_file.path.clone(),
                },
                pack,
                pack_blob: pack_file.blob,
                signature_blob: signature_file.blob,
            });
        }
        if records.last().map(|record| &record.tip.pack_sha256) != Some(&last.pack_sha256) {
            return Err(corrupt(
                "the batch's last pack is not the one its trailers name".to_string(),
            ));
        }
        Ok(records)
    }

    /// The records the tip commit adds (every record of a batch; none when
    /// the branch does not exist yet), checked as [`Self::records_in_commit`]
    /// checks them. How a writer that may have crashed after an append
    /// recognises records already on the branch.
    pub fn tip_records(&self) -> Result<Vec<CommitRecord>> {
        match self.tip_commit()? {
            Some(commit) => self.records_in_commit(commit),
            None => Ok(Vec::new()),
        }
    }

    /// The sequences `first..=last` of the records a record commit adds,
    /// from its message (the last record is checked as [`Self::tip`]
    /// checks it).
    pub fn commit_record_range(&self, commit_id: Oid) -> Result<(u64, ChainTip)> {
        let last = self.read_record_commit(commit_id)?;
        let commit = self
            .repository
            .find_commit(commit_id)
            .map_err(git_context(format!("cannot read commit {commit_id}")))?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        let count = claimed_record_count(&message);
        let first = last.sequence.saturating_sub(count - 1).max(1);
        Ok((first, last))
    }
}

/// A version 2 pack file being built: its objects, each stored whole (no
/// deltas), zlib-compressed at the fastest level, in the order pushed. The
/// header (which counts the objects) and the SHA-1 trailer are added as it
/// is written out ([`Self::write_to`]); until then it holds only the
/// compressed entries, in chunks of [`PackSpool::CHUNK`] bytes.
pub(super) struct PackSpool {
    chunks: Vec<Vec<u8>>,
    objects: usize,
    encoder: flate2::write::ZlibEncoder<Vec<u8>>,
    /// The compressed bytes of the last object (kept for its capacity).
    spare: Vec<u8>,
}

impl PackSpool {
    const CHUNK: usize = 64 * 1024;

    pub(super) fn new() -> Self {
        Self {
            chunks: Vec::new(),
            objects: 0,
            encoder: flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast()),
            spare: Vec::new(),
        }
    }

    /// Appends one object of `kind` with content `data`.
    pub(super) fn push(&mut self, kind: ObjectType, data: &[u8]) -> Result<()> {
        let invalid = |reason: String| EvidenceError::InvalidInput { reason };
        let type_code: u8 = match kind {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            other => return Err(invalid(format!("cannot pack a {other:?}"))),
        };
        let mut header = [0u8; 16];
        let mut length = 0;
        let mut size = data.len();
        let mut byte = (type_code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            header[length] = byte | 0x80;
            length += 1;
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        header[length] = byte;
        self.extend(&header[..=length]);
        self.encoder
            .write_all(data)
            .map_err(|error| invalid(format!("cannot compress an object: {error}")))?;
        // Finishes this object's stream and starts the next one afresh.
        let compressed = self
            .encoder
            .reset(std::mem::take(&mut self.spare))
            .map_err(|error| invalid(format!("cannot compress an object: {error}")))?;
        self.extend(&compressed);
        self.spare = compressed;
        self.spare.clear();
        self.objects += 1;
        Ok(())
    }

    fn extend(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < Self::CHUNK => {
                    let take = bytes.len().min(Self::CHUNK - chunk.len());
                    chunk.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                }
                _ => self.chunks.push(Vec::with_capacity(Self::CHUNK)),
            }
        }
    }

    /// Writes the whole pack file (header, objects, trailer) to `out`,
    /// dropping each chunk once written; the trailer (the SHA-1 of all
    /// that precedes it, which names the pack).
    pub(super) fn write_to(self, out: &mut impl Write) -> std::io::Result<[u8; 20]> {
        use sha1::{Digest, Sha1};
        let count = u32::try_from(self.objects).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "too many objects for one pack",
            )
        })?;
        let mut checksum = Sha1::new();
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        checksum.update(&header);
        out.write_all(&header)?;
        for chunk in self.chunks {
            checksum.update(&chunk);
            out.write_all(&chunk)?;
        }
        let trailer: [u8; 20] = checksum.finalize().into();
        out.write_all(&trailer)?;
        Ok(trailer)
    }
}

/// The content of a tree object of `entries` (name → mode and id), as
/// libgit2's tree builder writes it: entries in git's order (a tree's name
/// compared as if it ended in `/`), each `<mode in octal> <name>\0<id>`.
fn tree_content(entries: BTreeMap<Vec<u8>, (u32, Oid)>) -> Vec<u8> {
    let mut sorted: Vec<(Vec<u8>, u32, Oid)> = entries
        .into_iter()
        .map(|(mut name, (mode, id))| {
            if mode & 0o170000 == 0o040000 {
                name.push(b'/');
            }
            (name, mode, id)
        })
        .collect();
    sorted.sort_by(|left, right| left.0.cmp(&right.0));
    let mut content = Vec::with_capacity(sorted.len() * 72);
    for (mut name, mode, id) in sorted {
        if mode & 0o170000 == 0o040000 {
            name.pop();
        }
        content.extend_from_slice(format!("{mode:o} ").as_bytes());
        content.extend_from_slice(&name);
        content.push(0);
        content.extend_from_slice(id.as_bytes());
    }
    content
}

/// Refuses, as libgit2's tree builder does, a name no tree entry may have.
fn check_entry_name(name: &str, prefix: &str) -> Result<()> {
    let invalid = name.is_empty()
        || name == "."
        || name == ".."
        || name.eq_ignore_ascii_case(".git")
        || name.contains(['/', '\0']);
    if invalid {
        return Err(EvidenceError::InvalidInput {
            reason: format!("cannot add {prefix}{name}: invalid name for a tree entry"),
        });
    }
    Ok(())
}

/// The pack file `encode_pack` made in one buffer before packs were
/// streamed: the reference [`PackSpool`] is held to.
#[cfg(test)]
pub(super) fn encode_pack(objects: &[(ObjectType, &[u8])]) -> Result<Vec<u8>> {
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use sha1::{Digest, Sha1};
    let invalid = |reason: String| EvidenceError::InvalidInput { reason };
    let count = u32::try_from(objects.len())
        .map_err(|_| invalid("too many objects for one pack".to_string()))?;
    let mut pack = Vec::new();
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&count.to_be_bytes());
    for (kind, data) in objects {
        let type_code: u8 = match kind {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            other => return Err(invalid(format!("cannot pack a {other:?}"))),
        };
        let mut size = data.len();
        let mut byte = (type_code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            pack.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(byte);
        let mut encoder = ZlibEncoder::new(pack, Compression::fast());
        encoder
            .write_all(data)
            .map_err(|error| invalid(format!("cannot compress an object: {error}")))?;
        pack = encoder
            .finish()
            .map_err(|error| invalid(format!("cannot compress an object: {error}")))?;
    }
    let checksum = Sha1::digest(&pack);
    pack.extend_from_slice(checksum.as_slice());
    Ok(pack)
}

/// fsyncs `path` if it exists; whether it did.
fn sync_file_if_present(path: &Path) -> Result<bool> {
    match File::open(path) {
        Ok(file) => {
            file.sync_all().map_err(io_context(path))?;
            Ok(true)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_context(path)(error)),
    }
}
