//! Bypass 6: expiry waited for a commit. The daemon wakes up at the
//! earliest expiry of an approval or exception its decisions read and
//! judges them again then, with no new commit: the exception of the
//! benefits package (exc-2026-0031, until 2027-06-30T23:59:59Z) and the
//! CAB approval of the VPN (cab-2026-0142, until 2027-11-30T23:59:59Z)
//! stop counting at their instant. The clock is injected (`Daemon::wake`).

use crate::harness::{daemon_config, decision_packs, events_of, now};
use crate::support::TestRepo;
use chrono::{DateTime, Duration, Utc};
use ringmaster::daemon::Daemon;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("RFC 3339")
}

fn decision(daemon: &Daemon, intent: &str) -> String {
    daemon
        .store()
        .list_intents()
        .expect("intents")
        .into_iter()
        .find(|record| record.intent_id == intent)
        .and_then(|record| record.decision)
        .unwrap_or_default()
}

#[tokio::test]
async fn an_exception_then_an_approval_expire_without_a_commit() {
    let repo = TestRepo::sample();
    let mut config = daemon_config(&repo);
    // Polls far apart: only the expiry can bring the next step forward.
    config.poll_interval = std::time::Duration::from_secs(3 * 365 * 24 * 3600);
    let mut daemon = Daemon::open(config).expect("daemon");
    daemon.wake(now()).await;
    assert_eq!(decision(&daemon, "benefits-3.4.2-hr"), "ALLOW");
    assert_eq!(decision(&daemon, "vpn-6.2.1-finance"), "ALLOW");
    let exception_expiry = at("2027-06-30T23:59:59Z");
    let rejudge_at = |daemon: &Daemon| {
        daemon
            .store()
            .rules_state("main")
            .expect("store")
            .and_then(|state| state.rejudge_at)
    };
    assert_eq!(rejudge_at(&daemon), Some(exception_expiry));
    assert!(daemon.next_deadline(now()) <= exception_expiry);
    let head = repo.git(&["rev-parse", "HEAD"]);

    // Just before the instant, nothing changes; the loop's next deadline
    // is the instant itself.
    let before = exception_expiry - Duration::seconds(1);
    daemon.wake(before).await;
    assert_eq!(decision(&daemon, "benefits-3.4.2-hr"), "ALLOW");
    assert_eq!(
        daemon.next_deadline(before),
        exception_expiry,
        "the loop sleeps until the exception expires"
    );

    daemon.wake(exception_expiry).await;
    assert_eq!(
        decision(&daemon, "benefits-3.4.2-hr"),
        "REQUIRE_EXCEPTION",
        "the lapsed exception stopped counting without a commit"
    );
    assert_eq!(decision(&daemon, "vpn-6.2.1-finance"), "ALLOW");
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "no commit came");
    let packs = decision_packs(&repo);
    let rejudged: Vec<_> = packs
        .iter()
        .filter(|p| p["body"]["rejudged_at_expiry"].is_string())
        .collect();
    assert_eq!(rejudged.len(), 1, "one new decision pack: {rejudged:#?}");
    assert_eq!(rejudged[0]["intent_id"], "benefits-3.4.2-hr");
    assert!(
        events_of(&daemon, "policy_evaluated")
            .iter()
            .any(|e| e["reason"] == "an approval or exception expired, or a change freeze ended"),
        "an event says why it was judged again"
    );

    // The exception lapsed inside the quarterly close (Jun 28 for five
    // days): its end is the next wake-up, and changes no decision.
    let close_end = at("2027-07-03T00:00:00Z");
    assert_eq!(rejudge_at(&daemon), Some(close_end));
    daemon.wake(close_end).await;
    assert_eq!(decision(&daemon, "vpn-6.2.1-finance"), "ALLOW");
    let approval_expiry = at("2027-11-30T23:59:59Z");
    assert_eq!(rejudge_at(&daemon), Some(approval_expiry));
    daemon.wake(approval_expiry).await;
    assert_eq!(
        decision(&daemon, "vpn-6.2.1-finance"),
        "REQUIRE_APPROVAL",
        "the lapsed CAB approval stopped counting without a commit"
    );
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
}

/// The end of a change freeze is in the daemon's wake schedule: with polls
/// three years apart and no commit, the rings the freeze held start at its
/// end (and not a second before).
#[tokio::test(flavor = "multi_thread")]
async fn held_rings_start_when_the_freeze_ends_without_a_commit() {
    let repo = TestRepo::sample();
    // A freeze from Nov 30 00:00 UTC for 48 hours: in force at NOW.
    repo.edit(
        "ringmaster.yaml",
        "cron: \"0 0 0 28 3,6,9 *\"\n    duration_hours: 120",
        "cron: \"0 0 0 30 11 *\"\n    duration_hours: 48",
    );
    repo.commit_all("a freeze over the first of December");
    let freeze_end = at("2026-12-02T00:00:00Z");
    let mut config = daemon_config(&repo);
    config.poll_interval = std::time::Duration::from_secs(3 * 365 * 24 * 3600);
    let mut daemon = Daemon::open(config).expect("daemon");
    daemon.wake(now()).await;
    assert_eq!(decision(&daemon, "chrome-131-finance"), "ALLOW");
    let intune = daemon
        .planes()
        .and_then(|planes| planes.sim(ringmaster::model::Plane::Intune))
        .cloned()
        .expect("simulated intune");
    let chrome = ringmaster::store::correlation_id_for("chrome-131-finance");
    assert_eq!(
        intune.assignment_count(&chrome),
        0,
        "the freeze holds ring 0"
    );
    assert_eq!(
        daemon
            .store()
            .rules_state("main")
            .expect("store")
            .and_then(|state| state.rejudge_at),
        Some(freeze_end),
        "the judge put the freeze's end in the schedule"
    );
    assert_eq!(daemon.next_deadline(now()), freeze_end);
    let head = repo.git(&["rev-parse", "HEAD"]);

    daemon.wake(freeze_end - Duration::seconds(1)).await;
    assert_eq!(intune.assignment_count(&chrome), 0, "still frozen");
    daemon.wake(freeze_end).await;
    assert!(
        intune.assignment_count(&chrome) > 0,
        "ring 0 started when the freeze ended"
    );
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "no commit came");
}

