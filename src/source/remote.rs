//! Remote governed repositories: a bare mirror in the state directory.
//!
//! Only the tracked branch is fetched into the mirror (`+refs/heads/B:refs/heads/B`),
//! so a fetch can never move the local evidence branch; evidence is pushed
//! fast-forward only by the evidence module. Submodules are never fetched,
//! no work tree is ever checked out, and libgit2's strict object creation and
//! hash verification are on.

use super::SourceError;
use super::credentials::GitCredentials;
use git2::Repository;
use std::path::Path;

const REMOTE: &str = "origin";

fn strict_objects() {
    git2::opts::strict_object_creation(true);
    git2::opts::strict_hash_verification(true);
}

/// Opens the mirror at `path`, creating it (bare, no checkout) for `url` if
/// needed; tracks `branch`. Nothing is fetched here: the daemon's first step
/// fetches, through the remote's breaker, so a remote that is down or
/// refuses the credentials at start does not stop the daemon.
pub fn open_mirror(url: &str, path: &Path, branch: &str) -> Result<Repository, SourceError> {
    strict_objects();
    let repository = if path.exists() {
        Repository::open_bare(path)?
    } else {
        let repository = Repository::init_bare(path)?;
        repository.remote_with_fetch(
            REMOTE,
            url,
            &format!("+refs/heads/{branch}:refs/heads/{branch}"),
        )?;
        repository
    };
    {
        let remote = repository.find_remote(REMOTE)?;
        if remote.url().ok() != Some(url) {
            repository.remote_set_url(REMOTE, url)?;
        }
    }
    Ok(repository)
}

/// Fetches the tracked branch from `origin` with `credentials`. The error
/// names the remote (without any user part of its URL) and never a secret.
pub fn fetch(repository: &Repository, credentials: &GitCredentials) -> Result<(), SourceError> {
    strict_objects();
    let mut remote = repository.find_remote(REMOTE)?;
    let url = remote.url().unwrap_or_default().to_owned();
    let mut options = git2::FetchOptions::new();
    options.download_tags(git2::AutotagOption::None);
    options.remote_callbacks(credentials.callbacks(&url));
    remote
        .fetch::<&str>(
            &[],
            Some(&mut options),
            Some("ringmaster: fetch governed branch"),
        )
        .map_err(|error| SourceError::Fetch {
            remote: super::credentials::redact_url(&url),
            message: credentials.explain(error).message().to_owned(),
        })?;
    Ok(())
}
