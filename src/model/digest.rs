//! The digests approvals are bound to: what exactly a CAB approved.
//!
//! Defined once, here. An approval record carries `intent_sha256`; a review
//! approval carried from an earlier merge, and the decision evidence pack,
//! use the same digest; an application scope approval carries
//! `scope_sha256`. A digest is `sha256:` and 64 lowercase hex digits over
//! the canonical JSON (keys sorted, no whitespace) of the fields below.
//!
//! `intent_sha256` covers what decides what a rollout does: the intent id,
//! the application, the version, the artifact it deploys and every artifact
//! of that version with its hash, the target scope (boundary, business
//! unit, sites, site class, rings) and the rollback plan. Editing any of
//! them (a new version, more rings, a swapped binary, a wider scope, a new
//! rollback plan) makes every approval of the intent stale; editing its
//! description or schedule does not.

use super::{DeploymentIntent, Scope, Snapshot};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of the canonical JSON of `value`.
pub fn sha256_of(value: &Value) -> String {
    let text = canonical(value);
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// Canonical JSON: object keys sorted (serde_json's map is ordered),
/// no whitespace.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{}:{}", Value::String(key.clone()), canonical(&map[key])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The fields of an intent an approval is bound to (see the module doc).
pub fn intent_subject(snapshot: &Snapshot, intent: &DeploymentIntent) -> Value {
    let artifacts: Vec<Value> = snapshot
        .versions
        .get(&(intent.application_id.clone(), intent.version.clone()))
        .map(|version| {
            let mut artifacts: Vec<Value> = version
                .artifacts
                .iter()
                .map(|a| json!({"id": a.id, "plane": a.plane, "file": a.file, "sha256": a.sha256}))
                .collect();
            artifacts.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            artifacts
        })
        .unwrap_or_default();
    json!({
        "intent_id": intent.intent_id,
        "application_id": intent.application_id,
        "version": intent.version,
        "artifact_hash": intent.artifact_hash,
        "artifacts": artifacts,
        "target_scope": intent.target_scope,
        "rollback_plan": intent.rollback_plan,
    })
}

/// The digest an approval of `intent` must carry.
pub fn intent_sha256(snapshot: &Snapshot, intent: &DeploymentIntent) -> String {
    sha256_of(&intent_subject(snapshot, intent))
}

/// The digest a scope approval of application `application_id` names for
/// `scope` (list order and duplicates do not matter).
pub fn scope_sha256(application_id: &str, scope: &Scope) -> String {
    let sorted = |values: &[String]| {
        let mut values = values.to_vec();
        values.sort();
        values.dedup();
        values
    };
    sha256_of(&json!({
        "application_id": application_id,
        "acquisition_boundaries": sorted(&scope.acquisition_boundaries),
        "business_units": sorted(&scope.business_units),
        "sites": scope.sites.as_deref().map(sorted),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_has_no_whitespace() {
        let value = json!({"b": [1, {"d": 2, "c": "x"}], "a": null});
        assert_eq!(canonical(&value), r#"{"a":null,"b":[1,{"c":"x","d":2}]}"#);
    }

    #[test]
    fn scope_digest_ignores_order_and_duplicates() {
        let scope = |units: &[&str]| Scope {
            acquisition_boundaries: vec!["acq-001".into()],
            business_units: units.iter().map(|u| (*u).to_owned()).collect(),
            sites: None,
        };
        assert_eq!(
            scope_sha256("app", &scope(&["bu-a", "bu-b"])),
            scope_sha256("app", &scope(&["bu-b", "bu-a", "bu-a"]))
        );
        assert_ne!(
            scope_sha256("app", &scope(&["bu-a"])),
            scope_sha256("app", &scope(&["bu-a", "bu-b"]))
        );
        assert_ne!(
            scope_sha256("app", &scope(&["bu-a"])),
            scope_sha256("other", &scope(&["bu-a"]))
        );
    }
}
