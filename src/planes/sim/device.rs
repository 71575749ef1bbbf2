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
//!
//! A device is small (issue 17: hundreds of thousands of them per plane at
//! 10,000 intents): its texts (group, versions, failure reasons) are
//! [`TextId`]s into its app's [`Texts`], its times are chrono's own
//! (12 bytes, to the nanosecond, as written), and its first attempt is
//! held inline — most devices have exactly one. `devices` writes and
//! reads it as the text it was.

use super::shared::{Shared, SharedTexts};
use chrono::{DateTime, Utc};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::num::NonZeroU32;
use std::time::Duration;

/// Why simulated installs fail, with relative weights. Real planes report these as
/// MSI exit codes, Jamf policy log lines, CM enforcement states, ...
pub const FAILURE_REASONS: [(&str, u32); 4] = [
    ("exit_code_1603", 45),
    ("disk_full", 20),
    ("dependency_missing", 20),
    ("download_timeout", 15),
];

/// One text of an app's devices (a group, a version, a failure reason):
/// its position in the app's [`Texts`], plus one (so that an absent one
/// costs no room). The first positions are the [`FAILURE_REASONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TextId(NonZeroU32);

impl TextId {
    fn at(position: usize) -> TextId {
        let number = u32::try_from(position + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .expect("fewer than 2^32 texts per app");
        TextId(number)
    }

    fn position(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// The texts of one app's devices, each held once: two devices (or
/// attempts) have the same text exactly when they have the same
/// [`TextId`]. The texts themselves are the fleet's [`Shared`] ones
/// (every app's devices name the same groups and versions).
#[derive(Debug, Clone, Default)]
pub struct Texts {
    /// Texts other than the failure reasons, after them in position;
    /// room for exactly these (an app's devices hold a few).
    owned: Vec<Shared>,
}

impl Texts {
    pub fn get(&self, id: TextId) -> &str {
        let position = id.position();
        match FAILURE_REASONS.get(position) {
            Some((reason, _)) => reason,
            None => &self.owned[position - FAILURE_REASONS.len()],
        }
    }

    /// The texts other than the failure reasons.
    #[cfg(test)]
    pub fn shared(&self) -> &[Shared] {
        &self.owned
    }

    /// The id of `text`, if a device of the app holds it.
    pub fn find(&self, text: &str) -> Option<TextId> {
        if let Some(position) = FAILURE_REASONS
            .iter()
            .position(|(reason, _)| *reason == text)
        {
            return Some(TextId::at(position));
        }
        self.owned
            .iter()
            .position(|owned| owned.as_str() == text)
            .map(|position| TextId::at(FAILURE_REASONS.len() + position))
    }

    /// The id of `text`, added (a text of its own) when it is new. An
    /// app's devices hold a few texts (its groups and versions): a scan
    /// finds them.
    pub fn intern(&mut self, text: &str) -> TextId {
        self.find(text)
            .unwrap_or_else(|| self.push(Shared::new(text)))
    }

    /// The id of `text`, added (shared) when it is new.
    pub fn intern_shared(&mut self, text: &Shared) -> TextId {
        self.find(text).unwrap_or_else(|| self.push(text.clone()))
    }

    fn push(&mut self, text: Shared) -> TextId {
        self.owned.reserve_exact(1);
        self.owned.push(text);
        TextId::at(FAILURE_REASONS.len() + self.owned.len() - 1)
    }

    /// Makes texts read from a state file the fleet's shared ones.
    pub fn share_texts(&mut self, shared: &mut SharedTexts) {
        for text in &mut self.owned {
            shared.reshare(text);
        }
    }
}

/// What an attempt does to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Install(TextId),
    Remove,
}

/// What an attempt does to the device, as text.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptAction {
    Install { version: String },
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub completes_at: DateTime<Utc>,
    pub action: Action,
    /// `None` when the attempt succeeds; the failure reason otherwise.
    pub failure: Option<TextId>,
}

/// A device's attempts, first first: the first inline, the others (a
/// rollback, a redeploy, drift) behind one pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    first: Option<Attempt>,
    /// Never empty: `None` instead (so equal histories are equal values).
    /// Boxed: one pointer (8 bytes) on every device, not a `Vec`'s 24.
    #[allow(clippy::box_collection)]
    later: Option<Box<Vec<Attempt>>>,
}

