//! `http_send`: the one send loop of every HTTP connector (Graph, Jamf Pro,
//! the AdminService, Landscape, AWX), instead of one copy per plane.
//!
//! One [`Transport`] per connector (shared by its clones) owns the HTTP client
//! and the plane's call budget (`planes::budget`). [`Transport::exchange`]
//! sends one request in numbered steps:
//!
//! 1. wait for the budget's turn (priority, rate, connections; a wait longer
//!    than the budget allows fails as `rate_limit` and nothing is sent);
//! 2. build the request with the plane's credentials (`prepare(false)`) —
//!    a token request made here holds the same turn;
//! 3. send it; a transport failure is `timeout` or `service_unavailable`,
//!    named by the operation only (no host, no query string, no header);
//! 4. a 401 gets one new credential (`prepare(true)`, when the plane has one
//!    to offer) and the request once more — the one retry the contract allows;
//! 5. tell the budget what the plane answered (429/503 slow it down, with
//!    `Retry-After` in either form), and read the body.
//!
//! The plane's client then maps the [`Answer`] to its result or to a
//! [`ConnectorError`] with its own wording (its error body format, its
//! hints); nothing here retries a refusal or sleeps on a failure.
//!
//! **Coalesced reads** (issue 17), for gate status and reconciliation only
//! (a publish's or a halt's reads are sent as asked): a read the caller names
//! with a key (its path and query) is sent once for every caller asking it at
//! the same time (in-flight dedupe), and its answer serves every caller of
//! the same step: same key, a caller's `now` no more than the budget's
//! `status_freshness_seconds` after the answer's
//! (0 by default: the daemon's one step, where every rollout targeting the
//! same group or collection asks the same pages). Any write through the
//! transport forgets every kept answer, so a read after a publish is never
//! served from before it. A failed read is never kept.

use crate::planes::budget::{self, BudgetConfig, PlaneBudget, Priority};
use crate::planes::http::retry_after_of;
use crate::planes::{ConnectorError, ErrorCode};
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::OnceCell;

/// What the plane answered to one request (after the 401 retry, if any).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub retry_after: Option<Duration>,
}

/// A kept answer of a coalesced read.
#[derive(Debug)]
struct Kept {
    /// The caller's `now` (its step) when the read was asked.
    asked_at: Option<DateTime<Utc>>,
    answer: OnceCell<Answer>,
}

/// The one HTTP send loop of a connector: client, budget, session cookies,
/// coalesced reads.
#[derive(Debug)]
pub struct Transport {
    plane: &'static str,
    http: reqwest::Client,
    budget: PlaneBudget,
    /// Cookies the server set, by name, sent back on every later request
    /// (Jamf Cloud's sticky session); `None` for planes that need none.
    cookies: Option<Mutex<BTreeMap<String, String>>>,
    kept: Mutex<HashMap<String, Arc<Kept>>>,
    /// Reads answered from another caller's request (for figures and tests).
    coalesced_total: std::sync::atomic::AtomicU64,
}

/// Sent when a 401 found no new credential to offer.
const NO_REFRESH: Option<RequestBuilder> = None;

