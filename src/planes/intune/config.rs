//! `config`: how an Intune connector is configured in the daemon's config, and
//! its validation into a Graph client: `{"type": "intune", "tenant_id": ...,
//! "client_id": ..., "client_secret_env": "RINGMASTER_INTUNE_SECRET", "content":
//! {"from": "directory", "path": "/srv/artifacts"}}`.
//!
//! The client secret is read from an environment variable or a file when the
//! connector is built, and held as a [`Secret`] from then on.

use super::budget::{ClientBudget, RequestBudget};
use super::client::ClientSettings;
use super::upload::ContentSource;
use crate::planes::Secret;
use crate::planes::entra::ClientCredentials;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// One Intune tenant as the daemon reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntuneConfig {
    /// Microsoft Graph, without a version: `https://graph.microsoft.com`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The identity platform authority: the token is asked for at
    /// `{token_url}/{tenant_id}/oauth2/v2.0/token`.
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// The Entra tenant (directory) id.
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret (trailing whitespace ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Where package bytes come from.
    pub content: ContentSource,
    /// POST/PUT/PATCH/DELETE budget (default: Intune applications service, 100
    /// per 20 s per app per tenant).
    #[serde(default = "RequestBudget::intune_writes")]
    pub write_budget: RequestBudget,
    /// Budget of all requests (default 1,000 per 20 s per app per tenant).
    #[serde(default = "RequestBudget::intune_all")]
    pub request_budget: RequestBudget,
    /// Requests in flight at once, across every clone of the connector.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// A request with no answer after this long is a `timeout`.
    #[serde(
        rename = "request_timeout_seconds",
        with = "crate::planes::seconds::single",
        default = "default_request_timeout"
    )]
    pub request_timeout: Duration,
    /// The plane's call budget (`crate::planes::budget`: rate, concurrency,
    /// priorities, back-off on 429/503, coalesced status reads); Graph's
    /// documented 1,000 requests per 20 s with `max_concurrent_requests` in
    /// flight when absent. Its concurrency never exceeds
    /// `max_concurrent_requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::planes::budget::BudgetConfig>,
    /// Wait between polls of a content file's upload state.
    #[serde(
        rename = "upload_poll_interval_seconds",
        with = "crate::planes::seconds::single",
        default = "default_poll_interval"
    )]
    pub upload_poll_interval: Duration,
}

fn default_base_url() -> String {
    "https://graph.microsoft.com".into()
}

fn default_token_url() -> String {
    "https://login.microsoftonline.com".into()
}

fn default_scope() -> String {
    "https://graph.microsoft.com/.default".into()
}

fn default_concurrency() -> usize {
    4
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}

impl IntuneConfig {
    /// A configuration with the defaults and the secret in `client_secret_file`.
    pub fn new(tenant_id: &str, client_id: &str, content: ContentSource) -> IntuneConfig {
        IntuneConfig {
            base_url: default_base_url(),
            token_url: default_token_url(),
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret_env: None,
            client_secret_file: None,
            scope: default_scope(),
            content,
            write_budget: RequestBudget::intune_writes(),
            request_budget: RequestBudget::intune_all(),
            max_concurrent_requests: default_concurrency(),
            request_timeout: default_request_timeout(),
            budget: None,
            upload_poll_interval: default_poll_interval(),
        }
    }
}

/// An Intune configuration that cannot be built, naming the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum IntuneConfigError {
    #[error(
        "intune connector: {field} is empty or holds '/' or whitespace; set it to the Entra {what}"
    )]
    BadIdentifier {
        field: &'static str,
        what: &'static str,
    },
    #[error("intune connector: {field} {value:?} is not an http(s) URL")]
    BadUrl { field: &'static str, value: String },
    #[error(
        "intune connector: {field} {value:?} sends credentials over plain http; use https (plain http is only for a simulator on loopback)"
    )]
    PlainHttp { field: &'static str, value: String },
    #[error("intune connector: set exactly one of client_secret_env and client_secret_file")]
    SecretSource,
    #[error(
        "intune connector: environment variable {name} (client_secret_env) is not set or is empty"
    )]
    SecretEnvironment { name: String },
    #[error("intune connector: cannot read client_secret_file {}: {source}", path.display())]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("intune connector: client_secret_file {} is empty", path.display())]
    EmptySecretFile { path: PathBuf },
    #[error("intune connector: {field} must be above zero")]
    NotPositive { field: &'static str },
    #[error("intune connector: cannot build the HTTP client: {reason}")]
    Http { reason: String },
}

