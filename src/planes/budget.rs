//! `budget`: the per-plane call budget (issue 17). One [`PlaneBudget`] per
//! plane connector — and the daemon holds one connector per plane, shared by
//! every rollout, reconciliation and API-driven action — admits each HTTP
//! request the connector sends:
//!
//! - **rate**: at most `requests` per sliding `window_seconds` of the
//!   caller's clock (the `now` every connector call carries, advanced by the
//!   real time the call has taken), so a daemon on simulated time spends its
//!   budget on simulated time;
//! - **concurrency**: at most `concurrency` requests in flight;
//! - **priorities** ([`Priority`]): halt and rollback first, then publishes,
//!   then gate status of active rings, then reconciliation. Waiters are served
//!   strictly by priority, then by arrival; and each class may fill only its
//!   share of the window (100 %, 90 %, 75 %, 50 %), so status and
//!   reconciliation can never spend the headroom a halt needs;
//! - **adaptive back-off**: a 429 or 503 from the plane halves the rate
//!   (down to 1/16 of it) and, with `Retry-After`, stops status and
//!   reconciliation reads until then (a publish or a halt that follows is
//!   held by the plane's circuit breaker in the daemon, which honours the
//!   same `Retry-After` for every run, and by the orchestrator's backoff);
//!   each full window without one raises it again by 1/8 (slow down
//!   multiplicatively, recover gradually).
//!
//! A request that would wait longer than `max_queue_wait_seconds` is not
//! sent: the call fails with a transient `rate_limit` whose `retry_after` is
//! the wait, so the orchestrator's backoff (`orchestrator::next_attempt`)
//! schedules it — the connector itself still never sleeps on a failure.
//!
//! The caller's priority and clock travel as a task-local ([`scope`],
//! [`with_priority`]): the performer marks each connector call, the connector
//! marks its `now`.

use crate::planes::{ConnectorError, ErrorCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Who is asking, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Halt, rollback, uninstall: stopping harm.
    Urgent,
    /// Publishing a ring, redeploying.
    Publish,
    /// Gate status of an active ring.
    Status,
    /// Reconciliation's status reads.
    Reconcile,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Urgent,
        Priority::Publish,
        Priority::Status,
        Priority::Reconcile,
    ];

    /// The share of the window this class may fill.
    pub fn share(self) -> f64 {
        match self {
            Priority::Urgent => 1.0,
            Priority::Publish => 0.9,
            Priority::Status => 0.75,
            Priority::Reconcile => 0.5,
        }
    }

    /// The priority of a remediation: stopping harm (halt, rollback,
    /// uninstall, ring pin) is urgent; repairing drift is a publish.
    pub fn of_remediation(remediation: &crate::planes::Remediation) -> Priority {
        match remediation {
            crate::planes::Remediation::Redeploy => Priority::Publish,
            _ => Priority::Urgent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Publish => "publish",
            Priority::Status => "status",
            Priority::Reconcile => "reconcile",
        }
    }
}

/// A plane's budget as configured (`planes: <plane>: budget:`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Requests per window.
    pub requests: u32,
    #[serde(with = "crate::planes::seconds::single")]
    pub window_seconds: Duration,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// The longest a request waits for its turn before the call fails with
    /// `rate_limit` (and the orchestrator's backoff takes over).
    #[serde(
        with = "crate::planes::seconds::single",
        default = "default_max_queue_wait"
    )]
    pub max_queue_wait_seconds: Duration,
    /// How long after one gate-status or reconciliation read the same read
    /// is answered from it (`planes::http_send`'s coalesced reads), on the
    /// caller's clock. 0: only within one step of the daemon (the same
    /// `now`) and while a read is in flight.
    #[serde(with = "crate::planes::seconds::single", default)]
    pub status_freshness_seconds: Duration,
}

fn default_max_queue_wait() -> Duration {
    Duration::from_secs(2)
}

impl BudgetConfig {
    fn new(requests: u32, window: u64, concurrency: u32) -> BudgetConfig {
        BudgetConfig {
            requests,
            window_seconds: Duration::from_secs(window),
            concurrency,
            max_queue_wait_seconds: default_max_queue_wait(),
            status_freshness_seconds: Duration::ZERO,
        }
    }

