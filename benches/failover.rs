//! Failover time, over repeated runs: the leader of two `serve` replicas on
//! one PostgreSQL store is killed (`kill -9`) in the middle of a ring — at
//! `before-publish`, its first publish journalled as sent and not yet
//! called — and the time is taken until the new leader's first action: that
//! publish re-sent from the journal and confirmed. Also: until the standby
//! holds the lead (epoch 2 in the leadership row).
//!
//! The replicas are the real binary (`CARGO_BIN_EXE_ringmaster`), the store
//! the tests' PostgreSQL (`tests/support/postgres.rs`), the planes simulated
//! fleets outside both replicas. The lease is `FAILOVER_LEASE_SECONDS`
//! (default 2; production's default is 15) and the runs `FAILOVER_RUNS`
//! (default 10). The leader renews at a third of the lease, so a kill lands
//! between 2/3 and all of a lease before it expires.
//!
//! `cargo bench --bench failover` (or `--profile dev` for a debug binary).

#[path = "../tests/support/replicas.rs"]
mod replicas;
#[path = "../tests/support/mod.rs"]
mod support;

use replicas::Site;
use ringmaster::store::ActionState;
use std::time::{Duration, Instant};

fn main() {
    let runs: usize = std::env::var("FAILOVER_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10);
    let lease: u64 = std::env::var("FAILOVER_LEASE_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2);
    let mut takeovers = Vec::new();
    let mut first_actions = Vec::new();
    for run in 1..=runs {
        let (takeover, first_action) = one_failover(lease);
        eprintln!(
            "run {run}/{runs}: lead taken {:.0} ms, first action {:.0} ms after the kill",
            millis(takeover),
            millis(first_action)
        );
        takeovers.push(takeover);
        first_actions.push(first_action);
    }
    println!(
        "failover, lease {lease} s, {runs} runs (two replicas, kill -9 of the leader at before-publish)"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "", "min", "median", "p95", "max"
    );
    report("leader killed -> standby holds the lead", &mut takeovers);
    report(
        "leader killed -> first action by the new leader",
        &mut first_actions,
    );
}

fn one_failover(lease: u64) -> (Duration, Duration) {
    let site = Site::new(support::postgres::fresh_database(), lease);
    let mut leader = site.spawn("leader", &[("RINGMASTER_TEST_PAUSE_AT", "before-publish")]);
    leader.wait_for("RINGMASTER-PAUSED-AT before-publish");
    let standby = site.spawn("standby", &[]);
    let store = site.store();
    let in_flight = store
        .actions()
        .expect("journal")
        .into_iter()
        .find(|action| action.action == "publish" && action.state == ActionState::Sent)
        .expect("the publish the leader stopped before")
        .key;
    let killed = Instant::now();
    leader.kill();
    let mut takeover = None;
    let deadline = killed + Duration::from_secs(lease * 4 + 60);
    loop {
        assert!(Instant::now() < deadline, "{}", standby.stderr());
        if takeover.is_none()
            && store
                .leadership()
                .expect("leadership")
                .is_some_and(|row| row.epoch == 2)
        {
            takeover = Some(killed.elapsed());
        }
        let confirmed = store
            .actions()
            .expect("journal")
            .iter()
            .any(|action| action.key == in_flight && action.state == ActionState::Confirmed);
        if confirmed {
            let first_action = killed.elapsed();
            return (takeover.unwrap_or(first_action), first_action);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |fraction: f64| {
        let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
        millis(samples[index])
    };
    println!(
        "{what:<44} {:>6.0}ms {:>6.0}ms {:>6.0}ms {:>6.0}ms",
        at(0.0),
        at(0.5),
        at(0.95),
        at(1.0)
    );
}
