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
    let mut text = Vec::new();
    write_canonical(value, &mut text);
    format!("sha256:{}", hex::encode(Sha256::digest(&text)))
}

/// Canonical JSON: object keys sorted (serde_json's map is ordered),
/// no whitespace.
#[cfg(test)]
fn canonical(value: &Value) -> String {
    let mut text = Vec::new();
    write_canonical(value, &mut text);
    String::from_utf8(text).expect("JSON is UTF-8")
}

/// Appends the canonical JSON of `value` to `out` (one buffer for the
/// whole document: this runs once per intent judged).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.as_str())
                    .expect("writing JSON to memory cannot fail");
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => write_scalar(other, out),
    }
}

/// A scalar as `Display` writes it (serde_json's compact form).
fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value).expect("writing JSON to memory cannot fail");
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

    /// The canonical form as it was first written (a string per node):
    /// the one-buffer writer must give the same bytes, or every digest an
    /// approval carries would change.
    fn canonical_by_strings(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let fields: Vec<String> = keys
                    .into_iter()
                    .map(|key| {
                        format!(
                            "{}:{}",
                            Value::String(key.clone()),
                            canonical_by_strings(&map[key])
                        )
                    })
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(canonical_by_strings).collect();
                format!("[{}]", items.join(","))
            }
            other => other.to_string(),
        }
    }

    #[test]
    fn canonical_json_is_the_same_bytes_as_the_string_form() {
        let value = json!({
            "z\"q\\": ["\u{1}\t\n", "é ✓ \u{10FFFF}", 1.5, -0.0, 1e300, u64::MAX, i64::MIN],
            "a": {"": null, "b": [true, false, {}, []], "A": 0.1},
            "\u{7f}": "</script>",
        });
        assert_eq!(canonical(&value), canonical_by_strings(&value));
        assert_eq!(
            sha256_of(&value),
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(canonical_by_strings(&value).as_bytes()))
            )
        );
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
