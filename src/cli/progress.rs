//! Progress bars for long commands (`generate`, `verify`, `validate`), drawn
//! on stderr with `indicatif` — only when stderr is a terminal. Piped or
//! redirected (CI logs, tests, `2>file`), nothing at all is written, so the
//! output of those runs is what it always was.

use crate::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::time::Duration;

/// The bar of one command; cleared when dropped.
pub(super) struct Reporter {
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// Draws on stderr if it is a terminal, else reports nothing.
    pub fn on_stderr() -> Reporter {
        Reporter::drawing(std::io::stderr().is_terminal())
    }

    /// A reporter that draws on stderr when `attended`, else a silent one.
    pub fn drawing(attended: bool) -> Reporter {
        let bar = attended.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter { bar }
    }

    /// Whether anything is drawn.
    #[cfg(test)]
    pub fn is_drawing(&self) -> bool {
        self.bar.is_some()
    }
}

impl Progress for Reporter {
    fn stage(&self, what: &str, total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        let style = match total {
            Some(_) => ProgressStyle::with_template(
                "{spinner} {msg} [{bar:32}] {human_pos}/{human_len} ({elapsed}, {eta} left)",
            ),
            None => ProgressStyle::with_template("{spinner} {msg} ({elapsed})"),
        }
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.reset();
        match total {
            Some(total) => bar.set_length(total),
            None => bar.unset_length(),
        }
        bar.set_message(what.to_owned());
    }

    fn advance(&self, count: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(count);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unattended_reporter_draws_nothing_and_takes_every_call() {
        let reporter = Reporter::drawing(false);
        assert!(!reporter.is_drawing());
        reporter.stage("writing files", Some(10));
        reporter.advance(3);
        reporter.stage("committing", None);
    }

    #[test]
    fn an_attended_reporter_counts_the_stage_items() {
        let reporter = Reporter::drawing(true);
        reporter.stage("verifying records", Some(10));
        reporter.advance(3);
        reporter.advance(4);
        let bar = reporter.bar.as_ref().expect("drawing");
        assert_eq!(bar.position(), 7);
        assert_eq!(bar.length(), Some(10));
        assert_eq!(bar.message(), "verifying records");
        reporter.stage("checking the state store", None);
        assert_eq!(bar.position(), 0);
        assert_eq!(bar.length(), None);
    }
}
