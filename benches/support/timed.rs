//! Running a benchmarked command as a user runs it: the whole process,
//! its wall time, and its peak RSS from GNU time when installed. Shared by
//! the `validate` and `daemon` benches (`#[path = "support/timed.rs"]`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `program` under GNU time (peak RSS on stderr's last line) when
/// installed, else alone.
pub fn timed(program: &Path) -> Command {
    if Path::new("/usr/bin/time").exists() {
        let mut command = Command::new("/usr/bin/time");
        command.args(["-f", "PEAK_RSS_KIB=%M"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub fn run_timed(mut command: Command) -> (std::process::Output, f64, Option<u64>) {
    let started = Instant::now();
    let output = command.output().expect("the command runs");
    let elapsed = started.elapsed().as_secs_f64();
    let peak = String::from_utf8_lossy(&output.stderr)
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("PEAK_RSS_KIB=")?.trim().parse().ok());
    (output, elapsed, peak)
}
