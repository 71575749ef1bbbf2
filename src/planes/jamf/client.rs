//! `client`: Jamf Pro over HTTP: the bearer token (an API client's OAuth
//! client credentials at `/api/v1/oauth/token` (the path of Jamf's current
//! description), or a user's token from
//! `/api/v1/auth/token`), cached and refreshed before it expires or once after
//! a 401; the plane's call budget (`crate::planes::budget`: at most five
//! connections, a rate, priorities, back-off on 429/503; every clone shares
//! it, and a request holds its turn across
//! the token request too); Jamf Pro API paging (`page`/`page-size`,
//! `totalCount`); the load balancer's session cookie, sent back on every
//! later request so that dependent writes reach the same Jamf Cloud node; and
//! the mapping of answers, Jamf Pro API JSON errors and
//! Classic HTML error pages alike, to [`ConnectorError`]s.
//!
//! Nothing here retries or sleeps, except one new token after a 401. No query
//! string, header or token ever reaches an error or a log line.

use super::config::ResolvedAuth;
use crate::planes::budget::{BudgetConfig, PlaneBudget};
use crate::planes::http::{code_for_status, describe, retry_after_of, transient_retry_after};
use crate::planes::http_send::Transport;
use crate::planes::{ConnectorError, ErrorCode, Secret};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

const MAX_PAGES: usize = 10_000;

/// What a request carries.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    Xml(&'a str),
}

/// A non-success answer the caller wanted to see rather than an error.
pub struct Refusal {
    pub status: StatusCode,
    pub text: String,
}

struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

/// One Jamf Pro client, shared by every clone of a connector.
pub struct JamfClient {
    /// The shared send loop: the plane's call budget (rate, connections,
    /// priorities, back-off), the load balancer's session cookies (`APBALANCEID`,
    /// `AWSALB`, ...: Jamf Cloud asks clients to keep the sticky session for
    /// dependent writes), coalesced reads.
    transport: Transport,
    base_url: String,
    auth: ResolvedAuth,
    token: Mutex<Option<CachedToken>>,
    page_size: usize,
}

fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::RateLimit => "Jamf Pro is throttling; retry after the wait",
        ErrorCode::InvalidCredentials => "check the connector's Jamf Pro credentials",
        ErrorCode::Unauthorized => {
            "give the API client's role the privileges to read and write packages, policies and computers"
        }
        ErrorCode::ResourceNotFound => "the object does not exist on this Jamf Pro server",
        ErrorCode::InvalidRequest => "Jamf Pro refused the request as sent",
        _ => "retry later",
    }
}

fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

/// The text of a Jamf error answer: the Jamf Pro API's
/// `{"httpStatus", "errors": [{"code", "field", "description"}]}`, an OAuth
/// `{"error"}`, or the paragraphs of a Classic HTML error page.
pub fn error_text(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        if let Some(errors) = value.get("errors").and_then(Value::as_array) {
            let parts: Vec<String> = errors
                .iter()
                .map(|error| {
                    let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or("");
                    match text("field") {
                        "" => format!("{} {}", text("code"), text("description")),
                        field => format!("{} on {field}: {}", text("code"), text("description")),
                    }
                })
                .collect();
            return truncate(&parts.join("; "), 300);
        }
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return truncate(error, 100);
        }
    }
    let paragraphs: Vec<String> = body
        .split("<p")
        .skip(1)
        .filter_map(|part| part.split_once('>').map(|(_, rest)| rest))
        .filter_map(|part| part.split("</p>").next())
        .map(strip_tags)
        .filter(|part| !part.is_empty())
        .collect();
    let chosen = paragraphs
        .iter()
        .find(|paragraph| paragraph.starts_with("Error"))
        .or(paragraphs.first());
    match chosen {
        Some(paragraph) => truncate(paragraph, 300),
        None if body.trim().is_empty() => "no error body".to_string(),
        None => "an error page".to_string(),
    }
}

fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut inside = false;
    for character in html.chars() {
        match character {
            '<' => inside = true,
            '>' => inside = false,
            other if !inside => text.push(other),
            _ => {}
        }
    }
    text.trim().to_string()
}

/// Whether a Classic answer is Jamf's duplicate-name refusal.
pub fn is_duplicate_name(refusal: &Refusal) -> bool {
    refusal.status == StatusCode::CONFLICT && refusal.text.contains("Duplicate name")
}

