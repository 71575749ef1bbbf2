//! What narrows a deployment below its rings' groups, and whether the plane
//! it goes to can honour it (issue 10, "no silent ignoring").
//!
//! An intent's `target_scope.sites` says "only these sites of the business
//! unit". Every connector publishes a ring to the groups of the ring's
//! entitlement rule; none of them narrows that assignment by site today
//! (`docs/connectors.md`). Each plane has a vendor mechanism that could
//! (`/work/shared/reference/execution-planes.md`): Intune assignment filters
//! on each assignment target, Jamf smart-group criteria or network-segment
//! limitations in the policy scope, a Configuration Manager collection
//! limited to the ring's collection with a query rule, a Landscape computer
//! query `tag:<group> tag:<site>`, an Ansible limit `<group>:&<site>`. Until
//! a connector sends that, an intent with sites on its plane is refused
//! with file:line by the one judge (`judge::load`, so `validate`, `plan`,
//! the PR check, the merge re-judgement and the daemon agree), and a
//! publish request that still carries sites is refused by the connector
//! boundary (`planes::Connector::publish`): a deployment never reaches more
//! devices than its intent says.
//!
//! An entitlement rule's `posture` (compliant only, minimum OS version,
//! encryption required) is in the same place: no connector turns it into an
//! assignment filter, smart-group criterion, collection query rule,
//! Landscape query or inventory variable, so every device of the ring's
//! groups is targeted whatever its posture. Posture is the endpoint team's
//! statement about its groups, not the publisher's intent, so it is
//! reported rather than refused: a warning with file:line at the rule's
//! `/posture` from the one judge (`validate`, `plan`, the PR check, the
//! merge re-judgement and the daemon), and the blast radius lists it as not
//! applied (`plan`, the PR comment).
//!
//! Pure: no I/O.

use crate::diagnostic::Diagnostic;
use crate::model::{DeploymentIntent, Located, Plane, Posture, Snapshot};

/// Why `plane` cannot honour `target_scope.sites`; `None` when it can.
pub fn sites_unsupported(plane: Plane) -> Option<&'static str> {
    Some(match plane {
        Plane::Intune => {
            "the intune connector assigns the ring's Entra groups and attaches no assignment \
             filter (deviceAndAppManagementAssignmentFilterId) that selects a site, so the \
             assignment would reach every device of those groups"
        }
        Plane::Jamf => {
            "the jamf connector scopes its policy to the ring's computer groups with no \
             smart-group criteria or network-segment limitation that selects a site, so the \
             policy would reach every computer of those groups"
        }
        Plane::Sccm => {
            "the sccm connector deploys to the ring's collections and creates no collection \
             with a query rule that selects a site, so the deployment would reach every device \
             of those collections"
        }
        Plane::Landscape => {
            "the landscape connector queries tag:<group> without a site tag, so the package \
             change would reach every computer with the ring's tags"
        }
        Plane::Ansible => {
            "the ansible connectors (ansible-playbook and AWX) limit the run to the ring's \
             inventory groups without intersecting a site group, so the run would reach every \
             host of those groups"
        }
    })
}

/// The message a refused `sites` gets, shared by the judge and the
/// connector boundary so both say the same.
pub fn sites_refusal(plane: Plane, sites: &[String]) -> String {
    format!(
        "target_scope.sites [{}] cannot be honoured on plane {}: {}; the intent is refused \
         rather than rolled out to the whole business unit (remove sites to target every \
         site, or deploy through a plane that narrows by site)",
        sites.join(", "),
        plane.as_str(),
        sites_unsupported(plane).unwrap_or("unsupported"),
    )
}

/// The constraints `posture` sets, as `plan` and the warning name them.
pub fn posture_constraints(posture: &Posture) -> Vec<String> {
    let mut constraints = Vec::new();
    if posture.compliant_only {
        constraints.push("compliant_only".to_owned());
    }
    if let Some(version) = &posture.min_os_version {
        constraints.push(format!("min_os_version {version}"));
    }
    if posture.encryption_required {
        constraints.push("encryption_required".to_owned());
    }
    constraints
}

/// How `plane`'s connector would have to apply posture.
pub fn posture_mechanism(plane: Plane) -> &'static str {
    match plane {
        Plane::Intune => "an assignment filter on each assignment target",
        Plane::Jamf => "smart-group criteria in the policy scope",
        Plane::Sccm => "a collection query rule limited to the ring's collection",
        Plane::Landscape => "terms in the computer query",
        Plane::Ansible => "an inventory variable the limit selects on",
    }
}

/// The warning an entitlement rule's posture gets on a plane whose
/// connector does not apply it.
pub fn posture_not_applied(plane: Plane, constraints: &[String]) -> String {
    format!(
        "posture [{}] is not applied on plane {} (unsupported): its connector does not send \
         {} and narrows nothing, so every device of this rule's groups is targeted whatever its posture and \
         the blast radius counts them all (plan: posture_not_applied); narrow the groups \
         themselves (a dynamic group or smart group with the posture rule) or remove posture",
        constraints.join(", "),
        plane.as_str(),
        posture_mechanism(plane),
    )
}

/// An error at `/target_scope/sites` for every intent whose plane cannot
/// honour the sites it lists (intents without a known plane are left to the
/// reference checks, `model::links`), and a warning at `/posture` for every
/// entitlement rule whose posture its plane's connector does not apply: a
/// constraint is never ignored silently.
pub fn check(snapshot: &Snapshot) -> Vec<Diagnostic> {
    let sites = snapshot
        .intents
        .values()
        .filter_map(|intent| check_intent(snapshot, intent));
    let posture = snapshot.entitlements.values().filter_map(|rule| {
        let constraints = posture_constraints(&rule.posture);
        (!constraints.is_empty())
            .then(|| rule.warning("/posture", posture_not_applied(rule.plane, &constraints)))
    });
    sites.chain(posture).collect()
}

/// [`check`]'s finding on one intent: the error on sites its plane cannot
/// honour. It reads no other intent, approval or exception.
pub fn check_intent(snapshot: &Snapshot, intent: &Located<DeploymentIntent>) -> Option<Diagnostic> {
    let sites = intent.target_scope.sites.as_ref()?;
    let plane = snapshot.artifact_of(intent)?.plane;
    sites_unsupported(plane)?;
    Some(intent.error("/target_scope/sites", sites_refusal(plane, sites)))
}
