//! `fleet`: everything the simulated plane holds, as one serializable value.
//!
//! It is shaped like a real plane, not like the connector: app objects carry the
//! correlation id in a free-text `notes` field (as Intune's `mobileApp.notes` or a
//! Jamf package's notes would), and assignments are a plain list that would accept
//! a duplicate. Finding the existing app and not assigning a group twice is the
//! connector's job (`operations`), which is what makes [`SimFleet::assignment_count`]
//! a real check.

use super::device::{Action, AttemptDraw, Device, TextId, Texts, View};
use super::devices::DeviceTable;
use super::injection::Fault;
use super::shared::{Shared, SharedTexts};
use crate::model::Plane;
use crate::planes::{ArtifactRef, DeploymentStatus, ObservedState, RingStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

/// The prefix of the correlation note on app objects.
pub const CORRELATION_NOTE_PREFIX: &str = "corr:";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimFleet {
    pub plane: Plane,
    pub seed: u64,
    #[serde(with = "crate::planes::seconds::pair")]
    pub install_delay: (Duration, Duration),
    pub default_success_rate: f64,
    /// Device count per group id registered on this plane.
    pub groups: BTreeMap<String, u32>,
    /// Install success probability per application id, then version.
    pub success_rates: BTreeMap<String, BTreeMap<String, f64>>,
    /// Boxed: a growing list of apps reserves room for pointers, not apps
    /// (issue 17: a 10,000-app list doubling holds thousands of spare apps).
    #[allow(clippy::vec_box)]
    pub apps: Vec<Box<SimApp>>,
    /// Assignment records, as the plane stores them.
    pub assignments: Vec<SimAssignment>,
    /// Faults waiting for the next connector calls, first first.
    pub faults: VecDeque<Fault>,
    /// Failures queued for publish calls only (taken before `faults`).
    #[serde(default)]
    pub publish_faults: VecDeque<Fault>,
    /// Failures queued for remediation calls only (taken before `faults`).
    #[serde(default)]
    pub remediate_faults: VecDeque<Fault>,
    pub publish_calls: u64,
    /// While set, every connector call fails with this fault and nothing is
    /// applied: the plane is down (not consumed, unlike `faults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<Fault>,
    /// Connector calls of every operation, failed ones included.
    #[serde(default)]
    pub calls: u64,
    /// Numbers the plane's object ids.
    pub next_object_number: u64,
    /// The texts the records repeat (groups, rings, versions), held once.
    #[serde(skip)]
    pub shared: SharedTexts,
}

/// An app object on the plane, with the devices it has touched.
///
/// Its texts are held once (issue 17): its id is shared with its
/// assignments, its versions with the fleet's other records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimApp {
    pub id: Shared,
    /// `corr:<correlation id>`: how a connector finds the app again.
    pub notes: Box<str>,
    pub intent_id: Box<str>,
    pub application_id: Box<str>,
    pub application_name: Box<str>,
    pub published_version: Shared,
    /// What the app's assignments deliver now: the published version, the version
    /// of a rollback, or `None` once uninstalled.
    pub delivered_version: Option<Shared>,
    pub supersedes_version: Option<Shared>,
    pub artifact: SimArtifact,
    /// Rings in the order they were first published.
    pub rings: Vec<PublishedRing>,
    pub pinned_ring: Option<Shared>,
    /// Halted: every assignment withdrawn, no ring assigned again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub halted: bool,
    pub created_at: DateTime<Utc>,
    /// Every device the app was ever assigned to, by device id.
    pub devices: DeviceTable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRing {
    pub ring: Shared,
    pub groups: Vec<Shared>,
    pub exclusions: Vec<Shared>,
    pub expected_devices: u32,
    pub published_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAssignment {
    pub id: Box<str>,
    /// The app's own id, shared.
    pub app_id: Shared,
    pub group: Shared,
    pub ring: Shared,
    pub created_at: DateTime<Utc>,
}

/// An app's artifact, its seven texts in one allocation (an app holds it
/// and never changes it). Written and read as the [`ArtifactRef`] it was.
#[derive(Clone, PartialEq, Eq)]
pub struct SimArtifact {
    /// The fields' texts, one after the other.
    text: Box<str>,
    /// Where each field but the last ends in `text`.
    ends: [u32; 6],
}

/// An artifact's fields as the state file holds them: [`ArtifactRef`]'s.
#[derive(Serialize)]
struct ArtifactText<'a> {
    id: &'a str,
    file: &'a str,
    sha256: &'a str,
    install: &'a str,
    uninstall: &'a str,
    detection_type: &'a str,
    detection_value: &'a str,
}

impl SimArtifact {
    pub fn new(artifact: &ArtifactRef) -> SimArtifact {
        let fields = [
            &artifact.id,
            &artifact.file,
            &artifact.sha256,
            &artifact.install,
            &artifact.uninstall,
            &artifact.detection_type,
            &artifact.detection_value,
        ];
        let mut text = String::with_capacity(fields.iter().map(|field| field.len()).sum());
        let mut ends = [0; 6];
        for (position, field) in fields.iter().enumerate() {
            text.push_str(field);
            if let Some(end) = ends.get_mut(position) {
                *end = u32::try_from(text.len()).expect("an artifact's texts under 4 GiB");
            }
        }
        SimArtifact {
            text: text.into_boxed_str(),
            ends,
        }
    }

    fn fields(&self) -> ArtifactText<'_> {
        let mut start = 0;
        let mut next = |end: usize| {
            let field = &self.text[start..end];
            start = end;
            field
        };
        let ends = self.ends.map(|end| end as usize);
        ArtifactText {
            id: next(ends[0]),
            file: next(ends[1]),
            sha256: next(ends[2]),
            install: next(ends[3]),
            uninstall: next(ends[4]),
            detection_type: next(ends[5]),
            detection_value: next(self.text.len()),
        }
    }
}

