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
                write_string(key, out);
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
    match value {
        Value::String(text) => write_string(text, out),
        other => {
            serde_json::to_writer(&mut *out, other).expect("writing JSON to memory cannot fail");
        }
    }
}

/// A string as serde_json writes it: quoted, and only `"`, `\` and the
/// control characters below U+0020 escaped. Strings without any of those
/// (nearly all: ids, versions, digests) are copied as they are; the others
/// go through serde_json itself.
fn write_string(text: &str, out: &mut Vec<u8>) {
    if text
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        serde_json::to_writer(&mut *out, text).expect("writing JSON to memory cannot fail");
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
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

/// The digest an approval of `intent` must carry: [`sha256_of`] the
/// [`intent_subject`], written straight into the canonical form (the same
/// bytes) instead of building the subject first, since every judged intent
/// needs it.
pub fn intent_sha256(snapshot: &Snapshot, intent: &DeploymentIntent) -> String {
    let mut out = Vec::with_capacity(512);
    // The subject's keys, in their sorted order.
    out.extend_from_slice(b"{\"application_id\":");
    write_string(&intent.application_id, &mut out);
    out.extend_from_slice(b",\"artifact_hash\":");
    write_string(&intent.artifact_hash, &mut out);
    out.extend_from_slice(b",\"artifacts\":[");
    if let Some(version) = snapshot
        .versions
        .get(&(intent.application_id.clone(), intent.version.clone()))
    {
        let mut artifacts: Vec<&super::Artifact> = version.artifacts.iter().collect();
        artifacts.sort_by(|a, b| a.id.cmp(&b.id));
        for (index, artifact) in artifacts.into_iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"file\":");
            write_string(&artifact.file, &mut out);
            out.extend_from_slice(b",\"id\":");
            write_string(&artifact.id, &mut out);
            out.extend_from_slice(b",\"plane\":");
            write_canonical(&json!(artifact.plane), &mut out);
            out.extend_from_slice(b",\"sha256\":");
            write_string(&artifact.sha256, &mut out);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"],\"intent_id\":");
    write_string(&intent.intent_id, &mut out);
    out.extend_from_slice(b",\"rollback_plan\":");
    write_canonical(&json!(intent.rollback_plan), &mut out);
    out.extend_from_slice(b",\"target_scope\":");
    write_canonical(&json!(intent.target_scope), &mut out);
    out.extend_from_slice(b",\"version\":");
    write_string(&intent.version, &mut out);
    out.push(b'}');
    format!("sha256:{}", hex::encode(Sha256::digest(&out)))
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
            "plain-key_1.0": ["sha256:0a", "with space", "\u{1f}", "\"", "\\", "/", "\u{2028}"],
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

    /// `intent_sha256` writes the canonical form itself: it must be the
    /// digest of the subject, for every intent of the sample and synthetic
    /// repositories and for odd ones (no such version, no rollback plan,
    /// characters JSON escapes, artifacts out of id order).
    #[test]
    fn intent_digest_is_the_digest_of_the_subject() {
        let mut files = crate::synthetic::files(40);
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-repo");
        let mut stack = vec![sample.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("sample-repo is readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|ext| ext == "yaml") {
                    let relative = path.strip_prefix(&sample).expect("inside");
                    files.push((
                        format!("sample/{}", relative.display()),
                        std::fs::read_to_string(&path).expect("UTF-8"),
                    ));
                }
            }
        }
        let mut checked = 0;
        for prefix in ["", "sample/"] {
            let entries: Vec<crate::model::Entry> = files
                .iter()
                .filter_map(|(path, text)| {
                    let inside = path.strip_prefix(prefix)?;
                    (prefix == "sample/" || !path.starts_with("sample/"))
                        .then(|| crate::model::Entry::file(inside, text.as_bytes().to_vec()))
                })
                .collect();
            let (mut snapshot, _) = crate::model::load(&entries);
            assert!(!snapshot.intents.is_empty());
            let intents: Vec<DeploymentIntent> = snapshot
                .intents
                .values()
                .map(|intent| intent.value.clone())
                .collect();
            for mut intent in intents {
                assert_eq!(
                    intent_sha256(&snapshot, &intent),
                    sha256_of(&intent_subject(&snapshot, &intent))
                );
                checked += 1;
                intent.intent_id.push_str("\"\\\u{1}é\u{7f}");
                intent.rollback_plan = None;
                intent.target_scope.business_unit.push('\n');
                assert_eq!(
                    intent_sha256(&snapshot, &intent),
                    sha256_of(&intent_subject(&snapshot, &intent))
                );
                intent.version.push_str("-missing");
                assert_eq!(
                    intent_sha256(&snapshot, &intent),
                    sha256_of(&intent_subject(&snapshot, &intent))
                );
            }
            // Artifacts out of id order, one with a quote in its file name.
            let versions: Vec<_> = snapshot.versions.keys().cloned().collect();
            for key in versions {
                if let Some(version) = snapshot.versions.get_mut(&key) {
                    version.value.artifacts.reverse();
                    if let Some(first) = version.value.artifacts.first_mut() {
                        first.file.push('"');
                    }
                }
            }
            for intent in snapshot.intents.values() {
                assert_eq!(
                    intent_sha256(&snapshot, intent),
                    sha256_of(&intent_subject(&snapshot, intent))
                );
            }
        }
        assert!(checked > 40, "{checked}");
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
