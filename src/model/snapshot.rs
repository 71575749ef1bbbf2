//! A snapshot: every governed object of one revision, typed and located.

use super::kinds::*;
use super::yaml::Document;
use crate::diagnostic::{Diagnostic, Position};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A typed object and the file it came from, so findings can point at it.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub file: String,
    document: Arc<Document>,
}

impl<T> Located<T> {
    pub fn new(value: T, file: String, document: Arc<Document>) -> Self {
        Located {
            value,
            file,
            document,
        }
    }

    /// Line and column of the value at `pointer` (or its nearest ancestor).
    pub fn position(&self, pointer: &str) -> Position {
        self.document.position(pointer)
    }

    /// An error diagnostic pointing at `pointer` inside this object's file.
    pub fn error(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&self.file, message)
            .at(self.position(pointer))
            .pointer(pointer)
    }

    /// A warning diagnostic pointing at `pointer` inside this object's file.
    pub fn warning(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(&self.file, message)
            .at(self.position(pointer))
            .pointer(pointer)
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A tenant Rego file from `policies/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    pub path: String,
    pub source: String,
}

/// Every governed object of one revision. Maps are keyed by id, so iteration
/// order (and thus every report) is stable.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub config: Option<Located<Config>>,
    pub principals: BTreeMap<String, Located<Principal>>,
    pub applications: BTreeMap<String, Located<Application>>,
    /// Keyed by (application id, version).
    pub versions: BTreeMap<(String, String), Located<ApplicationVersion>>,
    pub entitlements: BTreeMap<String, Located<EntitlementRule>>,
    pub intents: BTreeMap<String, Located<DeploymentIntent>>,
    pub approvals: BTreeMap<String, Located<ApprovalRecord>>,
    pub exceptions: BTreeMap<String, Located<Exception>>,
    pub policies: Vec<PolicyFile>,
}

impl Snapshot {
    /// The artifact an intent deploys: the one in its version whose hash matches.
    pub fn artifact_of(&self, intent: &DeploymentIntent) -> Option<&Artifact> {
        self.versions
            .get(&(intent.application_id.clone(), intent.version.clone()))?
            .artifacts
            .iter()
            .find(|artifact| artifact.sha256 == intent.artifact_hash)
    }

    /// The entitlement serving (plane, ring, segment), if any.
    pub fn entitlement_for(
        &self,
        plane: Plane,
        ring: &str,
        acquisition_boundary: &str,
        business_unit: &str,
    ) -> Option<&Located<EntitlementRule>> {
        self.entitlements.values().find(|rule| {
            rule.plane == plane
                && rule.ring == ring
                && rule.scope.acquisition_boundary == acquisition_boundary
                && rule.scope.business_unit == business_unit
        })
    }

    /// The principal whose forge login is `login` (case-insensitive, as GitHub is).
    pub fn principal_by_login(&self, login: &str) -> Option<&Located<Principal>> {
        self.principals.values().find(|principal| {
            principal
                .forge_login
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(login))
        })
    }

    /// Versions of an application, ascending by semver (the schema enforces semver).
    pub fn versions_of(&self, application_id: &str) -> Vec<&Located<ApplicationVersion>> {
        let mut versions: Vec<_> = self
            .versions
            .range((application_id.to_owned(), String::new())..)
            .take_while(|((app, _), _)| app == application_id)
            .map(|(_, version)| version)
            .collect();
        versions.sort_by_key(|v| semver::Version::parse(&v.version).ok());
        versions
    }
}
