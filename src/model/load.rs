//! Loading a snapshot from the entries of a revision's tree.
//!
//! Pure: takes the entries (path, and either bytes or what kind of non-file it
//! is) and returns the typed snapshot plus every diagnostic. Reading the tree
//! from Git or from a work tree is `source`'s job.

use super::kinds::*;
use super::snapshot::{Located, Objects, PolicyFile, Snapshot};
use super::yaml::{self, Document, FindText};
use crate::diagnostic::{Diagnostic, Position};
use crate::schema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Largest governed file read, in bytes. Real intents are a few KiB.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// What a tree entry is. Only regular files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryContent {
    File(Vec<u8>),
    /// A file larger than [`MAX_FILE_BYTES`]; its bytes were never read.
    TooLarge(u64),
    Symlink,
    Submodule,
}

/// One entry of a revision's tree, path relative to the governed root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub content: EntryContent,
}

impl Entry {
    pub fn file(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.into(),
            content: EntryContent::File(bytes.into()),
        }
    }
}

/// Where a path sits in the layout, and so which kind it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Yaml {
        kind: &'static str,
        /// The id the file name implies, checked against the document.
        implied: Implied,
    },
    Policy,
    /// Documentation and tooling files: not governed, not reported.
    Ignored,
    Outside(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Implied {
    Nothing,
    Id(&'static str, String),
    ApplicationVersion {
        application: String,
        version: String,
    },
}

const GOVERNED_DIRS: &[&str] = &[
    "principals",
    "apps",
    "entitlements",
    "intents",
    "approvals",
    "exceptions",
    "policies",
];

fn slot(path: &str) -> Slot {
    let parts: Vec<&str> = path.split('/').collect();
    let is_yaml = path.ends_with(".yaml");
    let stem = |name: &str| name.trim_end_matches(".yaml").to_owned();
    match parts.as_slice() {
        ["ringmaster.yaml"] => Slot::Yaml {
            kind: "Config",
            implied: Implied::Nothing,
        },
        ["principals", name] if is_yaml => Slot::Yaml {
            kind: "Principal",
            implied: Implied::Id("id", stem(name)),
        },
        ["apps", app, "app.yaml"] => Slot::Yaml {
            kind: "Application",
            implied: Implied::Id("id", (*app).to_owned()),
        },
        ["apps", app, name] if is_yaml => Slot::Yaml {
            kind: "ApplicationVersion",
            implied: Implied::ApplicationVersion {
                application: (*app).to_owned(),
                version: stem(name),
            },
        },
        ["entitlements", name] if is_yaml => Slot::Yaml {
            kind: "EntitlementRule",
            implied: Implied::Id("id", stem(name)),
        },
        ["intents", name] if is_yaml => Slot::Yaml {
            kind: "DeploymentIntent",
            implied: Implied::Id("intent_id", stem(name)),
        },
        ["approvals", name] if is_yaml => Slot::Yaml {
            kind: "ApprovalRecord",
            implied: Implied::Id("approval_id", stem(name)),
        },
        ["exceptions", name] if is_yaml => Slot::Yaml {
            kind: "Exception",
            implied: Implied::Id("exception_id", stem(name)),
        },
        ["policies", name] if name.ends_with(".rego") => Slot::Policy,
        [first, ..] if GOVERNED_DIRS.contains(first) => {
            let hint = if path.ends_with(".yml") {
                "; governed files use the .yaml extension".to_owned()
            } else {
                String::new()
            };
            if path.ends_with(".md") {
                Slot::Ignored
            } else {
                Slot::Outside(format!(
                    "{path} is not where the layout expects a file of {first}/{hint} (see DESIGN: principals/*.yaml, apps/<app>/app.yaml, apps/<app>/<version>.yaml, entitlements/*.yaml, intents/*.yaml, approvals/*.yaml, exceptions/*.yaml, policies/*.rego)"
                ))
            }
        }
        [_] if path.ends_with(".yaml") || path.ends_with(".yml") => Slot::Outside(format!(
            "{path} is a YAML file outside the governed layout; only ringmaster.yaml lives at the root"
        )),
        _ => Slot::Ignored,
    }
}

/// Loads every governed object from the entries. Never fails: every problem
/// becomes a diagnostic and the object is left out.
///
/// Files are parsed and schema-checked on all cores, in contiguous parts of
/// about the same number of bytes ([`part_starts`]); the parts are then
/// merged in entry order, so results (and which of two duplicates is
/// reported) do not depend on the number of threads or where the parts end.
pub fn load(entries: &[Entry]) -> (Snapshot, Vec<Diagnostic>) {
    let starts = part_starts(entries);
    let ends = starts.iter().skip(1).copied().chain([entries.len()]);
    let parts = starts
        .iter()
        .zip(ends)
        .map(|(start, end)| &entries[*start..end])
        .collect();
    load_parts(parts, |loader, part| {
        for entry in part {
            loader.entry(&entry.path, Content::of(&entry.content));
        }
    })
}

/// [`load`] of entries the caller gives up: each file's bytes become its
/// document's text (kept for positions) instead of being copied, so the
/// bytes are held once and never freed in between. Same parts, same
/// results, byte for byte.
pub fn load_owned(mut entries: Vec<Entry>) -> (Snapshot, Vec<Diagnostic>) {
    let starts = part_starts(&entries);
    // The same parts as `load`'s, split off from the end.
    let mut parts = Vec::with_capacity(starts.len());
    for start in starts.into_iter().rev() {
        parts.push(entries.split_off(start));
    }
    parts.reverse();
    load_parts(parts, |loader, part| {
        for entry in part {
            loader.entry(&entry.path, Content::owned(entry.content));
        }
    })
}

/// Where each thread's part of `entries` starts: one part per core (at
/// least [`MIN_PART`] entries each), cut where the bytes to parse so far
/// reach the next equal share. Parsing time follows the bytes, and a
/// generated repository lists its large application files first: parts
/// of equal counts left one thread with three quarters of the work.
fn part_starts(entries: &[Entry]) -> Vec<usize> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let parts = workers.min(entries.len() / MIN_PART).max(1);
    let weight = |entry: &Entry| {
        PER_FILE_BYTES
            + match &entry.content {
                EntryContent::File(bytes) => bytes.len(),
                _ => 0,
            }
    };
    let total: usize = entries.iter().map(weight).sum();
    let mut starts = vec![0];
    let mut before = 0;
    for (index, entry) in entries.iter().enumerate() {
        if starts.len() == parts {
            break;
        }
        let last = starts.last().copied().unwrap_or(0);
        if index - last >= MIN_PART && before >= total / parts * starts.len() {
            starts.push(index);
        }
        before += weight(entry);
    }
    starts
}

/// Fewest entries a thread is given.
const MIN_PART: usize = 64;
/// What a file costs beyond its bytes (a path, a document, an object),
/// counted as bytes when parts are cut.
const PER_FILE_BYTES: usize = 256;

/// Loads each part on a thread of its own and merges them in order.
fn load_parts<P: Send>(
    parts: Vec<P>,
    each: impl Fn(&mut Loader, P) + Sync,
) -> (Snapshot, Vec<Diagnostic>) {
    let each = &each;
    let parts: Vec<Loader> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut loader = Loader::default();
                    each(&mut loader, part);
                    loader
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("loader thread panicked"))
            .collect()
    });
    merged(parts)
}

