//! The GitHub REST client: octocrab for transport and authentication, plus
//! the rate-limit discipline and the handful of endpoints ringmaster uses.
//!
//! Authentication is either a plain token (commit statuses) or a GitHub App:
//! octocrab signs the App JWT (RS256, nine minutes) and trades it for an
//! installation token, which it caches and renews 30 seconds before it
//! expires (and once more on a `401`). The API base URL is configurable, so
//! GitHub Enterprise Server (`https://ghe.example.com/api/v3`) works the
//! same. Octocrab's own retries are off: every response goes through
//! [`super::rate_limit::assess`], short waits are slept and retried here, and
//! a longer limit makes every call fail fast with [`ForgeError::RateLimited`]
//! until it lifts (the poll picks the work up afterwards). Paths are always
//! relative, so the token is only ever sent to the configured API host.
//!
//! GitHub being down (no answer, or a 5xx) is not retried here either: a
//! [`CircuitBreaker`] counts the failures, and once it opens every call fails
//! fast with [`ForgeError::Unavailable`] — no request sent — until its next
//! probe is due ([`GitHubClient::unavailable_until`] says when, so the
//! daemon sleeps until then instead of spinning).

use super::rate_limit::{self, LimitKind, RateLimitVerdict};
use super::secret::{AppPrivateKey, GitHubToken};
use super::wire::{IssueComment, PullRequest, Review};
use super::{Clock, ForgeError};
use crate::orchestrator::{BreakerPolicy, CircuitBreaker};
use axum::http::Method;
use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A rate limit shorter than this is waited out and the call retried.
pub const MAX_INLINE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Attempts per call when GitHub asks to retry shortly.
const MAX_ATTEMPTS: usize = 3;
/// Items per page of list endpoints (GitHub's maximum).
const PER_PAGE: usize = 100;
/// Pages read at most from one list endpoint.
const MAX_PAGES: usize = 10;

/// How ringmaster authenticates to GitHub.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A token: results are posted as commit statuses.
    Token(GitHubToken),
    /// A GitHub App installation: results are posted as check runs.
    App {
        app_id: u64,
        installation_id: u64,
        private_key: AppPrivateKey,
    },
}

/// Where the repository is and how to reach its API.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_base_url: String,
    pub owner: String,
    pub repository: String,
    pub auth: GitHubAuth,
}

/// A client for one repository.
pub struct GitHubClient {
    octocrab: Octocrab,
    owner: String,
    repository: String,
    check_runs: bool,
    clock: Clock,
    /// No call before this instant (a rate limit is in force).
    blocked_until: Mutex<Option<(LimitKind, DateTime<Utc>)>>,
    /// API requests sent (for measurement; installation-token requests excluded).
    calls: AtomicU64,
    /// Whether GitHub is answering at all (see the module doc).
    breaker: Mutex<CircuitBreaker>,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GitHubClient")
            .field("repository", &self.full_name())
            .field("check_runs", &self.check_runs)
            .finish_non_exhaustive()
    }
}

/// An error and its causes in one line (octocrab's own message is terse:
/// "GitHub" for an error answer while fetching the installation token).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn setup_error(error: impl std::fmt::Display) -> ForgeError {
    ForgeError::Setup(error.to_string())
}

impl GitHubClient {
    /// Builds the client; nothing is sent until the first call.
    pub fn new(settings: &GitHubSettings, clock: Clock) -> Result<GitHubClient, ForgeError> {
        let builder = Octocrab::builder()
            .base_uri(settings.api_base_url.as_str())
            .map_err(|e| ForgeError::Setup(format!("api base URL {}: {e}", settings.api_base_url)))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let (octocrab, check_runs) = match &settings.auth {
            GitHubAuth::Token(token) => (
                builder
                    .personal_token(token.expose().to_owned())
                    .build()
                    .map_err(setup_error)?,
                false,
            ),
            GitHubAuth::App {
                app_id,
                installation_id,
                private_key,
            } => {
                let app = builder
                    .app_from_rsa_pem(
                        octocrab::models::AppId(*app_id),
                        private_key.expose().as_bytes(),
                    )
                    .map_err(|e| ForgeError::Setup(format!("App private key: {e}")))?
                    .build()
                    .map_err(setup_error)?;
                let installation = app
                    .installation(octocrab::models::InstallationId(*installation_id))
                    .map_err(setup_error)?;
                (installation, true)
            }
        };
        Ok(GitHubClient {
            octocrab,
            owner: settings.owner.clone(),
            repository: settings.repository.clone(),
            check_runs,
            clock,
            blocked_until: Mutex::new(None),
            calls: AtomicU64::new(0),
            breaker: Mutex::new(CircuitBreaker::new("GitHub API", BreakerPolicy::default())),
        })
    }

