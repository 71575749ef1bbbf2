//! Does an input have the documented shape, as far as the built-in rules read it?
//!
//! The built-in rules run on the RVM only for inputs that pass [`conforms`].
//! On such inputs no built-in expression can raise an error (every parsed
//! time parses, every `concat` gets strings, every `%d` an integer, every
//! iteration a collection, every comparison two numbers), and there the RVM
//! and the interpreter agree. On other inputs the interpreter raises errors
//! where the RVM would silently skip a rule body (see `super::compiled`), so
//! they go to the interpreter, whose answer is the reference.
//!
//! Architecture invariant: every input field a built-in rule reads is checked
//! here with the type the rule needs. A new field read in `policies/*.rego`
//! needs a line here.

use chrono::DateTime;
use serde_json::{Map, Value as Json};

type Object = Map<String, Json>;

/// Top-level fields every conforming input has; `publisher` and
/// `previous_application` may be absent (or null).
pub(crate) const REQUIRED_FIELDS: [&str; 13] = [
    "now",
    "intent",
    "application",
    "artifact",
    "config",
    "rings",
    "cab_ring_index",
    "risk",
    "approvals",
    "exceptions",
    "conflicts",
    "active_changes",
    "rolled_back_versions",
];

/// True when the built-in rules can read `input` without an error.
pub(crate) fn conforms(input: &Json) -> bool {
    input.as_object().is_some_and(|fields| {
        has_required_fields(fields)
            && fields
                .iter()
                .all(|(name, value)| field_conforms(name, value))
    })
}

/// True when every field in [`REQUIRED_FIELDS`] is there.
pub(crate) fn has_required_fields(fields: &Object) -> bool {
    REQUIRED_FIELDS
        .iter()
        .all(|name| fields.contains_key(*name))
}

/// True when the top-level field `name` has the shape the built-in rules
/// need; fields the built-in rules do not read always conform. Each field is
/// checked on its own, so a result can be cached with the field's value.
pub(crate) fn field_conforms(name: &str, value: &Json) -> bool {
    let checked = match name {
        "now" => time(value),
        "intent" => intent(value),
        "application" => application(value),
        "publisher" => optional(Some(value), principal),
        "artifact" => artifact(value),
        "config" => config(value),
        "rings" => every(value, |ring| number(object(ring)?.get("index")?)),
        "cab_ring_index" => number(value),
        "risk" => object(value)
            .and_then(|risk| risk.get("risk_score"))
            .and_then(number),
        "approvals" => every(value, approval),
        "exceptions" => every(value, exception),
        "conflicts" => every(value, conflict),
        "active_changes" => every(value, |change| {
            let change = object(change)?;
            string(change.get("intent_id")?)?;
            string(change.get("ring")?)
        }),
        "rolled_back_versions" => value.as_array().map(|_| ()),
        "intent_sha256" => string(value),
        "scope_approvals" => every(value, scope_approval),
        "application_scope_sha256" => string(value),
        "previous_application" => optional(Some(value), |previous| {
            scope(object(previous)?.get("allowed_scope")?)
        }),
        _ => Some(()),
    };
    checked.is_some()
}

fn intent(value: &Json) -> Option<()> {
    let intent = object(value)?;
    for field in ["intent_id", "requested_by", "version"] {
        string(intent.get(field)?)?;
    }
    target_scope(intent.get("target_scope")?)?;
    optional(intent.get("publisher_scope"), scope)?;
    optional(intent.get("rollback_plan"), |plan| {
        string(object(plan)?.get("strategy")?)
    })
}

fn application(value: &Json) -> Option<()> {
    let application = object(value)?;
    string(application.get("id")?)?;
    scope(application.get("allowed_scope")?)
}

fn artifact(value: &Json) -> Option<()> {
    let artifact = object(value)?;
    string(artifact.get("id")?)?;
    string(artifact.get("sha256")?)?;
    object(artifact.get("signature")?)?;
    let sbom = object(artifact.get("sbom")?)?;
    every(sbom.get("cves")?, |cve| {
        let cve = object(cve)?;
        for field in ["id", "severity", "component"] {
            string(cve.get(field)?)?;
        }
        optional(cve.get("fixed_in"), string)
    })
}

fn config(value: &Json) -> Option<()> {
    let cab = object(object(value)?.get("cab")?)?;
    number(cab.get("risk_threshold")?)?;
    string(cab.get("from_ring")?)?;
    every(cab.get("approvals_by_risk")?, |band| {
        let band = object(band)?;
        number(band.get("above")?)?;
        integer(band.get("approvals")?)
    })
}

fn approval(entry: &Json) -> Option<()> {
    let entry = object(entry)?;
    let record = object(entry.get("record")?)?;
    for field in ["approval_id", "decision", "decided_by", "justification"] {
        string(record.get(field)?)?;
    }
    time(record.get("expiry")?)?;
    optional(record.get("intent_sha256"), string)?;
    optional(entry.get("approver"), principal)
}

/// An approval of an application scope change: an approval whose
/// `application_scope` names the application and the digest.
fn scope_approval(entry: &Json) -> Option<()> {
    approval(entry)?;
    let scope = object(object(object(entry)?.get("record")?)?.get("application_scope")?)?;
    string(scope.get("application_id")?)?;
    string(scope.get("scope_sha256")?)
}

fn exception(entry: &Json) -> Option<()> {
    let entry = object(entry)?;
    let record = object(entry.get("record")?)?;
    for field in ["exception_id", "exception_type", "approved_by"] {
        string(record.get(field)?)?;
    }
    time(record.get("expiry")?)?;
    strings(record.get("cves")?)?;
    optional(record.get("artifact_sha256"), string)?;
    optional(entry.get("approver"), principal)
}

