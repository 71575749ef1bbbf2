//! The journal: what it holds survives a restart, and a crash on either side
//! of the request is settled by the next call without a second activity.

use super::super::journal::{ChangeKind, Journal, JournalActivity, PendingChange};
use super::super::plane;
use super::{CANARY, CORRELATION, KIOSKS, PACKAGE, VERSION, account, at, request};
use crate::planes::ExecutionPlaneConnector;
use crate::planes::ledger::Ledger;

fn change() -> PendingChange {
    PendingChange {
        ring: "ring-1-canary".into(),
        group: CANARY.into(),
        kind: ChangeKind::Install,
        package: PACKAGE.into(),
        version: Some(VERSION.into()),
        query: format!("tag:{CANARY} NOT tag:{KIOSKS}"),
    }
}

fn ledger() -> Ledger {
    let mut ledger = Ledger::new(CORRELATION, PACKAGE, VERSION);
    ledger.record_ring("ring-1-canary", &[CANARY.into()], &[KIOSKS.into()]);
    ledger
}

#[test]
fn the_journal_survives_a_restart() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("journal.sqlite");
    let recorded = JournalActivity {
        activity_id: 4711,
        change: change(),
        created_at: Some("2026-01-05T09:00:00Z".into()),
    };
    let mut removal = change();
    removal.kind = ChangeKind::Remove;
    removal.version = None;
    {
        let journal = Journal::open(&path).expect("journal");
        journal.add_pending(&ledger(), &change()).expect("pending");
        journal.record(&ledger(), &recorded).expect("record");
        journal
            .add_pending(&ledger(), &removal)
            .expect("pending removal");
    }
    let journal = Journal::open(&path).expect("journal again");
    let entry = journal.load(CORRELATION).expect("load").expect("entry");
    assert_eq!(entry.ledger, ledger());
    assert_eq!(entry.activities, vec![recorded]);
    assert_eq!(
        entry.pending,
        vec![removal],
        "the install's pending row went with its record"
    );
    assert!(journal.is_claimed(4711).expect("claimed"));
    assert!(!journal.is_claimed(4712).expect("not claimed"));
    assert_eq!(entry.first_created(), Some("2026-01-05T09:00:00Z"));
    assert!(
        journal
            .load("00000000-0000-5000-8000-000000000000")
            .expect("load")
            .is_none()
    );
}

#[test]
fn saving_an_unchanged_ledger_says_so() {
    let directory = tempfile::tempdir().expect("temp dir");
    let journal = Journal::open(&directory.path().join("journal.sqlite")).expect("journal");
    assert!(journal.save_ledger(&ledger()).expect("first"));
    assert!(!journal.save_ledger(&ledger()).expect("again"));
    let mut pinned = ledger();
    pinned.pinned_ring = Some("ring-1-canary".into());
    assert!(journal.save_ledger(&pinned).expect("pinned"));
}

/// The request reached Landscape, then the daemon died before writing the
/// activity id: the restarted daemon finds the activity instead of sending a
/// second `InstallPackages`.
#[tokio::test]
async fn a_crash_between_the_request_and_the_journal_write_is_found_by_the_retry() {
    let account = account().await;
    let journal = account.connector.journal();
    journal.add_pending(&ledger(), &change()).expect("pending");
    let sent = plane::request_change(account.connector.client(), &change())
        .await
        .expect("the request lands");
    drop(account.connector.clone());

    let restarted = account.restarted();
    assert!(
        restarted
            .verify_idempotency(CORRELATION, at(1))
            .await
            .expect("verify"),
        "the pending change is found on the plane"
    );
    let retry = restarted.publish(&request(), at(2)).await.expect("retry");
    assert!(!retry.created, "nothing new was sent");
    assert_eq!(account.simulator.install_activities(PACKAGE, VERSION), 1);
    let entry = restarted
        .journal()
        .load(CORRELATION)
        .expect("load")
        .expect("entry");
    assert_eq!(
        entry
            .activities
            .iter()
            .map(|activity| activity.activity_id)
            .collect::<Vec<_>>(),
        vec![sent.id]
    );
    assert!(entry.pending.is_empty());
}

/// The daemon died after writing the pending row but before sending: the
/// retry finds nothing on the plane and sends the request once.
#[tokio::test]
async fn a_crash_before_the_request_sends_it_once_on_retry() {
    let account = account().await;
    account
        .connector
        .journal()
        .add_pending(&ledger(), &change())
        .expect("pending");
    let restarted = account.restarted();
    let retry = restarted.publish(&request(), at(1)).await.expect("retry");
    assert!(retry.created);
    let replay = restarted.publish(&request(), at(2)).await.expect("replay");
    assert!(!replay.created);
    assert_eq!(account.simulator.install_activities(PACKAGE, VERSION), 1);
}

/// An activity another deployment already owns is never adopted by a search.
#[tokio::test]
async fn a_search_skips_activities_the_journal_already_owns() {
    let account = account().await;
    let journal = account.connector.journal();
    let other = plane::request_change(account.connector.client(), &change())
        .await
        .expect("someone's activity");
    let mut other_ledger = Ledger::new("0b6d3f7a-2c4e-5f81-a9b0-c1d2e3f40516", PACKAGE, VERSION);
    other_ledger.record_ring("ring-1-canary", &[CANARY.into()], &[]);
    journal
        .record(
            &other_ledger,
            &JournalActivity {
                activity_id: other.id,
                change: change(),
                created_at: other.creation_time.clone(),
            },
        )
        .expect("owned by another deployment");
    let found = plane::recover(account.connector.client(), journal, &change())
        .await
        .expect("search");
    assert_eq!(found, None);
}
