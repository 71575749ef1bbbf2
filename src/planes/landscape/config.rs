//! `config`: how a Landscape connector is configured: the server root, how it
//! authenticates, where its journal lives, and paging, concurrency and timeouts.
//!
//! ```yaml
//! type: landscape
//! base_url: https://landscape.example.com
//! auth:
//!   type: legacy_api
//!   access_key: 3OTS8UWJOH4XBSRMSOYQ
//!   secret_key_env: LANDSCAPE_SECRET_KEY
//! journal: /var/lib/ringmaster/landscape-journal.sqlite
//! page_size: 1000
//! max_concurrency: 4
//! request_timeout_seconds: 30
//! ```
//!
//! Two documented ways in (reference 4.1): the signed legacy API (an access
//! key and a secret key, every request signed), and the REST login
//! (`POST /api/v2/login` with email, password and account, then the JWT as a
//! bearer token on the legacy API). The journal is required: Landscape keeps no
//! client-supplied id on an activity, so the connector remembers its own.

use crate::planes::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How the connector proves who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LandscapeAuth {
    /// Every legacy request signed with HMAC-SHA256 (signature version 2).
    LegacyApi {
        access_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_key_env: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_key_file: Option<PathBuf>,
    },
    /// `POST /api/v2/login`, then `Authorization: Bearer <jwt>` on the legacy API.
    RestLogin {
        email: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<PathBuf>,
        /// The account to act in, when the user belongs to several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
    },
}

/// One Landscape server (or SaaS account) as the daemon reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandscapeConfig {
    /// The server root: the legacy API is `<base_url>/api/`, the REST login
    /// `<base_url>/api/v2/login`.
    pub base_url: String,
    pub auth: LandscapeAuth,
    /// The SQLite file mapping correlation ids to activity ids. A restarted
    /// daemon must find the same file.
    pub journal: PathBuf,
    /// `limit` of list requests (Landscape's default is 1000).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(
        rename = "request_timeout_seconds",
        with = "crate::planes::seconds::single",
        default = "default_request_timeout"
    )]
    pub request_timeout: Duration,
    /// The plane's call budget (`crate::planes::budget`: rate, concurrency,
    /// priorities, back-off on 429/503, coalesced status reads); the server-capacity default (600 requests a minute)
    /// with ``max_concurrency`` requests in flight when absent. Its concurrency never
    /// exceeds ``max_concurrency``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::planes::budget::BudgetConfig>,
}

fn default_page_size() -> usize {
    1000
}

fn default_concurrency() -> usize {
    4
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

impl LandscapeConfig {
    pub fn new(
        base_url: &str,
        auth: LandscapeAuth,
        journal: impl Into<PathBuf>,
    ) -> LandscapeConfig {
        LandscapeConfig {
            base_url: base_url.into(),
            auth,
            journal: journal.into(),
            page_size: default_page_size(),
            max_concurrency: default_concurrency(),
            request_timeout: default_request_timeout(),
            budget: None,
        }
    }
}

/// A Landscape configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LandscapeConfigError {
    #[error("landscape connector: base_url {value:?} is not an http(s) URL without query")]
    BadUrl { value: String },
    #[error(
        "landscape connector: base_url {value:?} sends credentials over plain http; use https (plain http is only for a simulator on loopback)"
    )]
    PlainHttp { value: String },
    #[error("landscape connector: {field} is empty or holds whitespace")]
    BadIdentifier { field: &'static str },
    #[error("landscape connector: set exactly one of {env_field} and {file_field}")]
    SecretSource {
        env_field: &'static str,
        file_field: &'static str,
    },
    #[error("landscape connector: environment variable {name} ({field}) is not set or is empty")]
    SecretEnvironment { name: String, field: &'static str },
    #[error("landscape connector: cannot read {} : {source}", path.display())]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("landscape connector: {} is empty", path.display())]
    EmptySecretFile { path: PathBuf },
    #[error("landscape connector: {field} must be above zero")]
    NotPositive { field: &'static str },
    #[error(
        "landscape connector: journal is empty; Landscape keeps no correlation id, so the connector needs a journal file (e.g. /var/lib/ringmaster/landscape-journal.sqlite)"
    )]
    NoJournal,
    #[error("landscape connector: cannot open the journal {} : {reason}", path.display())]
    Journal { path: PathBuf, reason: String },
    #[error("landscape connector: cannot build the HTTP client: {reason}")]
    Http { reason: String },
}

