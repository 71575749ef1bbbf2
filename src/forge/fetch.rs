//! Getting a pull request's commits into the daemon's repository.
//!
//! GitHub publishes every pull request's head as `refs/pull/<n>/head`. When
//! the head commit is not in the repository yet it is fetched from `origin`
//! into `refs/ringmaster/pull/<n>/head` (never into a branch); in remote
//! mode the tracked branch is fetched first, so the base is GitHub's tip.
//! Only the commits a check needs are read, from the object database.

use super::ForgeError;
use crate::source::GovernedRepo;
use crate::source::credentials::GitCredentials;
use git2::Oid;

/// The three revisions a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRequestRevisions {
    pub head: Oid,
    /// The base branch's tip: whose rules judge.
    pub base: Oid,
    /// Where head and base diverged: what the PR changed is measured from here.
    pub fork_point: Oid,
}

/// Makes sure the PR head is present (fetching it if needed) and finds the
/// base tip and the fork point.
pub fn revisions(
    repo: &GovernedRepo,
    number: u64,
    head_sha: &str,
    base_branch: &str,
    fetch_base: bool,
    credentials: &GitCredentials,
) -> Result<PullRequestRevisions, ForgeError> {
    let repository = &repo.repository;
    let head = Oid::from_str(head_sha).map_err(|_| ForgeError::HeadMissing {
        number,
        sha: head_sha.to_owned(),
    })?;
    if fetch_base {
        crate::source::remote::fetch(repository, credentials)?;
    }
    if repository.find_commit(head).is_err()
        && let Ok(mut origin) = repository.find_remote("origin")
    {
        let refspec = format!("+refs/pull/{number}/head:refs/ringmaster/pull/{number}/head");
        let url = origin.url().unwrap_or_default().to_owned();
        let mut options = git2::FetchOptions::new();
        options.download_tags(git2::AutotagOption::None);
        options.remote_callbacks(credentials.callbacks(&url));
        origin
            .fetch(
                &[refspec.as_str()],
                Some(&mut options),
                Some("ringmaster: fetch pull request head"),
            )
            .map_err(|error| credentials.explain(error))?;
    }
    repository
        .find_commit(head)
        .map_err(|_| ForgeError::HeadMissing {
            number,
            sha: head_sha.to_owned(),
        })?;
    let base = repository
        .find_reference(&format!("refs/heads/{base_branch}"))
        .and_then(|reference| reference.peel_to_commit())
        .map_err(|_| ForgeError::BaseMissing {
            branch: base_branch.to_owned(),
        })?
        .id();
    let fork_point = repository.merge_base(head, base).unwrap_or(base);
    Ok(PullRequestRevisions {
        head,
        base,
        fork_point,
    })
}
