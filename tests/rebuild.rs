//! Disaster recovery with real parts: a real Git repository with its
//! evidence branch, real SQLite files, the real binary (`serve --once`,
//! `rebuild`, `backup`, `restore`, `verify --state`) and simulated planes
//! whose fleets live outside the state directory (the planes survive the
//! loss of the control plane's machine; their publish calls are counted).

mod support;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use ringmaster::planes::sim::SimConnector;
use ringmaster::store::Store;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use support::{TestRepo, stderr, stdout};

const PLANES: [&str; 5] = ["intune", "jamf", "sccm", "landscape", "ansible"];
const CHROME: &str = "chrome-131-finance";

fn at_hours(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .single()
        .expect("date")
        + Duration::hours(hours)
}

/// The instants the story is stepped at (a daemon run per instant).
const TIMELINE: [i64; 14] = [0, 0, 5, 6, 24, 30, 48, 54, 72, 96, 120, 168, 240, 336];

/// Per plane: its name, the publish calls it received, and the
/// assignments it holds per intent.
type PlaneActions = Vec<(String, u64, Vec<(String, usize)>)>;

/// One tenant, its keys, its planes (outside the state directory) and the
/// state directory, driven through the binary.
struct Site {
    repo: TestRepo,
    keys: tempfile::TempDir,
    planes: tempfile::TempDir,
    state: PathBuf,
    _state_parent: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    fn new() -> Site {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
        let planes = tempfile::tempdir().expect("planes");
        let state_parent = tempfile::tempdir().expect("state");
        let state = state_parent.path().join("state");
        let config = keys.path().join("daemon.yaml");
        let mut yaml = String::from("planes:\n");
        for plane in PLANES {
            yaml.push_str(&format!(
                "  {plane}: {{type: sim, seed: 11, default_success_rate: 1.0, install_delay_seconds: [300, 3600], state_file: {}}}\n",
                planes.path().join(format!("{plane}.json")).display()
            ));
        }
        std::fs::write(&config, yaml).expect("config");
        Site {
            repo,
            keys,
            planes,
            state,
            _state_parent: state_parent,
            config,
        }
    }

    fn binary(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmaster"));
        command.current_dir(&self.repo.path).stdin(Stdio::null());
        command
    }

    fn public_key(&self) -> PathBuf {
        self.keys.path().join("ringmaster.pub")
    }

    fn serve(&self, now: DateTime<Utc>) -> Output {
        self.binary()
            .arg("serve")
            .arg("--repo")
            .arg(&self.repo.path)
            .arg("--state")
            .arg(&self.state)
            .arg("--key")
            .arg(self.keys.path().join("ringmaster.key"))
            .arg("--config")
            .arg(&self.config)
            .arg("--once")
            .arg("--now")
            .arg(now.to_rfc3339())
            .output()
            .expect("serve runs")
    }

    fn run(&self, now: DateTime<Utc>) {
        let output = self.serve(now);
        assert!(
            output.status.success(),
            "serve --once at {now}: {}{}",
            stdout(&output),
            stderr(&output)
        );
    }

    fn rebuild(&self, extra: &[&str], now: DateTime<Utc>) -> Output {
        self.binary()
            .arg("rebuild")
            .arg("--repo")
            .arg(&self.repo.path)
            .arg("--state")
            .arg(&self.state)
            .arg("--public-key")
            .arg(self.public_key())
            .arg("--key")
            .arg(self.keys.path().join("ringmaster.key"))
            .arg("--config")
            .arg(&self.config)
            .arg("--now")
            .arg(now.to_rfc3339())
            .args(extra)
            .output()
            .expect("rebuild runs")
    }

    fn verify(&self) -> Output {
        self.binary()
            .arg("verify")
            .arg(&self.repo.path)
            .arg("--public-key")
            .arg(self.public_key())
            .arg("--state")
            .arg(&self.state)
            .output()
            .expect("verify runs")
    }

    fn store(&self) -> Store {
        Store::open_existing(&self.state.join("ringmaster.db")).expect("store")
    }

    fn sim(&self, plane: &str) -> Option<SimConnector> {
        let file = self.planes.path().join(format!("{plane}.json"));
        file.exists()
            .then(|| SimConnector::load(&file).expect("fleet state"))
    }

    /// Chrome 131 fails on most devices: its Canary gate rolls it back.
    fn make_chrome_fail(&self) {
        self.sim("intune")
            .expect("intune fleet")
            .set_success_rate("google-chrome", "131.0.6778", 0.2)
            .expect("rate");
    }

