//! `sim`: an in-process execution plane with a simulated fleet of devices.
//!
//! It is what `ringmaster demo` runs on and the test double of the orchestrator and
//! the reconciler. One [`SimConnector`] stands in for one plane (its
//! [`SimConfig::plane`]); its groups hold numbered devices, registered with
//! [`SimConnector::add_group`] (or [`SimConnector::register_entitlement`]).
//!
//! Publishing assigns the ring's groups; each device then installs after a random
//! delay and succeeds with the probability set for the (application, version). All
//! draws come from the seed, so a seed is a fleet. Nothing reads a clock: every call
//! takes `now`, and asking again with a later `now` is how a test lets time pass.
//!
//! Tests can queue failures of the next calls ([`Fault`]) and change the plane behind
//! the connector's back ([`Drift`]). Handles are cheap clones of one shared fleet;
//! with a `state_file`, every change is written through to it, so a restarted
//! process that opens the same file sees the same plane.
//!
//! The connector obeys `docs/connectors.md` like any other.

mod device;
mod devices;
mod fleet;
mod injection;
mod operations;
mod persist;
mod shared;
#[cfg(test)]
mod tests;

pub use device::FAILURE_REASONS;
pub use injection::{Drift, Fault};

use crate::model::{EntitlementRule, Plane};
use crate::planes::{
    ConnectorError, DeploymentStatus, ErrorCode, ExecutionPlaneConnector, PublishRequest,
    PublishResult, Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use fleet::SimFleet;
use persist::{Call, Change};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How a sim plane behaves. In a daemon config: `{"type": "sim", "plane": "intune",
/// "seed": 7, "install_delay_seconds": [600, 14400], ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The plane this sim stands in for; requests for another plane are refused.
    pub plane: Plane,
    #[serde(default)]
    pub seed: u64,
    /// Each device reports between `min` and `max` after its assignment.
    #[serde(
        rename = "install_delay_seconds",
        with = "crate::planes::seconds::pair",
        default = "default_install_delay"
    )]
    pub install_delay: (Duration, Duration),
    /// Install success probability of any (application, version) not set otherwise.
    #[serde(default = "default_success_rate")]
    pub default_success_rate: f64,
    /// Where the fleet lives between processes. When the file exists it wins over
    /// every other field; when it does not, it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,
}

fn default_install_delay() -> (Duration, Duration) {
    (
        Duration::from_secs(10 * 60),
        Duration::from_secs(4 * 60 * 60),
    )
}

fn default_success_rate() -> f64 {
    0.98
}

impl SimConfig {
    /// Defaults: seed 0, installs reported 10 min to 4 h after assignment, 98 %
    /// success, in memory only.
    pub fn for_plane(plane: Plane) -> SimConfig {
        SimConfig {
            plane,
            seed: 0,
            install_delay: default_install_delay(),
            default_success_rate: default_success_rate(),
            state_file: None,
        }
    }
}

/// What went wrong driving the sim itself (not a plane answer: that is a
/// [`ConnectorError`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid sim configuration: {0}")]
    InvalidConfig(String),
    #[error("sim state file {}: {source}", path.display())]
    StateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sim state file {} does not hold a sim fleet: {source}", path.display())]
    StateFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("this sim connector has no state_file to save to; set SimConfig::state_file")]
    NoStateFile,
    #[error("no deployment with correlation id {correlation_id} on this sim plane")]
    UnknownDeployment { correlation_id: String },
    #[error("group {group} is not registered on this sim plane; add it with add_group first")]
    UnknownGroup { group: String },
    #[error("deployment {correlation_id} has no assignment to group {group}")]
    NoSuchAssignment {
        correlation_id: String,
        group: String,
    },
    #[error("deployment {correlation_id} is already assigned to group {group}")]
    AlreadyAssigned {
        correlation_id: String,
        group: String,
    },
    #[error("entitlement {rule} is for plane {found}; this sim connector serves {expected}")]
    PlaneMismatch {
        rule: String,
        expected: &'static str,
        found: &'static str,
    },
}

/// A handle to one simulated plane. Clones share the same fleet.
#[derive(Clone)]
pub struct SimConnector {
    fleet: Arc<Mutex<SimFleet>>,
    /// The state file's journal (`persist`), locked after `fleet`.
    journal: Arc<Mutex<Option<persist::Journal>>>,
    plane: Plane,
    state_file: Option<PathBuf>,
}

impl fmt::Debug for SimConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SimConnector")
            .field("plane", &self.plane)
            .field("state_file", &self.state_file)
            .finish_non_exhaustive()
    }
}

fn validate(config: &SimConfig) -> Result<(), SimError> {
    let rate = config.default_success_rate;
    if !(0.0..=1.0).contains(&rate) {
        return Err(SimError::InvalidConfig(format!(
            "default_success_rate {rate} is not between 0 and 1"
        )));
    }
    let (minimum, maximum) = config.install_delay;
    if minimum > maximum {
        return Err(SimError::InvalidConfig(format!(
            "install delay minimum {minimum:?} is above its maximum {maximum:?}"
        )));
    }
    Ok(())
}

impl SimConnector {
    /// A sim plane as configured, or as its `state_file` left it when that exists.
    pub fn new(config: SimConfig) -> Result<SimConnector, SimError> {
        validate(&config)?;
        if let Some(path) = config.state_file.as_deref().filter(|path| path.exists()) {
            let connector = SimConnector::load(path)?;
            if connector.plane != config.plane {
                return Err(SimError::InvalidConfig(format!(
                    "state file {} holds sim plane {}, the configuration says {}",
                    path.display(),
                    connector.plane.as_str(),
                    config.plane.as_str()
                )));
            }
            return Ok(connector);
        }
        let fleet = SimFleet::new(
            config.plane,
            config.seed,
            config.install_delay,
            config.default_success_rate,
        );
        let connector = SimConnector {
            fleet: Arc::new(Mutex::new(fleet)),
            journal: Arc::new(Mutex::new(None)),
            plane: config.plane,
            state_file: config.state_file,
        };
        if connector.state_file.is_some() {
            connector.save()?;
        }
        Ok(connector)
    }

    /// The sim plane saved in `path`; later changes are written back to it.
    pub fn load(path: &Path) -> Result<SimConnector, SimError> {
        let (fleet, journal) = persist::read(path, apply)?;
        Ok(SimConnector {
            plane: fleet.plane,
            fleet: Arc::new(Mutex::new(fleet)),
            journal: Arc::new(Mutex::new(Some(journal))),
            state_file: Some(path.to_path_buf()),
        })
    }

    /// Writes the whole fleet to its state file now, as a snapshot with an
    /// empty journal (changes are written anyway, journalled).
    pub fn save(&self) -> Result<(), SimError> {
        let path = self.state_file.as_deref().ok_or(SimError::NoStateFile)?;
        let fleet = self.lock();
        let journal = persist::write(path, &fleet)?;
        *self.journal_lock() = Some(journal);
        Ok(())
    }

    pub fn plane(&self) -> Plane {
        self.plane
    }

    pub fn state_file(&self) -> Option<&Path> {
        self.state_file.as_deref()
    }

    /// Registers (or resizes) a plane group of `device_count` devices.
    pub fn add_group(&self, group_id: &str, device_count: u32) -> Result<(), SimError> {
        if group_id.trim().is_empty() {
            return Err(SimError::InvalidConfig("a group id cannot be empty".into()));
        }
        self.change(Change::Groups {
            groups: vec![(group_id.to_string(), device_count)],
        })
    }

    /// Registers the rule's groups, sharing its `expected_devices` among them
    /// (the first groups take the remainder). Exclusion groups are not registered.
    pub fn register_entitlement(&self, rule: &EntitlementRule) -> Result<(), SimError> {
        for (group, devices) in self.entitlement_groups(rule)? {
            self.add_group(&group, devices)?;
        }
        Ok(())
    }

    /// [`register_entitlement`](Self::register_entitlement), writing only when a
    /// group is new or its size changed: what the daemon calls for every
    /// entitlement whenever its snapshot changes.
    pub fn register_entitlement_if_changed(&self, rule: &EntitlementRule) -> Result<(), SimError> {
        let groups = self.entitlement_groups(rule)?;
        if groups.iter().any(|(group, _)| group.trim().is_empty()) {
            return Err(SimError::InvalidConfig("a group id cannot be empty".into()));
        }
        let unchanged = {
            let fleet = self.lock();
            groups
                .iter()
                .all(|(group, devices)| fleet.groups.get(group) == Some(devices))
        };
        if unchanged {
            return Ok(());
        }
        self.change(Change::Groups { groups })
    }

    fn entitlement_groups(&self, rule: &EntitlementRule) -> Result<Vec<(String, u32)>, SimError> {
        if rule.plane != self.plane {
            return Err(SimError::PlaneMismatch {
                rule: rule.id.clone(),
                expected: self.plane.as_str(),
                found: rule.plane.as_str(),
            });
        }
        let group_count = u32::try_from(rule.groups.len().max(1)).unwrap_or(u32::MAX);
        let share = rule.expected_devices / group_count;
        let remainder = rule.expected_devices % group_count;
        Ok((0u32..)
            .zip(&rule.groups)
            .map(|(position, group)| (group.id.clone(), share + u32::from(position < remainder)))
            .collect())
    }

    /// Sets the install success probability of one (application, version), for
    /// attempts started from now on.
    pub fn set_success_rate(
        &self,
        application_id: &str,
        version: &str,
        rate: f64,
    ) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(SimError::InvalidConfig(format!(
                "success rate {rate} for {application_id} {version} is not between 0 and 1"
            )));
        }
        self.change(Change::SuccessRate {
            application_id: application_id.to_string(),
            version: version.to_string(),
            rate,
        })
    }

    /// Queues a failure for the next connector call (of any operation).
    pub fn inject_fault(&self, fault: Fault) -> Result<(), SimError> {
        self.change(Change::Fault { fault, only: None })
    }

    /// Queues a failure for the next publish call only (status queries and
    /// other calls pass), to test how publishing copes with a throttled or
    /// failing plane.
    pub fn inject_publish_fault(&self, fault: Fault) -> Result<(), SimError> {
        self.change(Change::Fault {
            fault,
            only: Some("publish".into()),
        })
    }

    /// Queues a failure for the next remediation call only (rollback,
    /// uninstall, redeploy, pin), to test how a rollback copes with a
    /// throttled or failing plane.
    pub fn inject_remediate_fault(&self, fault: Fault) -> Result<(), SimError> {
        self.change(Change::Fault {
            fault,
            only: Some("remediate".into()),
        })
    }

    /// Changes the plane behind the connector's back, at `now`.
    pub fn inject_drift(
        &self,
        correlation_id: &str,
        drift: Drift,
        now: DateTime<Utc>,
    ) -> Result<(), SimError> {
        self.change(Change::Drift {
            correlation_id: correlation_id.to_string(),
            drift,
            now,
        })
    }

    /// Takes the plane down (every call fails with `fault`, nothing is
    /// applied) or, with `None`, brings it back.
    pub fn set_outage(&self, fault: Option<Fault>) -> Result<(), SimError> {
        self.change(Change::Outage { fault })
    }

    /// How many connector calls were made, of every operation, failed ones
    /// included.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// How many times `publish` was called, failed calls included.
    pub fn publish_calls(&self) -> u64 {
        self.lock().publish_calls
    }

    /// Assignment records the plane holds for this correlation id: one per assigned
    /// group, however many times publish was retried.
    pub fn assignment_count(&self, correlation_id: &str) -> usize {
        self.lock().assignment_count(correlation_id)
    }

    /// The plane's app id for this correlation id, if it exists.
    pub fn external_id(&self, correlation_id: &str) -> Option<String> {
        self.lock()
            .app(correlation_id)
            .map(|app| app.id.to_string())
    }

    fn lock(&self) -> MutexGuard<'_, SimFleet> {
        self.fleet.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn journal_lock(&self) -> MutexGuard<'_, Option<persist::Journal>> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Journals `change` (already applied to `fleet`) when there is a state file.
    fn write_through(&self, change: &Change, fleet: &SimFleet) -> Result<(), SimError> {
        match self.journal_lock().as_mut() {
            Some(journal) => journal.append(change, fleet),
            None => Ok(()),
        }
    }

    /// Applies a change and journals it.
    fn change(&self, change: Change) -> Result<(), SimError> {
        let mut fleet = self.lock();
        apply(&mut fleet, change.clone())?;
        self.write_through(&change, &fleet)
    }

    /// Runs one connector call ([`run_call`]), journalling it when it
    /// changed the fleet, and answers.
    fn call(&self, call: Call) -> Result<Answer, ConnectorError> {
        let mut fleet = self.lock();
        let (answer, journal) = run_call(&mut fleet, &call, false);
        if journal {
            let operation = call.operation();
            let change = Change::Call {
                call,
                calls: fleet.calls,
                publish_calls: fleet.publish_calls,
            };
            self.write_through(&change, &fleet).map_err(|error| {
                ConnectorError::new(
                    ErrorCode::ServiceUnavailable,
                    format!("sim plane could not record {operation}: {error}"),
                )
            })?;
        }
        answer
    }
}

/// What a connector call answered.
enum Answer {
    Published(PublishResult),
    Status(Box<DeploymentStatus>),
    Remediated(RemediationResult),
    Exists(bool),
    /// A read replayed from the journal: not answered again.
    Replayed,
}

/// Applies a journalled change to the fleet: what the live call did, done
/// again (see `persist`).
fn apply(fleet: &mut SimFleet, change: Change) -> Result<(), SimError> {
    match change {
        Change::Groups { groups } => fleet.groups.extend(groups),
        Change::SuccessRate {
            application_id,
            version,
            rate,
        } => {
            fleet
                .success_rates
                .entry(application_id)
                .or_default()
                .insert(version, rate);
        }
        Change::Fault { fault, only } => match only.as_deref() {
            Some("publish") => fleet.publish_faults.push_back(fault),
            Some("remediate") => fleet.remediate_faults.push_back(fault),
            _ => fleet.faults.push_back(fault),
        },
        Change::Drift {
            correlation_id,
            drift,
            now,
        } => fleet.apply_drift(&correlation_id, &drift, now)?,
        Change::Outage { fault } => fleet.outage = fault,
        Change::Call {
            call,
            calls,
            publish_calls,
        } => {
            let _ = run_call(fleet, &call, true);
            fleet.calls = calls;
            fleet.publish_calls = publish_calls;
        }
    }
    Ok(())
}

/// One connector call: takes the next fault, carries the call out unless the
/// fault stops it, and answers, with whether the fleet changed (then the
/// call is journalled). `replay`: a journalled call done again, whose reads
/// are not answered.
fn run_call(
    fleet: &mut SimFleet,
    call: &Call,
    replay: bool,
) -> (Result<Answer, ConnectorError>, bool) {
    let operation = call.operation();
    fleet.calls += 1;
    if operation == "publish" {
        fleet.publish_calls += 1;
    }
    if let Some(fault) = fleet.outage.clone() {
        return (Err(fault.error(operation)), false);
    }
    let targeted = match operation {
        "publish" => fleet.publish_faults.pop_front(),
        "remediate" => fleet.remediate_faults.pop_front(),
        _ => None,
    };
    let fault = targeted.or_else(|| fleet.faults.pop_front());
    let outcome = match &fault {
        Some(fault) if !fault.applies_call() => Err(fault.error(operation)),
        _ => match call {
            Call::Publish { request, now } => fleet.publish(request, *now).map(Answer::Published),
            Call::Remediate {
                correlation_id,
                remediation,
                now,
            } => fleet
                .remediate(correlation_id, remediation, *now)
                .map(Answer::Remediated),
            Call::QueryStatus { .. } | Call::VerifyIdempotency { .. } if replay => {
                Ok(Answer::Replayed)
            }
            Call::QueryStatus {
                correlation_id,
                now,
            } => fleet
                .app(correlation_id)
                .ok_or_else(|| operations::not_found(correlation_id, fleet.plane.as_str()))
                .map(|app| Answer::Status(Box::new(fleet.status(app, *now)))),
            Call::VerifyIdempotency { correlation_id } => {
                Ok(Answer::Exists(fleet.app(correlation_id).is_some()))
            }
        },
    };
    let mutates = matches!(call, Call::Publish { .. } | Call::Remediate { .. });
    let journal = mutates || fault.is_some();
    let answer = match (fault, outcome) {
        (Some(fault), Ok(_)) => Err(fault.error(operation)),
        (_, outcome) => outcome,
    };
    (answer, journal)
}

impl ExecutionPlaneConnector for SimConnector {
    async fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        match self.call(Call::Publish {
            request: Box::new(request.clone()),
            now,
        })? {
            Answer::Published(result) => Ok(result),
            _ => Err(unexpected("publish")),
        }
    }

    async fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        match self.call(Call::QueryStatus {
            correlation_id: correlation_id.to_owned(),
            now,
        })? {
            Answer::Status(status) => Ok(*status),
            _ => Err(unexpected("query_status")),
        }
    }

    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        match self.call(Call::Remediate {
            correlation_id: correlation_id.to_owned(),
            remediation: remediation.clone(),
            now,
        })? {
            Answer::Remediated(result) => Ok(result),
            _ => Err(unexpected("remediate")),
        }
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        match self.call(Call::VerifyIdempotency {
            correlation_id: correlation_id.to_owned(),
        })? {
            Answer::Exists(found) => Ok(found),
            _ => Err(unexpected("verify_idempotency")),
        }
    }
}

/// A call answered with another call's answer: cannot happen (each call
/// answers its own kind), said as a plane error rather than a panic.
fn unexpected(operation: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ServiceUnavailable,
        format!("sim plane answered {operation} with another operation's answer"),
    )
}
