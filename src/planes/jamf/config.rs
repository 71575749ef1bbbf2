//! `config`: how a Jamf Pro connector is configured: the server URL, how it
//! authenticates (an API client's OAuth client credentials, or a user
//! account's bearer token), paging, timeouts and the connection cap.
//!
//! ```yaml
//! type: jamf
//! base_url: https://contoso.jamfcloud.com
//! auth:
//!   type: client_credentials
//!   client_id: 3f1c2a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b
//!   client_secret_env: JAMF_CLIENT_SECRET
//! page_size: 100
//! max_connections: 5
//! request_timeout_seconds: 30
//! ```
//!
//! Secrets never sit in the file: they come from an environment variable or a
//! file, and are held as [`Secret`].

use crate::planes::Secret;
use crate::planes::budget::BudgetConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Jamf asks API clients for no more than five concurrent connections.
pub const MAX_CONNECTIONS: usize = 5;

/// How the connector proves who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JamfAuth {
    /// An API client (Jamf Pro 10.49 and later): `POST /api/v1/oauth/token`
    /// with `grant_type=client_credentials`.
    ClientCredentials {
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret_env: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret_file: Option<PathBuf>,
    },
    /// A user account: `POST /api/v1/auth/token` with HTTP Basic, for
    /// servers older than API clients.
    BasicBearer {
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<PathBuf>,
    },
}

/// One Jamf Pro server as the daemon reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JamfConfig {
    /// `https://<instance>.jamfcloud.com` or an on-premises server root.
    pub base_url: String,
    pub auth: JamfAuth,
    /// `page-size` of Jamf Pro API lists (packages, inventory).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Concurrent requests, at most [`MAX_CONNECTIONS`].
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    #[serde(
        rename = "request_timeout_seconds",
        with = "crate::planes::seconds::single",
        default = "default_request_timeout"
    )]
    pub request_timeout: Duration,
    /// The plane's call budget (`crate::planes::budget`); Jamf's documented
    /// limit (five connections) and a site-capacity rate when absent. Its
    /// concurrency never exceeds `max_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
}

fn default_page_size() -> usize {
    100
}

fn default_connections() -> usize {
    MAX_CONNECTIONS
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

impl JamfConfig {
    pub fn new(base_url: &str, auth: JamfAuth) -> JamfConfig {
        JamfConfig {
            base_url: base_url.into(),
            auth,
            page_size: default_page_size(),
            max_connections: default_connections(),
            request_timeout: default_request_timeout(),
            budget: None,
        }
    }

    /// The call budget in force: the configured one (or Jamf's default),
    /// with at most `max_connections` requests in flight.
    pub fn call_budget(&self) -> BudgetConfig {
        let mut budget = self.budget.unwrap_or_else(BudgetConfig::jamf);
        let connections = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        budget.concurrency = budget.concurrency.min(connections).max(1);
        budget
    }
}

/// A Jamf Pro configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum JamfConfigError {
    #[error("jamf connector: base_url {value:?} is not an http(s) URL")]
    BadUrl { value: String },
    #[error(
        "jamf connector: base_url {value:?} sends credentials over plain http; use https (plain http is only for a simulator on loopback)"
    )]
    PlainHttp { value: String },
    #[error("jamf connector: {field} is empty or holds whitespace, ':' or '/'")]
    BadIdentifier { field: &'static str },
    #[error("jamf connector: set exactly one of {env_field} and {file_field}")]
    SecretSource {
        env_field: &'static str,
        file_field: &'static str,
    },
    #[error("jamf connector: environment variable {name} ({field}) is not set or is empty")]
    SecretEnvironment { name: String, field: &'static str },
    #[error("jamf connector: cannot read {} : {source}", path.display())]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("jamf connector: {} is empty", path.display())]
    EmptySecretFile { path: PathBuf },
    #[error("jamf connector: {field} must be above zero")]
    NotPositive { field: &'static str },
    #[error(
        "jamf connector: max_connections {value} is above {MAX_CONNECTIONS}; Jamf allows an API client no more than {MAX_CONNECTIONS} concurrent connections"
    )]
    TooManyConnections { value: usize },
    #[error("jamf connector: {reason}")]
    Budget { reason: String },
    #[error("jamf connector: page_size {value} is above 2000, the largest page Jamf serves")]
    PageTooLarge { value: usize },
    #[error("jamf connector: cannot build the HTTP client: {reason}")]
    Http { reason: String },
}

