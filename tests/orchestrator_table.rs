//! The ring state machine, table by table: every transition, gates, freezes,
//! CAB rules, rollback and halt, blocked versions, retries, evidence first, and
//! a seeded random walk that never publishes before its evidence is committed.
//! No runtime, no clock: time is a value the tests move.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ringmaster::model::{ApprovalCondition, Config, DeploymentIntent};
use ringmaster::orchestrator::*;
use ringmaster::policy::Decision;

const LAB: &str = "ring-0-lab";
const CANARY: &str = "ring-1-canary";
const PILOT: &str = "ring-2-pilot";

const CONFIG: &str = r#"
tenant: contoso
risk_model_version: "v1.0"
rings:
  - { id: ring-0-lab, name: Lab, soak_hours: 4 }
  - { id: ring-1-canary, name: Canary, soak_hours: 24 }
  - { id: ring-2-pilot, name: Pilot, soak_hours: 48 }
  - { id: ring-3-department, name: Department, soak_hours: 72 }
gates: { success_rate_threshold: 0.95, time_to_compliance_hours: 24, max_incidents: 0, min_reporting_devices: 3 }
cab: { risk_threshold: 50, from_ring: ring-2-pilot }
change_freezes:
  - { name: year-end-freeze, cron: "0 0 0 20 12 *", duration_hours: 336, timezone: UTC }
planes: [intune]
"#;

const INTENT: &str = r#"
intent_id: vpn-2.1
application_id: vpn-client
version: "2.1.0"
artifact_hash: "sha256:aaaa"
target_scope: { acquisition_boundary: acq-001, business_unit: bu-finance, rings: [ring-0-lab, ring-1-canary, ring-2-pilot] }
rollback_plan: { strategy: intune-supersedence, rollback_version: "2.0.5", validated: true }
requested_by: alice
"#;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

fn verdict(decision: Decision, approvals: &[&str]) -> Event {
    Event::Evaluated {
        decision,
        risk_score: 60,
        counted_approvals: approvals.iter().map(|id| id.to_string()).collect(),
        conditions: Vec::new(),
        emergency_override: false,
        waits_on: Vec::new(),
    }
}

fn allow() -> Event {
    verdict(Decision::Allow, &[])
}

/// A report where every targeted device reported.
fn status(ring: &str, installed: u32, failed: u32, incidents: u32) -> Event {
    status_of(ring, installed + failed, installed, failed, incidents)
}

/// A report from a ring of `targeted` devices; the rest are pending.
fn status_of(ring: &str, targeted: u32, installed: u32, failed: u32, incidents: u32) -> Event {
    Event::StatusObserved {
        ring: ring.into(),
        targeted,
        installed,
        failed,
        pending: targeted - installed - failed,
        incidents,
        first_install_at: None,
    }
}

fn publish_failed(ring: &str, class: FailureClass, retry_after_seconds: Option<u64>) -> Event {
    Event::PublishFailed {
        ring: ring.into(),
        error: ConnectorFailure {
            class,
            code: "E42".into(),
            retry_after_seconds,
        },
    }
}

fn hold() -> Event {
    Event::OperatorHold {
        reason: "checking tickets".into(),
        actor: "bob".into(),
    }
}

fn resume() -> Event {
    Event::OperatorResume {
        actor: "bob".into(),
    }
}

fn rollback() -> Event {
    Event::OperatorRollback {
        reason: "user reports".into(),
        actor: "bob".into(),
    }
}

fn claimed(ring: &str) -> Event {
    Event::RingClaimed { ring: ring.into() }
}

fn busy(ring: &str) -> Event {
    Event::RingBusy {
        ring: ring.into(),
        holder_intent_id: "vpn-2.0".into(),
    }
}

fn committed(transition_id: &str) -> Event {
    Event::EvidenceCommitted {
        transition_id: transition_id.into(),
    }
}

fn evidence_failed(transition_id: &str) -> Event {
    Event::EvidenceFailed {
        transition_id: transition_id.into(),
        error: "evidence branch push rejected".into(),
    }
}

fn confirmed(ring: &str) -> Event {
    Event::PublishConfirmed {
        ring: ring.into(),
        external_id: format!("assignment-{ring}"),
    }
}

fn transient(ring: &str, retry_after_seconds: Option<u64>) -> Event {
    publish_failed(ring, FailureClass::Transient, retry_after_seconds)
}

fn superseded() -> Event {
    Event::Superseded {
        by_intent: "vpn-2.2".into(),
    }
}

