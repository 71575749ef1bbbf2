//! The `api:` section of the daemon's config: where `/api/v1` listens, which
//! OIDC issuer's tokens and which CA's client certificates it accepts, and
//! its limits. The API is served only with at least one way to
//! authenticate: it never answers anonymous requests (but its OpenAPI
//! document).

use super::config::ConfigError;
use crate::api::auth::RoleSource;
use crate::api::auth::oidc::OidcSettings;
use crate::api::protect::LimitSettings;
use crate::api::tls::TlsSettings;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One layer of API settings; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Address of the API listener; default: the `listen` address.
    pub listen: Option<String>,
    /// The OIDC issuer (`iss`), e.g. https://login.microsoftonline.com/<tenant>/v2.0.
    pub oidc_issuer: Option<String>,
    /// Accepted audiences (`aud`), e.g. [api://ringmaster, <client id>].
    pub oidc_audiences: Option<Vec<String>>,
    /// The claim matched against principals' `oidc_subjects` [default: oid].
    pub oidc_principal_claim: Option<String>,
    /// The claim holding app roles [default: roles].
    pub oidc_roles_claim: Option<String>,
    /// The discovery document [default: <issuer>/.well-known/openid-configuration].
    pub oidc_discovery_url: Option<String>,
    /// Clock skew allowed on exp/nbf [default: 60].
    pub oidc_leeway_seconds: Option<u64>,
    /// An unknown kid refetches the keys at most this often [default: 30].
    pub jwks_min_refresh_seconds: Option<u64>,
    /// `repository` (principals/), `token` (the roles claim) or `both` [default: repository].
    pub role_source: Option<RoleSource>,
    /// PEM server certificate chain: the API listener speaks TLS.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of the server certificate.
    pub tls_key: Option<PathBuf>,
    /// PEM CA that client certificates must chain to (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// PEM CRLs of the client CA.
    pub client_crls: Option<Vec<PathBuf>>,
    /// Refuse TLS connections without a client certificate [default: false].
    pub require_client_certificate: Option<bool>,
    pub per_address_per_minute: Option<u32>,
    pub per_principal_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub body_bytes: Option<usize>,
    pub timeout_seconds: Option<u64>,
    /// A file holding a bearer token that may scrape `/metrics` (and only
    /// that) without an OIDC token or a certificate, as Prometheus'
    /// `authorization.credentials_file` sends it; at least 32 characters.
    pub metrics_token_file: Option<PathBuf>,
    /// How many connections to the state store the API's requests share
    /// [default: 4; 1 to 64]; a request finding all busy waits for one.
    pub store_connections: Option<usize>,
}

/// The validated API settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// A listener of its own; `None`: the daemon's `listen` address.
    pub listen: Option<String>,
    pub oidc: Option<OidcSettings>,
    pub role_source: RoleSource,
    pub tls: Option<TlsSettings>,
    pub limits: LimitSettings,
    /// SHA-256 of the `/metrics` scrape token, when one is configured.
    pub metrics_token_sha256: Option<[u8; 32]>,
    /// The size of the API's pool of store connections.
    pub store_connections: usize,
}

macro_rules! over {
    ($under:ident, $over:ident, $($field:ident),*) => {
        RawApi { $($field: $over.$field.or($under.$field)),* }
    };
}

impl RawApi {
    pub fn layered(self, over: RawApi) -> RawApi {
        let under = self;
        over!(
            under,
            over,
            listen,
            oidc_issuer,
            oidc_audiences,
            oidc_principal_claim,
            oidc_roles_claim,
            oidc_discovery_url,
            oidc_leeway_seconds,
            jwks_min_refresh_seconds,
            role_source,
            tls_certificate,
            tls_key,
            client_ca,
            client_crls,
            require_client_certificate,
            per_address_per_minute,
            per_principal_per_minute,
            burst,
            body_bytes,
            timeout_seconds,
            metrics_token_file,
            store_connections
        )
    }