/// The loaders of consecutive parts merged in order, and the finding a
/// revision without a config gets.
fn merged(parts: impl IntoIterator<Item = Loader>) -> (Snapshot, Vec<Diagnostic>) {
    let mut loader = Loader::default();
    for part in parts {
        loader.merge(part);
    }
    if loader.snapshot.config.is_none() {
        loader.diagnostics.push(Diagnostic::error(
            "ringmaster.yaml",
            "missing: every governed repository needs a ringmaster.yaml (kind: Config) at its root",
        ));
    }
    (loader.snapshot, loader.diagnostics)
}

/// Loads a revision whose entries are read while it loads (`validate`):
/// `read` hands the entries of part `index` (of `parts` consecutive parts,
/// in entry order) to [`Files`] one by one, on `workers` threads that each
/// take the next part not taken yet and first make their own `state` (a
/// repository handle). A file's bytes are parsed as they are handed in and
/// not kept: its document finds its text again only if a position is asked
/// for ([`yaml::parse_found_again`]). The parts are merged in order, so the
/// result is [`load`]'s on the same entries, byte for byte, wherever the
/// parts end and whichever thread loaded them.
///
/// An error from `state` or `read` ends that part; the error of the first
/// part (in entry order) that failed is returned, as reading every entry
/// first and then loading would have returned it.
pub fn load_streamed<S, E: Send>(
    parts: usize,
    workers: usize,
    state: impl Fn() -> Result<S, E> + Sync,
    read: impl Fn(&mut S, usize, &mut Files<'_>) -> Result<(), E> + Sync,
) -> Result<(Snapshot, Vec<Diagnostic>), E> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take = || next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (state, read, take) = (&state, &read, &take);
    let mut done: Vec<(usize, Result<Loader, E>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.clamp(1, parts.max(1)))
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut state = match state() {
                        Ok(state) => state,
                        Err(error) => {
                            let index = take();
                            if index < parts {
                                done.push((index, Err(error)));
                            }
                            return done;
                        }
                    };
                    loop {
                        let index = take();
                        if index >= parts {
                            return done;
                        }
                        let mut loader = Loader::default();
                        let result = read(&mut state, index, &mut Files(&mut loader));
                        done.push((index, result.map(|()| loader)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("loader thread panicked"))
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    // A thread that could not make its state took one part and left the
    // others to the threads that could; if none could, the parts none
    // took have no result, but an earlier part has its error.
    let mut parts_loaded = Vec::with_capacity(done.len());
    for (_, result) in done {
        parts_loaded.push(result?);
    }
    Ok(merged(parts_loaded))
}

/// Where [`load_streamed`]'s reader hands one part's entries, in order.
pub struct Files<'a>(&'a mut Loader);

impl Files<'_> {
    /// A file's bytes, parsed now and not kept: `find` must give exactly
    /// these bytes again (as text, by `key`: the same `find`
    /// and `key`) when a position is asked for later.
    pub fn file(&mut self, path: &str, bytes: &[u8], find: &Arc<dyn FindText>, key: usize) {
        self.0.entry(path, Content::Found(bytes, find, key));
    }

    /// Any other entry (too large, a link, a submodule), or a file whose
    /// bytes are kept.
    pub fn entry(&mut self, entry: Entry) {
        self.0.entry(&entry.path, Content::owned(entry.content));
    }
}

