//! The governed repository as the API sees it: the snapshot of the last
//! good commit the daemon processed (the rules in force: principals, their
//! roles and scopes, config, exceptions), loaded once per commit and shared.
//!
//! The API never judges anything itself; it reads what the daemon's one
//! judge accepted. The principals that authenticate API callers come from
//! here, so a principal added by a commit the daemon refused never gets in.

use crate::model::{Principal, Snapshot};
use crate::source::GovernedRepo;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// One governed revision, with the identity maps of its principals.
#[derive(Debug)]
pub struct Governed {
    pub commit: String,
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
    pub fn build(principals: &BTreeMap<String, crate::model::Located<Principal>>) -> Directory {
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
        if let Some(current) = self.current.read().map_err(|_| "poisoned")?.as_ref()
            && current.commit == good.commit_sha
        {
            return Ok(Some(current.clone()));
        }
        let mut repo = self.repo.lock().map_err(|_| "poisoned")?;
        // Another request may have loaded it while we waited.
        if let Some(current) = self.current.read().map_err(|_| "poisoned")?.as_ref()
            && current.commit == good.commit_sha
        {
            return Ok(Some(current.clone()));
        }
        if repo.is_none() {
            *repo = Some(GovernedRepo::open(&self.path).map_err(|error| error.to_string())?);
        }
        let Some(opened) = repo.as_ref() else {
            return Ok(None);
        };
        let oid = git2::Oid::from_str(&good.commit_sha).map_err(|error| error.to_string())?;
        let entries = opened.entries_at(oid).map_err(|error| error.to_string())?;
        let (snapshot, _) = crate::model::load(&entries);
        let directory = Directory::build(&snapshot.principals);
        let governed = Arc::new(Governed {
            commit: good.commit_sha,
            snapshot,
            directory,
        });
        *self.current.write().map_err(|_| "poisoned")? = Some(governed.clone());
        Ok(Some(governed))
    }
}
