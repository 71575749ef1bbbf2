//! Promotion gates: is a ring good enough to promote past, bad enough to roll
//! back, or not yet known?
//!
//! A gate is judged on what the plane reported for the ring, once the ring has
//! soaked, against [`PromotionGates`]:
//!
//! - **enough data**: at least `min_reporting_devices` devices reported
//!   (installed or failed) *and* at least `min_reporting_fraction` of the ring's
//!   targeted devices did; otherwise the gate is inconclusive (three reports
//!   from a ring of 6,500 devices say nothing);
//! - **success rate** `installed / targeted` — over the devices the ring
//!   targets, not the ones that happened to report — at least the threshold
//!   (exactly at it passes). Below it the gate fails only when the failures
//!   alone make the threshold unreachable (`failed / targeted > 1 −
//!   threshold`); a shortfall of devices that have not reported yet is
//!   inconclusive, never a pass;
//! - **time to compliance**: the first install came within
//!   `time_to_compliance_hours` of the ring's start;
//! - **incidents**: open incidents of the application in the ring (from the
//!   incident sources, counted by the daemon) at most `max_incidents`.
//!
//! A soak that is not over is inconclusive; a ring still inconclusive when it
//! is over holds for a human (the gate's time limit is its soak). One
//! exception, for safety: incidents above the maximum act at once, soak or no
//! soak, few devices or many: the gate fails ([`IncidentAction::Fail`]) or
//! asks for a hold ([`GateVerdict::Hold`]), as the gates say.

use crate::model::{IncidentAction, PromotionGates};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Slack for comparing a success rate with its threshold: `19/20` must pass a
/// `0.95` gate however the division rounds.
const RATE_TOLERANCE: f64 = 1e-9;

/// What the plane last reported for one ring.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedStatus {
    /// Devices the ring's assignment targets.
    pub targeted: u32,
    pub installed: u32,
    pub failed: u32,
    /// Targeted devices that have not reported yet; they do not count either way.
    pub pending: u32,
    /// Open incidents of the application in this ring and business unit
    /// (the incident sources: Alertmanager, the incident webhook).
    pub incidents: u32,
    /// When an install was first observed (the state machine remembers it).
    pub first_install_at: Option<DateTime<Utc>>,
}

impl ObservedStatus {
    /// Devices that reported an outcome: installed + failed.
    pub fn reporting_devices(&self) -> u32 {
        self.installed.saturating_add(self.failed)
    }
}

/// The three outcomes of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    /// Promote to the next ring.
    Pass,
    /// Roll back (or halt, as the rollback plan says).
    Fail,
    /// Not enough evidence either way: wait for the soak, or ask a human.
    Inconclusive,
    /// Open incidents, and the gates say to hold for a human at once.
    Hold,
}

/// A gate's verdict and the figures behind it (they go into evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub verdict: GateVerdict,
    /// Installed / targeted; `None` while the plane reports no targeted device.
    pub success_rate: Option<f64>,
    pub reporting_devices: u32,
    /// Devices the ring targets, as the plane reports them.
    #[serde(default)]
    pub targeted_devices: u32,
    /// Reporting / targeted; `None` without targeted devices.
    #[serde(default)]
    pub reporting_fraction: Option<f64>,
    /// Hours from the ring's start to its first install, once there was one.
    pub time_to_compliance_hours: Option<f64>,
    /// The soak is over: an inconclusive verdict now needs a human.
    pub soak_complete: bool,
    /// One sentence per check, in check order.
    pub reasons: Reasons,
}

/// A gate's sentences, held as the compact JSON text of the list and
/// stored as the list itself.
///
/// Every run keeps the gate of each ring it judged (issue 17: 10,000 runs'
/// sentences as a `Vec<String>` took a `String` and an allocation each);
/// the sentences are only read to explain a failure or a hold, and to be
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasons(Box<str>);

impl Reasons {
    pub fn new(reasons: &[String]) -> Reasons {
        Reasons(
            serde_json::to_string(reasons)
                .unwrap_or_else(|_| "[]".into())
                .into_boxed_str(),
        )
    }

    /// The sentences, in check order.
    pub fn to_vec(&self) -> Vec<String> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The sentences joined by `separator`.
    pub fn join(&self, separator: &str) -> String {
        self.to_vec().join(separator)
    }
}

impl Serialize for Reasons {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_vec().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Reasons {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(|reasons| Reasons::new(&reasons))
    }
}

/// A number of hours as a duration, to the millisecond; negative or NaN is zero.
pub fn duration_from_hours(hours: f64) -> Duration {
    if hours.is_nan() || hours <= 0.0 {
        return Duration::zero();
    }
    let milliseconds = (hours * 3_600_000.0).round().min(i64::MAX as f64 / 2.0) as i64;
    Duration::try_milliseconds(milliseconds).unwrap_or(Duration::MAX)
}

fn hours_of(duration: Duration) -> f64 {
    duration.num_milliseconds() as f64 / 3_600_000.0
}