/// An entry's content as the loader takes it: a file's bytes borrowed
/// (copied into the document) or owned (moved into it), or borrowed and
/// not kept (found again when needed).
enum Content<'a> {
    File(std::borrow::Cow<'a, [u8]>),
    Found(&'a [u8], &'a Arc<dyn FindText>, usize),
    TooLarge(u64),
    Symlink,
    Submodule,
}

impl<'a> Content<'a> {
    fn of(content: &'a EntryContent) -> Content<'a> {
        match content {
            EntryContent::File(bytes) => Content::File(std::borrow::Cow::Borrowed(bytes)),
            EntryContent::TooLarge(size) => Content::TooLarge(*size),
            EntryContent::Symlink => Content::Symlink,
            EntryContent::Submodule => Content::Submodule,
        }
    }

    fn owned(content: EntryContent) -> Content<'static> {
        match content {
            EntryContent::File(bytes) => Content::File(std::borrow::Cow::Owned(bytes)),
            EntryContent::TooLarge(size) => Content::TooLarge(size),
            EntryContent::Symlink => Content::Symlink,
            EntryContent::Submodule => Content::Submodule,
        }
    }
}

#[derive(Default)]
struct Loader {
    snapshot: Snapshot,
    diagnostics: Vec<Diagnostic>,
}

/// Moves every object of `from` into `into`, reporting ids already taken.
fn merge_map<T: Clone>(
    into: &mut Objects<String, T>,
    from: Objects<String, T>,
    pointer: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for (id, object) in from {
        match into.get(&id) {
            Some(existing) => diagnostics.push(duplicate(&id, existing, &object, pointer)),
            None => {
                into.insert(id, object);
            }
        }
    }
}

