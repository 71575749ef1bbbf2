//! A revision's history as proof: commit signatures, and which commit wrote
//! each approval and exception record.
//!
//! The judge (pure) decides whether a record counts; it needs to know which
//! commit put the record's content on the branch and what that commit's
//! signature proves. This module finds out with git2 and hands the facts
//! over as values (`authority::CommitSignature`,
//! `forge::provenance::RecordProvenance`):
//!
//! - [`signature_of`]: a commit's SSH signature (`gpgsig` header), verified
//!   over the signed payload git2 extracts (`model::signing::check`);
//! - [`introduced`]: the commit that introduced a file's content, walking
//!   first parents while the content stays the same, and into a merged
//!   branch when a merge took the content from it (so a signed commit on a
//!   merged branch still vouches for what it wrote);
//! - [`changed_records`]: the records a change (`from..to`) adds, edits or
//!   deletes, each with the signatures that may vouch for it;
//! - [`provenance`]: for every record a commit has, what vouches for it when
//!   no forge is configured (signatures only; the root of authority is the
//!   bootstrap);
//! - [`signatures_between`]: every first-parent commit of a change, for
//!   `require_signed_commits`.

use super::GovernedRepo;
use crate::authority::{ChangeHistory, CommitSignature};
use crate::forge::provenance::{RECORD_FOLDERS, RecordProvenance};
use crate::model::signing::{self, SignatureCheck};
use git2::{Commit, ErrorCode, ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a commit's signature proves (see `model::signing`).
pub fn signature_of(repository: &Repository, commit: Oid) -> SignatureCheck {
    match repository.extract_signature(&commit, None) {
        Ok((signature, payload)) => match std::str::from_utf8(&signature) {
            Ok(text) => signing::check(Some(text), &payload),
            Err(_) => SignatureCheck::Invalid {
                reason: "the signature header is not UTF-8".into(),
            },
        },
        Err(error) if error.code() == ErrorCode::NotFound => SignatureCheck::Unsigned,
        Err(error) => SignatureCheck::Invalid {
            reason: error.message().to_owned(),
        },
    }
}

/// [`signature_of`] as the judge takes it.
pub fn commit_signature(repository: &Repository, commit: Oid) -> CommitSignature {
    CommitSignature {
        commit: commit.to_string(),
        signature: signature_of(repository, commit),
    }
}

/// The blob at `path` in `commit`, if there is one.
pub fn content_at(commit: &Commit<'_>, path: &str) -> Option<Oid> {
    let tree = commit.tree().ok()?;
    let entry = tree.get_path(Path::new(path)).ok()?;
    (entry.kind() == Some(ObjectType::Blob)).then(|| entry.id())
}

/// Where some content of a file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introduced {
    /// The content was already there at the root of authority (or, without
    /// one, in the repository's first commit): the bootstrap.
    Root,
    /// `commit`, on the first-parent chain, brought the content; `writers`
    /// are the commits whose signature may vouch for it: `commit` itself and,
    /// when it is a merge that took the content from a merged branch, the
    /// commit on that branch that wrote it.
    At { commit: Oid, writers: Vec<Oid> },
}

/// The commit that introduced `content` (a blob, or `None` for "absent")
/// at `path`, from `start` backwards. See [`Introduced`].
pub fn introduced(
    repository: &Repository,
    start: Oid,
    path: &str,
    content: Option<Oid>,
    root: Option<Oid>,
) -> Result<Introduced, git2::Error> {
    let mut current = repository.find_commit(start)?;
    loop {
        if Some(current.id()) == root {
            return Ok(Introduced::Root);
        }
        let Some(first) = current.parents().next() else {
            // The repository's first commit is the bootstrap only when no
            // root of authority was given (a daemon trusts its own root).
            if root.is_none() && content.is_some() {
                return Ok(Introduced::Root);
            }
            return Ok(Introduced::At {
                commit: current.id(),
                writers: vec![current.id()],
            });
        };
        if content_at(&first, path) == content {
            current = first;
            continue;
        }
        let mut writers = vec![current.id()];
        if let Some(merged) = current
            .parents()
            .skip(1)
            .find(|parent| content_at(parent, path) == content)
        {
            writers.push(branch_writer(merged, path, content)?);
        }
        return Ok(Introduced::At {
            commit: current.id(),
            writers,
        });
    }
}

