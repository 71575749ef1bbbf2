//! Promotion gates: is a ring good enough to promote past, bad enough to roll
//! back, or not yet known?
//!
//! A gate is judged on what the plane reported for the ring, once the ring has
//! soaked. Three checks, all from [`PromotionGates`]:
//!
//! - **success rate** `installed / (installed + failed)` at least the threshold
//!   (exactly at the threshold passes), over at least `min_reporting_devices`
//!   reporting devices (installed + failed; pending devices have not reported);
//! - **time to compliance**: the first install came within
//!   `time_to_compliance_hours` of the ring's start;
//! - **incidents** at most `max_incidents`.
//!
//! Too few reporting devices, or a soak that is not over, is
//! [`GateVerdict::Inconclusive`]. One exception, for safety: incidents above
//! the maximum fail the gate at once, soak or no soak, few devices or many.

use crate::model::PromotionGates;
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
    /// Incidents attributed to this deployment (help-desk, EDR, crash reports).
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
}

/// A gate's verdict and the figures behind it (they go into evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub verdict: GateVerdict,
    /// `None` while no device has reported.
    pub success_rate: Option<f64>,
    pub reporting_devices: u32,
    /// Hours from the ring's start to its first install, once there was one.
    pub time_to_compliance_hours: Option<f64>,
    /// The soak is over: an inconclusive verdict now needs a human.
    pub soak_complete: bool,
    /// One sentence per check, in check order.
    pub reasons: Vec<String>,
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
    let success_rate =
        (reporting_devices > 0).then(|| observed.installed as f64 / reporting_devices as f64);
    let time_to_compliance = observed
        .first_install_at
        .map(|first_install| first_install - ring_started_at);
    let soak_ends_at = ring_started_at + soak;
    let soak_complete = now >= soak_ends_at;
    let mut reasons = Vec::new();
    let mut failing = false;

    if observed.incidents > gates.max_incidents {
        failing = true;
        reasons.push(format!(
            "{} incidents exceed the maximum of {}",
            observed.incidents, gates.max_incidents
        ));
    } else {
        reasons.push(format!(
            "{} incidents, within the maximum of {}",
            observed.incidents, gates.max_incidents
        ));
    }

    let enough_devices = reporting_devices >= gates.min_reporting_devices;
    if !soak_complete {
        reasons.push(format!(
            "soak not over: it ends at {} ({:.1} h left)",
            soak_ends_at.to_rfc3339(),
            hours_of(soak_ends_at - now)
        ));
    } else if !enough_devices {
        reasons.push(format!(
            "{reporting_devices} reporting devices, fewer than the {} the gate needs",
            gates.min_reporting_devices
        ));
    } else {
        let rate = success_rate.unwrap_or(0.0);
        if rate + RATE_TOLERANCE < gates.success_rate_threshold {
            failing = true;
            reasons.push(format!(
                "success rate {rate:.4} is below the threshold {} over {reporting_devices} reporting devices",
                gates.success_rate_threshold
            ));
        } else {
            reasons.push(format!(
                "success rate {rate:.4} meets the threshold {} over {reporting_devices} reporting devices",
                gates.success_rate_threshold
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
    } else if !soak_complete || !enough_devices {
        GateVerdict::Inconclusive
    } else {
        GateVerdict::Pass
    };
    GateResult {
        verdict,
        success_rate,
        reporting_devices,
        time_to_compliance_hours: time_to_compliance.map(hours_of),
        soak_complete,
        reasons,
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
        }
    }

    /// `(installed, failed, incidents, first install hour, now hour)` with a
    /// ring started at hour 0 and a 24 h soak.
    fn check(counts: (u32, u32, u32), first_install: Option<i64>, now: i64, expected: GateVerdict) {
        let (installed, failed, incidents) = counts;
        let observed = ObservedStatus {
            targeted: 100,
            installed,
            failed,
            pending: 100 - installed - failed,
            incidents,
            first_install_at: first_install.map(hour),
        };
        let result = evaluate_gate(&gates(), &observed, hour(0), Duration::hours(24), hour(now));
        assert_eq!(
            result.verdict, expected,
            "{counts:?} first {first_install:?} now {now}: {:?}",
            result.reasons
        );
    }

    #[test]
    fn gate_table() {
        use GateVerdict::*;
        check((19, 1, 0), Some(1), 24, Pass); // exactly 0.95, soak just over
        check((18, 2, 0), Some(1), 24, Fail); // 0.90
        check((19, 0, 0), Some(1), 24, Inconclusive); // one device short of 20
        check((20, 0, 0), Some(1), 24, Pass); // exactly the minimum
        check((20, 0, 0), Some(1), 23, Inconclusive); // soak not over
        check((20, 0, 1), Some(1), 2, Fail); // an incident fails at once
        check((2, 0, 1), Some(1), 30, Fail); // even with few devices
        check((20, 0, 0), Some(25), 30, Fail); // first install too late
        check((20, 0, 0), Some(24), 30, Pass); // exactly at the limit
        check((0, 20, 0), None, 30, Fail); // nothing installed
        check((0, 0, 0), None, 30, Inconclusive); // nobody reported
        check((0, 5, 0), None, 30, Inconclusive); // too few to judge the rate
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
        assert_eq!(result.success_rate, Some(0.75));
        assert_eq!(result.time_to_compliance_hours, Some(3.0));
        assert!(result.soak_complete);
        assert!(
            result
                .reasons
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
}
