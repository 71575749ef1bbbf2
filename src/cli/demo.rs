//! `ringmaster demo`: runs the story and draws it.

use crate::demo::{self, DemoOptions, Frame, IntentLine};
use anyhow::Context as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;

fn bar(line: &IntentLine) -> String {
    let width = 10;
    let filled = (line.rings_done * width)
        .checked_div(line.rings_total)
        .unwrap_or(0);
    format!(
        "[{}{}] {}/{}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        line.rings_done,
        line.rings_total
    )
}

fn draw(frame: &Frame, clear: bool) {
    let mut out = String::new();
    if clear {
        out.push_str("\x1b[H\x1b[2J");
    }
    out.push_str(&format!(
        "ringmaster demo — simulated time {} (T+{}h)\n\n",
        frame.at.format("%Y-%m-%d %H:%M UTC"),
        frame.hours
    ));
    let rows: Vec<Vec<String>> = frame
        .intents
        .iter()
        .map(|line| {
            vec![
                line.intent_id.clone(),
                line.decision.clone(),
                bar(line),
                line.phase.clone(),
                line.ring.clone().unwrap_or_default(),
                if line.targeted > 0 {
                    format!("{}/{} installed", line.installed, line.targeted)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    out.push_str(&super::output::table(
        &["INTENT", "DECISION", "RINGS", "PHASE", "RING", "DEVICES"],
        &rows,
    ));
    for note in &frame.notes {
        out.push_str(&format!("  • {note}\n"));
    }
    print!("{out}");
}

pub(super) fn run(
    json: bool,
    seed: u64,
    keep: Option<std::path::PathBuf>,
    planes: demo::DemoPlanes,
) -> anyhow::Result<ExitCode> {
    let options = DemoOptions {
        seed,
        keep,
        planes,
        ..DemoOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let tty = std::io::stdout().is_terminal() && !json;
    let mut last: Vec<(String, String, Option<String>)> = Vec::new();
    let started = std::time::Instant::now();
    let report = runtime.block_on(demo::run(&options, &mut |frame: &Frame| {
        if json {
            return;
        }
        if tty {
            draw(frame, true);
            return;
        }
        // Plain lines: only what changed, and the story's notes.
        for line in &frame.intents {
            let key = (
                line.intent_id.clone(),
                line.phase.clone(),
                line.ring.clone(),
            );
            if !last.contains(&key) {
                println!(
                    "T+{:>3}h  {:<30} {:<18} {}",
                    frame.hours,
                    line.intent_id,
                    line.phase,
                    line.ring.clone().unwrap_or_default()
                );
            }
        }
        last = frame
            .intents
            .iter()
            .map(|l| (l.intent_id.clone(), l.phase.clone(), l.ring.clone()))
            .collect();
        for note in &frame.notes {
            println!("T+{:>3}h  • {note}", frame.hours);
        }
    }))?;
    let elapsed = started.elapsed();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["wall_seconds"] = serde_json::json!(elapsed.as_secs_f64());
        value["passed"] = serde_json::json!(report.passed());
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "\nsummary: {} simulated hours in {} steps, {:.1} s; {} evidence records, {} events",
            report.simulated_hours,
            report.steps,
            elapsed.as_secs_f64(),
            report.evidence_records,
            report.events
        );
        let rows: Vec<Vec<String>> = report
            .checks
            .iter()
            .map(|check| {
                vec![
                    if check.passed {
                        "ok".into()
                    } else {
                        "FAILED".into()
                    },
                    check.name.to_owned(),
                    check.detail.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            super::output::table(&["", "STORY STEP", "DETAIL"], &rows)
        );
        if let Some(repository) = &report.repository {
            println!("repository kept at {}", repository.display());
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
