//! Where an approval or exception record already on the branch came from.
//!
//! A record that a commit does not touch was still put there by some
//! earlier commit, and that commit is what vouches for it: the pull request
//! it merged, whose reviewers must include the record's decider, or a valid
//! SSH signature by the decider's key on the commit that wrote it — a direct
//! push without one vouches for nothing. Without this a record refused when
//! it was pushed directly would be trusted by the next commit, which merely
//! inherits it. The introducing commit is found by walking first parents
//! back while the record's blob stays the same (`source::history`); a
//! record the root of authority already had is trusted (the bootstrap).

use crate::authority::{CommitSignature, KeyRing};
use serde::Serialize;

/// Folders whose records are claims about someone's decision.
pub const RECORD_FOLDERS: [&str; 2] = ["approvals", "exceptions"];

/// What vouches for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordProvenance {
    /// The root of authority had it (the daemon's first commit, or the
    /// repository's first commit).
    Bootstrap,
    /// A merged pull request introduced it; these logins approved its head.
    PullRequest {
        number: u64,
        approving_logins: Vec<String>,
        /// The merge commit and the branch commit that wrote the record.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        signatures: Vec<CommitSignature>,
    },
    /// A commit that merged no pull request introduced it.
    DirectPush {
        commit: String,
        /// The commit (and, for a local merge, the merged commit that
        /// wrote the record) with what its signature proves.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        signatures: Vec<CommitSignature>,
    },
}

impl RecordProvenance {
    /// Whether this provenance vouches for a record decided by `principal`
    /// (forge login `login`), with the signing keys in force; `Err` says why
    /// not.
    pub fn vouches_for(
        &self,
        login: Option<&str>,
        principal: &str,
        keys: &KeyRing,
    ) -> Result<(), String> {
        match self {
            RecordProvenance::Bootstrap => Ok(()),
            RecordProvenance::PullRequest {
                number,
                approving_logins,
                signatures,
            } => {
                let approved = login.is_some_and(|login| {
                    approving_logins
                        .iter()
                        .any(|l| l.eq_ignore_ascii_case(login))
                });
                if approved {
                    return Ok(());
                }
                keys.signed_by(principal, signatures)
                    .map(|_| ())
                    .map_err(|why| {
                        format!(
                            "{principal} did not approve pull request #{number}, which added it; {why}"
                        )
                    })
            }
            RecordProvenance::DirectPush { signatures, .. } => keys
                .signed_by(principal, signatures)
                .map(|_| ())
                .map_err(|why| format!("it was pushed without a pull request; {why}")),
        }
    }
}
