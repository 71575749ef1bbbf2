//! A fake GitHub REST API on 127.0.0.1:0: the endpoints ringmaster uses,
//! with GitHub's documented request checks and response shapes (objects are
//! the recorded payloads of `../shared/fixtures/github/`, patched), bearer
//! authentication (a token, or App JWT → installation tokens that expire),
//! rate-limit headers on every response, scripted rate limits, and a record
//! of every request so tests can count API calls.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
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
    next_id: u64,
    remaining: i64,
}

struct Shared {
    owner: String,
    repository: String,
    prefix: String,
    auth: FakeAuth,
    state: Mutex<GitHubState>,
    version: watch::Sender<u64>,
}

pub struct FakeGitHub {
    /// The API base URL to give ringmaster.
    pub url: String,
    shared: Arc<Shared>,
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/fixtures/github/{name}",
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
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake GitHub serves");
        });
        FakeGitHub {
            url: format!("http://{address}{prefix}"),
            shared,
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
}

fn github_error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_owned)
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn page(items: Vec<Value>, query: &str) -> Value {
    let per_page: usize = query_value(query, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let page: usize = query_value(query, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Value::Array(
        items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect(),
    )
}

fn verify_app_jwt(token: &str, app_id: u64, public_key_pem: &str) -> Result<(), String> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    // GitHub takes the App id as a number in `iss`; jsonwebtoken only knows string issuers.
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    let iss_matches = claims["iss"] == json!(app_id) || claims["iss"] == json!(app_id.to_string());
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if !iss_matches {
        return Err(format!("iss {} is not the App id", claims["iss"]));
    }
    if lifetime > 600 + 60 {
        return Err("GitHub App JWTs may live at most ten minutes".into());
    }
    Ok(())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let (status, value, spent) = {
        let mut state = shared.state.lock().unwrap();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
        });
        state.remaining -= 1;
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        respond(&shared, &mut state, &method, &path, &query, &headers, &body)
    };
    shared.version.send_modify(|v| *v += 1);
    let mut response = (status, axum::Json(value)).into_response();
    let normal_remaining = shared.state.lock().unwrap().remaining;
    let (remaining, reset_in, retry_after) = match spent {
        None => (normal_remaining, 3600, None),
        Some((-1, retry_after)) => (normal_remaining, 3600, Some(retry_after)),
        Some((remaining, reset_in)) => (remaining, reset_in, None),
    };
    let mut set = |name: &'static str, value: String| {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("x-ratelimit-limit", "5000".into());
    set("x-ratelimit-remaining", remaining.to_string());
    set(
        "x-ratelimit-reset",
        (Utc::now() + Duration::seconds(reset_in))
            .timestamp()
            .to_string(),
    );
    set("x-ratelimit-resource", "core".into());
    if let Some(seconds) = retry_after {
        set("retry-after", seconds.to_string());
    }
    response
}

