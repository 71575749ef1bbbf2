//! Reading entries from a commit's tree through the object database.

use crate::diagnostic::Diagnostic;
use crate::model::Snapshot;
use crate::model::load::{Entry, EntryContent, MAX_FILE_BYTES};
use crate::model::yaml::FindText;
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
        let listed = self.listing(commit)?;
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
        // Loose objects (what `ringmaster generate` and a fresh `git commit`
        // write) are read straight from their files; libgit2 reads the rest.
        let objects = self.repository.commondir().join("objects");
        let read: Vec<Result<Vec<EntryContent>, (usize, git2::Error)>> = if workers == 1 {
            vec![read_blobs(&self.repository.odb()?, &objects, &blobs)]
        } else {
            let git_dir = self.repository.path().to_path_buf();
            let chunk = blobs.len().div_ceil(workers);
            std::thread::scope(|scope| {
                let handles: Vec<_> = blobs
                    .chunks(chunk)
                    .map(|part| {
                        let git_dir = &git_dir;
                        let objects = &objects;
                        scope.spawn(move || {
                            let first = part.first().map_or(0, |(index, _)| *index);
                            Repository::open(git_dir)
                                .and_then(|repository| {
                                    repository.odb().map(|odb| {
                                        // `odb` borrows `repository`: read here.
                                        read_blobs(&odb, objects, part)
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

    /// [`crate::model::load`] of [`GovernedRepo::entries_at`]`(commit)`,
    /// loading each blob as it is read (`validate`): the same snapshot and
    /// diagnostics, byte for byte, and the same error when a blob cannot be
    /// read (the first in walk order). Also returns how many entries the
    /// tree has.
    ///
    /// Reading and loading overlap on all cores (each thread reads a part
    /// of consecutive entries and parses each file as its bytes arrive,
    /// then takes the next part), and no file's bytes are kept: a
    /// document finds its blob again, by id, only if a diagnostic asks for
    /// a position in it ([`BlobTexts`]). Peak memory is the loaded objects,
    /// not the loaded objects and every file's text.
    pub fn load_at(&self, commit: Oid) -> Result<(usize, Snapshot, Vec<Diagnostic>), SourceError> {
        let listed = self.listing(commit)?;
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let parts = listed.len().div_ceil(ENTRIES_PER_PART).max(1);
        let git_dir = self.repository.path().to_path_buf();
        let objects = self.repository.commondir().join("objects");
        let texts: std::sync::Arc<dyn FindText> = std::sync::Arc::new(BlobTexts {
            git_dir: git_dir.clone(),
            objects: objects.clone(),
            ids: listed
                .iter()
                .map(|(_, item)| match item {
                    Listed::Blob(id) => *id,
                    Listed::Ready(_) => Oid::ZERO_SHA1,
                })
                .collect(),
            repository: std::sync::Mutex::new(None),
        });
        let (snapshot, diagnostics) = crate::model::load::load_streamed(
            parts,
            workers,
            || {
                Repository::open(&git_dir).map(|repository| Reader {
                    repository,
                    compressed: Vec::new(),
                    inflater: Inflater::new(),
                    data: Vec::new(),
                })
            },
            |reader, part, files| {
                let start = part * ENTRIES_PER_PART;
                let end = (start + ENTRIES_PER_PART).min(listed.len());
                let odb = reader.repository.odb()?;
                for (index, (path, item)) in listed.iter().enumerate().take(end).skip(start) {
                    let id = match item {
                        Listed::Ready(content) => {
                            files.entry(Entry {
                                path: path.clone(),
                                content: content.clone(),
                            });
                            continue;
                        }
                        Listed::Blob(id) => *id,
                    };
                    if read_loose_into(
                        &objects,
                        id,
                        &mut reader.compressed,
                        &mut reader.inflater,
                        &mut reader.data,
                    ) {
                        files.file(path, &reader.data, &texts, index);
                        continue;
                    }
                    let (size, _) = odb.read_header(id)?;
                    if size as u64 > MAX_FILE_BYTES {
                        files.entry(Entry {
                            path: path.clone(),
                            content: EntryContent::TooLarge(size as u64),
                        });
                        continue;
                    }
                    let object = odb.read(id)?;
                    files.file(path, object.data(), &texts, index);
                }
                Ok::<(), git2::Error>(())
            },
        )?;
        Ok((listed.len(), snapshot, diagnostics))
    }

    /// Every entry of the governed subtree at `commit`, in walk order: what
    /// it is, or the blob to read.
    fn listing(&self, commit: Oid) -> Result<Vec<(String, Listed)>, SourceError> {
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
        Ok(listed)
    }
}

/// Below this many blobs per thread, one thread reads them all.
const BLOBS_PER_THREAD_AT_LEAST: usize = 256;

/// Entries in one part of [`GovernedRepo::load_at`]: threads take the
/// next part as they finish one, so small parts keep both cores busy to
/// the end (a generated repository lists its larger application files
/// first) while each part is still far more work than taking it.
const ENTRIES_PER_PART: usize = 128;

/// A thread of [`GovernedRepo::load_at`]: its own handle on the repository
/// (libgit2 objects are not shared between threads) and the buffers each
/// loose blob is read and inflated into, reused from one blob to the next.
struct Reader {
    repository: Repository,
    compressed: Vec<u8>,
    inflater: Inflater,
    data: Vec<u8>,
}

/// Finds a blob's text again for the positions of a document loaded by
/// [`GovernedRepo::load_at`], which keeps no file's text: the blob is read
/// by its id (content-addressed, and checked against it on every read), so
/// the text is exactly the one that was parsed. The key is the entry's
/// index in the walk. One handle on the repository, opened the first time
/// a text is wanted (most runs never want one).
struct BlobTexts {
    git_dir: PathBuf,
    objects: PathBuf,
    /// Each entry's blob id, by index in the walk (zero for other entries).
    ids: Vec<Oid>,
    repository: std::sync::Mutex<Option<Repository>>,
}

impl FindText for BlobTexts {
    fn text(&self, key: usize) -> Option<String> {
        let id = *self.ids.get(key)?;
        let mut data = Vec::new();
        if !read_loose_into(
            &self.objects,
            id,
            &mut Vec::new(),
            &mut Inflater::new(),
            &mut data,
        ) {
            let mut repository = self
                .repository
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if repository.is_none() {
                *repository = Some(Repository::open(&self.git_dir).ok()?);
            }
            let odb = repository.as_ref()?.odb().ok()?;
            data = odb.read(id).ok()?.data().to_vec();
        }
        String::from_utf8(data).ok()
    }
}

/// An entry of the walk: what it is, or the blob still to read.
enum Listed {
    Ready(EntryContent),
    Blob(Oid),
}

/// Reads `blobs` (entry index, id) in order; sizes come from the object
/// header, so a blob over [`MAX_FILE_BYTES`] is never inflated past it.
/// The error names the index of the entry that failed.
///
/// A blob stored loose under `objects` is read from its file by
/// [`read_loose_into`] (one open and one inflate instead of libgit2's two, and
/// no lookup in the packs first); any other blob, or a loose one that is
/// not exactly as expected, is read by libgit2 as before, which then also
/// reports what is wrong with it.
fn read_blobs(
    odb: &git2::Odb<'_>,
    objects: &Path,
    blobs: &[(usize, Oid)],
) -> Result<Vec<EntryContent>, (usize, git2::Error)> {
    // The compressed bytes of each loose file, one buffer for them all, and
    // one for what they inflate to.
    let mut compressed = Vec::new();
    let mut inflater = Inflater::new();
    blobs
        .iter()
        .map(|(index, id)| {
            let mut data = Vec::new();
            if read_loose_into(objects, *id, &mut compressed, &mut inflater, &mut data) {
                return Ok(EntryContent::File(data));
            }
            let (size, _) = odb.read_header(*id).map_err(|error| (*index, error))?;
            if size as u64 > MAX_FILE_BYTES {
                return Ok(EntryContent::TooLarge(size as u64));
            }
            let object = odb.read(*id).map_err(|error| (*index, error))?;
            Ok(EntryContent::File(object.data().to_vec()))
        })
        .collect()
}

/// The blob `id` read from its loose object file under `objects`
/// (`xx/yyyy…`: zlib of `blob <size>\0<bytes>`), exactly what libgit2 would
/// return: a blob over [`MAX_FILE_BYTES`] is never inflated past the cap
/// (it is left to libgit2's `read_header`); the bytes are checked against
/// `id` with libgit2's own hash (SHA-1 with collision detection, as its
/// reads do). `None` when there is no such file, the blob is over the cap,
/// or anything about the file is unexpected (another object type, a
/// malformed header, a size or hash that does not match, trailing bytes):
/// the caller then asks libgit2, which
/// looks in the packs and alternates too and reports the error it always did.
///
/// `compressed` is a buffer the file is read into (its contents are not
/// kept), reused from one blob to the next.
#[cfg(test)]
fn read_loose(objects: &Path, id: Oid, compressed: &mut Vec<u8>) -> Option<EntryContent> {
    let mut data = Vec::new();
    read_loose_into(objects, id, compressed, &mut Inflater::new(), &mut data)
        .then_some(EntryContent::File(data))
}

/// The blob `id` read from its loose object file into `data` (cleared
/// first; an empty one is given exactly the blob's size), the stream
/// inflated in one call (`zlib-rs`) by `inflater`, reused from one blob
/// to the next: whether it was read, exactly as described for
/// `read_loose` above (the tests' form of it). When it was not, `data`
/// holds nothing meaningful and the caller asks libgit2.
fn read_loose_into(
    objects: &Path,
    id: Oid,
    compressed: &mut Vec<u8>,
    inflater: &mut Inflater,
    data: &mut Vec<u8>,
) -> bool {
    let Inflater { inflate, inflated } = inflater;
    read_loose_inflated(objects, id, compressed, inflate, inflated, data).is_some()
}

fn read_loose_inflated(
    objects: &Path,
    id: Oid,
    compressed: &mut Vec<u8>,
    inflater: &mut zlib_rs::Inflate,
    inflated: &mut Vec<u8>,
    data: &mut Vec<u8>,
) -> Option<()> {
    use std::io::Read as _;
    let hex = id.to_string();
    let mut file = std::fs::File::open(objects.join(&hex[..2]).join(&hex[2..])).ok()?;
    compressed.clear();
    file.read_to_end(compressed).ok()?;
    drop(file);
    // One call inflates the whole stream, header and blob, into room for
    // the largest header and a blob at the cap: a blob over the cap fills
    // it before its stream ends, so it is never inflated further.
    inflated.resize(INFLATED_AT_MOST, 0);
    inflater.reset(true);
    let status = inflater
        .decompress(compressed, inflated, zlib_rs::InflateFlush::Finish)
        .ok()?;
    let out = inflated.get(..usize::try_from(inflater.total_out()).ok()?)?;
    let nul = out
        .iter()
        .take(HEADER_AT_MOST)
        .position(|byte| *byte == 0)?;
    let digits = out[..nul].strip_prefix(b"blob ")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if size > MAX_FILE_BYTES {
        // Its size is libgit2's answer (`read_header` asks the packs
        // first), so a damaged loose copy cannot change it.
        return None;
    }
    // The stream must have ended, every byte of the file read, with
    // exactly `size` bytes after the header.
    if status != zlib_rs::Status::StreamEnd || inflater.total_in() != compressed.len() as u64 {
        return None;
    }
    let blob = &out[nul + 1..];
    if blob.len() as u64 != size {
        return None;
    }
    // Exactly `size` bytes of capacity (when `data` is new), as libgit2's
    // copy had.
    data.clear();
    data.reserve_exact(blob.len());
    data.extend_from_slice(blob);
    (Oid::hash_object(ObjectType::Blob, data).ok()? == id).then_some(())
}

/// What a loose blob is inflated with, reused from one blob to the next:
/// the inflate state (reset for each stream, not made again) and the
/// buffer the stream is inflated into (made once, [`INFLATED_AT_MOST`]).
struct Inflater {
    inflate: zlib_rs::Inflate,
    inflated: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater {
            // zlib (Git's loose objects), 32 KiB window.
            inflate: zlib_rs::Inflate::new(true, 15),
            inflated: Vec::new(),
        }
    }
}

/// "blob " + at most 20 digits + NUL fit in 32 bytes.
const HEADER_AT_MOST: usize = 32;

/// What a loose blob's stream is inflated into at most: its header and a
/// blob at the cap ([`MAX_FILE_BYTES`]).
const INFLATED_AT_MOST: usize = HEADER_AT_MOST + MAX_FILE_BYTES as usize;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository (loose objects, as git2 and `git commit` write them)
    /// holding `files` as blobs; their ids in order.
    fn repository_with(files: &[Vec<u8>]) -> (tempfile::TempDir, Repository, Vec<Oid>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repository = Repository::init(dir.path()).expect("init");
        let ids = files
            .iter()
            .map(|bytes| repository.blob(bytes).expect("blob"))
            .collect();
        (dir, repository, ids)
    }

    /// Reads `ids` through `read_blobs`, straight from the loose files or
    /// (with objects somewhere that does not exist) only through libgit2.
    fn read(repository: &Repository, ids: &[Oid], loose: bool) -> Vec<EntryContent> {
        let objects = if loose {
            repository.commondir().join("objects")
        } else {
            PathBuf::from("/nonexistent/objects")
        };
        let blobs: Vec<(usize, Oid)> = ids.iter().copied().enumerate().collect();
        read_blobs(&repository.odb().expect("odb"), &objects, &blobs).expect("read")
    }

    #[test]
    fn loose_blobs_read_directly_are_what_libgit2_reads() {
        // Varied bytes that do not compress away, so inflating takes many rounds.
        let mut state = 0x2545_f491_u32;
        let mut noise = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect()
        };
        let files = vec![
            b"apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\n".to_vec(),
            Vec::new(),
            b"\0binary\xff\xfe".to_vec(),
            noise(31),
            noise(200_000),
            noise(MAX_FILE_BYTES as usize),
            noise(MAX_FILE_BYTES as usize + 1),
            vec![b'a'; 3 * MAX_FILE_BYTES as usize],
            // Read into the buffer a larger file used before.
            b"small: after large ones\n".to_vec(),
        ];
        let (_dir, repository, ids) = repository_with(&files);
        let direct = read(&repository, &ids, true);
        assert_eq!(direct, read(&repository, &ids, false));
        let objects = repository.commondir().join("objects");
        for ((bytes, id), content) in files.iter().zip(&ids).zip(&direct) {
            match content {
                EntryContent::File(read) => {
                    // Read from its loose file (not left to libgit2).
                    assert_eq!(
                        read_loose(&objects, *id, &mut Vec::new()).as_ref(),
                        Some(content)
                    );
                    assert_eq!(read, bytes);
                    assert_eq!(read.capacity(), read.len());
                }
                EntryContent::TooLarge(size) => {
                    // Over the cap: never inflated, sized by libgit2.
                    assert_eq!(read_loose(&objects, *id, &mut Vec::new()), None);
                    assert_eq!(*size, bytes.len() as u64);
                    assert!(*size > MAX_FILE_BYTES);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_loose_blob_that_is_not_what_its_id_says_is_left_to_libgit2() {
        let (_dir, repository, ids) =
            repository_with(&[b"reviewed: true\n".to_vec(), b"reviewed: false\n".to_vec()]);
        let objects = repository.commondir().join("objects");
        let path = |id: Oid| {
            let hex = id.to_string();
            objects.join(&hex[..2]).join(&hex[2..])
        };
        // The second blob's file put where the first one's belongs.
        let swapped = std::fs::read(path(ids[1])).expect("loose file");
        let first = path(ids[0]);
        let original = std::fs::read(&first).expect("loose file");
        let mut permissions = std::fs::metadata(&first).expect("meta").permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        std::fs::set_permissions(&first, permissions).expect("writable");
        std::fs::write(&first, &swapped).expect("swap");
        assert_eq!(read_loose(&objects, ids[0], &mut Vec::new()), None);
        // libgit2 reports it, as it always did; the other blob still reads.
        let blobs = [(0, ids[0])];
        assert!(read_blobs(&repository.odb().expect("odb"), &objects, &blobs).is_err());
        assert_eq!(
            read_loose(&objects, ids[1], &mut Vec::new()),
            Some(EntryContent::File(b"reviewed: false\n".to_vec()))
        );
        // Garbage and a truncated file are left to libgit2 too.
        std::fs::write(&first, b"not zlib").expect("garbage");
        assert_eq!(read_loose(&objects, ids[0], &mut Vec::new()), None);
        std::fs::write(&first, &swapped[..swapped.len() - 3]).expect("truncate");
        assert_eq!(read_loose(&objects, ids[0], &mut Vec::new()), None);
        // The right stream with a byte after its end, or cut short by one.
        let mut trailing = original.clone();
        trailing.push(0);
        std::fs::write(&first, &trailing).expect("trailing byte");
        assert_eq!(read_loose(&objects, ids[0], &mut Vec::new()), None);
        std::fs::write(&first, &original[..original.len() - 1]).expect("cut");
        assert_eq!(read_loose(&objects, ids[0], &mut Vec::new()), None);
        std::fs::write(&first, &original).expect("restore");
        assert_eq!(
            read_loose(&objects, ids[0], &mut Vec::new()),
            Some(EntryContent::File(b"reviewed: true\n".to_vec()))
        );
        // No loose file at all: libgit2 looks elsewhere.
        std::fs::remove_file(&first).expect("remove");
        assert_eq!(read_loose(&objects, ids[0], &mut Vec::new()), None);
    }

    /// `dir` committed as the first commit of a new repository.
    fn committed(dir: &Path) -> (Repository, Oid) {
        let repository = Repository::init(dir).expect("init");
        let mut index = repository.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.write().expect("write index");
        let tree = repository
            .find_tree(index.write_tree().expect("tree"))
            .expect("find tree");
        let signature = git2::Signature::now("test", "test@example.invalid").expect("signature");
        let commit = repository
            .commit(Some("HEAD"), &signature, &signature, "files", &tree, &[])
            .expect("commit");
        drop(tree);
        (repository, commit)
    }

    /// `load_at` is `model::load` of `entries_at`, byte for byte, on a
    /// revision with findings of every kind (positions read after loading
    /// included), loose and packed; and a blob that cannot be read is the
    /// same error.
    #[test]
    fn loading_as_blobs_are_read_is_loading_what_was_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::synthetic::write(dir.path(), 300).expect("generate");
        let intents = dir.path().join("intents");
        let first = std::fs::read_dir(&intents)
            .expect("intents")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .min()
            .expect("an intent");
        // Lines no other file has before the id, so that a position read
        // from any other blob than this one's would be another.
        let mut text = b"# renamed\n\n# from another intent\n".to_vec();
        text.extend(std::fs::read(&first).expect("intent"));
        std::fs::write(intents.join("renamed.yaml"), &text).expect("write");
        std::fs::write(intents.join("not-utf8.yaml"), b"a: \xff\n").expect("write");
        std::fs::write(intents.join("broken.yaml"), "a: [1, 2\n").expect("write");
        std::fs::write(intents.join("keys.yaml"), "a: 1\na: 2\n").expect("write");
        std::fs::write(
            intents.join("huge.yaml"),
            vec![b'#'; MAX_FILE_BYTES as usize + 1],
        )
        .expect("write");
        std::fs::write(
            intents.join("schema.yaml"),
            "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: schema\n",
        )
        .expect("write");
        std::os::unix::fs::symlink("renamed.yaml", intents.join("link.yaml")).expect("symlink");
        let (repository, commit) = committed(dir.path());
        let governed = GovernedRepo {
            repository,
            subdir: String::new(),
        };
        let shown = |(snapshot, mut diagnostics): (Snapshot, Vec<Diagnostic>)| {
            crate::diagnostic::sort(&mut diagnostics);
            format!("{snapshot:?}\n{diagnostics:?}")
        };
        let expected = |governed: &GovernedRepo| {
            let entries = governed.entries_at(commit).expect("entries");
            (entries.len(), shown(crate::model::load(&entries)))
        };
        let loaded = |governed: &GovernedRepo| {
            let (files, snapshot, diagnostics) = governed.load_at(commit).expect("loads");
            (files, shown((snapshot, diagnostics)))
        };
        let before = expected(&governed);
        for needle in [
            "does not match the file name",
            "not valid UTF-8",
            "invalid YAML",
            "duplicate key",
            "governed files may be at most",
            "symbolic links",
            "is a required property",
        ] {
            assert!(before.1.contains(needle), "{needle}: {}", before.1);
        }
        assert!(before.0 > 2 * ENTRIES_PER_PART, "{}", before.0);
        assert!(
            before
                .1
                .contains("file: \"intents/renamed.yaml\", line: 6, column: 12"),
            "the id's position, found after loading: {}",
            before.1
        );
        assert_eq!(loaded(&governed), before);

        // A blob that cannot be read: the same error.
        let objects = governed.repository.commondir().join("objects");
        let id = governed
            .repository
            .find_commit(commit)
            .and_then(|c| c.tree())
            .and_then(|tree| tree.get_path(Path::new("intents/schema.yaml")))
            .expect("entry")
            .id();
        let hex = id.to_string();
        let loose = objects.join(&hex[..2]).join(&hex[2..]);
        let saved = std::fs::read(&loose).expect("loose object");
        std::fs::remove_file(&loose).expect("remove");
        let error = governed.entries_at(commit).err().map(|e| e.to_string());
        assert!(error.is_some());
        assert_eq!(governed.load_at(commit).err().map(|e| e.to_string()), error);
        std::fs::write(&loose, saved).expect("restore");

        // Packed: every blob read (and found again) through libgit2.
        let status = std::process::Command::new("git")
            .args(["gc", "-q", "--prune=now"])
            .current_dir(dir.path())
            .status()
            .expect("git runs");
        assert!(status.success());
        let still_loose = std::fs::read_dir(&objects)
            .expect("objects")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().len() == 2)
            .count();
        assert_eq!(still_loose, 0, "git gc packed every object");
        let governed = GovernedRepo::open(dir.path()).expect("reopen");
        assert_eq!(expected(&governed), before);
        assert_eq!(loaded(&governed), before);
    }
}
