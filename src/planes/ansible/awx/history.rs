//! `history`: a deployment on AWX is the jobs ringmaster launched for it.
//!
//! AWX has no app or assignment object and no idempotency key. Every launch
//! carries the correlation id and what the launch means in its `extra_vars`
//! (`ringmaster_correlation_id`, `ringmaster_action`, `ringmaster_ring`,
//! `ringmaster_groups`, ...), and the controller keeps each job with them. So
//! the jobs, read back and ordered by id, are the plane's record of the
//! deployment: the rings published (publish jobs), and what remediation did
//! (uninstall, rollback, pin jobs). Host results come from each finished
//! job's `job_host_summaries`. Everything here is pure: the connector fetches,
//! this module decides.

use super::{HostSummary, JobStatus, JobSummary};
use crate::planes::ansible::deployment::{Deployment, DeploymentState, RingRecord};
use crate::planes::{DeploymentStatus, ObservedState, RingStatus};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The extra variable that carries the correlation id.
pub const CORRELATION_VAR: &str = "ringmaster_correlation_id";

/// What a launch was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Install template: a ring's first install.
    Publish,
    /// Install template: the delivered version again, on hosts lacking it.
    Redeploy,
    /// Install template: an earlier version on every assigned host.
    Rollback,
    /// Uninstall template on every host of the deployment.
    Uninstall,
    /// Uninstall template on the rings after the pinned one (or the verify
    /// template, changing nothing, when no ring follows it).
    Pin,
    /// Verify template in check mode: which hosts would change.
    Verify,
    /// Verify template in check mode, changing nothing: records that the
    /// deployment was halted (its unfinished install jobs were canceled).
    Halt,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Redeploy => "redeploy",
            Action::Rollback => "rollback",
            Action::Uninstall => "uninstall",
            Action::Pin => "pin",
            Action::Verify => "verify",
            Action::Halt => "halt",
        }
    }

    fn parse(text: &str) -> Option<Action> {
        [
            Action::Publish,
            Action::Redeploy,
            Action::Rollback,
            Action::Uninstall,
            Action::Pin,
            Action::Verify,
            Action::Halt,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
    }

    /// Whether the job installs its version.
    pub fn installs(self) -> bool {
        matches!(self, Action::Publish | Action::Redeploy | Action::Rollback)
    }
}

/// What one launch says about itself, in its `extra_vars`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub correlation_id: String,
    pub application_id: String,
    pub version: String,
    pub action: Action,
    pub ring: String,
    pub groups: Vec<String>,
    pub exclusions: Vec<String>,
}

impl Launch {
    /// The `extra_vars` of the launch; the shipped playbooks read
    /// `ringmaster_app` and `ringmaster_version`.
    pub fn extra_vars(&self) -> Map<String, Value> {
        let value = json!({
            CORRELATION_VAR: self.correlation_id,
            "ringmaster_app": self.application_id,
            "ringmaster_version": self.version,
            "ringmaster_action": self.action.as_str(),
            "ringmaster_ring": self.ring,
            "ringmaster_groups": self.groups,
            "ringmaster_exclusions": self.exclusions,
        });
        value.as_object().cloned().unwrap_or_default()
    }
}

/// A job of the deployment as the controller holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedJob {
    pub id: u64,
    pub status: JobStatus,
    pub finished: Option<DateTime<Utc>>,
    pub limit: String,
    pub launch: Launch,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl TaggedJob {
    /// The job, when its `extra_vars` carry exactly `correlation_id` (a
    /// server-side `icontains` filter may match more).
    pub fn of(summary: &JobSummary, correlation_id: &str) -> Option<TaggedJob> {
        let vars = summary.variables();
        let text = |name: &str| vars.get(name).and_then(Value::as_str).map(str::to_string);
        if text(CORRELATION_VAR)? != correlation_id {
            return None;
        }
        Some(TaggedJob {
            id: summary.id,
            status: summary.status,
            finished: summary.finished,
            limit: summary.limit.clone(),
            launch: Launch {
                correlation_id: correlation_id.to_string(),
                application_id: text("ringmaster_app")?,
                version: text("ringmaster_version")?,
                action: Action::parse(&text("ringmaster_action")?)?,
                ring: text("ringmaster_ring").unwrap_or_default(),
                groups: strings(vars.get("ringmaster_groups")),
                exclusions: strings(vars.get("ringmaster_exclusions")),
            },
        })
    }

    /// Finished as of `now`: a job the controller finished later than the
    /// caller's `now` has not reported yet.
    pub fn finished_by(&self, now: DateTime<Utc>) -> bool {
        self.status.is_final() && self.finished.is_none_or(|finished| finished <= now)
    }
}

/// The Ansible host pattern of groups less excluded groups: `a:b:!c`.
pub fn limit_of(groups: &[String], exclusions: &[String]) -> String {
    groups
        .iter()
        .cloned()
        .chain(exclusions.iter().map(|group| format!("!{group}")))
        .collect::<Vec<_>>()
        .join(":")
}

