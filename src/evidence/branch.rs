//! The evidence branch: appending signed records as commits, with
//! compare-and-swap on the branch reference and durable objects.
//!
//! Only objects and the branch reference (with its reflog) are written:
//! never the work tree, the index or `HEAD`, and never `main`/`master` or
//! the branch `HEAD` points to.
//!
//! Durability: libgit2 writes loose objects without fsync unless
//! `core.fsyncObjectFiles` is set, and ringmaster does not change the
//! governed repository's configuration. So `append` fsyncs, before moving
//! the branch, every loose object file it wrote (blobs, trees, commit), the
//! fan-out directories holding them and `objects/` itself; after moving
//! the branch it fsyncs the reference file and its directory. When `append`
//! returns, the record survives a crash or power loss. (Objects in an
//! alternate object directory are out of scope.)

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, ObjectType, Oid, Repository, Signature, Time, Tree};

use super::keys::{SigningKey, sync_directory};
use super::pack::{
    ChainPosition, EventChainAnchor, EvidencePack, EvidencePackInput, RecordType, pack_path,
    prepare_anchored_record, trailer_value,
};
use super::verify::ExpectedHead;
use super::{EvidenceError, Result, git_context, io_context, sha256_hex};

/// The branch evidence goes to unless configured otherwise.
pub const DEFAULT_EVIDENCE_BRANCH: &str = "evidence";

/// Branches evidence is never written to, whatever the configuration says.
const FORBIDDEN_BRANCHES: [&str; 2] = ["main", "master"];

/// The last record of the branch, as `append` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    pub commit: String,
    pub sequence: u64,
    pub pack_sha256: String,
    pub pack_path: String,
}

/// What the writer knows that the branch must agree with before anything
/// is signed, and what it anchors in the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendContext {
    /// The last record this writer appended (the daemon: its store's
    /// evidence head). The branch must still hold it, at that sequence with
    /// that hash; a branch rewound below it or forked at it is refused with
    /// [`EvidenceError::Rewritten`] before anything is signed.
    pub known_head: Option<ExpectedHead>,
    /// The state store's event log head, written into the pack.
    pub event_chain: Option<EventChainAnchor>,
}

/// What `append` committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedRecord {
    pub sequence: u64,
    pub pack_id: String,
    pub record_type: RecordType,
    pub intent_id: Option<String>,
    pub pack_sha256: String,
    pub previous_pack_sha256: String,
    pub pack_path: String,
    pub signature_path: String,
    /// The evidence commit (hex).
    pub commit: String,
}

impl AppendedRecord {
    /// The head to pass to the next `verify_branch`, so that a later
    /// rewrite dropping this record is detected.
    pub fn expected_head(&self) -> ExpectedHead {
        ExpectedHead {
            sequence: self.sequence,
            pack_sha256: self.pack_sha256.clone(),
        }
    }
}

impl fmt::Display for AppendedRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "evidence #{} {}",
            self.sequence, self.record_type
        )?;
        if let Some(intent_id) = &self.intent_id {
            write!(formatter, " {intent_id}")?;
        }
        write!(
            formatter,
            " committed as {} ({}, sha256 {})",
            short(&self.commit),
            self.pack_path,
            self.pack_sha256
        )
    }
}

pub(crate) fn short(object_id: &str) -> &str {
    object_id.get(..12).unwrap_or(object_id)
}

/// An evidence branch in a governed repository (bare or not).
pub struct EvidenceBranch {
    pub(super) repository: Repository,
    pub(super) repository_path: PathBuf,
    pub(super) branch_name: String,
    pub(super) reference_name: String,
    pub(super) committer_name: String,
    pub(super) committer_email: String,
    /// The WORM copy every append also writes, when configured.
    pub(super) worm: Option<super::worm::WormCopy>,
    /// Whether `append` copies at once (false when the daemon pushes to a
    /// remote first and copies after the push).
    pub(super) copy_on_append: bool,
    /// What pushes and fetches of the evidence remote authenticate with.
    pub(super) credentials: crate::source::credentials::GitCredentials,
}

impl fmt::Debug for EvidenceBranch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EvidenceBranch")
            .field("repository", &self.repository_path)
            .field("branch", &self.branch_name)
            .finish()
    }
}

