//! Drift detection: compare what a plane holds with what an intent wants.
//!
//! Pure and idempotent: the same desired and observed states always give the
//! same drifts, so running it every hour (or twice by accident) is harmless.
//! The daemon queries the planes, calls [`compare`], records each drift as an
//! event and an evidence record, and remediates through the plane when the
//! intent's (or the config's) remediation policy is `auto`; otherwise it
//! opens a remediation ticket (recorded the same way).

use crate::model::RemediationPolicy;
use crate::planes::{DeploymentStatus, Remediation};
use serde::Serialize;
use serde_json::{Value, json};

/// What the intent wants on the plane, from the rings it has completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredState {
    pub version: String,
    /// Plane group ids of every ring rolled out so far.
    pub groups: Vec<String>,
    pub assigned_devices: u32,
}

/// The seed's drift types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftType {
    AssignmentMissing,
    VersionMismatch,
    ScopeMismatch,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub drift_type: DriftType,
    pub desired_state: Value,
    pub actual_state: Value,
    pub detail: String,
}

/// Every way the plane's state differs from `desired`.
///
/// Devices still installing or whose install failed run another version by
/// design (the gates judge those); only devices beyond them count as
/// version drift.
pub fn compare(desired: &DesiredState, status: &DeploymentStatus) -> Vec<Drift> {
    let observed = &status.observed;
    let mut drifts = Vec::new();
    let missing: Vec<&String> = desired
        .groups
        .iter()
        .filter(|group| !observed.assigned_groups.contains(group))
        .collect();
    if !missing.is_empty() {
        drifts.push(Drift {
            drift_type: DriftType::AssignmentMissing,
            desired_state: json!({"version": desired.version, "assigned_groups": desired.groups, "assigned_devices": desired.assigned_devices}),
            actual_state: json!({"assigned_groups": observed.assigned_groups, "assigned_devices": observed.assigned_devices}),
            detail: format!("assignment to {} missing on the plane", join(&missing)),
        });
    }
    let extra: Vec<&String> = observed
        .assigned_groups
        .iter()
        .filter(|group| !desired.groups.contains(group))
        .collect();
    if !extra.is_empty() {
        drifts.push(Drift {
            drift_type: DriftType::ScopeMismatch,
            desired_state: json!({"assigned_groups": desired.groups}),
            actual_state: json!({"assigned_groups": observed.assigned_groups}),
            detail: format!("assigned to {} beyond the intent's scope", join(&extra)),
        });
    }
    let other_versions: Vec<(&String, &u32)> = observed
        .installed_versions
        .iter()
        .filter(|(version, count)| **version != desired.version && **count > 0)
        .collect();
    let devices: u32 = other_versions.iter().map(|(_, count)| **count).sum();
    let in_flight: u32 = status
        .rings
        .values()
        .map(|ring| ring.pending + ring.failed)
        .sum();
    if devices > in_flight {
        let devices = devices - in_flight;
        drifts.push(Drift {
            drift_type: DriftType::VersionMismatch,
            desired_state: json!({"version": desired.version}),
            actual_state: json!({"version": observed.version, "installed_versions": observed.installed_versions}),
            detail: format!(
                "{devices} device(s) run {} instead of {}",
                other_versions.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>().join(", "),
                desired.version
            ),
        });
    }
    drifts
}

fn join(groups: &[&String]) -> String {
    groups
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to do about drifts under a remediation policy: `auto` redeploys
/// (restores missing assignments, removes foreign ones, reinstalls the
/// intended version); `ticket` does nothing on the plane.
pub fn remediation_for(drifts: &[Drift], policy: RemediationPolicy) -> Option<Remediation> {
    match (drifts.is_empty(), policy) {
        (true, _) | (false, RemediationPolicy::Ticket) => None,
        (false, RemediationPolicy::Auto) => Some(Remediation::Redeploy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn desired() -> DesiredState {
        DesiredState {
            version: "2.0.0".into(),
            groups: vec!["g-lab".into(), "g-canary".into()],
            assigned_devices: 50,
        }
    }

    fn status(groups: &[&str], versions: &[(&str, u32)], pending: u32) -> DeploymentStatus {
        let ring = crate::planes::RingStatus {
            targeted: 50,
            pending,
            ..Default::default()
        };
        DeploymentStatus {
            correlation_id: "c".into(),
            rings: BTreeMap::from([("ring-1-canary".to_string(), ring)]),
            observed: crate::planes::ObservedState {
                version: versions.first().map(|(v, _)| v.to_string()),
                assigned_groups: groups.iter().map(|g| g.to_string()).collect(),
                assigned_devices: 50,
                installed_versions: versions
                    .iter()
                    .map(|(v, n)| (v.to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
            },
        }
    }

    fn observed(groups: &[&str], versions: &[(&str, u32)]) -> DeploymentStatus {
        status(groups, versions, 0)
    }

    fn check(status: DeploymentStatus, expected: &[DriftType]) {
        let drifts = compare(&desired(), &status);
        let types: Vec<DriftType> = drifts.iter().map(|d| d.drift_type).collect();
        assert_eq!(types, expected, "{drifts:#?}");
    }

    #[test]
    fn drift_table() {
        check(observed(&["g-lab", "g-canary"], &[("2.0.0", 50)]), &[]);
        check(
            observed(&["g-lab"], &[("2.0.0", 10)]),
            &[DriftType::AssignmentMissing],
        );
        check(
            observed(&["g-lab", "g-canary", "g-global"], &[("2.0.0", 50)]),
            &[DriftType::ScopeMismatch],
        );
        check(
            observed(&["g-lab", "g-canary"], &[("2.0.0", 45), ("1.9.0", 5)]),
            &[DriftType::VersionMismatch],
        );
        check(
            observed(&["g-canary", "g-other"], &[("1.9.0", 5)]),
            &[
                DriftType::AssignmentMissing,
                DriftType::ScopeMismatch,
                DriftType::VersionMismatch,
            ],
        );
    }

    #[test]
    fn devices_still_installing_are_not_drift() {
        check(
            status(&["g-lab", "g-canary"], &[("2.0.0", 45), ("1.9.0", 5)], 5),
            &[],
        );
        check(
            status(&["g-lab", "g-canary"], &[("2.0.0", 40), ("1.9.0", 10)], 5),
            &[DriftType::VersionMismatch],
        );
    }

    #[test]
    fn comparing_twice_gives_the_same_answer() {
        let status = observed(&["g-lab"], &[("1.9.0", 3)]);
        assert_eq!(compare(&desired(), &status), compare(&desired(), &status));
    }

    #[test]
    fn remediation_follows_the_policy() {
        let drifts = compare(&desired(), &observed(&["g-lab"], &[]));
        assert_eq!(
            remediation_for(&drifts, RemediationPolicy::Auto),
            Some(Remediation::Redeploy)
        );
        assert_eq!(remediation_for(&drifts, RemediationPolicy::Ticket), None);
        assert_eq!(remediation_for(&[], RemediationPolicy::Auto), None);
    }
}
