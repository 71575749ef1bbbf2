//! `planes`: the connector contract and the connectors that drive the execution
//! planes (Intune, Jamf Pro, Configuration Manager, Landscape, Ansible).
//!
//! ringmaster never installs anything itself. It hands each plane a
//! [`PublishRequest`] per ring, reads back a [`DeploymentStatus`], and asks for a
//! [`Remediation`] when a gate or the reconciler says so. Every call is idempotent on
//! the intent's correlation id and takes `now`, so time is the caller's. The
//! written contract every connector obeys is `docs/connectors.md`.
//!
//! The set of connectors is closed: [`Connector`] is an enum with one variant per
//! kind, configured by the serde-tagged [`ConnectorConfig`]. [`sim`] is the
//! in-process fleet the demo and the tests run on.

pub mod ansible;
pub mod apispec;
pub mod budget;
mod contract;
pub mod entra;
mod error;
pub mod http;
pub mod http_send;
pub mod intune;
pub mod jamf;
pub mod landscape;
mod ledger;
pub mod sccm;
mod seconds;
mod secret;
pub mod sim;
pub mod simulators;

pub use contract::{
    ArtifactRef, DeploymentStatus, ObservedState, PublishRequest, PublishResult, Remediation,
    RemediationResult, RingStatus, RollbackMethod, rollback_method,
};
pub use error::{ConnectorError, ErrorClass, ErrorCode};
pub use secret::Secret;

use crate::model::Plane;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// The seed's `ExecutionPlaneConnector`: four operations, all idempotent on the
/// correlation id, all taking the caller's `now`. See `docs/connectors.md`.
pub trait ExecutionPlaneConnector {
    /// Makes the app exist on the plane and assigns it to the request's groups;
    /// finds and completes what an earlier call with the same correlation id did.
    fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PublishResult, ConnectorError>> + Send;

    /// Per-ring install counts and what the plane holds, as of `now`.
    fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DeploymentStatus, ConnectorError>> + Send;

    /// Carries out the action; `applied: false` when the plane was already there.
    fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<RemediationResult, ConnectorError>> + Send;

    /// Whether the plane already holds a deployment with this correlation id: what
    /// the daemon asks after a crash instead of publishing blind.
    fn verify_idempotency(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, ConnectorError>> + Send;
}

/// Every connector ringmaster has.
///
/// To add a plane: a module `planes/<plane>/{mod.rs, client.rs, simulator.rs,
/// tests.rs}` whose connector implements [`ExecutionPlaneConnector`], a variant
/// here and in [`ConnectorConfig`], one arm in each `match` below (the compiler
/// lists them), and the conformance tests of `docs/connectors.md` run against the
/// plane's simulator.
#[derive(Debug, Clone)]
pub enum Connector {
    /// The in-process simulated fleet, standing in for one plane.
    Sim(sim::SimConnector),
    /// Microsoft Intune through Microsoft Graph.
    Intune(intune::IntuneConnector),
    /// Jamf Pro through the Jamf Pro API and the Classic API.
    Jamf(jamf::JamfConnector),
    /// Microsoft Configuration Manager through the AdminService.
    Sccm(sccm::SccmConnector),
    /// Ansible, through the real `ansible-playbook` on this machine.
    Ansible(ansible::AnsibleConnector),
    /// Ansible, through AWX / Automation Controller job templates.
    Awx(ansible::awx::AwxConnector),
    /// Canonical Landscape through its legacy API.
    Landscape(landscape::LandscapeConnector),
}

impl Connector {
    /// The configuration `type` of this connector.
    pub fn kind(&self) -> &'static str {
        match self {
            Connector::Sim(_) => "sim",
            Connector::Intune(_) => "intune",
            Connector::Jamf(_) => "jamf",
            Connector::Sccm(_) => "sccm",
            Connector::Ansible(_) => "ansible",
            Connector::Awx(_) => "awx",
            Connector::Landscape(_) => "landscape",
        }
    }

    /// The shared send loop of an HTTP connector (its call budget, its
    /// coalesced reads); `None` for the in-process fleet and the local
    /// `ansible-playbook`, which send no HTTP.
    pub fn transport(&self) -> Option<&http_send::Transport> {
        match self {
            Connector::Sim(_) | Connector::Ansible(_) => None,
            Connector::Intune(intune) => Some(intune.transport()),
            Connector::Jamf(jamf) => Some(jamf.transport()),
            Connector::Sccm(sccm) => Some(sccm.transport()),
            Connector::Awx(awx) => Some(awx.transport()),
            Connector::Landscape(landscape) => Some(landscape.transport()),
        }
    }

