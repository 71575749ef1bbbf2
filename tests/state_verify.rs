//! The event store verifies like the evidence branch: `verify --state`
//! checks the whole event hash chain and the anchor of the event log in the
//! signed evidence packs, so every tamper with the SQLite file — done here
//! with real SQL by an attacker who drops the append-only triggers, edits,
//! and puts the triggers back — fails; `events` exits non-zero on a broken
//! chain; a missing or empty state directory is an error and is never
//! created; and a rewound evidence branch is refused before anything is
//! signed.

mod support;

use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use support::{TestRepo, ringmaster, stderr, stdout};

struct Setup {
    repo: TestRepo,
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Setup {
    /// The sample tenant processed once: decisions and ring transitions on
    /// the evidence branch, events in the store, packs anchoring the log.
    fn processed() -> Setup {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        let output = ringmaster(&["keygen", "--out", path(keys.path())], keys.path());
        assert!(output.status.success(), "{}", stderr(&output));
        let setup = Setup {
            repo,
            keys,
            state: tempfile::tempdir().expect("state"),
        };
        let output = setup.serve_once();
        assert!(
            output.status.success(),
            "{}{}",
            stdout(&output),
            stderr(&output)
        );
        setup
    }

    fn serve_once(&self) -> std::process::Output {
        let key = self.keys.path().join("ringmaster.key");
        ringmaster(
            &[
                "serve",
                "--repo",
                path(&self.repo.path),
                "--state",
                path(self.state.path()),
                "--key",
                path(&key),
                "--config",
                path(&support::sim_planes_config(self.keys.path())),
                "--once",
            ],
            &self.repo.path,
        )
    }

    fn verify_state(&self, state: &Path) -> std::process::Output {
        let public_key = self.keys.path().join("ringmaster.pub");
        ringmaster(
            &[
                "verify",
                path(&self.repo.path),
                "--public-key",
                path(&public_key),
                "--state",
                path(state),
            ],
            &self.repo.path,
        )
    }

    fn database(&self) -> PathBuf {
        self.state.path().join("ringmaster.db")
    }

    /// The anchor of the last evidence pack that has one: (seq, hash).
    fn last_anchor(&self) -> (i64, String) {
        let listing = self.repo.git(&["ls-tree", "-r", "--name-only", "evidence"]);
        let mut anchors: Vec<(u64, i64, String)> = listing
            .lines()
            .filter(|file| file.ends_with(".json"))
            .filter_map(|file| {
                let pack: serde_json::Value =
                    serde_json::from_str(&self.repo.git(&["show", &format!("evidence:{file}")]))
                        .expect("pack");
                let anchor = pack.get("event_chain")?;
                Some((
                    pack["sequence"].as_u64().expect("sequence"),
                    anchor["seq"].as_i64().expect("seq"),
                    anchor["hash"].as_str().expect("hash").to_owned(),
                ))
            })
            .collect();
        anchors.sort();
        let (_, seq, hash) = anchors.pop().expect("packs anchor the event log");
        (seq, hash)
    }

    /// Runs `sql` on the state database as an attacker with file access:
    /// drops the append-only triggers first and puts them back after.
    fn tamper(&self, sql: &str) {
        self.tamper_and(sql, false)
    }

    /// [`Self::tamper`], then recomputes every hash of the chain (`rechain`).
    fn tamper_and_rechain(&self, sql: &str) {
        self.tamper_and(sql, true)
    }

    fn tamper_and(&self, sql: &str, recompute: bool) {
        let connection = Connection::open(self.database()).expect("open");
        let triggers: Vec<String> = connection
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'")
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("triggers");
        assert_eq!(triggers.len(), 3, "the append-only triggers are there");
        connection
            .execute_batch(
                "DROP TRIGGER events_refuse_update; DROP TRIGGER events_refuse_delete;
                 DROP TRIGGER events_append_at_the_end;",
            )
            .expect("drop triggers");
        connection.execute_batch(sql).expect("tamper");
        if recompute {
            rechain(&connection);
        }
        for trigger in triggers {
            connection.execute_batch(&trigger).expect("restore trigger");
        }
    }

    fn event_count(&self) -> i64 {
        Connection::open(self.database())
            .expect("open")
            .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .expect("count")
    }
}

fn assert_fails(output: &std::process::Output, needle: &str) {
    let text = format!("{}{}", stdout(output), stderr(output));
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// The stored text of an event's columns, hashed as `store::events` does.
fn event_hash(row: &rusqlite::Row<'_>) -> String {
    let text = |name: &str| row.get::<_, Option<String>>(name).expect(name);
    let details: serde_json::Value =
        serde_json::from_str(&text("details").expect("details")).expect("details json");
    let value = serde_json::json!({
        "seq": row.get::<_, i64>("seq").expect("seq"),
        "event_id": text("event_id"),
        "correlation_id": text("correlation_id"),
        "intent_id": text("intent_id"),
        "event_type": text("event_type"),
        "timestamp": text("timestamp"),
        "actor": text("actor"),
        "actor_role": text("actor_role"),
        "execution_plane": text("execution_plane"),
        "ring": text("ring"),
        "outcome": text("outcome"),
        "details": details,
        "prev_hash": text("prev_hash"),
    });
    hex::encode(Sha256::digest(
        ringmaster::store::canonical_json(&value).as_bytes(),
    ))
}

/// Recomputes every `prev_hash` and `hash` so the chain alone checks out
/// again, as a careful attacker would after an edit.
fn rechain(connection: &Connection) {
    let seqs: Vec<i64> = connection
        .prepare("SELECT seq FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut previous = "0".repeat(64);
    for seq in seqs {
        connection
            .execute(
                "UPDATE events SET prev_hash = ?1 WHERE seq = ?2",
                rusqlite::params![previous, seq],
            )
            .unwrap();
        let hash = connection
            .query_row("SELECT * FROM events WHERE seq = ?1", [seq], |row| {
                Ok(event_hash(row))
            })
            .unwrap();
        connection
            .execute(
                "UPDATE events SET hash = ?1 WHERE seq = ?2",
                rusqlite::params![hash, seq],
            )
            .unwrap();
        previous = hash;
    }
}

#[test]
fn an_untouched_state_verifies_and_packs_anchor_the_event_log() {
    let setup = Setup::processed();
    let output = setup.verify_state(setup.state.path());
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("hash chain intact, anchored by evidence record"));
    let (seq, _) = setup.last_anchor();
    assert!(seq >= 1 && seq <= setup.event_count());
}

#[test]
fn an_edited_event_fails_verify_state() {
    let setup = Setup::processed();
    setup.tamper("UPDATE events SET actor = 'mallory' WHERE seq = 3;");
    assert_fails(&setup.verify_state(setup.state.path()), "it was edited");
}

#[test]
fn an_edited_event_with_every_hash_recomputed_fails_against_the_anchor() {
    let setup = Setup::processed();
    setup.tamper_and_rechain("UPDATE events SET actor = 'mallory' WHERE seq = 2;");
    assert_fails(
        &setup.verify_state(setup.state.path()),
        "the log was rewritten",
    );
}

#[test]
fn a_deleted_event_fails_verify_state() {
    let setup = Setup::processed();
    setup.tamper("DELETE FROM events WHERE seq = 4;");
    assert_fails(
        &setup.verify_state(setup.state.path()),
        "event 4 is missing",
    );
}

#[test]
fn a_deleted_event_with_the_chain_renumbered_fails_against_the_anchor() {
    let setup = Setup::processed();
    setup.tamper_and_rechain(
        "DELETE FROM events WHERE seq = 4; UPDATE events SET seq = seq - 1 WHERE seq > 4;",
    );
    assert_fails(&setup.verify_state(setup.state.path()), "event log:");
}

#[test]
fn a_truncated_event_log_fails_verify_state() {
    let setup = Setup::processed();
    let (anchored, _) = setup.last_anchor();
    setup.tamper(&format!("DELETE FROM events WHERE seq >= {anchored};"));
    assert_fails(
        &setup.verify_state(setup.state.path()),
        "events were removed",
    );
}

#[test]
fn an_emptied_event_log_fails_verify_state() {
    let setup = Setup::processed();
    setup.tamper("DELETE FROM events;");
    assert_eq!(setup.event_count(), 0);
    assert_fails(
        &setup.verify_state(setup.state.path()),
        "events were removed",
    );
}

#[test]
fn dropped_triggers_fail_verify_state_and_events() {
    let setup = Setup::processed();
    Connection::open(setup.database())
        .unwrap()
        .execute_batch("DROP TRIGGER events_refuse_delete;")
        .unwrap();
    assert_fails(
        &setup.verify_state(setup.state.path()),
        "append-only were dropped",
    );
}

#[test]
fn events_exits_non_zero_on_a_broken_chain() {
    let setup = Setup::processed();
    for format in ["human", "json"] {
        let output = ringmaster(
            &[
                "events",
                "--state",
                path(setup.state.path()),
                "--format",
                format,
            ],
            &setup.repo.path,
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    setup.tamper(
        "UPDATE events SET outcome = 'success' WHERE seq = 1 AND outcome != 'success';
                  UPDATE events SET details = '{}' WHERE seq = 2;",
    );
    for format in ["human", "json"] {
        let output = ringmaster(
            &[
                "events",
                "--state",
                path(setup.state.path()),
                "--format",
                format,
            ],
            &setup.repo.path,
        );
        assert_eq!(output.status.code(), Some(1), "--format {format}");
        assert!(
            stderr(&output).contains("event chain BROKEN"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_missing_or_empty_state_directory_is_an_error_and_is_never_created() {
    let setup = Setup::processed();
    let scratch = tempfile::tempdir().expect("scratch");
    let missing = scratch.path().join("no-such-state");
    let output = setup.verify_state(&missing);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(!missing.exists(), "verify never creates a state directory");

    let empty_dir = scratch.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let output = setup.verify_state(&empty_dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(!empty_dir.join("ringmaster.db").exists(), "nor a database");

    std::fs::write(empty_dir.join("ringmaster.db"), b"").unwrap();
    let output = setup.verify_state(&empty_dir);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("is empty"), "{}", stderr(&output));

    let output = ringmaster(&["events", "--state", path(&missing)], &setup.repo.path);
    assert_eq!(output.status.code(), Some(2));
    assert!(!missing.exists());
}

#[test]
fn a_rewound_evidence_branch_is_refused_before_anything_is_signed() {
    let setup = Setup::processed();
    let records: Vec<String> = setup
        .repo
        .git(&["rev-list", "evidence"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(records.len() > 2);
    // Rewind the branch by one record, as a force-push or a stray
    // `git update-ref` would, then give the daemon something to record.
    setup
        .repo
        .git(&["update-ref", "refs/heads/evidence", &records[1]]);
    setup.repo.edit(
        "intents/osquery-6.0.0-it.yaml",
        "Major release",
        "A major release",
    );
    setup.repo.commit_all("reword the osquery intent");
    let output = setup.serve_once();
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("no longer holds record"), "{text}");
    assert!(text.contains("Nothing was signed"), "{text}");
    assert_eq!(
        setup.repo.git(&["rev-parse", "evidence"]),
        records[1],
        "nothing was appended on the rewound branch"
    );
}
