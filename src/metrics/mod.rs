//! What `/metrics` says: the facts the store holds, turned into Prometheus
//! families (names, types and labels in [`families`]).
//!
//! Metrics are read from the store at scrape time, not counted in memory:
//! counters are counts over the append-only event log, so they survive a
//! restart and never go down, and the exposition reports only what happened
//! (DESIGN: "only what happened"). [`Observation::read`] does the reading
//! (a handful of grouped SQL queries), [`render`] is a pure function of it.
//!
//! The text is the Prometheus exposition format 0.0.4, which `promtool check
//! metrics` lints and every Prometheus scrapes; it is produced by the
//! `prometheus` crate's encoder (label values escaped there).

pub mod approvals;
pub mod families;
pub mod runtime;

use crate::model::{ApprovalDecision, ApprovalRecord};
use crate::store::{
    ComplianceObservation, EventCount, EvidenceHead, RolloutRows, Store, StoreError, TelemetryRows,
};
use chrono::{DateTime, Utc};
use families::{Family, Kind};
use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One CAB decision's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalTiming {
    pub decision: &'static str,
    pub seconds: f64,
}

impl ApprovalTiming {
    /// The timing of a decided record that says when it was submitted.
    pub fn of(record: &ApprovalRecord) -> Option<ApprovalTiming> {
        let submitted = record.submitted_at?;
        let decision = match record.decision {
            ApprovalDecision::Approved => "approved",
            ApprovalDecision::Denied => "denied",
            ApprovalDecision::Pending => return None,
        };
        let seconds = (record.decided_at - submitted).num_milliseconds() as f64 / 1000.0;
        (seconds >= 0.0).then_some(ApprovalTiming { decision, seconds })
    }
}

/// Everything one scrape reports.
#[derive(Debug, Clone)]
pub struct Observation {
    pub now: DateTime<Utc>,
    pub rollouts: RolloutRows,
    pub rows: TelemetryRows,
    pub evidence_head: Option<EvidenceHead>,
    pub approvals: Vec<ApprovalTiming>,
    /// How long the previous collection took.
    pub previous_collect_seconds: f64,
}

/// The event log's aggregates, kept between scrapes: the log only grows, so
/// each scrape counts only the events appended since the last one
/// ([`Store::event_tally`]) and adds them up here.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    upto: u64,
    events: BTreeMap<[String; 6], u64>,
    compliance: Vec<ComplianceObservation>,
}

impl Tally {
    /// Counts the events appended since the last update.
    pub fn update(&mut self, store: &Store) -> Result<(), StoreError> {
        let mut fresh = store.event_tally(self.upto)?;
        if fresh.upto < self.upto {
            // A shorter log than counted: another store; count it anew.
            *self = Tally::default();
            fresh = store.event_tally(0)?;
        }
        for event in fresh.events {
            let key = [
                event.event_type,
                event.application_id,
                event.ring,
                event.plane,
                event.outcome,
                event.class,
            ];
            *self.events.entry(key).or_default() += event.count;
        }
        self.compliance.extend(fresh.compliance);
        self.upto = self.upto.max(fresh.upto);
        Ok(())
    }

    fn events(&self) -> Vec<EventCount> {
        self.events
            .iter()
            .map(|(key, count)| {
                let [event_type, application_id, ring, plane, outcome, class] = key.clone();
                EventCount {
                    event_type,
                    application_id,
                    ring,
                    plane,
                    outcome,
                    class,
                    count: *count,
                }
            })
            .collect()
    }
}

impl Observation {
    /// Reads the store (no writes).
    pub fn read(
        store: &Store,
        approvals: Vec<ApprovalTiming>,
        now: DateTime<Utc>,
    ) -> Result<Observation, StoreError> {
        Observation::read_with(store, &mut Tally::default(), approvals, now)
    }

    /// Reads the store, counting only the events `tally` has not seen.
    pub fn read_with(
        store: &Store,
        tally: &mut Tally,
        approvals: Vec<ApprovalTiming>,
        now: DateTime<Utc>,
    ) -> Result<Observation, StoreError> {
        tally.update(store)?;
        let mut rows = store.telemetry_rows_but_events()?;
        rows.events = tally.events();
        rows.compliance = tally.compliance.clone();
        Ok(Observation {
            now,
            rollouts: store.rollout_rows()?,
            rows,
            evidence_head: store.evidence_head()?,
            approvals,
            previous_collect_seconds: 0.0,
        })
    }
}

