//! The daemon with a WORM copy on a real local S3 server (moto): an outage
//! of the object store blocks publishing exactly like an unwritable
//! evidence branch, with a `publish_blocked` event; when the store is back
//! the next step copies what is missing and publishing resumes, without
//! any operator action; `verify --object-store` then finds bucket and
//! branch in agreement.

#[path = "worm/moto.rs"]
mod moto;
mod support;

use std::path::{Path, PathBuf};

use ringmaster::worm::{ImmutableStore, LockMode};
use support::{TestRepo, ringmaster, stderr, stdout};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

struct Setup {
    repo: TestRepo,
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(moto: &moto::Moto, bucket: &str) -> Setup {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        let output = ringmaster(&["keygen", "--out", path(keys.path())], keys.path());
        assert!(output.status.success(), "{}", stderr(&output));
        let state = tempfile::tempdir().expect("state");
        let credentials = keys.path().join("s3.credentials");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = AKIDRINGMASTERTEST\naws_secret_access_key = test-secret-never-logged\n",
        )
        .unwrap();
        let config = keys.path().join("daemon.yaml");
        std::fs::write(
            &config,
            format!(
                "planes:\n  intune: {{type: sim}}\n  jamf: {{type: sim}}\n  sccm: {{type: sim}}\n  landscape: {{type: sim}}\n  ansible: {{type: sim}}\nevidence_object_store:\n  url: {}\n  bucket: {bucket}\n  region: us-east-1\n  mode: compliance\n  retention_days: 2557\n  credentials_file: {}\n",
                moto.url(),
                path(&credentials)
            ),
        )
        .unwrap();
        Setup {
            repo,
            keys,
            state,
            config,
        }
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
                path(&self.config),
                "--once",
            ],
            &self.repo.path,
        )
    }

    fn events(&self) -> Vec<serde_json::Value> {
        let output = ringmaster(
            &[
                "events",
                "--state",
                path(self.state.path()),
                "--format",
                "json",
            ],
            &self.repo.path,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).expect("events JSON")
    }

    /// Records on the evidence branch (its packs: a commit may carry a
    /// batch of records).
    fn evidence_records(&self) -> usize {
        self.repo
            .git(&["ls-tree", "-r", "--name-only", "evidence"])
            .lines()
            .filter(|file| file.ends_with(".json"))
            .count()
    }

    fn verify_object_store(&self) -> std::process::Output {
        let public_key = self.keys.path().join("ringmaster.pub");
        ringmaster(
            &[
                "verify",
                path(&self.repo.path),
                "--public-key",
                path(&public_key),
                "--object-store-config",
                path(&self.config),
            ],
            &self.repo.path,
        )
    }
}

fn count(events: &[serde_json::Value], event_type: &str) -> usize {
    events
        .iter()
        .filter(|event| event["event_type"] == event_type)
        .count()
}

#[test]
fn an_object_store_outage_blocks_publishing_until_the_store_is_back() {
    let mut moto = moto::Moto::start();
    let port = moto.port;
    let scratch = tempfile::tempdir().unwrap();
    let setup = Setup::new(&moto, "daemon-evidence");
    moto::locked_bucket(
        &moto,
        "daemon-evidence",
        LockMode::Compliance,
        scratch.path(),
    );

    // The store goes down before the daemon writes its first record.
    moto.kill();
    let output = setup.serve_once();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(
        message.contains("not copied to the WORM store"),
        "{message}"
    );
    assert!(!message.contains("test-secret-never-logged"), "{message}");
    let events = setup.events();
    assert!(count(&events, "publish_blocked") >= 1, "{events:#?}");
    assert_eq!(count(&events, "ring_started"), 0, "nothing published");
    assert_eq!(
        count(&events, "commit_processed"),
        0,
        "the commit stays pending"
    );
    assert_eq!(
        setup.evidence_records(),
        1,
        "the record is committed, not counted as written"
    );

    // Still down: the next step cannot write either, and says so.
    let blocked = count(&events, "publish_blocked");
    let output = setup.serve_once();
    assert_eq!(output.status.code(), Some(2));
    let events = setup.events();
    assert!(count(&events, "publish_blocked") > blocked, "{events:#?}");
    assert_eq!(count(&events, "ring_started"), 0, "nothing published");

    // The store is back: the same configuration, no operator action.
    let moto = moto::Moto::start_on(port);
    let (_, store) = moto::locked_bucket(
        &moto,
        "daemon-evidence",
        LockMode::Compliance,
        scratch.path(),
    );
    let output = setup.serve_once();
    assert!(output.status.success(), "{}", stderr(&output));
    let events = setup.events();
    assert!(
        count(&events, "ring_started") >= 1,
        "publishing resumed: {events:#?}"
    );
    let records = setup.evidence_records();
    assert!(records > 1);
    assert_eq!(
        store.list("packs/").unwrap().len(),
        2 * records,
        "every record copied"
    );

    let output = setup.verify_object_store();
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains(&format!("{records} record(s) in the object store")),
        "{}",
        stdout(&output)
    );
}