    /// Microsoft Graph, Intune applications service: 1,000 requests of any
    /// kind per 20 s per app per tenant (the 100 writes per 20 s are the
    /// connector's own second window). Graph documents no connection limit.
    pub fn intune() -> BudgetConfig {
        BudgetConfig::new(1_000, 20, 8)
    }

    /// Jamf Pro: at most 5 concurrent connections (Jamf's scalability best
    /// practices); no request rate is documented, so the rate is what five
    /// connections serve at a few requests a second each.
    pub fn jamf() -> BudgetConfig {
        BudgetConfig::new(1_200, 60, 5)
    }

    /// Configuration Manager AdminService: no documented throttling; the
    /// site server's capacity (the SMS Provider) is the limit.
    pub fn sccm() -> BudgetConfig {
        BudgetConfig::new(600, 60, 4)
    }

    /// Landscape: no documented throttling; the server's capacity is.
    pub fn landscape() -> BudgetConfig {
        BudgetConfig::new(600, 60, 4)
    }

    /// AWX / Automation Controller: no documented throttling.
    pub fn awx() -> BudgetConfig {
        BudgetConfig::new(600, 60, 4)
    }

    /// Requests per hour at the full rate.
    pub fn per_hour(&self) -> f64 {
        let window = self.window_seconds.as_secs_f64().max(0.001);
        f64::from(self.requests) * 3_600.0 / window
    }

    /// The budget a connector runs with: the configured one, or `default`
    /// with the connector's own cap on connections; never more requests in
    /// flight than `connections`.
    pub fn in_force(
        configured: Option<BudgetConfig>,
        default: BudgetConfig,
        connections: usize,
    ) -> BudgetConfig {
        let connections = u32::try_from(connections).unwrap_or(u32::MAX).max(1);
        match configured {
            Some(budget) => BudgetConfig {
                concurrency: budget.concurrency.min(connections).max(1),
                ..budget
            },
            None => BudgetConfig {
                concurrency: connections,
                ..default
            },
        }
    }

    /// Why this budget cannot work, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.requests == 0 {
            return Err("budget.requests must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("budget.concurrency must be at least 1".into());
        }
        if self.window_seconds.is_zero() {
            return Err("budget.window_seconds must be positive".into());
        }
        Ok(())
    }
}

/// The slowest the adaptive back-off goes: 1/16 of the configured rate.
pub const MIN_FACTOR: f64 = 1.0 / 16.0;
/// What each window without throttling gives back.
pub const RECOVERY_STEP: f64 = 1.0 / 8.0;

/// The rate part of a budget, on the caller's clock: pure, so it is tested
/// and benchmarked on simulated time.
#[derive(Debug, Clone)]
pub struct Window {
    config: BudgetConfig,
    factor: f64,
    sent: VecDeque<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
    /// Last cut or raise of the factor.
    changed_at: Option<DateTime<Utc>>,
    pub sent_total: u64,
    pub refused_total: u64,
    pub throttled_total: u64,
}

impl Window {
    pub fn new(config: BudgetConfig) -> Window {
        Window {
            config,
            factor: 1.0,
            sent: VecDeque::new(),
            blocked_until: None,
            changed_at: None,
            sent_total: 0,
            refused_total: 0,
            throttled_total: 0,
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.window_seconds)
            .unwrap_or_else(|_| chrono::Duration::seconds(60))
    }

    /// Requests per window now (the configured rate after back-off).
    pub fn limit(&self) -> u32 {
        let limit = (f64::from(self.config.requests) * self.factor).floor();
        (limit as u32).max(1)
    }

    /// The current fraction of the configured rate.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Requests per window `priority` may fill.
    pub fn limit_for(&self, priority: Priority) -> u32 {
        ((f64::from(self.limit()) * priority.share()).floor() as u32).max(1)
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        let window = self.window();
        while self.sent.front().is_some_and(|sent| *sent + window <= now) {
            self.sent.pop_front();
        }
    }

    /// Requests sent in the window ending at `now`.
    pub fn in_window(&mut self, now: DateTime<Utc>) -> usize {
        self.prune(now);
        self.sent.len()
    }

