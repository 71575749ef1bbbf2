//! `awx`: a client of the AWX / Automation Controller API (`/api/v2/`), the
//! second way to run the Ansible plane: launch a job template, poll the job,
//! read the per-host summaries.
//!
//! As the reference (`execution-planes.md` 5.2) says: prompted launch fields are
//! honoured only when the template asks for them on launch, and otherwise come
//! back in `ignored_fields` while the job still launches. A job that silently
//! runs without the correlation id or the ring's limit is a wrong job, so a
//! non-empty `ignored_fields` is an error naming the fields and the fix.
//! [`simulator`] imitates the endpoints for tests.

pub mod simulator;

use crate::planes::http::{code_for_status, describe, retry_after_of, transport_error};
use crate::planes::{ConnectorError, ErrorCode, Secret};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
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
    /// The ring's inventory groups, `ring_canary:ring_pilot`.
    pub limit: String,
    pub job_type: JobType,
    pub diff_mode: bool,
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
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
    next: Option<String>,
}

/// A client of one controller, authenticated with an OAuth2 bearer token.
#[derive(Clone)]
pub struct AwxClient {
    http: reqwest::Client,
    /// `https://controller.example.com/api/v2`, no trailing slash.
    api: String,
    token: Secret,
}

impl std::fmt::Debug for AwxClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AwxClient")
            .field("api", &self.api)
            .field("token", &self.token)
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
            http,
            api: format!("{}/api/v2", base_url.trim_end_matches('/')),
            token,
        })
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ConnectorError> {
        let mut builder = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|error| transport_error("awx", &method, url, &error))?;
        let status = response.status();
        let retry_after = retry_after_of(&response);
        let text = response
            .text()
            .await
            .map_err(|error| transport_error("awx", &method, url, &error))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = code_for_status(status);
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            return Err(ConnectorError::new(
                code,
                format!(
                    "{method} {} on awx answered {status}: {detail}",
                    describe(url)
                ),
            )
            .with_retry_after(retry_after));
        }
        Ok((status, value))
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
        let mut url = format!("{}/jobs/{job_id}/job_host_summaries/", self.api);
        let root = self
            .api
            .strip_suffix("/api/v2")
            .unwrap_or(&self.api)
            .to_string();
        let mut summaries = Vec::new();
        loop {
            let (_, answer) = self.send(Method::GET, &url, None).await?;
            let page: Page<HostSummary> = serde_json::from_value(answer).map_err(|error| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("host summaries of job {job_id}: {error}"),
                )
            })?;
            summaries.extend(page.results);
            match page.next {
                Some(next) if next.starts_with('/') => url = format!("{root}{next}"),
                Some(next) => url = next,
                None => return Ok(summaries),
            }
        }
    }
}

#[cfg(test)]
mod tests;