/// On a merged branch: the oldest commit of the first-parent run ending at
/// `start` that has `content` at `path`.
fn branch_writer(start: Commit<'_>, path: &str, content: Option<Oid>) -> Result<Oid, git2::Error> {
    let mut current = start;
    // A merged branch is bounded by the history; the cap only guards
    // against pathological inputs.
    for _ in 0..100_000 {
        match current.parents().next() {
            Some(parent) if content_at(&parent, path) == content => current = parent,
            _ => break,
        }
    }
    Ok(current.id())
}

/// Every record file of `commit`: (path relative to the governed root,
/// path in the repository, blob id).
pub fn record_files(
    repo: &GovernedRepo,
    commit: Oid,
) -> Result<Vec<(String, String, Oid)>, git2::Error> {
    let tree = repo.repository.find_commit(commit)?.tree()?;
    let prefix = prefix(repo);
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

fn prefix(repo: &GovernedRepo) -> String {
    if repo.subdir.is_empty() {
        String::new()
    } else {
        format!("{}/", repo.subdir)
    }
}

/// The records whose content differs between `from` and `to` (added,
/// edited or deleted), by path relative to the governed root, each with
/// the signatures of the commits that wrote the change (see [`introduced`]).
pub fn changed_records(
    repo: &GovernedRepo,
    from: Oid,
    to: Oid,
) -> Result<BTreeMap<String, Vec<CommitSignature>>, git2::Error> {
    let before: BTreeMap<String, (String, Oid)> = record_files(repo, from)?
        .into_iter()
        .map(|(relative, path, blob)| (relative, (path, blob)))
        .collect();
    let after: BTreeMap<String, (String, Oid)> = record_files(repo, to)?
        .into_iter()
        .map(|(relative, path, blob)| (relative, (path, blob)))
        .collect();
    let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut changed = BTreeMap::new();
    for relative in paths {
        let old = before.get(relative).map(|(_, blob)| *blob);
        let new = after.get(relative).map(|(_, blob)| *blob);
        if old == new {
            continue;
        }
        let path = after
            .get(relative)
            .or(before.get(relative))
            .map(|(path, _)| path.clone())
            .unwrap_or_default();
        let writers = match introduced(&repo.repository, to, &path, new, Some(from))? {
            Introduced::At { writers, .. } => writers,
            Introduced::Root => Vec::new(),
        };
        let signatures = writers
            .into_iter()
            .map(|commit| commit_signature(&repo.repository, commit))
            .collect();
        changed.insert(relative.clone(), signatures);
    }
    Ok(changed)
}

/// What vouches for each record of `commit` when no forge is configured:
/// the bootstrap (already there at `root`), or the signatures of the commit
/// that introduced it.
pub fn provenance(
    repo: &GovernedRepo,
    commit: Oid,
    root: Option<Oid>,
) -> Result<BTreeMap<String, RecordProvenance>, git2::Error> {
    let mut result = BTreeMap::new();
    for (relative, path, blob) in record_files(repo, commit)? {
        let found = match introduced(&repo.repository, commit, &path, Some(blob), root)? {
            Introduced::Root => RecordProvenance::Bootstrap,
            Introduced::At { commit, writers } => RecordProvenance::DirectPush {
                commit: commit.to_string(),
                signatures: writers
                    .into_iter()
                    .map(|writer| commit_signature(&repo.repository, writer))
                    .collect(),
            },
        };
        result.insert(relative, found);
    }
    Ok(result)
}

/// The first-parent commits of `from..to`, oldest first, with their
/// signatures (what `require_signed_commits` looks at).
pub fn signatures_between(
    repository: &Repository,
    from: Oid,
    to: Oid,
) -> Result<Vec<CommitSignature>, git2::Error> {
    let mut walk = repository.revwalk()?;
    walk.push(to)?;
    walk.hide(from)?;
    walk.simplify_first_parent()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    walk.map(|commit| commit.map(|oid| commit_signature(repository, oid)))
        .collect()
}

/// What the history of the change `from..to` proves (see [`ChangeHistory`]).
pub fn change_history(
    repo: &GovernedRepo,
    from: Oid,
    to: Oid,
) -> Result<ChangeHistory, git2::Error> {
    Ok(ChangeHistory {
        signed: changed_records(repo, from, to)?,
        commits: signatures_between(&repo.repository, from, to)?,
    })
}
