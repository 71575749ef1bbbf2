//! `ringmaster plan`: one intent's decision and what it would touch.

use super::validate::{base_revision, judge_revision, read};
use super::{Format, RepoArgs, output};
use crate::evaluation::{self, NoRuntime};
use anyhow::bail;
use chrono::{DateTime, Utc};
use std::process::ExitCode;

pub(super) fn run(
    args: &RepoArgs,
    intent_id: &str,
    base: Option<&str>,
    format: Format,
    print_input: bool,
    wall_clock: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let revision = read(args)?;
    let base = base_revision(&revision, base)?;
    let now = args.now.unwrap_or(wall_clock);
    let judgement = judge_revision(&revision, base.as_ref(), now);
    let (snapshot, evaluation) = (judgement.snapshot, judgement.evaluation);
    let base = base.map(|b| b.rules);
    let Some(intent) = snapshot.intents.get(intent_id) else {
        let known: Vec<&str> = snapshot.intents.keys().map(String::as_str).collect();
        let broken: Vec<String> = evaluation
            .diagnostics
            .iter()
            .filter(|d| d.file == format!("intents/{intent_id}.yaml"))
            .map(ToString::to_string)
            .collect();
        if broken.is_empty() {
            bail!(
                "no intent \"{intent_id}\" in {}; intents: [{}]",
                revision.label,
                known.join(", ")
            );
        }
        bail!(
            "intent \"{intent_id}\" does not load:\n{}",
            broken.join("\n")
        );
    };
    if print_input {
        let input = evaluation::policy_input(&snapshot, intent, base.as_ref(), now, &NoRuntime);
        println!("{}", serde_json::to_string_pretty(&input)?);
        return Ok(ExitCode::SUCCESS);
    }
    let intent_evaluation = evaluation
        .intents
        .iter()
        .find(|e| e.intent_id == intent_id)
        .cloned()
        .expect("every loaded intent is evaluated");
    let mut plan = crate::plan::build(&snapshot, intent, intent_evaluation, base.as_ref());
    plan.diagnostics = evaluation
        .diagnostics
        .iter()
        .filter(|d| d.file == intent.file)
        .cloned()
        .collect();
    // An error in the intent's own file (e.g. sites its plane cannot
    // honour) refuses it in every judge: the plan says so and fails.
    let refused = plan.diagnostics.iter().any(|d| d.is_error());
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Human | Format::Github => {
            output::print_plan(&plan);
            if !plan.diagnostics.is_empty() {
                println!("\ndiagnostics:");
                for diagnostic in &plan.diagnostics {
                    println!("  {diagnostic}");
                }
            }
            if refused {
                println!(
                    "\nrefused: the intent has errors; no judge lets it roll out until they are fixed"
                );
            }
        }
    }
    Ok(if refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
