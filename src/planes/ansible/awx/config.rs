//! `config`: how an AWX / Automation Controller connector is configured.
//!
//! ```yaml
//! type: awx
//! base_url: https://controller.example.com
//! token_file: /etc/ringmaster/awx-token      # or token_env: AWX_TOKEN
//! inventory_id: 3
//! install_template_id: 11
//! uninstall_template_id: 12
//! verify_template_id: 13
//! correlation_lookup: scan                   # the only lookup AWX allows
//! page_size: 200
//! max_concurrent_requests: 4
//! request_timeout_seconds: 30
//! ```
//!
//! Plane group ids (what entitlements name) are the inventory's group names,
//! e.g. `fab_eng_ring1_canary`. The token is an OAuth2 bearer token (a
//! personal access token of a user that may execute the templates and read
//! the inventory), never written in the file itself.

use crate::planes::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How the connector finds the jobs of a correlation id again.
///
/// AWX refuses any filter on `extra_vars` (`awx/api/filters.py`: the field
/// is `prevent_search`, 403 "Filtering on extra_vars is not allowed."), and
/// a job carries no other field ringmaster can set at launch and AWX lets a
/// client filter on, so the one lookup lists the templates' jobs and reads
/// `extra_vars` here. (`extra_vars_filter`, which an earlier release
/// offered, is refused when the configuration is read.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationLookup {
    /// `GET jobs/?job_template__in=<install>,<uninstall>,<verify>&order_by=id`:
    /// every job of the three templates, paged to the end, matched on
    /// `extra_vars` client-side.
    #[default]
    Scan,
}

/// One controller as the daemon reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwxConfig {
    /// The controller's root, `https://controller.example.com` (the API is
    /// under `/api/v2/`).
    pub base_url: String,
    /// An environment variable holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// A file holding the bearer token, read again after a 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The inventory the templates run against; its groups are the rings.
    pub inventory_id: u64,
    /// Installs `ringmaster_app` at `ringmaster_version` on the `limit`.
    pub install_template_id: u64,
    /// Removes `ringmaster_app` from the `limit`.
    pub uninstall_template_id: u64,
    /// Run in check mode with diff (`job_type: check`): what would change.
    pub verify_template_id: u64,
    #[serde(default)]
    pub correlation_lookup: CorrelationLookup,
    /// `page_size` of list requests (AWX caps it, 200 by default [U]).
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
    /// priorities, back-off on 429/503, coalesced status reads); the controller-capacity default (600 requests a minute)
    /// with ``max_concurrent_requests`` requests in flight when absent. Its concurrency never
    /// exceeds ``max_concurrent_requests``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::planes::budget::BudgetConfig>,
}

fn default_page_size() -> usize {
    200
}

fn default_concurrency() -> usize {
    4
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

impl AwxConfig {
    /// A configuration with the defaults and the token in `token_file`.
    pub fn new(base_url: &str, token_file: PathBuf, inventory_id: u64) -> AwxConfig {
        AwxConfig {
            base_url: base_url.into(),
            token_env: None,
            token_file: Some(token_file),
            inventory_id,
            install_template_id: 0,
            uninstall_template_id: 0,
            verify_template_id: 0,
            correlation_lookup: CorrelationLookup::default(),
            page_size: default_page_size(),
            max_concurrent_requests: default_concurrency(),
            request_timeout: default_request_timeout(),
            budget: None,
        }
    }
}

/// An AWX configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AwxConfigError {
    #[error("awx connector: base_url {value:?} is not an http(s) URL")]
    BadUrl { value: String },
    #[error(
        "awx connector: base_url {value:?} sends the token over plain http; use https (plain http is only for a simulator on loopback)"
    )]
    PlainHttp { value: String },
    #[error("awx connector: set exactly one of token_env and token_file")]
    TokenSource,
    #[error("awx connector: environment variable {name} (token_env) is not set or is empty")]
    TokenEnvironment { name: String },
    #[error("awx connector: cannot read token_file {}: {source}", path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("awx connector: token_file {} is empty", path.display())]
    EmptyTokenFile { path: PathBuf },
    #[error("awx connector: {field} must be above zero")]
    NotPositive { field: &'static str },
    #[error(
        "awx connector: install_template_id, uninstall_template_id and verify_template_id must be three different templates"
    )]
    SameTemplate,
    #[error("awx connector: cannot build the HTTP client: {reason}")]
    Http { reason: String },
}

fn check_url(value: &str) -> Result<(), AwxConfigError> {
    if let Some(rest) = value.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        return match host {
            "127.0.0.1" | "localhost" | "[::1]" => Ok(()),
            "" => Err(AwxConfigError::BadUrl {
                value: value.into(),
            }),
            _ => Err(AwxConfigError::PlainHttp {
                value: value.into(),
            }),
        };
    }
    match value.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(AwxConfigError::BadUrl {
            value: value.into(),
        }),
    }
}

/// The token in `path`, trimmed.
pub(super) fn read_token_file(path: &PathBuf) -> Result<Secret, AwxConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| AwxConfigError::TokenFile {
        path: path.clone(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(AwxConfigError::EmptyTokenFile { path: path.clone() });
    }
    Ok(Secret::new(token))
}

impl AwxConfig {
    /// Every check, and the token read from its source.
    pub(super) fn resolve(&self) -> Result<Secret, AwxConfigError> {
        check_url(&self.base_url)?;
        for (value, field) in [
            (self.inventory_id, "inventory_id"),
            (self.install_template_id, "install_template_id"),
            (self.uninstall_template_id, "uninstall_template_id"),
            (self.verify_template_id, "verify_template_id"),
            (self.page_size as u64, "page_size"),
            (
                self.max_concurrent_requests as u64,
                "max_concurrent_requests",
            ),
        ] {
            if value == 0 {
                return Err(AwxConfigError::NotPositive { field });
            }
        }
        if let Some(budget) = &self.budget
            && budget.check().is_err()
        {
            return Err(AwxConfigError::NotPositive { field: "budget" });
        }
        if self.request_timeout.is_zero() {
            return Err(AwxConfigError::NotPositive {
                field: "request_timeout_seconds",
            });
        }
        let templates = [
            self.install_template_id,
            self.uninstall_template_id,
            self.verify_template_id,
        ];
        if templates[0] == templates[1]
            || templates[0] == templates[2]
            || templates[1] == templates[2]
        {
            return Err(AwxConfigError::SameTemplate);
        }
        match (&self.token_env, &self.token_file) {
            (Some(name), None) => match std::env::var(name) {
                Ok(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
                _ => Err(AwxConfigError::TokenEnvironment { name: name.clone() }),
            },
            (None, Some(path)) => read_token_file(path),
            _ => Err(AwxConfigError::TokenSource),
        }
    }
}

impl AwxConfig {
    /// The call budget in force: the configured one, or the controller-capacity default (600 requests a minute), with at most
    /// `max_concurrent_requests` requests in flight.
    pub fn call_budget(&self) -> crate::planes::budget::BudgetConfig {
        crate::planes::budget::BudgetConfig::in_force(
            self.budget,
            crate::planes::budget::BudgetConfig::awx(),
            self.max_concurrent_requests,
        )
    }
}
