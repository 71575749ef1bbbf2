//! Who may do what: the seven scopes of the design, each limited to the
//! caller's acquisition boundaries and business units.
//!
//! Pure: a caller, an action and what it is aimed at in; a grant (the role
//! that allows it) or a refusal with a reason out. [`RULES`] is the one
//! table `docs/api.md` prints and `tests/api_rbac.rs` checks cell by cell.
//!
//! - `admin` does everything, everywhere;
//! - `auditor` reads everything (evidence too) and writes nothing;
//! - `publisher` reads and holds / resumes / rolls back its own segments;
//! - `packaging` reads its segments and may hold / resume / roll back a
//!   rollout only while it is still in the first ring (the staging ring):
//!   production rings are read-only to it;
//! - `cab-approver` and `security-reviewer` read their segments and their
//!   evidence; approvals and exceptions are made in Git, never here;
//!   a security reviewer may open and resolve incidents in its segments;
//! - `endpoint-ops` reads its segments (not evidence), holds, resumes and
//!   rolls back there, acknowledges or tickets drift, opens and resolves
//!   incidents, and may trigger a reconciliation (remediation).

use crate::model::{Role, Scope};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Intents, rollouts, the approval queue, exceptions, drift, events,
    /// incidents, plane health, the rules in force.
    Read,
    /// Evidence packs and their signatures.
    ReadEvidence,
    Hold,
    Resume,
    Rollback,
    /// Acknowledge or ticket a drift finding.
    AcknowledgeDrift,
    /// Open or resolve an incident.
    ManageIncident,
    /// Run a drift reconciliation now.
    Reconcile,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::ReadEvidence,
        Action::Hold,
        Action::Resume,
        Action::Rollback,
        Action::AcknowledgeDrift,
        Action::ManageIncident,
        Action::Reconcile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ReadEvidence => "read_evidence",
            Action::Hold => "hold",
            Action::Resume => "resume",
            Action::Rollback => "rollback",
            Action::AcknowledgeDrift => "acknowledge_drift",
            Action::ManageIncident => "manage_incident",
            Action::Reconcile => "reconcile",
        }
    }

    /// Whether the action changes anything.
    pub fn is_write(self) -> bool {
        !matches!(self, Action::Read | Action::ReadEvidence)
    }
}

/// How far a role's permission for an action reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Refused.
    Never,
    /// Everywhere, whatever the caller's scope.
    Everywhere,
    /// Only inside the caller's acquisition boundaries and business units.
    InScope,
    /// Inside the caller's scope, and only while the rollout has not left
    /// its first (staging) ring.
    StagingInScope,
}

/// The scope name of a role, as in Entra app roles and the design.
pub fn scope_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "control-plane.admin",
        Role::Packaging => "control-plane.packaging",
        Role::Publisher => "control-plane.publisher",
        Role::CabApprover => "control-plane.cab-approver",
        Role::SecurityReviewer => "control-plane.security-reviewer",
        Role::EndpointOps => "control-plane.endpoint-ops",
        Role::Auditor => "control-plane.auditor",
    }
}

/// The role of a scope name (`control-plane.publisher`), if it is one of the seven.
pub fn role_of_scope(name: &str) -> Option<Role> {
    ROLES.into_iter().find(|role| scope_name(*role) == name)
}

/// The seven roles, in the table's order.
pub const ROLES: [Role; 7] = [
    Role::Admin,
    Role::Packaging,
    Role::Publisher,
    Role::CabApprover,
    Role::SecurityReviewer,
    Role::EndpointOps,
    Role::Auditor,
];

/// The table: how far each role reaches for each action.
pub fn reach(role: Role, action: Action) -> Reach {
    use Action::*;
    use Reach::*;
    match (role, action) {
        (Role::Admin, _) => Everywhere,
        (Role::Auditor, Read | ReadEvidence) => Everywhere,
        (Role::Auditor, _) => Never,
        (_, Read) => InScope,
        (Role::CabApprover | Role::SecurityReviewer, ReadEvidence) => InScope,
        (_, ReadEvidence) => Never,
        (Role::Publisher | Role::EndpointOps, Hold | Resume | Rollback) => InScope,
        (Role::Packaging, Hold | Resume | Rollback) => StagingInScope,
        (_, Hold | Resume | Rollback) => Never,
        (Role::EndpointOps, AcknowledgeDrift) => InScope,
        (_, AcknowledgeDrift) => Never,
        (Role::EndpointOps | Role::SecurityReviewer, ManageIncident) => InScope,
        (_, ManageIncident) => Never,
        (Role::EndpointOps, Reconcile) => Everywhere,
        (_, Reconcile) => Never,
    }
}

/// The table of [`reach`] as Markdown, as `docs/api.md` prints it (a test
/// checks the document holds exactly this).
pub fn markdown_table() -> String {
    let mut out = String::from("| action |");
    for role in ROLES {
        out.push_str(&format!(" `{}` |", scope_name(role)));
    }
    out.push_str("\n|---|");
    for _ in ROLES {
        out.push_str("---|");
    }
    out.push('\n');
    for action in Action::ALL {
        out.push_str(&format!("| `{}` |", action.as_str()));
        for role in ROLES {
            out.push_str(match reach(role, action) {
                Reach::Never => " no |",
                Reach::Everywhere => " everywhere |",
                Reach::InScope => " own scope |",
                Reach::StagingInScope => " own scope, first ring only |",
            });
        }
        out.push('\n');
    }
    out
}