    /// The plane this connector drives (or, for `sim`, stands in for).
    pub fn plane(&self) -> Plane {
        match self {
            Connector::Sim(sim) => sim.plane(),
            Connector::Intune(_) => Plane::Intune,
            Connector::Jamf(_) => Plane::Jamf,
            Connector::Sccm(_) => Plane::Sccm,
            Connector::Ansible(_) => Plane::Ansible,
            Connector::Awx(_) => Plane::Ansible,
            Connector::Landscape(_) => Plane::Landscape,
        }
    }
}

impl ExecutionPlaneConnector for Connector {
    async fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        // What the judge refuses is refused here too: a request that would
        // reach more devices than its intent says never gets to a plane.
        if let Some(sites) = &request.sites
            && crate::targeting::sites_unsupported(self.plane()).is_some()
        {
            return Err(ConnectorError::new(
                ErrorCode::InvalidRequest,
                crate::targeting::sites_refusal(self.plane(), sites),
            ));
        }
        budget::scope(now, self.publish_on_plane(request, now)).await
    }

    async fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        budget::scope(now, self.query_status_on_plane(correlation_id, now)).await
    }

    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        budget::scope(
            now,
            self.remediate_with_strategy(correlation_id, remediation, now),
        )
        .await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        budget::scope(now, self.verify_idempotency_on_plane(correlation_id, now)).await
    }
}

impl Connector {
    async fn publish_on_plane(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        match self {
            Connector::Sim(sim) => sim.publish(request, now).await,
            Connector::Intune(intune) => intune.publish(request, now).await,
            Connector::Jamf(jamf) => jamf.publish(request, now).await,
            Connector::Sccm(sccm) => sccm.publish(request, now).await,
            Connector::Ansible(ansible) => ansible.publish(request, now).await,
            Connector::Awx(awx) => awx.publish(request, now).await,
            Connector::Landscape(landscape) => landscape.publish(request, now).await,
        }
    }

    async fn query_status_on_plane(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        match self {
            Connector::Sim(sim) => sim.query_status(correlation_id, now).await,
            Connector::Intune(intune) => intune.query_status(correlation_id, now).await,
            Connector::Jamf(jamf) => jamf.query_status(correlation_id, now).await,
            Connector::Sccm(sccm) => sccm.query_status(correlation_id, now).await,
            Connector::Ansible(ansible) => ansible.query_status(correlation_id, now).await,
            Connector::Awx(awx) => awx.query_status(correlation_id, now).await,
            Connector::Landscape(landscape) => landscape.query_status(correlation_id, now).await,
        }
    }

    async fn remediate_with_strategy(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        // The rollback strategy decides what the plane does: a removing
        // strategy is the plane's uninstall, a delivering one its rollback;
        // another plane's strategy is refused before any call.
        if let Remediation::Rollback {
            strategy: Some(strategy),
            ..
        } = remediation
            && rollback_method(strategy, self.plane())? == RollbackMethod::Remove
        {
            let mut result = self
                .remediate_on_plane(correlation_id, &Remediation::Uninstall, now)
                .await?;
            result.detail = format!("{strategy}: {}", result.detail);
            result.action = remediation.clone();
            return Ok(result);
        }
        self.remediate_on_plane(correlation_id, remediation, now)
            .await
    }

    async fn remediate_on_plane(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        match self {
            Connector::Sim(sim) => sim.remediate(correlation_id, remediation, now).await,
            Connector::Intune(intune) => intune.remediate(correlation_id, remediation, now).await,
            Connector::Jamf(jamf) => jamf.remediate(correlation_id, remediation, now).await,
            Connector::Sccm(sccm) => sccm.remediate(correlation_id, remediation, now).await,
            Connector::Ansible(ansible) => {
                ansible.remediate(correlation_id, remediation, now).await
            }
            Connector::Awx(awx) => awx.remediate(correlation_id, remediation, now).await,
            Connector::Landscape(landscape) => {
                landscape.remediate(correlation_id, remediation, now).await
            }
        }
    }