fn offset(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let seconds = (to - from).num_seconds();
    match seconds {
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One effect as a short string; audit events as `event:<kind>`.
fn describe(effect: &Effect, now: DateTime<Utc>) -> String {
    match effect {
        Effect::RecordEvidence { record_type, .. } => format!("record:{record_type}"),
        Effect::ClaimRing { ring } => format!("claim:{ring}"),
        Effect::ReleaseRing { ring } => format!("release:{ring}"),
        Effect::Publish { ring } => format!("publish:{ring}"),
        Effect::QueryStatus { ring } => format!("query:{ring}"),
        Effect::Remediate {
            strategy, action, ..
        } => match action {
            RemediationAction::Rollback { to_version } => {
                format!("remediate:{strategy}:{to_version}")
            }
            RemediationAction::Uninstall => format!("remediate:{strategy}:uninstall"),
            RemediationAction::Halt => format!("remediate:{strategy}"),
        },
        Effect::EmitEvent { details, .. } => format!("event:{}", details["kind"].as_str().unwrap()),
        Effect::WakeAt { at } => format!("wake+{}", offset(now, *at)),
        Effect::Alert { .. } => "alert".into(),
    }
}

/// A run, the test's clock, and the effects of the last event.
struct Harness {
    run: IntentRun,
    now: DateTime<Utc>,
    last: Vec<Effect>,
}

impl Harness {
    fn build(
        edit_intent: impl FnOnce(&mut DeploymentIntent),
        edit_config: impl FnOnce(&mut Config),
    ) -> Harness {
        let mut intent: DeploymentIntent = serde_yaml::from_str(INTENT).unwrap();
        let mut config: Config = serde_yaml::from_str(CONFIG).unwrap();
        edit_intent(&mut intent);
        edit_config(&mut config);
        let plan = RolloutPlan::resolve(&intent, &config, &[]).unwrap();
        let mut run = IntentRun::new(&intent, plan);
        Shared::make_mut(&mut run.backoff).jitter_ratio = 0.0;
        Harness {
            run,
            now: t0(),
            last: Vec::new(),
        }
    }

    fn new() -> Harness {
        Harness::build(|_| {}, |_| {})
    }

    fn send(&mut self, event: Event) -> &mut Harness {
        let (run, effects) = step(&self.run, &event, self.now);
        self.run = run;
        self.last = effects;
        self
    }

    fn later(&mut self, hours: f64) -> &mut Harness {
        self.now += duration_from_hours(hours);
        self
    }

    /// Non-audit effects of the last event.
    fn effects(&self) -> Vec<String> {
        self.last
            .iter()
            .map(|effect| describe(effect, self.now))
            .filter(|text| !text.starts_with("event:"))
            .collect()
    }

    /// Audit event kinds of the last event.
    fn events(&self) -> Vec<String> {
        self.last
            .iter()
            .map(|effect| describe(effect, self.now))
            .filter_map(|text| text.strip_prefix("event:").map(str::to_string))
            .collect()
    }

    fn phase(&self) -> &'static str {
        self.run.phase.name()
    }

    fn last_record_id(&self) -> String {
        self.last
            .iter()
            .rev()
            .find_map(|effect| match effect {
                Effect::RecordEvidence { transition_id, .. } => Some(transition_id.clone()),
                _ => None,
            })
            .expect("a RecordEvidence in the last effects")
    }

    /// From `Claiming` to `RingInProgress` for `ring`.
    fn start_ring(&mut self, ring: &str) -> &mut Harness {
        self.send(Event::RingClaimed { ring: ring.into() });
        let transition_id = self.last_record_id();
        self.send(Event::EvidenceCommitted { transition_id });
        self.send(Event::PublishConfirmed {
            ring: ring.into(),
            external_id: format!("assignment-{ring}"),
        })
    }

    /// Start, soak and pass `ring` (a first install after an hour).
    fn pass_ring(&mut self, ring: &str) -> &mut Harness {
        let soak = self.run.plan.rings[self.run.plan.index_of(ring).unwrap()].soak_hours;
        self.start_ring(ring).later(1.0).send(status(ring, 1, 0, 0));
        self.later(soak - 1.0).send(status(ring, 20, 0, 0))
    }
}

// ---- setups: a run in each phase, reached by events ----

fn pending() -> Harness {
    Harness::new()
}
fn awaiting_exception() -> Harness {
    let mut harness = Harness::new();
    harness.send(verdict(Decision::RequireException, &[]));
    harness
}
fn awaiting_cab() -> Harness {
    let mut harness = Harness::new();
    harness.send(verdict(Decision::RequireApproval, &[]));
    harness.pass_ring(LAB).pass_ring(CANARY);
    harness
}
fn claiming() -> Harness {
    let mut harness = Harness::new();
    harness.send(allow());
    harness
}
fn recording() -> Harness {
    let mut harness = claiming();
    harness.send(Event::RingClaimed { ring: LAB.into() });
    harness
}
fn publishing() -> Harness {
    let mut harness = recording();
    let transition_id = harness.last_record_id();
    harness.send(Event::EvidenceCommitted { transition_id });
    harness
}
fn soaking() -> Harness {
    let mut harness = claiming();
    harness.start_ring(LAB).later(1.0);
    harness
}
fn soaked() -> Harness {
    let mut harness = soaking();
    harness.later(3.0);
    harness
}
fn held_inconclusive() -> Harness {
    let mut harness = soaked();
    harness.send(status(LAB, 2, 0, 0));
    harness
}
fn held_with_fresh_data() -> Harness {
    let mut harness = held_inconclusive();
    harness.later(1.0).send(status(LAB, 20, 0, 0));
    harness
}
fn held_by_operator() -> Harness {
    let mut harness = soaking();
    harness.send(hold());
    harness
}
fn rolling_back() -> Harness {
    let mut harness = soaking();
    harness.send(status(LAB, 5, 0, 1));
    harness
}
fn rolled_back() -> Harness {
    let mut harness = rolling_back();
    harness.send(Event::RollbackConfirmed);
    harness
}
fn completed() -> Harness {
    let mut harness = claiming();
    harness.pass_ring(LAB).pass_ring(CANARY).pass_ring(PILOT);
    harness
}

/// From `setup`, `event` leads to `phase` with these non-audit effects.
fn check(setup: fn() -> Harness, event: Event, phase: &str, effects: &[&str]) {
    let mut harness = setup();
    let before = harness.phase();
    harness.send(event.clone());
    assert_eq!(
        (harness.phase(), harness.effects()),
        (phase, effects.iter().map(|e| e.to_string()).collect()),
        "from {before} on {event:?}; audit: {:?}",
        harness.events()
    );
}

#[test]
#[rustfmt::skip]
fn every_transition() {
    use Decision::*;
    const ROLLBACK: [&str; 2] = ["record:rollback_started", "remediate:intune-supersedence:2.0.5"];
    const FAILED_IN_LAB: [&str; 3] = ["record:failed", "release:ring-0-lab", "alert"];
    check(pending, allow(), "ring_starting", &["claim:ring-0-lab"]);
    check(pending, verdict(RequireApproval, &[]), "ring_starting", &["claim:ring-0-lab"]);
    check(pending, verdict(RequireException, &[]), "awaiting_approval", &[]);
    check(pending, verdict(Deny, &[]), "failed", &["record:failed"]);
    check(pending, Event::Tick, "pending", &[]);
    check(pending, hold(), "held", &["record:held"]);
    check(pending, resume(), "pending", &[]);
    check(pending, rollback(), "rolled_back", &["record:rolled_back"]);
    check(pending, committed("x"), "pending", &[]);
    check(pending, confirmed(LAB), "pending", &[]);
    check(pending, superseded(), "superseded", &["record:superseded"]);
    check(awaiting_exception, Event::Tick, "awaiting_approval", &[]);
    check(awaiting_exception, verdict(RequireException, &[]), "awaiting_approval", &[]);
    check(awaiting_exception, verdict(RequireApproval, &[]), "ring_starting", &["claim:ring-0-lab"]);
    check(awaiting_exception, allow(), "ring_starting", &["claim:ring-0-lab"]);
    check(awaiting_cab, Event::Tick, "awaiting_approval", &[]);
    check(awaiting_cab, verdict(RequireApproval, &[]), "awaiting_approval", &[]);
    check(awaiting_cab, verdict(Allow, &["cab-1"]), "ring_starting", &["claim:ring-2-pilot"]);
    check(claiming, claimed(LAB), "ring_starting", &["record:ring_start"]);
    check(claiming, claimed(CANARY), "ring_starting", &[]);
    check(claiming, busy(LAB), "ring_starting", &["wake+30s"]);
    check(claiming, Event::Tick, "ring_starting", &[]);
    check(recording, committed("vpn-2.1/0099-x"), "ring_starting", &[]);
    check(recording, evidence_failed("vpn-2.1/0001-ring_start"), "ring_starting", &["wake+30s"]);
    check(recording, confirmed(LAB), "ring_starting", &[]);
    check(recording, hold(), "held", &["record:held"]);
    check(publishing, confirmed(LAB), "ring_in_progress", &["wake+4h"]);
    check(publishing, transient(LAB, None), "ring_starting", &["wake+30s"]);
    check(publishing, transient(LAB, Some(300)), "ring_starting", &["wake+5m"]);
    check(publishing, transient(CANARY, None), "ring_starting", &[]);
    check(publishing, publish_failed(LAB, FailureClass::Permanent, None), "failed", &FAILED_IN_LAB);
    check(publishing, publish_failed(LAB, FailureClass::PolicyViolation, None), "failed", &FAILED_IN_LAB);
    check(soaking, status(LAB, 20, 0, 0), "ring_in_progress", &[]);
    check(soaking, status(LAB, 5, 0, 1), "rolling_back", &ROLLBACK);
    check(soaking, Event::Tick, "ring_in_progress", &["query:ring-0-lab"]);
    check(soaking, hold(), "held", &["record:held"]);
    check(soaking, rollback(), "rolling_back", &ROLLBACK);
    // The superseded run's assignments are withdrawn: halt, then the ring goes.
    check(soaking, superseded(), "superseded", &["record:superseded", "remediate:halt", "release:ring-0-lab"]);
    check(soaking, verdict(Deny, &[]), "failed", &FAILED_IN_LAB);
    check(soaking, Event::RollbackConfirmed, "ring_in_progress", &[]);
    check(soaking, confirmed(LAB), "ring_in_progress", &[]);
    check(soaked, status(LAB, 20, 0, 0), "ring_starting", &["record:ring_completed", "claim:ring-1-canary"]);
    check(soaked, status(LAB, 18, 2, 0), "rolling_back", &ROLLBACK);
    check(soaked, status(LAB, 2, 0, 0), "held", &["record:held", "alert"]);
    check(soaked, status(CANARY, 20, 0, 0), "ring_in_progress", &[]);
    check(held_inconclusive, resume(), "ring_in_progress", &["record:resumed", "query:ring-0-lab"]);
    check(held_inconclusive, status(LAB, 20, 0, 0), "held", &[]);
    check(held_inconclusive, rollback(), "rolling_back", &ROLLBACK);
    check(held_inconclusive, hold(), "held", &[]);
    check(held_inconclusive, Event::Tick, "held", &[]);
    check(held_with_fresh_data, resume(), "ring_starting", &["record:resumed", "record:ring_completed", "claim:ring-1-canary"]);
    check(held_by_operator, resume(), "ring_in_progress", &["record:resumed", "query:ring-0-lab", "wake+3h"]);
    check(rolling_back, Event::RollbackConfirmed, "rolled_back", &["record:rolled_back", "release:ring-0-lab"]);
    check(rolling_back, Event::RollbackFailed { error: "plane 400".into(), failure: None }, "failed",
          &["record:rollback_failed", "alert", "release:ring-0-lab"]);
    check(rolling_back, hold(), "rolling_back", &[]);
    check(rolling_back, rollback(), "rolling_back", &[]);
    check(rolling_back, Event::Tick, "rolling_back", &[]);
    check(rolling_back, superseded(), "rolling_back", &["record:superseded"]);
    check(rolled_back, allow(), "rolled_back", &[]);
    check(rolled_back, resume(), "rolled_back", &[]);
    check(rolled_back, rollback(), "rolled_back", &[]);
    check(rolled_back, superseded(), "rolled_back", &["record:superseded"]);
    check(completed, Event::Tick, "completed", &[]);
    check(completed, status(PILOT, 0, 20, 5), "completed", &[]);
    check(completed, claimed(LAB), "completed", &["release:ring-0-lab"]);
    check(completed, rollback(), "rolling_back", &ROLLBACK);
    check(completed, hold(), "held", &["record:held"]);
}

/// A ring soaked for `hours` reports `(installed, failed, incidents)`; the gate
/// (95%, 3 reporting devices, 24 h to compliance, 0 incidents, 4 h soak) decides.
fn check_gate(hours: f64, counts: (u32, u32, u32), phase: &str) {
    let mut harness = claiming();
    harness.start_ring(LAB).later(hours);
    let (installed, failed, incidents) = counts;
    harness.send(status(LAB, installed, failed, incidents));
    assert_eq!(
        harness.phase(),
        phase,
        "{hours} h, {counts:?}: {:?}",
        harness.run.rings[0].gate()
    );
}

#[test]
#[rustfmt::skip]
fn gates_pass_fail_or_hold_at_their_boundaries() {
    check_gate(4.0, (19, 1, 0), "ring_starting"); // exactly 0.95: pass, next ring
    check_gate(4.0, (37, 3, 0), "rolling_back"); // 0.925
    check_gate(4.0, (3, 0, 0), "ring_starting"); // exactly the minimum of 3
    check_gate(4.0, (2, 0, 0), "held"); // one device short
    check_gate(4.0, (1, 1, 0), "held"); // short, even though failing
    check_gate(3.99, (20, 0, 0), "ring_in_progress"); // soak not over
    check_gate(1.0, (20, 0, 1), "rolling_back"); // an incident does not wait
    check_gate(4.0, (0, 0, 0), "held"); // nobody reported
}

/// A ring of `targeted` devices reports `(installed, failed)` after its soak.
fn check_targeted_gate(targeted: u32, counts: (u32, u32), phase: &str) {
    let mut harness = claiming();
    harness.start_ring(LAB).later(4.0);
    harness.send(status_of(LAB, targeted, counts.0, counts.1, 0));
    assert_eq!(
        harness.phase(),
        phase,
        "{targeted}: {counts:?}: {:?}",
        harness.run.rings[0].gate()
    );
}

#[test]
#[rustfmt::skip]
fn success_is_measured_over_the_targeted_devices() {
    check_targeted_gate(6500, (3, 0), "held"); // 3 reports of 6,500: inconclusive, held after the soak
    check_targeted_gate(6500, (3300, 0), "held"); // half reported, all good, far from 95 %
    check_targeted_gate(6500, (6175, 0), "ring_starting"); // 95 % of the targeted devices
    check_targeted_gate(6500, (4000, 400), "rolling_back"); // 400 failures: 95 % is out of reach
    check_targeted_gate(100, (94, 1), "held"); // 5 pending could still make it: a human looks
    check_targeted_gate(100, (40, 0), "held"); // 40 % reporting, the gates need 50 %
}

#[test]
fn time_to_compliance_counts_from_the_ring_start() {
    let mut harness = claiming();
    harness.start_ring(LAB).later(25.0);
    harness.send(status(LAB, 20, 0, 0)); // first install seen after 25 h > 24 h
    assert_eq!(harness.phase(), "rolling_back");
    let mut harness = claiming();
    harness
        .start_ring(LAB)
        .later(2.0)
        .send(status(LAB, 1, 0, 0));
    harness.later(23.0).send(status(LAB, 20, 0, 0)); // first install at 2 h
    assert_eq!(harness.phase(), "ring_starting");
}

/// Whether `now` is inside the freeze, and until when.
fn check_freeze(cron: &str, hours: f64, zone: &str, now: &str, ends_at: Option<&str>) {
    let freeze = ringmaster::model::ChangeFreeze {
        name: "f".into(),
        cron: cron.into(),
        duration_hours: hours,
        timezone: zone.into(),
    };
    let window = active_freeze(std::slice::from_ref(&freeze), utc(now));
    assert_eq!(
        window.map(|w| w.ends_at),
        ends_at.map(utc),
        "{cron} {zone} at {now}"
    );
}

#[test]
#[rustfmt::skip]
fn freeze_windows() {
    let year_end = "0 0 0 20 12 *";
    check_freeze(year_end, 336.0, "UTC", "2025-12-19T23:59:59Z", None);
    check_freeze(year_end, 336.0, "UTC", "2025-12-20T00:00:00Z", Some("2026-01-03T00:00:00Z"));
    check_freeze(year_end, 336.0, "UTC", "2026-01-02T23:59:59Z", Some("2026-01-03T00:00:00Z"));
    check_freeze(year_end, 336.0, "UTC", "2026-01-03T00:00:00Z", None);
    let nightly = "0 0 22 * * *"; // 22:00 for 10 h: across midnight
    check_freeze(nightly, 10.0, "UTC", "2026-02-03T23:30:00Z", Some("2026-02-04T08:00:00Z"));
    check_freeze(nightly, 10.0, "UTC", "2026-02-04T07:59:00Z", Some("2026-02-04T08:00:00Z"));
    check_freeze(nightly, 10.0, "UTC", "2026-02-04T08:00:00Z", None);
    check_freeze(nightly, 10.0, "UTC", "2026-02-04T21:59:59Z", None);
    // London: GMT in winter, BST (UTC+1) in summer.
    check_freeze(nightly, 10.0, "Europe/London", "2026-01-15T22:30:00Z", Some("2026-01-16T08:00:00Z"));
    check_freeze(nightly, 10.0, "Europe/London", "2026-07-15T21:30:00Z", Some("2026-07-16T07:00:00Z"));
    check_freeze(nightly, 10.0, "Europe/London", "2026-07-15T20:59:00Z", None);
    // New York, Friday 17:00 for a weekend of 63 h.
    let weekend = "0 0 17 * * Fri";
    check_freeze(weekend, 63.0, "America/New_York", "2026-02-08T12:00:00Z", Some("2026-02-09T13:00:00Z"));
    check_freeze(weekend, 63.0, "America/New_York", "2026-02-09T13:00:00Z", None);
}

#[test]
fn freezes_validate_with_their_index() {
    let freeze = |cron: &str, zone: &str| ringmaster::model::ChangeFreeze {
        name: "f".into(),
        cron: cron.into(),
        duration_hours: 1.0,
        timezone: zone.into(),
    };
    let problems = validate_freezes(&[
        freeze("0 0 0 * * *", "Europe/London"),
        freeze("0 0 0 * * *", "Europe/Lundon"),
    ]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, 1);
    assert!(
        problems[0]
            .1
            .contains("unknown time zone \"Europe/Lundon\""),
        "{}",
        problems[0].1
    );
}

#[test]
fn a_freeze_pauses_a_ring_start_until_it_ends() {
    let mut harness = Harness::new();
    harness.now = utc("2025-12-22T10:00:00Z");
    harness.send(allow());
    assert_eq!(harness.phase(), "paused");
    assert_eq!(harness.effects(), ["wake+278h"]); // 2026-01-03T00:00Z
    assert!(harness.events().contains(&"change_freeze".to_string()));
    harness.later(277.0).send(Event::Tick);
    assert_eq!((harness.phase(), harness.effects()), ("paused", vec![]));
    harness.later(1.0).send(Event::Tick);
    assert_eq!(
        (harness.phase(), harness.effects()),
        ("ring_starting", vec!["claim:ring-0-lab".to_string()])
    );
}

#[test]
fn a_freeze_does_not_stop_a_ring_already_soaking_but_stops_the_next() {
    let mut harness = Harness::new();
    harness.now = utc("2025-12-19T20:00:00Z");
    harness
        .send(allow())
        .start_ring(LAB)
        .later(4.0)
        .send(status(LAB, 20, 0, 0));
    assert_eq!(harness.phase(), "paused");
    assert!(matches!(&harness.run.phase, Phase::Paused { ring, .. } if ring == CANARY));
}

#[test]
fn an_emergency_override_starts_inside_a_freeze_and_says_so() {
    let mut harness = Harness::new();
    harness.now = utc("2025-12-22T10:00:00Z");
    harness.send(Event::Evaluated {
        decision: Decision::Allow,
        risk_score: 80,
        counted_approvals: vec!["cab-7".into()],
        conditions: Vec::new(),
        emergency_override: true,
        waits_on: Vec::new(),
    });
    assert_eq!(
        (harness.phase(), harness.effects()),
        ("ring_starting", vec!["claim:ring-0-lab".to_string()])
    );
    assert!(
        harness
            .events()
            .contains(&"change_freeze_overridden".to_string())
    );
    harness.send(Event::RingClaimed { ring: LAB.into() });
    let Effect::RecordEvidence { summary, .. } = &harness.last[0] else {
        panic!("start record first: {:?}", harness.last);
    };
    assert_eq!(summary["emergency_override"]["name"], "year-end-freeze");
    assert_eq!(summary["counted_approvals"][0], "cab-7");
}

#[test]
fn require_approval_runs_rings_below_the_cab_ring_then_waits() {
    let mut harness = awaiting_cab();
    assert_eq!(
        harness.run.phase,
        Phase::AwaitingApproval {
            ring: PILOT.into(),
            requirement: Requirement::CabApproval
        }
    );
    assert!(
        harness.run.rings[0].completed_at().is_some()
            && harness.run.rings[1].completed_at().is_some()
    );
    assert!(!harness.run.rings[2].publish_requested);
    harness.send(verdict(Decision::Allow, &["cab-1"]));
    assert_eq!(harness.events(), ["verdict", "cab_approved"]);
    assert_eq!(harness.effects(), ["claim:ring-2-pilot"]);
}

#[test]
fn a_verdict_that_no_longer_allows_the_ring_stops_an_unpublished_start() {
    let mut harness = recording();
    harness.send(verdict(Decision::RequireException, &[]));
    assert_eq!(
        (harness.phase(), harness.effects()),
        ("awaiting_approval", vec![])
    );
    let stale = harness.run.start_record.clone().unwrap().transition_id;
    harness.send(Event::EvidenceCommitted {
        transition_id: stale.clone(),
    });
    assert_eq!(
        harness.effects(),
        Vec::<String>::new(),
        "a stale record publishes nothing"
    );
    harness.send(allow());
    assert_eq!(harness.effects(), ["claim:ring-0-lab"]);
    harness.send(Event::RingClaimed { ring: LAB.into() });
    assert_ne!(
        harness.last_record_id(),
        stale,
        "a new start record under the new verdict"
    );
    let mut harness = publishing();
    harness.send(verdict(Decision::RequireException, &[]));
    assert_eq!(
        (harness.phase(), harness.effects()),
        ("ring_starting", vec![]),
        "already sent to the plane"
    );
}

#[test]
fn a_scheduled_ring_waits_for_its_start() {
    let mut harness = Harness::build(
        |intent| {
            let window = ringmaster::model::RingWindow {
                start: Some(utc("2026-02-03T06:00:00Z")),
                duration_hours: 6.0,
            };
            intent.schedule.insert(LAB.into(), window);
        },
        |_| {},
    );
    harness.send(allow());
    assert_eq!(
        (harness.phase(), harness.effects()),
        ("scope_validated", vec!["wake+21h".to_string()])
    );
    harness.later(20.0).send(Event::Tick);
    assert_eq!(harness.phase(), "scope_validated");
    harness.later(1.0).send(Event::Tick);
    assert_eq!(harness.effects(), ["claim:ring-0-lab"]);
    harness.start_ring(LAB);
    assert_eq!(
        harness.effects(),
        ["wake+6h"],
        "the schedule's duration is the soak"
    );
}

#[test]
fn require_exception_blocks_every_ring() {
    let harness = awaiting_exception();
    assert_eq!(
        harness.run.phase,
        Phase::AwaitingApproval {
            ring: LAB.into(),
            requirement: Requirement::Exception
        }
    );
}

fn condition(ring: &str, hours: Option<f64>) -> ApprovalCondition {
    ApprovalCondition {
        description: "Limit to Pilot for 7 days".into(),
        hold_at_ring: Some(ring.into()),
        min_soak_hours: hours,
    }
}

#[test]
fn a_cab_condition_extends_the_soak_of_its_ring() {
    let mut harness = awaiting_cab();
    harness.send(Event::Evaluated {
        decision: Decision::Allow,
        risk_score: 70,
        counted_approvals: vec!["cab-1".into()],
        conditions: vec![condition(PILOT, Some(168.0))],
        emergency_override: false,
        waits_on: Vec::new(),
    });
    harness.start_ring(PILOT);
    assert_eq!(harness.effects(), ["wake+168h"]);
    harness.later(1.0).send(status(PILOT, 1, 0, 0));
    harness.later(47.0).send(status(PILOT, 20, 0, 0)); // the config's soak is over, the CAB's is not
    assert_eq!(harness.phase(), "ring_in_progress");
    harness.later(120.0).send(status(PILOT, 20, 0, 0));
    assert_eq!(harness.phase(), "completed");
}

#[test]
fn a_cab_condition_without_hours_holds_after_its_ring_until_resumed() {
    let mut harness = claiming();
    harness.send(Event::Evaluated {
        decision: Decision::Allow,
        risk_score: 70,
        counted_approvals: vec!["cab-1".into()],
        conditions: vec![condition(LAB, None)],
        emergency_override: false,
        waits_on: Vec::new(),
    });
    harness.pass_ring(LAB);
    assert!(
        matches!(&harness.run.phase, Phase::Held { cause: HoldCause::CabCondition, by, .. } if by == "cab")
    );
    assert_eq!(
        harness.effects(),
        ["record:ring_completed", "record:held", "alert"]
    );
    harness.send(resume());
    assert_eq!(harness.effects(), ["record:resumed", "claim:ring-1-canary"]);
    harness.pass_ring(CANARY);
    assert_eq!(
        harness.effects(),
        ["record:ring_completed", "claim:ring-2-pilot"]
    );
}

/// A failing gate with this rollback plan leads to `phase` and `effects`.
fn check_remediation(strategy: Option<&str>, version: Option<&str>, phase: &str, effects: &[&str]) {
    let strategy = strategy.map(str::to_string);
    let version = version.map(str::to_string);
    let mut harness = Harness::build(
        |intent| {
            intent.rollback_plan = strategy.map(|strategy| ringmaster::model::RollbackPlan {
                strategy,
                rollback_version: version,
                validated: true,
                validation_date: None,
            })
        },
        |_| {},
    );
    harness
        .send(allow())
        .pass_ring(LAB)
        .start_ring(CANARY)
        .later(24.0)
        .send(status(CANARY, 10, 10, 0));
    assert_eq!(
        (harness.phase(), harness.effects()),
        (phase, effects.iter().map(|e| e.to_string()).collect())
    );
    if let Some(Effect::Remediate { rings, .. }) = harness
        .last
        .iter()
        .find(|e| matches!(e, Effect::Remediate { .. }))
    {
        assert_eq!(rings, &[LAB, CANARY]);
    }
}

#[test]
#[rustfmt::skip]
fn rollback_or_halt_by_the_plan() {
    const HALTED: [&str; 5] = ["record:halted", "remediate:halt", "alert", "release:ring-0-lab", "release:ring-1-canary"];
    check_remediation(Some("intune-supersedence"), Some("2.0.5"), "rolling_back",
                      &["record:rollback_started", "remediate:intune-supersedence:2.0.5"]);
    check_remediation(Some("jamf-uninstall-policy"), None, "rolling_back",
                      &["record:rollback_started", "remediate:jamf-uninstall-policy:uninstall"]);
    check_remediation(Some("halt"), Some("2.0.5"), "failed", &HALTED);
    check_remediation(None, None, "failed", &HALTED);
}

#[test]
fn a_rolled_back_version_is_blocked_until_superseded() {
    let mut bad = rolled_back();
    assert!(bad.run.blocks_its_version());
    bad.send(allow());
    assert_eq!(
        (bad.phase(), bad.events()),
        ("rolled_back", vec!["version_blocked".to_string()])
    );

    let mut other = claiming();
    other.run.intent_id = "vpn-2.1-emea".into();
    other.pass_ring(LAB);
    let mut runs = vec![bad.run.clone(), other.run.clone()];
    assert_eq!(
        is_blocked_version(&runs, "vpn-client", "2.1.0"),
        Some("vpn-2.1")
    );
    pass(&mut runs, other.now);
    assert_eq!(runs[1].version_blocked_by(), Some("vpn-2.1"));

    // The other run was about to start canary: it does not.
    other.run = runs[1].clone();
    assert!(
        matches!(&other.run.phase, Phase::Held { cause: HoldCause::VersionBlocked, resume_to, .. }
        if **resume_to == Phase::RingCompleted { ring: LAB.into() })
    );
    assert!(!other.run.rings[1].publish_requested);
    other.send(resume());
    assert_eq!(
        (other.phase(), other.events()),
        ("held", vec!["resume_refused".to_string()])
    );

    bad.send(Event::Superseded {
        by_intent: "vpn-2.1.1".into(),
    });
    let mut runs = vec![bad.run.clone(), other.run.clone()];
    assert_eq!(is_blocked_version(&runs, "vpn-client", "2.1.0"), None);
    let effects = pass(&mut runs, other.now);
    assert_eq!(runs[1].version_blocked_by(), None);
    assert!(effects.iter().any(|(id, effect)| id == "vpn-2.1-emea"
        && *effect
            == Effect::ClaimRing {
                ring: CANARY.into()
            }));
}

/// Transient publish failures, each with the plane's `retry_after` (seconds):
/// the wake-up after each, then the phase.
fn check_retries(retry_afters: &[Option<u64>], wakes: &[&str], phase: &str) {
    let mut harness = publishing();
    let mut seen = Vec::new();
    for retry_after in retry_afters {
        harness.send(publish_failed(LAB, FailureClass::Transient, *retry_after));
        seen.extend(
            harness
                .effects()
                .into_iter()
                .filter(|e| e.starts_with("wake")),
        );
        if let Some(Effect::WakeAt { at }) = harness.last.last() {
            harness.now = *at;
            harness.send(Event::Tick);
            assert_eq!(
                harness.effects(),
                ["publish:ring-0-lab"],
                "the retry publishes again"
            );
        }
    }
    assert_eq!(
        (
            seen.iter().map(String::as_str).collect::<Vec<_>>(),
            harness.phase()
        ),
        (wakes.to_vec(), phase)
    );
}

#[test]
#[rustfmt::skip]
fn transient_failures_back_off_honour_retry_after_and_end() {
    check_retries(&[None], &["wake+30s"], "ring_starting");
    check_retries(&[None, None, None], &["wake+30s", "wake+1m", "wake+2m"], "ring_starting");
    check_retries(&[Some(10)], &["wake+30s"], "ring_starting"); // the backoff is longer
    check_retries(&[Some(600)], &["wake+10m"], "ring_starting"); // retry-after is longer
    check_retries(&[None, Some(90)], &["wake+30s", "wake+90s"], "ring_starting");
    check_retries(&[None; 5], &["wake+30s", "wake+1m", "wake+2m", "wake+4m", "wake+8m"], "ring_starting");
    check_retries(&[None; 6], &["wake+30s", "wake+1m", "wake+2m", "wake+4m", "wake+8m"], "failed");
    check_retries(&[Some(7_200); 6], &["wake+2h", "wake+2h", "wake+2h", "wake+2h", "wake+2h"], "failed");
}

#[test]
fn the_retry_budget_ends_in_failed_with_an_event() {
    let mut harness = publishing();
    for _ in 0..5 {
        harness.send(publish_failed(LAB, FailureClass::Transient, None));
        harness.now = harness.run.retry.next_attempt_at.unwrap();
        harness.send(Event::Tick);
    }
    harness.send(publish_failed(LAB, FailureClass::Transient, None));
    assert_eq!(
        harness.events(),
        ["publish_failed", "retry_budget_exhausted"]
    );
    assert_eq!(
        harness.effects(),
        ["record:failed", "release:ring-0-lab", "alert"]
    );
    harness.later(1.0).send(Event::Tick);
    assert_eq!(harness.effects(), Vec::<String>::new());
}

#[test]
fn jitter_spreads_retries_within_the_ratio() {
    let mut harness = publishing();
    Shared::make_mut(&mut harness.run.backoff).jitter_ratio = 0.25;
    harness.send(publish_failed(LAB, FailureClass::Transient, None));
    let delay = harness.run.retry.next_attempt_at.unwrap() - harness.now;
    assert!(
        delay >= Duration::seconds(30) && delay <= Duration::milliseconds(37_500),
        "{delay}"
    );
}

#[test]
fn a_lost_reply_counts_as_a_failed_attempt() {
    let mut harness = publishing();
    harness.later(0.2).send(Event::Tick);
    assert_eq!(harness.effects(), Vec::<String>::new());
    harness.later(0.05).send(Event::Tick); // 15 minutes without a reply
    assert_eq!(
        (harness.effects(), harness.events()),
        (vec!["wake+30s".to_string()], vec!["no_reply".to_string()])
    );
}

#[test]
fn evidence_first_no_publish_before_the_commit() {
    let mut harness = recording();
    let transition_id = harness.last_record_id();
    for event in [
        Event::Tick,
        Event::EvidenceCommitted {
            transition_id: "vpn-2.1/0002-other".into(),
        },
        Event::RingClaimed { ring: LAB.into() },
    ] {
        harness.send(event);
        assert!(
            !harness.effects().iter().any(|e| e.starts_with("publish")),
            "{:?}",
            harness.effects()
        );
    }
    harness.send(Event::EvidenceFailed {
        transition_id: transition_id.clone(),
        error: "evidence branch push rejected".into(),
    });
    assert_eq!(harness.events(), ["evidence_failed"]);
    let Some(Effect::EmitEvent { details, .. }) = harness.last.first() else {
        panic!()
    };
    assert_eq!(details["error"], "evidence branch push rejected");
    assert!(
        details["message"]
            .as_str()
            .unwrap()
            .contains("not published until its start record is committed")
    );
    harness.now = harness.run.retry.next_attempt_at.unwrap();
    harness.send(Event::Tick);
    assert_eq!(harness.effects(), ["record:ring_start"]);
    assert_eq!(
        harness.last_record_id(),
        transition_id,
        "the same record again"
    );
    harness.send(Event::EvidenceCommitted {
        transition_id: transition_id.clone(),
    });
    assert_eq!(harness.effects(), ["publish:ring-0-lab"]);
    assert_eq!(
        harness.run.rings[0].start_transition_id(),
        Some(transition_id.as_str())
    );
}

#[test]
fn evidence_that_cannot_be_written_holds_for_a_human() {
    let mut harness = recording();
    let transition_id = harness.last_record_id();
    for _ in 0..6 {
        harness.send(Event::EvidenceFailed {
            transition_id: transition_id.clone(),
            error: "offline".into(),
        });
        if let Some(at) = harness.run.retry.next_attempt_at {
            harness.now = at;
            harness.send(Event::Tick);
        }
    }
    assert!(matches!(
        harness.run.phase,
        Phase::Held {
            cause: HoldCause::EvidenceUnavailable,
            ..
        }
    ));
    assert!(harness.effects().contains(&"alert".to_string()));
    harness.send(resume());
    assert_eq!(harness.effects(), ["record:resumed", "record:ring_start"]);
    harness.send(Event::EvidenceCommitted { transition_id });
    assert_eq!(harness.effects(), ["publish:ring-0-lab"]);
}

#[test]
fn a_hold_records_replies_but_starts_nothing() {
    let mut harness = recording();
    let transition_id = harness.last_record_id();
    harness
        .send(hold())
        .send(Event::EvidenceCommitted { transition_id });
    assert_eq!((harness.phase(), harness.effects()), ("held", vec![]));
    harness.send(resume());
    assert_eq!(harness.effects(), ["record:resumed", "publish:ring-0-lab"]);
}

#[test]
fn a_busy_ring_is_retried_then_held() {
    let mut harness = claiming();
    for _ in 0..6 {
        harness.send(Event::RingBusy {
            ring: LAB.into(),
            holder_intent_id: "vpn-2.0".into(),
        });
        if let Some(at) = harness.run.retry.next_attempt_at {
            harness.now = at;
            harness.send(Event::Tick);
            assert_eq!(harness.effects(), ["claim:ring-0-lab"]);
        }
    }
    assert!(matches!(
        harness.run.phase,
        Phase::Held {
            cause: HoldCause::RingBusy,
            ..
        }
    ));
}

#[test]
fn audit_event_types_are_store_event_types() {
    for event_type in AuditEventType::ALL {
        assert!(
            ringmaster::store::EventType::from_stored(event_type.as_str()).is_some(),
            "{event_type:?}"
        );
    }
    for outcome in [
        AuditOutcome::Success,
        AuditOutcome::Failure,
        AuditOutcome::Pending,
        AuditOutcome::Info,
    ] {
        assert!(ringmaster::store::EventOutcome::from_stored(outcome.as_str()).is_some());
    }
}

/// A small LCG (Knuth's MMIX constants): seeded, no crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// What a well-behaved daemon would answer to one of `effects`, if anything.
fn natural_reply(random: &mut Lcg, effects: &[Effect]) -> Option<Event> {
    let replies: Vec<Event> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::ClaimRing { ring } => Some(Event::RingClaimed { ring: ring.clone() }),
            Effect::RecordEvidence { transition_id, .. } => Some(Event::EvidenceCommitted {
                transition_id: transition_id.clone(),
            }),
            Effect::Publish { ring } => Some(Event::PublishConfirmed {
                ring: ring.clone(),
                external_id: "a".into(),
            }),
            Effect::QueryStatus { ring } => Some(status(ring, 20, 0, 0)),
            Effect::Remediate { .. } => Some(Event::RollbackConfirmed),
            _ => None,
        })
        .collect();
    (!replies.is_empty()).then(|| replies[random.below(replies.len() as u64) as usize].clone())
}

