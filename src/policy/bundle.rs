//! The built-in Rego bundle, embedded in the binary, and the rule that keeps
//! tenant policies in their own packages.

/// Package of the built-in rules.
pub const BUILTIN_PACKAGE: &str = "ringmaster.builtin";

/// Package under which every tenant rule must live.
pub const TENANT_PACKAGE: &str = "ringmaster.tenant";

/// The built-in policy files as `(path, source)`, in load order. The paths are
/// the files' paths in the ringmaster source tree and appear in error messages
/// and evidence packs.
pub const BUILTIN_POLICIES: &[(&str, &str)] = &[
    (
        "policies/common.rego",
        include_str!("../../policies/common.rego"),
    ),
    (
        "policies/scope.rego",
        include_str!("../../policies/scope.rego"),
    ),
    (
        "policies/scope_change.rego",
        include_str!("../../policies/scope_change.rego"),
    ),
    ("policies/cab.rego", include_str!("../../policies/cab.rego")),
    (
        "policies/exceptions.rego",
        include_str!("../../policies/exceptions.rego"),
    ),
    (
        "policies/concurrency.rego",
        include_str!("../../policies/concurrency.rego"),
    ),
    (
        "policies/rollback.rego",
        include_str!("../../policies/rollback.rego"),
    ),
];

/// A tenant package is `ringmaster.tenant` or any package below it, named by
/// plain identifiers (so its rules can be addressed as `data.ringmaster.tenant.x.deny`).
pub(crate) fn is_tenant_package(components: &[String]) -> bool {
    components.len() >= 2
        && components[0] == "ringmaster"
        && components[1] == "tenant"
        && components.iter().all(|component| is_identifier(component))
}

/// A Rego identifier: a letter or `_`, then letters, digits or `_`.
fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
}

/// 1-based line of the `package` statement: the first line that, once
/// indentation is removed, starts with the `package` keyword. Comments and
/// blank lines may precede it; nothing else can in valid Rego.
pub(crate) fn package_statement_line(source: &str) -> usize {
    source
        .lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix("package")
                .is_some_and(|rest| rest.starts_with(char::is_whitespace))
        })
        .map_or(1, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_string).collect()
    }

    #[test]
    fn tenant_package_rule() {
        assert!(is_tenant_package(&components("ringmaster.tenant")));
        assert!(is_tenant_package(&components("ringmaster.tenant.finance")));
        assert!(!is_tenant_package(&components("ringmaster.builtin")));
        assert!(!is_tenant_package(&components("ringmaster.tenantx")));
        assert!(!is_tenant_package(&components("ringmaster")));
        assert!(!is_tenant_package(&components("tenant.ringmaster")));
        let quoted = vec![
            "ringmaster".to_string(),
            "tenant".to_string(),
            "a.b".to_string(),
        ];
        assert!(!is_tenant_package(&quoted));
    }

    #[test]
    fn package_line_skips_comments_and_blank_lines() {
        let source = "# header\n\n  # more\npackage ringmaster.tenant\n";
        assert_eq!(package_statement_line(source), 4);
        assert_eq!(package_statement_line("packages := 1\npackage x"), 2);
    }

    #[test]
    fn every_builtin_file_is_in_the_builtin_package() {
        for (path, source) in BUILTIN_POLICIES {
            let line = package_statement_line(source);
            let statement = source.lines().nth(line - 1).unwrap_or_default();
            assert_eq!(
                statement.trim(),
                format!("package {BUILTIN_PACKAGE}"),
                "{path}"
            );
        }
    }
}
