//! Loading a snapshot from the entries of a revision's tree.
//!
//! Pure: takes the entries (path, and either bytes or what kind of non-file it
//! is) and returns the typed snapshot plus every diagnostic. Reading the tree
//! from Git or from a work tree is `source`'s job.

use super::kinds::*;
use super::snapshot::{Located, Objects, PolicyFile, Snapshot};
use super::yaml::{self, Document};
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
/// Files are parsed and schema-checked on all cores; the parts are then merged
/// in entry order, so results (and which of two duplicates is reported) do not
/// depend on the number of threads.
pub fn load(entries: &[Entry]) -> (Snapshot, Vec<Diagnostic>) {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunk = entries.len().div_ceil(workers).max(64);
    let parts: Vec<Loader> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut loader = Loader::default();
                    for entry in part {
                        loader.entry(entry);
                    }
                    loader
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("loader thread panicked"))
            .collect()
    });
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

    fn entry(&mut self, entry: &Entry) {
        let path = entry.path.as_str();
        // Links and submodules are refused wherever they are: nothing is ever followed.
        let refusal = match entry.content {
            EntryContent::Symlink => Some(
                "symbolic links are not allowed in a governed repository; commit the file itself",
            ),
            EntryContent::Submodule => Some(
                "submodules are not allowed in a governed repository; ringmaster never follows them",
            ),
            EntryContent::File(_) | EntryContent::TooLarge(_) => None,
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
        let bytes = match &entry.content {
            EntryContent::File(bytes) => bytes,
            EntryContent::TooLarge(size) => {
                self.diagnostics.push(Diagnostic::error(
                    path,
                    format!(
                        "file is {size} bytes; governed files may be at most {MAX_FILE_BYTES} bytes"
                    ),
                ));
                return;
            }
            EntryContent::Symlink | EntryContent::Submodule => return,
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                let line = bytes[..error.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1;
                self.diagnostics.push(
                    Diagnostic::error(path, "file is not valid UTF-8; save it as UTF-8")
                        .at(Position { line, column: 1 }),
                );
                return;
            }
        };
        match slot {
            Slot::Policy => self.snapshot.policies.push(PolicyFile {
                path: path.to_owned(),
                source: text.to_owned(),
            }),
            Slot::Yaml { kind, implied } => self.yaml(path, text, kind, implied),
            Slot::Ignored | Slot::Outside(_) => {}
        }
    }

    fn yaml(&mut self, path: &str, text: &str, expected_kind: &'static str, implied: Implied) {
        let mut document = match yaml::parse(text) {
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
            Diagnostic::error(path, message)
                .at(document.position(pointer))
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
