//! Evidence: signed, hash-chained records of every decision ringmaster takes,
//! committed to an append-only branch of the governed repository.
//!
//! One record is one [`EvidencePack`]: a canonical JSON document
//! ([`canonical_json`]) whose SHA-256 is chained to the previous record's,
//! signed with minisign ([`SigningKey`]) with a trusted comment that binds
//! the sequence number, the pack hash, the previous hash and the source
//! commit. [`EvidenceBranch::append`] commits the pack and its `.minisig`
//! on the evidence branch (never touching the work tree, index or `HEAD`),
//! and [`verify_branch`] walks the branch from its root and checks every
//! rule again, so that an edit, a removal or a reordering is named.
//!
//! Architecture invariant: this module writes only objects and the one
//! evidence branch reference; records are only ever added (DESIGN.md §4,
//! invariants 4 and 6).

mod batch;
#[cfg(test)]
mod batch_tests;
mod branch;
pub mod bundle;
mod canonical;
mod keys;
mod pack;
mod read;
mod record;
mod remote;
mod tree_diff;
mod verify;
#[cfg(test)]
mod verify_tests;
pub mod worm;
mod worm_verify;

pub use batch::CommitRecord;
pub use branch::{
    AppendContext, AppendedRecord, ChainTip, DEFAULT_EVIDENCE_BRANCH, EvidenceBranch,
};
pub use canonical::{canonical_json, sha256_hex};
pub use keys::{
    KeyPaths, PUBLIC_KEY_FILE_NAME, SECRET_KEY_FILE_NAME, SigningKey, VerifyingKey,
    generate_keypair,
};
pub use pack::{
    ChainPosition, EventChainAnchor, EvidencePack, EvidencePackInput, GENESIS_PREVIOUS_PACK_SHA256,
    GitIdentity, MAX_RECORDS_PER_COMMIT, PACK_FORMAT, PreparedRecord, RecordType,
    batch_commit_message, commit_message, pack_path, prepare_anchored_record,
    prepare_anchored_records, prepare_record, trusted_comment,
};
pub use read::{RecordFiles, RecordSummary};
pub use remote::{FetchOutcome, PushReport};
pub use verify::{ExpectedHead, Failure, VerifyReport, verify_branch, verify_branch_with_progress};
pub use worm_verify::{ObjectFinding, ObjectStoreReport, verify_object_store};

use std::path::PathBuf;

/// Everything that can stop an evidence operation. Integrity problems found
/// by [`verify_branch`] are not errors: they are reported in a
/// [`VerifyReport`].
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A git operation failed; `context` says which.
    #[error("{context}: {source}")]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
    /// `generate_keypair` refuses to overwrite a key unless forced.
    #[error("{path} already exists; refusing to overwrite a key (pass force to replace it)")]
    KeyExists { path: PathBuf },
    /// A key file could not be loaded or decrypted.
    #[error("cannot load key {path}: {reason}")]
    KeyLoad { path: PathBuf, reason: String },
    /// minisign refused to produce a key or a signature.
    #[error("minisign: {reason}")]
    Signing { reason: String },
    /// The caller's record input breaks a rule of the pack format.
    #[error("invalid evidence input: {reason}")]
    InvalidInput { reason: String },
    /// The branch name is not a valid git branch name, or names a branch
    /// evidence must never be written to.
    #[error("refusing to use {branch:?} as the evidence branch: {reason}")]
    UnusableBranch { branch: String, reason: String },
    /// The evidence branch does not exist.
    #[error("branch {branch:?} does not exist in {repository}")]
    BranchNotFound { branch: String, repository: PathBuf },
    /// The branch moved between reading its tip and updating it (another
    /// writer appended): nothing was recorded; read the new tip and retry.
    #[error(
        "evidence branch {branch:?} moved while appending (expected {expected}, found {found}); nothing was recorded, retry"
    )]
    BranchMoved {
        branch: String,
        expected: String,
        found: String,
    },
    /// The tip record of the branch is not a well-formed evidence record, so
    /// nothing can be chained to it. Run `verify` on the branch.
    #[error(
        "the tip of evidence branch {branch:?} (commit {commit}) is not a valid record: {reason}"
    )]
    CorruptTip {
        branch: String,
        commit: String,
        reason: String,
    },
    /// The remote refused the push because it is not a fast-forward: fetch,
    /// reconcile and append again. Evidence is never force-pushed.
    #[error("push of {branch:?} to {remote} rejected: {reason}")]
    PushRejected {
        remote: String,
        branch: String,
        reason: String,
    },
    /// The record is committed on the branch but its WORM copy failed: it
    /// does not count as written and nothing may be published on it. The
    /// next append or [`EvidenceBranch::copy_to_worm`] copies it.
    #[error("evidence record #{sequence} is committed but not copied to the WORM store: {source}")]
    NotCopied {
        sequence: u64,
        #[source]
        source: Box<worm::WormError>,
    },
    /// The branch no longer holds the last record this writer appended: it
    /// was rewound, forked or replaced behind ringmaster's back. Nothing was
    /// signed (a second, different record with the same sequence would
    /// otherwise exist).
    #[error(
        "evidence branch {branch:?} no longer holds record #{sequence} (sha256 {pack_sha256}) that \
         this daemon wrote: {found}. Nothing was signed. Restore the branch (e.g. fetch it back \
         from the evidence remote) and run `ringmaster verify --state`"
    )]
    Rewritten {
        branch: String,
        sequence: u64,
        pack_sha256: String,
        found: String,
    },
    /// The evidence remote no longer holds the last commit this writer
    /// pushed to it: its branch was rewound, deleted or replaced by another
    /// history. Nothing was re-signed on top of it and nothing was pushed.
    #[error(
        "evidence remote {remote} no longer holds commit {pushed}, the last evidence this daemon \
         pushed to it: {found}. Its branch {branch:?} was rewound or replaced by another history; \
         nothing was re-signed on top of it, and publishing stops until it holds that commit again. \
         Inspect it (git fetch {remote} {branch} && git log FETCH_HEAD), restore the records \
         this daemon pushed, and run `ringmaster verify`"
    )]
    RemoteForked {
        remote: String,
        branch: String,
        pushed: String,
        found: String,
    },
    /// The remote failed often enough that its circuit breaker is open:
    /// nothing was sent; the push is retried when the breaker lets a probe
    /// through.
    #[error("evidence remote {remote} unavailable: {detail}")]
    Unavailable { remote: String, detail: String },
}

/// Shorthand for results of this module.
pub type Result<T, E = EvidenceError> = std::result::Result<T, E>;

/// Wraps a git2 error with what was being done.
pub(crate) fn git_context(context: impl Into<String>) -> impl FnOnce(git2::Error) -> EvidenceError {
    let context = context.into();
    move |source| EvidenceError::Git { context, source }
}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_context(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EvidenceError {
    let path = path.into();
    move |source| EvidenceError::Io { path, source }
}
