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

/// True when the built-in rules can read `input` without an error.
pub(crate) fn conforms(input: &Json) -> bool {
    conforms_object(input).is_some()
}

fn conforms_object(input: &Json) -> Option<()> {
    let input = input.as_object()?;
    time(input.get("now")?)?;

    let intent = object(input.get("intent")?)?;
    for field in ["intent_id", "requested_by", "version"] {
        string(intent.get(field)?)?;
    }
    target_scope(intent.get("target_scope")?)?;
    optional(intent.get("publisher_scope"), scope)?;
    optional(intent.get("rollback_plan"), |plan| {
        string(object(plan)?.get("strategy")?)
    })?;

    let application = object(input.get("application")?)?;
    string(application.get("id")?)?;
    scope(application.get("allowed_scope")?)?;

    optional(input.get("publisher"), principal)?;

    let artifact = object(input.get("artifact")?)?;
    string(artifact.get("id")?)?;
    object(artifact.get("signature")?)?;
    let sbom = object(artifact.get("sbom")?)?;
    every(sbom.get("cves")?, |cve| {
        let cve = object(cve)?;
        for field in ["id", "severity", "component"] {
            string(cve.get(field)?)?;
        }
        optional(cve.get("fixed_in"), string)
    })?;

    let cab = object(object(input.get("config")?)?.get("cab")?)?;
    number(cab.get("risk_threshold")?)?;
    string(cab.get("from_ring")?)?;
    every(cab.get("approvals_by_risk")?, |band| {
        let band = object(band)?;
        number(band.get("above")?)?;
        integer(band.get("approvals")?)
    })?;

    every(input.get("rings")?, |ring| {
        number(object(ring)?.get("index")?)
    })?;
    number(input.get("cab_ring_index")?)?;
    number(object(input.get("risk")?)?.get("risk_score")?)?;

    every(input.get("approvals")?, |entry| {
        let entry = object(entry)?;
        let record = object(entry.get("record")?)?;
        for field in ["approval_id", "decision", "decided_by", "justification"] {
            string(record.get(field)?)?;
        }
        time(record.get("expiry")?)?;
        optional(entry.get("approver"), principal)
    })?;
    every(input.get("exceptions")?, |entry| {
        let entry = object(entry)?;
        let record = object(entry.get("record")?)?;
        for field in ["exception_id", "exception_type", "approved_by"] {
            string(record.get(field)?)?;
        }
        time(record.get("expiry")?)?;
        strings(record.get("cves")?)?;
        optional(entry.get("approver"), principal)
    })?;
    every(input.get("conflicts")?, |conflict| {
        let conflict = object(conflict)?;
        string(conflict.get("intent_id")?)?;
        match conflict.get("rings") {
            None => Some(()),
            Some(rings) => strings(rings),
        }
    })?;
    every(input.get("active_changes")?, |change| {
        let change = object(change)?;
        string(change.get("intent_id")?)?;
        string(change.get("ring")?)
    })?;
    input.get("rolled_back_versions")?.as_array()?;
    optional(input.get("previous_application"), |previous| {
        scope(object(previous)?.get("allowed_scope")?)
    })
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

fn target_scope(value: &Json) -> Option<()> {
    let target = object(value)?;
    string(target.get("acquisition_boundary")?)?;
    string(target.get("business_unit")?)?;
    optional(target.get("sites"), strings)
}

fn principal(value: &Json) -> Option<()> {
    let principal = object(value)?;
    string(principal.get("id")?)?;
    strings(principal.get("roles")?)?;
    scope(principal.get("scope")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Json {
        let scope = json!({"acquisition_boundaries": ["acq-001"], "business_units": ["bu-hr"]});
        json!({
            "now": "2026-11-28T12:00:00Z",
            "intent": {
                "intent_id": "i", "requested_by": "alice", "version": "1.0.0",
                "target_scope": {"acquisition_boundary": "acq-001", "business_unit": "bu-hr"},
            },
            "application": {"id": "app", "allowed_scope": scope},
            "publisher": {"id": "alice", "roles": ["publisher"], "scope": scope},
            "artifact": {"id": "a", "signature": {"signed": true}, "sbom": {"cves": []}},
            "config": {"cab": {"risk_threshold": 50, "from_ring": "r2", "approvals_by_risk": []}},
            "rings": [{"id": "r0", "index": 0}],
            "cab_ring_index": 2,
            "risk": {"risk_score": 10},
            "approvals": [], "exceptions": [], "conflicts": [], "active_changes": [],
            "rolled_back_versions": [],
            "previous_application": null,
        })
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
