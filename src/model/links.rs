//! Link checks: every reference between governed objects resolves.
//!
//! Schemas check each file alone; this checks the repository as a whole:
//! intent → application, version and artifact; requested_by is a publisher;
//! approvals → intents; exceptions → artifacts; every (plane, ring, segment)
//! an intent needs has an entitlement; rings and planes exist in the config.

use super::kinds::*;
use super::snapshot::Snapshot;
use crate::diagnostic::Diagnostic;
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

/// Every broken link in the snapshot, at the place that holds the reference.
pub fn check(snapshot: &Snapshot) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    check_config(snapshot, &mut diagnostics);
    check_principals(snapshot, &mut diagnostics);
    check_applications(snapshot, &mut diagnostics);
    check_intents(snapshot, &mut diagnostics);
    check_records(snapshot, &mut diagnostics);
    diagnostics
}

fn check_config(snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    let Some(config) = &snapshot.config else {
        return;
    };
    if crate::risk::rubric(&config.risk_model_version).is_none() {
        out.push(config.error(
            "/risk_model_version",
            format!(
                "risk_model_version \"{}\" is unknown; this ringmaster knows {}",
                config.risk_model_version,
                crate::risk::RUBRIC_V1.version
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (index, ring) in config.rings.iter().enumerate() {
        if !seen.insert(ring.id.as_str()) {
            out.push(config.error(
                &format!("/rings/{index}/id"),
                format!(
                    "ring \"{}\" is listed twice; ring ids must be unique",
                    ring.id
                ),
            ));
        }
    }
    if config.ring_index(&config.cab.from_ring).is_none() {
        out.push(config.error(
            "/cab/from_ring",
            format!(
                "cab.from_ring \"{}\" is not one of the rings [{}]",
                config.cab.from_ring,
                ring_ids(config)
            ),
        ));
    }
    // Change freezes (cron, time zone, duration) are checked by
    // `orchestrator::validate_freezes`, through `evaluation`.
    if let Some(expression) = &config.reconcile_cron
        && let Err(error) = cron::Schedule::from_str(expression)
    {
        out.push(config.error(
            "/reconcile_cron",
            format!("reconcile_cron \"{expression}\" does not parse ({error})"),
        ));
    }
}

fn ring_ids(config: &Config) -> String {
    config
        .rings
        .iter()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_applications(snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    for application in snapshot.applications.values() {
        if !snapshot.principals.contains_key(&application.owner) {
            out.push(application.error(
                "/owner",
                format!(
                    "owner \"{}\" is not a principal in principals/",
                    application.owner
                ),
            ));
        }
        if let Some(config) = &snapshot.config {
            for (index, plane) in application.planes.iter().enumerate() {
                if !config.planes.contains(plane) {
                    out.push(application.error(
                        &format!("/planes/{index}"),
                        format!(
                            "plane {} is not enabled in ringmaster.yaml planes",
                            plane.as_str()
                        ),
                    ));
                }
            }
        }
    }
    // Artifact ids are global: exceptions refer to them.
    let mut artifact_ids: BTreeMap<&str, &str> = BTreeMap::new();
    for ((application_id, _), version) in &snapshot.versions {
        let application = snapshot.applications.get(application_id);
        if application.is_none() {
            out.push(version.error(
                "/application_id",
                format!("application \"{application_id}\" has no apps/{application_id}/app.yaml"),
            ));
        }
        for (index, artifact) in version.artifacts.iter().enumerate() {
            if let Some(other) = artifact_ids.insert(&artifact.id, &version.file) {
                out.push(version.error(
                    &format!("/artifacts/{index}/id"),
                    format!("artifact id \"{}\" is already used in {other}; artifact ids must be unique", artifact.id),
                ));
            }
            if let Some(application) = application
                && !application.planes.contains(&artifact.plane)
            {
                out.push(version.error(
                    &format!("/artifacts/{index}/plane"),
                    format!(
                                "artifact for plane {} but application {} only lists planes [{}]",
                                artifact.plane.as_str(),
                                application.id,
                                application
                                    .planes
                                    .iter()
                                    .map(|p| p.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                ));
            }
        }
        for (index, dependency) in version.dependencies.iter().enumerate() {
            if !snapshot
                .applications
                .contains_key(&dependency.application_id)
            {
                out.push(version.error(
                    &format!("/dependencies/{index}/application_id"),
                    format!(
                        "dependency \"{}\" is not an application in apps/",
                        dependency.application_id
                    ),
                ));
            }
            if semver::VersionReq::parse(&dependency.version_req).is_err() {
                out.push(version.error(
                    &format!("/dependencies/{index}/version_req"),
                    format!(
                        "version_req \"{}\" is not a semver requirement (e.g. \">=14.0\")",
                        dependency.version_req
                    ),
                ));
            }
        }
    }
}

fn check_intents(snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    for intent in snapshot.intents.values() {
        check_intent(snapshot, intent, out);
    }
}

/// The references of one intent (what [`check`] reports on its file): to
/// its requester, application, version, artifact, rings and entitlements.
/// It reads no other intent, approval or exception.
pub fn check_intent(
    snapshot: &Snapshot,
    intent: &super::snapshot::Located<DeploymentIntent>,
    out: &mut Vec<Diagnostic>,
) {
    match snapshot.principals.get(&intent.requested_by) {
        None => out.push(intent.error(
            "/requested_by",
            format!(
                "requested_by \"{}\" is not a principal in principals/",
                intent.requested_by
            ),
        )),
        Some(principal) if !principal.has_role(Role::Publisher) => out.push(intent.error(
            "/requested_by",
            format!(
                "requested_by \"{}\" does not hold the publisher role",
                intent.requested_by
            ),
        )),
        Some(_) => {}
    }
    if let Some(supersedes) = &intent.supersedes
        && supersedes == &intent.intent_id
    {
        out.push(intent.error("/supersedes", "an intent cannot supersede itself"));
    }
    let Some(application) = snapshot.applications.get(&intent.application_id) else {
        out.push(intent.error(
            "/application_id",
            format!(
                "application \"{}\" does not exist (no apps/{}/app.yaml)",
                intent.application_id, intent.application_id
            ),
        ));
        return;
    };
    let key = (intent.application_id.clone(), intent.version.clone());
    let Some(version) = snapshot.versions.get(&key) else {
        let known: Vec<_> = snapshot
            .versions_of(&application.id)
            .iter()
            .map(|v| v.version.clone())
            .collect();
        out.push(intent.error(
            "/version",
            format!(
                "version {} of {} does not exist (no apps/{}/{}.yaml); known versions: [{}]",
                intent.version,
                application.id,
                application.id,
                intent.version,
                known.join(", ")
            ),
        ));
        return;
    };
    if let Some(plan) = &intent.rollback_plan
        && let Some(rollback) = &plan.rollback_version
        && !snapshot
            .versions
            .contains_key(&(application.id.clone(), rollback.clone()))
    {
        out.push(intent.error(
            "/rollback_plan/rollback_version",
            format!(
                "rollback_version {rollback} is not a version of {} in apps/{}/",
                application.id, application.id
            ),
        ));
    }
    let Some(artifact) = version
        .artifacts
        .iter()
        .find(|a| a.sha256 == intent.artifact_hash)
    else {
        out.push(intent.error(
            "/artifact_hash",
            format!("artifact_hash matches no artifact of {} {} ({}); copy the sha256 of the artifact to deploy",
                application.id, intent.version, version.file),
        ));
        return;
    };
    let Some(config) = &snapshot.config else {
        return;
    };
    let mut last_index = None;
    for (index, ring) in intent.target_scope.rings.iter().enumerate() {
        let pointer = format!("/target_scope/rings/{index}");
        let Some(ring_index) = config.ring_index(ring) else {
            out.push(intent.error(
                &pointer,
                format!(
                    "ring \"{ring}\" is not defined in ringmaster.yaml; rings are [{}]",
                    ring_ids(config)
                ),
            ));
            return;
        };
        if last_index.is_some_and(|last| ring_index <= last) {
            out.push(intent.error(&pointer, format!("ring \"{ring}\" is out of rollout order or repeated; list rings as in ringmaster.yaml")));
        }
        last_index = Some(ring_index);
        let target = &intent.target_scope;
        if snapshot
            .entitlement_for(
                artifact.plane,
                ring,
                &target.acquisition_boundary,
                &target.business_unit,
            )
            .is_none()
        {
            out.push(intent.error(
                &pointer,
                format!(
                    "no entitlement for plane {}, ring {ring}, {}/{}: add entitlements/{}-{}-{}-{ring}.yaml",
                    artifact.plane.as_str(),
                    target.acquisition_boundary,
                    target.business_unit,
                    artifact.plane.as_str(),
                    target.acquisition_boundary.replace('-', ""),
                    target.business_unit.trim_start_matches("bu-"),
                ),
            ));
        }
    }
    for ring in intent.schedule.keys() {
        if !intent.target_scope.rings.contains(ring) {
            out.push(intent.error(
                &format!("/schedule/{}", super::yaml::escape_token(ring)),
                format!("schedule names ring \"{ring}\", which is not in target_scope.rings"),
            ));
        }
    }
}

/// Identities are unique: one principal per e-mail, forge login and
/// signing key (case-insensitive, as mail and GitHub compare them), so a
/// second principal can never stand in for the first — approve as the
/// requester's twin, or claim a review or a signature that is theirs.
fn check_principals(snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    let mut emails: BTreeMap<String, &str> = BTreeMap::new();
    let mut logins: BTreeMap<String, &str> = BTreeMap::new();
    let mut keys: BTreeMap<String, &str> = BTreeMap::new();
    let mut ids: BTreeMap<String, &str> = BTreeMap::new();
    for principal in snapshot.principals.values() {
        if let Some(first) = ids.insert(principal.id.to_lowercase(), &principal.id)
            && first != principal.id
        {
            out.push(principal.error(
                "/id",
                format!(
                    "principal id \"{}\" differs from \"{first}\" only in case; ids must be unique",
                    principal.id
                ),
            ));
        }
        if let Some(first) = emails.insert(principal.email.to_lowercase(), &principal.id) {
            out.push(principal.error(
                "/email",
                format!(
                    "email \"{}\" is also principal {first}'s; every principal needs its own e-mail",
                    principal.email
                ),
            ));
        }
        if let Some(login) = &principal.forge_login
            && let Some(first) = logins.insert(login.to_lowercase(), &principal.id)
        {
            out.push(principal.error(
                "/forge_login",
                format!(
                    "forge_login \"{login}\" is also principal {first}'s (logins compare case-insensitively); every principal needs its own login"
                ),
            ));
        }
        for (index, key) in principal.signing_keys.iter().enumerate() {
            let pointer = format!("/signing_keys/{index}");
            match super::signing::fingerprint(key) {
                Err(error) => out.push(principal.error(
                    &pointer,
                    format!("signing key is not an SSH public key ({error}); paste the line of the .pub file, e.g. ssh-ed25519 AAAA… name@host"),
                )),
                Ok(fingerprint) => {
                    if let Some(first) = keys.insert(fingerprint.clone(), &principal.id)
                        && first != principal.id
                    {
                        out.push(principal.error(
                            &pointer,
                            format!("signing key {fingerprint} is also principal {first}'s; a key identifies one principal"),
                        ));
                    }
                }
            }
        }
    }
}

fn check_records(snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    for approval in snapshot.approvals.values() {
        check_approval(snapshot, approval, out);
    }
    let artifact_ids = artifact_ids(snapshot);
    for exception in snapshot.exceptions.values() {
        check_exception(snapshot, &artifact_ids, exception, out);
    }
    check_entitlements(snapshot, out);
}

/// The references of one approval record: to the intent it decides on
/// (whether `snapshot` has it: the one reference from a record to an
/// object a pull request can add or remove), or the application its
/// `application_scope` names, and its decider.
pub fn check_approval(
    snapshot: &Snapshot,
    approval: &super::snapshot::Located<ApprovalRecord>,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(scope) = &approval.application_scope {
        if !snapshot.applications.contains_key(&scope.application_id) {
            out.push(approval.error(
                "/application_scope/application_id",
                format!(
                    "application_scope.application_id \"{}\" is not an application in apps/",
                    scope.application_id
                ),
            ));
        }
    } else if !snapshot
        .intents
        .contains_key(&approval.deployment_intent_id)
    {
        out.push(approval.error(
            "/deployment_intent_id",
            format!(
                "deployment_intent_id \"{}\" is not an intent in intents/",
                approval.deployment_intent_id
            ),
        ));
    }
    if !snapshot.principals.contains_key(&approval.decided_by) {
        out.push(approval.error(
            "/decided_by",
            format!(
                "decided_by \"{}\" is not a principal in principals/",
                approval.decided_by
            ),
        ));
    }
}

/// Every artifact id of every application version (what an exception's
/// `artifact_id` must be one of).
pub fn artifact_ids(snapshot: &Snapshot) -> HashSet<&str> {
    snapshot
        .versions
        .values()
        .flat_map(|v| v.artifacts.iter().map(|a| a.id.as_str()))
        .collect()
}

/// The references of one exception: to an artifact (`artifact_ids` of
/// the snapshot) and its approver.
pub fn check_exception(
    snapshot: &Snapshot,
    artifact_ids: &HashSet<&str>,
    exception: &super::snapshot::Located<Exception>,
    out: &mut Vec<Diagnostic>,
) {
    if !artifact_ids.contains(exception.artifact_id.as_str()) {
        out.push(exception.error(
            "/artifact_id",
            format!(
                "artifact_id \"{}\" is not an artifact of any application version",
                exception.artifact_id
            ),
        ));
    }
    if !snapshot.principals.contains_key(&exception.approved_by) {
        out.push(exception.error(
            "/approved_by",
            format!(
                "approved_by \"{}\" is not a principal in principals/",
                exception.approved_by
            ),
        ));
    }
}

fn check_entitlements(snapshot: &Snapshot, out: &mut Vec<Diagnostic>) {
    for entitlement in snapshot.entitlements.values() {
        if let Some(config) = &snapshot.config
            && config.ring_index(&entitlement.ring).is_none()
        {
            out.push(entitlement.error(
                "/ring",
                format!(
                    "ring \"{}\" is not defined in ringmaster.yaml; rings are [{}]",
                    entitlement.ring,
                    ring_ids(config)
                ),
            ));
        }
    }
    // Two entitlements for the same (plane, ring, segment) would make the target ambiguous.
    let mut seen: BTreeMap<(Plane, &str, &str, &str), &str> = BTreeMap::new();
    for entitlement in snapshot.entitlements.values() {
        let key = (
            entitlement.plane,
            entitlement.ring.as_str(),
            entitlement.scope.acquisition_boundary.as_str(),
            entitlement.scope.business_unit.as_str(),
        );
        if let Some(other) = seen.insert(key, &entitlement.file) {
            out.push(entitlement.error(
                "/ring",
                format!(
                    "{other} already serves plane {}, ring {}, {}/{}; merge them",
                    key.0.as_str(),
                    key.1,
                    key.2,
                    key.3
                ),
            ));
        }
    }
}
