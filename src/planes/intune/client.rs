//! `client`: Microsoft Graph over HTTP for the Intune connector: the
//! client-credentials token (cached, refreshed before it expires and once after
//! a 401), the concurrency cap and request budget, `client-request-id`,
//! `@odata.nextLink` paging, and the mapping of Graph answers to
//! [`ConnectorError`]s.
//!
//! Nothing here retries a failed request or sleeps: a 429 or 5xx goes back to the
//! caller with its `Retry-After`. No URL query (a SAS signature), header, body or
//! token is ever put in an error or a log line.

use super::budget::ClientBudget;
use crate::planes::{ConnectorError, ErrorCode, Secret};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

/// Refresh a token this long before Graph says it expires.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// A lookup that needs more pages than this is a plane gone wrong.
const MAX_PAGES: usize = 10_000;

/// Where and how to authenticate, resolved from the configuration.
pub struct ClientSettings {
    pub base_url: String,
    pub token_endpoint: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub budget: ClientBudget,
}

struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

/// One Graph client, shared by every clone of a connector.
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    token_endpoint: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    token: Mutex<Option<CachedToken>>,
    permits: Semaphore,
    budget: ClientBudget,
}

/// What a request sends.
pub enum Payload<'a> {
    Empty,
    Json(&'a Value),
}

/// The HTTP verb and the plane object a request is about, for error messages.
pub struct Call<'a> {
    pub method: Method,
    /// A path under the base URL (`/beta/deviceAppManagement/...`), or an
    /// `@odata.nextLink` the plane handed out.
    pub target: &'a str,
    /// The correlation id, sent as `client-request-id`.
    pub correlation_id: &'a str,
}

/// The path of a URL without its query, for messages (a query may hold a SAS
/// signature or a filter with names in it).
pub fn describe(target: &str) -> String {
    let without_query = target.split('?').next().unwrap_or_default();
    match without_query.find("://") {
        Some(scheme_end) => {
            let after_host = without_query[scheme_end + 3..]
                .find('/')
                .map(|slash| &without_query[scheme_end + 3 + slash..]);
            after_host.unwrap_or("/").to_string()
        }
        None => without_query.to_string(),
    }
}

fn transport_error(method: &Method, target: &str, error: &reqwest::Error) -> ConnectorError {
    let what = format!("{method} {} on intune", describe(target));
    if error.is_timeout() {
        ConnectorError::new(
            ErrorCode::Timeout,
            format!(
                "{what}: no answer in time; it may have been applied, retry with the same correlation id"
            ),
        )
    } else if error.is_connect() {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("{what}: could not connect to Graph; check base_url and the network"),
        )
    } else {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("{what}: the connection failed before an answer; retry later"),
        )
    }
}

/// `Retry-After` as seconds (possibly fractional) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Graph's error body, `{"error": {"code", "message", "innerError": {...}}}`.
fn graph_error_text(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let code = error
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str);
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str);
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {}", truncate(message, 300)),
        (Some(code), None) => code.to_string(),
        _ => "no Graph error body".to_string(),
    }
}

fn truncate(text: &str, limit: usize) -> &str {
    match text.char_indices().nth(limit) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// The contract's HTTP mapping (`docs/connectors.md` section 3).
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        429 => ErrorCode::RateLimit,
        401 => ErrorCode::InvalidCredentials,
        403 => ErrorCode::Unauthorized,
        404 => ErrorCode::ResourceNotFound,
        408 => ErrorCode::Timeout,
        400 | 409 | 412 | 422 => ErrorCode::InvalidRequest,
        _ => ErrorCode::ServiceUnavailable,
    }
}

fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::RateLimit => "Graph is throttling; retry after the wait",
        ErrorCode::InvalidCredentials => "check the app registration's client secret",
        ErrorCode::Unauthorized => {
            "grant the app DeviceManagementApps.ReadWrite.All and GroupMember.Read.All"
        }
        ErrorCode::ResourceNotFound => "the object does not exist on this tenant",
        ErrorCode::InvalidRequest => "Graph refused the request as sent",
        _ => "retry later",
    }
}

