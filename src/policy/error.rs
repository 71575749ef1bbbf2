//! What can go wrong when building or running the policy engine.
//!
//! Errors about a policy file name the file and line, so they can be reported
//! like any other diagnostic of the governed repository. Any error from
//! [`crate::policy::PolicyEngine::evaluate`] means "no decision": callers must
//! treat it as not allowed (fail closed).

use crate::diagnostic::{Diagnostic, Position};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An error of the policy module. It serializes because the guarded worker
/// process that evaluates tenant rules (`crate::sandbox`) sends it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PolicyError {
    /// A tenant file is over one of the limits checked before parsing
    /// (`super::limits`): size, nesting, parse work, rules, numbers, or a
    /// call to a builtin tenants may not use.
    #[error("{file}:{}:{}: policy limit: {message}", .position.line, .position.column)]
    LimitExceeded {
        file: String,
        position: Position,
        message: String,
    },

    /// Parsing the tenant files did not finish within the parse time limit;
    /// `file` is the one being parsed when it ran out.
    #[error(
        "{file}: parsing tenant policy took longer than {} ms; simplify the file (flatter literals, fewer rules)",
        .limit.as_millis()
    )]
    ParseTimeLimitExceeded { file: String, limit: Duration },

    /// One evaluation needed more memory than the guarded worker may use.
    #[error(
        "policy evaluation exceeded its memory limit of {} MiB; a tenant policy builds values too large to judge",
        .limit_bytes / (1024 * 1024)
    )]
    MemoryLimitExceeded { limit_bytes: u64 },

    /// The guarded worker that evaluates tenant rules failed otherwise: it
    /// could not start, crashed, or answered something unreadable.
    #[error("the policy worker failed: {message}")]
    WorkerFailed { message: String },

    /// A tenant file declares a package outside `ringmaster.tenant`: tenants
    /// may add restrictions, never define or override built-in rules.
    #[error(
        "{file}:{line}: package {package} is not allowed in a tenant policy; use package ringmaster.tenant or ringmaster.tenant.<name>"
    )]
    TenantPackageRefused {
        file: String,
        /// Line of the `package` statement.
        line: usize,
        package: String,
    },

    /// A policy file does not parse.
    #[error("{file}:{}:{}: Rego syntax error: {message}", .position.line, .position.column)]
    Syntax {
        file: String,
        /// Where the parser stopped; 0:0 when regorus gave no position.
        position: Position,
        message: String,
    },

    /// The bundle parses but regorus refuses to prepare it (statement
    /// scheduling, imports). Unknown functions and recursion are found lazily
    /// and reported as [`PolicyError::Evaluation`].
    #[error("{file}:{}:{}: Rego compile error: {message}", .position.line, .position.column)]
    Compile {
        /// The file regorus named, or `<bundle>` when it named none.
        file: String,
        position: Position,
        message: String,
    },

    /// One evaluation ran longer than the engine's time limit.
    #[error(
        "policy evaluation exceeded its time limit of {} ms; a policy (most likely a tenant one) loops over too much data",
        .limit.as_millis()
    )]
    TimeLimitExceeded { limit: Duration },

    /// Evaluation failed for another reason: a conflict between rule values,
    /// a strict builtin error, an unknown function, recursion. The message
    /// starts with `file:line:column:` when regorus named a place.
    #[error("policy evaluation failed: {message}")]
    Evaluation { message: String },

    /// A package's output set holds something other than `{"rule", "message"}` objects.
    #[error(
        "{package}.{set} must be a set of {{\"rule\": string, \"message\": string}} objects but contains {element}; fix the rule that produces it"
    )]
    MalformedOutput {
        /// Dotted package name, e.g. `ringmaster.tenant.finance`.
        package: String,
        set: String,
        /// The offending value as JSON.
        element: String,
    },
}

impl PolicyError {
    /// The error as a repository diagnostic, when it is about one policy file.
    pub fn to_diagnostic(&self) -> Option<Diagnostic> {
        match self {
            PolicyError::LimitExceeded {
                file,
                position,
                message,
            } => Some(
                Diagnostic::error(file.clone(), format!("policy limit: {message}")).at(*position),
            ),
            PolicyError::ParseTimeLimitExceeded { file, limit } => Some(
                Diagnostic::error(
                    file.clone(),
                    format!(
                        "parsing tenant policy took longer than {} ms; simplify the file (flatter literals, fewer rules)",
                        limit.as_millis()
                    ),
                )
                .at(Position { line: 1, column: 1 }),
            ),
            PolicyError::TenantPackageRefused { file, line, .. } => Some(
                Diagnostic::error(file.clone(), self.message_without_location()).at(Position {
                    line: *line,
                    column: 1,
                }),
            ),
            PolicyError::Syntax {
                file,
                position,
                message,
            }
            | PolicyError::Compile {
                file,
                position,
                message,
            } => Some(Diagnostic::error(file.clone(), message.clone()).at(*position)),
            PolicyError::TimeLimitExceeded { .. }
            | PolicyError::MemoryLimitExceeded { .. }
            | PolicyError::WorkerFailed { .. }
            | PolicyError::Evaluation { .. }
            | PolicyError::MalformedOutput { .. } => None,
        }
    }

    fn message_without_location(&self) -> String {
        match self {
            PolicyError::TenantPackageRefused { package, .. } => format!(
                "package {package} is not allowed in a tenant policy; use package ringmaster.tenant or ringmaster.tenant.<name>"
            ),
            other => other.to_string(),
        }
    }
}

/// A regorus error split into file, position and message.
///
/// regorus renders located errors as
/// `\n--> file:line:column\n  |\nN | source\n  |   ^\nerror: message`.
pub(crate) struct LocatedError {
    pub file: Option<String>,
    pub position: Position,
    pub message: String,
}

impl LocatedError {
    pub(crate) fn parse(text: &str) -> LocatedError {
        let location = text
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("--> "))
            .and_then(split_location);
        let message = text
            .lines()
            .rev()
            .find_map(|line| line.trim_start().strip_prefix("error: "))
            .unwrap_or(text)
            .trim()
            .to_string();
        match location {
            Some((file, position)) => LocatedError {
                file: Some(file),
                position,
                message,
            },
            None => LocatedError {
                file: None,
                position: Position::default(),
                message,
            },
        }
    }
}

/// `path:line:column` → (path, position); the path itself may contain `:`.
fn split_location(location: &str) -> Option<(String, Position)> {
    let mut parts = location.trim().rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some((file, Position { line, column }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_error_is_split_into_file_position_and_message() {
        let text = "\n--> policies/bad.rego:5:5\n  |\n5 |   x := \n  |     ^\nerror: expecting `}` while parsing set";
        let located = LocatedError::parse(text);
        assert_eq!(located.file.as_deref(), Some("policies/bad.rego"));
        assert_eq!(located.position, Position { line: 5, column: 5 });
        assert_eq!(located.message, "expecting `}` while parsing set");
    }

    #[test]
    fn unlocated_error_keeps_its_text() {
        let located = LocatedError::parse("recursion detected");
        assert_eq!(located.file, None);
        assert_eq!(located.message, "recursion detected");
    }
}