impl fmt::Debug for SimArtifact {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = self.fields();
        formatter
            .debug_struct("SimArtifact")
            .field("id", &fields.id)
            .field("file", &fields.file)
            .field("sha256", &fields.sha256)
            .field("install", &fields.install)
            .field("uninstall", &fields.uninstall)
            .field("detection_type", &fields.detection_type)
            .field("detection_value", &fields.detection_value)
            .finish()
    }
}

impl Serialize for SimArtifact {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SimArtifact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SimArtifact, D::Error> {
        ArtifactRef::deserialize(deserializer).map(|artifact| SimArtifact::new(&artifact))
    }
}

/// The id of device `index` of `group` (`devices` writes it from its key).
#[cfg(test)]
pub fn device_id(group: &str, index: u32) -> String {
    format!("{group}/device-{index:05}")
}

impl SimFleet {
    pub fn new(
        plane: Plane,
        seed: u64,
        install_delay: (Duration, Duration),
        default_success_rate: f64,
    ) -> SimFleet {
        SimFleet {
            plane,
            seed,
            install_delay,
            default_success_rate,
            groups: BTreeMap::new(),
            success_rates: BTreeMap::new(),
            apps: Vec::new(),
            assignments: Vec::new(),
            faults: VecDeque::new(),
            publish_faults: VecDeque::new(),
            remediate_faults: VecDeque::new(),
            outage: None,
            calls: 0,
            publish_calls: 0,
            next_object_number: 1,
            shared: SharedTexts::default(),
        }
    }

    /// Makes the texts of a fleet read from a state file (each a text of
    /// its own) shared as the live fleet shares them.
    pub fn share_texts(&mut self) {
        let shared = &mut self.shared;
        let app_ids: HashSet<Shared> = self.apps.iter().map(|app| app.id.clone()).collect();
        for app in &mut self.apps {
            let versions = [&mut app.delivered_version, &mut app.supersedes_version];
            shared.reshare(&mut app.published_version);
            for version in versions.into_iter().flatten() {
                shared.reshare(version);
            }
            if let Some(ring) = &mut app.pinned_ring {
                shared.reshare(ring);
            }
            app.devices.share_texts(shared);
            for published in &mut app.rings {
                shared.reshare(&mut published.ring);
                for group in published.groups.iter_mut().chain(&mut published.exclusions) {
                    shared.reshare(group);
                }
            }
        }
        for assignment in &mut self.assignments {
            if let Some(app_id) = app_ids.get(assignment.app_id.as_str()) {
                assignment.app_id = app_id.clone();
            }
            shared.reshare(&mut assignment.group);
            shared.reshare(&mut assignment.ring);
        }
    }