impl GraphClient {
    pub fn new(settings: ClientSettings) -> Result<GraphClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(GraphClient {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            token_endpoint: settings.token_endpoint,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            scope: settings.scope,
            token: Mutex::new(None),
            permits: Semaphore::new(settings.max_concurrent_requests.max(1)),
            budget: settings.budget,
        })
    }

    /// A bearer token, from the cache unless it is due for refresh (or `force`).
    async fn token(&self, force: bool) -> Result<Secret, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| !force && Instant::now() < token.refresh_at)
        {
            return Ok(token.value.clone());
        }
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("grant_type", "client_credentials"),
            ("scope", self.scope.as_str()),
        ];
        let method = Method::POST;
        let response = self
            .http
            .post(&self.token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|error| transport_error(&method, &self.token_endpoint, &error))?;
        let status = response.status();
        let retry_after = retry_after_of(&response);
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let parsed: Option<Value> = serde_json::from_str(&body).ok();
            let error_code = parsed
                .as_ref()
                .and_then(|value| value.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            let code = match status.as_u16() {
                400 | 401 => ErrorCode::InvalidCredentials,
                other => code_for_status(StatusCode::from_u16(other).unwrap_or(status)),
            };
            tracing::warn!(client_id = %self.client_id, status = status.as_u16(), error_code, "intune token request refused");
            return Err(ConnectorError::new(
                code,
                format!(
                    "the token endpoint refused client {} with HTTP {} ({error_code}); check tenant_id, client_id and the client secret",
                    self.client_id,
                    status.as_u16()
                ),
            )
            .with_retry_after(retry_after));
        }
        let parsed: Value = serde_json::from_str(&body).map_err(|_| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                "the token endpoint answered something other than a token; retry later",
            )
        })?;
        let access_token = parsed
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    "the token endpoint's answer holds no access_token; retry later",
                )
            })?;
        let lifetime = Duration::from_secs(
            parsed
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(3599),
        );
        let margin = TOKEN_REFRESH_MARGIN.min(lifetime / 10);
        let token = Secret::new(access_token);
        *cached = Some(CachedToken {
            value: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        tracing::debug!(client_id = %self.client_id, lifetime_seconds = lifetime.as_secs(), "intune token issued");
        Ok(token)
    }

    fn url_of(&self, target: &str) -> Result<String, ConnectorError> {
        if target.starts_with('/') {
            return Ok(format!("{}{target}", self.base_url));
        }
        // An @odata.nextLink: followed as given, but only to the plane itself,
        // so the bearer token never leaves for another host.
        if target.starts_with(&format!("{}/", self.base_url)) {
            return Ok(target.to_string());
        }
        Err(ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "Graph handed out a next page link outside base_url ({}); refusing to follow it",
                describe(target)
            ),
        ))
    }

    /// Sends one Graph request and answers its JSON body (`Value::Null` for
    /// 204). A 401 refreshes the token and sends the request once more.
    pub async fn send(
        &self,
        call: &Call<'_>,
        payload: Payload<'_>,
    ) -> Result<Value, ConnectorError> {
        let url = self.url_of(call.target)?;
        let operation = format!("{} {}", call.method, describe(call.target));
        let is_write = call.method != Method::GET;
        let _permit = self.permits.acquire().await.map_err(|_| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                "the intune connector is shutting down",
            )
        })?;
        let mut refreshed = false;
        loop {
            self.budget.admit(is_write, &operation)?;
            let token = self.token(refreshed).await?;
            let mut request = self
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(token.expose())
                .header("client-request-id", call.correlation_id)
                .header("return-client-request-id", "true");
            if let Payload::Json(body) = payload {
                request = request.json(body);
            }
            tracing::debug!(operation = %operation, correlation_id = call.correlation_id, "graph request");
            let response = request
                .send()
                .await
                .map_err(|error| transport_error(&call.method, call.target, &error))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                tracing::debug!(operation = %operation, "graph answered 401; refreshing the token once");
                refreshed = true;
                continue;
            }
            let retry_after = retry_after_of(&response);
            let text = response
                .text()
                .await
                .map_err(|error| transport_error(&call.method, call.target, &error))?;
            if status.is_success() {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|_| {
                    ConnectorError::new(
                        ErrorCode::ServiceUnavailable,
                        format!("{operation} on intune: the answer is not JSON; retry later"),
                    )
                });
            }
            let code = code_for_status(status);
            tracing::info!(operation = %operation, status = status.as_u16(), code = code.as_str(), "graph refused a request");
            return Err(ConnectorError::new(
                code,
                format!(
                    "{operation} on intune answered HTTP {} ({}); {}",
                    status.as_u16(),
                    graph_error_text(&text),
                    hint(code)
                ),
            )
            .with_retry_after(
                if code == ErrorCode::RateLimit || code == ErrorCode::ServiceUnavailable {
                    retry_after
                } else {
                    None
                },
            ));
        }
    }

    /// Every item of a collection, following `@odata.nextLink` to the end.
    pub async fn get_all(
        &self,
        path: &str,
        correlation_id: &str,
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(target) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!(
                        "GET {} on intune: more than {MAX_PAGES} pages; refusing to go on",
                        describe(path)
                    ),
                ));
            }
            let call = Call {
                method: Method::GET,
                target: &target,
                correlation_id,
            };
            let mut page = self.send(&call, Payload::Empty).await?;
            if let Some(Value::Array(values)) = page.get_mut("value").map(Value::take) {
                items.extend(values);
            }
            next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(items)
    }

    /// A PUT to Azure Blob storage through a SAS URL (no bearer token: the
    /// signature in the URL is the credential).
    pub async fn put_blob(
        &self,
        sas_url: &str,
        body: Vec<u8>,
        blob_type: bool,
    ) -> Result<(), ConnectorError> {
        let operation = format!("PUT {} (upload)", describe(sas_url));
        let _permit = self.permits.acquire().await.map_err(|_| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                "the intune connector is shutting down",
            )
        })?;
        let mut request = self.http.put(sas_url).body(body);
        if blob_type {
            request = request.header("x-ms-blob-type", "BlockBlob");
        }
        let response = request
            .send()
            .await
            .map_err(|error| transport_error(&Method::PUT, sas_url, &error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after_of(&response);
        let code = code_for_status(status);
        Err(ConnectorError::new(
            code,
            format!(
                "{operation} answered HTTP {}; {}",
                status.as_u16(),
                hint(code)
            ),
        )
        .with_retry_after(
            retry_after.filter(|_| code.class() == crate::planes::ErrorClass::Transient),
        ))
    }
}

fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after)
}
