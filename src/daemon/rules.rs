//! The rules in force on the tracked branch (DESIGN §4.1).
//!
//! The daemon never judges a commit by the rules the commit itself brings.
//! It keeps the last *authorised* rules — the config, principals and
//! policies of one commit, and the last authorised allowed scope of every
//! application — in the store (`store::rules`), and for each new commit:
//!
//! 1. compares the commit's rules (`ringmaster.yaml`, `principals/`,
//!    `policies/`, `schemas/`) with those in force;
//! 2. if they differ, asks whether the change is authorised, by the rules in
//!    force *before* it (`authority::authorise_rules_change`): merged through
//!    a pull request whose head an `admin` approved, or signed by an admin's
//!    key (a commit cannot authorise itself with a key it adds);
//! 3. an authorised change takes effect with this commit; an unauthorised one
//!    does not: the commit is judged by the rules in force, and the change is
//!    recorded as `governance_change_unauthorised` (an event, a SIEM line and
//!    an evidence pack) and reported by `status` until a later authorised
//!    commit (or a commit that brings the rules back to those in force).
//!
//! **Bootstrap.** The first commit the daemon judges on a branch is the
//! root of authority: its rules, scopes and records are trusted by
//! definition (`ringmaster serve` prints it, and a `rules_in_force` event
//! and evidence pack record it). A store that predates this table takes its
//! last good commit as the root.

use super::process::ProcessError;
use crate::authority::Authorisation;
use crate::forge::changes;
use crate::model::{Entry, Scope, Snapshot};
use crate::source::GovernedRepo;
use crate::store::{RulesState, Store};
use chrono::{DateTime, Utc};
use git2::Oid;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The rules in force, loaded.
pub struct InForce {
    pub state: RulesState,
    /// The commit whose config, principals and policies are in force.
    pub rules_commit: Oid,
    pub rules_entries: Vec<Entry>,
    pub rules: Snapshot,
    /// Application id → last authorised allowed_scope.
    pub scopes: BTreeMap<String, Scope>,
}

/// What a commit does to the rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Governance {
    /// The first commit the daemon judges: authorised by definition.
    Root,
    /// Its rules are those in force.
    Unchanged,
    /// Its rules differ from those in force and the change is authorised:
    /// it takes effect with this commit.
    Authorised {
        paths: Vec<String>,
        by: Authorisation,
    },
    /// Its rules differ from those in force and nobody authorised the
    /// change: the commit is judged by the rules in force.
    Unauthorised { paths: Vec<String>, reason: String },
}

impl Governance {
    /// Whether the commit is judged by its own rules.
    pub fn own_rules(&self) -> bool {
        !matches!(self, Governance::Unauthorised { .. })
    }
}

/// Reads the rules in force on `branch`. Without a row but with a commit
/// already judged (a store from before this table), that commit becomes
/// the root of authority.
pub fn load(
    store: &mut Store,
    repo: &GovernedRepo,
    branch: &str,
    now: DateTime<Utc>,
) -> Result<Option<InForce>, ProcessError> {
    let state = match store.rules_state(branch)? {
        Some(state) => state,
        None => {
            let Some(good) = store.last_good_commit(branch)? else {
                return Ok(None);
            };
            let commit = Oid::from_str(&good.commit_sha)?;
            let (snapshot, _) = crate::model::load(&repo.entries_at(commit)?);
            let state = root_state(branch, &good.commit_sha, &snapshot);
            tracing::info!(commit = %good.commit_sha, "no rules in force recorded yet: the last good commit becomes the root of authority");
            store.save_rules_state(&state, now)?
        }
    };
    let rules_commit = Oid::from_str(&state.rules_commit)?;
    let rules_entries = repo.entries_at(rules_commit)?;
    let (rules, _) = crate::model::load(&rules_entries);
    let scopes = serde_json::from_value(state.app_scopes.clone()).unwrap_or_default();
    Ok(Some(InForce {
        state,
        rules_commit,
        rules_entries,
        rules,
        scopes,
    }))
}

/// The rules state of a root of authority: everything of `commit` in force.
pub fn root_state(branch: &str, commit: &str, snapshot: &Snapshot) -> RulesState {
    RulesState {
        branch: branch.to_owned(),
        root_commit: commit.to_owned(),
        rules_commit: commit.to_owned(),
        app_scopes: scopes_json(&application_scopes(snapshot)),
        unauthorised: None,
        judged_commit: commit.to_owned(),
        rejudge_at: None,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    }
}

/// Every application's allowed_scope in `snapshot`.
pub fn application_scopes(snapshot: &Snapshot) -> BTreeMap<String, Scope> {
    snapshot
        .applications
        .iter()
        .map(|(id, application)| (id.clone(), application.allowed_scope.clone()))
        .collect()
}

pub fn scopes_json(scopes: &BTreeMap<String, Scope>) -> Value {
    serde_json::to_value(scopes).unwrap_or_else(|_| json!({}))
}

/// The governance paths whose content differs between the rules in force
/// and a revision.
pub fn changed_rules(rules: &[Entry], revision: &[Entry]) -> Vec<String> {
    changes::governance_paths(&changes::changed_paths(rules, revision))
}

/// `previous` with every application's allowed_scope set to the last
/// authorised one, as application scope changes are measured against it
/// (so a widening split over two commits is still a widening). An
/// application `current` has that `previous` lacks but whose scope was
/// authorised before (removed and added again) is measured too.
pub fn scopes_base(
    previous: &Snapshot,
    current: &Snapshot,
    scopes: &BTreeMap<String, Scope>,
) -> Snapshot {
    let mut base = previous.clone();
    for (id, scope) in scopes {
        match base.applications.get_mut(id) {
            Some(application) => application.value.allowed_scope = scope.clone(),
            None => {
                if let Some(application) = current.applications.get(id) {
                    let mut application = application.clone();
                    application.value.allowed_scope = scope.clone();
                    base.applications.insert(id.clone(), application);
                }
            }
        }
    }
    base
}

/// The unauthorised change as the store, `status` and the evidence keep it.
pub fn unauthorised_record(
    commit: &str,
    rules_commit: &str,
    paths: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Value {
    json!({
        "commit": commit,
        "paths": paths,
        "reason": reason,
        "rules_in_force": rules_commit,
        "since": now,
    })
}

/// The application scopes in force after a valid commit: a new application
/// starts with its scope; a changed scope takes effect only with a counted
/// scope approval (`application_scope` naming the application and the
/// digest of the new scope, `decision: approved`, unexpired, decided by a
/// `cab-approver` of `rules`). Records in `snapshot` are the proven ones
/// (the judge dropped claims nobody proved). A release approval never
/// counts for a scope. Returns the scopes and the applications whose
/// change took effect.
pub fn authorised_scopes(
    in_force: &BTreeMap<String, Scope>,
    snapshot: &Snapshot,
    rules: &Snapshot,
    now: DateTime<Utc>,
) -> (BTreeMap<String, Scope>, Vec<String>) {
    use crate::model::digest::scope_sha256;
    let mut scopes = in_force.clone();
    let mut changed = Vec::new();
    for (id, application) in &snapshot.applications {
        let current = &application.allowed_scope;
        match in_force.get(id) {
            None => {
                scopes.insert(id.clone(), current.clone());
            }
            Some(scope) if scope_sha256(id, scope) == scope_sha256(id, current) => {}
            Some(_) => {
                if crate::judge::scope_approval(snapshot, rules, id, current, now).is_some() {
                    scopes.insert(id.clone(), current.clone());
                    changed.push(id.clone());
                }
            }
        }
    }
    (scopes, changed)
}
