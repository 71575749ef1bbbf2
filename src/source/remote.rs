//! Remote governed repositories: a bare mirror in the state directory.
//!
//! Only the tracked branch is fetched into the mirror (`+refs/heads/B:refs/heads/B`),
//! so a fetch can never move the local evidence branch; evidence is pushed
//! fast-forward only by the evidence module. Submodules are never fetched,
//! no work tree is ever checked out, and libgit2's strict object creation and
//! hash verification are on.

use super::SourceError;
use git2::Repository;
use std::path::Path;

const REMOTE: &str = "origin";

fn strict_objects() {
    git2::opts::strict_object_creation(true);
    git2::opts::strict_hash_verification(true);
}

/// Opens the mirror at `path`, creating it (bare, no checkout) for `url` if
/// needed; tracks `branch`.
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
    fetch(&repository)?;
    Ok(repository)
}

/// Fetches the tracked branch from `origin`.
pub fn fetch(repository: &Repository) -> Result<(), SourceError> {
    strict_objects();
    let mut remote = repository.find_remote(REMOTE)?;
    let mut options = git2::FetchOptions::new();
    options.download_tags(git2::AutotagOption::None);
    remote.fetch::<&str>(
        &[],
        Some(&mut options),
        Some("ringmaster: fetch governed branch"),
    )?;
    Ok(())
}
