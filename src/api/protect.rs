//! What keeps the API standing: a correlation id on every request, rate
//! limits per source address and per principal (`429` with `Retry-After`),
//! a body size cap and a time limit.
//!
//! The request id is the client's `X-Request-Id` when it is well formed (1
//! to 64 characters of letters, digits, `.`, `_`, `-`, `:`), otherwise a new
//! UUIDv4; it is returned in the response, set on the request's log span,
//! and becomes the correlation id of the events a write causes.

use super::problem::ApiProblem;
use super::tls::ClientInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request's correlation id (an extension of every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a client's `X-Request-Id` may be used as it is.
pub fn well_formed_request_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-' | b':'))
}

/// Sets the request id, runs the request in a span carrying it, and
/// returns it in the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|text| well_formed_request_id(text))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("api", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    response
}

/// The limits chosen (see `docs/api.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per minute from one source address (before authentication).
    pub per_address_per_minute: u32,
    /// Requests per minute of one principal.
    pub per_principal_per_minute: u32,
    /// Requests allowed at once above the steady rate (per principal; an
    /// address gets at least a tenth of its minute).
    pub burst: u32,
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Longest a request may take.
    pub timeout: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_address_per_minute: 1200,
            per_principal_per_minute: 600,
            burst: 60,
            body_bytes: 64 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

type Keyed<K> = RateLimiter<
    K,
    governor::state::keyed::DefaultKeyedStateStore<K>,
    DefaultClock,
    governor::middleware::NoOpMiddleware,
>;

/// The rate limiters.
pub struct Limits {
    pub settings: LimitSettings,
    per_address: Keyed<IpAddr>,
    per_principal: Keyed<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Limits {
        Limits {
            // An address may carry many principals (a NAT, a proxy): its
            // burst is at least a tenth of its minute.
            per_address: RateLimiter::keyed(quota(
                settings.per_address_per_minute,
                settings.burst.max(settings.per_address_per_minute / 10),
            )),
            per_principal: RateLimiter::keyed(quota(
                settings.per_principal_per_minute,
                settings.burst,
            )),
            settings,
            clock: DefaultClock::default(),
        }
    }

    fn refused(
        &self,
        what: String,
        not_until: governor::NotUntil<governor::clock::QuantaInstant>,
    ) -> ApiProblem {
        let wait = not_until.wait_time_from(self.clock.now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiProblem::rate_limited(format!("{what}; retry after {seconds} s"), seconds)
    }

    pub fn take_address(&self, address: IpAddr) -> Result<(), ApiProblem> {
        self.per_address.check_key(&address).map_err(|not_until| {
            self.refused(
                format!(
                    "too many requests from {address} (limit {} a minute)",
                    self.settings.per_address_per_minute
                ),
                not_until,
            )
        })
    }

    pub fn take_principal(&self, principal: &str) -> Result<(), ApiProblem> {
        self.per_principal
            .check_key(&principal.to_owned())
            .map_err(|not_until| {
                self.refused(
                    format!(
                        "too many requests by {principal} (limit {} a minute)",
                        self.settings.per_principal_per_minute
                    ),
                    not_until,
                )
            })
    }

    /// Forgets keys that are back to a full bucket (bounded memory).
    pub fn forget_idle(&self) {
        self.per_address.retain_recent();
        self.per_principal.retain_recent();
    }
}

/// Per-address rate limit and the time limit.
pub async fn guard(
    State(context): State<Arc<super::context::ApiContext>>,
    ConnectInfo(client): ConnectInfo<ClientInfo>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(problem) = context.limits.take_address(client.address.ip()) {
        tracing::info!(address = %client.address, "rate limited");
        return problem.into_response();
    }
    if context.limits.per_address.len() > 100_000 {
        context.limits.forget_idle();
    }
    match tokio::time::timeout(context.limits.settings.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiProblem::unavailable(format!(
            "the request took longer than {} s",
            context.limits.settings.timeout.as_secs()
        ))
        .into_response(),
    }
}