    /// Every intent's phase.
    fn phases(&self) -> Vec<(String, String)> {
        self.store()
            .list_intents()
            .expect("intents")
            .into_iter()
            .map(|record| (record.intent_id, record.state))
            .collect()
    }

    /// The evidence branch's records, oldest first, as their subjects
    /// without the sequence (`evidence: <type> <intent>`).
    fn evidence(&self) -> Vec<String> {
        let log = self
            .repo
            .git(&["log", "--reverse", "--format=%s", "evidence"]);
        log.lines()
            .map(|subject| {
                subject
                    .rsplit_once(" #")
                    .map_or(subject, |(text, _)| text)
                    .to_owned()
            })
            .collect()
    }

    /// Per plane: publish calls received, and assignments held per intent.
    fn plane_actions(&self) -> PlaneActions {
        let intents: Vec<(String, String)> = self
            .store()
            .list_intents()
            .expect("intents")
            .into_iter()
            .map(|record| (record.intent_id, record.correlation_id))
            .collect();
        PLANES
            .iter()
            .filter_map(|plane| {
                let sim = self.sim(plane)?;
                let held = intents
                    .iter()
                    .map(|(intent, correlation)| {
                        (intent.clone(), sim.assignment_count(correlation))
                    })
                    .filter(|(_, count)| *count > 0)
                    .collect();
                Some((plane.to_string(), sim.publish_calls(), held))
            })
            .collect()
    }

    fn lose_the_state(&self) {
        std::fs::remove_dir_all(&self.state).expect("the state directory is gone");
    }
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        stdout(output),
        stderr(output)
    );
}

/// The DR story: half way through the sample tenant's rollouts (rings
/// completed, Chrome 131 rolled back at its Canary gate), the state
/// directory is lost; `rebuild` makes it again from the evidence branch and
/// the planes; the story goes on to its end. The result is the twin run's,
/// which was never interrupted: the same phases, the same evidence records
/// in the same order, the same assignments, and not one publish call more.
#[test]
fn a_rebuilt_store_finishes_the_story_like_an_uninterrupted_twin() {
    let twin = Site::new();
    let lost = Site::new();
    let half = 8; // through hour 54: rings completed, chrome rolled back
    for (index, hours) in TIMELINE.iter().enumerate() {
        for site in [&twin, &lost] {
            site.run(at_hours(*hours));
            if index == 0 {
                site.make_chrome_fail();
            }
        }
        if index + 1 == half {
            // The store holds completed rings and a rolled-back version.
            let phases = lost.phases();
            assert!(
                phases
                    .iter()
                    .any(|(intent, phase)| intent == CHROME && phase == "rolled_back"),
                "chrome rolled back before the disaster: {phases:?}"
            );
            assert!(
                phases.iter().any(|(_, phase)| phase.starts_with("ring_")),
                "rollouts are under way: {phases:?}"
            );
            let before = lost.phases();
            let actions_before = lost.plane_actions();
            lost.lose_the_state();
            // A daemon started on an empty store beside the branch refuses.
            let refused = lost.serve(at_hours(*hours));
            assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
            assert!(
                stderr(&refused).contains("ringmaster rebuild"),
                "{}",
                stderr(&refused)
            );
            let rebuilt = lost.rebuild(&[], at_hours(*hours));
            assert_ok(&rebuilt, "rebuild");
            let summary = stdout(&rebuilt);
            assert!(summary.contains("rebuilt from"), "{summary}");
            assert!(
                summary.contains("chrome@131.0.6778")
                    || summary.contains("google-chrome@131.0.6778"),
                "the rolled-back version is blocked: {summary}"
            );
            // Every run is where it was; a run that never wrote a record
            // (waiting for an approval from its first pass) is made again
            // by the daemon's next pass from its verdict, as at its start.
            let after = lost.phases();
            assert_eq!(after.len(), before.len());
            for ((intent, was), (_, now)) in before.iter().zip(&after) {
                assert!(
                    was == now || (now == "risk_assessed" && was == "awaiting_approval"),
                    "{intent}: {was} before, {now} after the rebuild"
                );
            }
            assert_eq!(
                lost.plane_actions(),
                actions_before,
                "rebuild sends nothing"
            );
            assert_ok(&lost.verify(), "verify --state after the rebuild");
            // A second rebuild into the rebuilt store is refused.
            let again = lost.rebuild(&[], at_hours(*hours));
            assert_eq!(again.status.code(), Some(2), "{}", stdout(&again));
            assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
        }
    }
    assert_eq!(lost.phases(), twin.phases(), "the same final state");
    assert!(
        twin.phases().iter().any(|(_, phase)| phase == "completed"),
        "the story reached its end: {:?}",
        twin.phases()
    );
    // The same records in the same order, and one more: the rebuild's own.
    let mut records = lost.evidence();
    let rebuild_record = records
        .iter()
        .position(|subject| subject == "evidence: operator_action")
        .expect("the rebuild is a record");
    records.remove(rebuild_record);
    assert_eq!(records, twin.evidence(), "the same evidence records");
    assert_eq!(
        lost.plane_actions(),
        twin.plane_actions(),
        "no plane action twice: publish calls and assignments as in the twin"
    );
    assert_ok(&lost.verify(), "verify --state at the end");
}