impl Attempts {
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.later.as_ref().map_or(0, |later| later.len())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Attempt> + '_ {
        self.first
            .iter()
            .chain(self.later.iter().flat_map(|later| later.iter()))
    }

    pub fn last(&self) -> Option<&Attempt> {
        self.later
            .as_ref()
            .and_then(|later| later.last())
            .or(self.first.as_ref())
    }

    pub fn push(&mut self, attempt: Attempt) {
        if self.first.is_none() {
            self.first = Some(attempt);
            return;
        }
        // Room for exactly the next one, not the four a first push reserves.
        let later = self.later.get_or_insert_with(Box::default);
        later.reserve_exact(1);
        later.push(attempt);
    }

    fn pop(&mut self) -> Option<Attempt> {
        if let Some(later) = &mut self.later {
            let popped = later.pop();
            if later.is_empty() {
                self.later = None;
            }
            if popped.is_some() {
                return popped;
            }
        }
        self.first.take()
    }
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

/// One device of one app; its id is its key in the app's `DeviceTable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub group: TextId,
    /// What the device ran before this deployment touched it (the superseded version).
    pub baseline_version: Option<TextId>,
    pub attempts: Attempts,
}

/// What a device reports at one time, about one version of interest, as
/// [`TextId`]s of its app's texts (`View::with_texts` says it as the text
/// `DeviceView` tests read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    pub installed_version: Option<TextId>,
    /// An attempt has started and not completed.
    pub in_flight: Option<Action>,
    /// The failure reason when the last completed attempt was a failed install of
    /// the version of interest.
    pub failed_reason: Option<TextId>,
    /// When the device first completed an install of the version of interest.
    pub first_install_at: Option<DateTime<Utc>>,
    /// When the device last reported a completed attempt.
    pub last_report_at: Option<DateTime<Utc>>,
}

/// What a device reports at one time, about one version of interest.
#[cfg(test)]
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

#[cfg(test)]
impl Action {
    pub fn with_texts(self, texts: &Texts) -> AttemptAction {
        match self {
            Action::Install(version) => AttemptAction::Install {
                version: texts.get(version).to_owned(),
            },
            Action::Remove => AttemptAction::Remove,
        }
    }
}

#[cfg(test)]
impl View {
    pub fn with_texts(&self, texts: &Texts) -> DeviceView {
        let text = |id: Option<TextId>| id.map(|id| texts.get(id).to_owned());
        DeviceView {
            installed_version: text(self.installed_version),
            in_flight: self.in_flight.map(|action| action.with_texts(texts)),
            failed_reason: text(self.failed_reason),
            first_install_at: self.first_install_at,
            last_report_at: self.last_report_at,
        }
    }
}

impl Device {
    pub fn new(group: TextId, baseline_version: Option<TextId>) -> Device {
        Device {
            group,
            baseline_version,
            attempts: Attempts::default(),
        }
    }