    /// A new plane object id, e.g. `sim-intune-app-3`.
    pub fn new_object_id(&mut self, kind: &str) -> String {
        let number = self.next_object_number;
        self.next_object_number += 1;
        format!("sim-{}-{kind}-{number}", self.plane.as_str())
    }

    pub fn app_index(&self, correlation_id: &str) -> Option<usize> {
        self.apps
            .iter()
            .position(|app| app.notes.strip_prefix(CORRELATION_NOTE_PREFIX) == Some(correlation_id))
    }

    pub fn app(&self, correlation_id: &str) -> Option<&SimApp> {
        self.app_index(correlation_id)
            .map(|index| &*self.apps[index])
    }

    pub fn assignments_of<'a>(
        &'a self,
        app_id: &'a str,
    ) -> impl Iterator<Item = &'a SimAssignment> {
        self.assignments
            .iter()
            .filter(move |assignment| *assignment.app_id == *app_id)
    }

    /// Assignment records of the app with this correlation id: exactly one per
    /// assigned group when the connector is right.
    pub fn assignment_count(&self, correlation_id: &str) -> usize {
        self.app(correlation_id)
            .map(|app| self.assignments_of(&app.id).count())
            .unwrap_or(0)
    }

    pub fn success_rate(&self, application_id: &str, version: &str) -> f64 {
        self.success_rates
            .get(application_id)
            .and_then(|versions| versions.get(version))
            .copied()
            .unwrap_or(self.default_success_rate)
    }

    /// How the next attempt at `version` is drawn for the app `correlation_id`.
    pub fn draw<'a>(
        &self,
        correlation_id: &'a str,
        application_id: &str,
        version: Option<&str>,
    ) -> AttemptDraw<'a> {
        AttemptDraw {
            seed: self.seed,
            correlation_id,
            delay: self.install_delay,
            success_rate: version
                .map(|version| self.success_rate(application_id, version))
                .unwrap_or(1.0),
        }
    }

    /// Assigns `group` to app `app_index` for `ring` and starts installing the
    /// delivered version on each of its devices that does not run it yet.
    pub fn assign_group(&mut self, app_index: usize, group: &str, ring: &str, now: DateTime<Utc>) {
        let assignment_id = self.new_object_id("assignment");
        let app_id = self.apps[app_index].id.clone();
        let group_text = self.shared.share(group);
        self.assignments.push(SimAssignment {
            id: assignment_id.into_boxed_str(),
            app_id,
            group: group_text.clone(),
            ring: self.shared.share(ring),
            created_at: now,
        });
        let device_count = self.groups.get(group).copied().unwrap_or(0);
        let correlation_id = correlation_of(&self.apps[app_index]).to_string();
        let app = &self.apps[app_index];
        let draw = self.draw(
            &correlation_id,
            &app.application_id,
            app.delivered_version.as_deref(),
        );
        let app = &mut self.apps[app_index];
        let Some(version) = app.delivered_version.as_ref() else {
            return;
        };
        let group =
            app.devices
                .add_group(&group_text, device_count, app.supersedes_version.as_ref());
        let version = app.devices.intern(version);
        let (texts, devices) = app.devices.entries_mut();
        let mut id = String::new();
        for (key, device) in devices {
            if key.is_of_group(group, device_count) {
                key.write_id(texts, &mut id);
                push_version(device, &id, version, now, &draw);
            }
        }
    }

    /// The deployment as the connector reports it at `now`.
    pub fn status(&self, app: &SimApp, now: DateTime<Utc>) -> DeploymentStatus {
        let texts = app.devices.texts();
        // No device holds a delivered version that is not among its texts.
        let delivered = app
            .delivered_version
            .as_deref()
            .and_then(|version| texts.find(version));
        let mut rings: BTreeMap<String, RingStatus> = app
            .rings
            .iter()
            .map(|published| (published.ring.to_string(), RingStatus::default()))
            .collect();
        let mut rings_of_group: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for assignment in self.assignments_of(&app.id) {
            rings_of_group
                .entry(assignment.group.as_str())
                .or_default()
                .insert(assignment.ring.as_str());
        }
        let rings_of_device_group: BTreeMap<TextId, &BTreeSet<&str>> = rings_of_group
            .iter()
            .filter_map(|(group, ring_ids)| Some((texts.find(group)?, ring_ids)))
            .collect();
        let mut installed_counts: BTreeMap<TextId, u32> = BTreeMap::new();
        let mut assigned_devices = 0;
        for device in app.devices.devices() {
            let view = device.view(now, delivered);
            if let Some(ring_ids) = rings_of_device_group.get(&device.group) {
                assigned_devices += 1;
                for ring_id in *ring_ids {
                    if let Some(status) = rings.get_mut(*ring_id) {
                        count_device(status, &view, delivered, texts);
                    }
                }
            }
            if let Some(version) = view.installed_version {
                *installed_counts.entry(version).or_default() += 1;
            }
        }
        let installed_versions: BTreeMap<String, u32> = installed_counts
            .into_iter()
            .map(|(version, count)| (texts.get(version).to_owned(), count))
            .collect();
        let delivered = app.delivered_version.as_deref();
        let assigned_groups = rings_of_group
            .keys()
            .map(|group| group.to_string())
            .collect();
        DeploymentStatus {
            correlation_id: correlation_of(app).to_string(),
            rings,
            observed: ObservedState {
                version: most_common_version(&installed_versions, delivered),
                assigned_groups,
                assigned_devices,
                installed_versions,
            },
        }
    }
}

