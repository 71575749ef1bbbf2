//! `client`: the Landscape legacy API over HTTP (`<base_url>/api/`): each
//! request signed (HMAC-SHA256, signature version 2) or carrying the JWT of a
//! REST login, requests through the shared send loop (`planes::http_send`:
//! the call budget, the 401 retry, coalesced `Get*` reads), `limit`/`offset`
//! paging, and the mapping of answers to [`ConnectorError`]s.
//!
//! Requests are `POST` with every parameter (the signature included) in an
//! `application/x-www-form-urlencoded` body, as Canonical's client
//! (`landscape_api/base.py`) sends them. Nothing here retries or sleeps,
//! except one new login after a 401. No body (it holds the signature), header
//! or token ever reaches an error or a log line: requests are named by their
//! action.

use super::config::ResolvedAuth;
use super::signature::{self, API_VERSION, SIGNATURE_METHOD, SIGNATURE_VERSION, TIMESTAMP_FORMAT};
use crate::planes::budget::BudgetConfig;
use crate::planes::http::{
    code_for_status, encode_query_value, retry_after_of, transient_retry_after,
};
use crate::planes::http_send::{Transport, transport_failure};
use crate::planes::{ConnectorError, ErrorCode, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const MAX_PAGES: usize = 10_000;

enum Auth {
    Signed {
        access_key: String,
        secret_key: Secret,
    },
    Login {
        email: String,
        password: Secret,
        account: Option<String>,
        /// The JWT of the last login; a 401 replaces it once.
        token: tokio::sync::Mutex<Option<Secret>>,
    },
}

/// One Landscape client, shared by every clone of a connector.
pub struct LandscapeClient {
    /// The shared send loop: HTTP client, the plane's call budget,
    /// coalesced reads.
    transport: Transport,
    api_url: String,
    login_url: String,
    /// `host[:port]` as signed (lower case).
    signing_host: String,
    /// The path of `api_url` as signed (`/api/`).
    signing_path: String,
    auth: Auth,
    page_size: usize,
}

fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::RateLimit => "Landscape is throttling; retry after the wait",
        ErrorCode::InvalidCredentials => {
            "check the connector's access key and secret key (or email and password)"
        }
        ErrorCode::Unauthorized => {
            "give the API user a role that may manage packages on these computers"
        }
        ErrorCode::ResourceNotFound => "the object does not exist on this Landscape account",
        ErrorCode::InvalidRequest => "Landscape refused the request as sent",
        _ => "retry later",
    }
}

