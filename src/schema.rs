//! The JSON Schemas of the governed kinds, embedded and compiled once.
//!
//! The files in `schemas/` are the published contract (editors validate
//! against them through `# yaml-language-server: $schema=...`); the binary
//! embeds the same bytes, so what an editor says and what `validate` says
//! never differ. Remote `$ref` resolution is compiled out of `jsonschema`.

use serde_json::Value;
use std::sync::OnceLock;

/// A governed kind and its schema, in the order `schema export` writes them.
pub struct KindSchema {
    pub kind: &'static str,
    pub file_name: &'static str,
    pub source: &'static str,
}

pub const KIND_SCHEMAS: &[KindSchema] = &[
    KindSchema {
        kind: "Config",
        file_name: "config.schema.json",
        source: include_str!("../schemas/config.schema.json"),
    },
    KindSchema {
        kind: "Principal",
        file_name: "principal.schema.json",
        source: include_str!("../schemas/principal.schema.json"),
    },
    KindSchema {
        kind: "Application",
        file_name: "application.schema.json",
        source: include_str!("../schemas/application.schema.json"),
    },
    KindSchema {
        kind: "ApplicationVersion",
        file_name: "application-version.schema.json",
        source: include_str!("../schemas/application-version.schema.json"),
    },
    KindSchema {
        kind: "EntitlementRule",
        file_name: "entitlement-rule.schema.json",
        source: include_str!("../schemas/entitlement-rule.schema.json"),
    },
    KindSchema {
        kind: "DeploymentIntent",
        file_name: "deployment-intent.schema.json",
        source: include_str!("../schemas/deployment-intent.schema.json"),
    },
    KindSchema {
        kind: "ApprovalRecord",
        file_name: "approval-record.schema.json",
        source: include_str!("../schemas/approval-record.schema.json"),
    },
    KindSchema {
        kind: "Exception",
        file_name: "exception.schema.json",
        source: include_str!("../schemas/exception.schema.json"),
    },
];

/// One schema violation: where (JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

struct Compiled {
    kind: &'static str,
    validator: jsonschema::Validator,
}

fn compiled() -> &'static [Compiled] {
    static COMPILED: OnceLock<Vec<Compiled>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        KIND_SCHEMAS
            .iter()
            .map(|entry| {
                let schema: Value = serde_json::from_str(entry.source)
                    .unwrap_or_else(|e| panic!("embedded {} is not JSON: {e}", entry.file_name));
                let validator = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| {
                        panic!("embedded {} does not compile: {e}", entry.file_name)
                    });
                Compiled {
                    kind: entry.kind,
                    validator,
                }
            })
            .collect()
    })
}

/// Whether ringmaster knows this `kind`.
pub fn is_known_kind(kind: &str) -> bool {
    KIND_SCHEMAS.iter().any(|entry| entry.kind == kind)
}

/// Validates one document of `kind`; returns every violation, shallowest first.
///
/// # Panics
/// Never for a kind listed in [`KIND_SCHEMAS`]; an unknown kind is a caller bug.
pub fn validate(kind: &str, document: &Value) -> Vec<Violation> {
    let compiled = compiled()
        .iter()
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("no schema for kind {kind}"));
    // Most documents are valid: the boolean check is much cheaper than
    // collecting errors, and gives the same (empty) answer.
    if compiled.validator.is_valid(document) {
        return Vec::new();
    }
    let mut violations: Vec<Violation> = compiled
        .validator
        .iter_errors(document)
        .map(|error| Violation {
            pointer: error.instance_path().as_str().to_owned(),
            message: error.to_string(),
        })
        .collect();
    violations.sort_by(|a, b| {
        let depth = |v: &Violation| v.pointer.matches('/').count();
        (depth(a), &a.pointer, &a.message).cmp(&(depth(b), &b.pointer, &b.message))
    });
    violations.dedup();
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_compiles() {
        assert_eq!(compiled().len(), KIND_SCHEMAS.len());
    }
}