/// Whether a Jamf Pro API answer refuses a duplicate value of `field`
/// (`DUPLICATE_FIELD`; the HTTP status is [U], 400 or 409).
pub fn is_duplicate_field(refusal: &Refusal, field: &str) -> bool {
    matches!(refusal.status.as_u16(), 400 | 409)
        && serde_json::from_str::<Value>(&refusal.text)
            .ok()
            .and_then(|value| value.get("errors").cloned())
            .and_then(|errors| errors.as_array().cloned())
            .is_some_and(|errors| {
                errors.iter().any(|error| {
                    error.get("code").and_then(Value::as_str) == Some("DUPLICATE_FIELD")
                        && error.get("field").and_then(Value::as_str) == Some(field)
                })
            })
}

impl JamfClient {
    pub fn new(
        base_url: &str,
        auth: ResolvedAuth,
        request_timeout: Duration,
        budget: BudgetConfig,
        page_size: usize,
    ) -> Result<JamfClient, reqwest::Error> {
        let connections = usize::try_from(budget.concurrency)
            .unwrap_or(1)
            .clamp(1, super::config::MAX_CONNECTIONS);
        let budget = BudgetConfig {
            concurrency: u32::try_from(connections).unwrap_or(1),
            ..budget
        };
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .pool_max_idle_per_host(connections)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(JamfClient {
            transport: Transport::new("jamf", http, budget).with_session_cookies(),
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
            token: Mutex::new(None),
            page_size: page_size.max(1),
        })
    }