impl EvidenceBranch {
    /// Opens the repository at `repository_path` (no discovery upwards) for
    /// evidence on `branch_name` (usually [`DEFAULT_EVIDENCE_BRANCH`]). The
    /// branch need not exist: the first append creates it as an orphan.
    pub fn open(repository_path: &Path, branch_name: &str) -> Result<Self> {
        let repository = Repository::open(repository_path).map_err(git_context(format!(
            "cannot open repository {}",
            repository_path.display()
        )))?;
        let reference_name = format!("refs/heads/{branch_name}");
        let unusable = |reason: &str| EvidenceError::UnusableBranch {
            branch: branch_name.to_string(),
            reason: reason.to_string(),
        };
        if !git2::Reference::is_valid_name(&reference_name) {
            return Err(unusable("not a valid git branch name"));
        }
        if FORBIDDEN_BRANCHES.contains(&branch_name) {
            return Err(unusable("evidence is never written to main or master"));
        }
        let branch = Self {
            repository,
            repository_path: repository_path.to_path_buf(),
            branch_name: branch_name.to_string(),
            reference_name,
            committer_name: "ringmaster".to_string(),
            committer_email: "ringmaster@localhost".to_string(),
            worm: None,
            copy_on_append: true,
            credentials: Default::default(),
        };
        branch.ensure_not_head()?;
        Ok(branch)
    }

    /// Sets the identity of evidence commits (default
    /// `ringmaster <ringmaster@localhost>`).
    pub fn with_committer(mut self, name: &str, email: &str) -> Self {
        self.committer_name = name.to_string();
        self.committer_email = email.to_string();
        self
    }

    /// The branch name, e.g. `evidence`.
    pub fn branch_name(&self) -> &str {
        &self.branch_name
    }

    /// The repository path given to `open`.
    pub fn repository_path(&self) -> &Path {
        &self.repository_path
    }

    pub(super) fn ensure_not_head(&self) -> Result<()> {
        let head = self
            .repository
            .find_reference("HEAD")
            .map_err(git_context("cannot read HEAD"))?;
        if head.symbolic_target_bytes() == Some(self.reference_name.as_bytes()) {
            return Err(EvidenceError::UnusableBranch {
                branch: self.branch_name.clone(),
                reason: "it is the branch HEAD points to; evidence never moves HEAD".to_string(),
            });
        }
        Ok(())
    }

    /// The commit the branch points to, if the branch exists.
    pub(super) fn tip_commit(&self) -> Result<Option<Oid>> {
        match self.repository.find_reference(&self.reference_name) {
            Ok(reference) => {
                reference
                    .target()
                    .map(Some)
                    .ok_or_else(|| EvidenceError::CorruptTip {
                        branch: self.branch_name.clone(),
                        commit: String::new(),
                        reason: "the branch is a symbolic reference".to_string(),
                    })
            }
            Err(error) if error.code() == ErrorCode::NotFound => Ok(None),
            Err(error) => Err(git_context(format!("cannot read {}", self.reference_name))(
                error,
            )),
        }
    }

