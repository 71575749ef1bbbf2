//! Never spin: a dependency that is down costs a bounded number of calls,
//! and the daemon recovers on its own when it comes back.
//!
//! The daemon's loop is driven with simulated time: [`SimulatedLoop`] does
//! what `Daemon::run` does — wake, ask for the next deadline, sleep until it
//! or until an event — but jumps the clock instead of sleeping, and fires a
//! storm of events (the repository changed, a webhook arrived) every 50 ms
//! of simulated time, the worst case for a loop that retries on events. A
//! loop that woke up without its clock moving forward would never finish a
//! simulated minute: that is caught too, as a spin.
//!
//! The dependencies are real servers on 127.0.0.1: the fake GitHub API of
//! `forge_support`, switched to answering 503; the calls counted are the
//! requests it received. Run with `--nocapture` to see the figures for a
//! 60 s outage of each dependency:
//!
//! ```sh
//! cargo test --test outage -- --nocapture
//! ```

mod forge_support;

use chrono::{DateTime, Duration, Utc};
use forge_support::*;
use ringmaster::daemon::config::{DaemonConfig, GitHubConfig, RepoLocation, SiemSink};
use ringmaster::daemon::{Clock, Daemon, Event};
use std::sync::{Arc, Mutex};

/// The daemon's loop with a clock the test moves.
struct SimulatedLoop {
    daemon: Daemon,
    clock: Arc<Mutex<DateTime<Utc>>>,
    /// Wake-ups so far (to tell a spin).
    wakes: usize,
}

impl SimulatedLoop {
    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn set(&self, at: DateTime<Utc>) {
        *self.clock.lock().unwrap() = at;
    }

    /// Runs the loop for `duration` of simulated time, with an event storm
    /// every `storm` if given.
    async fn run_for(&mut self, duration: Duration, storm: Option<Duration>) {
        let end = self.now() + duration;
        let mut next_storm = self.now();
        let wakes_before = self.wakes;
        loop {
            let now = self.now();
            self.daemon.wake(now).await;
            self.wakes += 1;
            let spent = self.wakes - wakes_before;
            // A 50 ms storm over a simulated minute is 1,200 events; a loop
            // that does not sleep between them takes many more wake-ups.
            assert!(
                spent < 5_000,
                "the loop spins: {spent} wake-ups in {} s of simulated time",
                (now - (end - duration)).num_seconds()
            );
            let deadline = self.daemon.next_deadline(now);
            assert!(
                deadline >= now,
                "a deadline in the past: {deadline} < {now}"
            );
            let next = match storm {
                Some(_) => deadline.min(next_storm),
                None => deadline,
            };
            if next > end {
                self.set(end);
                return;
            }
            self.set(next.max(now));
            if let Some(interval) = storm
                && next_storm <= next
            {
                self.daemon.notice(&Event::RepoChanged);
                self.daemon.notice(&Event::Webhook);
                next_storm += interval;
            }
        }
    }
}

/// A daemon on a hosted repository (remote mode) with the fake GitHub.
struct Setup {
    hosted: HostedRepo,
    github: FakeGitHub,
    _keys: tempfile::TempDir,
    _state: tempfile::TempDir,
    looped: SimulatedLoop,
}

async fn setup() -> Setup {
    let hosted = HostedRepo::sample_without(&[]);
    let github = FakeGitHub::start(OWNER, REPOSITORY, FakeAuth::Token(TOKEN.into())).await;
    let keys = tempfile::tempdir().expect("keys");
    let paths = ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
    let state = tempfile::tempdir().expect("state");
    let config = DaemonConfig {
        repo: RepoLocation::Remote(hosted.url.clone()),
        state_dir: state.path().to_path_buf(),
        key: paths.secret_key,
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: std::time::Duration::from_secs(30),
        siem: SiemSink::Off,
        evidence_remote: None,
        listen: None,
        github: Some(GitHubConfig {
            settings: token_settings(&github),
            webhook_secret: None,
        }),
        planes: Default::default(),
        evidence_object_store: None,
        incidents: Default::default(),
    };
    let clock = Arc::new(Mutex::new(now()));
    let shared = clock.clone();
    let daemon_clock: Clock = Arc::new(move || *shared.lock().unwrap());
    let mut daemon = Daemon::open(config).expect("daemon opens");
    daemon.connect_forge(daemon_clock).expect("forge");
    Setup {
        hosted,
        github,
        _keys: keys,
        _state: state,
        looped: SimulatedLoop {
            daemon,
            clock,
            wakes: 0,
        },
    }
}

impl Setup {
    fn last_processed(&self) -> Option<String> {
        self.looped
            .daemon
            .store()
            .last_processed_commit("main")
            .expect("store")
            .map(|commit| commit.commit_sha)
    }

    /// Pushes a new commit to the hosted repository; returns it.
    fn push_commit(&self, message: &str) -> String {
        self.hosted
            .git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.hosted.git(&["push", "-q", "origin", "main"]);
        self.hosted.sha("HEAD")
    }
}

/// GitHub is down for `outage`, then up again: the requests GitHub received
/// during the outage, and whether the pending commit was processed after.
async fn github_outage(outage: Duration) -> (usize, bool) {
    let mut setup = setup().await;
    setup.looped.run_for(Duration::seconds(5), None).await;
    let first = setup.hosted.sha("HEAD");
    assert_eq!(
        setup.last_processed(),
        Some(first),
        "processed before the outage"
    );

    let pending = setup.push_commit("a change while GitHub is down");
    setup.github.set_outage(true);
    let before = setup.github.requests().len();
    setup
        .looped
        .run_for(outage, Some(Duration::milliseconds(50)))
        .await;
    let during = setup.github.requests().len() - before;
    assert_ne!(
        setup.last_processed().as_deref(),
        Some(pending.as_str()),
        "nothing is judged without GitHub's merge facts"
    );

    setup.github.set_outage(false);
    setup.looped.run_for(Duration::minutes(6), None).await;
    let recovered = setup.last_processed().as_deref() == Some(pending.as_str());
    (during, recovered)
}

#[tokio::test(flavor = "multi_thread")]
async fn github_down_for_30_seconds_costs_at_most_20_calls_then_recovers_on_its_own() {
    let (calls, recovered) = github_outage(Duration::seconds(30)).await;
    assert!(
        calls <= 20,
        "{calls} GitHub API requests during a 30 s outage"
    );
    assert!(calls >= 1, "the outage was noticed at all");
    assert!(
        recovered,
        "the pending commit is processed once GitHub is back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outage_figures_for_60_seconds() {
    let (github, recovered) = github_outage(Duration::seconds(60)).await;
    assert!(recovered);
    eprintln!("outage 60 s: GitHub API {github} call(s)");
    assert!(
        github <= 20,
        "{github} GitHub API requests during a 60 s outage"
    );
}