fn duplicate<T>(id: &str, existing: &Located<T>, object: &Located<T>, pointer: &str) -> Diagnostic {
    let first = existing.position(pointer);
    object.error(
        pointer,
        format!(
            "duplicate id \"{id}\": already defined in {}:{}:{}",
            existing.file, first.line, first.column
        ),
    )
}

impl Loader {
    /// Folds a part loaded by another thread into this one.
    fn merge(&mut self, part: Loader) {
        let Loader {
            snapshot,
            mut diagnostics,
        } = part;
        self.diagnostics.append(&mut diagnostics);
        let target = &mut self.snapshot;
        let out = &mut self.diagnostics;
        if let Some(config) = snapshot.config {
            target.config.get_or_insert(config);
        }
        merge_map(&mut target.principals, snapshot.principals, "/id", out);
        merge_map(&mut target.applications, snapshot.applications, "/id", out);
        merge_map(&mut target.entitlements, snapshot.entitlements, "/id", out);
        merge_map(&mut target.intents, snapshot.intents, "/intent_id", out);
        merge_map(
            &mut target.approvals,
            snapshot.approvals,
            "/approval_id",
            out,
        );
        merge_map(
            &mut target.exceptions,
            snapshot.exceptions,
            "/exception_id",
            out,
        );
        for (key, version) in snapshot.versions {
            match target.versions.get(&key) {
                Some(existing) => out.push(version.error(
                    "/version",
                    format!(
                        "duplicate version {} of {}: already defined in {}",
                        key.1, key.0, existing.file
                    ),
                )),
                None => {
                    target.versions.insert(key, version);
                }
            }
        }
        target.policies.extend(snapshot.policies);
    }

