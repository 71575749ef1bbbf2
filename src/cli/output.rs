//! Text rendering for people: aligned tables, no colour codes in pipes.
//!
//! Every value that comes from the governed repository (ids, file names,
//! rule names and messages, groups, scope values) is printed through
//! [`crate::escape::terminal`]: table cells by [`table`] itself, the rest
//! where they are formatted, so no value can add a line or move the cursor.

use crate::escape::terminal as t;
use crate::evaluation::Evaluation;
use crate::plan::Plan;
use crate::policy::Decision;
use std::fmt::Write as _;

/// Repository values joined for one line, each escaped.
fn joined(values: &[String]) -> String {
    values
        .iter()
        .map(|value| t(value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders rows as left-aligned columns separated by two spaces; every cell
/// escaped ([`t`]), so a cell is one line.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| t(cell).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if index < widths.len() {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (index, cell) in cells.iter().enumerate() {
            if index == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[index]);
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub(super) fn print_validation(label: &str, file_count: usize, evaluation: &Evaluation) {
    println!(
        "{}: {file_count} files, {} intents",
        t(label),
        evaluation.intents.len()
    );
    if !evaluation.diagnostics.is_empty() {
        println!();
        for diagnostic in &evaluation.diagnostics {
            println!("{diagnostic}");
        }
    }
    if !evaluation.intents.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = evaluation
            .intents
            .iter()
            .map(|intent| {
                let why = match intent.outcome.reasons.first() {
                    Some(first) if intent.outcome.reasons.len() > 1 => {
                        format!(
                            "{} (+{} more)",
                            first.rule,
                            intent.outcome.reasons.len() - 1
                        )
                    }
                    Some(first) => first.rule.clone(),
                    None if intent.outcome.approvals_required > 0 => format!(
                        "approved {}/{} ({})",
                        intent.outcome.counted_approvals.len(),
                        intent.outcome.approvals_required,
                        intent.outcome.counted_approvals.join(", ")
                    ),
                    None => "-".into(),
                };
                vec![
                    intent.intent_id.clone(),
                    intent.decision().to_string(),
                    intent
                        .risk
                        .as_ref()
                        .map(|r| r.risk_score.to_string())
                        .unwrap_or_else(|| "-".into()),
                    why,
                ]
            })
            .collect();
        print!("{}", table(&["INTENT", "DECISION", "RISK", "WHY"], &rows));
        for intent in &evaluation.intents {
            for reason in &intent.outcome.reasons {
                println!(
                    "  {} {}: {}",
                    t(&intent.intent_id),
                    t(&reason.rule),
                    t(&reason.message)
                );
            }
        }
    }
    let errors = evaluation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .count();
    let warnings = evaluation.diagnostics.len() - errors;
    let count = |decision: Decision| {
        evaluation
            .intents
            .iter()
            .filter(|i| i.decision() == decision)
            .count()
    };
    println!(
        "\n{errors} error(s), {warnings} warning(s); {} ALLOW, {} REQUIRE_APPROVAL, {} REQUIRE_EXCEPTION, {} DENY",
        count(Decision::Allow),
        count(Decision::RequireApproval),
        count(Decision::RequireException),
        count(Decision::Deny)
    );
}

pub(super) fn print_plan(plan: &Plan) {
    let evaluation = &plan.evaluation;
    println!(
        "{}: {} {} via {}",
        t(&plan.intent_id),
        t(&plan.application_id),
        t(&plan.version),
        plan.plane.map(|p| p.as_str()).unwrap_or("?")
    );
    println!("decision: {}", evaluation.decision());
    println!(
        "intent_sha256: {} (approvals of this intent carry it)",
        plan.intent_sha256
    );
    if let Some(risk) = &evaluation.risk {
        println!(
            "\nrisk: {} ({}, model {})",
            risk.risk_score,
            risk.threshold,
            t(&risk.risk_model_version)
        );
        let rows: Vec<Vec<String>> = risk
            .factors
            .iter()
            .map(|f| {
                vec![
                    f.name.clone(),
                    format!("{:.2}", f.normalized_value),
                    format!("{:.0}", f.weight),
                    format!("{:.2}", f.contribution),
                    f.basis.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["FACTOR", "VALUE", "WEIGHT", "CONTRIBUTION", "BASIS"],
                &rows
            )
        );
    }
    println!("\nrules fired:");
    if evaluation.outcome.reasons.is_empty() {
        println!("  (none)");
    }
    for reason in evaluation
        .outcome
        .reasons
        .iter()
        .chain(&evaluation.outcome.notes)
    {
        println!(
            "  [{:?}] {} ({}): {}",
            reason.kind,
            t(&reason.rule),
            t(&reason.source),
            t(&reason.message)
        );
    }
    if evaluation.outcome.approvals_required > 0 {
        println!(
            "approvals: {}/{} counted [{}]",
            evaluation.outcome.counted_approvals.len(),
            evaluation.outcome.approvals_required,
            joined(&evaluation.outcome.counted_approvals)
        );
    }
    println!("\nscope diff:");
    match (&plan.application_scope, &plan.target) {
        (None, None) => println!("  (no base revision given; use --base REV)"),
        (application, target) => {
            if let Some(change) = application {
                if change.previous.is_none() {
                    println!("  application allowed_scope: new application");
                } else if change.diff.is_empty() {
                    println!("  application allowed_scope: unchanged");
                } else {
                    for (name, dimension) in [
                        (
                            "acquisition_boundaries",
                            &change.diff.acquisition_boundaries,
                        ),
                        ("business_units", &change.diff.business_units),
                        ("sites", &change.diff.sites),
                    ] {
                        if !dimension.is_empty() {
                            println!(
                                "  application allowed_scope.{name}: +[{}] -[{}]",
                                joined(&dimension.added),
                                joined(&dimension.removed)
                            );
                        }
                    }
                }
            }
            if let Some(target) = target {
                match &target.previous {
                    None => println!(
                        "  target: new intent → {}/{} rings [{}]",
                        t(&target.current.acquisition_boundary),
                        t(&target.current.business_unit),
                        joined(&target.current.rings)
                    ),
                    Some(previous) => println!(
                        "  target: {}/{} → {}/{}; rings +[{}] -[{}]",
                        t(&previous.acquisition_boundary),
                        t(&previous.business_unit),
                        t(&target.current.acquisition_boundary),
                        t(&target.current.business_unit),
                        joined(&target.rings_added),
                        joined(&target.rings_removed)
                    ),
                }
            }
        }
    }
    println!("\nblast radius ({} devices):", plan.total_devices);
    let rows: Vec<Vec<String>> = plan
        .blast_radius
        .iter()
        .map(|row| {
            vec![
                row.ring.clone(),
                row.plane.as_str().to_owned(),
                row.devices.to_string(),
                row.entitlement.clone().unwrap_or_else(|| "MISSING".into()),
                row.groups.join(", "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["RING", "PLANE", "DEVICES", "ENTITLEMENT", "GROUPS"],
            &rows
        )
    );
    for row in plan
        .blast_radius
        .iter()
        .filter(|row| !row.posture_not_applied.is_empty())
    {
        println!(
            "  {}: posture [{}] not applied by {}; every device of the groups is counted",
            crate::escape::terminal(&row.ring),
            crate::escape::terminal(&row.posture_not_applied.join(", ")),
            row.plane.as_str()
        );
    }
    println!("\nring timeline:");
    let rows: Vec<Vec<String>> = plan
        .timeline
        .iter()
        .map(|row| {
            vec![
                row.ring.clone(),
                row.name.clone(),
                row.start
                    .map(|s| s.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| format!("T+{}h", row.offset_hours)),
                format!("{}h", row.soak_hours),
            ]
        })
        .collect();
    print!("{}", table(&["RING", "NAME", "START", "SOAK"], &rows));
    if let Some(gate) = &plan.gate_check
        && gate.is_slower()
    {
        println!(
            "\ngate checks, worst case (every intent of this revision on the plane rolling out at once, each in its last ring; default call budget): {}",
            gate.sentence()
        );
    }
}