/// The response; the third value overrides the rate-limit headers:
/// `(remaining, reset_in)`, or `(-1, retry_after)` for a secondary limit.
fn respond(
    shared: &Shared,
    state: &mut GitHubState,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (StatusCode, Value, Option<(i64, i64)>) {
    let Some(local) = path.strip_prefix(&shared.prefix) else {
        let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
        return (s, v, None);
    };
    let segments: Vec<&str> = local.trim_matches('/').split('/').collect();
    let token = bearer(headers);
    // Authentication first, as GitHub does.
    match (&shared.auth, segments.as_slice()) {
        (
            FakeAuth::App {
                app_id,
                installation_id,
                public_key_pem,
                token_lifetime,
            },
            ["app", "installations", id, "access_tokens"],
        ) => {
            if *method != Method::POST || id.parse::<u64>().ok() != Some(*installation_id) {
                let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
                return (s, v, None);
            }
            if let Err(error) = token
                .as_deref()
                .ok_or("no JWT".to_owned())
                .and_then(|t| verify_app_jwt(t, *app_id, public_key_pem))
            {
                let (s, v) = github_error(
                    StatusCode::UNAUTHORIZED,
                    &format!("A JSON web token could not be decoded: {error}"),
                );
                return (s, v, None);
            }
            state.next_id += 1;
            let issued = format!("ghs_fake{}", state.next_id);
            let expires_at = Utc::now() + *token_lifetime;
            state.issued_tokens.push((issued.clone(), expires_at));
            return (
                StatusCode::CREATED,
                json!({
                    "token": issued,
                    "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "permissions": {"checks": "write", "pull_requests": "write", "contents": "read", "statuses": "write"},
                    "repository_selection": "selected",
                }),
                None,
            );
        }
        (FakeAuth::App { .. }, _) => {
            let now = Utc::now();
            let valid = state
                .issued_tokens
                .iter()
                .any(|(t, expires)| Some(t) == token.as_ref() && *expires > now);
            if !valid {
                let (s, v) = github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
                return (s, v, None);
            }
        }
        (FakeAuth::Token(expected), _) => {
            if token.as_ref() != Some(expected) {
                let (s, v) = github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
                return (s, v, None);
            }
        }
    }
    let mut spent = None;
    if let Some(scripted) = state.scripted.pop_front() {
        match scripted {
            Scripted::SecondaryLimit { retry_after } => {
                let (s, v) = github_error(
                    StatusCode::FORBIDDEN,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                );
                return (s, v, Some((-1, retry_after as i64)));
            }
            Scripted::PrimaryLimit { reset_in_seconds } => {
                let (s, v) = github_error(
                    StatusCode::FORBIDDEN,
                    "API rate limit exceeded for installation ID 1.",
                );
                return (s, v, Some((0, reset_in_seconds)));
            }
            Scripted::QuotaSpent { reset_in_seconds } => spent = Some((0, reset_in_seconds)),
        }
    }
    let [repos, owner, name, rest @ ..] = segments.as_slice() else {
        let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
        return (s, v, spent);
    };
    if *repos != "repos" || *owner != shared.owner || *name != shared.repository {
        let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
        return (s, v, spent);
    }
    let number = |text: &str| text.parse::<u64>().ok();
    let (status, value) = match (method.clone(), rest) {
        (Method::GET, ["pulls"]) => {
            let wanted_state = query_value(query, "state").unwrap_or("open");
            let base = query_value(query, "base");
            let items = state
                .pulls
                .values()
                .filter(|p| wanted_state == "all" || p["state"] == wanted_state)
                .filter(|p| base.is_none_or(|b| p["base"]["ref"] == b))
                .cloned()
                .collect();
            (StatusCode::OK, page(items, query))
        }
        (Method::GET, ["pulls", n]) => match number(n).and_then(|n| state.pulls.get(&n)) {
            Some(pull) => (StatusCode::OK, pull.clone()),
            None => github_error(StatusCode::NOT_FOUND, "Not Found"),
        },
        (Method::GET, ["pulls", n, "reviews"]) => {
            let items = number(n)
                .and_then(|n| state.reviews.get(&n))
                .cloned()
                .unwrap_or_default();
            (StatusCode::OK, page(items, query))
        }
        (Method::GET, ["commits", sha, "pulls"]) => {
            let items: Vec<Value> = state
                .pulls
                .values()
                .filter(|p| p["merge_commit_sha"] == *sha || p["head"]["sha"] == *sha)
                .cloned()
                .collect();
            (StatusCode::OK, Value::Array(items))
        }
        (Method::POST, ["statuses", sha]) => {
            let valid_state = ["error", "failure", "pending", "success"]
                .iter()
                .any(|s| body["state"] == *s);
            let description_ok = body["description"]
                .as_str()
                .is_none_or(|d| d.chars().count() <= 140);
            if !valid_state || !description_ok {
                github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
            } else {
                state.next_id += 1;
                let status = json!({
                    "id": state.next_id,
                    "state": body["state"],
                    "description": body["description"],
                    "target_url": body["target_url"],
                    "context": body.get("context").cloned().unwrap_or(json!("default")),
                    "created_at": "2026-11-30T12:00:00Z",
                });
                state.statuses.push((sha.to_string(), status.clone()));
                (StatusCode::CREATED, status)
            }
        }
        (Method::POST, ["check-runs"]) => {
            let conclusion_needs_completed =
                body.get("conclusion").is_some() && body["status"] != "completed";
            let summary_too_long = body["output"]["summary"]
                .as_str()
                .is_some_and(|s| s.chars().count() > 65_535);
            if body["name"].as_str().is_none()
                || body["head_sha"].as_str().is_none()
                || conclusion_needs_completed
                || summary_too_long
            {
                github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
            } else {
                state.next_id += 1;
                let mut run = body.clone();
                run["id"] = json!(state.next_id);
                if run.get("status").is_none() {
                    run["status"] = json!("queued");
                }
                state.check_runs.push(run.clone());
                (StatusCode::CREATED, run)
            }
        }
        (Method::GET, ["issues", n, "comments"]) => {
            let n = number(n).unwrap_or(0);
            let items = state
                .comments
                .iter()
                .filter(|(i, _)| *i == n)
                .map(|(_, c)| c.clone())
                .collect();
            (StatusCode::OK, page(items, query))
        }
        (Method::POST, ["issues", n, "comments"]) => match (number(n), body["body"].as_str()) {
            (Some(n), Some(text)) if text.chars().count() <= 65_536 => {
                state.next_id += 1;
                let comment = json!({
                    "id": state.next_id,
                    "body": text,
                    "user": {"login": "ringmaster[bot]", "type": "Bot"},
                    "html_url": format!("https://github.com/{}/{}/pull/{n}#issuecomment-{}", shared.owner, shared.repository, state.next_id),
                    "created_at": "2026-11-30T12:00:00Z",
                    "updated_at": "2026-11-30T12:00:00Z",
                    "edits": 0,
                });
                state.comments.push((n, comment.clone()));
                (StatusCode::CREATED, comment)
            }
            _ => github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
        },
        (Method::PATCH, ["issues", "comments", id]) => {
            let id = number(id).unwrap_or(0);
            match (
                state.comments.iter_mut().find(|(_, c)| c["id"] == id),
                body["body"].as_str(),
            ) {
                (Some((_, comment)), Some(text)) => {
                    comment["body"] = json!(text);
                    comment["edits"] = json!(comment["edits"].as_u64().unwrap_or(0) + 1);
                    (StatusCode::OK, comment.clone())
                }
                (None, _) => github_error(StatusCode::NOT_FOUND, "Not Found"),
                (_, None) => github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
            }
        }
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    };
    (status, value, spent)
}