    async fn fetch_token(&self) -> Result<(Secret, Duration), ConnectorError> {
        let (url, request, who) = match &self.auth {
            ResolvedAuth::ClientCredentials { client_id, secret } => {
                let url = format!("{}/api/v1/oauth/token", self.base_url);
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.expose()),
                ];
                let request = self.transport.http().post(&url).form(&form);
                (url, request, format!("API client {client_id}"))
            }
            ResolvedAuth::BasicBearer { username, password } => {
                let url = format!("{}/api/v1/auth/token", self.base_url);
                let request = self
                    .transport
                    .http()
                    .post(&url)
                    .basic_auth(username, Some(password.expose()));
                (url, request, format!("user {username}"))
            }
        };
        let response = self
            .transport
            .send_unbudgeted(
                &format!("POST {}", describe(&url)),
                request.header(ACCEPT, "application/json"),
            )
            .await?;
        let status = response.status();
        let retry_after = retry_after_of(&response);
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let code = match status.as_u16() {
                400 | 401 => ErrorCode::InvalidCredentials,
                _ => code_for_status(status),
            };
            tracing::warn!(plane = "jamf", who = %who, status = status.as_u16(), "token request refused");
            return Err(ConnectorError::new(
                code,
                format!(
                    "POST {} on jamf refused {who} with HTTP {} ({}); check the credentials and that the client is enabled",
                    describe(&url),
                    status.as_u16(),
                    error_text(&body)
                ),
            )
            .with_retry_after(transient_retry_after(code, retry_after)));
        }
        let unreadable = || {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                "the jamf token endpoint answered something other than a token; retry later",
            )
        };
        let parsed: Value = serde_json::from_str(&body).map_err(|_| unreadable())?;
        let (token, lifetime) = match &self.auth {
            ResolvedAuth::ClientCredentials { .. } => (
                parsed.get("access_token").and_then(Value::as_str),
                parsed
                    .get("expires_in")
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs),
            ),
            ResolvedAuth::BasicBearer { .. } => (
                parsed.get("token").and_then(Value::as_str),
                parsed
                    .get("expires")
                    .and_then(Value::as_str)
                    .and_then(|expires| chrono::DateTime::parse_from_rfc3339(expires).ok())
                    .and_then(|expires| {
                        (expires.with_timezone(&chrono::Utc) - chrono::Utc::now())
                            .to_std()
                            .ok()
                    }),
            ),
        };
        let token = token.ok_or_else(unreadable)?;
        tracing::debug!(plane = "jamf", who = %who, "token issued");
        Ok((
            Secret::new(token),
            lifetime.unwrap_or(Duration::from_secs(300)),
        ))
    }

    /// A bearer token: the cached one unless it is due for refresh or `force`.
    async fn bearer(&self, force: bool) -> Result<Secret, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| !force && Instant::now() < token.refresh_at)
        {
            return Ok(token.value.clone());
        }
        let (token, lifetime) = self.fetch_token().await?;
        let margin = Duration::from_secs(60).min(lifetime / 10);
        *cached = Some(CachedToken {
            value: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok(token)
    }

    /// Sends one request (`target` under the base URL) through the shared
    /// send loop (`planes::http_send`) and answers the body text, or the
    /// refusal when its status is in `allowed`. A 401 gets one new token; a
    /// GET is a coalesced read.
    pub async fn exchange(
        &self,
        method: Method,
        target: &str,
        body: Body<'_>,
        allowed: &[u16],
    ) -> Result<Result<String, Refusal>, ConnectorError> {
        let url = format!("{}{target}", self.base_url);
        let operation = format!("{method} {}", describe(target));
        let accept = if target.starts_with("/JSSResource/") {
            "application/xml"
        } else {
            "application/json"
        };
        let prepare = |refresh: bool| {
            let (url, method, body) = (&url, &method, &body);
            async move {
                let token = self.bearer(refresh).await?;
                let request = self
                    .transport
                    .http()
                    .request(method.clone(), url)
                    .bearer_auth(token.expose())
                    .header(ACCEPT, accept);
                Ok(Some(match body {
                    Body::None => request,
                    Body::Json(value) => request.json(value),
                    Body::Xml(text) => request
                        .header(CONTENT_TYPE, "text/xml")
                        .body(text.to_string()),
                }))
            }
        };
        let answer = if method == Method::GET {
            self.transport.read(&operation, target, prepare).await?
        } else {
            self.transport.exchange(&operation, prepare).await?
        };
        let status = answer.status;
        if status.is_success() {
            return Ok(Ok(answer.text));
        }
        if allowed.contains(&status.as_u16()) {
            return Ok(Err(Refusal {
                status,
                text: answer.text,
            }));
        }
        Err(self.refused(&operation, status, &answer.text, answer.retry_after))
    }

    /// The error for a refusal the caller did not expect.
    pub fn refused(
        &self,
        operation: &str,
        status: StatusCode,
        text: &str,
        retry_after: Option<Duration>,
    ) -> ConnectorError {
        let code = code_for_status(status);
        tracing::info!(operation = %operation, status = status.as_u16(), code = code.as_str(), "jamf refused a request");
        ConnectorError::new(
            code,
            format!(
                "{operation} on jamf answered HTTP {} ({}); {}",
                status.as_u16(),
                error_text(text),
                hint(code)
            ),
        )
        .with_retry_after(transient_retry_after(code, retry_after))
    }

    /// Sends one request and answers the body text; every refusal is an error.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        body: Body<'_>,
    ) -> Result<String, ConnectorError> {
        match self.exchange(method.clone(), target, body, &[]).await? {
            Ok(text) => Ok(text),
            Err(refusal) => Err(self.refused(
                &format!("{method} {}", describe(target)),
                refusal.status,
                &refusal.text,
                None,
            )),
        }
    }

    /// A JSON answer of the Jamf Pro API.
    pub async fn send_json(
        &self,
        method: Method,
        target: &str,
        body: Body<'_>,
    ) -> Result<Value, ConnectorError> {
        let text = self.send(method.clone(), target, body).await?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| unreadable(&method, target, "JSON"))
    }

    /// The plane's call budget.
    pub fn budget(&self) -> &PlaneBudget {
        self.transport.budget()
    }

    /// The shared send loop.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Items per page this client asks for.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Every result of a Jamf Pro API list: `page=0,1,...` of `page-size`
    /// until `totalCount` results (or an empty page) have come.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>, ConnectorError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut results: Vec<Value> = Vec::new();
        for page in 0..MAX_PAGES {
            let target = format!("{path}{separator}page={page}&page-size={}", self.page_size);
            let mut answer = self.send_json(Method::GET, &target, Body::None).await?;
            let total = answer
                .get("totalCount")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let items = match answer.get_mut("results").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let empty = items.is_empty();
            results.extend(items);
            if empty || results.len() as u64 >= total {
                return Ok(results);
            }
        }
        Err(ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "GET {} on jamf: more than {MAX_PAGES} pages; refusing to go on",
                describe(path)
            ),
        ))
    }
}

/// The error for an answer that does not parse.
pub fn unreadable(method: &Method, target: &str, kind: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ServiceUnavailable,
        format!(
            "{method} {} on jamf: the answer is not the {kind} expected; retry later",
            describe(target)
        ),
    )
}
