//! `device`: one simulated device of a deployment, as a history of attempts.
//!
//! A device never changes by itself: every install or removal is an [`Attempt`]
//! with a start, a completion time and an outcome, drawn when the attempt starts
//! from a generator seeded by (fleet seed, correlation id, device id, attempt
//! number). What the device reports at a time is computed from that history
//! ([`Device::view`]), so asking at a later `now` is how simulated time passes, and
//! the same seed always gives the same fleet, whatever order calls come in.
//!
//! An attempt started while an earlier one is still running replaces it: the earlier
//! one never completes.

use chrono::{DateTime, Utc};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Why simulated installs fail, with relative weights. Real planes report these as
/// MSI exit codes, Jamf policy log lines, CM enforcement states, ...
pub const FAILURE_REASONS: [(&str, u32); 4] = [
    ("exit_code_1603", 45),
    ("disk_full", 20),
    ("dependency_missing", 20),
    ("download_timeout", 15),
];

/// What an attempt does to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttemptAction {
    Install { version: String },
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub completes_at: DateTime<Utc>,
    pub action: AttemptAction,
    /// `None` when the attempt succeeds; the failure reason otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// How the next attempt of a device is drawn.
#[derive(Debug, Clone, Copy)]
pub struct AttemptDraw<'a> {
    pub seed: u64,
    pub correlation_id: &'a str,
    /// Delay between the assignment and the device's report: uniform in [min, max].
    pub delay: (Duration, Duration),
    /// Probability that an install succeeds. Removals always succeed.
    pub success_rate: f64,
}

/// The group and baseline version are shared by the devices of one group
/// of one app (issue 17: tens of thousands of devices per plane held a
/// copy each); the state file holds them as text, as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    #[serde(with = "shared_text")]
    pub group: Arc<str>,
    /// What the device ran before this deployment touched it (the superseded version).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "shared_text::optional"
    )]
    pub baseline_version: Option<Arc<str>>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
}

/// What a device reports at one time, about one version of interest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceView {
    pub installed_version: Option<String>,
    /// An attempt has started and not completed.
    pub in_flight: Option<AttemptAction>,
    /// The failure reason when the last completed attempt was a failed install of
    /// the version of interest.
    pub failed_reason: Option<String>,
    /// When the device first completed an install of the version of interest.
    pub first_install_at: Option<DateTime<Utc>>,
    /// When the device last reported a completed attempt.
    pub last_report_at: Option<DateTime<Utc>>,
}

impl Device {
    pub fn new(group: impl Into<Arc<str>>, baseline_version: Option<Arc<str>>) -> Device {
        Device {
            group: group.into(),
            baseline_version,
            attempts: Vec::new(),
        }
    }

    /// Starts an attempt at `now`, replacing any attempt still running.
    pub fn start(
        &mut self,
        device_id: &str,
        action: AttemptAction,
        now: DateTime<Utc>,
        draw: &AttemptDraw<'_>,
    ) {
        let mut generator = Xoshiro256PlusPlus::seed_from_u64(attempt_seed(
            draw.seed,
            draw.correlation_id,
            device_id,
            self.attempts.len(),
        ));
        let (minimum, maximum) = draw.delay;
        let delay_millis =
            generator.random_range(millis(minimum)..=millis(maximum).max(millis(minimum)));
        let succeeds = generator.random::<f64>() < draw.success_rate;
        let failure = match (&action, succeeds) {
            (AttemptAction::Install { .. }, false) => Some(pick_failure_reason(&mut generator)),
            _ => None,
        };
        // Most devices see one attempt: room for exactly the next one, not
        // the four a first push reserves (issue 17: tens of thousands of
        // devices per plane at 10,000 intents).
        self.attempts.reserve_exact(1);
        self.attempts.push(Attempt {
            started_at: now,
            completes_at: now + chrono::Duration::milliseconds(delay_millis),
            action,
            failure,
        });
    }

