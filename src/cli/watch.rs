//! `ringmaster status --watch`: a live view of the rollouts, redrawn every
//! interval — one block per intent with a progress bar per ring
//! (installed / targeted, the gate's verdict and success rate).

use crate::daemon::rollout::IntentState;
use crate::store::{IntentRecord, Store};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

const BAR_WIDTH: usize = 24;

/// A text progress bar: `[#########---------------]`.
pub fn bar(done: u32, failed: u32, total: u32) -> String {
    if total == 0 {
        return format!("[{}]", " ".repeat(BAR_WIDTH));
    }
    let cells = |part: u32| {
        (part as usize * BAR_WIDTH)
            .div_ceil(total as usize)
            .min(BAR_WIDTH)
    };
    let done_cells = cells(done);
    let failed_cells = cells(failed).min(BAR_WIDTH - done_cells);
    format!(
        "[{}{}{}]",
        "#".repeat(done_cells),
        "x".repeat(failed_cells),
        "-".repeat(BAR_WIDTH - done_cells - failed_cells)
    )
}

/// One frame of the view (pure).
pub fn frame(records: &[IntentRecord], title: &str) -> String {
    let mut out = format!("{title}\n\n");
    if records.is_empty() {
        out.push_str("no intents in the store yet\n");
    }
    for record in records {
        let state = IntentState::from_record(record);
        let phase = state
            .run
            .as_ref()
            .map_or(record.state.as_str(), |run| run.phase.name());
        out.push_str(&format!(
            "{}  {}  {}\n",
            record.intent_id,
            record.decision.as_deref().unwrap_or("-"),
            phase
        ));
        for ring in state.run.iter().flat_map(|run| &run.rings) {
            let (installed, failed, targeted) = ring
                .observed()
                .map_or((0, 0, 0), |o| (o.installed, o.failed, o.targeted));
            let mark = match (ring.completed_at(), ring.started_at()) {
                (Some(_), _) => "done",
                (None, Some(_)) => "live",
                (None, None) => "-",
            };
            let gate = ring
                .gate()
                .map(|gate| {
                    format!(
                        " {:?} {:.0}%",
                        gate.verdict,
                        gate.success_rate.unwrap_or(0.0) * 100.0
                    )
                    .to_lowercase()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<18} {} {:>6}/{:<6} {mark}{gate}\n",
                ring.ring,
                bar(installed, failed, targeted),
                installed,
                targeted
            ));
        }
    }
    out
}

/// Redraws the view every `interval`; `frames` stops after that many (tests).
pub fn watch(state: &Path, interval: Duration, frames: Option<u64>) -> anyhow::Result<()> {
    let store = Store::open_existing_location(&super::store_location(state))?;
    let terminal = std::io::stdout().is_terminal();
    let mut shown = 0u64;
    loop {
        let records = store.list_intents()?;
        let title = format!(
            "ringmaster status --watch  ({} intents; every {} s; Ctrl-C to stop)",
            records.len(),
            interval.as_secs_f64()
        );
        let text = frame(&records, &title);
        let mut stdout = std::io::stdout().lock();
        if terminal {
            // Home the cursor and clear, then draw: no flicker of a scrolled screen.
            write!(stdout, "\x1b[H\x1b[2J{text}")?;
        } else {
            writeln!(stdout, "{text}")?;
        }
        stdout.flush()?;
        shown += 1;
        if frames.is_some_and(|frames| shown >= frames) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_show_installed_failed_and_the_rest() {
        assert_eq!(bar(0, 0, 0), format!("[{}]", " ".repeat(24)));
        assert_eq!(bar(10, 0, 10), format!("[{}]", "#".repeat(24)));
        assert_eq!(
            bar(5, 0, 10),
            format!("[{}{}]", "#".repeat(12), "-".repeat(12))
        );
        assert_eq!(
            bar(11, 19, 30),
            format!("[{}{}]", "#".repeat(9), "x".repeat(15))
        );
        assert_eq!(bar(1, 0, 1000), format!("[#{}]", "-".repeat(23)));
    }
}