fn random_event(random: &mut Lcg, records: &[String]) -> Event {
    let rings = [LAB, CANARY, PILOT, "ring-9-unknown"];
    let ring = rings[random.below(4) as usize].to_string();
    let record = if !records.is_empty() && random.below(4) != 0 {
        records[random.below(records.len() as u64) as usize].clone()
    } else {
        format!("bogus-{}", random.below(5))
    };
    let decisions = [
        Decision::Allow,
        Decision::Deny,
        Decision::RequireApproval,
        Decision::RequireException,
    ];
    let classes = [
        FailureClass::Transient,
        FailureClass::Permanent,
        FailureClass::PolicyViolation,
    ];
    match random.below(20) {
        0 => Event::Evaluated {
            decision: decisions[random.below(4) as usize],
            risk_score: 50,
            counted_approvals: if random.below(2) == 0 {
                vec![]
            } else {
                vec!["cab-1".into()]
            },
            conditions: vec![condition(LAB, [None, Some(10.0)][random.below(2) as usize])],
            emergency_override: random.below(2) == 0,
            waits_on: if random.below(3) == 0 {
                vec!["other-intent".into()]
            } else {
                vec![]
            },
        },
        1..=3 => Event::EvidenceCommitted {
            transition_id: record,
        },
        4 => Event::EvidenceFailed {
            transition_id: record,
            error: "x".into(),
        },
        5 | 6 => Event::RingClaimed { ring },
        7 => Event::RingBusy {
            ring,
            holder_intent_id: "other".into(),
        },
        8 | 9 => Event::PublishConfirmed {
            ring,
            external_id: "a".into(),
        },
        10 => publish_failed(
            &ring,
            classes[random.below(3) as usize],
            Some(random.below(900)),
        ),
        11 | 12 => {
            let installed = random.below(30) as u32;
            let failed = random.below(3) as u32;
            status(&ring, installed, failed, (random.below(10) == 0) as u32)
        }
        13 | 14 => Event::Tick,
        15 => hold(),
        16 => resume(),
        17 => [
            rollback(),
            Event::RollbackConfirmed,
            Event::RollbackFailed {
                error: "x".into(),
                failure: None,
            },
        ][random.below(3) as usize]
            .clone(),
        18 => [
            Event::VersionBlocked {
                by_intent: "bad".into(),
            },
            Event::VersionCleared,
        ][random.below(2) as usize]
            .clone(),
        _ => Event::Superseded {
            by_intent: "next".into(),
        },
    }
}