    fn entry(&mut self, path: &str, content: Content<'_>) {
        // Links and submodules are refused wherever they are: nothing is ever followed.
        let refusal = match content {
            Content::Symlink => Some(
                "symbolic links are not allowed in a governed repository; commit the file itself",
            ),
            Content::Submodule => Some(
                "submodules are not allowed in a governed repository; ringmaster never follows them",
            ),
            Content::File(_) | Content::Found(..) | Content::TooLarge(_) => None,
        };
        if let Some(message) = refusal {
            self.diagnostics.push(Diagnostic::error(path, message));
            return;
        }
        let slot = slot(path);
        if slot == Slot::Ignored {
            return;
        }
        if let Slot::Outside(message) = &slot {
            self.diagnostics
                .push(Diagnostic::error(path, message.clone()));
            return;
        }
        let (bytes, find) = match content {
            Content::File(bytes) => (bytes, None),
            Content::Found(bytes, find, key) => {
                (std::borrow::Cow::Borrowed(bytes), Some((find, key)))
            }
            Content::TooLarge(size) => {
                self.diagnostics.push(Diagnostic::error(
                    path,
                    format!(
                        "file is {size} bytes; governed files may be at most {MAX_FILE_BYTES} bytes"
                    ),
                ));
                return;
            }
            Content::Symlink | Content::Submodule => return,
        };
        // Checked once; the error names the line the first bad byte is on.
        let not_utf8 = |bytes: &[u8], error: std::str::Utf8Error| {
            let line = bytes[..error.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            Diagnostic::error(path, "file is not valid UTF-8; save it as UTF-8")
                .at(Position { line, column: 1 })
        };
        let text = match bytes {
            std::borrow::Cow::Borrowed(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(error) => {
                    self.diagnostics.push(not_utf8(bytes, error));
                    return;
                }
            },
            std::borrow::Cow::Owned(bytes) => match String::from_utf8(bytes) {
                Ok(text) => std::borrow::Cow::Owned(text),
                Err(error) => {
                    self.diagnostics
                        .push(not_utf8(error.as_bytes(), error.utf8_error()));
                    return;
                }
            },
        };
        match slot {
            Slot::Policy => self.snapshot.policies.push(PolicyFile {
                path: path.to_owned(),
                source: text.into_owned(),
            }),
            Slot::Yaml { kind, implied } => self.yaml(path, text, find, kind, implied),
            Slot::Ignored | Slot::Outside(_) => {}
        }
    }

    fn yaml(
        &mut self,
        path: &str,
        text: std::borrow::Cow<'_, str>,
        find: Option<(&Arc<dyn FindText>, usize)>,
        expected_kind: &'static str,
        implied: Implied,
    ) {
        // The text in hand while the document is checked, when the document
        // does not keep it: positions found now are read from it.
        let (parsed, in_hand) = match (text, find) {
            (std::borrow::Cow::Borrowed(text), Some((find, key))) => {
                (yaml::parse_found_again(text, find, key), Some(text))
            }
            (std::borrow::Cow::Borrowed(text), None) => (yaml::parse(text), None),
            (std::borrow::Cow::Owned(text), _) => (yaml::parse_owned(text), None),
        };
        let mut document = match parsed {
            Ok(document) => document,
            Err(error) => {
                self.diagnostics.push(
                    Diagnostic::error(path, format!("invalid YAML: {}", error.message))
                        .at(error.position),
                );
                return;
            }
        };
        let located_error = |pointer: &str, message: String| {
            let position = match in_hand {
                Some(text) => document.position_in(pointer, text),
                None => document.position(pointer),
            };
            Diagnostic::error(path, message)
                .at(position)
                .pointer(pointer)
        };
        let Value::Object(fields) = &document.value else {
            self.diagnostics.push(located_error(
                "",
                format!("expected a mapping with apiVersion and kind: {expected_kind}"),
            ));
            return;
        };
        match fields.get("apiVersion").and_then(Value::as_str) {
            Some(API_VERSION) => {}
            Some(other) => {
                self.diagnostics.push(located_error(
                    "/apiVersion",
                    format!(
                        "unsupported apiVersion \"{other}\"; this ringmaster reads {API_VERSION}"
                    ),
                ));
                return;
            }
            None => {
                self.diagnostics.push(located_error(
                    "",
                    format!("missing apiVersion: add `apiVersion: {API_VERSION}`"),
                ));
                return;
            }
        }
        match fields.get("kind").and_then(Value::as_str) {
            Some(kind) if kind == expected_kind => {}
            Some(kind) if !schema::is_known_kind(kind) => {
                self.diagnostics.push(located_error(
                    "/kind",
                    format!("unknown kind \"{kind}\"; {path} must hold kind: {expected_kind}"),
                ));
                return;
            }
            Some(kind) => {
                self.diagnostics.push(located_error(
                    "/kind",
                    format!(
                        "{path} holds kind {kind}, but files there must be kind: {expected_kind}"
                    ),
                ));
                return;
            }
            None => {
                self.diagnostics.push(located_error(
                    "",
                    format!("missing kind: add `kind: {expected_kind}`"),
                ));
                return;
            }
        }
        let violations = schema::validate(expected_kind, &document.value);
        if !violations.is_empty() {
            for violation in violations {
                let pointer = violation.pointer;
                self.diagnostics
                    .push(located_error(&pointer, violation.message));
            }
            return;
        }
        // The value moves into the typed object: a loaded object holds its
        // document's text (for positions), never a second copy of its value.
        let mut body = std::mem::take(&mut document.value);
        if let Value::Object(map) = &mut body {
            map.remove("apiVersion");
            map.remove("kind");
        }
        self.typed(path, expected_kind, body, Arc::new(document), implied);
    }

    fn typed(
        &mut self,
        path: &str,
        kind: &str,
        body: Value,
        document: Arc<Document>,
        implied: Implied,
    ) {
        fn decode<T: DeserializeOwned>(
            path: &str,
            body: Value,
            document: &Arc<Document>,
        ) -> Result<Located<T>, Diagnostic> {
            serde_json::from_value(body)
                .map(|value| Located::new(value, path.to_owned(), document.clone()))
                .map_err(|error| {
                    Diagnostic::error(path, format!("does not match its kind: {error}"))
                        .at(document.position(""))
                })
        }
        let result = match kind {
            "Config" => decode::<Config>(path, body, &document).map(|config| {
                self.snapshot.config = Some(config);
            }),
            "Principal" => decode(path, body, &document).map(|p: Located<Principal>| {
                let id = p.id.clone();
                self.insert_unique(&implied, "/id", id, p, |s| &mut s.principals);
            }),
            "Application" => decode(path, body, &document).map(|a: Located<Application>| {
                let id = a.id.clone();
                self.insert_unique(&implied, "/id", id, a, |s| &mut s.applications);
            }),
            "ApplicationVersion" => {
                decode(path, body, &document).map(|v: Located<ApplicationVersion>| {
                    self.version(implied, v);
                })
            }
            "EntitlementRule" => {
                decode(path, body, &document).map(|e: Located<EntitlementRule>| {
                    let id = e.id.clone();
                    self.insert_unique(&implied, "/id", id, e, |s| &mut s.entitlements);
                })
            }
            "DeploymentIntent" => {
                decode(path, body, &document).map(|i: Located<DeploymentIntent>| {
                    let id = i.intent_id.clone();
                    self.insert_unique(&implied, "/intent_id", id, i, |s| &mut s.intents);
                })
            }
            "ApprovalRecord" => decode(path, body, &document).map(|a: Located<ApprovalRecord>| {
                let id = a.approval_id.clone();
                self.insert_unique(&implied, "/approval_id", id, a, |s| &mut s.approvals);
            }),
            "Exception" => decode(path, body, &document).map(|e: Located<Exception>| {
                let id = e.exception_id.clone();
                self.insert_unique(&implied, "/exception_id", id, e, |s| &mut s.exceptions);
            }),
            other => unreachable!("slot() only yields known kinds, got {other}"),
        };
        if let Err(diagnostic) = result {
            self.diagnostics.push(diagnostic);
        }
    }

    /// Inserts an object under its id, reporting a file name that disagrees
    /// with the id and an id that is already taken (at both places).
    fn insert_unique<T>(
        &mut self,
        implied: &Implied,
        pointer: &str,
        id: String,
        object: Located<T>,
        map: impl FnOnce(&mut Snapshot) -> &mut Objects<String, T>,
    ) {
        if let Implied::Id(field, expected) = implied
            && *expected != id
        {
            self.diagnostics.push(object.error(
                    pointer,
                    format!("{field} \"{id}\" does not match the file name; rename the file to {expected_path} or set {field}: {expected}",
                        expected_path = object.file.replace(&format!("{expected}.yaml"), &format!("{id}.yaml"))),
                ));
            return;
        }
        let map = map(&mut self.snapshot);
        if let Some(existing) = map.get(&id) {
            self.diagnostics
                .push(duplicate(&id, existing, &object, pointer));
            return;
        }
        map.insert(id, object);
    }

    fn version(&mut self, implied: Implied, version: Located<ApplicationVersion>) {
        if let Implied::ApplicationVersion {
            application,
            version: file_version,
        } = &implied
        {
            if version.application_id != *application {
                self.diagnostics.push(version.error(
                    "/application_id",
                    format!(
                        "application_id \"{}\" does not match its folder apps/{application}/",
                        version.application_id
                    ),
                ));
                return;
            }
            if version.version != *file_version {
                self.diagnostics.push(version.error(
                    "/version",
                    format!(
                        "version \"{}\" does not match the file name {file_version}.yaml; rename it to {}.yaml",
                        version.version, version.version
                    ),
                ));
                return;
            }
        }
        let key = (version.application_id.clone(), version.version.clone());
        if let Some(existing) = self.snapshot.versions.get(&key) {
            let diagnostic = version.error(
                "/version",
                format!(
                    "duplicate version {} of {}: already defined in {}",
                    key.1, key.0, existing.file
                ),
            );
            self.diagnostics.push(diagnostic);
            return;
        }
        self.snapshot.versions.insert(key, version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated repository with findings of several kinds mixed in.
    fn entries() -> Vec<Entry> {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::synthetic::write(dir.path(), 400).expect("generate");
        let mut entries = crate::source::read_worktree(dir.path()).expect("read");
        let at = entries.len() / 3;
        entries.insert(at, Entry::file("intents/broken.yaml", "a: [1, 2\n"));
        entries.insert(
            at * 2,
            Entry::file("intents/bad.yaml", b"a: \xff\n".to_vec()),
        );
        entries.push(Entry::file("principals/odd.yaml", "kind: Nope\n"));
        entries
    }

    #[test]
    fn parts_are_contiguous_and_balanced_by_bytes() {
        let entries = entries();
        let starts = part_starts(&entries);
        assert_eq!(starts.first(), Some(&0));
        assert!(starts.windows(2).all(|pair| pair[1] - pair[0] >= MIN_PART));
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(starts.len(), workers.min(entries.len() / MIN_PART).max(1));
        // No part holds more than an equal share and one file.
        let weight = |entry: &Entry| {
            PER_FILE_BYTES
                + match &entry.content {
                    EntryContent::File(bytes) => bytes.len(),
                    _ => 0,
                }
        };
        let total: usize = entries.iter().map(weight).sum();
        let largest = entries.iter().map(weight).max().unwrap_or(0);
        let ends = starts.iter().skip(1).copied().chain([entries.len()]);
        for (start, end) in starts.iter().zip(ends) {
            let part: usize = entries[*start..end].iter().map(weight).sum();
            assert!(part <= total / starts.len() + largest, "{part} of {total}");
        }
        assert_eq!(part_starts(&entries[..MIN_PART * 2 - 1]), vec![0]);
        assert_eq!(part_starts(&[]), vec![0]);
    }

    /// Where the parts end changes nothing: one part, `load`'s parts, and
    /// `load_owned`'s give the same snapshot and diagnostics, in order.
    #[test]
    fn results_do_not_depend_on_the_parts() {
        let entries = entries();
        let whole = load_parts(vec![entries.as_slice()], |loader, part| {
            for entry in part {
                loader.entry(&entry.path, Content::of(&entry.content));
            }
        });
        let shown = |(snapshot, diagnostics): &(Snapshot, Vec<Diagnostic>)| {
            format!("{snapshot:?}\n{diagnostics:?}")
        };
        assert!(whole.1.len() >= 3, "{:?}", whole.1);
        assert_eq!(shown(&load(&entries)), shown(&whole));
        assert_eq!(shown(&load_owned(entries.clone())), shown(&whole));
        // Parts of equal counts, as before, too.
        let halves = entries.split_at(entries.len() / 2);
        let halves = load_parts(vec![halves.0, halves.1], |loader, part| {
            for entry in part {
                loader.entry(&entry.path, Content::of(&entry.content));
            }
        });
        assert_eq!(shown(&halves), shown(&whole));
    }

    /// Every file's text, found again by its index ([`load_streamed`]'s
    /// key); or, `gone`, none of them.
    struct Texts {
        entries: Vec<Entry>,
        gone: bool,
        asked: std::sync::atomic::AtomicUsize,
    }

    impl FindText for Texts {
        fn text(&self, key: usize) -> Option<String> {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match &self.entries.get(key)?.content {
                EntryContent::File(bytes) if !self.gone => String::from_utf8(bytes.clone()).ok(),
                _ => None,
            }
        }
    }

    /// `entries` loaded by [`load_streamed`] in parts of `size` entries on
    /// `workers` threads, each file's text found again through `texts`.
    fn streamed(
        texts: &Arc<Texts>,
        size: usize,
        workers: usize,
    ) -> Result<(Snapshot, Vec<Diagnostic>), usize> {
        let entries = &texts.entries;
        let find: Arc<dyn FindText> = texts.clone();
        load_streamed(
            entries.len().div_ceil(size),
            workers,
            || Ok(()),
            |(), part, files| {
                let start = part * size;
                for (index, entry) in entries.iter().enumerate().skip(start).take(size) {
                    match &entry.content {
                        EntryContent::File(bytes) => files.file(&entry.path, bytes, &find, index),
                        _ => files.entry(entry.clone()),
                    }
                }
                Ok(())
            },
        )
    }

    /// Loading entries as they are read, their texts not kept, is loading
    /// them: the same snapshot and diagnostics (positions found again where
    /// one is asked for after loading), wherever the parts end and on any
    /// number of threads; the first failing part's error; and a text that
    /// cannot be found again gives no position, never a wrong one.
    #[test]
    fn streamed_loading_is_loading() {
        let mut entries = entries();
        // Findings whose positions are read after loading: an id that does
        // not match its file name, and a duplicate of an earlier file.
        let (id_file, intent) = entries
            .iter()
            .find(|e| e.path.starts_with("intents/synthetic"))
            .map(|e| (e.path.clone(), e.content.clone()))
            .expect("an intent");
        entries.push(Entry {
            path: "intents/renamed.yaml".into(),
            content: intent.clone(),
        });
        entries.insert(
            entries.len() / 2,
            Entry {
                path: id_file,
                content: intent,
            },
        );
        entries.push(Entry {
            path: "intents/link.yaml".into(),
            content: EntryContent::Symlink,
        });
        entries.push(Entry {
            path: "intents/huge.yaml".into(),
            content: EntryContent::TooLarge(MAX_FILE_BYTES + 1),
        });
        entries.push(Entry::file(
            "intents/bad-schema.yaml",
            "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: bad-schema\n",
        ));
        // Sorted, as every report has them: a duplicate across parts is
        // found when the parts are merged, after the rest of its part.
        let sorted = |(snapshot, mut diagnostics): (Snapshot, Vec<Diagnostic>)| {
            crate::diagnostic::sort(&mut diagnostics);
            (snapshot, diagnostics)
        };
        let whole = sorted(load(&entries));
        let shown = |(snapshot, diagnostics): &(Snapshot, Vec<Diagnostic>)| {
            format!("{snapshot:?}\n{diagnostics:?}")
        };
        assert!(
            whole
                .1
                .iter()
                .any(|d| d.message.contains("duplicate id") && d.line > 0)
                && whole
                    .1
                    .iter()
                    .any(|d| d.message.contains("does not match the file name")),
            "{:?}",
            whole.1
        );
        let texts = Arc::new(Texts {
            entries,
            gone: false,
            asked: Default::default(),
        });
        for (size, workers) in [(1, 1), (7, 2), (128, 2), (128, 3), (100_000, 2)] {
            let loaded = sorted(streamed(&texts, size, workers).expect("loads"));
            assert_eq!(
                shown(&loaded),
                shown(&whole),
                "parts of {size}, {workers} threads"
            );
        }
        // Only the documents asked for a position after loading were read again.
        let asked = texts.asked.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=5 * 3).contains(&asked), "{asked}");

        // The first failing part's error, whichever thread met it first.
        let failing = load_streamed(
            40,
            2,
            || Ok(()),
            |(), part, _| if part % 7 == 3 { Err(part) } else { Ok(()) },
        );
        assert_eq!(failing.map(|_| ()), Err(3));
        assert_eq!(
            load_streamed(4, 2, || Err::<(), _>(9), |(), _, _| Ok(())).map(|_| ()),
            Err(9)
        );

        // Texts gone: the findings read after loading are about the whole
        // file (line 0), everything else is as before.
        let gone = Arc::new(Texts {
            entries: texts.entries.clone(),
            gone: true,
            asked: Default::default(),
        });
        let (snapshot, diagnostics) = sorted(streamed(&gone, 128, 2).expect("loads"));
        assert_eq!(format!("{snapshot:?}"), format!("{:?}", whole.0));
        let read_after = |d: &&Diagnostic| {
            d.message.contains("duplicate id") || d.message.contains("does not match the file name")
        };
        let (after, rest): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
            diagnostics.iter().partition(read_after);
        let (expected_after, expected_rest): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
            whole.1.iter().partition(read_after);
        assert_eq!(rest, expected_rest);
        assert_eq!(after.len(), expected_after.len());
        assert!(
            after.iter().all(|d| (d.line, d.column) == (0, 0)),
            "{after:?}"
        );
        assert!(
            expected_after.iter().all(|d| d.line > 0),
            "{expected_after:?}"
        );
    }
}
