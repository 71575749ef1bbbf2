//! Writing commits with git2: a new repository from files, or files added to
//! a branch. Used by `init`, `generate` and the demo (which commits a CAB
//! approval mid-rollout); the daemon itself never writes to tracked branches.

use super::SourceError;
use git2::{Oid, Repository, Signature};
use std::path::Path;

fn signature(repository: &Repository) -> Result<Signature<'static>, SourceError> {
    Ok(repository
        .signature()
        .map(|s| s.to_owned())
        .or_else(|_| Signature::now("ringmaster", "ringmaster@localhost"))?)
}

/// `git init -b main` in `dir`, then commit every file below it.
pub fn init_and_commit_all(dir: &Path, message: &str) -> Result<Oid, SourceError> {
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head("main");
    let repository = Repository::init_opts(dir, &options)?;
    let mut index = repository.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repository.find_tree(index.write_tree()?)?;
    let signature = signature(&repository)?;
    Ok(repository.commit(Some("HEAD"), &signature, &signature, message, &tree, &[])?)
}

/// Commits `files` (path → bytes, added or replaced) on top of `branch`,
/// without touching the index or the work tree.
pub fn commit_files(
    repository: &Repository,
    branch: &str,
    files: &[(&str, &[u8])],
    message: &str,
) -> Result<Oid, SourceError> {
    let reference = format!("refs/heads/{branch}");
    let parent = repository.find_reference(&reference)?.peel_to_commit()?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (path, bytes) in files {
        let blob = repository.blob(bytes)?;
        update.upsert(*path, blob, git2::FileMode::Blob);
    }
    let tree_id = update.create_updated(repository, &parent.tree()?)?;
    let tree = repository.find_tree(tree_id)?;
    let signature = signature(repository)?;
    Ok(repository.commit(
        Some(&reference),
        &signature,
        &signature,
        message,
        &tree,
        &[&parent],
    )?)
}

/// [`commit_files`], signed as `git commit -S` with `gpg.format=ssh` does:
/// the armored SSHSIG (namespace `git`) of the commit object in its
/// `gpgsig` header (the demo's approvers sign what they commit).
pub fn commit_files_signed(
    repository: &Repository,
    branch: &str,
    files: &[(&str, &[u8])],
    message: &str,
    key: &ssh_key::PrivateKey,
) -> Result<Oid, SourceError> {
    let reference = format!("refs/heads/{branch}");
    let parent = repository.find_reference(&reference)?.peel_to_commit()?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (path, bytes) in files {
        let blob = repository.blob(bytes)?;
        update.upsert(*path, blob, git2::FileMode::Blob);
    }
    let tree_id = update.create_updated(repository, &parent.tree()?)?;
    let tree = repository.find_tree(tree_id)?;
    let signature = signature(repository)?;
    let buffer =
        repository.commit_create_buffer(&signature, &signature, message, &tree, &[&parent])?;
    let content = std::str::from_utf8(&buffer).map_err(|error| SourceError::Io {
        path: repository.path().to_path_buf(),
        message: format!("commit object is not UTF-8: {error}"),
    })?;
    let armored = crate::model::signing::sign(key, &buffer).map_err(|message| SourceError::Io {
        path: repository.path().to_path_buf(),
        message: format!("signing the commit: {message}"),
    })?;
    let commit = repository.commit_signed(content, &armored, Some("gpgsig"))?;
    repository.reference(&reference, commit, true, message)?;
    Ok(commit)
}
