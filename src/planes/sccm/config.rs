//! `config`: how a Configuration Manager connector is configured: the
//! AdminService URL, how it authenticates, where package content lies, and
//! paging, concurrency and timeouts. `{"type": "sccm", "base_url":
//! "https://cm01.contoso.com/AdminService", "auth": {"type":
//! "entra_client_credentials", ...}, "content_location": "\\\\fs01\\packages"}`.
//!
//! The AdminService documents Windows integrated authentication on the site's
//! network and Entra ID tokens through a cloud management gateway. This
//! connector speaks bearer tokens: Entra client credentials (the CMG path), or
//! a token file another process keeps fresh (e.g. a Kerberos-to-bearer
//! sidecar). Negotiate/NTLM itself is not implemented.

use crate::planes::Secret;
use crate::planes::entra::ClientCredentials;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How the connector proves who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SccmAuth {
    /// Entra ID client credentials, for an AdminService behind a cloud
    /// management gateway.
    EntraClientCredentials {
        /// The identity platform authority (`https://login.microsoftonline.com`).
        #[serde(default = "default_token_url")]
        token_url: String,
        tenant_id: String,
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret_env: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret_file: Option<PathBuf>,
        /// The CMG server app's scope, `api://<app id>/.default`.
        scope: String,
    },
    /// A bearer token in a file, read again after a 401.
    BearerTokenFile { path: PathBuf },
}

fn default_token_url() -> String {
    "https://login.microsoftonline.com".into()
}

/// One Configuration Manager site as the daemon reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SccmConfig {
    /// The AdminService root: `https://<SMS Provider>/AdminService`.
    pub base_url: String,
    pub auth: SccmAuth,
    /// The UNC share holding package content; a version's deployment type
    /// reads `<content_location>\<application>\<version>\`.
    pub content_location: String,
    /// What ring collections are limited to (All Systems by default).
    #[serde(default = "default_limiting_collection")]
    pub limiting_collection_id: String,
    /// `$top` of list requests (the server may page further with nextLink).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    #[serde(
        rename = "request_timeout_seconds",
        with = "crate::planes::seconds::single",
        default = "default_request_timeout"
    )]
    pub request_timeout: Duration,
    /// The plane's call budget (`crate::planes::budget`: rate, concurrency,
    /// priorities, back-off on 429/503, coalesced status reads); the site-capacity default (600 requests a minute)
    /// with ``max_concurrent_requests`` requests in flight when absent. Its concurrency never
    /// exceeds ``max_concurrent_requests``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::planes::budget::BudgetConfig>,
}

fn default_limiting_collection() -> String {
    "SMS00001".into()
}

fn default_page_size() -> usize {
    500
}

fn default_concurrency() -> usize {
    4
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SccmConfig {
    pub fn new(base_url: &str, auth: SccmAuth, content_location: &str) -> SccmConfig {
        SccmConfig {
            base_url: base_url.into(),
            auth,
            content_location: content_location.into(),
            limiting_collection_id: default_limiting_collection(),
            page_size: default_page_size(),
            max_concurrent_requests: default_concurrency(),
            request_timeout: default_request_timeout(),
            budget: None,
        }
    }
}

/// A Configuration Manager configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SccmConfigError {
    #[error("sccm connector: {field} {value:?} is not an http(s) URL")]
    BadUrl { field: &'static str, value: String },
    #[error(
        "sccm connector: {field} {value:?} sends credentials over plain http; use https (plain http is only for a simulator on loopback)"
    )]
    PlainHttp { field: &'static str, value: String },
    #[error("sccm connector: {field} is empty or holds '/' or whitespace")]
    BadIdentifier { field: &'static str },
    #[error("sccm connector: content_location {value:?} is not a UNC path (\\\\server\\share)")]
    BadContentLocation { value: String },
    #[error("sccm connector: set exactly one of client_secret_env and client_secret_file")]
    SecretSource,
    #[error(
        "sccm connector: environment variable {name} (client_secret_env) is not set or is empty"
    )]
    SecretEnvironment { name: String },
    #[error("sccm connector: cannot read {} : {source}", path.display())]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sccm connector: {} is empty", path.display())]
    EmptySecretFile { path: PathBuf },
    #[error("sccm connector: {field} must be above zero")]
    NotPositive { field: &'static str },
    #[error("sccm connector: cannot build the HTTP client: {reason}")]
    Http { reason: String },
}

