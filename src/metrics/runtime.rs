//! What the store cannot say: how the running process's calls go. Plane
//! call latency, outcome classes and throttling, circuit breaker states
//! and policy evaluation time are measured here, in memory, by the few
//! places every such call passes through (the plane breakers' `call`, which
//! wraps every connector call the performer makes; the breakers' owners;
//! the policy engine's `evaluate`), and appended to every scrape.
//!
//! These are the [`families::PROCESS`] families: they start again from
//! zero when the process restarts (Prometheus handles counter resets);
//! everything else on `/metrics` is read from the store.

use super::families::{self, Family, Kind};
use crate::orchestrator::{BreakerState, CircuitBreaker};
use crate::planes::{ConnectorError, ErrorCode};
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The process's measurements.
struct Runtime {
    registry: Registry,
    plane_calls: IntCounterVec,
    plane_call_seconds: HistogramVec,
    plane_throttled: IntCounterVec,
    budget_limit: GaugeVec,
    budget_requests: IntCounterVec,
    gate_interval: GaugeVec,
    /// The gate-check intervals the daemon's last step computed, per plane
    /// (what the status page says).
    gate_checks: Mutex<BTreeMap<String, crate::planes::budget::GateChecks>>,
    /// The budget totals last reported per plane: (sent, refused, throttled).
    budgets: Mutex<BTreeMap<String, (u64, u64, u64)>>,
    circuit_state: GaugeVec,
    circuit_openings: IntCounterVec,
    policy_seconds: HistogramVec,
    /// The last breaker state seen per dependency: (state code, openings).
    breakers: Mutex<BTreeMap<String, (u8, u32)>>,
}

fn counter(registry: &Registry, family: Family) -> IntCounterVec {
    assert_eq!(family.kind, Kind::Counter, "{}", family.name);
    let vec = IntCounterVec::new(Opts::new(family.name, family.help), family.labels)
        .expect("valid counter definition");
    register(registry, Box::new(vec.clone()));
    vec
}

fn histogram(registry: &Registry, family: Family, buckets: &[f64]) -> HistogramVec {
    assert_eq!(family.kind, Kind::Histogram, "{}", family.name);
    let opts = HistogramOpts::new(family.name, family.help).buckets(buckets.to_vec());
    let vec = HistogramVec::new(opts, family.labels).expect("valid histogram definition");
    register(registry, Box::new(vec.clone()));
    vec
}

fn register(registry: &Registry, collector: Box<dyn Collector>) {
    registry
        .register(collector)
        .expect("metric names are unique");
}

fn gauge(registry: &Registry, family: Family) -> GaugeVec {
    assert_eq!(family.kind, Kind::Gauge, "{}", family.name);
    let vec = GaugeVec::new(Opts::new(family.name, family.help), family.labels)
        .expect("valid gauge definition");
    register(registry, Box::new(vec.clone()));
    vec
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let registry = Registry::new();
    let circuit_state = GaugeVec::new(
        Opts::new(families::CIRCUIT_STATE.name, families::CIRCUIT_STATE.help),
        families::CIRCUIT_STATE.labels,
    )
    .expect("valid gauge definition");
    register(&registry, Box::new(circuit_state.clone()));
    Runtime {
        plane_calls: counter(&registry, families::PLANE_CALLS),
        plane_call_seconds: histogram(
            &registry,
            families::PLANE_CALL_SECONDS,
            families::PLANE_CALL_BUCKETS,
        ),
        plane_throttled: counter(&registry, families::PLANE_THROTTLED),
        budget_limit: gauge(&registry, families::PLANE_BUDGET_LIMIT),
        budget_requests: counter(&registry, families::PLANE_BUDGET_REQUESTS),
        gate_interval: gauge(&registry, families::PLANE_GATE_INTERVAL),
        gate_checks: Mutex::new(BTreeMap::new()),
        budgets: Mutex::new(BTreeMap::new()),
        circuit_state,
        circuit_openings: counter(&registry, families::CIRCUIT_OPENINGS),
        policy_seconds: histogram(
            &registry,
            families::POLICY_EVALUATION_SECONDS,
            families::POLICY_EVALUATION_BUCKETS,
        ),
        breakers: Mutex::new(BTreeMap::new()),
        registry,
    }
});

/// The process families, for the exposition.
pub fn gather() -> Vec<MetricFamily> {
    RUNTIME.registry.gather()
}

/// The outcome class of a call's result.
pub fn outcome_of<T>(result: &Result<T, ConnectorError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(error) => error.class.as_str(),
    }
}

/// Makes `call` to `plane` and records it: its duration, its outcome class,
/// and whether the plane throttled it. The one wrapper of connector calls
/// (used by the plane breakers, around every call they let through).
pub async fn plane_call<T>(
    plane: &str,
    operation: &str,
    call: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    let started = Instant::now();
    let result = call.await;
    record_plane_call(plane, operation, started.elapsed(), &result);
    result
}

/// Records one call that was sent.
pub fn record_plane_call<T>(
    plane: &str,
    operation: &str,
    elapsed: Duration,
    result: &Result<T, ConnectorError>,
) {
    let runtime = &*RUNTIME;
    runtime
        .plane_call_seconds
        .with_label_values(&[plane, operation])
        .observe(elapsed.as_secs_f64());
    runtime
        .plane_calls
        .with_label_values(&[plane, operation, outcome_of(result)])
        .inc();
    // The series exists from the plane's first call: 0 is a figure.
    let throttled = runtime.plane_throttled.with_label_values(&[plane]);
    if let Err(error) = result
        && error.code == ErrorCode::RateLimit
    {
        throttled.inc();
    }
}