fn phase(daemon: &Daemon, intent: &str) -> Option<ringmaster::orchestrator::Phase> {
    let record = daemon.store().get_intent(intent).expect("store")?;
    ringmaster::daemon::rollout::IntentState::from_record(&record)
        .run
        .map(|run| run.phase)
}

/// Whether `intent`'s run has started `ring` (or a later one).
fn reached(daemon: &Daemon, intent: &str, ring: &str) -> bool {
    daemon
        .store()
        .events(&ringmaster::store::EventFilter {
            intent_id: Some(intent.into()),
            ..Default::default()
        })
        .expect("events")
        .iter()
        .any(|event| {
            event.event_type == ringmaster::store::EventType::RingStarted
                && event.ring.as_deref() == Some(ring)
        })
}

/// Runs the sample tenant hour by hour from NOW for three days, with the
/// record `file`'s expiry set to `expiry` (in the root commit: trusted),
/// and says whether `intent` started `ring` (the ring after the lapse).
/// In the unchanged sample the VPN and the benefits rollouts are in
/// ring-1-canary from 04:00 on Dec 1 and start ring-2-pilot at 04:00 on
/// Dec 2.
async fn rollout_with_expiry(
    file: &str,
    expiry: Option<&str>,
    intent: &str,
    ring: &str,
) -> (Daemon, bool) {
    let repo = TestRepo::sample();
    if let Some(expiry) = expiry {
        let text = repo.read(file);
        let old = text
            .lines()
            .find(|line| line.starts_with("expiry:"))
            .expect("an expiry line")
            .to_owned();
        repo.edit(file, &old, &format!("expiry: \"{expiry}\""));
        repo.commit_all("a record that lapses mid-rollout");
    }
    let mut daemon = Daemon::open(daemon_config(&repo)).expect("daemon");
    let mut t = now();
    let end = now() + Duration::days(3);
    while t <= end {
        daemon.step(t).await.expect("step");
        t += Duration::hours(1);
    }
    let started = reached(&daemon, intent, ring);
    // `repo` lives as long as the daemon needs it only within this call.
    drop(repo);
    (daemon, started)
}

/// An approval that lapses while the rollout runs holds it before the
/// next ring that needs it: the VPN's CAB approval is needed from
/// ring-2-pilot; it lapses at noon on Dec 1, inside ring-1-canary, and
/// ring-2-pilot never starts (with the approval unchanged it starts on
/// Dec 2). No commit comes in between.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_expiring_mid_rollout_holds_the_run_before_the_cab_ring() {
    let (control, started) = rollout_with_expiry(
        "approvals/cab-2026-0142.yaml",
        None,
        "vpn-6.2.1-finance",
        "ring-2-pilot",
    )
    .await;
    assert!(
        started,
        "control: {:?}",
        phase(&control, "vpn-6.2.1-finance")
    );
    let (daemon, started) = rollout_with_expiry(
        "approvals/cab-2026-0142.yaml",
        Some("2026-12-01T12:00:00Z"),
        "vpn-6.2.1-finance",
        "ring-2-pilot",
    )
    .await;
    assert!(
        !started,
        "ring-2-pilot started on a lapsed CAB approval: {:?}",
        phase(&daemon, "vpn-6.2.1-finance")
    );
    assert_eq!(decision(&daemon, "vpn-6.2.1-finance"), "REQUIRE_APPROVAL");
    assert!(
        reached(&daemon, "vpn-6.2.1-finance", "ring-1-canary"),
        "the rings before the lapse ran"
    );
    assert!(
        matches!(
            phase(&daemon, "vpn-6.2.1-finance"),
            Some(ringmaster::orchestrator::Phase::AwaitingApproval { ref ring, .. }) if ring == "ring-2-pilot"
        ),
        "held before ring-2-pilot: {:?}",
        phase(&daemon, "vpn-6.2.1-finance")
    );
}

/// The same for a security exception: the benefits package's exception
/// lapses at noon on Dec 1 (in ring-1-canary) and ring-2-pilot never starts.
#[tokio::test(flavor = "multi_thread")]
async fn an_exception_expiring_mid_rollout_holds_the_run_before_the_next_ring() {
    let (daemon, started) = rollout_with_expiry(
        "exceptions/exc-2026-0031.yaml",
        Some("2026-12-01T12:00:00Z"),
        "benefits-3.4.2-hr",
        "ring-2-pilot",
    )
    .await;
    assert!(
        !started,
        "ring-2-pilot started on a lapsed exception: {:?}",
        phase(&daemon, "benefits-3.4.2-hr")
    );
    assert_eq!(decision(&daemon, "benefits-3.4.2-hr"), "REQUIRE_EXCEPTION");
    assert!(reached(&daemon, "benefits-3.4.2-hr", "ring-1-canary"));
    assert!(
        matches!(
            phase(&daemon, "benefits-3.4.2-hr"),
            Some(ringmaster::orchestrator::Phase::AwaitingApproval { ref ring, .. }) if ring == "ring-2-pilot"
        ),
        "held before ring-2-pilot: {:?}",
        phase(&daemon, "benefits-3.4.2-hr")
    );
}