    /// Starts an attempt at `now`, replacing any attempt still running.
    pub fn start(
        &mut self,
        device_id: &str,
        action: Action,
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
        let failure = match (action, succeeds) {
            (Action::Install(_), false) => Some(pick_failure_reason(&mut generator)),
            _ => None,
        };
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
            matches!(attempt.action, Action::Install(_)) && attempt.completes_at > now
        });
        if pending {
            self.attempts.pop();
        }
        pending
    }

    /// Records a change that happened on the device outside the deployment (drift):
    /// complete and successful at `now`.
    pub fn record_external(&mut self, action: Action, now: DateTime<Utc>) {
        self.attempts.push(Attempt {
            started_at: now,
            completes_at: now,
            action,
            failure: None,
        });
    }

    /// What the device reports at `now`, judged against `version_of_interest`
    /// (`None` as well when no device of the app holds that text: no
    /// attempt is of it).
    pub fn view(&self, now: DateTime<Utc>, version_of_interest: Option<TextId>) -> View {
        let mut view = View {
            installed_version: self.baseline_version,
            ..View::default()
        };
        let mut attempts = self.attempts.iter().peekable();
        while let Some(attempt) = attempts.next() {
            if attempt.started_at > now {
                break;
            }
            let replaced_at = attempts
                .peek()
                .map(|next| next.started_at)
                .filter(|next_start| *next_start < attempt.completes_at);
            if attempt.completes_at > now {
                if replaced_at.is_none_or(|replaced| replaced > now) {
                    view.in_flight = Some(attempt.action);
                }
                continue;
            }
            if replaced_at.is_some() {
                continue;
            }
            view.last_report_at = Some(attempt.completes_at);
            view.failed_reason = None;
            match (attempt.action, attempt.failure) {
                (Action::Install(version), None) => {
                    view.installed_version = Some(version);
                    if version_of_interest == Some(version) && view.first_install_at.is_none() {
                        view.first_install_at = Some(attempt.completes_at);
                    }
                }
                (Action::Install(version), Some(reason)) => {
                    if version_of_interest == Some(version) {
                        view.failed_reason = Some(reason);
                    }
                }
                (Action::Remove, _) => view.installed_version = None,
            }
        }
        view
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn pick_failure_reason(generator: &mut Xoshiro256PlusPlus) -> TextId {
    let total: u32 = FAILURE_REASONS.iter().map(|(_, weight)| weight).sum();
    let mut ticket = generator.random_range(0..total);
    for (position, (_, weight)) in FAILURE_REASONS.iter().enumerate() {
        if ticket < *weight {
            return TextId::at(position);
        }
        ticket -= weight;
    }
    TextId::at(0)
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

    /// An app's texts, and a device of group `group-a` that ran `baseline`.
    fn device(baseline: Option<&str>) -> (Texts, Device) {
        let mut texts = Texts::default();
        let group = texts.intern("group-a");
        let baseline = baseline.map(|version| texts.intern(version));
        (texts, Device::new(group, baseline))
    }

    fn install(texts: &mut Texts, version: &str) -> Action {
        Action::Install(texts.intern(version))
    }

    fn install_text(version: &str) -> AttemptAction {
        AttemptAction::Install {
            version: version.into(),
        }
    }

    fn view(texts: &Texts, device: &Device, now: DateTime<Utc>, of: Option<&str>) -> DeviceView {
        let of = of.and_then(|version| texts.find(version));
        device.view(now, of).with_texts(texts)
    }

    /// Issue 17: a device with one attempt fits in 48 bytes, inline.
    #[test]
    fn a_device_with_one_attempt_is_small() {
        assert_eq!(std::mem::size_of::<Attempt>(), 32);
        assert_eq!(std::mem::size_of::<Option<Attempt>>(), 32);
        assert_eq!(std::mem::size_of::<Device>(), 48);
    }

    /// Texts are held once; the failure reasons need no room.
    #[test]
    fn texts_are_interned_once_and_failure_reasons_are_built_in() {
        let mut texts = Texts::default();
        let first = texts.intern("2.0");
        assert_eq!(texts.intern("2.0"), first);
        assert_eq!(texts.get(first), "2.0");
        assert_eq!(texts.find("3.0"), None);
        for (position, (reason, _)) in FAILURE_REASONS.iter().enumerate() {
            assert_eq!(texts.intern(reason), TextId::at(position));
            assert_eq!(texts.get(TextId::at(position)), *reason);
        }
        assert_eq!(texts.owned.len(), 1);
    }

    #[test]
    fn install_is_in_flight_until_its_delay_passes_then_reports() {
        let (mut texts, mut device) = device(Some("1.0"));
        let action = install(&mut texts, "2.0");
        device.start("group-a/device-00000", action, at(0), &draw(1.0));
        let before = view(&texts, &device, at(9), Some("2.0"));
        assert_eq!(before.installed_version.as_deref(), Some("1.0"));
        assert_eq!(before.in_flight, Some(install_text("2.0")));
        assert_eq!(before.last_report_at, None);
        let after = view(&texts, &device, at(10), Some("2.0"));
        assert_eq!(after.installed_version.as_deref(), Some("2.0"));
        assert_eq!(after.in_flight, None);
        assert_eq!(after.first_install_at, Some(at(10)));
        assert_eq!(after.last_report_at, Some(at(10)));
    }

    #[test]
    fn failed_install_keeps_the_previous_version_and_names_a_reason() {
        let (mut texts, mut device) = device(Some("1.0"));
        let action = install(&mut texts, "2.0");
        device.start("group-a/device-00000", action, at(0), &draw(0.0));
        let view = view(&texts, &device, at(10), Some("2.0"));
        assert_eq!(view.installed_version.as_deref(), Some("1.0"));
        let reason = view.failed_reason.expect("a failure reason");
        assert!(FAILURE_REASONS.iter().any(|(known, _)| *known == reason));
    }

    #[test]
    fn a_later_attempt_replaces_one_still_running() {
        let (mut texts, mut device) = device(None);
        let action = install(&mut texts, "2.0");
        device.start("group-a/device-00000", action, at(0), &draw(1.0));
        device.start("group-a/device-00000", Action::Remove, at(5), &draw(1.0));
        assert_eq!(
            view(&texts, &device, at(4), None).in_flight,
            Some(install_text("2.0"))
        );
        assert_eq!(
            view(&texts, &device, at(12), None).in_flight,
            Some(AttemptAction::Remove)
        );
        let settled = view(&texts, &device, at(60), Some("2.0"));
        assert_eq!(settled.installed_version, None);
        assert_eq!(
            settled.first_install_at, None,
            "the replaced install never completed"
        );
    }

    #[test]
    fn same_identity_draws_the_same_attempt() {
        let (mut texts, mut first) = device(None);
        let mut second = first.clone();
        let spread = AttemptDraw {
            delay: (Duration::from_secs(60), Duration::from_secs(7200)),
            ..draw(0.5)
        };
        let action = install(&mut texts, "2.0");
        first.start("group-a/device-00001", action, at(0), &spread);
        second.start("group-a/device-00001", action, at(0), &spread);
        assert_eq!(first, second);
        let mut other = Device::new(first.group, None);
        other.start("group-a/device-00002", action, at(0), &spread);
        assert_ne!(
            first.attempts.iter().next().unwrap().completes_at,
            other.attempts.iter().next().unwrap().completes_at
        );
    }

    /// Attempts past the first are kept in order; cancelling the last
    /// pending install leaves the others.
    #[test]
    fn attempts_past_the_first_keep_their_order() {
        let (mut texts, mut device) = device(Some("1.0"));
        let two = install(&mut texts, "2.0");
        device.start("group-a/device-00000", two, at(0), &draw(1.0));
        device.record_external(install(&mut texts, "1.5"), at(30));
        device.start("group-a/device-00000", two, at(40), &draw(1.0));
        assert_eq!(device.attempts.len(), 3);
        assert!(device.cancel_pending_install(at(45)));
        assert_eq!(device.attempts.len(), 2);
        assert_eq!(
            view(&texts, &device, at(45), None)
                .installed_version
                .as_deref(),
            Some("1.5")
        );
        assert!(!device.cancel_pending_install(at(45)));
        device.attempts.pop();
        device.attempts.pop();
        assert_eq!(device.attempts, Attempts::default());
    }
}