#[test]
fn random_walks_never_publish_before_the_start_record_is_committed() {
    let mut publishes = 0;
    for seed in 0..400u64 {
        let mut random = Lcg(seed);
        let mut harness = Harness::new();
        harness.send(allow());
        let mut start_records: Vec<(String, String)> = Vec::new(); // (transition id, ring)
        let mut record_ids: Vec<String> = Vec::new();
        let mut committed: Vec<String> = Vec::new();
        for _ in 0..120 {
            for effect in &harness.last {
                match effect {
                    Effect::RecordEvidence {
                        transition_id,
                        record_type,
                        summary,
                    } => {
                        record_ids.push(transition_id.clone());
                        if record_type == "ring_start" {
                            start_records.push((
                                transition_id.clone(),
                                summary["ring"].as_str().unwrap().to_string(),
                            ));
                        }
                    }
                    Effect::Publish { ring } => {
                        publishes += 1;
                        assert!(
                            start_records
                                .iter()
                                .any(|(id, r)| r == ring && committed.contains(id)),
                            "seed {seed}: Publish {ring} without a committed start record"
                        );
                    }
                    _ => {}
                }
            }
            let reply = if random.below(2) == 0 {
                natural_reply(&mut random, &harness.last)
            } else {
                None
            };
            let event = reply.unwrap_or_else(|| random_event(&mut random, &record_ids));
            if let Event::EvidenceCommitted { transition_id } = &event {
                committed.push(transition_id.clone());
            }
            harness.later(random.below(600) as f64 / 60.0);
            harness.send(event);
            if let Phase::Held { resume_to, .. } = &harness.run.phase {
                assert!(
                    !matches!(**resume_to, Phase::Held { .. }),
                    "seed {seed}: a hold inside a hold"
                );
            }
        }
        let json = serde_json::to_string(&harness.run).unwrap();
        assert_eq!(
            serde_json::from_str::<IntentRun>(&json).unwrap(),
            harness.run
        );
    }
    assert!(
        publishes > 100,
        "the walk must reach publishing often enough to mean something: {publishes}"
    );
}

