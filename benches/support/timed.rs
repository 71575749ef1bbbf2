//! Running a benchmarked command as a user runs it: the whole process,
//! its wall time, and its peak RSS from GNU time when installed. Shared by
//! the `validate` and `daemon` benches (`#[path = "support/timed.rs"]`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `program` under GNU time (peak RSS and CPU time on stderr's last
/// lines) when installed, else alone.
pub fn timed(program: &Path) -> Command {
    if Path::new("/usr/bin/time").exists() {
        let mut command = Command::new("/usr/bin/time");
        command
            .args(["-f", "PEAK_RSS_KIB=%M\nCPU_SECONDS=%U %S"])
            .arg(program);
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

/// User plus system CPU seconds of a [`timed`] command and the children it
/// waited for, from GNU time's line.
#[allow(dead_code)]
pub fn cpu_seconds(output: &std::process::Output) -> Option<f64> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .rev()
        .find_map(|line| {
            let (user, system) = line.strip_prefix("CPU_SECONDS=")?.trim().split_once(' ')?;
            Some(user.parse::<f64>().ok()? + system.parse::<f64>().ok()?)
        })
}
