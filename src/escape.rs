//! Text from a governed repository, made safe to print.
//!
//! File names, YAML values and tenant rule messages are written by whoever
//! can push. Printed as they are, a file named `x\n7zip  ALLOW  0  -` adds a
//! fake line to `validate`'s table, an ANSI escape repaints the terminal, a
//! `\n::notice::` in a message forges a GitHub annotation, and a `|` or an
//! HTML tag in the PR comment fakes a table row. Every output that shows
//! such text goes through one of these functions:
//!
//! - [`terminal`] for people (tables, diagnostics, plans): control
//!   characters (C0, DEL, C1), line and paragraph separators and the Unicode
//!   bidirectional controls ("Trojan Source") become visible escapes such as
//!   `\n` or `\u{1b}`, so one value is always one line of what it looks like.
//! - [`workflow_data`] and [`workflow_property`] for GitHub workflow
//!   commands: [`terminal`], then the runner's own escaping (`%`, `\r`, `\n`,
//!   and in properties `:` and `,`).
//! - [`markdown_code`] and [`markdown_cell`] for Markdown: the value as a
//!   code span (no emphasis, link, HTML or @mention inside one), with a fence
//!   longer than any run of backticks in it, and in a table cell with `|`
//!   escaped (GitHub splits cells on pipes even inside code spans).
//!
//! Pure functions of their input.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `character` must not reach a terminal as itself.
fn needs_escape(character: char) -> bool {
    character.is_control() // C0, DEL, C1
        || matches!(
            character,
            '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{061c}' | '\u{200e}' | '\u{200f}' // bidi marks
                | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
                | '\u{2066}'..='\u{2069}' // bidi isolates
                | '\u{feff}' // zero-width no-break space (BOM)
        )
}

/// `text` with every control character, separator and bidi control written
/// as a visible escape (`\n`, `\r`, `\t`, `\u{1b}`); borrowed when there is
/// none.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other if needs_escape(other) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(other));
            }
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

/// The data part of a GitHub workflow command (`::error ...::DATA`).
pub fn workflow_data(text: &str) -> String {
    terminal(text)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value of a GitHub workflow command (`file=VALUE,...`).
pub fn workflow_property(text: &str) -> String {
    workflow_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `text` as a Markdown code span, outside a table.
pub fn markdown_code(text: &str) -> String {
    code_span(&terminal(text))
}

/// `text` as a Markdown code span inside a table cell.
pub fn markdown_cell(text: &str) -> String {
    code_span(&terminal(text).replace('|', "\\|"))
}

fn code_span(content: &str) -> String {
    if content.is_empty() {
        return String::new();
    }
    let longest_run = content
        .split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    // A span that starts or ends with a backtick (or a space) needs a space
    // of padding, which the renderer strips.
    let pad = content.starts_with(['`', ' ']) || content.ends_with(['`', ' ']);
    let space = if pad { " " } else { "" };
    format!("{fence}{space}{content}{space}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_is_one_line_without_escapes() {
        let forged = "x\n7zip  ALLOW\r\u{1b}[2K\u{85}\u{2028}\u{202e}\t";
        let shown = terminal(forged);
        assert!(!shown.chars().any(needs_escape), "{shown}");
        assert_eq!(
            shown,
            "x\\n7zip  ALLOW\\r\\u{1b}[2K\\u{85}\\u{2028}\\u{202e}\\t"
        );
        assert!(matches!(terminal("plain ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn workflow_commands_cannot_be_forged() {
        let data = workflow_data("50%\n::notice file=x::ALLOW\u{1b}");
        assert!(!data.contains('\n'));
        assert_eq!(data, "50%25\\n::notice file=x::ALLOW\\u{1b}");
        let property = workflow_property("a,b:c\nd");
        assert_eq!(property, "a%2Cb%3Ac\\nd");
    }

    #[test]
    fn markdown_spans_hold_anything() {
        assert_eq!(markdown_code("intents/a.yaml"), "`intents/a.yaml`");
        assert_eq!(markdown_code("a`b"), "``a`b``");
        assert_eq!(markdown_code("`x``"), "``` `x`` ```");
        assert_eq!(markdown_cell("a | b"), "`a \\| b`");
        let row = markdown_cell("x |\n| ALLOW | <img src=x> |");
        assert!(!row.contains('\n'));
        assert!(!row.contains(" | "));
        assert_eq!(markdown_code(""), "");
    }
}