/// Records a call the plane's breaker refused (nothing was sent).
pub fn plane_call_refused(plane: &str, operation: &str) {
    RUNTIME
        .plane_calls
        .with_label_values(&[plane, operation, "circuit_open"])
        .inc();
}

/// The gauge value of a breaker state.
pub fn state_code(state: &BreakerState) -> u8 {
    match state {
        BreakerState::Closed { .. } => 0,
        BreakerState::HalfOpen { .. } => 1,
        BreakerState::Open { .. } => 2,
    }
}

/// Records where `dependency`'s breaker stands (after a call, a refusal or
/// a probe); counts an opening when it newly opened. `dependency` is one of
/// a closed set: a plane's name, `github_api`, `git_fetch`, `evidence_push`.
pub fn breaker(dependency: &str, breaker: &CircuitBreaker) {
    let state = breaker.state();
    let code = state_code(state);
    let openings = match state {
        BreakerState::Open { openings, .. } => *openings,
        _ => 0,
    };
    let runtime = &*RUNTIME;
    runtime
        .circuit_state
        .with_label_values(&[dependency])
        .set(f64::from(code));
    let opened_counter = runtime.circuit_openings.with_label_values(&[dependency]);
    let mut seen = runtime
        .breakers
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let previous = seen.insert(dependency.to_owned(), (code, openings));
    if code == 2 && previous != Some((code, openings)) {
        opened_counter.inc();
    }
}

/// Records where a plane's call budget stands (after each admission,
/// refusal or answer).
pub fn budget(plane: &str, window: &crate::planes::budget::Window) {
    let runtime = &*RUNTIME;
    runtime
        .budget_limit
        .with_label_values(&[plane])
        .set(f64::from(window.limit()));
    let totals = (
        window.sent_total,
        window.refused_total,
        window.throttled_total,
    );
    let mut seen = runtime
        .budgets
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let last = seen.entry(plane.to_owned()).or_default();
    for (outcome, now, before) in [
        ("sent", totals.0, last.0),
        ("refused", totals.1, last.1),
        ("throttled", totals.2, last.2),
    ] {
        runtime
            .budget_requests
            .with_label_values(&[plane, outcome])
            .inc_by(now.saturating_sub(before));
    }
    *last = (
        last.0.max(totals.0),
        last.1.max(totals.1),
        last.2.max(totals.2),
    );
}

/// What the daemon knows of each plane's budget at a step: the worst-case
/// gate-check interval of its intents against the plane's default budget
/// (every intent in its last ring at once, `plan::gate_check_every`;
/// `wanted`: the poll interval), and, for a plane whose connector has not
/// reported a budget yet (the in-process `sim` fleet has none), the default
/// budget's rate with zero requests, so every plane has its series.
pub fn plane_budgets(
    snapshot: &crate::model::Snapshot,
    wanted: Duration,
) -> Vec<(crate::model::Plane, crate::planes::budget::GateInterval)> {
    let mut intervals = Vec::new();
    for plane in crate::daemon::planes::listed(snapshot) {
        let Some(interval) = crate::plan::gate_check_every(snapshot, plane, wanted) else {
            continue;
        };
        intervals.push((plane, interval.clone()));
        let runtime = &*RUNTIME;
        runtime
            .gate_interval
            .with_label_values(&[plane.as_str(), "wanted"])
            .set(interval.wanted_seconds as f64);
        runtime
            .gate_interval
            .with_label_values(&[plane.as_str(), "worst_case"])
            .set(interval.effective_seconds as f64);
        let mut seen = runtime
            .budgets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !seen.contains_key(plane.as_str())
            && let Some(budget) = crate::plan::default_budget(plane)
        {
            seen.insert(plane.as_str().to_owned(), (0, 0, 0));
            runtime
                .budget_limit
                .with_label_values(&[plane.as_str()])
                .set(f64::from(budget.requests));
            for outcome in ["sent", "refused", "throttled"] {
                runtime
                    .budget_requests
                    .with_label_values(&[plane.as_str(), outcome])
                    .inc_by(0);
            }
        }
    }
    intervals
}

/// Each plane's gate checks as the daemon's last step left them (empty
/// before the first step, and in a process that runs no daemon).
pub fn gate_checks() -> Vec<crate::planes::budget::GateChecks> {
    RUNTIME
        .gate_checks
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .values()
        .cloned()
        .collect()
}

/// Records a plane's gate checks after a step: the effective interval at
/// the live demand (`interval="effective"`), the schedule's (`"wanted"`)
/// and the worst case `plan` says (`"worst_case"`).
pub fn record_gate_checks(plane: &str, checks: crate::planes::budget::GateChecks) {
    let runtime = &*RUNTIME;
    let effective = checks.now.as_ref().unwrap_or(&checks.worst_case);
    for (interval, seconds) in [
        ("wanted", effective.wanted_seconds),
        ("effective", effective.effective_seconds),
        ("worst_case", checks.worst_case.effective_seconds),
    ] {
        runtime
            .gate_interval
            .with_label_values(&[plane, interval])
            .set(seconds as f64);
    }
    runtime
        .gate_checks
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .insert(plane.to_owned(), checks);
}

/// Records one evaluation of the policy bundle.
pub fn policy_evaluated(elapsed: Duration, ok: bool) {
    RUNTIME
        .policy_seconds
        .with_label_values(&[if ok { "ok" } else { "error" }])
        .observe(elapsed.as_secs_f64());
}