    /// Cancels an install that has not completed by `now` (its assignment
    /// was withdrawn before the device acted on it): the device never gets
    /// it. Answers whether one was cancelled.
    pub fn cancel_pending_install(&mut self, now: DateTime<Utc>) -> bool {
        let pending = self.attempts.last().is_some_and(|attempt| {
            matches!(attempt.action, AttemptAction::Install { .. }) && attempt.completes_at > now
        });
        if pending {
            self.attempts.pop();
        }
        pending
    }

    /// Records a change that happened on the device outside the deployment (drift):
    /// complete and successful at `now`.
    pub fn record_external(&mut self, action: AttemptAction, now: DateTime<Utc>) {
        // Most devices see one attempt: room for exactly the next one, not
        // the four a first push reserves (issue 17: tens of thousands of
        // devices per plane at 10,000 intents).
        self.attempts.reserve_exact(1);
        self.attempts.push(Attempt {
            started_at: now,
            completes_at: now,
            action,
            failure: None,
        });
    }

    /// What the device reports at `now`, judged against `version_of_interest`.
    pub fn view(&self, now: DateTime<Utc>, version_of_interest: Option<&str>) -> DeviceView {
        let mut view = DeviceView {
            installed_version: self.baseline_version.as_deref().map(str::to_owned),
            ..DeviceView::default()
        };
        for (index, attempt) in self.attempts.iter().enumerate() {
            if attempt.started_at > now {
                break;
            }
            let replaced_at = self
                .attempts
                .get(index + 1)
                .map(|next| next.started_at)
                .filter(|next_start| *next_start < attempt.completes_at);
            if attempt.completes_at > now {
                if replaced_at.is_none_or(|replaced| replaced > now) {
                    view.in_flight = Some(attempt.action.clone());
                }
                continue;
            }
            if replaced_at.is_some() {
                continue;
            }
            view.last_report_at = Some(attempt.completes_at);
            view.failed_reason = None;
            match (&attempt.action, &attempt.failure) {
                (AttemptAction::Install { version }, None) => {
                    view.installed_version = Some(version.clone());
                    if version_of_interest == Some(version.as_str())
                        && view.first_install_at.is_none()
                    {
                        view.first_install_at = Some(attempt.completes_at);
                    }
                }
                (AttemptAction::Install { version }, Some(reason)) => {
                    if version_of_interest == Some(version.as_str()) {
                        view.failed_reason = Some(reason.clone());
                    }
                }
                (AttemptAction::Remove, _) => view.installed_version = None,
            }
        }
        view
    }
}

