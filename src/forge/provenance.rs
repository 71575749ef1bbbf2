//! Where an approval or exception record already on the branch came from.
//!
//! A record that a commit does not touch was still put there by some
//! earlier commit, and that commit is what vouches for it: the pull request
//! it merged, whose reviewers must include the record's decider — or a direct
//! push, which vouches for nothing. Without this a record refused when it
//! was pushed directly would be trusted by the next commit, which merely
//! inherits it. The introducing commit is found by walking first parents
//! back while the record's blob stays the same; a record the repository's
//! first commit already had is trusted (the bootstrap).

use crate::source::GovernedRepo;
use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use serde::Serialize;
use std::path::Path;

/// Folders whose records are claims about someone's decision.
pub const RECORD_FOLDERS: [&str; 2] = ["approvals", "exceptions"];

/// What vouches for a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordProvenance {
    /// The repository's first commit had it.
    Bootstrap,
    /// A merged pull request introduced it; these logins approved its head.
    PullRequest {
        number: u64,
        approving_logins: Vec<String>,
    },
    /// A commit that merged no pull request introduced it.
    DirectPush { commit: String },
}

impl RecordProvenance {
    /// Whether this provenance vouches for a record decided by `login`.
    pub fn vouches_for(&self, login: Option<&str>) -> bool {
        match self {
            RecordProvenance::Bootstrap => true,
            RecordProvenance::PullRequest {
                approving_logins, ..
            } => login.is_some_and(|login| {
                approving_logins
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(login))
            }),
            RecordProvenance::DirectPush { .. } => false,
        }
    }
}

/// Every record file of `commit`: (path relative to the governed root,
/// path in the repository, blob id).
pub fn record_files(
    repo: &GovernedRepo,
    commit: Oid,
) -> Result<Vec<(String, String, Oid)>, git2::Error> {
    let tree = repo.repository.find_commit(commit)?.tree()?;
    let prefix = if repo.subdir.is_empty() {
        String::new()
    } else {
        format!("{}/", repo.subdir)
    };
    let mut files = Vec::new();
    for folder in RECORD_FOLDERS {
        let Ok(entry) = tree.get_path(Path::new(&format!("{prefix}{folder}"))) else {
            continue;
        };
        let Ok(subtree) = repo.repository.find_tree(entry.id()) else {
            continue;
        };
        subtree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                let relative = format!("{folder}/{parent}{name}");
                files.push((relative.clone(), format!("{prefix}{relative}"), entry.id()));
            }
            TreeWalkResult::Ok
        })?;
    }
    Ok(files)
}

/// The oldest commit of the unbroken first-parent run, ending at `start`,
/// whose `path` is `blob`; and whether it is a root commit.
pub fn introducing_commit(
    repository: &Repository,
    start: Oid,
    path: &str,
    blob: Oid,
) -> Result<(Oid, bool), git2::Error> {
    let mut current = repository.find_commit(start)?;
    loop {
        let Some(parent) = current.parents().next() else {
            return Ok((current.id(), true));
        };
        let same = parent
            .tree()?
            .get_path(Path::new(path))
            .is_ok_and(|entry| entry.id() == blob);
        if !same {
            return Ok((current.id(), false));
        }
        current = parent;
    }
}