    /// Takes a slot at `now` for `priority`, or answers how long until one
    /// frees for it.
    pub fn admit(&mut self, priority: Priority, now: DateTime<Utc>) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if now >= until {
                self.blocked_until = None;
            } else if priority >= Priority::Status {
                return Err((until - now).to_std().unwrap_or_default());
            }
        }
        self.recover(now);
        self.prune(now);
        let allowed = self.limit_for(priority) as usize;
        if self.sent.len() < allowed {
            self.sent.push_back(now);
            self.sent_total += 1;
            return Ok(());
        }
        // The oldest `len - allowed + 1` must leave the window first.
        let frees = self.sent[self.sent.len() - allowed] + self.window();
        Err((frees - now)
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_millis(1)))
    }

    /// The plane answered 429 or 503: halve the rate, and honour its
    /// `Retry-After` for status and reconciliation reads.
    pub fn throttled(&mut self, now: DateTime<Utc>, retry_after: Option<Duration>) {
        self.throttled_total += 1;
        self.factor = (self.factor / 2.0).max(MIN_FACTOR);
        self.changed_at = Some(now);
        if let Some(wait) = retry_after.and_then(|wait| chrono::Duration::from_std(wait).ok()) {
            let until = now + wait;
            self.blocked_until = Some(self.blocked_until.map_or(until, |old| old.max(until)));
        }
    }

    /// Gives back [`RECOVERY_STEP`] per full window since the last change.
    fn recover(&mut self, now: DateTime<Utc>) {
        if self.factor >= 1.0 {
            return;
        }
        let Some(changed_at) = self.changed_at else {
            self.factor = 1.0;
            return;
        };
        let window = self.window();
        if now - changed_at >= window {
            let windows = ((now - changed_at).num_milliseconds() / window.num_milliseconds().max(1))
                .max(1) as f64;
            self.factor = (self.factor + RECOVERY_STEP * windows).min(1.0);
            self.changed_at = Some(now);
        }
    }

    /// Until when status and reconciliation reads wait (a `Retry-After`).
    pub fn blocked_until(&self) -> Option<DateTime<Utc>> {
        self.blocked_until
    }
}

#[derive(Debug, Clone, Copy)]
struct CallContext {
    priority: Option<Priority>,
    now: Option<(DateTime<Utc>, std::time::Instant)>,
}

tokio::task_local! {
    static CONTEXT: CallContext;
}

fn context() -> CallContext {
    CONTEXT.try_with(|context| *context).unwrap_or(CallContext {
        priority: None,
        now: None,
    })
}

/// Runs `call` with `priority` (kept for every request the call sends).
pub async fn with_priority<F: Future>(priority: Priority, call: F) -> F::Output {
    let mut inner = context();
    inner.priority = Some(priority);
    // Boxed: the connector call's future lives on the heap, so wrapping it
    // does not grow the caller's (deep, in debug builds) stack.
    CONTEXT.scope(inner, Box::pin(call)).await
}

/// Runs a connector call made at `now`: its requests are budgeted on that
/// clock (plus the real time the call has taken so far).
pub async fn scope<F: Future>(now: DateTime<Utc>, call: F) -> F::Output {
    let mut inner = context();
    inner.now = Some((now, std::time::Instant::now()));
    CONTEXT.scope(inner, Box::pin(call)).await
}

/// The `now` of the connector call being made (its step's clock), if the
/// call was made in a [`scope`].
pub fn call_now() -> Option<DateTime<Utc>> {
    context().now.map(|(now, _)| now)
}

/// The caller's priority (publish when unmarked).
pub fn current_priority() -> Priority {
    context().priority.unwrap_or(Priority::Publish)
}

/// One plane's scheduler.
#[derive(Debug)]
pub struct PlaneBudget {
    plane: &'static str,
    config: BudgetConfig,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    /// Clock of a call made outside any [`scope`].
    origin: std::time::Instant,
}

#[derive(Debug)]
struct State {
    window: Window,
    in_flight: u32,
    waiting: BTreeSet<(Priority, u64)>,
    next_ticket: u64,
}

/// A request's turn; give it back by dropping it, after telling
/// [`Permit::answered`] what the plane said.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a PlaneBudget,
}

impl Permit<'_> {
    /// What the plane answered: a 429 or 503 slows the plane's budget down.
    pub fn answered(&self, status: u16, retry_after: Option<Duration>) {
        let now = self.budget.now();
        let mut state = self.budget.lock();
        if status == 429 || status == 503 {
            state.window.throttled(now, retry_after);
            tracing::info!(
                plane = self.budget.plane,
                status,
                limit = state.window.limit(),
                "plane throttled: its call budget slows down"
            );
        }
        crate::metrics::runtime::budget(self.budget.plane, &state.window);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.budget.lock().in_flight -= 1;
        self.budget.wake.notify_waiters();
    }
}

