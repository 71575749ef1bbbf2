//! Output cannot be forged by what the repository holds (issue 10, part B).
//!
//! A file name, a YAML value or a tenant rule's message is written by
//! whoever can push. Printed raw, a newline in one adds a line that looks
//! like the judge's own (`evil-1.0.0  ALLOW`), an ANSI escape rewrites the
//! terminal, a `\n::notice ...::` forges a GitHub annotation and a `|` or a
//! tag fakes a row or injects HTML into the PR comment. Each test puts such
//! text where it reaches an output and checks the output shows it escaped.

use crate::bounded::{Daemon, pr_check, ringmaster};
use crate::support::{NOW, TestRepo};

/// A fake table row of `validate`'s human output.
const FAKE_ROW: &str = "evil-1.0.0-finance             ALLOW              0     -";

/// A fake annotation of `--format github`.
const FAKE_ANNOTATION: &str = "::notice file=intents/evil.yaml::evil-1.0.0-finance ALLOW";

/// Clears the terminal line and moves the cursor up: what an escape
/// sequence in a name would do to an operator's screen.
const ANSI: &str = "\u{1b}[2K\u{1b}[1A";

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Lines of `text` that begin (after spaces) with `forged`.
fn forged_lines<'a>(text: &'a str, forged: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.trim_start().starts_with(forged.trim_start()))
        .collect()
}

/// The sample tenant plus a file whose name carries a fake row, a fake
/// annotation and an escape sequence, and a tenant rule whose message does.
fn hostile_repo() -> TestRepo {
    let repo = TestRepo::sample();
    repo.write(&format!("intents/x\n{FAKE_ROW}\n.yaml"), "kind: Nothing\n");
    repo.write(
        &format!("intents/y\n{FAKE_ANNOTATION}\n{ANSI}.yaml"),
        "kind: Nothing\n",
    );
    repo.write(
        "policies/messages.rego",
        &format!(
            "package ringmaster.tenant.messages\n\nimport rego.v1\n\n\
             notes contains {{\"rule\": \"messages.forged\", \"message\": \"fine\\n{FAKE_ROW}\\n{}\\u001b[2K\"}} if {{\n\
             \tinput.intent.intent_id == \"zoom-6.3.0-finance\"\n}}\n",
            FAKE_ANNOTATION.replace('"', "\\\"")
        ),
    );
    repo.commit_all("hostile names");
    repo
}

#[test]
fn a_file_name_cannot_print_a_fake_allow_line_or_escape_sequence() {
    let repo = hostile_repo();
    let output = ringmaster(&["validate", ".", "--now", NOW], &repo.path);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the stray files are errors: {text}"
    );
    assert!(
        forged_lines(&text, FAKE_ROW).is_empty(),
        "a forged row: {text}"
    );
    assert!(
        forged_lines(&text, FAKE_ANNOTATION).is_empty(),
        "a forged annotation: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    // The names are shown, escaped, on the diagnostic's own line.
    assert!(
        text.lines()
            .any(|line| line.starts_with("intents/x\\nevil-1.0.0-finance")),
        "{text}"
    );
    assert!(text.contains("\\u{1b}[2K"), "{text}");
}

#[test]
fn github_annotations_cannot_be_forged() {
    let repo = hostile_repo();
    let output = ringmaster(
        &["validate", ".", "--now", NOW, "--format", "github"],
        &repo.path,
    );
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with("::error ")
                || line.starts_with("::warning ")
                || line.starts_with("::notice "),
            "every line is one of ours: {line:?}"
        );
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
    assert!(
        forged_lines(&text, FAKE_ANNOTATION).is_empty(),
        "a forged annotation: {text}"
    );
    // One annotation per diagnostic and per intent, nothing more.
    let (_, report) = crate::bounded::validate(&repo, "HEAD");
    let expected = report["diagnostics"].as_array().map_or(0, Vec::len)
        + report["intents"].as_array().map_or(0, Vec::len);
    assert_eq!(lines.len(), expected, "{text}");
    // The hostile file's property cannot add properties either.
    let hostile = lines
        .iter()
        .find(|line| line.contains("intents/y"))
        .expect("the hostile file is annotated");
    let properties = hostile
        .strip_prefix("::error ")
        .and_then(|rest| rest.split("::").next())
        .expect("properties");
    for property in properties.split(',') {
        assert!(
            ["file=", "line=", "col="]
                .iter()
                .any(|key| property.starts_with(key)),
            "only ours: {property} in {properties}"
        );
    }
}