/// A shared text (`Arc<str>`) read and written as a JSON string, as the
/// `String` it replaces was.
mod shared_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }

    pub mod optional {
        use serde::{Deserialize, Deserializer, Serializer};
        use std::sync::Arc;

        pub fn serialize<S: Serializer>(
            text: &Option<Arc<str>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match text {
                Some(text) => serializer.serialize_some(&**text),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Arc<str>>, D::Error> {
            Option::<String>::deserialize(deserializer).map(|text| text.map(Arc::from))
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn pick_failure_reason(generator: &mut Xoshiro256PlusPlus) -> String {
    let total: u32 = FAILURE_REASONS.iter().map(|(_, weight)| weight).sum();
    let mut ticket = generator.random_range(0..total);
    for (reason, weight) in FAILURE_REASONS {
        if ticket < weight {
            return reason.to_string();
        }
        ticket -= weight;
    }
    FAILURE_REASONS[0].0.to_string()
}

/// FNV-1a over the attempt's identity: stable across builds and platforms, so a
/// seed means the same fleet everywhere.
fn attempt_seed(seed: u64, correlation_id: &str, device_id: &str, attempt_number: usize) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let attempt_number = u64::try_from(attempt_number).unwrap_or(u64::MAX);
    let parts: [&[u8]; 5] = [
        &seed.to_le_bytes(),
        correlation_id.as_bytes(),
        &[0],
        device_id.as_bytes(),
        &attempt_number.to_le_bytes(),
    ];
    for part in parts {
        for byte in part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn draw(success_rate: f64) -> AttemptDraw<'static> {
        AttemptDraw {
            seed: 7,
            correlation_id: "corr-1",
            delay: (Duration::from_secs(600), Duration::from_secs(600)),
            success_rate,
        }
    }

    fn install(version: &str) -> AttemptAction {
        AttemptAction::Install {
            version: version.into(),
        }
    }

    /// Shared texts (issue 17) are written and read as the `String`s were:
    /// the state file does not change.
    #[test]
    fn a_device_with_shared_texts_is_written_and_read_as_before() {
        let group: Arc<str> = "group-a".into();
        let mut device = Device::new(group.clone(), Some("1.0".into()));
        device.start("group-a/device-00000", install("2.0"), at(0), &draw(1.0));
        let text = serde_json::to_string(&device).unwrap();
        assert!(
            text.starts_with(
                r#"{"group":"group-a","baseline_version":"1.0","attempts":[{"started_at":"#
            ),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Device>(&text).unwrap(), device);
        let bare = Device::new("group-b", None);
        let text = serde_json::to_string(&bare).unwrap();
        assert_eq!(text, r#"{"group":"group-b","attempts":[]}"#);
        assert_eq!(
            serde_json::from_str::<Device>(r#"{"group":"group-b"}"#).unwrap(),
            bare
        );
        assert_eq!(
            device.view(at(0), None).installed_version.as_deref(),
            Some("1.0")
        );
    }

    #[test]
    fn install_is_in_flight_until_its_delay_passes_then_reports() {
        let mut device = Device::new("group-a", Some("1.0".into()));
        device.start("group-a/device-00000", install("2.0"), at(0), &draw(1.0));
        let before = device.view(at(9), Some("2.0"));
        assert_eq!(before.installed_version.as_deref(), Some("1.0"));
        assert_eq!(before.in_flight, Some(install("2.0")));
        assert_eq!(before.last_report_at, None);
        let after = device.view(at(10), Some("2.0"));
        assert_eq!(after.installed_version.as_deref(), Some("2.0"));
        assert_eq!(after.in_flight, None);
        assert_eq!(after.first_install_at, Some(at(10)));
        assert_eq!(after.last_report_at, Some(at(10)));
    }

    #[test]
    fn failed_install_keeps_the_previous_version_and_names_a_reason() {
        let mut device = Device::new("group-a", Some("1.0".into()));
        device.start("group-a/device-00000", install("2.0"), at(0), &draw(0.0));
        let view = device.view(at(10), Some("2.0"));
        assert_eq!(view.installed_version.as_deref(), Some("1.0"));
        let reason = view.failed_reason.expect("a failure reason");
        assert!(FAILURE_REASONS.iter().any(|(known, _)| *known == reason));
    }

    #[test]
    fn a_later_attempt_replaces_one_still_running() {
        let mut device = Device::new("group-a", None);
        device.start("group-a/device-00000", install("2.0"), at(0), &draw(1.0));
        device.start(
            "group-a/device-00000",
            AttemptAction::Remove,
            at(5),
            &draw(1.0),
        );
        assert_eq!(device.view(at(4), None).in_flight, Some(install("2.0")));
        assert_eq!(
            device.view(at(12), None).in_flight,
            Some(AttemptAction::Remove)
        );
        let settled = device.view(at(60), Some("2.0"));
        assert_eq!(settled.installed_version, None);
        assert_eq!(
            settled.first_install_at, None,
            "the replaced install never completed"
        );
    }

    #[test]
    fn same_identity_draws_the_same_attempt() {
        let mut first = Device::new("group-a", None);
        let mut second = Device::new("group-a", None);
        let spread = AttemptDraw {
            delay: (Duration::from_secs(60), Duration::from_secs(7200)),
            ..draw(0.5)
        };
        first.start("group-a/device-00001", install("2.0"), at(0), &spread);
        second.start("group-a/device-00001", install("2.0"), at(0), &spread);
        assert_eq!(first, second);
        let mut other = Device::new("group-a", None);
        other.start("group-a/device-00002", install("2.0"), at(0), &spread);
        assert_ne!(
            first.attempts[0].completes_at,
            other.attempts[0].completes_at
        );
    }
}
