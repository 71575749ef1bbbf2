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
//! The dependencies are real: the fake GitHub API of `forge_support` and
//! the authenticated `git http-backend` of `git_http` (the governed
//! repository's remote and the evidence remote), servers on 127.0.0.1
//! switched to answering 503, the calls counted being the requests they
//! received; and each plane's simulated fleet taken down (every connector
//! call fails with 503), the calls counted by the plane. Run with
//! `--nocapture` to see the figures for a 60 s outage of each dependency:
//!
//! ```sh
//! cargo test --test outage -- --nocapture
//! ```

mod forge_support;
mod git_http;
mod support;

use chrono::{DateTime, Duration, Utc};
use forge_support::*;
use ringmaster::daemon::config::{DaemonConfig, GitHubConfig, RepoLocation, SiemSink};
use ringmaster::daemon::planes::SimSettings;
use ringmaster::daemon::{Clock, Daemon, Event};
use ringmaster::model::Plane;
use ringmaster::planes::sim::Fault;
use ringmaster::source::credentials::{GitAuth, SecretSource, TOKEN_USERNAME};
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
        store: None,
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
        // Every plane explicitly on the simulated fleet.
        planes: ringmaster::daemon::planes::SimSettings::default()
            .configs(&ringmaster::model::Plane::ALL),
        config_file: None,
        evidence_object_store: None,
        incidents: Default::default(),
        api: None,
        notifications: Vec::new(),
        git_credentials: Default::default(),
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

/// A daemon on the sample tenant, on a private remote served by
/// [`git_http::GitServer`] (`tenant.git`, fetched with a token), pushing
/// its evidence to `evidence.git` on the same server, its planes on the
/// simulated fleet.
struct GitSetup {
    server: git_http::GitServer,
    tenant: support::TestRepo,
    _keys: tempfile::TempDir,
    _state: tempfile::TempDir,
    looped: SimulatedLoop,
}

