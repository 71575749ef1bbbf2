//! The governed repository as the API sees it: the snapshot of the last
//! good commit the daemon processed (its records: applications, intents,
//! approvals, exceptions) judged by the rules in force the daemon recorded
//! (`rules_in_force` in the store: the config, principals and policies of
//! the last authorised commit), loaded once per (commit, rules commit) and
//! shared.
//!
//! The API never judges anything itself; it reads what the daemon's one
//! judge accepted. The principals that authenticate API callers come from
//! here, so a principal added by a commit the daemon refused, or by a
//! change to `principals/` no admin authorised
//! (`governance_change_unauthorised`), never gets in.

use crate::model::{Principal, Snapshot};
use crate::source::GovernedRepo;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// One governed revision, with the identity maps of its principals.
#[derive(Debug)]
pub struct Governed {
    /// The last good commit (the records).
    pub commit: String,
    /// The commit whose config, principals and policies are in force (the
    /// same as `commit` unless a later change to them was not authorised).
    pub rules_commit: String,
    pub snapshot: Snapshot,
    pub directory: Directory,
}

/// Which principal an identity is. An identity claimed by two principals
/// is ambiguous and authenticates nobody.
#[derive(Debug, Default)]
pub struct Directory {
    oidc: BTreeMap<String, Vec<String>>,
    certificates: BTreeMap<String, Vec<String>>,
}

/// What looking an identity up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    Unknown,
    /// Several principals claim it (listed).
    Ambiguous(Vec<String>),
}

impl Directory {
    pub fn build(principals: &crate::model::Objects<String, Principal>) -> Directory {
        let mut directory = Directory::default();
        for principal in principals.values() {
            for subject in &principal.oidc_subjects {
                directory
                    .oidc
                    .entry(subject.clone())
                    .or_default()
                    .push(principal.id.clone());
            }
            for name in &principal.certificate_subjects {
                directory
                    .certificates
                    .entry(name.clone())
                    .or_default()
                    .push(principal.id.clone());
            }
        }
        directory
    }

    fn lookup(map: &BTreeMap<String, Vec<String>>, key: &str) -> Lookup {
        match map.get(key).map(Vec::as_slice) {
            None | Some([]) => Lookup::Unknown,
            Some([one]) => Lookup::Found(one.clone()),
            Some(many) => Lookup::Ambiguous(many.to_vec()),
        }
    }

    /// The principal whose `oidc_subjects` holds `subject`.
    pub fn by_oidc_subject(&self, subject: &str) -> Lookup {
        Directory::lookup(&self.oidc, subject)
    }

    /// The principal one of whose `certificate_subjects` is among `names`
    /// (the certificate's SANs, then its CN); all matches must agree.
    pub fn by_certificate_names(&self, names: &[String]) -> Lookup {
        let mut found: Vec<String> = Vec::new();
        for name in names {
            match Directory::lookup(&self.certificates, name) {
                Lookup::Found(id) => found.push(id),
                Lookup::Ambiguous(ids) => return Lookup::Ambiguous(ids),
                Lookup::Unknown => {}
            }
        }
        found.sort();
        found.dedup();
        match found.as_slice() {
            [] => Lookup::Unknown,
            [one] => Lookup::Found(one.clone()),
            _ => Lookup::Ambiguous(found),
        }
    }
}

/// Loads and caches the governed snapshot of the daemon's last good commit.
pub struct GovernedSource {
    path: PathBuf,
    branch: String,
    repo: Mutex<Option<GovernedRepo>>,
    current: RwLock<Option<Arc<Governed>>>,
}

impl std::fmt::Debug for GovernedSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GovernedSource")
            .field("path", &self.path)
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

impl GovernedSource {
    /// `path`: what the daemon opens as the governed repository (a local
    /// repository or folder, or the mirror of a remote one).
    pub fn new(path: PathBuf, branch: String) -> GovernedSource {
        GovernedSource {
            path,
            branch,
            repo: Mutex::new(None),
            current: RwLock::new(None),
        }
    }

    /// The governed revision in force now; `None` before the daemon has
    /// accepted any commit.
    pub fn current(&self, store: &Store) -> Result<Option<Arc<Governed>>, String> {
        let Some(good) = store
            .last_good_commit(&self.branch)
            .map_err(|error| error.to_string())?
        else {
            return Ok(None);
        };
        // The rules the daemon put in force; a store from before that
        // record (the daemon writes it at its next commit) has the good
        // commit's own rules.
        let rules_commit = store
            .rules_state(&self.branch)
            .map_err(|error| error.to_string())?
            .map(|state| state.rules_commit)
            .unwrap_or_else(|| good.commit_sha.clone());
        let fresh = |current: &Governed| {
            current.commit == good.commit_sha && current.rules_commit == rules_commit
        };
        if let Some(current) = self.current.read().map_err(|_| "poisoned")?.as_ref()
            && fresh(current)
        {
            return Ok(Some(current.clone()));
        }
        let mut repo = self.repo.lock().map_err(|_| "poisoned")?;
        // Another request may have loaded it while we waited.
        if let Some(current) = self.current.read().map_err(|_| "poisoned")?.as_ref()
            && fresh(current)
        {
            return Ok(Some(current.clone()));
        }
        if repo.is_none() {
            *repo = Some(GovernedRepo::open(&self.path).map_err(|error| error.to_string())?);
        }
        let Some(opened) = repo.as_ref() else {
            return Ok(None);
        };
        let load = |sha: &str| -> Result<Snapshot, String> {
            let oid = git2::Oid::from_str(sha).map_err(|error| error.to_string())?;
            let entries = opened.entries_at(oid).map_err(|error| error.to_string())?;
            Ok(crate::model::load(&entries).0)
        };
        let own = load(&good.commit_sha)?;
        let snapshot = if rules_commit == good.commit_sha {
            own
        } else {
            own.judged_by(&load(&rules_commit)?)
        };
        let directory = Directory::build(&snapshot.principals);
        let governed = Arc::new(Governed {
            commit: good.commit_sha,
            rules_commit,
            snapshot,
            directory,
        });
        *self.current.write().map_err(|_| "poisoned")? = Some(governed.clone());
        Ok(Some(governed))
    }
}