/// A branch with a forged record is refused, and nothing is written.
#[test]
fn rebuild_refuses_a_tampered_evidence_branch() {
    let site = Site::new();
    site.run(at_hours(0));
    site.run(at_hours(5));
    // Edit the newest pack on a worktree of the evidence branch and commit.
    let worktree = site.keys.path().join("evidence-worktree");
    site.repo.git(&[
        "worktree",
        "add",
        "-q",
        worktree.to_str().expect("utf-8"),
        "evidence",
    ]);
    let pack = site.repo.git(&[
        "log",
        "-1",
        "--format=%(trailers:key=Evidence-Path,valueonly)",
        "evidence",
    ]);
    let file = worktree.join(pack.trim());
    let text = std::fs::read_to_string(&file).expect("pack");
    std::fs::write(&file, text.replacen("ring", "rinq", 1)).expect("forge");
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=Mallory",
                "-c",
                "user.email=m@example.invalid",
            ])
            .args(args)
            .current_dir(&worktree)
            .output()
            .expect("git");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    git(&["commit", "-qam", "edit"]);
    site.lose_the_state();
    let refused = site.rebuild(&[], at_hours(5));
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}{}",
        stdout(&refused),
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("does not verify"),
        "{}",
        stderr(&refused)
    );
    let store = site.store();
    assert!(store.list_intents().expect("intents").is_empty());
    assert!(store.evidence_head().expect("head").is_none());
}

/// A backup restored after the daemon went on is behind the branch:
/// `verify --state` names both sequences and `rebuild`, the daemon refuses
/// to start on it, and `rebuild --catch-up` brings it forward; the rollout
/// then goes on without a publish call twice.
#[test]
fn a_restored_store_behind_the_branch_is_named_and_caught_up() {
    let site = Site::new();
    site.run(at_hours(0));
    let backup = site.keys.path().join("state.backup");
    let taken = site
        .binary()
        .arg("backup")
        .arg("--state")
        .arg(&site.state)
        .arg("--out")
        .arg(&backup)
        .output()
        .expect("backup");
    assert_ok(&taken, "backup");
    site.run(at_hours(5));
    site.run(at_hours(6));
    let head = site
        .store()
        .evidence_head()
        .expect("head")
        .expect("some")
        .sequence;
    let actions = site.plane_actions();
    let restore = |force: bool| {
        let mut command = site.binary();
        command
            .arg("restore")
            .arg("--from")
            .arg(&backup)
            .arg("--state")
            .arg(&site.state);
        if force {
            command.arg("--force");
        }
        command.output().expect("restore")
    };
    let refused = restore(false);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert_ok(&restore(true), "restore --force");
    let restored = site
        .store()
        .evidence_head()
        .expect("head")
        .expect("some")
        .sequence;
    assert!(
        restored < head,
        "the backup is older: #{restored} < #{head}"
    );

    let verify = site.verify();
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    let text = stdout(&verify);
    assert!(text.contains("BEHIND"), "{text}");
    assert!(text.contains(&format!("#{restored}")), "{text}");
    assert!(text.contains(&format!("#{head}")), "{text}");
    assert!(text.contains("rebuild"), "{text}");
    let serve = site.serve(at_hours(6));
    assert_eq!(serve.status.code(), Some(2), "{}", stderr(&serve));
    assert!(stderr(&serve).contains("BEHIND"), "{}", stderr(&serve));

    let caught_up = site.rebuild(&["--catch-up"], at_hours(6));
    assert_ok(&caught_up, "rebuild --catch-up");
    assert!(
        stdout(&caught_up).contains(&format!("caught up from record #{restored}")),
        "{}",
        stdout(&caught_up)
    );
    assert_eq!(
        site.store()
            .evidence_head()
            .expect("head")
            .expect("some")
            .sequence,
        head + 1,
        "the store knows every record, and the record of its catch-up"
    );
    assert_ok(&site.verify(), "verify --state after the catch-up");
    assert_eq!(site.plane_actions(), actions, "the catch-up sends nothing");
    for hours in [6, 24, 30] {
        site.run(at_hours(hours));
    }
    // Rings published before the backup were not published again.
    for (plane, _, held) in site.plane_actions() {
        for (intent, count) in held {
            let before = actions
                .iter()
                .find(|(p, _, _)| *p == plane)
                .and_then(|(_, _, held)| held.iter().find(|(i, _)| *i == intent))
                .map_or(0, |(_, count)| *count);
            assert!(count >= before, "{intent} on {plane}");
        }
    }
    assert_ok(&site.verify(), "verify --state after going on");
}

