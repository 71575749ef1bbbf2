//! Replicas of `ringmaster serve` on one PostgreSQL store, across real
//! processes: the leader killed (`kill -9`) in the middle of a ring at each
//! pause point with two and three replicas, a stalled ex-leader (SIGSTOP past
//! its lease, then SIGCONT) fenced, and PostgreSQL restarted mid-rollout.
//!
//! Every replica is the binary under test, with a 3-second lease (renewed
//! at a third of it) so a failover takes seconds; the planes are simulated
//! fleets kept outside every replica, whose publish calls are counted.
//! Conditions are polled with a deadline; nothing sleeps to synchronise,
//! and no assertion is about time (the failover time is measured by
//! `cargo bench --bench failover`).

#[path = "support/replicas.rs"]
mod replicas;
mod support;

use replicas::{OwnPostgres, Replica, Site};
use rustix::process::Signal;
use support::postgres;

const LEASE_SECONDS: u64 = 3;

const PAUSE_POINTS: [&str; 4] = [
    "after-evidence-append",
    "after-record-append",
    "before-publish",
    "after-publish",
];

/// The leader stops dead at `point` in its first step (decision records,
/// the lab ring's records and publishes), `standbys` replicas start, the
/// leader is killed with SIGKILL: one standby takes the lead under epoch 2
/// (or later epochs, if the lease changes hands again under load) and
/// finishes the ring, with every invariant intact.
fn leader_killed_at(point: &str, standbys: usize, expected: usize) {
    let site = Site::new(postgres::fresh_database(), LEASE_SECONDS);
    let mut leader = site.spawn("leader", &[("RINGMASTER_TEST_PAUSE_AT", point)]);
    leader.wait_for("ringmaster: leading (epoch 1)");
    leader.wait_for(&format!("RINGMASTER-PAUSED-AT {point}"));
    let mut others: Vec<Replica> = (0..standbys)
        .map(|number| site.spawn(&format!("standby-{number}"), &[]))
        .collect();
    leader.kill();
    let watched: Vec<&Replica> = others.iter().collect();
    site.wait_until(&format!("{point}: a standby leads"), &watched, || {
        others
            .iter()
            .any(|replica| replica.said("ringmaster: leading (epoch"))
    });
    site.wait_until(
        &format!("{point}: the lab ring is published"),
        &watched,
        || site.settled_at(expected),
    );
    // Under load a 3 s lease may change hands again between the standbys:
    // safe (each takeover resumes from the journal), so only "a standby
    // leads" is asserted, never how often.
    let leadership = site.store().leadership().expect("row").expect("led");
    assert!(leadership.epoch >= 2, "{point}: a standby took over");
    let leader_at = others
        .iter()
        .position(|replica| leadership.holder.ends_with(&format!(":{}", replica.pid())))
        .unwrap_or(0);
    // The standbys first: the leader's clean stop would hand the lead over.
    for (at, replica) in others.iter_mut().enumerate() {
        if at != leader_at {
            replica.stop();
        }
    }
    others[leader_at].stop();
    let held = site.check(others[leader_at].state.path());
    assert_eq!(held, expected, "{point}: as many as an uninterrupted run");
}

#[test]
fn two_replicas_the_leader_killed_at_each_pause_point_a_standby_finishes_the_ring() {
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    assert!(expected >= 5, "the lab rings publish ({expected})");
    for point in PAUSE_POINTS {
        leader_killed_at(point, 1, expected);
    }
}

#[test]
fn three_replicas_the_leader_killed_at_each_pause_point_one_standby_finishes_the_ring() {
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    for point in PAUSE_POINTS {
        leader_killed_at(point, 2, expected);
    }
}

/// The leader stops itself (SIGSTOP) right before its first plane call,
/// the journal entry already marked sent. A standby takes over past the
/// lease and publishes the ring. Then the ex-leader is continued: it sends
/// nothing (every plane's publish count unchanged), journals nothing (its
/// publish entry was resumed and confirmed by the successor) and stands by
/// while the successor keeps the lead.
#[test]
fn a_stalled_ex_leader_continued_after_its_lease_is_fenced_and_sends_nothing() {
    let site = Site::new(postgres::fresh_database(), LEASE_SECONDS);
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    let mut stalled = site.spawn(
        "stalled",
        &[
            ("RINGMASTER_TEST_PAUSE_AT", "before-publish"),
            ("RINGMASTER_TEST_PAUSE_STOPS", "1"),
        ],
    );
    stalled.wait_for("RINGMASTER-PAUSED-AT before-publish");
    assert_eq!(
        site.publish_calls(),
        vec![0; 5],
        "stopped before its first call"
    );
    let mut successor = site.spawn("successor", &[]);
    site.wait_until("the successor leads", &[&successor], || {
        successor.said("ringmaster: leading (epoch 2)")
    });
    site.wait_until("the lab ring is published", &[&successor], || {
        site.settled_at(expected)
    });
    // The ring is published: the successor, soaking it, sends no publish
    // and journals none from here on; any would be the ex-leader's.
    let publishes = |store: &ringmaster::store::Store| {
        store
            .actions()
            .expect("journal")
            .into_iter()
            .filter(|action| action.action == "publish")
            .collect::<Vec<_>>()
    };
    let calls = site.publish_calls();
    let journal = publishes(&site.store());
    stalled.signal(Signal::CONT);
    stalled.wait_for("ringmaster: stops acting: ");
    stalled.wait_for("ringmaster: standing by: ");
    assert_eq!(site.publish_calls(), calls, "the ex-leader sent nothing");
    assert_eq!(
        publishes(&site.store()),
        journal,
        "nor wrote to the journal"
    );
    assert_eq!(
        site.store().leadership().expect("row").expect("led").epoch,
        2,
        "the successor still leads"
    );
    stalled.kill();
    successor.stop();
    let held = site.check(successor.state.path());
    assert_eq!(held, expected);
}

/// PostgreSQL stops while the leader is in the middle of its first step
/// (a decision record on the branch, nothing published yet): publishing is
/// blocked while it is down (no plane receives a call; the replica says it
/// cannot confirm its lead, and retries without spinning), and once it is
/// back the same replica reconnects and finishes the ring — nothing lost,
/// nothing doubled.
#[test]
fn postgresql_restarted_mid_rollout_blocks_publishing_then_work_resumes() {
    let server = OwnPostgres::start();
    let site = Site::new(server.url("ringmaster"), LEASE_SECONDS);
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    let mut replica = site.spawn(
        "replica",
        &[
            ("RINGMASTER_TEST_PAUSE_AT", "after-evidence-append"),
            ("RINGMASTER_TEST_PAUSE_STOPS", "1"),
        ],
    );
    replica.wait_for("RINGMASTER-PAUSED-AT after-evidence-append");
    server.stop();
    replica.signal(Signal::CONT);
    // Two failed attempts at its lead, a third of the lease apart.
    replica.wait_for_count("ringmaster: not acting: cannot confirm the lead", 2);
    assert_eq!(
        site.publish_calls(),
        vec![0; 5],
        "nothing is published while the store is down"
    );
    server.resume();
    site.wait_until("the lab ring is published", &[&replica], || {
        site.settled_at(expected)
    });
    replica.stop();
    let held = site.check(replica.state.path());
    assert_eq!(held, expected);
}
