//! `awx`: a client of the AWX / Automation Controller API (`/api/v2/`), the
//! second way to run the Ansible plane: launch a job template, poll the job,
//! read the per-host summaries.
//!
//! As the reference (`execution-planes.md` 5.2) says: prompted launch fields are
//! honoured only when the template asks for them on launch, and otherwise come
//! back in `ignored_fields` while the job still launches. A job that silently
//! runs without the correlation id or the ring's limit is a wrong job, so a
//! non-empty `ignored_fields` is an error naming the fields and the fix.
//! [`simulator`] imitates the endpoints for tests; [`AwxConnector`] is the
//! connector built on this client.
//!
//! Lists (`jobs/`, inventory groups, group hosts, host summaries) are paged
//! with `page_size` and followed through `next` to the end. A 401 re-reads the
//! token file (when the token comes from one) and, if the token changed,
//! repeats the request once: the one retry the contract allows.

mod config;
mod connector;
mod history;
mod remediation;
pub mod simulator;

pub use config::{AwxConfig, AwxConfigError, CorrelationLookup};
pub use connector::AwxConnector;

use crate::planes::budget::{BudgetConfig, PlaneBudget};
use crate::planes::http::{code_for_status, describe, encode_query_value, transient_retry_after};
use crate::planes::http_send::Transport;
use crate::planes::{ConnectorError, ErrorCode, Secret};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// `run` applies, `check` is Ansible's check mode (drift).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    Run,
    Check,
}

/// The body of `POST job_templates/{id}/launch/`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchRequest {
    pub extra_vars: Map<String, Value>,
    /// An Ansible host pattern: the ring's inventory groups less the
    /// excluded ones, `ring_canary:ring_pilot:!kiosks`, or host names.
    pub limit: String,
    /// Sent only when set: a template that does not ask for it on launch
    /// would answer it in `ignored_fields`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_type: Option<JobType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_mode: Option<bool>,
}

/// AWX's job status enum (`awx/main/models/unified_jobs.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    New,
    Pending,
    Waiting,
    Running,
    Successful,
    Failed,
    Error,
    Canceled,
}

impl JobStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Successful | JobStatus::Failed | JobStatus::Error | JobStatus::Canceled
        )
    }
}

/// The fields of `GET jobs/{id}/` the connector reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Job {
    pub id: u64,
    pub status: JobStatus,
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub job_explanation: String,
}

/// One row of `GET jobs/`: what the connector reads to find its jobs again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobSummary {
    pub id: u64,
    #[serde(default)]
    pub job_template: Option<u64>,
    pub status: JobStatus,
    #[serde(default)]
    pub limit: String,
    /// AWX answers a JSON text; an object is accepted too.
    #[serde(default)]
    pub extra_vars: Value,
    #[serde(default)]
    pub job_type: Option<String>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
}

impl JobSummary {
    /// The job's extra variables as an object (empty when unreadable).
    pub fn variables(&self) -> Map<String, Value> {
        match &self.extra_vars {
            Value::Object(map) => map.clone(),
            Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
            _ => Map::new(),
        }
    }
}

/// One row of `GET jobs/{id}/job_host_summaries/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    pub host_name: String,
    #[serde(default)]
    pub ok: u32,
    #[serde(default)]
    pub changed: u32,
    #[serde(default)]
    pub failures: u32,
    /// Unreachable tasks.
    #[serde(default)]
    pub dark: u32,
    #[serde(default)]
    pub skipped: u32,
    /// The field list is [U] in the reference: `failed` is read when
    /// `failures` and `dark` are absent.
    #[serde(default)]
    pub failed: bool,
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Named {
    id: u64,
    name: String,
}

/// A client of one controller, authenticated with an OAuth2 bearer token.
#[derive(Clone)]
pub struct AwxClient {
    /// The shared send loop (HTTP client, the plane's call budget,
    /// coalesced reads), shared by clones.
    transport: Arc<Transport>,
    /// `https://controller.example.com/api/v2`, no trailing slash.
    api: String,
    token: Arc<RwLock<Secret>>,
    /// Read again after a 401: an operator or a sidecar rotates it there.
    token_file: Option<PathBuf>,
    /// `page_size` of every list request.
    page_size: usize,
}