fn check_identifier(
    value: &str,
    field: &'static str,
    what: &'static str,
) -> Result<(), IntuneConfigError> {
    if value.is_empty() || value.contains('/') || value.chars().any(char::is_whitespace) {
        return Err(IntuneConfigError::BadIdentifier { field, what });
    }
    Ok(())
}

fn check_url(value: &str, field: &'static str) -> Result<(), IntuneConfigError> {
    let bad = || IntuneConfigError::BadUrl {
        field,
        value: value.into(),
    };
    if let Some(rest) = value.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(IntuneConfigError::PlainHttp {
                field,
                value: value.into(),
            });
        }
        return if host.is_empty() { Err(bad()) } else { Ok(()) };
    }
    match value.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(bad()),
    }
}

fn check_budget(budget: &RequestBudget, field: &'static str) -> Result<(), IntuneConfigError> {
    if budget.requests == 0 || budget.window_seconds.is_zero() {
        return Err(IntuneConfigError::NotPositive { field });
    }
    Ok(())
}

impl IntuneConfig {
    /// Every check that does not need the secret.
    pub fn validate(&self) -> Result<(), IntuneConfigError> {
        check_identifier(&self.tenant_id, "tenant_id", "tenant (directory) id")?;
        check_identifier(&self.client_id, "client_id", "application (client) id")?;
        check_url(&self.base_url, "base_url")?;
        check_url(&self.token_url, "token_url")?;
        check_budget(&self.write_budget, "write_budget")?;
        check_budget(&self.request_budget, "request_budget")?;
        if let Some(budget) = &self.budget
            && budget.check().is_err()
        {
            return Err(IntuneConfigError::NotPositive { field: "budget" });
        }
        if self.max_concurrent_requests == 0 {
            return Err(IntuneConfigError::NotPositive {
                field: "max_concurrent_requests",
            });
        }
        if self.request_timeout.is_zero() {
            return Err(IntuneConfigError::NotPositive {
                field: "request_timeout_seconds",
            });
        }
        match (&self.client_secret_env, &self.client_secret_file) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(IntuneConfigError::SecretSource),
        }
    }

    /// Reads the client secret from its source.
    pub fn client_secret(&self) -> Result<Secret, IntuneConfigError> {
        if let Some(name) = &self.client_secret_env {
            return match std::env::var(name) {
                Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
                _ => Err(IntuneConfigError::SecretEnvironment { name: name.clone() }),
            };
        }
        let path = self
            .client_secret_file
            .as_ref()
            .ok_or(IntuneConfigError::SecretSource)?;
        let text =
            std::fs::read_to_string(path).map_err(|source| IntuneConfigError::SecretFile {
                path: path.clone(),
                source,
            })?;
        let secret = text.trim_end();
        if secret.is_empty() {
            return Err(IntuneConfigError::EmptySecretFile { path: path.clone() });
        }
        Ok(Secret::new(secret))
    }

    pub(super) fn client_settings(&self) -> Result<ClientSettings, IntuneConfigError> {
        self.validate()?;
        Ok(ClientSettings {
            base_url: self.base_url.clone(),
            credentials: ClientCredentials {
                token_endpoint: format!(
                    "{}/{}/oauth2/v2.0/token",
                    self.token_url.trim_end_matches('/'),
                    self.tenant_id
                ),
                client_id: self.client_id.clone(),
                client_secret: self.client_secret()?,
                scope: self.scope.clone(),
            },
            request_timeout: self.request_timeout,
            max_concurrent_requests: self.max_concurrent_requests,
            budget: ClientBudget::new(self.write_budget, self.request_budget),
            call_budget: self.call_budget(),
        })
    }
}

impl IntuneConfig {
    /// The call budget in force: the configured one, or Graph's documented
    /// 1,000 requests per 20 s, with at most `max_concurrent_requests`
    /// requests in flight.
    pub fn call_budget(&self) -> crate::planes::budget::BudgetConfig {
        crate::planes::budget::BudgetConfig::in_force(
            self.budget,
            crate::planes::budget::BudgetConfig::intune(),
            self.max_concurrent_requests,
        )
    }
}