    /// When the next call may go out, if not now: a rate limit in force or
    /// the breaker open (GitHub down). The daemon sleeps until then.
    pub fn unavailable_until(&self) -> Option<DateTime<Utc>> {
        let now = (self.clock)();
        let limited = self
            .blocked_until
            .lock()
            .expect("rate-limit lock")
            .map(|(_, until)| until)
            .filter(|until| *until > now);
        let open = self
            .breaker
            .lock()
            .expect("breaker lock")
            .retry_at()
            .filter(|until| *until > now);
        limited.max(open)
    }

    /// Records a failure of GitHub itself (not of the request) on the breaker.
    fn github_failed(
        &self,
        now: DateTime<Utc>,
        message: &str,
        retry_after: Option<chrono::Duration>,
    ) {
        let mut breaker = self.breaker.lock().expect("breaker lock");
        let opened = breaker.record_failure(now, message, retry_after, rand::random::<f64>());
        crate::metrics::runtime::breaker("github_api", &breaker);
        drop(breaker);
        if let Some(until) = opened {
            tracing::warn!(%until, error = %message, "GitHub API unavailable: no calls until the next probe");
        }
    }

    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repository)
    }

    /// API requests sent so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Results go out as check runs (App) rather than commit statuses (token).
    pub fn uses_check_runs(&self) -> bool {
        self.check_runs
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.repository)
    }

    /// Sends one request, honouring rate limits; returns the body text of a
    /// 2xx response.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<String, ForgeError> {
        for attempt in 1..=MAX_ATTEMPTS {
            let now = (self.clock)();
            let blocked = *self.blocked_until.lock().expect("rate-limit lock");
            if let Some((kind, until)) = blocked
                && now < until
            {
                return Err(ForgeError::RateLimited { kind, until });
            }
            self.breaker
                .lock()
                .expect("breaker lock")
                .admit(now)
                .map_err(|refused| ForgeError::Unavailable {
                    until: refused.until,
                    last_error: refused.last_error,
                })?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let transport = |e: octocrab::Error| {
                let error = ForgeError::Transport {
                    method: method.to_string(),
                    path: path.to_owned(),
                    message: error_chain(&e),
                };
                self.github_failed((self.clock)(), &error.to_string(), None);
                error
            };
            let response = match method {
                Method::GET => self.octocrab._get(path).await,
                Method::POST => self.octocrab._post(path, body).await,
                Method::PATCH => self.octocrab._patch(path, body).await,
                _ => return Err(ForgeError::Setup(format!("method {method} is not used"))),
            }
            .map_err(transport)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = self
                .octocrab
                .body_to_string(response)
                .await
                .map_err(transport)?;
            if status >= 500 {
                let retry_after = headers
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|text| text.trim().parse::<i64>().ok())
                    .and_then(chrono::Duration::try_seconds);
                self.github_failed(
                    (self.clock)(),
                    &format!("{method} {path} answered {status}"),
                    retry_after,
                );
            } else {
                let mut breaker = self.breaker.lock().expect("breaker lock");
                breaker.record_success();
                crate::metrics::runtime::breaker("github_api", &breaker);
            }
            match rate_limit::assess(status, &headers, &text, (self.clock)()) {
                RateLimitVerdict::Limited { kind, until } => {
                    let wait = (until - now).to_std().unwrap_or_default();
                    tracing::warn!(%path, ?kind, %until, "GitHub rate limit");
                    if wait <= MAX_INLINE_WAIT && attempt < MAX_ATTEMPTS {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    *self.blocked_until.lock().expect("rate-limit lock") = Some((kind, until));
                    return Err(ForgeError::RateLimited { kind, until });
                }
                RateLimitVerdict::Proceed { quota_spent_until } => {
                    if let Some(until) = quota_spent_until {
                        *self.blocked_until.lock().expect("rate-limit lock") =
                            Some((LimitKind::Primary, until));
                    }
                    if !(200..300).contains(&status) {
                        let message = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| {
                                v.get("message").and_then(Value::as_str).map(str::to_owned)
                            })
                            .unwrap_or(text);
                        return Err(ForgeError::Api {
                            method: method.to_string(),
                            path: path.to_owned(),
                            status,
                            message,
                        });
                    }
                    return Ok(text);
                }
            }
        }
        Err(ForgeError::Setup("unreachable: attempts exhausted".into()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        let text = self.send(method, path, body).await?;
        serde_json::from_str(&text).map_err(|e| ForgeError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Every item of a list endpoint, page by page.
    async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ForgeError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let batch: Vec<T> = self
                .call(
                    Method::GET,
                    &format!("{path}{separator}per_page={PER_PAGE}&page={page}"),
                    None,
                )
                .await?;
            let full = batch.len() == PER_PAGE;
            items.extend(batch);
            if !full {
                break;
            }
        }
        Ok(items)
    }

    /// The App's installation token, for Git over HTTPS (`x-access-token`):
    /// octocrab's cached one while it has 30 seconds left, else a new one
    /// minted (`POST /app/installations/{id}/access_tokens`). Nothing is
    /// sent while GitHub is unavailable or rate-limited.
    pub async fn installation_token(
        &self,
    ) -> Result<crate::source::credentials::GitSecret, ForgeError> {
        use octocrab::secrecy::ExposeSecret as _;
        if !self.check_runs {
            return Err(ForgeError::Setup(
                "Git over HTTPS with the GitHub App needs App authentication \
                 (github_app_id, github_installation_id, github_app_key_file)"
                    .into(),
            ));
        }
        if let Some(until) = self.unavailable_until() {
            let last_error = self
                .breaker
                .lock()
                .expect("breaker lock")
                .last_error()
                .unwrap_or("rate limited")
                .to_owned();
            return Err(ForgeError::Unavailable { until, last_error });
        }
        match self.octocrab.installation_token().await {
            Ok(token) => Ok(crate::source::credentials::GitSecret::new(
                token.expose_secret(),
            )),
            Err(error) => {
                let error = ForgeError::Transport {
                    method: "POST".into(),
                    path: "/app/installations/{id}/access_tokens".into(),
                    message: error_chain(&error),
                };
                self.github_failed((self.clock)(), &error.to_string(), None);
                Err(error)
            }
        }
    }

    pub async fn pull_request(&self, number: u64) -> Result<PullRequest, ForgeError> {
        self.call(
            Method::GET,
            &self.repo_path(&format!("pulls/{number}")),
            None,
        )
        .await
    }

    /// Open pull requests into `base`.
    pub async fn open_pull_requests(&self, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        self.list(&self.repo_path(&format!("pulls?state=open&base={base}")))
            .await
    }

    pub async fn reviews(&self, number: u64) -> Result<Vec<Review>, ForgeError> {
        self.list(&self.repo_path(&format!("pulls/{number}/reviews")))
            .await
    }

    /// Pull requests associated with a commit (for a merge commit: the one it merged).
    pub async fn pull_requests_for_commit(
        &self,
        sha: &str,
    ) -> Result<Vec<PullRequest>, ForgeError> {
        self.call(
            Method::GET,
            &self.repo_path(&format!("commits/{sha}/pulls")),
            None,
        )
        .await
    }

    pub async fn issue_comments(&self, number: u64) -> Result<Vec<IssueComment>, ForgeError> {
        self.list(&self.repo_path(&format!("issues/{number}/comments")))
            .await
    }

    pub async fn create_comment(
        &self,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let path = self.repo_path(&format!("issues/{number}/comments"));
        self.call(Method::POST, &path, Some(&json!({ "body": body })))
            .await
    }

    pub async fn update_comment(
        &self,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let path = self.repo_path(&format!("issues/comments/{comment_id}"));
        self.call(Method::PATCH, &path, Some(&json!({ "body": body })))
            .await
    }

    /// `POST /repos/{owner}/{repo}/statuses/{sha}`.
    pub async fn post_status(
        &self,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let mut body = json!({ "state": state, "context": context, "description": description });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        self.send(
            Method::POST,
            &self.repo_path(&format!("statuses/{sha}")),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST /repos/{owner}/{repo}/check-runs`. `conclusion` `None` leaves
    /// the run `in_progress` (pending).
    pub async fn create_check_run(
        &self,
        sha: &str,
        name: &str,
        conclusion: Option<&str>,
        title: &str,
        summary: &str,
        details_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let mut body = json!({
            "name": name,
            "head_sha": sha,
            "output": { "title": title, "summary": summary },
        });
        match conclusion {
            Some(conclusion) => {
                body["status"] = json!("completed");
                body["conclusion"] = json!(conclusion);
            }
            None => body["status"] = json!("in_progress"),
        }
        if let Some(url) = details_url {
            body["details_url"] = json!(url);
        }
        self.send(Method::POST, &self.repo_path("check-runs"), Some(&body))
            .await
            .map(drop)
    }
}