/// The credentials, read from their sources.
pub enum ResolvedAuth {
    Signed {
        access_key: String,
        secret_key: Secret,
    },
    Login {
        email: String,
        password: Secret,
        account: Option<String>,
    },
}

fn check_url(value: &str) -> Result<(), LandscapeConfigError> {
    let bad = || LandscapeConfigError::BadUrl {
        value: value.into(),
    };
    if value.contains(['?', '#']) {
        return Err(bad());
    }
    if let Some(rest) = value.strip_prefix("http://") {
        if rest.starts_with("[::1]") {
            return Ok(());
        }
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return match host {
            "127.0.0.1" | "localhost" => Ok(()),
            "" => Err(bad()),
            _ => Err(LandscapeConfigError::PlainHttp {
                value: value.into(),
            }),
        };
    }
    match value.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(bad()),
    }
}

fn read_secret_file(path: &PathBuf) -> Result<Secret, LandscapeConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| LandscapeConfigError::SecretFile {
            path: path.clone(),
            source,
        })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(LandscapeConfigError::EmptySecretFile { path: path.clone() });
    }
    Ok(Secret::new(secret))
}

fn secret_from(
    env: &Option<String>,
    file: &Option<PathBuf>,
    env_field: &'static str,
    file_field: &'static str,
) -> Result<Secret, LandscapeConfigError> {
    match (env, file) {
        (Some(name), None) => match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            _ => Err(LandscapeConfigError::SecretEnvironment {
                name: name.clone(),
                field: env_field,
            }),
        },
        (None, Some(path)) => read_secret_file(path),
        _ => Err(LandscapeConfigError::SecretSource {
            env_field,
            file_field,
        }),
    }
}

fn check_identifier(value: &str, field: &'static str) -> Result<(), LandscapeConfigError> {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(LandscapeConfigError::BadIdentifier { field });
    }
    Ok(())
}

impl LandscapeConfig {
    /// Every check, and the credentials read from their sources.
    pub fn resolve(&self) -> Result<ResolvedAuth, LandscapeConfigError> {
        check_url(&self.base_url)?;
        if self.journal.as_os_str().is_empty() {
            return Err(LandscapeConfigError::NoJournal);
        }
        if let Some(budget) = &self.budget
            && budget.check().is_err()
        {
            return Err(LandscapeConfigError::NotPositive { field: "budget" });
        }
        for (value, field) in [
            (self.page_size, "page_size"),
            (self.max_concurrency, "max_concurrency"),
        ] {
            if value == 0 {
                return Err(LandscapeConfigError::NotPositive { field });
            }
        }
        if self.request_timeout.is_zero() {
            return Err(LandscapeConfigError::NotPositive {
                field: "request_timeout_seconds",
            });
        }
        match &self.auth {
            LandscapeAuth::LegacyApi {
                access_key,
                secret_key_env,
                secret_key_file,
            } => {
                check_identifier(access_key, "auth.access_key")?;
                let secret_key = secret_from(
                    secret_key_env,
                    secret_key_file,
                    "auth.secret_key_env",
                    "auth.secret_key_file",
                )?;
                Ok(ResolvedAuth::Signed {
                    access_key: access_key.clone(),
                    secret_key,
                })
            }
            LandscapeAuth::RestLogin {
                email,
                password_env,
                password_file,
                account,
            } => {
                check_identifier(email, "auth.email")?;
                if !email.contains('@') {
                    return Err(LandscapeConfigError::BadIdentifier {
                        field: "auth.email",
                    });
                }
                if let Some(account) = account {
                    check_identifier(account, "auth.account")?;
                }
                let password = secret_from(
                    password_env,
                    password_file,
                    "auth.password_env",
                    "auth.password_file",
                )?;
                Ok(ResolvedAuth::Login {
                    email: email.clone(),
                    password,
                    account: account.clone(),
                })
            }
        }
    }
}

impl LandscapeConfig {
    /// The call budget in force: the configured one, or the server-capacity default (600 requests a minute), with at most
    /// `max_concurrency` requests in flight.
    pub fn call_budget(&self) -> crate::planes::budget::BudgetConfig {
        crate::planes::budget::BudgetConfig::in_force(
            self.budget,
            crate::planes::budget::BudgetConfig::landscape(),
            self.max_concurrency,
        )
    }
}