impl std::fmt::Debug for AwxClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AwxClient")
            .field("api", &self.api)
            .field("token", &"***")
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl AwxClient {
    /// `base_url` is the controller's root (`https://controller.example.com`).
    pub fn new(
        base_url: &str,
        token: Secret,
        timeout: Duration,
    ) -> Result<AwxClient, ConnectorError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| {
                ConnectorError::new(
                    ErrorCode::InvalidRequest,
                    format!("awx http client: {error}"),
                )
            })?;
        Ok(AwxClient {
            transport: Arc::new(Transport::new("awx", http, BudgetConfig::awx())),
            api: format!("{}/api/v2", base_url.trim_end_matches('/')),
            token: Arc::new(RwLock::new(token)),
            token_file: None,
            page_size: 200,
        })
    }

    /// The token is read again from `path` after a 401.
    pub fn with_token_file(mut self, path: PathBuf) -> AwxClient {
        self.token_file = Some(path);
        self
    }

    /// The call budget `budget` (its concurrency: requests in flight); lists
    /// asked in pages of `page_size`.
    pub fn with_limits(mut self, budget: BudgetConfig, page_size: usize) -> AwxClient {
        let http = self.transport.http().clone();
        self.transport = Arc::new(Transport::new("awx", http, budget));
        self.page_size = page_size.max(1);
        self
    }

    /// The plane's call budget, shared by clones.
    pub fn budget(&self) -> &PlaneBudget {
        self.transport.budget()
    }

    /// The shared send loop.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn token(&self) -> Secret {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// After a 401: whether the token file now holds another token (it is
    /// then the client's token).
    async fn refreshed_token(&self) -> bool {
        let Some(path) = &self.token_file else {
            return false;
        };
        let Ok(text) = tokio::fs::read_to_string(path).await else {
            return false;
        };
        let fresh = text.trim();
        if fresh.is_empty() || fresh == self.token().expose() {
            return false;
        }
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = Secret::new(fresh);
        tracing::info!(path = %path.display(), "awx token re-read after a 401");
        true
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ConnectorError> {
        self.send_accepting(method, url, body, &[]).await
    }

    /// [`Self::send`], taking the statuses in `also_ok` as answers too. One
    /// request through the shared send loop (`planes::http_send`); a 401
    /// repeats it once when the token file holds another token; a GET is a
    /// coalesced read.
    async fn send_accepting(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        also_ok: &[StatusCode],
    ) -> Result<(StatusCode, Value), ConnectorError> {
        let operation = format!("{method} {}", describe(url));
        let prepare = |refresh: bool| {
            let method = &method;
            async move {
                if refresh && !self.refreshed_token().await {
                    return Ok(None);
                }
                let mut builder = self
                    .transport
                    .http()
                    .request(method.clone(), url)
                    .bearer_auth(self.token().expose());
                if let Some(body) = body {
                    builder = builder.json(body);
                }
                Ok(Some(builder))
            }
        };
        let answer = if method == Method::GET {
            self.transport.read(&operation, url, prepare).await?
        } else {
            self.transport.exchange(&operation, prepare).await?
        };
        let status = answer.status;
        let value: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        if !status.is_success() && !also_ok.contains(&status) {
            let code = code_for_status(status);
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let detail: String = detail.chars().take(300).collect();
            let fix = match status.as_u16() {
                401 => "; check the token (token_env or token_file)",
                403 => "; grant the token's user execute on the template and read on the inventory",
                _ => "",
            };
            return Err(ConnectorError::new(
                code,
                format!("{operation} on awx answered {status}: {detail}{fix}"),
            )
            .with_retry_after(transient_retry_after(code, answer.retry_after)));
        }
        Ok((status, value))
    }

    /// Every item of a list, following `next` (relative or absolute) to the end.
    async fn list<T: DeserializeOwned>(&self, first: String) -> Result<Vec<T>, ConnectorError> {
        let root = self
            .api
            .strip_suffix("/api/v2")
            .unwrap_or(&self.api)
            .to_string();
        let separator = if first.contains('?') { '&' } else { '?' };
        let mut url = format!("{first}{separator}page_size={}", self.page_size);
        let mut items = Vec::new();
        loop {
            let (_, answer) = self.send(Method::GET, &url, None).await?;
            let page: Page<T> = serde_json::from_value(answer).map_err(|error| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!(
                        "GET {} on awx answered an unreadable page: {error}",
                        describe(&url)
                    ),
                )
            })?;
            items.extend(page.results);
            match page.next {
                Some(next) if next.starts_with('/') => url = format!("{root}{next}"),
                Some(next) => url = next,
                None => return Ok(items),
            }
        }
    }

    /// Every job matching `filters` (`job_template__in=1,2&order_by=id`).
    pub async fn jobs(&self, filters: &str) -> Result<Vec<JobSummary>, ConnectorError> {
        self.list(format!("{}/jobs/?{filters}", self.api)).await
    }

    /// The id of the inventory group named `name`, if the inventory has one.
    pub async fn group_id(
        &self,
        inventory: u64,
        name: &str,
    ) -> Result<Option<u64>, ConnectorError> {
        let url = format!(
            "{}/inventories/{inventory}/groups/?name={}",
            self.api,
            encode_query_value(name)
        );
        let groups: Vec<Named> = self.list(url).await?;
        Ok(groups
            .into_iter()
            .find(|group| group.name == name)
            .map(|group| group.id))
    }

    /// The names of every host of a group, its child groups' included.
    pub async fn group_hosts(&self, group: u64) -> Result<Vec<String>, ConnectorError> {
        let hosts: Vec<Named> = self
            .list(format!("{}/groups/{group}/all_hosts/", self.api))
            .await?;
        Ok(hosts.into_iter().map(|host| host.name).collect())
    }

    /// Launches the template; answers the job id. Any ignored field is an error.
    pub async fn launch(
        &self,
        template_id: u64,
        request: &LaunchRequest,
    ) -> Result<u64, ConnectorError> {
        let url = format!("{}/job_templates/{template_id}/launch/", self.api);
        let body = serde_json::to_value(request).unwrap_or(Value::Null);
        let (_, answer) = self.send(Method::POST, &url, Some(&body)).await?;
        if let Some(ignored) = answer.get("ignored_fields").and_then(Value::as_object)
            && !ignored.is_empty()
        {
            let fields: Vec<&str> = ignored.keys().map(String::as_str).collect();
            return Err(ConnectorError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "job template {template_id} ignored {} on launch (job {} runs without them); \
                     enable ask_*_on_launch for them on the template",
                    fields.join(", "),
                    answer.get("job").and_then(Value::as_u64).unwrap_or(0)
                ),
            ));
        }
        answer
            .get("job")
            .or_else(|| answer.get("id"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("launch of job template {template_id} answered no job id"),
                )
            })
    }

    /// Asks AWX to cancel the job (`POST jobs/{id}/cancel/`): `true` when
    /// it was still new, pending, waiting or running (202), `false` when it
    /// had already finished (AWX answers 405: it can no longer be canceled).
    pub async fn cancel(&self, job_id: u64) -> Result<bool, ConnectorError> {
        let url = format!("{}/jobs/{job_id}/cancel/", self.api);
        let (status, _) = self
            .send_accepting(Method::POST, &url, None, &[StatusCode::METHOD_NOT_ALLOWED])
            .await?;
        Ok(status != StatusCode::METHOD_NOT_ALLOWED)
    }

    /// One poll of the job.
    pub async fn job(&self, job_id: u64) -> Result<Job, ConnectorError> {
        let url = format!("{}/jobs/{job_id}/", self.api);
        let (_, answer) = self.send(Method::GET, &url, None).await?;
        serde_json::from_value(answer).map_err(|error| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!("job {job_id} answered an unreadable body: {error}"),
            )
        })
    }

    /// Polls every `interval` until the job is final, at most `max_polls` times;
    /// a job still running after that is a timeout (poll again later).
    pub async fn wait(
        &self,
        job_id: u64,
        interval: Duration,
        max_polls: u32,
    ) -> Result<Job, ConnectorError> {
        for poll in 0..max_polls {
            if poll > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            let job = self.job(job_id).await?;
            if job.status.is_final() {
                return Ok(job);
            }
        }
        Err(ConnectorError::new(
            ErrorCode::Timeout,
            format!("job {job_id} is not finished after {max_polls} polls; poll it again later"),
        ))
    }

    /// Every host summary of the job, following `next` across pages.
    pub async fn host_summaries(&self, job_id: u64) -> Result<Vec<HostSummary>, ConnectorError> {
        self.list(format!("{}/jobs/{job_id}/job_host_summaries/", self.api))
            .await
    }
}

#[cfg(test)]
mod tests;
