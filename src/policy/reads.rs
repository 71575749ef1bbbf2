//! Which top-level fields of the input document tenant rules can read.
//!
//! A guarded worker (`crate::sandbox`) is sent every tenant evaluation's
//! input; most tenant bundles read a few of its fields (the intent, the
//! application, the artifact), while the input carries twenty, some of them
//! large (the risk assessment, the config). [`fields_read`] finds, from the
//! text of the tenant files alone, the top-level fields they can reach, so
//! only those are sent: the tenant rules see the same value for every
//! expression they can write, so their outputs are the same.
//!
//! The scan is deliberately blunt and errs on the side of "everything":
//!
//! - Every occurrence of the word `input` (not part of a longer identifier),
//!   in code, strings and comments alike, must be followed directly by `.`
//!   and an identifier — `input.intent`, `import input.intent as i` — which
//!   names a field read. Anything else (`input[x]`, `input` alone, `with
//!   input as`, `walk(input)`, `import input`, `input .x`) means any field
//!   may be read: the answer is `None`.
//! - Rules of other bundles could read other fields on the tenant's behalf
//!   (a tenant rule may call the built-in helpers, which read `input.rings`,
//!   `input.now`, ...), and they are reached only through `data`: every
//!   occurrence of the word `data` must be `data.ringmaster.tenant` followed
//!   by something other than an identifier character (the tenant packages,
//!   all of them scanned here); anything else gives `None`.
//!
//! Treating a word in a comment or a string as a reference only ever adds a
//! field or gives `None`; it never hides a real reference, which is why the
//! scan does not try to tell code from text.

use std::collections::BTreeSet;

/// The top-level input fields the tenant files `(path, source)` can read,
/// or `None` when they may read any (see the module documentation).
pub(crate) fn fields_read(files: &[(String, String)]) -> Option<BTreeSet<String>> {
    let mut fields = BTreeSet::new();
    for (_, source) in files {
        scan(source.as_bytes(), &mut fields)?;
    }
    Some(fields)
}

