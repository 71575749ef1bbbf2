//! The one PR comment: the verdict in Markdown.
//!
//! Pure. The comment starts with [`MARKER`], an HTML comment GitHub does not
//! show, by which ringmaster finds its own comment again to edit it in place.
//!
//! Everything that comes from the repository or the forge (ids, paths,
//! messages, groups, logins, branch names) is written as a code span
//! ([`code`], [`cell`] in tables): no Markdown, HTML, link or @mention
//! inside, no line break, no `|` that ends a table cell.

use super::check::{CheckState, IntentReport, PullRequestVerdict};
use crate::escape::{markdown_cell as cell, markdown_code as code};
use crate::model::scope::DimensionDiff;
use std::fmt::Write as _;

/// Marks ringmaster's comment; never shown.
pub const MARKER: &str = "<!-- ringmaster:policy -->";

/// GitHub refuses comments over 65,536 characters; stay well below.
const MAX_COMMENT_CHARS: usize = 60_000;

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// Reviewers (`@login (principal)`), plain so GitHub notifies them when
/// nothing in them can be Markdown (logins and principal ids are
/// pattern-checked), else code spans.
fn people(values: &[String]) -> String {
    if values.is_empty() {
        return "—".to_owned();
    }
    values
        .iter()
        .map(|value| plain_or_code(value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plain_or_code(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_' | '.' | ' ' | '(' | ')'));
    if plain { value.to_owned() } else { code(value) }
}

fn codes(values: &[String]) -> String {
    values
        .iter()
        .map(|value| code(value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dimension(name: &str, diff: &DimensionDiff, out: &mut String) {
    if !diff.is_empty() {
        let _ = writeln!(
            out,
            "  - {name}: added [{}], removed [{}]",
            codes(&diff.added),
            codes(&diff.removed)
        );
    }
}

/// Renders the comment body.
pub fn render(verdict: &PullRequestVerdict) -> String {
    let mut out = String::new();
    let heading = match verdict.state {
        CheckState::Success => "✅ success",
        CheckState::Pending => "⏳ pending",
        CheckState::Failure => "❌ failure",
    };
    let _ = writeln!(out, "{MARKER}");
    let _ = writeln!(out, "## ringmaster/policy: {heading}\n");
    let _ = writeln!(out, "**{}**\n", code(&verdict.summary));
    let _ = writeln!(
        out,
        "Judged at head {} by the rules (config, principals, policies) of {} at {}.",
        code(short(&verdict.head_sha)),
        code(&verdict.base_ref),
        code(short(&verdict.base_sha))
    );

    if !verdict.blocking.is_empty() {
        let _ = writeln!(out, "\n### Errors to fix\n");
        for diagnostic in &verdict.blocking {
            let _ = writeln!(
                out,
                "- {} {}",
                code(&format!(
                    "{}:{}:{}",
                    diagnostic.file, diagnostic.line, diagnostic.column
                )),
                code(&diagnostic.message)
            );
        }
    }

    for intent in &verdict.intents {
        render_intent(intent, &mut out);
    }
    if !verdict.removed_intents.is_empty() {
        let _ = writeln!(
            out,
            "\n### Removed intents\n\n{}",
            verdict
                .removed_intents
                .iter()
                .map(|id| format!("- {}", code(id)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    if let Some(governance) = &verdict.governance {
        let _ = writeln!(out, "\n### Changes to the rules\n");
        let _ = writeln!(
            out,
            "This pull request changes {}. It is judged by the base branch's rules, and needs an approving review by a platform admin (role `admin`).",
            codes(&governance.paths)
        );
        let _ = writeln!(out, "\n- approved by: {}", people(&governance.approved_by));
        if !governance.satisfied() {
            let _ = writeln!(
                out,
                "- can approve: {}",
                people(&governance.eligible_reviewers)
            );
        }
    }

    if !verdict.scope_changes.is_empty() {
        let _ = writeln!(out, "\n### Application scope changes\n");
        for change in &verdict.scope_changes {
            let _ = writeln!(
                out,
                "- {} ({}): allowed_scope changes; a CAB scope approval names `application_scope` with application_id {} and scope_sha256 {} — {}",
                code(&change.application_id),
                code(&change.file),
                code(&change.application_id),
                code(&change.scope_sha256),
                match &change.approved_by {
                    Some(approval) => format!("approved by {}", code(approval)),
                    None => "not approved: the change does not take effect".to_owned(),
                }
            );
        }
    }

    if !verdict.standings.is_empty() {
        let _ = writeln!(out, "\n### Reviews\n");
        for standing in &verdict.standings {
            let _ = writeln!(
                out,
                "- {} (review {} on {}): {}",
                plain_or_code(&format!("@{}", standing.login)),
                standing.review.id,
                code(short(standing.review.commit_id.as_deref().unwrap_or("?"))),
                standing.standing.explanation()
            );
        }
    }

    if !verdict.applied.uncorroborated.is_empty() {
        let _ = writeln!(out, "\n### Records this pull request cannot vouch for\n");
        for record in &verdict.applied.uncorroborated {
            let _ = writeln!(
                out,
                "- {} ({:?} {}) names {} as its decider, who has not approved this head; {}",
                code(&record.file),
                record.kind,
                code(&record.id),
                code(&record.claimed_by),
                if record.previous_kept {
                    "the merged version is used"
                } else {
                    "it is ignored"
                }
            );
        }
    }

    if !verdict.other_diagnostics.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} finding(s) not caused by this pull request</summary>\n",
            verdict.other_diagnostics.len()
        );
        for diagnostic in &verdict.other_diagnostics {
            let _ = writeln!(
                out,
                "- {} {}: {}",
                code(&format!(
                    "{}:{}:{}",
                    diagnostic.file, diagnostic.line, diagnostic.column
                )),
                diagnostic.severity,
                code(&diagnostic.message)
            );
        }
        let _ = writeln!(out, "\n</details>");
    }

    if out.chars().count() > MAX_COMMENT_CHARS {
        let mut cut: String = out.chars().take(MAX_COMMENT_CHARS).collect();
        cut.push_str("\n\n… (truncated; run `ringmaster validate` and `ringmaster plan` locally for the rest)\n");
        return cut;
    }
    out
}

fn render_intent(report: &IntentReport, out: &mut String) {
    let plan = &report.plan;
    let evaluation = &plan.evaluation;
    let _ = writeln!(
        out,
        "\n### {}: **{}**\n\n{} — {} {}",
        code(&plan.intent_id),
        evaluation.decision(),
        code(&evaluation.file),
        code(&plan.application_id),
        code(&plan.version)
    );
    if let Some(risk) = &evaluation.risk {
        let _ = writeln!(
            out,
            "\n**Risk {}/100** (model {}, {})\n\n| factor | value | weight | contribution | basis |\n|---|---:|---:|---:|---|",
            risk.risk_score,
            code(&risk.risk_model_version),
            risk.threshold
        );
        for factor in &risk.factors {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {} | {:.1} | {} |",
                cell(&factor.name),
                factor.normalized_value,
                factor.weight,
                factor.contribution,
                cell(&factor.basis)
            );
        }
    }
    let outcome = &evaluation.outcome;
    let _ = writeln!(out, "\n**Rules fired**\n");
    if outcome.reasons.is_empty() {
        let _ = writeln!(out, "- none: every rule passed");
    }
    for reason in outcome.reasons.iter().chain(&outcome.notes) {
        let kind = serde_json::to_value(reason.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- {} ({kind}, {}): {}",
            code(&reason.rule),
            code(&reason.source),
            code(&reason.message)
        );
    }

    let _ = writeln!(out, "\n**Scope diff**\n");
    match &plan.target {
        Some(change) => {
            let current = &change.current;
            match &change.previous {
                None => {
                    let _ = writeln!(
                        out,
                        "- target (new): {} rings [{}]",
                        code(&format!(
                            "{}/{}",
                            current.acquisition_boundary, current.business_unit
                        )),
                        codes(&current.rings)
                    );
                }
                Some(previous) => {
                    let _ = writeln!(
                        out,
                        "- target: {} → {}; rings added [{}], removed [{}]",
                        code(&format!(
                            "{}/{}",
                            previous.acquisition_boundary, previous.business_unit
                        )),
                        code(&format!(
                            "{}/{}",
                            current.acquisition_boundary, current.business_unit
                        )),
                        codes(&change.rings_added),
                        codes(&change.rings_removed)
                    );
                }
            }
        }
        None => {
            let _ = writeln!(out, "- target: no base to compare with");
        }
    }
    match &plan.application_scope {
        Some(change) if !change.diff.is_empty() => {
            let _ = writeln!(out, "- application allowed scope changed:");
            dimension(
                "acquisition boundaries",
                &change.diff.acquisition_boundaries,
                out,
            );
            dimension("business units", &change.diff.business_units, out);
            dimension("sites", &change.diff.sites, out);
        }
        _ => {
            let _ = writeln!(out, "- application allowed scope: unchanged");
        }
    }

    let _ = writeln!(
        out,
        "\n**Blast radius**: {} device(s)\n\n| ring | plane | entitlement | groups | devices |\n|---|---|---|---|---:|",
        plan.total_devices
    );
    for row in &plan.blast_radius {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&row.ring),
            row.plane.as_str(),
            row.entitlement
                .as_deref()
                .map_or_else(|| "— (none)".to_owned(), cell),
            cell(&row.groups.join(", ")),
            row.devices
        );
    }
    for row in plan
        .blast_radius
        .iter()
        .filter(|row| !row.posture_not_applied.is_empty())
    {
        let _ = writeln!(
            out,
            "\n- {}: posture {} not applied by {}; every device of the groups is counted",
            cell(&row.ring),
            cell(&row.posture_not_applied.join(", ")),
            row.plane.as_str()
        );
    }

    let _ = writeln!(
        out,
        "\n**Approvals**: {} required; an approval record carries `intent_sha256: {}`",
        report.approvals_required, plan.intent_sha256
    );
    let given: Vec<String> = report
        .counted
        .iter()
        .map(|c| format!("{} [{}]", plain_or_code(&c.given_by), code(&c.approval_id)))
        .collect();
    let _ = writeln!(
        out,
        "- given by: {}",
        if given.is_empty() {
            "—".to_owned()
        } else {
            given.join(", ")
        }
    );
    if report.missing > 0 {
        let _ = writeln!(
            out,
            "- still needed: {} — from: {}",
            report.missing,
            people(&report.eligible_reviewers)
        );
    }
}
