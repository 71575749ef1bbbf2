//! A rewound or forked evidence remote is detected before anything is
//! pushed onto it: the daemon remembers the last evidence commit it pushed
//! to each remote (a local ref, so across restarts), and when the remote's
//! branch no longer holds it — rewound, deleted, or replaced by another
//! history — it refuses to push, records a `publish_blocked` event
//! (`evidence_remote_forked`), writes a SIEM alert, and publishes nothing
//! until the remote holds that commit again.
//!
//! Real parts: the sample tenant in a Git repository, the evidence remote a
//! bare repository rewritten with `git update-ref` as a force-push would,
//! the daemon stepped with an injected clock, its SIEM sink a file.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ringmaster::daemon::Daemon;
use ringmaster::daemon::config::{DaemonConfig, RepoLocation, SiemSink};
use ringmaster::daemon::planes::SimSettings;
use ringmaster::model::Plane;
use ringmaster::store::{EventFilter, EventType};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::TestRepo;

struct Setup {
    repo: TestRepo,
    _dirs: [tempfile::TempDir; 3],
    remote: PathBuf,
    siem: PathBuf,
    daemon: Daemon,
    now: DateTime<Utc>,
}

fn git(git_dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Setup {
    fn new() -> Setup {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().expect("keys");
        let paths =
            ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
        let state = tempfile::tempdir().expect("state");
        let remote_dir = tempfile::tempdir().expect("remote");
        let remote = remote_dir.path().join("evidence.git");
        let status = Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&remote)
            .status();
        assert!(status.expect("git").success());
        let siem = state.path().join("siem.jsonl");
        let config = DaemonConfig {
            repo: RepoLocation::Local(repo.path.clone()),
            store: None,
            state_dir: state.path().to_path_buf(),
            key: paths.secret_key,
            key_password: None,
            branch: "main".into(),
            evidence_branch: "evidence".into(),
            poll_interval: std::time::Duration::from_secs(30),
            siem: SiemSink::File(siem.clone()),
            evidence_remote: Some(remote.to_str().expect("utf-8").to_owned()),
            listen: None,
            github: None,
            planes: SimSettings {
                seed: 3,
                install_delay: (
                    std::time::Duration::from_secs(300),
                    std::time::Duration::from_secs(3600),
                ),
                default_success_rate: 1.0,
            }
            .configs(&ringmaster::model::Plane::ALL),
            config_file: None,
            evidence_object_store: None,
            incidents: Default::default(),
            api: None,
            notifications: Vec::new(),
            git_credentials: Default::default(),
        };
        let daemon = Daemon::open(config).expect("daemon");
        Setup {
            repo,
            _dirs: [keys, state, remote_dir],
            remote,
            siem,
            daemon,
            now: Utc
                .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
                .single()
                .expect("date"),
        }
    }

    async fn step(&mut self) -> bool {
        let ok = self.daemon.step(self.now).await.is_ok();
        self.now += Duration::minutes(30);
        ok
    }

    fn remote_tip(&self) -> String {
        git(&self.remote, &["rev-parse", "refs/heads/evidence"])
    }

    fn publish_calls(&self) -> u64 {
        let planes = self.daemon.planes().expect("planes");
        [
            Plane::Intune,
            Plane::Jamf,
            Plane::Sccm,
            Plane::Landscape,
            Plane::Ansible,
        ]
        .iter()
        .filter_map(|plane| planes.sim(*plane).map(|sim| sim.publish_calls()))
        .sum()
    }

    fn forked_events(&self) -> usize {
        self.daemon
            .store()
            .events(&EventFilter::default())
            .expect("events")
            .into_iter()
            .filter(|event| event.event_type == EventType::PublishBlocked)
            .filter(|event| event.details.to_string().contains("evidence_remote_forked"))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewound_evidence_remote_blocks_publishing_with_an_event_and_a_siem_alert() {
    let mut setup = Setup::new();
    assert!(setup.step().await, "the first step pushes");
    let pushed = setup.remote_tip();
    assert_eq!(
        setup.daemon.evidence_last_pushed().as_deref(),
        Some(pushed.as_str()),
        "the last pushed head is remembered"
    );
    let published = setup.publish_calls();
    assert!(published > 0, "rings were published");

    // Someone force-pushes the remote back two records.
    let rewound = git(&setup.remote, &["rev-parse", "refs/heads/evidence~2"]);
    git(
        &setup.remote,
        &["update-ref", "refs/heads/evidence", &rewound],
    );
    // Something new to record and publish.
    setup.repo.edit(
        "intents/osquery-6.0.0-it.yaml",
        "Major release",
        "A major release",
    );
    setup.repo.commit_all("reword the osquery intent");
    for _ in 0..4 {
        assert!(
            !setup.step().await,
            "the step fails while the remote is forked"
        );
    }
    assert_eq!(
        setup.remote_tip(),
        rewound,
        "nothing was pushed onto the rewound remote (it was not silently repaired)"
    );
    assert_eq!(
        setup.publish_calls(),
        published,
        "nothing was published while the evidence remote is forked"
    );
    assert!(
        setup.forked_events() >= 1,
        "a publish_blocked event says why"
    );
    let siem = std::fs::read_to_string(&setup.siem).expect("siem file");
    let alert = siem
        .lines()
        .find(|line| line.contains("evidence_remote_forked"))
        .unwrap_or_else(|| panic!("a SIEM alert: {siem}"));
    assert!(alert.contains(&pushed), "names the commit it lost: {alert}");

    // The remote is restored: publishing goes on.
    git(
        &setup.remote,
        &["update-ref", "refs/heads/evidence", &pushed],
    );
    let mut resumed = false;
    for _ in 0..4 {
        resumed |= setup.step().await;
    }
    assert!(
        resumed,
        "the daemon goes on once the remote holds its records"
    );
    assert_ne!(setup.remote_tip(), pushed, "new records reached the remote");
    assert_eq!(
        git(
            &setup.remote,
            &[
                "merge-base",
                "--is-ancestor",
                &pushed,
                "refs/heads/evidence"
            ]
        ),
        ""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_or_replaced_evidence_remote_branch_is_refused_after_a_restart_too() {
    let mut setup = Setup::new();
    assert!(setup.step().await);
    let pushed = setup.remote_tip();
    // The daemon restarts: what it pushed is remembered in the repository.
    // The old process is gone first (it held the state directory's lock).
    let config = setup.daemon.config.clone();
    let Setup {
        repo,
        _dirs,
        remote,
        siem,
        daemon,
        now,
    } = setup;
    drop(daemon);
    let mut setup = Setup {
        repo,
        _dirs,
        remote,
        siem,
        daemon: Daemon::open(config).expect("reopen"),
        now,
    };
    // The branch is deleted on the remote.
    git(&setup.remote, &["update-ref", "-d", "refs/heads/evidence"]);
    setup.repo.edit(
        "intents/osquery-6.0.0-it.yaml",
        "Major release",
        "A major release",
    );
    setup.repo.commit_all("reword the osquery intent");
    assert!(!setup.step().await);
    let listed = git(&setup.remote, &["for-each-ref"]);
    assert!(listed.is_empty(), "nothing was pushed: {listed}");
    assert!(setup.forked_events() >= 1);
    let siem = std::fs::read_to_string(&setup.siem).expect("siem");
    assert!(siem.contains("no evidence branch any more"), "{siem}");
    assert!(siem.contains(&pushed), "{siem}");
}
