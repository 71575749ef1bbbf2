//! OpenID Connect bearer tokens (Entra ID or any provider): a JWT checked
//! against the issuer's signing keys.
//!
//! In this order, each step before the next:
//! 1. the token is at most [`MAX_TOKEN_BYTES`] and has three parts; its
//!    header names `RS256` or `ES256` — `none`, HMAC (`HS256` signed with the
//!    public key as secret) and everything else are refused before any key
//!    is looked at — and a `kid`;
//! 2. the key is found by `kid` in the cached JWKS; an unknown `kid` fetches
//!    the discovery document and the JWKS again (at most once per
//!    `jwks_min_refresh`), so a rotated key works without a restart, and the
//!    cache is refetched when older than `jwks_max_age`; the key's type
//!    must match the algorithm (RSA for RS256, P-256 for ES256);
//! 3. the signature, `iss` (exactly the configured issuer) and `aud` (one
//!    of the configured audiences) are checked by `jsonwebtoken`;
//! 4. `exp` (required) and `nbf` are checked against the injected clock,
//!    with a small leeway for clock skew.
//!
//! The discovery document must name the configured issuer, and keys are
//! fetched over HTTPS (plain HTTP only from a loopback address, for tests).

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Tokens larger than this are refused unread (Entra tokens are a few KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// How the issuer is trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    /// `iss`, exactly, e.g. `https://login.microsoftonline.com/<tenant>/v2.0`.
    pub issuer: String,
    /// Accepted `aud` values (Entra: the app's client id or `api://…` URI).
    pub audiences: Vec<String>,
    /// The claim naming the principal (`oid`, `upn`, `preferred_username`, `appid`).
    pub principal_claim: String,
    /// The claim holding app roles (Entra: `roles`).
    pub roles_claim: String,
    /// Allowed clock skew for `exp` and `nbf`.
    pub leeway: Duration,
    /// The discovery document; default `<issuer>/.well-known/openid-configuration`.
    pub discovery_url: Option<String>,
    /// An unknown `kid` refetches the keys at most this often.
    pub jwks_min_refresh: Duration,
    /// Keys older than this are refetched before use.
    pub jwks_max_age: Duration,
}

impl OidcSettings {
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            audiences,
            principal_claim: "oid".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(60),
            discovery_url: None,
            jwks_min_refresh: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(3600),
        }
    }
}

/// Why a token was refused. Every variant is a `401` except
/// [`TokenRefusal::KeysUnavailable`] (`503`: the provider cannot be reached).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted (RS256 and ES256 only)")]
    Algorithm(String),
    #[error("the token's header has no kid")]
    NoKeyId,
    #[error("no signing key {0:?} at the issuer (not even after refetching its keys)")]
    UnknownKey(String),
    #[error("key {kid:?} is a {key_type} key, which cannot verify {algorithm}")]
    KeyMismatch {
        kid: String,
        key_type: String,
        algorithm: String,
    },
    #[error("the signature does not verify")]
    Signature,
    #[error("the issuer (iss) is not {0}")]
    Issuer(String),
    #[error("the audience (aud) is not one of [{0}]")]
    Audience(String),
    #[error("the token expired at {0}")]
    Expired(String),
    #[error("the token is not valid before {0}")]
    NotYetValid(String),
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token has no {0:?} claim (string) naming its principal")]
    NoPrincipalClaim(String),
    #[error("the identity provider's signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

/// The claims of a valid token that the API uses.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The value of the principal claim.
    pub subject: String,
    /// The values of the roles claim (empty when absent).
    pub roles: Vec<String>,
    pub claims: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

/// A key of the JWKS that may verify tokens.
#[derive(Clone)]
struct CachedKey {
    key: DecodingKey,
    /// RS256 or ES256: what the key's type allows.
    algorithm: Algorithm,
    key_type: &'static str,
}

#[derive(Default)]
struct KeyCache {
    keys: BTreeMap<String, CachedKey>,
    fetched_at: Option<Instant>,
    /// When a refetch was last tried (successful or not).
    tried_at: Option<Instant>,
}