struct Waiting<'a> {
    budget: &'a PlaneBudget,
    ticket: (Priority, u64),
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.budget.lock().waiting.remove(&self.ticket);
        self.budget.wake.notify_waiters();
    }
}

impl PlaneBudget {
    pub fn new(plane: &'static str, config: BudgetConfig) -> PlaneBudget {
        PlaneBudget {
            plane,
            config,
            state: Mutex::new(State {
                window: Window::new(config),
                in_flight: 0,
                waiting: BTreeSet::new(),
                next_ticket: 0,
            }),
            wake: tokio::sync::Notify::new(),
            origin: std::time::Instant::now(),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The caller's clock: its `now`, advanced by the time the call took.
    fn now(&self) -> DateTime<Utc> {
        match context().now {
            Some((now, started)) => {
                now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default()
            }
            None => {
                DateTime::<Utc>::UNIX_EPOCH
                    + chrono::Duration::from_std(self.origin.elapsed()).unwrap_or_default()
            }
        }
    }

    /// A copy of the rate window as it stands (for views and tests).
    pub fn window(&self) -> Window {
        self.lock().window.clone()
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.lock().in_flight
    }

    /// Requests waiting for their turn now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Waits for the caller's turn: first in priority order, a connection
    /// free, a slot in the window for its class. A wait longer than
    /// `max_queue_wait_seconds` fails with `rate_limit` instead.
    pub async fn acquire(&self, operation: &str) -> Result<Permit<'_>, ConnectorError> {
        let priority = current_priority();
        let ticket = {
            let mut state = self.lock();
            state.next_ticket += 1;
            let ticket = (priority, state.next_ticket);
            state.waiting.insert(ticket);
            ticket
        };
        let waiting = Waiting {
            budget: self,
            ticket,
        };
        // A new head of the queue may be more urgent than whoever sleeps.
        self.wake.notify_waiters();
        let started = std::time::Instant::now();
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let sleep_for = {
                let now = self.now();
                let mut state = self.lock();
                let first = state.waiting.first() == Some(&ticket);
                if !first || state.in_flight >= self.config.concurrency {
                    None
                } else {
                    match state.window.admit(priority, now) {
                        Ok(()) => {
                            state.in_flight += 1;
                            crate::metrics::runtime::budget(self.plane, &state.window);
                            drop(state);
                            drop(waiting);
                            return Ok(Permit { budget: self });
                        }
                        Err(wait) => {
                            let waited = started.elapsed();
                            if waited + wait > self.config.max_queue_wait_seconds {
                                state.window.refused_total += 1;
                                crate::metrics::runtime::budget(self.plane, &state.window);
                                let limit = state.window.limit_for(priority);
                                drop(state);
                                drop(waiting);
                                return Err(self.refusal(operation, priority, limit, wait));
                            }
                            Some(wait)
                        }
                    }
                }
            };
            match sleep_for {
                Some(wait) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn refusal(
        &self,
        operation: &str,
        priority: Priority,
        limit: u32,
        wait: Duration,
    ) -> ConnectorError {
        ConnectorError::new(
            ErrorCode::RateLimit,
            format!(
                "{operation} not sent: the {} call budget ({limit} {} requests per {}s now) is spent; retry after the wait",
                self.plane,
                priority.as_str(),
                self.config.window_seconds.as_secs_f64()
            ),
        )
        .with_retry_after(Some(wait.max(Duration::from_millis(1))))
    }
}

/// How often a plane can serve a gate check, given its budget (issue 17's
/// "say it in advance").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateInterval {
    pub plane: String,
    /// The gate-check interval the schedule asks for.
    pub wanted_seconds: u64,
    /// The interval the budget can serve (`wanted_seconds` when it can).
    pub effective_seconds: u64,
    /// Status requests per hour the schedule needs.
    pub needed_per_hour: u64,
    /// Status requests per hour the budget leaves gate checks (their share).
    pub available_per_hour: u64,
}

impl GateInterval {
    /// `calls_per_check` requests per gate check of every active ring,
    /// `wanted` apart, against `budget`'s share for gate status.
    pub fn compute(
        plane: &str,
        budget: &BudgetConfig,
        calls_per_check: u64,
        wanted: Duration,
    ) -> GateInterval {
        let per_window = f64::from(budget.requests) * Priority::Status.share();
        let available_per_hour =
            status_per_hour(per_window, budget.window_seconds, wanted).floor() as u64;
        GateInterval::from_rates(plane, wanted, calls_per_check, available_per_hour)
    }

    /// `calls_per_check` requests per gate check of every active ring,
    /// `wanted` apart, against `available_per_hour` requests for gate status.
    pub fn from_rates(
        plane: &str,
        wanted: Duration,
        calls_per_check: u64,
        available_per_hour: u64,
    ) -> GateInterval {
        let wanted_seconds = wanted.as_secs().max(1);
        let needed_per_hour = calls_per_check
            .saturating_mul(3_600)
            .div_ceil(wanted_seconds);
        // Gate checks run on the schedule's ticks: a budget that cannot serve
        // every tick serves every k-th.
        let effective_seconds = if needed_per_hour <= available_per_hour {
            wanted_seconds
        } else {
            let ticks = needed_per_hour.div_ceil(available_per_hour.max(1));
            wanted_seconds.saturating_mul(ticks)
        };
        GateInterval {
            plane: plane.to_string(),
            wanted_seconds,
            effective_seconds,
            needed_per_hour,
            available_per_hour,
        }
    }

    /// Whether the budget cannot serve the schedule.
    pub fn is_slower(&self) -> bool {
        self.effective_seconds > self.wanted_seconds
    }

    /// "Intune status every 2 h, not 1 h: 1,300 calls/h needed, 900 available".
    pub fn sentence(&self) -> String {
        if self.is_slower() {
            format!(
                "{} status every {}, not {}: {} calls/h needed, {} available",
                self.plane,
                human_interval(self.effective_seconds),
                human_interval(self.wanted_seconds),
                thousands(self.needed_per_hour),
                thousands(self.available_per_hour)
            )
        } else {
            format!(
                "{} status every {} as scheduled: {} calls/h needed, {} available",
                self.plane,
                human_interval(self.wanted_seconds),
                thousands(self.needed_per_hour),
                thousands(self.available_per_hour)
            )
        }
    }
}

/// Requests per hour gate checks can get from a budget that admits
/// `per_window` status requests per `window`, when they are asked in one
/// burst every `wanted` (the daemon's steps): the budget's status share per
/// hour, or, when the window is shorter than the interval, one window's
/// share per burst (a check waits at most `max_queue_wait_seconds` for a
/// slot, so a burst cannot spend the windows between two steps).
pub fn status_per_hour(per_window: f64, window: Duration, wanted: Duration) -> f64 {
    per_window * 3_600.0 / window.max(wanted).as_secs_f64().max(0.001)
}

/// A plane's gate checks as the daemon's status page and metric show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateChecks {
    /// At the live demand of the daemon's last step: the rollouts asking
    /// for gate checks, each at what its check costs in the ring it is in
    /// (`pacing::PlanePacing::live`), against the budget's rate now. `None`
    /// before the daemon's first step.
    pub now: Option<GateInterval>,
    /// Rollouts asking for gate checks in that step.
    pub rollouts: usize,
    /// The worst case `plan` says in advance: every intent of the tracked
    /// revision on the plane rolling out at once, each in its last ring,
    /// against the plane's default budget (`plan::gate_check_every`).
    pub worst_case: GateInterval,
}

fn human_interval(seconds: u64) -> String {
    if seconds.is_multiple_of(3_600) {
        format!("{} h", seconds / 3_600)
    } else if seconds.is_multiple_of(60) {
        format!("{} min", seconds / 60)
    } else if seconds > 3_600 {
        format!("{:.1} h", seconds as f64 / 3_600.0)
    } else {
        format!("{seconds} s")
    }
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Status requests one gate check of `devices` devices costs on a plane
/// whose status query reads them `page_size` at a time (the bound the
/// conformance suite's cost check asserts: pages plus a handful).
pub fn status_calls(devices: u64, page_size: u64) -> u64 {
    devices.div_ceil(page_size.max(1)) + 6
}

pub mod pacing;

#[cfg(test)]
mod tests;