fn plane_503() -> Event {
    Event::RollbackFailed {
        error: "service_unavailable: HTTP 503".into(),
        failure: Some(ringmaster::orchestrator::ConnectorFailure {
            class: ringmaster::orchestrator::FailureClass::Transient,
            code: "service_unavailable".into(),
            retry_after_seconds: None,
        }),
    }
}

/// The wake-up time the last event asked for.
fn wake_at(harness: &Harness) -> DateTime<Utc> {
    harness
        .last
        .iter()
        .find_map(|effect| match effect {
            Effect::WakeAt { at } => Some(*at),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no wake-up: {:?}", harness.effects()))
}

#[test]
fn a_transient_rollback_failure_is_retried_with_backoff_not_failed() {
    let mut harness = rolling_back();
    let first = harness.effects();
    assert!(
        first.iter().any(|effect| effect.starts_with("remediate:")),
        "{first:?}"
    );
    // A 503 storm: every failure schedules the next attempt; nothing is re-sent early.
    for attempt in 1..=3 {
        harness.send(plane_503());
        assert_eq!(harness.phase(), "rolling_back", "attempt {attempt}");
        let at = wake_at(&harness);
        assert!(at > harness.now, "backoff, not at once");
        harness.send(Event::Tick);
        assert!(
            !harness
                .effects()
                .iter()
                .any(|e| e.starts_with("remediate:")),
            "re-sent before its retry was due: {:?}",
            harness.effects()
        );
        harness.now = at;
        harness.send(Event::Tick);
        assert_eq!(
            harness.effects(),
            first
                .iter()
                .filter(|e| e.starts_with("remediate:"))
                .cloned()
                .collect::<Vec<_>>(),
            "attempt {attempt}: the same rollback is sent again"
        );
    }
    harness.send(Event::RollbackConfirmed);
    assert_eq!(harness.phase(), "rolled_back");
}

#[test]
fn a_rollback_that_keeps_failing_ends_failed_once_the_budget_is_spent() {
    let mut harness = rolling_back();
    let mut attempts = 0;
    loop {
        harness.send(plane_503());
        attempts += 1;
        if harness.phase() != "rolling_back" {
            break;
        }
        harness.now = wake_at(&harness);
        harness.send(Event::Tick);
        assert!(attempts < 100, "the retry budget never ran out");
    }
    assert_eq!(harness.phase(), "failed");
    assert!(attempts > 1, "a transient failure was retried");
    assert!(harness.effects().contains(&"alert".to_string()));
}

fn denied_while(intents: &[&str]) -> Event {
    Event::Evaluated {
        decision: Decision::Deny,
        risk_score: 60,
        counted_approvals: Vec::new(),
        conditions: Vec::new(),
        emergency_override: false,
        waits_on: intents.iter().map(|id| id.to_string()).collect(),
    }
}

#[test]
fn a_deny_from_a_change_in_flight_waits_then_proceeds() {
    let mut harness = Harness::new();
    harness.send(denied_while(&["chrome-130-finance"]));
    assert_eq!(harness.phase(), "blocked", "not failed: it waits");
    assert!(harness.effects().is_empty(), "{:?}", harness.effects());
    assert!(!harness.run.phase.is_terminal());
    // Time passes; nothing starts while the DENY stands.
    harness.later(6.0).send(Event::Tick);
    assert_eq!(harness.phase(), "blocked");
    assert!(harness.effects().is_empty(), "{:?}", harness.effects());
    // Judged again once the other change ended: the rollout starts.
    harness.send(allow());
    assert_eq!(harness.phase(), "ring_starting");
    assert_eq!(harness.effects(), ["claim:ring-0-lab"]);
}

#[test]
fn a_deny_on_anything_else_is_still_final() {
    let mut harness = Harness::new();
    harness.send(verdict(Decision::Deny, &[]));
    assert_eq!(harness.phase(), "failed");
    harness.send(allow());
    assert_eq!(
        harness.phase(),
        "failed",
        "a later ALLOW does not revive it"
    );
}

#[test]
fn a_runtime_deny_between_rings_holds_the_next_ring_without_rollback() {
    let mut harness = claiming();
    harness.start_ring(LAB).later(4.0);
    harness.send(status(LAB, 20, 0, 0));
    assert_eq!(harness.phase(), "ring_starting");
    harness.send(denied_while(&["other"]));
    assert_eq!(harness.phase(), "blocked", "{:?}", harness.effects());
    assert!(
        !harness.effects().iter().any(|e| e.starts_with("remediate")),
        "no rollback for a DENY that clears: {:?}",
        harness.effects()
    );
    harness.send(allow());
    assert_eq!(harness.phase(), "ring_starting");
}