/// Validates tokens of one issuer; shared by every request.
pub struct OidcValidator {
    settings: OidcSettings,
    http: reqwest::Client,
    cache: tokio::sync::RwLock<KeyCache>,
    /// One refetch at a time.
    refetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OidcValidator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OidcValidator")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

fn loopback_http(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Refuses URLs that are neither HTTPS nor HTTP on a loopback address.
fn checked_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|error| format!("{text}: {error}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback_http(&url) => Ok(url),
        _ => Err(format!(
            "{text}: keys are fetched over https only (http only from a loopback address)"
        )),
    }
}

impl OidcValidator {
    pub fn new(settings: OidcSettings) -> Result<OidcValidator, String> {
        checked_url(&settings.issuer)?;
        if settings.audiences.is_empty() {
            return Err("at least one audience is needed".into());
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| error.to_string())?;
        Ok(OidcValidator {
            settings,
            http,
            cache: tokio::sync::RwLock::new(KeyCache::default()),
            refetch: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Checks `token` (the part after `Bearer `) at `now`.
    pub async fn validate(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, TokenRefusal> {
        // 1. shape, algorithm, kid
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRefusal::Malformed(format!(
                "larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(TokenRefusal::Malformed(format!(
                "{} parts instead of 3",
                parts.len()
            )));
        }
        let header =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[0])
                .ok()
                .and_then(|bytes| serde_json::from_slice::<RawHeader>(&bytes).ok())
                .ok_or_else(|| TokenRefusal::Malformed("unreadable header".into()))?;
        let algorithm = match header.alg.as_deref() {
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            other => {
                return Err(TokenRefusal::Algorithm(
                    other.unwrap_or("(none given)").to_owned(),
                ));
            }
        };
        let kid = header.kid.ok_or(TokenRefusal::NoKeyId)?;
        // 2. the key
        let key = self.key(&kid).await?;
        if key.algorithm != algorithm {
            return Err(TokenRefusal::KeyMismatch {
                kid,
                key_type: key.key_type.to_owned(),
                algorithm: format!("{algorithm:?}"),
            });
        }
        // 3. signature, iss, aud
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|error| self.refusal(error))?;
        let claims = data.claims;
        // 4. exp and nbf, on the injected clock
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(0);
        let seconds = now.timestamp();
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| TokenRefusal::Invalid("exp is not a number".into()))?;
        if seconds > exp.saturating_add(leeway) {
            return Err(TokenRefusal::Expired(timestamp_text(exp)));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf
                .as_i64()
                .ok_or_else(|| TokenRefusal::Invalid("nbf is not a number".into()))?;
            if seconds < nbf.saturating_sub(leeway) {
                return Err(TokenRefusal::NotYetValid(timestamp_text(nbf)));
            }
        }
        let subject = claims
            .get(&self.settings.principal_claim)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| TokenRefusal::NoPrincipalClaim(self.settings.principal_claim.clone()))?
            .to_owned();
        let roles = match claims.get(&self.settings.roles_claim) {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(value)) => value.split(' ').map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Ok(VerifiedToken {
            subject,
            roles,
            claims,
        })
    }

    fn refusal(&self, error: jsonwebtoken::errors::Error) -> TokenRefusal {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature => TokenRefusal::Signature,
            ErrorKind::InvalidIssuer => TokenRefusal::Issuer(self.settings.issuer.clone()),
            ErrorKind::InvalidAudience => {
                TokenRefusal::Audience(self.settings.audiences.join(", "))
            }
            ErrorKind::InvalidAlgorithm => TokenRefusal::Algorithm("mismatch".into()),
            ErrorKind::MissingRequiredClaim(claim) => {
                TokenRefusal::Invalid(format!("the {claim} claim is missing"))
            }
            _ => TokenRefusal::Invalid(error.to_string()),
        }
    }

    /// The key `kid`, refetching the JWKS when it is unknown or stale.
    async fn key(&self, kid: &str) -> Result<CachedKey, TokenRefusal> {
        {
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.settings.jwks_max_age);
            if fresh && let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
        }
        let _one_at_a_time = self.refetch.lock().await;
        {
            // Another request may have refetched meanwhile; and an unknown
            // kid refetches at most once per jwks_min_refresh.
            let cache = self.cache.read().await;
            let fresh = cache
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.settings.jwks_max_age);
            if fresh {
                if let Some(key) = cache.keys.get(kid) {
                    return Ok(key.clone());
                }
                if cache
                    .tried_at
                    .is_some_and(|at| at.elapsed() < self.settings.jwks_min_refresh)
                {
                    return Err(TokenRefusal::UnknownKey(kid.to_owned()));
                }
            }
        }
        let fetched = self.fetch_keys().await;
        let mut cache = self.cache.write().await;
        cache.tried_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Err(error) => {
                tracing::warn!(%error, issuer = %self.settings.issuer, "fetching the OIDC signing keys failed");
                // Keep serving the keys we have (an outage of the provider
                // must not lock everyone out), unless there are none.
                if cache.keys.is_empty() {
                    return Err(TokenRefusal::KeysUnavailable(error));
                }
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| TokenRefusal::UnknownKey(kid.to_owned()))
    }

    /// Discovery document, then the JWKS it names.
    async fn fetch_keys(&self) -> Result<BTreeMap<String, CachedKey>, String> {
        let discovery_url = self.settings.discovery_url.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/openid-configuration",
                self.settings.issuer.trim_end_matches('/')
            )
        });
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        if discovery.issuer != self.settings.issuer {
            return Err(format!(
                "{discovery_url} names issuer {:?}, not the configured {:?}",
                discovery.issuer, self.settings.issuer
            ));
        }
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let mut keys = BTreeMap::new();
        for jwk in set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature)
            {
                continue;
            }
            let (algorithm, key_type) = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => (Algorithm::RS256, "RSA"),
                AlgorithmParameters::EllipticCurve(params)
                    if params.curve == EllipticCurve::P256 =>
                {
                    (Algorithm::ES256, "EC P-256")
                }
                _ => continue,
            };
            // A key that declares another algorithm is not used for this one.
            if let Some(declared) = jwk.common.key_algorithm
                && format!("{declared:?}") != format!("{algorithm:?}")
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            keys.insert(
                kid,
                CachedKey {
                    key,
                    algorithm,
                    key_type,
                },
            );
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let url = checked_url(url)?;
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        if bytes.len() > 1024 * 1024 {
            return Err(format!("{url}: larger than 1 MiB"));
        }
        serde_json::from_slice(&bytes).map_err(|error| format!("{url}: {error}"))
    }
}

fn timestamp_text(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| seconds.to_string())
}