/// Judges one ring's gate at `now`. Pure; see the module doc for the rules.
pub fn evaluate_gate(
    gates: &PromotionGates,
    observed: &ObservedStatus,
    ring_started_at: DateTime<Utc>,
    soak: Duration,
    now: DateTime<Utc>,
) -> GateResult {
    let reporting_devices = observed.reporting_devices();
    let targeted = observed.targeted;
    let share = |count: u32| (targeted > 0).then(|| f64::from(count) / f64::from(targeted));
    let success_rate = share(observed.installed);
    let reporting_fraction = share(reporting_devices);
    let time_to_compliance = observed
        .first_install_at
        .map(|first_install| first_install - ring_started_at);
    let soak_ends_at = ring_started_at + soak;
    let soak_complete = now >= soak_ends_at;
    let mut reasons = Vec::new();
    let mut failing = false;
    let mut holding = false;

    if observed.incidents > gates.max_incidents {
        match gates.on_incident {
            IncidentAction::Fail => failing = true,
            IncidentAction::Hold => holding = true,
        }
        reasons.push(format!(
            "{} open incident(s) exceed the maximum of {}",
            observed.incidents, gates.max_incidents
        ));
    } else {
        reasons.push(format!(
            "{} open incident(s), within the maximum of {}",
            observed.incidents, gates.max_incidents
        ));
    }

    let enough_devices = reporting_devices >= gates.min_reporting_devices
        && reporting_fraction
            .is_some_and(|fraction| fraction + RATE_TOLERANCE >= gates.min_reporting_fraction);
    let mut short_of_threshold = false;
    if !soak_complete {
        reasons.push(format!(
            "soak not over: it ends at {} ({:.1} h left)",
            soak_ends_at.to_rfc3339(),
            hours_of(soak_ends_at - now)
        ));
    } else if targeted == 0 {
        reasons.push("the plane reports no targeted device for the ring".to_string());
    } else if !enough_devices {
        reasons.push(format!(
            "{reporting_devices} of {targeted} targeted devices reported ({:.2} %); the gate needs \
             at least {} and {:.0} % of the ring",
            reporting_fraction.unwrap_or(0.0) * 100.0,
            gates.min_reporting_devices,
            gates.min_reporting_fraction * 100.0
        ));
    } else {
        let rate = success_rate.unwrap_or(0.0);
        let failed_share = share(observed.failed).unwrap_or(0.0);
        if rate + RATE_TOLERANCE >= gates.success_rate_threshold {
            reasons.push(format!(
                "success rate {rate:.4} ({} of {targeted} targeted devices installed) meets the threshold {}",
                observed.installed, gates.success_rate_threshold
            ));
        } else if failed_share > 1.0 - gates.success_rate_threshold + RATE_TOLERANCE {
            failing = true;
            reasons.push(format!(
                "success rate {rate:.4} is below the threshold {}: {} of {targeted} targeted devices \
                 failed, so the threshold cannot be reached",
                gates.success_rate_threshold, observed.failed
            ));
        } else {
            short_of_threshold = true;
            reasons.push(format!(
                "success rate {rate:.4} is below the threshold {} with {} of {targeted} targeted \
                 devices not reported yet",
                gates.success_rate_threshold, observed.pending
            ));
        }
        let limit = duration_from_hours(gates.time_to_compliance_hours);
        match time_to_compliance {
            Some(taken) if taken > limit => {
                failing = true;
                reasons.push(format!(
                    "first install after {:.1} h, later than the {} h allowed",
                    hours_of(taken),
                    gates.time_to_compliance_hours
                ));
            }
            Some(taken) => reasons.push(format!(
                "first install after {:.1} h, within the {} h allowed",
                hours_of(taken),
                gates.time_to_compliance_hours
            )),
            None if observed.installed == 0 && now - ring_started_at > limit => {
                failing = true;
                reasons.push(format!(
                    "no install within the {} h allowed",
                    gates.time_to_compliance_hours
                ));
            }
            None => {}
        }
    }

    let verdict = if failing {
        GateVerdict::Fail
    } else if holding {
        GateVerdict::Hold
    } else if !soak_complete || targeted == 0 || !enough_devices || short_of_threshold {
        GateVerdict::Inconclusive
    } else {
        GateVerdict::Pass
    };
    GateResult {
        verdict,
        success_rate,
        reporting_devices,
        targeted_devices: targeted,
        reporting_fraction,
        time_to_compliance_hours: time_to_compliance.map(hours_of),
        soak_complete,
        reasons: Reasons::new(&reasons),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hour(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() + Duration::hours(hours)
    }

    fn gates() -> PromotionGates {
        PromotionGates {
            success_rate_threshold: 0.95,
            time_to_compliance_hours: 24.0,
            max_incidents: 0,
            min_reporting_devices: 20,
            min_reporting_fraction: 0.5,
            on_incident: IncidentAction::Fail,
        }
    }

    /// `(targeted, installed, failed, incidents)`, the first install's hour
    /// and the hour judged, for a ring started at hour 0 with a 24 h soak.
    fn check_with(
        gates: &PromotionGates,
        counts: (u32, u32, u32, u32),
        first_install: Option<i64>,
        now: i64,
        expected: GateVerdict,
    ) {
        let (targeted, installed, failed, incidents) = counts;
        let observed = ObservedStatus {
            targeted,
            installed,
            failed,
            pending: targeted - installed - failed,
            incidents,
            first_install_at: first_install.map(hour),
        };
        let result = evaluate_gate(gates, &observed, hour(0), Duration::hours(24), hour(now));
        assert_eq!(
            result.verdict, expected,
            "{counts:?} first {first_install:?} now {now}: {:?}",
            result.reasons
        );
    }

    fn check(
        counts: (u32, u32, u32, u32),
        first_install: Option<i64>,
        now: i64,
        expected: GateVerdict,
    ) {
        check_with(&gates(), counts, first_install, now, expected);
    }

    #[test]
    fn gate_table() {
        use GateVerdict::*;
        check((20, 19, 1, 0), Some(1), 24, Pass); // exactly 0.95 of the targeted, soak just over
        check((20, 18, 2, 0), Some(1), 24, Fail); // 2 of 20 failed: 0.95 is out of reach
        check((100, 95, 0, 0), Some(1), 24, Pass); // 95 of 100 installed, 5 never reported
        check((100, 94, 1, 0), Some(1), 24, Inconclusive); // 5 pending could still make it
        check((100, 90, 6, 0), Some(1), 24, Fail); // 6 failures: at most 94 can install
        check((100, 19, 0, 0), Some(1), 24, Inconclusive); // fewer than 20 reporting devices
        check((100, 40, 0, 0), Some(1), 24, Inconclusive); // 40 % reporting, the gate needs 50 %
        check((6500, 3, 0, 0), Some(1), 30, Inconclusive); // 3 reports of 6,500 devices
        check((6500, 30, 70, 0), Some(1), 30, Inconclusive); // many failures, still too few reports
        check((20, 20, 0, 0), Some(1), 23, Inconclusive); // soak not over
        check((20, 20, 0, 1), Some(1), 2, Fail); // an open incident fails at once
        check((100, 2, 0, 1), Some(1), 30, Fail); // even with few devices
        check((20, 20, 0, 0), Some(25), 30, Fail); // first install too late
        check((20, 20, 0, 0), Some(24), 30, Pass); // exactly at the limit
        check((20, 0, 20, 0), None, 30, Fail); // nothing installed
        check((0, 0, 0, 0), None, 30, Inconclusive); // the plane targets nobody
        check((100, 0, 0, 0), None, 30, Inconclusive); // nobody reported
    }

    #[test]
    fn incidents_hold_instead_when_the_gates_say_so() {
        let holding = PromotionGates {
            on_incident: IncidentAction::Hold,
            ..gates()
        };
        check_with(&holding, (20, 20, 0, 1), Some(1), 2, GateVerdict::Hold);
        check_with(&holding, (20, 20, 0, 0), Some(1), 30, GateVerdict::Pass);
        let tolerant = PromotionGates {
            max_incidents: 2,
            ..gates()
        };
        check_with(&tolerant, (20, 20, 0, 2), Some(1), 30, GateVerdict::Pass);
        check_with(&tolerant, (20, 20, 0, 3), Some(1), 30, GateVerdict::Fail);
    }

    #[test]
    fn figures_are_reported() {
        let observed = ObservedStatus {
            targeted: 40,
            installed: 30,
            failed: 10,
            pending: 0,
            incidents: 0,
            first_install_at: Some(hour(3)),
        };
        let result = evaluate_gate(&gates(), &observed, hour(0), Duration::hours(24), hour(24));
        assert_eq!(result.reporting_devices, 40);
        assert_eq!(result.targeted_devices, 40);
        assert_eq!(result.success_rate, Some(0.75));
        assert_eq!(result.reporting_fraction, Some(1.0));
        assert_eq!(result.time_to_compliance_hours, Some(3.0));
        assert!(result.soak_complete);
        assert!(
            result
                .reasons
                .to_vec()
                .iter()
                .any(|r| r.contains("below the threshold"))
        );
    }

    #[test]
    fn hours_convert_to_milliseconds() {
        assert_eq!(duration_from_hours(1.5), Duration::minutes(90));
        assert_eq!(duration_from_hours(-2.0), Duration::zero());
        assert_eq!(duration_from_hours(f64::NAN), Duration::zero());
    }

    /// The sentences are held as text and stored as the list they were,
    /// whatever they hold.
    #[test]
    fn reasons_are_stored_as_the_list() {
        let sentences = vec![
            "success rate 77.5% >= 75%".to_string(),
            "quote \" slash \\ é \u{1F600} \n tab\t".to_string(),
            String::new(),
        ];
        let reasons = Reasons::new(&sentences);
        assert_eq!(reasons.to_vec(), sentences);
        assert_eq!(reasons.join("; "), sentences.join("; "));
        assert_eq!(
            serde_json::to_string(&reasons).unwrap(),
            serde_json::to_string(&sentences).unwrap()
        );
        let stored = serde_json::to_value(&sentences).unwrap();
        let read: Reasons = serde_json::from_value(stored).unwrap();
        assert_eq!(read, reasons);
        assert_eq!(Reasons::new(&[]).to_vec(), Vec::<String>::new());
    }
}
