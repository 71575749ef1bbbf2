//! Which files a commit adds to its parent's tree — and a refusal for
//! anything else (a modification, a deletion, a mode change, a submodule).
//!
//! Subtrees whose object id did not change are skipped without being read,
//! so on the evidence layout only the one path
//! `packs/YYYY/MM/BBBBBBxx/` is compared per commit, each directory on it
//! small; the parent commit's trees are kept from the previous step rather
//! than read again. That keeps `verify` linear in the number of records.

use std::collections::HashMap;

use git2::{ObjectType, Oid, Repository, Tree};

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
        if let Some(old_tree) = &old_tree {
            for old_entry in old_tree.iter() {
                let path = join(prefix, old_entry.name_bytes());
                let Some(new_entry) = new_tree.get_name_bytes(old_entry.name_bytes()) else {
                    return Err(violation(path, "deletes"));
                };
                if new_entry.id() == old_entry.id() && new_entry.filemode() == old_entry.filemode()
                {
                    continue;
                }
                let both_trees = old_entry.kind() == Some(ObjectType::Tree)
                    && new_entry.kind() == Some(ObjectType::Tree);
                if !both_trees {
                    return Err(violation(path, "modifies"));
                }
                self.compare(Some(old_entry.id()), new_entry.id(), &path, added)?;
            }
        }
        for new_entry in new_tree.iter() {
            let in_old_tree = old_tree
                .as_ref()
                .is_some_and(|tree| tree.get_name_bytes(new_entry.name_bytes()).is_some());
            if in_old_tree {
                continue;
            }
            let path = join(prefix, new_entry.name_bytes());
            match new_entry.kind() {
                Some(ObjectType::Tree) => self.compare(None, new_entry.id(), &path, added)?,
                Some(ObjectType::Blob) if new_entry.filemode() == 0o100644 => {
                    added.push(AddedFile {
                        path,
                        blob: new_entry.id(),
                    })
                }
                Some(ObjectType::Blob) => {
                    let reason = format!(
                        "adds {path} with mode {:o}; evidence files are plain files (100644)",
                        new_entry.filemode()
                    );
                    return Err(TreeViolation { path, reason });
                }
                _ => return Err(violation(path, "adds a submodule or unknown object at")),
            }
        }
        Ok(())
    }
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