/// The hosts a limit names: the union of its groups and host names, less
/// its `!` terms (`&` terms are not used by ringmaster and are ignored).
pub fn hosts_of_limit(limit: &str, groups: &BTreeMap<String, Vec<String>>) -> BTreeSet<String> {
    let expand = |term: &str| -> Vec<String> {
        match groups.get(term) {
            Some(hosts) => hosts.clone(),
            None => vec![term.to_string()],
        }
    };
    let terms: Vec<&str> = limit
        .split([':', ','])
        .map(str::trim)
        .filter(|term| !term.is_empty() && !term.starts_with('&'))
        .collect();
    let excluded: BTreeSet<String> = terms
        .iter()
        .filter_map(|term| term.strip_prefix('!'))
        .flat_map(expand)
        .collect();
    terms
        .iter()
        .filter(|term| !term.starts_with('!'))
        .flat_map(|term| expand(term))
        .filter(|host| !excluded.contains(host))
        .collect()
}

/// The hosts of `groups` less the hosts of `exclusions`.
pub fn hosts_of(
    groups: &[String],
    exclusions: &[String],
    inventory: &BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let excluded: BTreeSet<&String> = exclusions
        .iter()
        .filter_map(|group| inventory.get(group))
        .flatten()
        .collect();
    groups
        .iter()
        .filter_map(|group| inventory.get(group))
        .flatten()
        .filter(|host| !excluded.contains(host))
        .cloned()
        .collect()
}

/// The deployment the jobs record, `None` when no ring was ever published.
pub fn deployment(correlation_id: &str, jobs: &[TaggedJob]) -> Option<Deployment> {
    let first = jobs
        .iter()
        .find(|job| job.launch.action == Action::Publish)?;
    let mut deployment = Deployment {
        correlation_id: correlation_id.to_string(),
        application_id: first.launch.application_id.clone(),
        version: first.launch.version.clone(),
        exclusions: Vec::new(),
        rings: Vec::new(),
        state: DeploymentState::Active,
    };
    for job in jobs {
        let launch = &job.launch;
        match launch.action {
            Action::Publish => {
                if !deployment.rings.iter().any(|ring| ring.ring == launch.ring) {
                    deployment.rings.push(RingRecord {
                        ring: launch.ring.clone(),
                        groups: launch.groups.clone(),
                        runs: Vec::new(),
                    });
                }
                for group in &launch.exclusions {
                    if !deployment.exclusions.contains(group) {
                        deployment.exclusions.push(group.clone());
                    }
                }
            }
            Action::Uninstall => deployment.state = DeploymentState::Uninstalled,
            Action::Rollback => {
                deployment.state = DeploymentState::RolledBack {
                    to_version: launch.version.clone(),
                }
            }
            Action::Pin => {
                deployment.state = DeploymentState::Pinned {
                    ring: launch.ring.clone(),
                }
            }
            Action::Halt => deployment.state = DeploymentState::Halted,
            Action::Redeploy | Action::Verify => {}
        }
    }
    Some(deployment)
}

/// Where a host stands with the version the deployment delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    Installed,
    /// Its last attempt at the version failed, for this reason.
    Failed(String),
    /// A job that will install the version is not finished.
    InFlight,
    /// No job reached it, or it runs something else.
    NotReported,
}

/// What the jobs of a deployment say about its hosts, as of `now`.
pub struct Evidence<'a> {
    jobs: &'a [TaggedJob],
    /// Host summaries of the finished jobs, per job id.
    results: &'a BTreeMap<u64, Vec<HostSummary>>,
    /// Inventory group → host names, as the inventory holds them now.
    inventory: &'a BTreeMap<String, Vec<String>>,
    now: DateTime<Utc>,
    /// The hosts each job's limit names, per job id.
    coverage: BTreeMap<u64, BTreeSet<String>>,
}

fn failure_of(row: &HostSummary) -> Option<&'static str> {
    if row.dark > 0 {
        Some("unreachable")
    } else if row.failures > 0 || row.failed {
        Some("task_failed")
    } else {
        None
    }
}

