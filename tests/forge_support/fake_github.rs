//! A fake GitHub REST API on 127.0.0.1:0: the endpoints ringmaster uses,
//! with GitHub's documented request checks and response shapes (objects are
//! the recorded payloads of `tests/fixtures/github/`, patched), bearer
//! authentication (a token, or App JWT → installation tokens that expire),
//! rate-limit headers on every response, scripted rate limits, and a record
//! of every request so tests can count API calls.

use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How clients must authenticate.
#[derive(Debug, Clone)]
pub enum FakeAuth {
    Token(String),
    App {
        app_id: u64,
        installation_id: u64,
        public_key_pem: String,
        /// How long issued installation tokens live.
        token_lifetime: Duration,
    },
}

/// A response served instead of the next API request's real one.
#[derive(Debug, Clone, Copy)]
pub enum Scripted {
    /// `403` with `retry-after` (a secondary limit).
    SecondaryLimit { retry_after: u64 },
    /// `403` with `x-ratelimit-remaining: 0` and a reset this far ahead.
    PrimaryLimit { reset_in_seconds: i64 },
    /// Served normally, but `x-ratelimit-remaining: 0`.
    QuotaSpent { reset_in_seconds: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
}

#[derive(Debug, Default)]
pub struct GitHubState {
    pub pulls: BTreeMap<u64, Value>,
    pub reviews: BTreeMap<u64, Vec<Value>>,
    /// Issue comments, each with its issue number.
    pub comments: Vec<(u64, Value)>,
    pub statuses: Vec<(String, Value)>,
    pub check_runs: Vec<Value>,
    pub requests: Vec<RecordedRequest>,
    pub issued_tokens: Vec<(String, DateTime<Utc>)>,
    pub scripted: VecDeque<Scripted>,
    /// GitHub is down: every request is answered `503` (and recorded).
    pub outage: bool,
    pub(super) next_id: u64,
    pub(super) remaining: i64,
}

pub(super) struct Shared {
    pub(super) owner: String,
    pub(super) repository: String,
    pub(super) prefix: String,
    pub(super) auth: FakeAuth,
    pub(super) state: Mutex<GitHubState>,
    pub(super) version: watch::Sender<u64>,
}

pub struct FakeGitHub {
    /// The API base URL to give ringmaster.
    pub url: String,
    shared: Arc<Shared>,
    /// Between ringmaster and the fake: every request is checked against
    /// GitHub's OpenAPI description (`@octokit/openapi`) when the fake is
    /// dropped. (The fake answers only the fields ringmaster reads, so its
    /// answers are not checked.)
    _recorder: super::contract::Recorder,
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

/// The instant review `n` is submitted at.
pub fn review_time(n: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap() + Duration::minutes(n as i64)
}

impl FakeGitHub {
    pub async fn start(owner: &str, repository: &str, auth: FakeAuth) -> FakeGitHub {
        FakeGitHub::start_under("", owner, repository, auth).await
    }

    /// Serves the API below `prefix` (`/api/v3`, as GitHub Enterprise Server does).
    pub async fn start_under(
        prefix: &str,
        owner: &str,
        repository: &str,
        auth: FakeAuth,
    ) -> FakeGitHub {
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            owner: owner.into(),
            repository: repository.into(),
            prefix: prefix.into(),
            auth,
            state: Mutex::new(GitHubState {
                next_id: 1000,
                remaining: 5000,
                ..GitHubState::default()
            }),
            version,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let app = Router::new()
            .fallback(super::fake_routes::handle)
            .with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake GitHub serves");
        });
        let recorder = super::contract::Recorder::start(
            address,
            vec![ringmaster::planes::apispec::github()],
            &[],
        )
        .await
        .mounted_at(prefix)
        .requests_only();
        FakeGitHub {
            url: format!("http://{}{prefix}", recorder.address()),
            shared,
            _recorder: recorder,
        }
    }

    fn change(&self, edit: impl FnOnce(&mut GitHubState)) {
        {
            let mut state = self.shared.state.lock().unwrap();
            edit(&mut state);
        }
        self.shared.version.send_modify(|v| *v += 1);
    }

    pub fn read<T>(&self, read: impl FnOnce(&GitHubState) -> T) -> T {
        read(&self.shared.state.lock().unwrap())
    }