fn conflict(value: &Json) -> Option<()> {
    let conflict = object(value)?;
    string(conflict.get("intent_id")?)?;
    match conflict.get("rings") {
        None => Some(()),
        Some(rings) => strings(rings),
    }
}

fn object(value: &Json) -> Option<&Object> {
    value.as_object()
}

fn string(value: &Json) -> Option<()> {
    value.is_string().then_some(())
}

fn number(value: &Json) -> Option<()> {
    value.is_number().then_some(())
}

fn integer(value: &Json) -> Option<()> {
    (value.is_u64() || value.is_i64()).then_some(())
}

fn strings(value: &Json) -> Option<()> {
    every(value, string)
}

/// An RFC 3339 time that `time.parse_rfc3339_ns` turns into nanoseconds
/// (regorus parses with the same chrono function).
fn time(value: &Json) -> Option<()> {
    let parsed = DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
    parsed.timestamp_nanos_opt().map(|_| ())
}

/// Absent or null, or else of the shape `check` wants.
fn optional(value: Option<&Json>, check: impl Fn(&Json) -> Option<()>) -> Option<()> {
    match value {
        None | Some(Json::Null) => Some(()),
        Some(value) => check(value),
    }
}

/// An array whose every element is of the shape `check` wants.
fn every(value: &Json, check: impl Fn(&Json) -> Option<()>) -> Option<()> {
    value.as_array()?.iter().try_for_each(check)
}

fn scope(value: &Json) -> Option<()> {
    let scope = object(value)?;
    strings(scope.get("acquisition_boundaries")?)?;
    strings(scope.get("business_units")?)?;
    optional(scope.get("sites"), strings)
}

/// A target's `sites` may be absent but not null: the site rules of
/// `policies/scope.rego` iterate them whenever the scope limits sites, and
/// iterating null is an error.
fn target_scope(value: &Json) -> Option<()> {
    let target = object(value)?;
    string(target.get("acquisition_boundary")?)?;
    string(target.get("business_unit")?)?;
    target.get("sites").map_or(Some(()), strings)
}

fn principal(value: &Json) -> Option<()> {
    let principal = object(value)?;
    string(principal.get("id")?)?;
    strings(principal.get("roles")?)?;
    scope(principal.get("scope")?)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal input of the documented shape (other policy tests start
    /// from it too).
    pub(crate) fn minimal() -> Json {
        let scope = json!({"acquisition_boundaries": ["acq-001"], "business_units": ["bu-hr"]});
        json!({
            "now": "2026-11-28T12:00:00Z",
            "intent": {
                "intent_id": "i", "requested_by": "alice", "version": "1.0.0",
                "target_scope": {"acquisition_boundary": "acq-001", "business_unit": "bu-hr"},
            },
            "application": {"id": "app", "allowed_scope": scope},
            "publisher": {"id": "alice", "roles": ["publisher"], "scope": scope},
            "artifact": {"id": "a", "sha256": "sha256:00", "signature": {"signed": true}, "sbom": {"cves": []}},
            "config": {"cab": {"risk_threshold": 50, "from_ring": "r2", "approvals_by_risk": []}},
            "rings": [{"id": "r0", "index": 0}],
            "cab_ring_index": 2,
            "risk": {"risk_score": 10},
            "approvals": [], "exceptions": [], "conflicts": [], "active_changes": [],
            "rolled_back_versions": [],
            "previous_application": null,
        })
    }

    #[test]
    fn a_missing_required_field_does_not_conform() {
        for name in REQUIRED_FIELDS {
            let mut input = minimal();
            input.as_object_mut().expect("object").remove(name);
            assert!(!conforms(&input), "{name}");
        }
        let mut input = minimal();
        input.as_object_mut().expect("object").remove("publisher");
        assert!(conforms(&input));
    }

    fn check(pointer: &str, value: Json, expected: bool) {
        let mut input = minimal();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        input
            .pointer_mut(parent)
            .and_then(Json::as_object_mut)
            .expect("parent is an object")
            .insert(key.to_string(), value.clone());
        assert_eq!(conforms(&input), expected, "{pointer} = {value}");
    }

    #[test]
    fn documented_shape_conforms() {
        assert!(conforms(&minimal()));
        check("/publisher", json!(null), true);
        check(
            "/intent/target_scope/acquisition_boundary",
            json!("acq-002"),
            true,
        );
        check(
            "/config/cab/approvals_by_risk",
            json!([{"above": 50, "approvals": 1}]),
            true,
        );
    }

    #[test]
    fn anything_a_builtin_rule_could_fail_on_does_not_conform() {
        check("/now", json!("yesterday"), false);
        check("/now", json!("9999-12-31T00:00:00Z"), false);
        check("/rings", json!(null), false);
        check("/intent/target_scope/sites", json!(null), false);
        check("/rings", json!([{"index": "2"}]), false);
        check("/cab_ring_index", json!("2"), false);
        check(
            "/publisher",
            json!({"id": "alice", "roles": "publisher"}),
            false,
        );
        check("/application/allowed_scope/sites", json!([1]), false);
        check(
            "/config/cab/approvals_by_risk",
            json!([{"above": 50, "approvals": 1.5}]),
            false,
        );
        check(
            "/conflicts",
            json!([{"intent_id": "x", "rings": null}]),
            false,
        );
        check(
            "/approvals",
            json!([{"record": {"approval_id": "a", "decision": "approved", "decided_by": "carol",
                               "justification": "j", "expiry": "soon"}, "approver": null}]),
            false,
        );
        check(
            "/artifact/sbom/cves",
            json!([{"id": "CVE-1", "severity": "high"}]),
            false,
        );
    }
}