/// The exposition text of `observation`, followed by the process's own
/// measurements ([`runtime`]).
pub fn render(observation: &Observation) -> String {
    let exposition = Exposition::new();
    exposition.fill(observation);
    let mut gathered = exposition.registry.gather();
    gathered.extend(runtime::gather());
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&gathered, &mut buffer)
        .expect("encoding metric families into memory");
    String::from_utf8(buffer).expect("the text encoder writes UTF-8")
}

/// One registry per scrape, built from [`families::STORED`].
struct Exposition {
    registry: Registry,
    gauges: BTreeMap<&'static str, GaugeVec>,
    counters: BTreeMap<&'static str, IntCounterVec>,
    histograms: BTreeMap<&'static str, HistogramVec>,
}

fn buckets_of(family: &Family) -> Vec<f64> {
    if family.name == families::CAB_APPROVAL_TIME.name {
        families::CAB_APPROVAL_BUCKETS.to_vec()
    } else {
        families::TIME_TO_COMPLIANCE_BUCKETS.to_vec()
    }
}

impl Exposition {
    fn new() -> Exposition {
        let mut exposition = Exposition {
            registry: Registry::new(),
            gauges: BTreeMap::new(),
            counters: BTreeMap::new(),
            histograms: BTreeMap::new(),
        };
        for family in families::STORED {
            let collector: Box<dyn Collector> = match family.kind {
                Kind::Gauge => {
                    let vec = GaugeVec::new(Opts::new(family.name, family.help), family.labels)
                        .expect("valid gauge definition");
                    exposition.gauges.insert(family.name, vec.clone());
                    Box::new(vec)
                }
                Kind::Counter => {
                    let vec =
                        IntCounterVec::new(Opts::new(family.name, family.help), family.labels)
                            .expect("valid counter definition");
                    exposition.counters.insert(family.name, vec.clone());
                    Box::new(vec)
                }
                Kind::Histogram => {
                    let opts =
                        HistogramOpts::new(family.name, family.help).buckets(buckets_of(family));
                    let vec =
                        HistogramVec::new(opts, family.labels).expect("valid histogram definition");
                    exposition.histograms.insert(family.name, vec.clone());
                    Box::new(vec)
                }
            };
            exposition
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        exposition
    }

    fn gauge(&self, family: Family, labels: &[&str], value: f64) {
        self.gauges[family.name]
            .with_label_values(labels)
            .set(value);
    }

    fn add_gauge(&self, family: Family, labels: &[&str], value: f64) {
        self.gauges[family.name]
            .with_label_values(labels)
            .add(value);
    }

    fn count(&self, family: Family, labels: &[&str], value: u64) {
        self.counters[family.name]
            .with_label_values(labels)
            .inc_by(value);
    }

    fn observe(&self, family: Family, labels: &[&str], value: f64) {
        self.histograms[family.name]
            .with_label_values(labels)
            .observe(value);
    }

    fn fill(&self, observation: &Observation) {
        self.fill_rollouts(observation);
        self.fill_events(&observation.rows);
        let rows = &observation.rows;
        for approval in &observation.approvals {
            self.observe(
                families::CAB_APPROVAL_TIME,
                &[approval.decision],
                approval.seconds,
            );
        }
        let classes = site_classes(&rows.compliance);
        for sample in &rows.compliance {
            let class = match sample.site_class.as_str() {
                "" => "unspecified",
                class if classes.contains(class) => class,
                _ => "other",
            };
            self.observe(
                families::TIME_TO_COMPLIANCE,
                &[&sample.ring, class],
                sample.hours * 3600.0,
            );
        }
        for action in &rows.plane_actions {
            // Every state of a (plane, operation) seen exists, at 0 if empty.
            for state in ["planned", "sent", "confirmed", "failed"] {
                let labels = [action.plane.as_str(), action.action.as_str(), state];
                self.add_gauge(families::PLANE_ACTIONS, &labels, 0.0);
            }
            let labels = [
                action.plane.as_str(),
                action.action.as_str(),
                action.state.as_str(),
            ];
            self.gauge(families::PLANE_ACTIONS, &labels, action.count as f64);
            self.count(
                families::PLANE_ATTEMPTS,
                &[&action.plane, &action.action],
                action.attempts,
            );
        }
        for outcome in ["ok", "invalid"] {
            let count = rows
                .commits
                .iter()
                .filter(|(name, _)| name == outcome)
                .map(|(_, count)| *count)
                .sum();
            self.count(families::COMMITS_PROCESSED, &[outcome], count);
        }
        let age = rows.last_processed_at.map_or(-1.0, |at| {
            ((observation.now - at).num_milliseconds() as f64 / 1000.0).max(0.0)
        });
        self.gauge(families::LAST_COMMIT_AGE, &[], age);
        self.count(
            families::EVIDENCE_RECORDS,
            &[],
            observation.evidence_head.as_ref().map_or(0, |h| h.sequence),
        );
        for (processed, label) in [(true, "processed"), (false, "queued")] {
            let count = rows
                .webhook_deliveries
                .iter()
                .filter(|(state, _)| *state == processed)
                .map(|(_, count)| *count)
                .sum();
            self.count(families::WEBHOOK_DELIVERIES, &[label], count);
        }
        self.count(families::EVENTS, &[], rows.event_log_length);
        self.gauge(
            families::SCRAPE_DURATION,
            &[],
            observation.previous_collect_seconds,
        );
    }

    /// Rollouts by state, approvals waiting, and the devices of the latest
    /// rollout of each application and business unit, summed by application
    /// and by business unit (never both as labels: see `families`).
    fn fill_rollouts(&self, observation: &Observation) {
        for state in ROLLOUT_STATES {
            self.gauge(families::ROLLOUTS, &[state], 0.0);
        }
        for requirement in ["cab_approval", "exception", "policy_verdict"] {
            self.gauge(families::APPROVALS_PENDING, &[requirement], 0.0);
        }
        for group in &observation.rollouts.states {
            let count = group.count as f64;
            let requirement = group.requirement.as_deref();
            let awaiting = group.phase == "awaiting_approval";
            let name = match requirement {
                Some("active_change") if awaiting => "blocked",
                _ => group.phase.as_str(),
            };
            self.add_gauge(families::ROLLOUTS, &[name], count);
            if awaiting
                && let Some(requirement) = requirement
                && requirement != "active_change"
            {
                self.add_gauge(families::APPROVALS_PENDING, &[requirement], count);
            }
        }
        let oldest = observation
            .rows
            .awaiting_since
            .iter()
            .map(|(_, since)| (observation.now - *since).num_milliseconds() as f64 / 1000.0)
            .fold(0.0_f64, f64::max);
        self.gauge(families::APPROVALS_OLDEST_WAIT, &[], oldest);
        // (targeted, installed, failed, pending) summed per label set.
        type Sums = [u64; 4];
        fn add(sums: &mut Sums, ring: &crate::store::LatestRing) {
            sums[0] += ring.targeted;
            sums[1] += ring.installed;
            sums[2] += ring.failed;
            sums[3] += ring.pending;
        }
        let mut by_application: BTreeMap<(&str, &str, &str), Sums> = BTreeMap::new();
        let mut by_unit: BTreeMap<(&str, &str), Sums> = BTreeMap::new();
        let mut by_ring: BTreeMap<(&str, &str), Sums> = BTreeMap::new();
        for ring in &observation.rollouts.rings {
            let (application, unit, plane) = (
                ring.application_id.as_str(),
                ring.business_unit.as_str(),
                ring.plane.as_str(),
            );
            let name = ring.ring.as_str();
            add(
                by_application
                    .entry((application, name, plane))
                    .or_default(),
                ring,
            );
            add(by_unit.entry((unit, name)).or_default(), ring);
            add(by_ring.entry((name, plane)).or_default(), ring);
        }
        const STATUSES: [&str; 4] = ["targeted", "succeeded", "failed", "pending"];
        for ((application, ring, plane), sums) in &by_application {
            for (status, value) in STATUSES.iter().zip(sums) {
                let labels = [*application, *ring, *plane, *status];
                self.gauge(families::RING_DEVICES, &labels, *value as f64);
            }
        }
        for ((unit, ring), sums) in &by_unit {
            for (status, value) in STATUSES.iter().zip(sums) {
                let labels = [*unit, *ring, *status];
                self.gauge(families::BUSINESS_UNIT_DEVICES, &labels, *value as f64);
            }
        }
        for ((ring, plane), [targeted, installed, failed, _]) in &by_ring {
            if *targeted > 0 {
                let targeted = *targeted as f64;
                let labels = [*ring, *plane];
                self.gauge(
                    families::RING_SUCCESS_RATE,
                    &labels,
                    *installed as f64 / targeted,
                );
                self.gauge(
                    families::RING_FAILURE_RATE,
                    &labels,
                    *failed as f64 / targeted,
                );
            }
        }
    }

    fn fill_events(&self, rows: &TelemetryRows) {
        let mut remediations = (0_u64, 0_u64);
        self.count(families::EVIDENCE_PUSH_FAILURES, &[], 0);
        self.count(families::CAB_APPROVALS, &[], 0);
        self.count(families::INCIDENTS_OPENED, &[], 0);
        for event in &rows.events {
            let count = event.count;
            match event.event_type.as_str() {
                "rollback_executed" if event.outcome == "success" => {
                    self.count(
                        families::ROLLBACKS_EXECUTED,
                        &[&event.application_id],
                        count,
                    );
                }
                "ring_started" => {
                    self.count(families::RING_STARTS, &[&event.ring, &event.plane], count)
                }
                "gate_evaluated" | "ring_completed" if !event.class.is_empty() => {
                    self.count(families::GATE_VERDICTS, &[&event.ring, &event.class], count)
                }
                "drift_detected" => self.count(
                    families::DRIFT_EVENTS,
                    &[&event.application_id, or_unknown(&event.class)],
                    count,
                ),
                "remediation_result" => {
                    remediations.1 += count;
                    if event.class == "success" {
                        remediations.0 += count;
                    }
                    self.count(families::REMEDIATIONS, &[or_unknown(&event.class)], count);
                }
                "cab_approved" => self.count(families::CAB_APPROVALS, &[], count),
                "incident_opened" => self.count(families::INCIDENTS_OPENED, &[], count),
                "publish_blocked" => {
                    if event.class == "evidence_push_failed" {
                        self.count(families::EVIDENCE_PUSH_FAILURES, &[], count);
                    }
                    if event.class == "plane_change_refused" {
                        self.count(families::PLANE_REFUSED, &[&event.plane], count);
                    }
                    self.count(
                        families::PUBLISH_BLOCKED,
                        &[or_unknown(&event.class)],
                        count,
                    );
                }
                _ => {}
            }
        }
        let rate = if remediations.1 == 0 {
            1.0
        } else {
            remediations.0 as f64 / remediations.1 as f64
        };
        self.gauge(families::REMEDIATION_SUCCESS_RATE, &[], rate);
    }
}

/// The site classes that are labels: the [`families::MAX_SITE_CLASSES`]
/// most observed (ties by name), so a tenant naming a hundred classes
/// cannot grow the family without bound.
fn site_classes(
    samples: &[crate::store::ComplianceObservation],
) -> std::collections::BTreeSet<&str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for sample in samples {
        if !sample.site_class.is_empty() {
            *counts.entry(sample.site_class.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(families::MAX_SITE_CLASSES)
        .map(|(class, _)| class)
        .collect()
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "unknown" } else { text }
}

/// Every state a rollout can be in (the run's phases), so each series
/// exists from the first scrape (a missing series is not a zero).
pub const ROLLOUT_STATES: &[&str] = &[
    "pending",
    "scope_validated",
    "awaiting_approval",
    "cab_approved",
    "ring_starting",
    "ring_in_progress",
    "ring_completed",
    "paused",
    "held",
    "rolling_back",
    "completed",
    "failed",
    "rolled_back",
    "superseded",
];

#[cfg(test)]
mod tests;