fn check_url(value: &str, field: &'static str) -> Result<(), SccmConfigError> {
    if let Some(rest) = value.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return match host {
            "127.0.0.1" | "localhost" | "[::1]" => Ok(()),
            "" => Err(SccmConfigError::BadUrl {
                field,
                value: value.into(),
            }),
            _ => Err(SccmConfigError::PlainHttp {
                field,
                value: value.into(),
            }),
        };
    }
    match value.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(SccmConfigError::BadUrl {
            field,
            value: value.into(),
        }),
    }
}

fn read_secret_file(path: &PathBuf) -> Result<Secret, SccmConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| SccmConfigError::SecretFile {
        path: path.clone(),
        source,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SccmConfigError::EmptySecretFile { path: path.clone() });
    }
    Ok(Secret::new(secret))
}

/// The bearer token source, resolved.
pub enum ResolvedAuth {
    Entra(ClientCredentials),
    TokenFile(PathBuf),
}

impl SccmConfig {
    /// Every check, and the credentials read from their sources.
    pub fn resolve(&self) -> Result<ResolvedAuth, SccmConfigError> {
        check_url(&self.base_url, "base_url")?;
        let location = &self.content_location;
        if !location.starts_with("\\\\") || location.len() < 5 {
            return Err(SccmConfigError::BadContentLocation {
                value: location.clone(),
            });
        }
        if self.limiting_collection_id.is_empty()
            || self.limiting_collection_id.contains(['/', ' ', '\''])
        {
            return Err(SccmConfigError::BadIdentifier {
                field: "limiting_collection_id",
            });
        }
        if let Some(budget) = &self.budget
            && budget.check().is_err()
        {
            return Err(SccmConfigError::NotPositive { field: "budget" });
        }
        for (value, field) in [
            (self.page_size, "page_size"),
            (self.max_concurrent_requests, "max_concurrent_requests"),
        ] {
            if value == 0 {
                return Err(SccmConfigError::NotPositive { field });
            }
        }
        if self.request_timeout.is_zero() {
            return Err(SccmConfigError::NotPositive {
                field: "request_timeout_seconds",
            });
        }
        match &self.auth {
            SccmAuth::BearerTokenFile { path } => {
                read_secret_file(path)?;
                Ok(ResolvedAuth::TokenFile(path.clone()))
            }
            SccmAuth::EntraClientCredentials {
                token_url,
                tenant_id,
                client_id,
                client_secret_env,
                client_secret_file,
                scope,
            } => {
                check_url(token_url, "auth.token_url")?;
                for (value, field) in [
                    (tenant_id, "auth.tenant_id"),
                    (client_id, "auth.client_id"),
                    (scope, "auth.scope"),
                ] {
                    if value.is_empty()
                        || value.chars().any(char::is_whitespace)
                        || (field != "auth.scope" && value.contains('/'))
                    {
                        return Err(SccmConfigError::BadIdentifier { field });
                    }
                }
                let client_secret = match (client_secret_env, client_secret_file) {
                    (Some(name), None) => match std::env::var(name) {
                        Ok(value) if !value.trim().is_empty() => Secret::new(value.trim()),
                        _ => return Err(SccmConfigError::SecretEnvironment { name: name.clone() }),
                    },
                    (None, Some(path)) => read_secret_file(path)?,
                    _ => return Err(SccmConfigError::SecretSource),
                };
                Ok(ResolvedAuth::Entra(ClientCredentials {
                    token_endpoint: format!(
                        "{}/{tenant_id}/oauth2/v2.0/token",
                        token_url.trim_end_matches('/')
                    ),
                    client_id: client_id.clone(),
                    client_secret,
                    scope: scope.clone(),
                }))
            }
        }
    }
}

impl SccmConfig {
    /// The call budget in force: the configured one, or the site-capacity default (600 requests a minute), with at most
    /// `max_concurrent_requests` requests in flight.
    pub fn call_budget(&self) -> crate::planes::budget::BudgetConfig {
        crate::planes::budget::BudgetConfig::in_force(
            self.budget,
            crate::planes::budget::BudgetConfig::sccm(),
            self.max_concurrent_requests,
        )
    }
}
