//! What a change touches: the files it changed, the intents whose decision
//! it can move, and whether it edits the rules themselves.
//!
//! Pure: two revisions' entries or snapshots in, sets of paths and ids out.

use crate::model::{Entry, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

/// Paths (relative to the governed root) whose content differs between two
/// revisions, including files added or removed.
pub fn changed_paths(before: &[Entry], after: &[Entry]) -> BTreeSet<String> {
    let before: BTreeMap<&str, &Entry> = before.iter().map(|e| (e.path.as_str(), e)).collect();
    let after: BTreeMap<&str, &Entry> = after.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for (path, entry) in &after {
        if before.get(path) != Some(entry) {
            changed.insert((*path).to_owned());
        }
    }
    for path in before.keys() {
        if !after.contains_key(path) {
            changed.insert((*path).to_owned());
        }
    }
    changed
}

/// Is this path part of the rules a change is judged by? The tenant's
/// policies, its principals, its config, and schemas (which ringmaster
/// compiles in, so a `schemas/` folder in the repository is an attempt to
/// bring its own). Changing any of them needs a platform admin's approval.
pub fn is_governance_path(path: &str) -> bool {
    path == "ringmaster.yaml"
        || path.starts_with("policies/")
        || path.starts_with("principals/")
        || path.starts_with("schemas/")
}

/// The governance paths among `changed`.
pub fn governance_paths(changed: &BTreeSet<String>) -> Vec<String> {
    changed
        .iter()
        .filter(|p| is_governance_path(p))
        .cloned()
        .collect()
}

/// Intents of `after` whose decision the change can move: the intent itself
/// is new or edited, or an approval, exception, application, version or
/// entitlement it depends on was added, edited or removed. Without a `before`
/// every intent is affected.
pub fn affected_intents(after: &Snapshot, before: Option<&Snapshot>) -> BTreeSet<String> {
    let Some(before) = before else {
        return after.intents.keys().cloned().collect();
    };
    let mut affected = BTreeSet::new();
    for (id, intent) in &after.intents {
        let previous = before.intents.get(id).map(|i| &i.value);
        if previous != Some(&intent.value) {
            affected.insert(id.clone());
        }
    }
    let mut touched_intents = BTreeSet::new();
    for id in changed_keys(&after.approvals, &before.approvals) {
        for snapshot in [after, before] {
            if let Some(record) = snapshot.approvals.get(&id) {
                touched_intents.insert(record.deployment_intent_id.clone());
            }
        }
    }
    let mut touched_artifacts = BTreeSet::new();
    for id in changed_keys(&after.exceptions, &before.exceptions) {
        for snapshot in [after, before] {
            if let Some(record) = snapshot.exceptions.get(&id) {
                touched_artifacts.insert(record.artifact_id.clone());
            }
        }
    }
    let mut touched_applications: BTreeSet<String> =
        changed_keys(&after.applications, &before.applications)
            .into_iter()
            .collect();
    for (application, _version) in changed_keys(&after.versions, &before.versions) {
        touched_applications.insert(application);
    }
    let touched_entitlements: Vec<_> = changed_keys(&after.entitlements, &before.entitlements)
        .into_iter()
        .filter_map(|id| after.entitlements.get(&id).or(before.entitlements.get(&id)))
        .collect();
    if touched_intents.is_empty()
        && touched_applications.is_empty()
        && touched_artifacts.is_empty()
        && touched_entitlements.is_empty()
    {
        return affected;
    }
    for (id, intent) in &after.intents {
        let artifact = if touched_artifacts.is_empty() {
            None
        } else {
            after.artifact_of(intent).map(|a| a.id.clone())
        };
        let target = &intent.target_scope;
        let entitlement_touched = touched_entitlements.iter().any(|rule| {
            rule.scope.acquisition_boundary == target.acquisition_boundary
                && rule.scope.business_unit == target.business_unit
                && target.rings.contains(&rule.ring)
        });
        if touched_intents.contains(id)
            || touched_applications.contains(&intent.application_id)
            || artifact.is_some_and(|a| touched_artifacts.contains(&a))
            || entitlement_touched
        {
            affected.insert(id.clone());
        }
    }
    affected
}

/// Intents present before and gone after.
pub fn removed_intents(after: &Snapshot, before: &Snapshot) -> Vec<String> {
    before
        .intents
        .keys()
        .filter(|id| !after.intents.contains_key(*id))
        .cloned()
        .collect()
}

/// Keys whose value was added, edited or removed.
fn changed_keys<K, T>(
    after: &crate::model::Objects<K, T>,
    before: &crate::model::Objects<K, T>,
) -> Vec<K>
where
    K: Ord + Clone,
    T: PartialEq,
{
    let mut keys: Vec<K> = after
        .iter()
        .filter(|(key, value)| before.get(*key).map(|b| &b.value) != Some(&value.value))
        .map(|(key, _)| key.clone())
        .collect();
    keys.extend(
        before
            .keys()
            .filter(|key| !after.contains_key(*key))
            .cloned(),
    );
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governance_paths_are_config_policies_principals_and_schemas() {
        for path in [
            "ringmaster.yaml",
            "policies/tenant.rego",
            "principals/alice.yaml",
            "schemas/deployment-intent.schema.json",
        ] {
            assert!(is_governance_path(path), "{path}");
        }
        for path in [
            "intents/x.yaml",
            "approvals/a.yaml",
            "apps/policies/app.yaml",
            "ringmaster.yaml.bak",
        ] {
            assert!(!is_governance_path(path), "{path}");
        }
    }

    #[test]
    fn changed_paths_include_added_edited_and_removed_files() {
        let before = vec![
            Entry::file("a.yaml", "1"),
            Entry::file("b.yaml", "1"),
            Entry::file("c.yaml", "1"),
        ];
        let after = vec![
            Entry::file("a.yaml", "1"),
            Entry::file("b.yaml", "2"),
            Entry::file("d.yaml", "1"),
        ];
        let changed: Vec<String> = changed_paths(&before, &after).into_iter().collect();
        assert_eq!(changed, vec!["b.yaml", "c.yaml", "d.yaml"]);
    }
}