/// `{"error": "<Code>", "message": "..."}` (or a `MultiError`'s first entry).
fn error_of(body: &str) -> (Option<String>, String) {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let entry = parsed.as_ref().map(|value| {
        value
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|errors| errors.first())
            .unwrap_or(value)
    });
    let name = entry
        .and_then(|entry| entry.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message: String = entry
        .and_then(|entry| entry.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    (name, message)
}

/// The contract's code for an answer: the status, unless the body names an
/// authentication failure or an unknown object.
pub fn code_for(status: StatusCode, error_name: Option<&str>) -> ErrorCode {
    match error_name {
        Some("SignatureDoesNotMatch" | "AuthFailure" | "InvalidCredentials")
            if status.is_client_error() =>
        {
            ErrorCode::InvalidCredentials
        }
        Some("UnknownComputer") if status.is_client_error() => ErrorCode::ResourceNotFound,
        _ => code_for_status(status),
    }
}

fn transport_error(action: &str, error: &reqwest::Error) -> ConnectorError {
    transport_failure("landscape", action, error)
}

impl LandscapeClient {
    pub fn new(
        base_url: &str,
        auth: ResolvedAuth,
        request_timeout: Duration,
        budget: BudgetConfig,
        page_size: usize,
    ) -> Result<LandscapeClient, String> {
        let root = base_url.trim_end_matches('/');
        let api_url = format!("{root}/api/");
        let parsed = reqwest::Url::parse(&api_url).map_err(|error| error.to_string())?;
        let host = parsed.host_str().ok_or("base_url has no host")?;
        let signing_host = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
        .to_lowercase();
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| error.to_string())?;
        let auth = match auth {
            ResolvedAuth::Signed {
                access_key,
                secret_key,
            } => Auth::Signed {
                access_key,
                secret_key,
            },
            ResolvedAuth::Login {
                email,
                password,
                account,
            } => Auth::Login {
                email,
                password,
                account,
                token: tokio::sync::Mutex::new(None),
            },
        };
        Ok(LandscapeClient {
            transport: Transport::new("landscape", http, budget),
            signing_path: parsed.path().to_string(),
            login_url: format!("{root}/api/v2/login"),
            api_url,
            signing_host,
            auth,
            page_size: page_size.max(1),
        })
    }

    /// The current JWT, logging in when there is none or when `stale` is the
    /// one held (a 401 answered it).
    async fn token(&self, stale: Option<&Secret>) -> Result<Secret, ConnectorError> {
        let Auth::Login {
            email,
            password,
            account,
            token,
        } = &self.auth
        else {
            return Err(ConnectorError::new(
                ErrorCode::InvalidCredentials,
                "the landscape connector signs its requests; it has no login",
            ));
        };
        let mut held = token.lock().await;
        if let Some(current) = held.as_ref()
            && Some(current) != stale
        {
            return Ok(current.clone());
        }
        let mut body = json!({"email": email, "password": password.expose()});
        if let Some(account) = account {
            body["account"] = json!(account);
        }
        tracing::debug!(email = %email, "landscape login");
        let response = self
            .transport
            .send_unbudgeted(
                "POST /api/v2/login",
                self.transport.http().post(&self.login_url).json(&body),
            )
            .await?;
        let status = response.status();
        let retry_after = retry_after_of(&response);
        let text = response
            .text()
            .await
            .map_err(|error| transport_error("POST /api/v2/login", &error))?;
        if !status.is_success() {
            let (name, message) = error_of(&text);
            let code = match status.as_u16() {
                400 | 401 | 403 => ErrorCode::InvalidCredentials,
                _ => code_for(status, name.as_deref()),
            };
            return Err(ConnectorError::new(
                code,
                format!(
                    "POST /api/v2/login on landscape for {email} answered HTTP {} ({}: {message}); {}",
                    status.as_u16(),
                    name.as_deref().unwrap_or("no error name"),
                    hint(code)
                ),
            )
            .with_retry_after(transient_retry_after(code, retry_after)));
        }
        let fresh = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|answer| answer.get("token").and_then(Value::as_str).map(Secret::new))
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    "POST /api/v2/login on landscape answered without a token; retry later",
                )
            })?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// The form body of one request: every parameter, signed when the
    /// connector signs.
    fn form_of(&self, parameters: &mut Vec<(String, String)>) -> String {
        match &self.auth {
            Auth::Signed {
                access_key,
                secret_key,
            } => {
                parameters.extend([
                    ("access_key_id".to_string(), access_key.clone()),
                    ("signature_method".to_string(), SIGNATURE_METHOD.to_string()),
                    (
                        "signature_version".to_string(),
                        SIGNATURE_VERSION.to_string(),
                    ),
                    (
                        "timestamp".to_string(),
                        chrono::Utc::now().format(TIMESTAMP_FORMAT).to_string(),
                    ),
                ]);
                let to_sign = signature::string_to_sign(
                    "POST",
                    &self.signing_host,
                    &self.signing_path,
                    parameters,
                );
                let signed = signature::sign(secret_key.expose(), &to_sign);
                format!(
                    "{}&signature={}",
                    signature::canonical_query(parameters),
                    encode_query_value(&signed)
                )
            }
            Auth::Login { .. } => signature::canonical_query(parameters),
        }
    }

    /// Calls one legacy action through the shared send loop and answers its
    /// JSON. A 401 on a login token gets one new login; a `Get*` action is a
    /// coalesced read (keyed by the action and its parameters, never by the
    /// signature).
    pub async fn call(
        &self,
        action: &str,
        parameters: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        let login = matches!(self.auth, Auth::Login { .. });
        // The token the last attempt carried: a 401 replaces exactly it.
        let used: std::sync::Mutex<Option<Secret>> = std::sync::Mutex::new(None);
        let prepare = |refresh: bool| {
            let used = &used;
            async move {
                if refresh && !login {
                    // A signed request has no other credential to try.
                    return Ok(None);
                }
                let mut all: Vec<(String, String)> = vec![
                    ("action".to_string(), action.to_string()),
                    ("version".to_string(), API_VERSION.to_string()),
                ];
                all.extend(
                    parameters
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.clone())),
                );
                let form = self.form_of(&mut all);
                let mut request = self
                    .transport
                    .http()
                    .request(Method::POST, &self.api_url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form);
                if login {
                    let stale = if refresh {
                        used.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .clone()
                    } else {
                        None
                    };
                    let token = self.token(stale.as_ref()).await?;
                    request = request.bearer_auth(token.expose());
                    *used
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
                }
                Ok(Some(request))
            }
        };
        let answer = if action.starts_with("Get") {
            let key = parameters
                .iter()
                .fold(action.to_string(), |key, (name, value)| {
                    format!(
                        "{key}&{}={}",
                        encode_query_value(name),
                        encode_query_value(value)
                    )
                });
            self.transport.read(action, &key, prepare).await?
        } else {
            self.transport.exchange(action, prepare).await?
        };
        let (status, text) = (answer.status, answer.text);
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|_| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("{action} on landscape: the answer is not JSON; retry later"),
                )
            });
        }
        let (name, message) = error_of(&text);
        let code = code_for(status, name.as_deref());
        tracing::info!(
            action,
            status = status.as_u16(),
            code = code.as_str(),
            "landscape refused a request"
        );
        Err(ConnectorError::new(
            code,
            format!(
                "{action} on landscape answered HTTP {} ({}: {message}); {}",
                status.as_u16(),
                name.as_deref().unwrap_or("no error name"),
                hint(code)
            ),
        )
        .with_retry_after(transient_retry_after(code, answer.retry_after)))
    }

    /// The shared send loop.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Every item a list action answers: `limit`/`offset` pages until a short one.
    pub async fn list(
        &self,
        action: &str,
        parameters: &[(&str, String)],
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut items: Vec<Value> = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut paged: Vec<(&str, String)> = parameters.to_vec();
            paged.push(("limit", self.page_size.to_string()));
            paged.push(("offset", items.len().to_string()));
            let page = match self.call(action, &paged).await? {
                Value::Array(values) => values,
                Value::Object(mut object) => match object.remove("results") {
                    Some(Value::Array(values)) => values,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            let count = page.len();
            items.extend(page);
            if count < self.page_size {
                return Ok(items);
            }
        }
        Err(ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("{action} on landscape: more than {MAX_PAGES} pages; refusing to go on"),
        ))
    }
}