    fn invalid(setting: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            setting: format!("api.{setting}"),
            message: message.into(),
        }
    }

    /// Checks the settings; `has_listen`: whether the daemon has a `listen` address.
    pub fn validate(self, has_listen: bool) -> Result<ApiConfig, ConfigError> {
        let oidc = match (self.oidc_issuer, self.oidc_audiences) {
            (Some(issuer), Some(audiences)) if !audiences.is_empty() => {
                let mut settings = OidcSettings::new(issuer, audiences);
                if let Some(claim) = self.oidc_principal_claim {
                    settings.principal_claim = claim;
                }
                if let Some(claim) = self.oidc_roles_claim {
                    settings.roles_claim = claim;
                }
                settings.discovery_url = self.oidc_discovery_url;
                if let Some(seconds) = self.oidc_leeway_seconds {
                    if seconds > 300 {
                        return Err(RawApi::invalid(
                            "oidc_leeway_seconds",
                            "at most 300 (a small clock skew)",
                        ));
                    }
                    settings.leeway = Duration::from_secs(seconds);
                }
                if let Some(seconds) = self.jwks_min_refresh_seconds {
                    settings.jwks_min_refresh = Duration::from_secs(seconds);
                }
                Some(settings)
            }
            (None, None) => None,
            _ => {
                return Err(RawApi::invalid(
                    "oidc_issuer",
                    "an OIDC issuer needs its audiences (oidc_audiences), and audiences an issuer",
                ));
            }
        };
        let tls = match (self.tls_certificate, self.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsSettings {
                certificate,
                key,
                client_ca: self.client_ca.clone(),
                client_crls: self.client_crls.unwrap_or_default(),
                require_client_certificate: self.require_client_certificate.unwrap_or(false),
            }),
            (None, None) => None,
            _ => {
                return Err(RawApi::invalid(
                    "tls_certificate",
                    "TLS needs both tls_certificate and tls_key",
                ));
            }
        };
        if self.client_ca.is_some() && tls.is_none() {
            return Err(RawApi::invalid(
                "client_ca",
                "client certificates need TLS: set tls_certificate and tls_key",
            ));
        }
        if oidc.is_none() && self.client_ca.is_none() {
            return Err(RawApi::invalid(
                "oidc_issuer",
                "the API needs a way to authenticate callers: an OIDC issuer (oidc_issuer, oidc_audiences) and/or a client CA (client_ca)",
            ));
        }
        if self.listen.is_none() && !has_listen {
            return Err(RawApi::invalid(
                "listen",
                "the API needs an address: pass --api-listen or --listen",
            ));
        }
        let defaults = LimitSettings::default();
        let limits = LimitSettings {
            per_address_per_minute: self
                .per_address_per_minute
                .unwrap_or(defaults.per_address_per_minute),
            per_principal_per_minute: self
                .per_principal_per_minute
                .unwrap_or(defaults.per_principal_per_minute),
            burst: self.burst.unwrap_or(defaults.burst),
            body_bytes: self.body_bytes.unwrap_or(defaults.body_bytes),
            timeout: self
                .timeout_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.timeout),
        };
        if limits.per_address_per_minute == 0
            || limits.per_principal_per_minute == 0
            || limits.burst == 0
        {
            return Err(RawApi::invalid(
                "per_principal_per_minute",
                "rate limits must be at least 1",
            ));
        }
        let metrics_token_sha256 = match &self.metrics_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    RawApi::invalid(
                        "metrics_token_file",
                        format!("cannot read {}: {error}", path.display()),
                    )
                })?;
                let token = text.trim();
                if token.chars().count() < 32 || token.chars().any(|c| c.is_whitespace()) {
                    return Err(RawApi::invalid(
                        "metrics_token_file",
                        format!(
                            "{} must hold one token of at least 32 characters, without spaces",
                            path.display()
                        ),
                    ));
                }
                Some(crate::api::auth::token_digest(token))
            }
            None => None,
        };
        let store_connections = self.store_connections.unwrap_or(4);
        if !(1..=64).contains(&store_connections) {
            return Err(RawApi::invalid(
                "store_connections",
                format!("must be between 1 and 64, not {store_connections}"),
            ));
        }
        Ok(ApiConfig {
            store_connections,
            metrics_token_sha256,
            listen: self.listen,
            oidc,
            role_source: self.role_source.unwrap_or_default(),
            tls,
            limits,
        })
    }
}
