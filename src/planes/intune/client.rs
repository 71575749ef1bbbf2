//! `client`: Microsoft Graph over HTTP for the Intune connector: the
//! client-credentials token (`planes::entra`: cached, refreshed before it
//! expires and once after a 401), the concurrency cap and request budget, `client-request-id`,
//! `@odata.nextLink` paging, and the mapping of Graph answers to
//! [`ConnectorError`]s.
//!
//! Nothing here retries a failed request or sleeps: a 429 or 5xx goes back to the
//! caller with its `Retry-After`. No URL query (a SAS signature), header, body or
//! token is ever put in an error or a log line.

use super::budget::ClientBudget;
use crate::planes::budget::BudgetConfig;
use crate::planes::entra::{ClientCredentials, TokenCache};
use crate::planes::http::{
    code_for_status, describe, odata_error_text, retry_after_of, transient_retry_after,
    transport_error,
};
use crate::planes::http_send::Transport;
use crate::planes::{ConnectorError, ErrorCode};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A lookup that needs more pages than this is a plane gone wrong.
const MAX_PAGES: usize = 10_000;

/// Where and how to authenticate, resolved from the configuration.
pub struct ClientSettings {
    pub base_url: String,
    pub credentials: ClientCredentials,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub budget: ClientBudget,
    /// The plane's call budget (rate, concurrency, priorities, back-off).
    pub call_budget: BudgetConfig,
}

/// One Graph client, shared by every clone of a connector.
pub struct GraphClient {
    /// The shared send loop: HTTP client, the plane's call budget,
    /// coalesced reads.
    transport: Transport,
    base_url: String,
    tokens: TokenCache,
    /// Blob uploads (outside Graph's budget: Azure Storage, not Graph).
    permits: Semaphore,
    /// Graph's documented windows (100 writes and 1,000 requests per 20 s),
    /// refusing at once on the wall clock, before the call budget's turn.
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
            transport: Transport::new("intune", http, settings.call_budget),
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            tokens: TokenCache::new("intune", settings.credentials),
            permits: Semaphore::new(settings.max_concurrent_requests.max(1)),
            budget: settings.budget,
        })
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

    /// Sends one Graph request through the shared send loop
    /// (`planes::http_send`) and answers its JSON body (`Value::Null` for
    /// 204). A 401 refreshes the token and sends the request once more; a
    /// GET is a coalesced read.
    pub async fn send(
        &self,
        call: &Call<'_>,
        payload: Payload<'_>,
    ) -> Result<Value, ConnectorError> {
        let url = self.url_of(call.target)?;
        let operation = format!("{} {}", call.method, describe(call.target));
        // A report (`POST /deviceManagement/reports/...`) reads: it spends
        // the window of all requests, not the write window, and it is
        // coalesced like a GET, keyed by its body too.
        let is_report = call.method == Method::POST && call.target.contains("/reports/");
        let is_write = call.method != Method::GET && !is_report;
        self.budget.admit(is_write, &operation)?;
        let prepare = |refresh: bool| {
            let url = &url;
            let payload = &payload;
            async move {
                let token = self.tokens.token(self.transport.http(), refresh).await?;
                let mut request = self
                    .transport
                    .http()
                    .request(call.method.clone(), url)
                    .bearer_auth(token.expose())
                    .header("client-request-id", call.correlation_id)
                    .header("return-client-request-id", "true");
                if let Payload::Json(body) = payload {
                    request = request.json(body);
                }
                Ok(Some(request))
            }
        };
        let read_key = match (&call.method, &payload) {
            (&Method::GET, _) => Some(url.clone()),
            (_, Payload::Json(body)) if is_report => Some(format!("{url} {body}")),
            _ => None,
        };
        let answer = match read_key {
            Some(key) => self.transport.read(&operation, &key, prepare).await?,
            None => self.transport.exchange(&operation, prepare).await?,
        };
        let status = answer.status;
        let text = answer.text;
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
        Err(ConnectorError::new(
            code,
            format!(
                "{operation} on intune answered HTTP {} ({}); {}",
                status.as_u16(),
                odata_error_text(&text),
                hint(code)
            ),
        )
        .with_retry_after(transient_retry_after(code, answer.retry_after)))
    }

    /// The shared send loop.
    pub fn transport(&self) -> &Transport {
        &self.transport
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
        let mut request = self.transport.http().put(sas_url).body(body);
        if blob_type {
            request = request.header("x-ms-blob-type", "BlockBlob");
        }
        let response = request
            .send()
            .await
            .map_err(|error| transport_error("intune", &Method::PUT, sas_url, &error))?;
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
        .with_retry_after(transient_retry_after(code, retry_after)))
    }
}