    async fn verify_idempotency_on_plane(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        match self {
            Connector::Sim(sim) => sim.verify_idempotency(correlation_id, now).await,
            Connector::Intune(intune) => intune.verify_idempotency(correlation_id, now).await,
            Connector::Jamf(jamf) => jamf.verify_idempotency(correlation_id, now).await,
            Connector::Sccm(sccm) => sccm.verify_idempotency(correlation_id, now).await,
            Connector::Ansible(ansible) => ansible.verify_idempotency(correlation_id, now).await,
            Connector::Awx(awx) => awx.verify_idempotency(correlation_id, now).await,
            Connector::Landscape(landscape) => {
                landscape.verify_idempotency(correlation_id, now).await
            }
        }
    }
}

/// How one connector is configured, tagged by `type`: `{"type": "sim", "plane":
/// "intune", "seed": 7}`. Real planes add a variant each (credentials as
/// [`Secret`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectorConfig {
    Sim(sim::SimConfig),
    Intune(intune::IntuneConfig),
    Jamf(jamf::JamfConfig),
    Sccm(sccm::SccmConfig),
    Ansible(ansible::AnsibleConfig),
    Awx(ansible::awx::AwxConfig),
    Landscape(landscape::LandscapeConfig),
}

/// A connector configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorConfigError {
    #[error("sim connector for plane {}: {source}", plane.as_str())]
    Sim {
        plane: Plane,
        #[source]
        source: sim::SimError,
    },
    #[error(transparent)]
    Intune(#[from] intune::IntuneConfigError),
    #[error(transparent)]
    Jamf(#[from] jamf::JamfConfigError),
    #[error(transparent)]
    Sccm(#[from] sccm::SccmConfigError),
    #[error(transparent)]
    Ansible(#[from] ansible::AnsibleConfigError),
    #[error(transparent)]
    Awx(#[from] ansible::awx::AwxConfigError),
    #[error(transparent)]
    Landscape(#[from] landscape::LandscapeConfigError),
}

impl ConnectorConfig {
    /// The configuration `type`: `sim`, `intune`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorConfig::Sim(_) => "sim",
            ConnectorConfig::Intune(_) => "intune",
            ConnectorConfig::Sccm(_) => "sccm",
            ConnectorConfig::Ansible(_) => "ansible",
            ConnectorConfig::Awx(_) => "awx",
            ConnectorConfig::Jamf(_) => "jamf",
            ConnectorConfig::Landscape(_) => "landscape",
        }
    }

    /// The plane the configured connector will drive.
    pub fn plane(&self) -> Plane {
        match self {
            ConnectorConfig::Sim(config) => config.plane,
            ConnectorConfig::Intune(_) => Plane::Intune,
            ConnectorConfig::Jamf(_) => Plane::Jamf,
            ConnectorConfig::Sccm(_) => Plane::Sccm,
            ConnectorConfig::Ansible(_) => Plane::Ansible,
            ConnectorConfig::Awx(_) => Plane::Ansible,
            ConnectorConfig::Landscape(_) => Plane::Landscape,
        }
    }

    pub fn build(&self) -> Result<Connector, ConnectorConfigError> {
        match self {
            ConnectorConfig::Sim(config) => sim::SimConnector::new(config.clone())
                .map(Connector::Sim)
                .map_err(|source| ConnectorConfigError::Sim {
                    plane: config.plane,
                    source,
                }),
            ConnectorConfig::Intune(config) => {
                Ok(Connector::Intune(intune::IntuneConnector::new(config)?))
            }
            ConnectorConfig::Jamf(config) => Ok(Connector::Jamf(jamf::JamfConnector::new(config)?)),
            ConnectorConfig::Sccm(config) => Ok(Connector::Sccm(sccm::SccmConnector::new(config)?)),
            ConnectorConfig::Ansible(config) => {
                Ok(Connector::Ansible(ansible::AnsibleConnector::new(config)?))
            }
            ConnectorConfig::Awx(config) => {
                Ok(Connector::Awx(ansible::awx::AwxConnector::new(config)?))
            }
            ConnectorConfig::Landscape(config) => Ok(Connector::Landscape(
                landscape::LandscapeConnector::new(config)?,
            )),
        }
    }
}
