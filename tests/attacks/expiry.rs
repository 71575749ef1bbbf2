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
            .any(|e| e["reason"] == "an approval or exception expired"),
        "an event says why it was judged again"
    );

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
