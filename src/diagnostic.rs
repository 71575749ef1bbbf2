//! Diagnostics: what is wrong with a governed repository, where, and how to fix it.
//!
//! A bad file is not an error of ringmaster; it is a finding about the repository.
//! Every stage (parse, schema, links, policy) returns all of its diagnostics at once,
//! each naming the file, the line and column, the JSON pointer inside the document
//! and a sentence that says what to fix.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How bad a finding is. `Error` fails `validate`; `Warning` is reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A position inside a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One finding about one place in the governed repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Path relative to the governed repository's root, `/`-separated.
    pub file: String,
    /// 1-based; 0 when the finding is about the file as a whole.
    pub line: usize,
    /// 1-based; 0 when the finding is about the file as a whole.
    pub column: usize,
    /// JSON pointer of the offending value inside the document (`""` for the root).
    pub pointer: String,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            pointer: String::new(),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, message)
        }
    }

    pub fn at(mut self, position: Position) -> Self {
        self.line = position.line;
        self.column = position.column;
        self
    }

    pub fn pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: severity: message` — the shape editors and CI logs
    /// link. File and message come from the repository: control characters
    /// in them are shown escaped ([`crate::escape::terminal`]), so a
    /// diagnostic is always one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::escape::terminal(&self.file))?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(
            f,
            ": {}: {}",
            self.severity,
            crate::escape::terminal(&self.message)
        )
    }
}

/// Sorts diagnostics by file, then position, so output is stable across runs.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.file.as_str(), a.line, a.column, &a.message).cmp(&(
            b.file.as_str(),
            b.line,
            b.column,
            &b.message,
        ))
    });
}