/// The credentials, read from their sources.
pub enum ResolvedAuth {
    ClientCredentials { client_id: String, secret: Secret },
    BasicBearer { username: String, password: Secret },
}

fn check_url(value: &str) -> Result<(), JamfConfigError> {
    if let Some(rest) = value.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return match host {
            "127.0.0.1" | "localhost" | "[::1]" => Ok(()),
            "" => Err(JamfConfigError::BadUrl {
                value: value.into(),
            }),
            _ => Err(JamfConfigError::PlainHttp {
                value: value.into(),
            }),
        };
    }
    match value.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(JamfConfigError::BadUrl {
            value: value.into(),
        }),
    }
}

fn read_secret_file(path: &PathBuf) -> Result<Secret, JamfConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| JamfConfigError::SecretFile {
        path: path.clone(),
        source,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(JamfConfigError::EmptySecretFile { path: path.clone() });
    }
    Ok(Secret::new(secret))
}

fn read_secret(
    env: &Option<String>,
    file: &Option<PathBuf>,
    env_field: &'static str,
    file_field: &'static str,
) -> Result<Secret, JamfConfigError> {
    match (env, file) {
        (Some(name), None) => match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            _ => Err(JamfConfigError::SecretEnvironment {
                name: name.clone(),
                field: env_field,
            }),
        },
        (None, Some(path)) => read_secret_file(path),
        _ => Err(JamfConfigError::SecretSource {
            env_field,
            file_field,
        }),
    }
}

fn check_identifier(value: &str, field: &'static str) -> Result<(), JamfConfigError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == '/')
    {
        return Err(JamfConfigError::BadIdentifier { field });
    }
    Ok(())
}

impl JamfConfig {
    /// Every check, and the credentials read from their sources.
    pub fn resolve(&self) -> Result<ResolvedAuth, JamfConfigError> {
        check_url(&self.base_url)?;
        if self.page_size == 0 {
            return Err(JamfConfigError::NotPositive { field: "page_size" });
        }
        if self.page_size > 2000 {
            return Err(JamfConfigError::PageTooLarge {
                value: self.page_size,
            });
        }
        if self.max_connections == 0 {
            return Err(JamfConfigError::NotPositive {
                field: "max_connections",
            });
        }
        if let Some(budget) = &self.budget {
            budget
                .check()
                .map_err(|reason| JamfConfigError::Budget { reason })?;
        }
        if self.max_connections > MAX_CONNECTIONS {
            return Err(JamfConfigError::TooManyConnections {
                value: self.max_connections,
            });
        }
        if self.request_timeout.is_zero() {
            return Err(JamfConfigError::NotPositive {
                field: "request_timeout_seconds",
            });
        }
        match &self.auth {
            JamfAuth::ClientCredentials {
                client_id,
                client_secret_env,
                client_secret_file,
            } => {
                check_identifier(client_id, "auth.client_id")?;
                let secret = read_secret(
                    client_secret_env,
                    client_secret_file,
                    "client_secret_env",
                    "client_secret_file",
                )?;
                Ok(ResolvedAuth::ClientCredentials {
                    client_id: client_id.clone(),
                    secret,
                })
            }
            JamfAuth::BasicBearer {
                username,
                password_env,
                password_file,
            } => {
                check_identifier(username, "auth.username")?;
                let password =
                    read_secret(password_env, password_file, "password_env", "password_file")?;
                Ok(ResolvedAuth::BasicBearer {
                    username: username.clone(),
                    password,
                })
            }
        }
    }
}
