//! Reading entries from a commit's tree through the object database.

use crate::model::load::{Entry, EntryContent, MAX_FILE_BYTES};
use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "{path}: not inside a Git repository ({source}); run `git init` there or pass --worktree"
    )]
    NotARepository { path: PathBuf, source: git2::Error },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("revision \"{revision}\" not found in {repo}: {source}")]
    Revision {
        revision: String,
        repo: PathBuf,
        source: git2::Error,
    },
    #[error("{subdir} does not exist at revision {revision}; is it committed?")]
    MissingSubtree { subdir: String, revision: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("fetching {remote}: {message}")]
    Fetch { remote: String, message: String },
}

/// A governed repository: a Git repository and the folder inside it that holds
/// the governed files (`""` for the repository root).
pub struct GovernedRepo {
    pub repository: Repository,
    /// `/`-separated path of the governed root inside the repository.
    pub subdir: String,
}

impl GovernedRepo {
    /// Opens the repository containing `path`; `path` becomes the governed root.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let absolute = path.canonicalize().map_err(|e| SourceError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let repository =
            Repository::discover(&absolute).map_err(|source| SourceError::NotARepository {
                path: path.to_owned(),
                source,
            })?;
        let subdir = match repository.workdir() {
            Some(workdir) => {
                let workdir = workdir.canonicalize().map_err(|e| SourceError::Io {
                    path: workdir.to_owned(),
                    message: e.to_string(),
                })?;
                absolute
                    .strip_prefix(&workdir)
                    .map(|relative| {
                        relative
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_default()
            }
            None => String::new(),
        };
        Ok(GovernedRepo { repository, subdir })
    }

    /// Resolves a revision (`HEAD`, a branch, a sha) to a commit id.
    pub fn resolve(&self, revision: &str) -> Result<Oid, SourceError> {
        let object = self
            .repository
            .revparse_single(revision)
            .and_then(|object| object.peel_to_commit())
            .map_err(|source| SourceError::Revision {
                revision: revision.to_owned(),
                repo: self.repository.path().to_owned(),
                source,
            })?;
        Ok(object.id())
    }

    /// Every entry of the governed subtree at `commit`, read from the object
    /// database. Blobs over the size cap are reported, not read.
    pub fn entries_at(&self, commit: Oid) -> Result<Vec<Entry>, SourceError> {
        let commit_object = self.repository.find_commit(commit)?;
        let root = commit_object.tree()?;
        let tree = if self.subdir.is_empty() {
            root
        } else {
            let entry = root.get_path(Path::new(&self.subdir)).map_err(|_| {
                SourceError::MissingSubtree {
                    subdir: self.subdir.clone(),
                    revision: commit.to_string(),
                }
            })?;
            self.repository
                .find_tree(entry.id())
                .map_err(|_| SourceError::MissingSubtree {
                    subdir: self.subdir.clone(),
                    revision: commit.to_string(),
                })?
        };
        // The walk lists every entry (cheap: trees only); the blobs are then
        // read on all cores, each thread through its own handle on the
        // repository (libgit2 objects are not shared between threads), and
        // put back in walk order.
        let mut listed: Vec<(String, Listed)> = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            let name = String::from_utf8_lossy(entry.name_bytes());
            let path = format!("{parent}{name}");
            let listed_entry = match (entry.kind(), entry.filemode()) {
                (Some(ObjectType::Tree), _) => return TreeWalkResult::Ok,
                (Some(ObjectType::Commit), _) => Listed::Ready(EntryContent::Submodule),
                (_, 0o120000) => Listed::Ready(EntryContent::Symlink),
                (Some(ObjectType::Blob), _) => Listed::Blob(entry.id()),
                _ => return TreeWalkResult::Ok,
            };
            listed.push((path, listed_entry));
            TreeWalkResult::Ok
        })?;
        let blobs: Vec<(usize, Oid)> = listed
            .iter()
            .enumerate()
            .filter_map(|(index, (_, item))| match item {
                Listed::Blob(id) => Some((index, *id)),
                Listed::Ready(_) => None,
            })
            .collect();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(blobs.len().div_ceil(BLOBS_PER_THREAD_AT_LEAST))
            .max(1);
        let read: Vec<Result<Vec<EntryContent>, (usize, git2::Error)>> = if workers == 1 {
            vec![read_blobs(&self.repository.odb()?, &blobs)]
        } else {
            let git_dir = self.repository.path().to_path_buf();
            let chunk = blobs.len().div_ceil(workers);
            std::thread::scope(|scope| {
                let handles: Vec<_> = blobs
                    .chunks(chunk)
                    .map(|part| {
                        let git_dir = &git_dir;
                        scope.spawn(move || {
                            let first = part.first().map_or(0, |(index, _)| *index);
                            Repository::open(git_dir)
                                .and_then(|repository| {
                                    repository.odb().map(|odb| {
                                        // `odb` borrows `repository`: read here.
                                        read_blobs(&odb, part)
                                    })
                                })
                                .map_err(|error| (first, error))?
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().expect("blob reader panicked"))
                    .collect()
            })
        };
        // The first failure in walk order, as a sequential read would report it.
        let mut contents = Vec::with_capacity(blobs.len());
        let mut failure: Option<(usize, git2::Error)> = None;
        for part in read {
            match part {
                Ok(mut part) => contents.append(&mut part),
                Err((index, error)) => {
                    if failure.as_ref().is_none_or(|(first, _)| index < *first) {
                        failure = Some((index, error));
                    }
                }
            }
        }
        if let Some((_, error)) = failure {
            return Err(error.into());
        }
        let mut contents = contents.into_iter();
        let entries = listed
            .into_iter()
            .map(|(path, item)| Entry {
                path,
                content: match item {
                    Listed::Ready(content) => content,
                    Listed::Blob(_) => contents.next().expect("one content per blob"),
                },
            })
            .collect();
        Ok(entries)
    }
}

/// Below this many blobs per thread, one thread reads them all.
const BLOBS_PER_THREAD_AT_LEAST: usize = 256;

/// An entry of the walk: what it is, or the blob still to read.
enum Listed {
    Ready(EntryContent),
    Blob(Oid),
}

/// Reads `blobs` (entry index, id) in order; sizes come from the object
/// header, so a blob over [`MAX_FILE_BYTES`] is never inflated. The error
/// names the index of the entry that failed.
fn read_blobs(
    odb: &git2::Odb<'_>,
    blobs: &[(usize, Oid)],
) -> Result<Vec<EntryContent>, (usize, git2::Error)> {
    blobs
        .iter()
        .map(|(index, id)| {
            let (size, _) = odb.read_header(*id).map_err(|error| (*index, error))?;
            if size as u64 > MAX_FILE_BYTES {
                return Ok(EntryContent::TooLarge(size as u64));
            }
            let object = odb.read(*id).map_err(|error| (*index, error))?;
            Ok(EntryContent::File(object.data().to_vec()))
        })
        .collect()
}

/// Every entry below `root` in the working directory (for pre-commit use).
/// Symlinks are reported, never followed; `.git` is skipped.
pub fn read_worktree(root: &Path) -> Result<Vec<Entry>, SourceError> {
    let mut entries = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let listing = std::fs::read_dir(&dir).map_err(|e| SourceError::Io {
            path: dir.clone(),
            message: e.to_string(),
        })?;
        let mut names: Vec<_> = listing.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for item in names {
            let name = item.file_name().to_string_lossy().into_owned();
            if name == ".git" {
                continue;
            }
            let path = format!("{prefix}{name}");
            let metadata = std::fs::symlink_metadata(item.path()).map_err(|e| SourceError::Io {
                path: item.path(),
                message: e.to_string(),
            })?;
            let content = if metadata.file_type().is_symlink() {
                EntryContent::Symlink
            } else if metadata.is_dir() {
                if item.path().join(".git").exists() {
                    EntryContent::Submodule
                } else {
                    pending.push((item.path(), format!("{path}/")));
                    continue;
                }
            } else if metadata.len() > MAX_FILE_BYTES {
                EntryContent::TooLarge(metadata.len())
            } else {
                EntryContent::File(std::fs::read(item.path()).map_err(|e| SourceError::Io {
                    path: item.path(),
                    message: e.to_string(),
                })?)
            };
            entries.push(Entry { path, content });
        }
    }
    Ok(entries)
}