/// One segment of the tenant: what an intent, incident or drift targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub acquisition_boundary: String,
    /// `None`: every business unit (an incident naming no business unit).
    pub business_unit: Option<String>,
}

/// What an action is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nothing segmented (the rules in force, plane health, a reconciliation).
    Tenant,
    /// A segment; `staging` tells whether the rollout there is still in its
    /// first ring (or has not started).
    Segment { segment: Segment, staging: bool },
}

/// What the caller holds: its roles and the scope they apply to.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder<'a> {
    pub principal_id: &'a str,
    pub roles: &'a BTreeSet<Role>,
    pub scope: &'a Scope,
}

/// Why a request was refused (the 403's body says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.reason)
    }
}

fn allows(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

/// Whether `scope` covers `segment` (a segment of every business unit is
/// covered only by a scope of every business unit).
pub fn covers(scope: &Scope, segment: &Segment) -> bool {
    // An incident names a business unit but no acquisition boundary
    // (`*`): any boundary of the scope will do.
    let boundary = segment.acquisition_boundary == "*" && !scope.acquisition_boundaries.is_empty()
        || allows(&scope.acquisition_boundaries, &segment.acquisition_boundary);
    boundary
        && match &segment.business_unit {
            Some(unit) => allows(&scope.business_units, unit),
            None => scope.business_units.iter().any(|unit| unit == "*"),
        }
}

fn describe(segment: &Segment) -> String {
    format!(
        "{}/{}",
        segment.acquisition_boundary,
        segment.business_unit.as_deref().unwrap_or("*")
    )
}

/// May `holder` do `action` on `target`? The grant names the role that
/// allows it (the first in table order); a refusal says why.
pub fn authorise(holder: &Holder<'_>, action: Action, target: &Target) -> Result<Role, Refusal> {
    let mut reasons = Vec::new();
    for role in ROLES.into_iter().filter(|role| holder.roles.contains(role)) {
        let reach = reach(role, action);
        let verdict = match (reach, target) {
            (Reach::Never, _) => Err(format!("{} may not {}", scope_name(role), action.as_str())),
            (Reach::Everywhere, _) => Ok(()),
            (Reach::InScope | Reach::StagingInScope, Target::Tenant) => Err(format!(
                "{} may {} only inside its scope, and this is tenant-wide",
                scope_name(role),
                action.as_str()
            )),
            (Reach::InScope | Reach::StagingInScope, Target::Segment { segment, staging }) => {
                if !covers(holder.scope, segment) {
                    Err(format!(
                        "{} of {} covers {}/{}, not {}",
                        scope_name(role),
                        holder.principal_id,
                        holder.scope.acquisition_boundaries.join(","),
                        holder.scope.business_units.join(","),
                        describe(segment)
                    ))
                } else if reach == Reach::StagingInScope && !staging {
                    Err(format!(
                        "{} is read-only for production rings: the rollout has left its first ring",
                        scope_name(role)
                    ))
                } else {
                    Ok(())
                }
            }
        };
        match verdict {
            Ok(()) => return Ok(role),
            Err(reason) => reasons.push(reason),
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("{} holds no role", holder.principal_id));
    }
    Err(Refusal {
        reason: format!(
            "{} may not {}: {}",
            holder.principal_id,
            action.as_str(),
            reasons.join("; ")
        ),
    })
}

/// Whether `holder` may read what is in `segment` (list filtering).
pub fn may_read(holder: &Holder<'_>, action: Action, segment: Option<&Segment>) -> bool {
    let target = match segment {
        Some(segment) => Target::Segment {
            segment: segment.clone(),
            staging: true,
        },
        None => Target::Tenant,
    };
    match authorise(holder, action, &target) {
        Ok(_) => true,
        // What belongs to no segment is readable by every role that reads.
        Err(_) if segment.is_none() => holder
            .roles
            .iter()
            .any(|role| reach(*role, action) != Reach::Never),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(boundaries: &[&str], units: &[&str]) -> Scope {
        Scope {
            acquisition_boundaries: boundaries.iter().map(|s| s.to_string()).collect(),
            business_units: units.iter().map(|s| s.to_string()).collect(),
            sites: None,
        }
    }

    fn segment(boundary: &str, unit: &str) -> Target {
        Target::Segment {
            segment: Segment {
                acquisition_boundary: boundary.into(),
                business_unit: Some(unit.into()),
            },
            staging: false,
        }
    }

    #[test]
    fn a_finance_publisher_holds_finance_only() {
        let roles = BTreeSet::from([Role::Publisher]);
        let scope = scope(&["acq-001"], &["bu-finance"]);
        let holder = Holder {
            principal_id: "alice",
            roles: &roles,
            scope: &scope,
        };
        assert_eq!(
            authorise(&holder, Action::Hold, &segment("acq-001", "bu-finance")),
            Ok(Role::Publisher)
        );
        let refused = authorise(&holder, Action::Hold, &segment("acq-001", "bu-hr")).unwrap_err();
        assert!(refused.reason.contains("not acq-001/bu-hr"), "{refused}");
    }

    #[test]
    fn every_role_reads_something_and_only_admin_and_auditor_read_everywhere() {
        for role in ROLES {
            let everywhere = reach(role, Action::Read) == Reach::Everywhere;
            assert_eq!(everywhere, matches!(role, Role::Admin | Role::Auditor));
        }
    }

    #[test]
    fn the_auditor_writes_nothing() {
        for action in Action::ALL.into_iter().filter(|a| a.is_write()) {
            assert_eq!(reach(Role::Auditor, action), Reach::Never, "{action:?}");
        }
    }
}