async fn git_setup(remote: bool) -> GitSetup {
    let server = git_http::GitServer::start().await;
    let tenant = support::TestRepo::sample();
    let url = server.repository("tenant.git", Some(&tenant.path));
    let evidence = server.repository("evidence.git", None);
    // The planes' test needs no remote: a local repository is faster.
    let (repo, evidence) = if remote {
        (RepoLocation::Remote(url), Some(evidence))
    } else {
        (RepoLocation::Local(tenant.path.clone()), None)
    };
    let keys = tempfile::tempdir().expect("keys");
    let paths = ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
    let token = keys.path().join("git-token");
    std::fs::write(&token, git_http::TOKEN).expect("token");
    let state = tempfile::tempdir().expect("state");
    let config = DaemonConfig {
        repo,
        store: None,
        state_dir: state.path().to_path_buf(),
        key: paths.secret_key,
        key_password: None,
        branch: "main".into(),
        evidence_branch: "evidence".into(),
        poll_interval: std::time::Duration::from_secs(30),
        siem: SiemSink::Off,
        evidence_remote: evidence,
        listen: None,
        github: None,
        planes: SimSettings {
            seed: 5,
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
        git_credentials: GitAuth::Token {
            username: TOKEN_USERNAME.into(),
            token: SecretSource::File(token),
        },
    };
    let daemon = Daemon::open(config).expect("daemon opens");
    GitSetup {
        server,
        tenant,
        _keys: keys,
        _state: state,
        looped: SimulatedLoop {
            daemon,
            clock: Arc::new(Mutex::new(now())),
            wakes: 0,
        },
    }
}

impl GitSetup {
    fn last_processed(&self) -> Option<String> {
        self.looped
            .daemon
            .store()
            .last_processed_commit("main")
            .expect("store")
            .map(|commit| commit.commit_sha)
    }

    /// Commits on the tenant and pushes it to the served remote.
    fn push_commit(&self, message: &str) -> String {
        self.tenant
            .git(&["commit", "-q", "--allow-empty", "-m", message]);
        let remote = self.server.path("tenant.git");
        self.tenant
            .git(&["push", "-q", remote.to_str().expect("utf-8"), "main:main"]);
        self.tenant.git(&["rev-parse", "HEAD"])
    }

    fn sim_calls(&self) -> Vec<(Plane, u64)> {
        let planes = self.looped.daemon.planes().expect("planes are built");
        [
            Plane::Intune,
            Plane::Jamf,
            Plane::Sccm,
            Plane::Landscape,
            Plane::Ansible,
        ]
        .iter()
        .filter_map(|plane| planes.sim(*plane).map(|sim| (*plane, sim.calls())))
        .collect()
    }
}

/// The Git server (both remotes) is down for `outage`, then up again: the
/// requests to each remote during the outage, and whether a commit pushed
/// during the outage was processed after it.
async fn git_remote_outage(outage: Duration) -> (usize, usize, bool) {
    let mut setup = git_setup(true).await;
    setup.looped.run_for(Duration::seconds(5), None).await;
    assert_eq!(
        setup.last_processed(),
        Some(setup.tenant.git(&["rev-parse", "HEAD"])),
        "processed before the outage"
    );
    assert!(
        setup.server.requests_to("evidence.git") > 0,
        "evidence was pushed before the outage"
    );
    setup.server.set_outage(true);
    let pending = setup.push_commit("a change while the Git server is down");
    let (fetches, pushes) = (
        setup.server.requests_to("tenant.git"),
        setup.server.requests_to("evidence.git"),
    );
    setup
        .looped
        .run_for(outage, Some(Duration::milliseconds(50)))
        .await;
    let fetches = setup.server.requests_to("tenant.git") - fetches;
    let pushes = setup.server.requests_to("evidence.git") - pushes;
    assert_ne!(setup.last_processed(), Some(pending.clone()));
    setup.server.set_outage(false);
    // The processing backoff is capped at five minutes and jittered; the
    // breaker's probe comes on top: give recovery three caps' worth.
    setup.looped.run_for(Duration::minutes(15), None).await;
    let recovered = setup.last_processed() == Some(pending);
    (fetches, pushes, recovered)
}

/// Each plane in turn is down for `outage` while rollouts are in flight:
/// the connector calls each plane received during its outage, and whether
/// calls went through again after it.
async fn plane_outages(outage: Duration) -> Vec<(Plane, u64, bool)> {
    let mut setup = git_setup(false).await;
    // Rollouts under way on every plane the tenant uses.
    setup.looped.run_for(Duration::minutes(30), None).await;
    let mut figures = Vec::new();
    for (plane, _) in setup.sim_calls() {
        let sim = setup
            .looped
            .daemon
            .planes()
            .and_then(|planes| planes.sim(plane))
            .cloned()
            .expect("sim");
        sim.set_outage(Some(Fault::ServiceUnavailable))
            .expect("down");
        let before = sim.calls();
        setup
            .looped
            .run_for(outage, Some(Duration::milliseconds(50)))
            .await;
        let during = sim.calls() - before;
        sim.set_outage(None).expect("up");
        let after = sim.calls();
        setup.looped.run_for(Duration::minutes(3), None).await;
        figures.push((plane, during, sim.calls() > after || during == 0));
    }
    figures
}

#[tokio::test(flavor = "multi_thread")]
async fn git_remotes_down_for_60_seconds_cost_bounded_calls_then_recover_on_their_own() {
    let (fetches, pushes, recovered) = git_remote_outage(Duration::seconds(60)).await;
    eprintln!(
        "outage 60 s: Git remote (fetch) {fetches} request(s), evidence remote (push) {pushes} request(s)"
    );
    assert!(fetches >= 1, "the outage was noticed at all");
    assert!(
        fetches <= 20,
        "{fetches} requests to the governed repository's remote during a 60 s outage"
    );
    assert!(
        pushes <= 20,
        "{pushes} requests to the evidence remote during a 60 s outage"
    );
    assert!(
        recovered,
        "the commit pushed during the outage is processed once the remote is back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_plane_down_for_60_seconds_costs_bounded_calls_then_recovers_on_its_own() {
    let figures = plane_outages(Duration::seconds(60)).await;
    for (plane, calls, _) in &figures {
        eprintln!("outage 60 s: plane {} {calls} call(s)", plane.as_str());
    }
    assert!(
        figures.iter().any(|(_, calls, _)| *calls > 0),
        "some plane had work during its outage: {figures:?}"
    );
    for (plane, calls, recovered) in &figures {
        assert!(
            *calls <= 20,
            "plane {}: {calls} connector calls during a 60 s outage",
            plane.as_str()
        );
        assert!(
            recovered,
            "plane {}: called again once it is back",
            plane.as_str()
        );
    }
}