impl Transport {
    pub fn new(plane: &'static str, http: reqwest::Client, budget: BudgetConfig) -> Transport {
        Transport {
            plane,
            http,
            budget: PlaneBudget::new(plane, budget),
            cookies: None,
            kept: Mutex::new(HashMap::new()),
            coalesced_total: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Keeps the server's cookies and sends them back (a sticky session).
    pub fn with_session_cookies(mut self) -> Transport {
        self.cookies = Some(Mutex::new(BTreeMap::new()));
        self
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn plane(&self) -> &'static str {
        self.plane
    }

    /// The plane's call budget, shared by every clone of the connector.
    pub fn budget(&self) -> &PlaneBudget {
        &self.budget
    }

    /// Reads answered from another caller's request so far.
    pub fn coalesced_total(&self) -> u64 {
        self.coalesced_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `request` with the session's cookies, when the transport keeps them.
    pub fn with_cookies(&self, request: RequestBuilder) -> RequestBuilder {
        let Some(cookies) = &self.cookies else {
            return request;
        };
        let cookies = cookies.lock().unwrap_or_else(PoisonError::into_inner);
        if cookies.is_empty() {
            return request;
        }
        let header = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        request.header(reqwest::header::COOKIE, header)
    }

    /// Keeps the cookies `response` sets, when the transport keeps them.
    pub fn keep_cookies(&self, response: &reqwest::Response) {
        let Some(cookies) = &self.cookies else {
            return;
        };
        let mut cookies = cookies.lock().unwrap_or_else(PoisonError::into_inner);
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let Some(pair) = value
                .to_str()
                .ok()
                .and_then(|text| text.split(';').next())
                .and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            cookies.insert(pair.0.trim().to_string(), pair.1.trim().to_string());
        }
    }

    /// Sends one request outside the budget (a token request made while a
    /// turn is held): cookies kept, a transport failure named by `operation`.
    pub async fn send_unbudgeted(
        &self,
        operation: &str,
        request: RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        let response = self
            .with_cookies(request)
            .send()
            .await
            .map_err(|error| transport_failure(self.plane, operation, &error))?;
        self.keep_cookies(&response);
        Ok(response)
    }

    /// Sends one request through the budget (steps 1–5 above). `prepare(false)`
    /// builds it with the current credential; after a 401, `prepare(true)`
    /// builds it with a new one, or answers `None` when there is none to try
    /// (the 401 is then the answer). A write forgets every kept read.
    pub async fn exchange<P, F>(
        &self,
        operation: &str,
        prepare: P,
    ) -> Result<Answer, ConnectorError>
    where
        P: FnMut(bool) -> F,
        F: Future<Output = Result<Option<RequestBuilder>, ConnectorError>>,
    {
        self.forget_kept();
        self.send_once(operation, prepare).await
    }

    /// [`Transport::exchange`] for a read named by `key` (its path and
    /// query): at gate-status or reconciliation priority, coalesced with the
    /// same read of other callers (see the module doc). A read never forgets
    /// kept answers.
    pub async fn read<P, F>(
        &self,
        operation: &str,
        key: &str,
        prepare: P,
    ) -> Result<Answer, ConnectorError>
    where
        P: FnMut(bool) -> F,
        F: Future<Output = Result<Option<RequestBuilder>, ConnectorError>>,
    {
        let priority = budget::current_priority();
        if priority < Priority::Status {
            // A publish's or a halt's reads are its own, sent as asked.
            return self.send_once(operation, prepare).await;
        }
        let asked_at = budget::call_now();
        let entry = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let reusable = kept
                .get(key)
                .filter(|entry| !entry.answer.initialized() || self.fresh(entry, asked_at));
            match reusable {
                Some(entry) => Arc::clone(entry),
                None => {
                    let entry = Arc::new(Kept {
                        asked_at,
                        answer: OnceCell::new(),
                    });
                    kept.insert(key.to_string(), Arc::clone(&entry));
                    entry
                }
            }
        };
        let mut sent_here = false;
        let outcome = entry
            .answer
            .get_or_try_init(|| {
                sent_here = true;
                self.send_once(operation, prepare)
            })
            .await
            .cloned();
        if !sent_here && outcome.is_ok() {
            self.coalesced_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if outcome.is_err() {
            // A failure is kept only for the callers already waiting on it.
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.get(key).is_some_and(|held| Arc::ptr_eq(held, &entry)) {
                kept.remove(key);
            }
        }
        outcome
    }

    fn fresh(&self, entry: &Kept, asked_at: Option<DateTime<Utc>>) -> bool {
        let (Some(answered), Some(asked)) = (entry.asked_at, asked_at) else {
            return false;
        };
        let freshness = chrono::Duration::from_std(self.budget.config().status_freshness_seconds)
            .unwrap_or_default();
        answered <= asked && asked <= answered + freshness
    }

    fn forget_kept(&self) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|_, entry| !entry.answer.initialized());
    }

    async fn send_once<P, F>(
        &self,
        operation: &str,
        mut prepare: P,
    ) -> Result<Answer, ConnectorError>
    where
        P: FnMut(bool) -> F,
        F: Future<Output = Result<Option<RequestBuilder>, ConnectorError>>,
    {
        // 1. The budget's turn, held across a token request and the 401 retry.
        let permit = self.budget.acquire(operation).await?;
        // 2. The request with the current credential.
        let mut request = prepare(false).await?.ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!("{operation} on {}: no request to send", self.plane),
            )
        })?;
        let mut refreshed = false;
        loop {
            tracing::debug!(plane = self.plane, operation = %operation, "plane request");
            // 3. Send.
            let response = self.send_unbudgeted(operation, request).await?;
            let status = response.status();
            // 4. One new credential after a 401.
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                if let Some(again) = prepare(true).await? {
                    tracing::debug!(plane = self.plane, operation = %operation, "401: once more with a new credential");
                    request = again;
                    continue;
                }
            }
            // 5. What the plane said, to the budget; the body.
            let retry_after = retry_after_of(&response);
            permit.answered(status.as_u16(), retry_after);
            let headers = response.headers().clone();
            let text = response
                .text()
                .await
                .map_err(|error| transport_failure(self.plane, operation, &error))?;
            return Ok(Answer {
                status,
                headers,
                text,
                retry_after,
            });
        }
    }
}

/// A `prepare` answer for a plane with no new credential to offer after a
/// 401: the first request, and `None` after.
pub fn no_refresh(refresh: bool, request: RequestBuilder) -> Option<RequestBuilder> {
    if refresh { NO_REFRESH } else { Some(request) }
}

/// A request that got no HTTP answer, named by `operation` (`GET /path`, an
/// action name): `timeout` when the client gave up, `service_unavailable`
/// when the connection failed. The plane may have applied it.
pub fn transport_failure(plane: &str, operation: &str, error: &reqwest::Error) -> ConnectorError {
    let what = format!("{operation} on {plane}");
    if error.is_timeout() {
        ConnectorError::new(
            ErrorCode::Timeout,
            format!(
                "{what}: no answer in time; it may have been applied, retry with the same correlation id"
            ),
        )
    } else if error.is_connect() {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("{what}: could not connect; check base_url and the network"),
        )
    } else {
        ConnectorError::new(
            ErrorCode::ServiceUnavailable,
            format!("{what}: the connection failed before an answer; retry later"),
        )
    }
}
