//! `client`: the AdminService over HTTP: the bearer token (Entra client
//! credentials, or a token file), requests through the shared send loop
//! (`planes::http_send`: the call budget, the 401 retry, coalesced reads),
//! OData paging (a
//! server's `@odata.nextLink` when it sends one, else `$top`/`$skip` until a
//! short page), and the mapping of answers to [`ConnectorError`]s.
//!
//! Nothing here retries or sleeps, except one new token after a 401. No query
//! string, header or token ever reaches an error or a log line.

use super::config::ResolvedAuth;
use crate::planes::budget::BudgetConfig;
use crate::planes::entra::TokenCache;
use crate::planes::http::{code_for_status, describe, odata_error_text, transient_retry_after};
use crate::planes::http_send::Transport;
use crate::planes::{ConnectorError, ErrorCode, Secret};
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const MAX_PAGES: usize = 10_000;

enum Credentials {
    Entra(TokenCache),
    TokenFile(PathBuf),
}

/// One AdminService client, shared by every clone of a connector.
pub struct AdminClient {
    /// The shared send loop: HTTP client, the plane's call budget,
    /// coalesced reads.
    transport: Transport,
    base_url: String,
    credentials: Credentials,
    page_size: usize,
}

fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::RateLimit => "the AdminService is throttling; retry after the wait",
        ErrorCode::InvalidCredentials => "check the connector's credentials",
        ErrorCode::Unauthorized => {
            "give the account a Configuration Manager security role that may deploy applications"
        }
        ErrorCode::ResourceNotFound => "the object does not exist on this site",
        ErrorCode::InvalidRequest => "the AdminService refused the request as sent",
        _ => "retry later",
    }
}

impl AdminClient {
    pub fn new(
        base_url: &str,
        auth: ResolvedAuth,
        request_timeout: Duration,
        budget: BudgetConfig,
        page_size: usize,
    ) -> Result<AdminClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let credentials = match auth {
            ResolvedAuth::Entra(credentials) => {
                Credentials::Entra(TokenCache::new("sccm", credentials))
            }
            ResolvedAuth::TokenFile(path) => Credentials::TokenFile(path),
        };
        Ok(AdminClient {
            transport: Transport::new("sccm", http, budget),
            base_url: base_url.trim_end_matches('/').to_string(),
            credentials,
            page_size: page_size.max(1),
        })
    }

    async fn token(&self, force: bool) -> Result<Secret, ConnectorError> {
        match &self.credentials {
            Credentials::Entra(cache) => cache.token(self.transport.http(), force).await,
            Credentials::TokenFile(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|_| {
                    ConnectorError::new(
                        ErrorCode::InvalidCredentials,
                        format!(
                            "cannot read the sccm bearer token file {}; check auth.path",
                            path.display()
                        ),
                    )
                })?;
                Ok(Secret::new(text.trim()))
            }
        }
    }

    fn url_of(&self, target: &str) -> Result<String, ConnectorError> {
        if target.starts_with('/') {
            return Ok(format!("{}{target}", self.base_url));
        }
        if target.starts_with(&format!("{}/", self.base_url)) {
            return Ok(target.to_string());
        }
        Err(ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the AdminService handed out a next page link outside base_url ({}); refusing to follow it",
                describe(target)
            ),
        ))
    }

    /// Sends one request (`target` under the base URL, e.g. `/wmi/SMS_Site`)
    /// through the shared send loop and answers its JSON (`Value::Null` when
    /// empty). A 401 gets one new token; a GET is a coalesced read.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<Value, ConnectorError> {
        let url = self.url_of(target)?;
        let operation = format!("{method} {}", describe(target));
        let prepare = |refresh: bool| {
            let (url, method) = (&url, &method);
            async move {
                let token = self.token(refresh).await?;
                let mut request = self
                    .transport
                    .http()
                    .request(method.clone(), url)
                    .bearer_auth(token.expose());
                if let Some(body) = body {
                    request = request.json(body);
                }
                Ok(Some(request))
            }
        };
        let answer = if method == Method::GET {
            self.transport.read(&operation, &url, prepare).await?
        } else {
            self.transport.exchange(&operation, prepare).await?
        };
        let (status, text) = (answer.status, answer.text);
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|_| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("{operation} on sccm: the answer is not JSON; retry later"),
                )
            });
        }
        let code = code_for_status(status);
        tracing::info!(operation = %operation, status = status.as_u16(), code = code.as_str(), "adminservice refused a request");
        Err(ConnectorError::new(
            code,
            format!(
                "{operation} on sccm answered HTTP {} ({}); {}",
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

    /// Every instance a query selects: `$top`/`$skip` pages until a short one,
    /// or the server's `@odata.nextLink` chain when it sends one.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>, ConnectorError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items: Vec<Value> = Vec::new();
        let mut next_link: Option<String> = None;
        let mut skip = 0;
        for _ in 0..MAX_PAGES {
            let target = match &next_link {
                Some(link) => link.clone(),
                None => format!("{path}{separator}$top={}&$skip={skip}", self.page_size),
            };
            let mut page = self.send(Method::GET, &target, None).await?;
            let values = match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => values,
                _ => Vec::new(),
            };
            let count = values.len();
            items.extend(values);
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(link) => next_link = Some(link.to_string()),
                None if next_link.is_none() && count == self.page_size => skip += count,
                None => return Ok(items),
            }
        }
        Err(ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "GET {} on sccm: more than {MAX_PAGES} pages; refusing to go on",
                describe(path)
            ),
        ))
    }
}