/// Starts installing `version` on a device unless it runs it or is installing it.
/// Returns whether an attempt started.
pub fn push_version(
    device: &mut Device,
    device_id: &str,
    version: TextId,
    now: DateTime<Utc>,
    draw: &AttemptDraw<'_>,
) -> bool {
    let view = device.view(now, Some(version));
    let wanted = Action::Install(version);
    let runs_it = view.installed_version == Some(version) && view.in_flight.is_none();
    if runs_it || view.in_flight == Some(wanted) {
        return false;
    }
    device.start(device_id, wanted, now, draw);
    true
}

pub fn correlation_of(app: &SimApp) -> &str {
    app.notes
        .strip_prefix(CORRELATION_NOTE_PREFIX)
        .unwrap_or(&app.notes)
}

/// `delivered`: the delivered version's text id, `None` when nothing is
/// delivered or no device holds it.
fn count_device(status: &mut RingStatus, view: &View, delivered: Option<TextId>, texts: &Texts) {
    status.targeted += 1;
    if delivered.is_some() && view.installed_version == delivered {
        status.installed += 1;
    } else if let (Some(reason), None) = (view.failed_reason, view.in_flight) {
        status.failed += 1;
        let reason = texts.get(reason);
        match status.failure_reasons.get_mut(reason) {
            Some(count) => *count += 1,
            None => {
                status.failure_reasons.insert(reason.to_owned(), 1);
            }
        }
    } else {
        status.pending += 1;
    }
    status.first_install_at = earliest(status.first_install_at, view.first_install_at);
    status.last_report_at = status.last_report_at.max(view.last_report_at);
}

fn earliest(first: Option<DateTime<Utc>>, second: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (first, second) {
        (Some(first), Some(second)) => Some(first.min(second)),
        (first, second) => first.or(second),
    }
}

/// The version most devices run; a tie goes to the delivered version, then to the
/// highest in text order, so the answer never depends on iteration luck.
fn most_common_version(
    installed: &BTreeMap<String, u32>,
    delivered: Option<&str>,
) -> Option<String> {
    installed
        .iter()
        .max_by_key(|(version, count)| {
            (
                **count,
                Some(version.as_str()) == delivered,
                version.as_str(),
            )
        })
        .map(|(version, _)| version.clone())
}