fn is_identifier(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Adds the fields `source` reads to `fields`; `None` when it may read any.
fn scan(source: &[u8], fields: &mut BTreeSet<String>) -> Option<()> {
    let mut index = 0;
    while index < source.len() {
        if !is_identifier(source[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < source.len() && is_identifier(source[index]) {
            index += 1;
        }
        let rest = &source[index..];
        match &source[start..index] {
            b"input" => {
                let field = rest.strip_prefix(b".")?;
                let length = field
                    .iter()
                    .position(|byte| !is_identifier(*byte))
                    .unwrap_or(field.len());
                // An identifier does not start with a digit.
                if length == 0 || field[0].is_ascii_digit() {
                    return None;
                }
                fields.insert(String::from_utf8_lossy(&field[..length]).into_owned());
            }
            b"data" => {
                let after = rest.strip_prefix(b".ringmaster.tenant")?;
                if after.first().is_some_and(|byte| is_identifier(*byte)) {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(source: &str) -> Option<Vec<String>> {
        fields_read(&[("policies/t.rego".to_string(), source.to_string())])
            .map(|fields| fields.into_iter().collect())
    }

    #[test]
    fn field_references_are_collected() {
        let source = "package ringmaster.tenant.x\n\nimport rego.v1\nimport input.risk as r\n\n# reads input.rings too\ndeny contains msg if {\n\tinput.intent.target_scope.x == \"input.application\"\n\tnot data.ringmaster.tenant.y.ok\n\tmy_input.z\n\tmsg := sprintf(\"%v\", [input.artifact_1[0]])\n}\n";
        assert_eq!(
            read(source),
            Some(vec![
                "application".into(),
                "artifact_1".into(),
                "intent".into(),
                "rings".into(),
                "risk".into(),
            ])
        );
        assert_eq!(read("package ringmaster.tenant.x\n"), Some(vec![]));
    }

    #[test]
    fn anything_else_reads_every_field() {
        for source in [
            "x := input",
            "x := input[\"intent\"]",
            "x := input .intent",
            "x := input\n.intent",
            "x := count(input)",
            "x := walk(input)",
            "import input",
            "import input as i",
            "y := f with input as {}",
            "x := input.",
            "x := input.1",
            "x := input.[\"a\"]",
            "x := data.ringmaster.builtin.target",
            "import data.ringmaster.builtin",
            "x := data.ringmaster.tenantx.y",
            "x := data.ringmaster[\"builtin\"]",
            "x := data",
            "# the input document\nx := 1",
            "x := \"data\"",
            "x := input.a\ny := input",
        ] {
            assert_eq!(read(source), None, "{source}");
        }
    }

    #[test]
    fn tenant_rules_reaching_the_built_in_rules_are_not_evaluated_alone() {
        use crate::policy::PolicyEngine;
        let files = [(
            "policies/t.rego".to_string(),
            "package ringmaster.tenant.t\n\nimport rego.v1\n\ndeny contains {\"rule\": \"t\", \"message\": data.ringmaster.builtin.target_text} if true\n".to_string(),
        )];
        let engine = PolicyEngine::in_process(&files, &mut |_| {}).expect("compiles");
        assert!(engine.tenant_rules_alone(&files).is_none());
        assert!(
            PolicyEngine::in_process(&[], &mut |_| {})
                .expect("compiles")
                .tenant_rules_alone(&[])
                .is_none()
        );
    }

    #[test]
    fn one_file_reading_anything_makes_the_bundle_read_anything() {
        let files = [
            ("a.rego".to_string(), "x := input.intent".to_string()),
            ("b.rego".to_string(), "x := input".to_string()),
        ];
        assert_eq!(fields_read(&files), None);
    }

    /// Tenant outputs on the fields the bundle reads, by the whole bundle
    /// and by the tenant rules alone, are the outputs on the whole input, for real inputs (the sample repository's, with approvals,
    /// exceptions, CVEs; synthetic ones) and bundles that read through
    /// aliases, other tenant packages, iteration and `with`.
    #[test]
    fn tenant_outputs_on_the_fields_read_are_the_outputs_on_the_whole_input() {
        use crate::evaluation::{NoRuntime, policy_input};
        use crate::model::{self, Entry};
        use crate::policy::PolicyEngine;
        use crate::policy::isolation::Request;
        use serde_json::Value as Json;
        use std::time::Duration;

        let sample_tenant = crate::sample::SAMPLE_REPO
            .iter()
            .find(|(path, _)| path.starts_with("policies/"))
            .map(|(path, bytes)| {
                (
                    (*path).to_string(),
                    String::from_utf8_lossy(bytes).into_owned(),
                )
            })
            .expect("the sample has a tenant policy");
        let other = |text: &str| ("policies/other.rego".to_string(), text.to_string());
        let bundles: Vec<Vec<(String, String)>> = vec![
            vec![sample_tenant.clone()],
            vec![
                sample_tenant,
                other(
                    "package ringmaster.tenant.other\n\nimport rego.v1\nimport input.risk as risk\n\n\
                     high if risk.risk_score > 10\n\n\
                     deny contains {\"rule\": \"other.risk\", \"message\": sprintf(\"%v %v\", [risk.risk_score, count(input.approvals)])} if high\n\n\
                     notes contains {\"rule\": \"other.note\", \"message\": m} if {\n\
                     \tsome entry in input.approvals\n\tm := sprintf(\"%v by %v\", [entry.record.approval_id, entry.approver.id])\n}\n\n\
                     require_approval contains {\"rule\": \"other.sites\", \"message\": concat(\",\", [s | some s in input.intent.target_scope.rings])} if {\n\
                     \tdata.ringmaster.tenant.contoso.deny\n\tnot high with input.risk as {\"risk_score\": 0}\n}\n",
                ),
            ],
        ];
        let now = "2026-11-28T12:00:00Z".parse().expect("time");
        let mut inputs: Vec<Json> = Vec::new();
        for files in [
            crate::sample::SAMPLE_REPO
                .iter()
                .map(|(path, bytes)| Entry::file(*path, *bytes))
                .collect::<Vec<_>>(),
            crate::synthetic::files(60)
                .into_iter()
                .map(|(path, text)| Entry::file(path, text))
                .collect(),
        ] {
            let (snapshot, _) = model::load(&files);
            inputs.extend(
                snapshot
                    .intents
                    .values()
                    .filter_map(|intent| policy_input(&snapshot, intent, None, now, &NoRuntime)),
            );
        }
        // Variants that make the tenant rules fire: a privileged application
        // with an artifact from a repackager, not verified, on another plane.
        let variants: Vec<Json> = inputs
            .iter()
            .map(|input| {
                let mut input = input.clone();
                input["application"]["privileged"] = Json::Bool(true);
                input["artifact"]["provenance"]["source"] = Json::from("repackaged");
                input["artifact"]["signature"]["verified"] = Json::Bool(false);
                input["artifact"]["plane"] = Json::from("jamf");
                input
            })
            .collect();
        inputs.extend(variants);
        assert!(inputs.len() > 120);
        for files in bundles {
            let reads = fields_read(&files).expect("the bundle reads named fields");
            assert!(reads.contains("intent") && !reads.contains("config"));
            let engine = PolicyEngine::in_process(&files, &mut |_| {}).expect("compiles");
            // What a worker evaluates batches with: the tenant rules alone.
            let alone = engine
                .tenant_rules_alone(&files)
                .expect("the tenant rules prepare alone");
            let mut fired = 0;
            for input in &inputs {
                let narrowed = Json::Object(
                    input
                        .as_object()
                        .expect("an object")
                        .iter()
                        .filter(|(name, _)| reads.contains(name.as_str()))
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect(),
                );
                let ask = |engine: &PolicyEngine, input: &Json| {
                    engine.answer(&Request::TenantOutputs {
                        input: input.clone(),
                        time_limit: Duration::from_secs(5),
                    })
                };
                let whole = ask(&engine, input);
                assert_eq!(ask(&engine, &narrowed), whole, "{input:#}");
                assert_eq!(ask(&alone, &narrowed), whole, "{input:#}");
                assert_eq!(
                    alone.answer_tenant_value(
                        PolicyEngine::input_value(&narrowed),
                        Duration::from_secs(5)
                    ),
                    whole,
                    "{input:#}"
                );
                let outputs = whole.expect("evaluates").expect("answers");
                fired += usize::from(
                    outputs
                        .iter()
                        .flatten()
                        .any(|set| set != &Json::Array(vec![])),
                );
            }
            assert!(fired > 0, "some tenant rule fires");
        }
    }
}