    /// Waits (signal-driven, no polling) until `ready` holds, at most 60 s.
    pub async fn wait_until(&self, what: &str, ready: impl Fn(&GitHubState) -> bool) {
        let mut changes = self.shared.version.subscribe();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                if self.read(&ready) {
                    return;
                }
                changes.changed().await.expect("fake GitHub alive");
            }
        })
        .await;
        if waited.is_err() {
            let requests = self.read(|s| s.requests.clone());
            panic!("timed out waiting for {what}; requests: {requests:#?}");
        }
    }

    fn repo_url(&self) -> String {
        format!(
            "https://github.com/{}/{}",
            self.shared.owner, self.shared.repository
        )
    }

    /// Opens pull request `number` from `head_sha` (branch `head_ref`) into `base_ref`.
    pub fn open_pull_request(
        &self,
        number: u64,
        author: &str,
        head_ref: &str,
        head_sha: &str,
        base_ref: &str,
        base_sha: &str,
    ) {
        let mut pull = fixture("pull_request.opened.0.json")["pull_request"].clone();
        let full_name = format!("{}/{}", self.shared.owner, self.shared.repository);
        pull["number"] = json!(number);
        pull["html_url"] = json!(format!("{}/pull/{number}", self.repo_url()));
        pull["url"] = json!(format!(
            "https://api.github.com/repos/{full_name}/pulls/{number}"
        ));
        pull["user"]["login"] = json!(author);
        pull["head"]["ref"] = json!(head_ref);
        pull["head"]["sha"] = json!(head_sha);
        pull["head"]["label"] = json!(format!("{}:{head_ref}", self.shared.owner));
        pull["base"]["ref"] = json!(base_ref);
        pull["base"]["sha"] = json!(base_sha);
        pull["base"]["repo"]["full_name"] = json!(full_name);
        pull["updated_at"] = json!("2026-11-30T09:00:00Z");
        self.change(|s| {
            s.pulls.insert(number, pull);
        });
    }

    /// A new push to the PR: its head moves.
    pub fn push_to_pull_request(&self, number: u64, head_sha: &str) {
        self.change(|s| {
            let pull = s.pulls.get_mut(&number).expect("pull request");
            pull["head"]["sha"] = json!(head_sha);
            pull["updated_at"] = json!(review_time(s.next_id).to_rfc3339());
        });
    }

    /// Submits a review at [`review_time`]; returns its id. `state`:
    /// APPROVED, CHANGES_REQUESTED, COMMENTED.
    pub fn review(&self, number: u64, login: &str, state: &str, commit_id: &str) -> u64 {
        self.review_at(number, login, state, commit_id, None)
    }

    /// Submits a review at `at` (default [`review_time`] of its id).
    pub fn review_at(
        &self,
        number: u64,
        login: &str,
        state: &str,
        commit_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> u64 {
        let mut review = fixture("pull_request_review.submitted.0.json")["review"].clone();
        let mut id = 0;
        let repo_url = self.repo_url();
        self.change(|s| {
            s.next_id += 1;
            id = s.next_id;
            let at = at
                .unwrap_or_else(|| review_time(id))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            review["id"] = json!(id);
            review["user"]["login"] = json!(login);
            review["state"] = json!(state);
            review["commit_id"] = json!(commit_id);
            review["submitted_at"] = json!(at);
            review["html_url"] = json!(format!("{repo_url}/pull/{number}#pullrequestreview-{id}"));
            s.reviews.entry(number).or_default().push(review);
            if let Some(pull) = s.pulls.get_mut(&number) {
                pull["updated_at"] = json!(at);
            }
        });
        id
    }

    /// Dismisses a review (GitHub turns its state into DISMISSED).
    pub fn dismiss(&self, number: u64, review_id: u64) {
        self.change(|s| {
            for review in s.reviews.entry(number).or_default() {
                if review["id"] == review_id {
                    review["state"] = json!("DISMISSED");
                }
            }
            if let Some(pull) = s.pulls.get_mut(&number) {
                pull["updated_at"] = json!(review_time(s.next_id + 1).to_rfc3339());
            }
        });
    }

    /// Marks the PR merged as `merge_sha`.
    pub fn merge(&self, number: u64, merge_sha: &str) {
        self.change(|s| {
            let pull = s.pulls.get_mut(&number).expect("pull request");
            pull["state"] = json!("closed");
            pull["merged"] = json!(true);
            pull["merged_at"] = json!("2026-11-30T18:00:00Z");
            pull["closed_at"] = json!("2026-11-30T18:00:00Z");
            pull["merge_commit_sha"] = json!(merge_sha);
        });
    }

    /// Takes the API down (every request answered `503 Service
    /// Unavailable`, still recorded) or brings it back.
    pub fn set_outage(&self, down: bool) {
        self.change(|s| s.outage = down);
    }

    pub fn script(&self, scripted: Scripted) {
        self.change(|s| s.scripted.push_back(scripted));
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.read(|s| s.requests.clone())
    }

    /// API requests other than installation-token requests.
    pub fn api_requests(&self) -> usize {
        self.read(|s| {
            s.requests
                .iter()
                .filter(|r| !r.path.ends_with("/access_tokens"))
                .count()
        })
    }

    pub fn comments(&self, number: u64) -> Vec<Value> {
        self.read(|s| {
            s.comments
                .iter()
                .filter(|(n, _)| *n == number)
                .map(|(_, c)| c.clone())
                .collect()
        })
    }

    /// Commit statuses posted for `sha`, oldest first.
    pub fn statuses(&self, sha: &str) -> Vec<Value> {
        self.read(|s| {
            s.statuses
                .iter()
                .filter(|(x, _)| x == sha)
                .map(|(_, v)| v.clone())
                .collect()
        })
    }

    /// Check runs created for `sha`, oldest first.
    pub fn check_runs(&self, sha: &str) -> Vec<Value> {
        self.read(|s| {
            s.check_runs
                .iter()
                .filter(|c| c["head_sha"] == sha)
                .cloned()
                .collect()
        })
    }

    pub fn issued_tokens(&self) -> usize {
        self.read(|s| s.issued_tokens.len())
    }

    /// The installation token issued last, if any.
    pub fn last_issued_token(&self) -> Option<String> {
        self.read(|s| s.issued_tokens.last().map(|(token, _)| token.clone()))
    }
}