#[test]
fn plan_and_events_show_repository_values_escaped() {
    let repo = TestRepo::sample();
    // A group name with a fake line reaches plan's blast-radius table.
    repo.edit(
        "entitlements/intune-acq001-finance-ring-0-lab.yaml",
        "groups:\n",
        &format!("groups:\n  - id: forged-group\n    name: \"fake\\n{FAKE_ROW}\\u001b[2K\"\n"),
    );
    repo.commit_all("a hostile group id");
    let output = ringmaster(
        &["plan", ".", "chrome-131-finance", "--now", NOW],
        &repo.path,
    );
    let text = stdout(&output);
    assert!(text.contains("fake\\nevil-1.0.0-finance"), "{text}");
    assert!(forged_lines(&text, FAKE_ROW).is_empty(), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");

    // The daemon records an invalid commit whose diagnostics carry a hostile
    // name; `events` shows them on one line each.
    let daemon = Daemon::new(&repo);
    daemon.step();
    repo.write(&format!("intents/x\n{FAKE_ROW}\n.yaml"), "kind: Nothing\n");
    repo.commit_all("a hostile file name");
    let step = daemon.step();
    assert!(forged_lines(&stdout(&step), FAKE_ROW).is_empty());
    let output = ringmaster(
        &["events", "--state", daemon.state_dir(), "--format", "human"],
        &repo.path,
    );
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(forged_lines(&text, FAKE_ROW).is_empty(), "{text}");
    let output = ringmaster(&["status", "--state", daemon.state_dir()], &repo.path);
    assert!(forged_lines(&stdout(&output), FAKE_ROW).is_empty());
}

/// `markdown` with every code span removed: what GitHub renders as
/// Markdown and HTML rather than as literal text.
fn outside_code_spans(markdown: &str) -> String {
    let mut out = String::new();
    let mut rest = markdown;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let fence_len = rest[start..].chars().take_while(|c| *c == '`').count();
        let fence = "`".repeat(fence_len);
        let after = &rest[start + fence_len..];
        // The span ends at the next run of exactly the same length.
        let mut search = 0;
        let mut end = None;
        while let Some(found) = after[search..].find(&fence) {
            let at = search + found;
            let run = after[at..].chars().take_while(|c| *c == '`').count();
            if run == fence_len {
                end = Some(at);
                break;
            }
            search = at + run;
        }
        match end {
            Some(end) => rest = &after[end + fence_len..],
            None => {
                out.push_str(&fence);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_pr_comment_cannot_fake_a_row_or_carry_html() {
    let repo = TestRepo::sample();
    repo.git(&["checkout", "-q", "-b", "attack"]);
    repo.write(
        "intents/x | ALLOW |\n| evil | ALLOW |\n<img src=x onerror=alert(1)>.yaml",
        "kind: Nothing\n",
    );
    repo.edit(
        "entitlements/intune-acq001-finance-ring-0-lab.yaml",
        "groups:\n",
        "groups:\n  - id: \"g | 999999 |\\n| evil-ring | intune | — | g | 1 |\"\n    name: Forged\n",
    );
    repo.edit(
        "intents/chrome-131-finance.yaml",
        "rings:",
        "rings: # touched",
    );
    repo.commit_all("hostile names in a PR");
    let verdict = pr_check(&repo, "main", "attack");
    let comment = ringmaster::forge::comment::render(&verdict);
    assert!(
        comment.contains("evil"),
        "the hostile values are in the comment: {comment}"
    );
    let rendered = outside_code_spans(&comment);
    assert!(
        !rendered.contains("evil"),
        "outside a code span: {rendered}"
    );
    assert!(!rendered.contains("<img"), "{rendered}");
    for line in rendered.lines() {
        if let Some(tag) = line.find('<') {
            let tag = &line[tag..];
            assert!(
                ["<!--", "<details>", "</details>", "<summary>"]
                    .iter()
                    .any(|ours| tag.starts_with(ours)),
                "only our own HTML: {line}"
            );
        }
    }
    // Every table row has as many cells as its header.
    let mut columns = None;
    for line in comment.lines() {
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let cells = line.replace("\\|", "").matches('|').count();
        match columns {
            None => columns = Some(cells),
            Some(expected) => assert_eq!(cells, expected, "a row with extra cells: {line}"),
        }
    }
}