impl<'a> Evidence<'a> {
    pub fn new(
        jobs: &'a [TaggedJob],
        results: &'a BTreeMap<u64, Vec<HostSummary>>,
        inventory: &'a BTreeMap<String, Vec<String>>,
        now: DateTime<Utc>,
    ) -> Evidence<'a> {
        let coverage = jobs
            .iter()
            .map(|job| (job.id, hosts_of_limit(&job.limit, inventory)))
            .collect();
        Evidence {
            jobs,
            results,
            inventory,
            now,
            coverage,
        }
    }

    fn covers(&self, job: &TaggedJob, host: &str) -> bool {
        self.coverage
            .get(&job.id)
            .is_some_and(|hosts| hosts.contains(host))
    }

    fn row(&self, job: &TaggedJob, host: &str) -> Option<&HostSummary> {
        self.results
            .get(&job.id)?
            .iter()
            .find(|row| row.host_name == host)
    }

    /// The version the host runs as far as finished jobs tell, and when
    /// that was last reported.
    pub fn version_of(&self, host: &str) -> Option<String> {
        let mut version = None;
        for job in self.jobs.iter().filter(|job| job.finished_by(self.now)) {
            let Some(row) = self.row(job, host) else {
                continue;
            };
            if failure_of(row).is_some() {
                continue;
            }
            match job.launch.action {
                action if action.installs() => version = Some(job.launch.version.clone()),
                Action::Uninstall | Action::Pin => version = None,
                Action::Verify if row.changed > 0 => version = None,
                Action::Verify => version = Some(job.launch.version.clone()),
                _ => {}
            }
        }
        version
    }

    /// Whether a job not finished as of `now` targets the host.
    pub fn in_flight(&self, host: &str) -> bool {
        self.jobs
            .iter()
            .any(|job| !job.finished_by(self.now) && self.covers(job, host))
    }

    pub fn state_of(&self, host: &str, delivered: &str) -> HostState {
        if self.version_of(host).as_deref() == Some(delivered) {
            return HostState::Installed;
        }
        let last = self.jobs.iter().rev().find(|job| {
            job.launch.action.installs()
                && job.launch.version == delivered
                && self.covers(job, host)
        });
        let Some(job) = last else {
            return HostState::NotReported;
        };
        if !job.finished_by(self.now) {
            return HostState::InFlight;
        }
        match self.row(job, host) {
            Some(row) => match failure_of(row) {
                Some(reason) => HostState::Failed(reason.to_string()),
                None => HostState::NotReported,
            },
            None => match job.status {
                JobStatus::Error => HostState::Failed("job_error".into()),
                JobStatus::Canceled => HostState::Failed("job_canceled".into()),
                _ => HostState::NotReported,
            },
        }
    }

    /// When the host last reported anything, and its first successful
    /// install of `delivered`.
    fn reports(
        &self,
        host: &str,
        delivered: &str,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let mut last = None;
        let mut first_install = None;
        for job in self.jobs.iter().filter(|job| job.finished_by(self.now)) {
            let Some(row) = self.row(job, host) else {
                continue;
            };
            let at = job.finished.unwrap_or(self.now);
            last = last.max(Some(at));
            if job.launch.action.installs()
                && job.launch.version == delivered
                && failure_of(row).is_none()
                && first_install.is_none()
            {
                first_install = Some(at);
            }
        }
        (last, first_install)
    }

    /// The status the contract asks for: counts per ring over the hosts its
    /// groups hold now, and what the hosts run.
    pub fn status(&self, deployment: &Deployment) -> DeploymentStatus {
        let delivered = deployment.delivered_version().to_string();
        let mut rings = BTreeMap::new();
        for (index, record) in deployment.rings.iter().enumerate() {
            let mut ring = RingStatus::default();
            if deployment.ring_active(index) {
                for host in hosts_of(&record.groups, &deployment.exclusions, self.inventory) {
                    ring.targeted += 1;
                    match self.state_of(&host, &delivered) {
                        HostState::Installed => ring.installed += 1,
                        HostState::Failed(reason) => {
                            ring.failed += 1;
                            *ring.failure_reasons.entry(reason).or_default() += 1;
                        }
                        HostState::InFlight | HostState::NotReported => ring.pending += 1,
                    }
                    let (last, first_install) = self.reports(&host, &delivered);
                    ring.last_report_at = ring.last_report_at.max(last);
                    if let Some(at) = first_install {
                        ring.first_install_at =
                            Some(ring.first_install_at.map_or(at, |earlier| earlier.min(at)));
                    }
                }
                if ring.installed == 0 {
                    ring.first_install_at = None;
                }
            }
            rings.insert(record.ring.clone(), ring);
        }
        let assigned_groups = deployment.assigned_groups();
        let assigned_devices =
            hosts_of(&assigned_groups, &deployment.exclusions, self.inventory).len() as u32;
        let every_group: Vec<String> = deployment
            .rings
            .iter()
            .flat_map(|record| record.groups.iter().cloned())
            .collect();
        let mut installed_versions: BTreeMap<String, u32> = BTreeMap::new();
        for host in hosts_of(&every_group, &deployment.exclusions, self.inventory) {
            if let Some(version) = self.version_of(&host) {
                *installed_versions.entry(version).or_default() += 1;
            }
        }
        let version = installed_versions
            .iter()
            .max_by_key(|(version, count)| (**count, **version == delivered))
            .map(|(version, _)| version.clone());
        DeploymentStatus {
            correlation_id: deployment.correlation_id.clone(),
            rings,
            observed: ObservedState {
                version,
                assigned_groups,
                assigned_devices,
                installed_versions,
            },
        }
    }
}
