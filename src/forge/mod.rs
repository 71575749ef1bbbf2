//! GitHub: pull requests as change requests, reviews as CAB approvals, the
//! `ringmaster/policy` check, and the forge facts of merged commits.
//!
//! The pure part judges and renders: [`review`] (where each reviewer
//! stands), [`approvals`] (reviews into approval records; records a change
//! adds must be earned), [`changes`] (what a change touches), [`check`] (the
//! PR verdict, judged by the base branch's rules), [`comment`] (the one PR
//! comment), [`merge`] (the decision on a merged commit, with its reviews),
//! [`rate_limit`] (when GitHub may be called again), [`signature`] and
//! [`webhook`] (deliveries). The shell talks to the world: [`client`]
//! (octocrab, App or token auth, rate limits), [`fetch`] (PR commits into
//! the repository) and [`pull_requests`] (check, publish, poll, merge facts).
//!
//! The HTTP side of webhooks lives in `api`; the daemon wires both in
//! `daemon::forge`. See `docs/github.md` for setting up GitHub.

pub mod approvals;
pub mod carried;
pub mod changes;
pub mod check;
pub mod client;
pub mod comment;
pub mod fetch;
pub mod incremental;
pub mod merge;
pub mod provenance;
pub mod pull_requests;
pub mod rate_limit;
pub mod review;
pub mod secret;
pub mod signature;
pub mod webhook;
pub mod wire;

pub use check::{CheckState, PullRequestVerdict};
pub use client::{GitHubAuth, GitHubClient, GitHubSettings};
pub use merge::{ForgeEvidence, MergeFacts, evaluate_commit};
pub use pull_requests::{CheckOutcome, Forge};
pub use secret::{AppPrivateKey, GitHubToken, WebhookSecret};

use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The name of the status or check run branch protection requires.
pub const CHECK_NAME: &str = "ringmaster/policy";

/// The wall clock, injected (the same shape as `daemon::Clock`).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What can go wrong talking to GitHub or reading a pull request's commits.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The client could not be built (bad base URL, unreadable App key).
    #[error("GitHub client: {0}")]
    Setup(String),
    /// No response (connection refused, timeout, token exchange failed).
    #[error("GitHub API {method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// GitHub answered with an error status.
    #[error("GitHub API {method} {path} answered {status}: {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// A rate limit is in force; no call is sent before `until`.
    #[error("GitHub rate limit ({kind:?}) in force until {until}; the poll retries after it")]
    RateLimited {
        kind: rate_limit::LimitKind,
        until: DateTime<Utc>,
    },
    /// GitHub did not answer (or answered 5xx) often enough that the
    /// circuit breaker opened: no request is sent before `until`.
    #[error("GitHub API unavailable until {until} (circuit open; last error: {last_error})")]
    Unavailable {
        until: DateTime<Utc>,
        last_error: String,
    },
    /// A response did not have the documented shape.
    #[error("GitHub API {path}: unexpected response: {message}")]
    Decode { path: String, message: String },
    /// The PR head commit is not in the repository even after fetching
    /// `refs/pull/<n>/head` (pushed again meanwhile: the next event re-checks).
    #[error(
        "pull request #{number}: head commit {sha} is not in the repository after fetching refs/pull/{number}/head"
    )]
    HeadMissing { number: u64, sha: String },
    #[error("base branch {branch} is not in the repository")]
    BaseMissing { branch: String },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// Blocking forge calls need the daemon's multi-threaded runtime.
    #[error("forge calls need a multi-threaded tokio runtime")]
    NoRuntime,
}

/// Merge facts read synchronously, for commit processing (which runs in a
/// blocking section of the daemon's multi-threaded runtime).
pub trait MergeFactsSource {
    /// How `commit` reached the branch, with the review approvals carried
    /// from earlier merges (read from `evidence_branch` of `repository`) and
    /// the provenance of the first parent's records (`root`: the root of
    /// authority, whose records are the bootstrap).
    fn merge_facts_blocking(
        &self,
        repo: &crate::source::GovernedRepo,
        evidence_branch: &str,
        commit: &str,
        root: Option<git2::Oid>,
    ) -> Result<MergeFacts, ForgeError>;
}

impl MergeFactsSource for Forge {
    fn merge_facts_blocking(
        &self,
        repo: &crate::source::GovernedRepo,
        evidence_branch: &str,
        commit: &str,
        root: Option<git2::Oid>,
    ) -> Result<MergeFacts, ForgeError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ForgeError::NoRuntime)?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(ForgeError::NoRuntime);
        }
        let mut facts = tokio::task::block_in_place(|| handle.block_on(self.merge_facts(commit)))?;
        facts.carried = self.carried_approvals(&repo.repository, evidence_branch)?;
        let commit = git2::Oid::from_str(commit)?;
        if let Some(parent) = repo.repository.find_commit(commit)?.parent_ids().next() {
            facts.provenance = tokio::task::block_in_place(|| {
                handle.block_on(self.record_provenance(repo, parent, root))
            })?;
        }
        Ok(facts)
    }
}
