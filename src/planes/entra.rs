//! `entra`: the Microsoft Entra ID client-credentials grant (identity platform
//! v2.0), shared by the connectors that call Microsoft APIs with an app
//! registration: Intune through Graph, Configuration Manager through the cloud
//! management gateway.
//!
//! The token is cached and refreshed a little before it expires; a caller that
//! meets a 401 asks once more with `force`. The secret and the token are
//! [`Secret`]s and never reach an error or a log line.

use crate::planes::http::{code_for_status, retry_after_of, transport_error};
use crate::planes::{ConnectorError, ErrorCode, Secret};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Refresh a token this long before it expires (at most a tenth of its life).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// An app registration and where it signs in.
pub struct ClientCredentials {
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub token_endpoint: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `https://graph.microsoft.com/.default`, or the CMG server app's scope.
    pub scope: String,
}

struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

/// A token source for one app registration, shared by a connector's clones.
pub struct TokenCache {
    plane: &'static str,
    credentials: ClientCredentials,
    cached: Mutex<Option<CachedToken>>,
}

impl TokenCache {
    pub fn new(plane: &'static str, credentials: ClientCredentials) -> TokenCache {
        TokenCache {
            plane,
            credentials,
            cached: Mutex::new(None),
        }
    }

    /// A bearer token: the cached one unless it is due for refresh or `force`.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        force: bool,
    ) -> Result<Secret, ConnectorError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| !force && Instant::now() < token.refresh_at)
        {
            return Ok(token.value.clone());
        }
        let credentials = &self.credentials;
        let form = [
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.expose()),
            ("grant_type", "client_credentials"),
            ("scope", credentials.scope.as_str()),
        ];
        let response = http
            .post(&credentials.token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|error| {
                transport_error(
                    self.plane,
                    &Method::POST,
                    &credentials.token_endpoint,
                    &error,
                )
            })?;
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
                _ => code_for_status(status),
            };
            tracing::warn!(plane = self.plane, client_id = %credentials.client_id, status = status.as_u16(), error_code, "token request refused");
            return Err(ConnectorError::new(
                code,
                format!(
                    "the {} token endpoint refused client {} with HTTP {} ({error_code}); check tenant_id, client_id and the client secret",
                    self.plane,
                    credentials.client_id,
                    status.as_u16()
                ),
            )
            .with_retry_after(crate::planes::http::transient_retry_after(code, retry_after)));
        }
        let parsed: Value = serde_json::from_str(&body).map_err(|_| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "the {} token endpoint answered something other than a token; retry later",
                    self.plane
                ),
            )
        })?;
        let access_token = parsed
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!(
                        "the {} token endpoint's answer holds no access_token; retry later",
                        self.plane
                    ),
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
        tracing::debug!(plane = self.plane, client_id = %credentials.client_id, lifetime_seconds = lifetime.as_secs(), "token issued");
        Ok(token)
    }
}
