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
/// no whitespace. Written into one buffer (a digest is taken per intent on
/// every judgement); keys and scalars as serde_json writes them.
fn canonical(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

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
                serde_json::to_writer(&mut *out, key.as_str()).expect("a string serialises");
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
        other => serde_json::to_writer(&mut *out, other).expect("a JSON value serialises"),
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

    /// The canonical form as it was first written (one string per value),
    /// which every digest ever recorded was taken over.
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
    fn canonical_json_is_written_as_it_always_was() {
        let values = [
            json!(null),
            json!({"z": 1, "a": [true, false, null, -3, 2.5, 1e300, 0.1]}),
            json!({"quote\"d": "tab\tnew\nline \u{1} é ✓ 😀", "": {"b": {}, "a": []}}),
            json!([{"k": "\\"}, "ü", 18446744073709551615u64, -9223372036854775808i64]),
            json!({"rollback_plan": {"strategy": "x", "validated": true}, "rings": ["r1", "r0"]}),
        ];
        for value in values {
            assert_eq!(canonical(&value), canonical_by_strings(&value), "{value}");
        }
    }

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