    /// The last record of the branch, or `None` when the branch does not
    /// exist yet. Checks that the tip commit really is a record (its pack
    /// hashes to its `Evidence-Sha256` trailer), so nothing is ever chained
    /// onto a damaged tip.
    pub fn tip(&self) -> Result<Option<ChainTip>> {
        match self.tip_commit()? {
            Some(commit) => self.read_record_commit(commit).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn read_record_commit(&self, commit_id: Oid) -> Result<ChainTip> {
        self.read_record_commit_with_pack(commit_id)
            .map(|(tip, _)| tip)
    }

    /// Reads and checks the record of a record commit (see [`Self::tip`]).
    pub(super) fn read_record_commit_with_pack(
        &self,
        commit_id: Oid,
    ) -> Result<(ChainTip, EvidencePack)> {
        let corrupt = |reason: String| EvidenceError::CorruptTip {
            branch: self.branch_name.clone(),
            commit: commit_id.to_string(),
            reason,
        };
        let commit = self
            .repository
            .find_commit(commit_id)
            .map_err(|error| corrupt(format!("not a commit: {error}")))?;
        let message = commit.message().unwrap_or_default();
        let trailer = |key: &str| {
            trailer_value(message, key)
                .ok_or_else(|| corrupt(format!("commit has no {key} trailer")))
        };
        let path = trailer("Evidence-Path")?.to_string();
        let sequence: u64 = trailer("Evidence-Sequence")?
            .parse()
            .map_err(|_| corrupt("Evidence-Sequence is not a number".to_string()))?;
        let claimed_sha256 = trailer("Evidence-Sha256")?;
        let tree = commit
            .tree()
            .map_err(|error| corrupt(format!("tree unreadable: {error}")))?;
        let entry = tree
            .get_path(Path::new(&path))
            .map_err(|_| corrupt(format!("{path} is missing from the commit")))?;
        let blob = self
            .repository
            .find_blob(entry.id())
            .map_err(|_| corrupt(format!("{path} is not a file")))?;
        let pack_sha256 = sha256_hex(blob.content());
        if pack_sha256 != claimed_sha256 {
            return Err(corrupt(format!(
                "{path} has sha256 {pack_sha256}, the commit says {claimed_sha256}"
            )));
        }
        let pack: EvidencePack = serde_json::from_slice(blob.content())
            .map_err(|error| corrupt(format!("{path} is not an evidence pack: {error}")))?;
        if pack.sequence != sequence || pack_path(&pack) != path {
            return Err(corrupt(format!(
                "{path} holds record #{} but the commit says #{sequence}",
                pack.sequence
            )));
        }
        let tip = ChainTip {
            commit: commit_id.to_string(),
            sequence,
            pack_sha256,
            pack_path: path,
        };
        Ok((tip, pack))
    }

    /// Signs and commits one record on the branch and returns once it is
    /// durable. The sequence and previous hash come from the branch tip;
    /// the new commit's tree is the tip's tree plus the pack and its
    /// signature. Fails with [`EvidenceError::BranchMoved`] (recording
    /// nothing) if another writer moved the branch meanwhile, and with
    /// [`EvidenceError::Rewritten`] (signing nothing) if the branch no longer
    /// holds `context.known_head`.
    ///
    /// With a WORM copy configured ([`Self::with_worm_copy`]), the record
    /// (and any earlier one not copied yet) is then written to the object
    /// store; if that fails the record stays committed but the result is
    /// [`EvidenceError::NotCopied`]: it does not count as written.
    pub fn append(
        &self,
        input: EvidencePackInput,
        signer: &SigningKey,
        context: &AppendContext,
    ) -> Result<AppendedRecord> {
        self.ensure_not_head()?;
        let created_at = input.created_at;
        let parent_id = self.tip_commit()?;
        if let Some(known) = &context.known_head {
            self.check_holds(parent_id, known)?;
        }
        let record =
            self.write_record_commit(parent_id, input, context.event_chain.clone(), signer)?;
        let commit_id = Oid::from_str(&record.commit).map_err(git_context("invalid commit id"))?;
        self.move_branch(
            parent_id,
            commit_id,
            &format!("ringmaster: evidence #{}", record.sequence),
        )?;
        if self.copy_on_append {
            self.copy_to_worm(created_at)
                .map_err(|source| EvidenceError::NotCopied {
                    sequence: record.sequence,
                    source: Box::new(source),
                })?;
        }
        Ok(record)
    }

    /// Checks that the branch whose tip is `tip` still holds `known` (the
    /// last record this writer appended): the tip is at or past its
    /// sequence, and the record at that sequence has its hash. Walks back
    /// from the tip only as far as `known`, normally zero or one record.
    pub fn check_holds(&self, tip: Option<Oid>, known: &ExpectedHead) -> Result<()> {
        let rewritten = |found: String| EvidenceError::Rewritten {
            branch: self.branch_name.clone(),
            sequence: known.sequence,
            pack_sha256: known.pack_sha256.clone(),
            found,
        };
        let Some(tip) = tip else {
            return Err(rewritten("the branch does not exist any more".into()));
        };
        let tip_record = self.read_record_commit(tip)?;
        if tip_record.sequence < known.sequence {
            return Err(rewritten(format!(
                "the branch ends at record #{} (commit {}): it was rewound",
                tip_record.sequence,
                short(&tip_record.commit)
            )));
        }
        let mut commit_id = tip;
        let mut cursor = tip_record;
        loop {
            let (first, _) = self.commit_record_range(commit_id)?;
            if first <= known.sequence {
                break;
            }
            let parent = self
                .repository
                .find_commit(commit_id)
                .and_then(|commit| commit.parent_id(0))
                .map_err(|_| {
                    rewritten(format!(
                        "record #{} (commit {}) has no parent record",
                        cursor.sequence,
                        short(&cursor.commit)
                    ))
                })?;
            commit_id = parent;
            cursor = self.read_record_commit(parent)?;
        }
        if cursor.sequence != known.sequence {
            // The record sits inside a batch commit.
            match self
                .records_in_commit(commit_id)?
                .into_iter()
                .find(|record| record.tip.sequence == known.sequence)
            {
                Some(record) => cursor = record.tip,
                None => {
                    return Err(rewritten(format!(
                        "commit {} does not hold record #{}: the branch was rewritten",
                        short(&cursor.commit),
                        known.sequence
                    )));
                }
            }
        }
        if cursor.pack_sha256 != known.pack_sha256 {
            return Err(rewritten(format!(
                "record #{} there is another one (sha256 {}, commit {}): the branch was forked or replaced",
                cursor.sequence,
                cursor.pack_sha256,
                short(&cursor.commit)
            )));
        }
        Ok(())
    }

    /// Writes (durably) the commit of the record for `input`, anchoring
    /// `event_chain`, on top of the record commit `parent_id`, without
    /// moving any reference.
    pub(super) fn write_record_commit(
        &self,
        parent_id: Option<Oid>,
        input: EvidencePackInput,
        event_chain: Option<EventChainAnchor>,
        signer: &SigningKey,
    ) -> Result<AppendedRecord> {
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
        let record = prepare_anchored_record(input, &position, event_chain, signer)?;

        let repository = &self.repository;
        let parent = parent_id
            .map(|id| repository.find_commit(id))
            .transpose()
            .map_err(git_context("cannot read the branch tip"))?;
        let base_tree = parent
            .as_ref()
            .map(|commit| commit.tree())
            .transpose()
            .map_err(git_context("cannot read the branch tip's tree"))?;

        let mut written_objects = Vec::with_capacity(8);
        let pack_blob = repository
            .blob(&record.pack_bytes)
            .map_err(git_context("cannot write the pack blob"))?;
        let signature_blob = repository
            .blob(record.signature.as_bytes())
            .map_err(git_context("cannot write the signature blob"))?;
        written_objects.extend([pack_blob, signature_blob]);
        let mut components: Vec<&str> = record.pack_path.split('/').collect();
        let pack_file_name = components.pop().unwrap_or_default();
        let signature_file_name = record.signature_path.rsplit('/').next().unwrap_or_default();
        let files = [
            (pack_file_name, pack_blob),
            (signature_file_name, signature_blob),
        ];
        let tree_id = self.tree_with_files(
            base_tree.as_ref(),
            &components,
            &files,
            &mut written_objects,
        )?;
        let tree = repository
            .find_tree(tree_id)
            .map_err(git_context("cannot read the new tree"))?;

        let time = Time::new(record.pack.created_at.timestamp(), 0);
        let identity = Signature::new(&self.committer_name, &self.committer_email, &time)
            .map_err(git_context("invalid committer identity"))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let commit_id = repository
            .commit(
                None,
                &identity,
                &identity,
                &record.commit_message,
                &tree,
                &parents,
            )
            .map_err(git_context("cannot write the evidence commit"))?;
        written_objects.push(commit_id);
        self.sync_objects(&written_objects)?;
        Ok(AppendedRecord {
            sequence: record.pack.sequence,
            pack_id: record.pack.pack_id,
            record_type: record.pack.record_type,
            intent_id: record.pack.intent_id,
            pack_sha256: record.pack_sha256,
            previous_pack_sha256: record.pack.previous_pack_sha256,
            pack_path: record.pack_path,
            signature_path: record.signature_path,
            commit: commit_id.to_string(),
        })
    }

    /// Builds `base` plus `files` in the directory `directories` (created
    /// as needed), refusing to replace anything that exists.
    pub(super) fn tree_with_files(
        &self,
        base: Option<&Tree<'_>>,
        directories: &[&str],
        files: &[(&str, Oid)],
        written_objects: &mut Vec<Oid>,
    ) -> Result<Oid> {
        let repository = &self.repository;
        let conflict = |name: &str| EvidenceError::CorruptTip {
            branch: self.branch_name.clone(),
            commit: String::new(),
            reason: format!("{name} already exists on the branch; records are never replaced"),
        };
        let mut builder = repository
            .treebuilder(base)
            .map_err(git_context("cannot start a tree"))?;
        match directories.split_first() {
            None => {
                for (name, blob) in files {
                    if base.and_then(|tree| tree.get_name(name)).is_some() {
                        return Err(conflict(name));
                    }
                    builder
                        .insert(name, *blob, 0o100644)
                        .map_err(git_context(format!("cannot add {name}")))?;
                }
            }
            Some((directory, deeper)) => {
                let existing = match base.and_then(|tree| tree.get_name(directory)) {
                    Some(entry) if entry.kind() == Some(ObjectType::Tree) => Some(
                        repository
                            .find_tree(entry.id())
                            .map_err(git_context(format!("cannot read {directory}")))?,
                    ),
                    Some(_) => return Err(conflict(directory)),
                    None => None,
                };
                let subtree =
                    self.tree_with_files(existing.as_ref(), deeper, files, written_objects)?;
                builder
                    .insert(directory, subtree, 0o040000)
                    .map_err(git_context(format!("cannot add {directory}")))?;
            }
        }
        let tree_id = builder
            .write()
            .map_err(git_context("cannot write a tree"))?;
        written_objects.push(tree_id);
        Ok(tree_id)
    }

    /// fsyncs the loose object files in `objects`, their directories and
    /// `objects/` (see the module documentation).
    fn sync_objects(&self, objects: &[Oid]) -> Result<()> {
        let objects_directory = self.repository.commondir().join("objects");
        let mut directories = BTreeSet::new();
        for object in objects {
            let hex = object.to_string();
            let directory = objects_directory.join(&hex[..2]);
            let path = directory.join(&hex[2..]);
            match File::open(&path) {
                Ok(file) => file.sync_all().map_err(io_context(&path))?,
                // Already stored in a pack file, which git wrote durably.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_context(&path)(error)),
            }
            directories.insert(directory);
        }
        for directory in &directories {
            sync_directory(directory)?;
        }
        sync_directory(&objects_directory)
    }

    /// Moves the branch from `expected` to `new_commit`, or fails with
    /// `BranchMoved` if it is not at `expected` any more; then makes the
    /// reference file durable.
    pub(super) fn move_branch(
        &self,
        expected: Option<Oid>,
        new_commit: Oid,
        log_message: &str,
    ) -> Result<()> {
        let update = match expected {
            Some(expected) => self.repository.reference_matching(
                &self.reference_name,
                new_commit,
                true,
                expected,
                log_message,
            ),
            None => self
                .repository
                .reference(&self.reference_name, new_commit, false, log_message),
        };
        if let Err(error) = update {
            return Err(match error.code() {
                ErrorCode::Modified | ErrorCode::Exists => EvidenceError::BranchMoved {
                    branch: self.branch_name.clone(),
                    expected: expected.map_or("no branch".to_string(), |id| id.to_string()),
                    found: self
                        .tip_commit()
                        .ok()
                        .flatten()
                        .map_or("no branch".to_string(), |id| id.to_string()),
                },
                _ => git_context(format!("cannot update {}", self.reference_name))(error),
            });
        }
        let reference_path = self.repository.commondir().join(&self.reference_name);
        if let Ok(file) = File::open(&reference_path) {
            file.sync_all().map_err(io_context(&reference_path))?;
            if let Some(directory) = reference_path.parent() {
                sync_directory(directory)?;
            }
        }
        Ok(())
    }
}