/// Backups taken while a daemon writes the store are consistent copies:
/// each one opens, passes quick_check, and restores into a store that
/// `verify --state` accepts once caught up.
#[test]
fn backups_taken_while_the_daemon_writes_restore_and_verify() {
    let site = Site::new();
    site.run(at_hours(0));
    let mut daemon = site
        .binary()
        .arg("serve")
        .arg("--repo")
        .arg(&site.repo.path)
        .arg("--state")
        .arg(&site.state)
        .arg("--key")
        .arg(site.keys.path().join("ringmaster.key"))
        .arg("--config")
        .arg(&site.config)
        .arg("--once")
        .arg("--now")
        .arg(at_hours(30).to_rfc3339())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut backups = Vec::new();
    loop {
        let out = site.keys.path().join(format!("backup-{}", backups.len()));
        let taken = site
            .binary()
            .arg("backup")
            .arg("--state")
            .arg(&site.state)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("backup");
        assert_ok(&taken, "backup while the daemon runs");
        backups.push(out);
        if daemon.try_wait().expect("wait").is_some() {
            break;
        }
    }
    assert!(daemon.wait().expect("daemon").success());
    for backup in &backups {
        let copy = site.keys.path().join("check.db");
        std::fs::copy(backup, &copy).expect("copy");
        let store = Store::open_existing(&copy).expect("a backup opens");
        store.quick_check().expect("a backup is consistent");
        assert!(
            store
                .verify_event_chain()
                .expect("chain")
                .first_break
                .is_none(),
            "a backup's event chain is whole"
        );
        drop(store);
        std::fs::remove_file(&copy).expect("rm");
    }
    let last = backups.last().expect("one backup at least");
    let restore = site
        .binary()
        .arg("restore")
        .arg("--from")
        .arg(last)
        .arg("--state")
        .arg(&site.state)
        .arg("--force")
        .output()
        .expect("restore");
    assert_ok(&restore, "restore");
    if !site.verify().status.success() {
        assert_ok(&site.rebuild(&["--catch-up"], at_hours(30)), "catch-up");
    }
    assert_ok(&site.verify(), "verify --state on the restored store");
}

/// `rebuild --store postgres://…`: the store made again in a new, empty
/// PostgreSQL database (a real server, started by the test harness); it
/// verifies, holds every intent where the lost SQLite store had it, and a
/// second rebuild into it is refused.
#[test]
fn rebuild_into_a_postgresql_store_verifies() {
    let site = Site::new();
    site.run(at_hours(0));
    site.run(at_hours(5));
    let before = site.phases();
    site.lose_the_state();
    let url = support::postgres::fresh_database();
    let rebuilt = site.rebuild(&["--store", &url], at_hours(5));
    assert_ok(&rebuilt, "rebuild --store postgres://");
    let store =
        Store::open_existing_location(&ringmaster::store::StoreLocation::parse(&url).expect("url"))
            .expect("the PostgreSQL store");
    let after: Vec<(String, String)> = store
        .list_intents()
        .expect("intents")
        .into_iter()
        .map(|record| (record.intent_id, record.state))
        .collect();
    for ((intent, was), (_, now)) in before.iter().zip(&after) {
        assert!(
            was == now || (now == "risk_assessed" && was == "awaiting_approval"),
            "{intent}: {was} before, {now} after the rebuild"
        );
    }
    assert_eq!(before.len(), after.len());
    drop(store);
    let verify = site
        .binary()
        .arg("verify")
        .arg(&site.repo.path)
        .arg("--public-key")
        .arg(site.public_key())
        .arg("--state")
        .arg(&site.state)
        .arg("--store")
        .arg(&url)
        .output()
        .expect("verify");
    assert_ok(&verify, "verify --state --store postgres://");
    let again = site.rebuild(&["--store", &url], at_hours(5));
    assert_eq!(again.status.code(), Some(2), "{}", stdout(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}
