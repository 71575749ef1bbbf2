//! Which files a commit adds to its parent's tree — and a refusal for
//! anything else (a modification, a deletion, a mode change, a submodule).
//!
//! Subtrees whose object id did not change are skipped without being read,
//! so on the evidence layout only the one path
//! `packs/YYYY/MM/BBBBBBxx/` is compared per commit, each directory on it
//! small; the parent commit's trees are kept from the previous step rather
//! than read again. That keeps `verify` linear in the number of records.

use std::cmp::Ordering;
use std::collections::HashMap;

use git2::{ObjectType, Oid, Repository, Tree, TreeEntry};

/// A file a commit adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddedFile {
    pub path: String,
    pub blob: Oid,
}

/// Why a commit is not a pure addition of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeViolation {
    pub path: String,
    pub reason: String,
}

/// Trees read for the current commit and for its parent, by id.
pub(crate) struct TreeCache<'repository> {
    repository: &'repository Repository,
    parent_trees: HashMap<Oid, Tree<'repository>>,
    current_trees: HashMap<Oid, Tree<'repository>>,
}

impl<'repository> TreeCache<'repository> {
    pub(crate) fn new(repository: &'repository Repository) -> Self {
        Self {
            repository,
            parent_trees: HashMap::new(),
            current_trees: HashMap::new(),
        }
    }

    fn tree(&mut self, id: Oid, path: &str) -> Result<Tree<'repository>, TreeViolation> {
        if let Some(tree) = self
            .current_trees
            .get(&id)
            .or_else(|| self.parent_trees.get(&id))
        {
            return Ok(tree.clone());
        }
        let tree = self
            .repository
            .find_tree(id)
            .map_err(|error| TreeViolation {
                path: path.to_string(),
                reason: format!("tree {id} cannot be read: {}", error.message()),
            })?;
        self.current_trees.insert(id, tree.clone());
        Ok(tree)
    }

    /// The commit just compared becomes the parent of the next one.
    pub(crate) fn advance(&mut self) {
        self.parent_trees = std::mem::take(&mut self.current_trees);
    }

    /// The files `new_root` adds to `old_root` (all of them when there is
    /// no old root), or the first change that is not an addition.
    pub(crate) fn added_files(
        &mut self,
        old_root: Option<Oid>,
        new_root: Oid,
    ) -> Result<Vec<AddedFile>, TreeViolation> {
        let mut added = Vec::new();
        self.compare(old_root, new_root, "", &mut added)?;
        Ok(added)
    }

    fn compare(
        &mut self,
        old_tree_id: Option<Oid>,
        new_tree_id: Oid,
        prefix: &str,
        added: &mut Vec<AddedFile>,
    ) -> Result<(), TreeViolation> {
        if old_tree_id == Some(new_tree_id) {
            return Ok(());
        }
        let new_tree = self.tree(new_tree_id, prefix)?;
        let old_tree = match old_tree_id {
            Some(id) => Some(self.tree(id, prefix)?),
            None => None,
        };
        // Both trees list their entries in git's order: walk them side by
        // side, so each directory costs one pass and no lookups.
        let old_length = old_tree.as_ref().map_or(0, Tree::len);
        let (mut old_index, mut new_index) = (0, 0);
        loop {
            let old_entry = old_tree
                .as_ref()
                .filter(|_| old_index < old_length)
                .and_then(|tree| tree.get(old_index));
            let new_entry = new_tree.get(new_index);
            match (old_entry, new_entry) {
                (None, None) => return Ok(()),
                (Some(old_entry), None) => {
                    return Err(violation(join(prefix, old_entry.name_bytes()), "deletes"));
                }
                (None, Some(new_entry)) => {
                    self.add_entry(&new_entry, prefix, added)?;
                    new_index += 1;
                }
                (Some(old_entry), Some(new_entry)) => match git_entry_order(&old_entry, &new_entry)
                {
                    Ordering::Less => {
                        return Err(violation(join(prefix, old_entry.name_bytes()), "deletes"));
                    }
                    Ordering::Greater => {
                        self.add_entry(&new_entry, prefix, added)?;
                        new_index += 1;
                    }
                    Ordering::Equal => {
                        let unchanged = new_entry.id() == old_entry.id()
                            && new_entry.filemode() == old_entry.filemode();
                        if !unchanged {
                            let path = join(prefix, old_entry.name_bytes());
                            if !(is_tree(&old_entry) && is_tree(&new_entry)) {
                                return Err(violation(path, "modifies"));
                            }
                            self.compare(Some(old_entry.id()), new_entry.id(), &path, added)?;
                        }
                        old_index += 1;
                        new_index += 1;
                    }
                },
            }
        }
    }

    /// Records an entry that is new: every file under it is added.
    fn add_entry(
        &mut self,
        entry: &TreeEntry<'_>,
        prefix: &str,
        added: &mut Vec<AddedFile>,
    ) -> Result<(), TreeViolation> {
        let path = join(prefix, entry.name_bytes());
        match entry.kind() {
            Some(ObjectType::Tree) => self.compare(None, entry.id(), &path, added),
            Some(ObjectType::Blob) if entry.filemode() == 0o100644 => {
                added.push(AddedFile {
                    path,
                    blob: entry.id(),
                });
                Ok(())
            }
            Some(ObjectType::Blob) => {
                let reason = format!(
                    "adds {path} with mode {:o}; evidence files are plain files (100644)",
                    entry.filemode()
                );
                Err(TreeViolation { path, reason })
            }
            _ => Err(violation(path, "adds a submodule or unknown object at")),
        }
    }
}

fn is_tree(entry: &TreeEntry<'_>) -> bool {
    entry.kind() == Some(ObjectType::Tree)
}

/// git's order of tree entries: by name bytes, a directory's name compared
/// as if it ended with `/`.
fn git_entry_order(left: &TreeEntry<'_>, right: &TreeEntry<'_>) -> Ordering {
    let (left_name, right_name) = (left.name_bytes(), right.name_bytes());
    let common = left_name.len().min(right_name.len());
    left_name[..common]
        .cmp(&right_name[..common])
        .then_with(|| {
            let next_byte = |name: &[u8], entry: &TreeEntry<'_>| match name.get(common) {
                Some(byte) => *byte,
                None if is_tree(entry) => b'/',
                None => 0,
            };
            next_byte(left_name, left).cmp(&next_byte(right_name, right))
        })
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

fn violation(path: String, verb: &str) -> TreeViolation {
    let reason = format!("{verb} {path}; the evidence branch only ever adds files");
    TreeViolation { path, reason }
}
