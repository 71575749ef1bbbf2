//! `sccm`: the Microsoft Configuration Manager connector, over the
//! AdminService's WMI route (`/AdminService/wmi/<Class>`).
//!
//! A deployment is one application (`SMS_Application`, created from
//! `SDMPackageXML`, the correlation note in its description), one device
//! collection per ring (`SMS_Collection`, include rules for the entitlement's
//! collections and exclude rules for its exclusions, named after the
//! correlation id; the first one's comment keeps the ledger), and one required
//! deployment per ring collection (`SMS_ApplicationAssignment`, the correlation
//! id in `AssignmentDescription`). Uninstall swaps install deployments for
//! `DesiredConfigType` 2 ones; rollback deploys the earlier version's
//! application and uninstalls this one. Status comes from
//! `SMS_AppDeploymentAssetDetails` and `SMS_DeploymentSummary`.
//!
//! The API as used is `../shared/reference/execution-planes.md` section 3;
//! [`simulator`] imitates it. The contract is `docs/connectors.md`.

mod client;
mod config;
mod lookup;
mod publish;
mod remediation;
pub mod simulator;
mod status;
#[cfg(test)]
mod tests;
mod wire;

pub use config::{SccmAuth, SccmConfig, SccmConfigError};

use crate::planes::{
    ConnectorError, DeploymentStatus, ExecutionPlaneConnector, PublishRequest, PublishResult,
    Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use client::AdminClient;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A handle to one Configuration Manager site. Clones share the client, its
/// token, its concurrency cap and the per-deployment locks.
#[derive(Clone)]
pub struct SccmConnector {
    shared: Arc<Shared>,
}

struct Shared {
    client: AdminClient,
    base_url: String,
    content_location: String,
    limiting_collection_id: String,
    /// One lock per correlation id: the AdminService cannot make
    /// find-then-create atomic, so calls for one deployment take turns here.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Application CI ids found or created per correlation id: a hint that
    /// spares a scan of every application, always checked against the site.
    known_apps: Mutex<HashMap<String, i64>>,
}

impl fmt::Debug for SccmConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SccmConnector")
            .field("base_url", &self.shared.base_url)
            .field("content_location", &self.shared.content_location)
            .finish_non_exhaustive()
    }
}

impl SccmConnector {
    /// A connector as configured; reads the credentials from their source.
    pub fn new(config: &SccmConfig) -> Result<SccmConnector, SccmConfigError> {
        let auth = config.resolve()?;
        let client = AdminClient::new(
            &config.base_url,
            auth,
            config.request_timeout,
            config.call_budget(),
            config.page_size,
        )
        .map_err(|error| SccmConfigError::Http {
            reason: error.to_string(),
        })?;
        Ok(SccmConnector {
            shared: Arc::new(Shared {
                client,
                base_url: config.base_url.clone(),
                content_location: config.content_location.clone(),
                limiting_collection_id: config.limiting_collection_id.clone(),
                locks: Mutex::new(HashMap::new()),
                known_apps: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The shared send loop (`planes::http_send`): the plane's call budget
    /// and its coalesced reads, shared by every clone.
    pub fn transport(&self) -> &crate::planes::http_send::Transport {
        self.client().transport()
    }

    fn client(&self) -> &AdminClient {
        &self.shared.client
    }

    fn lock_for(&self, correlation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(correlation_id.to_string()).or_default())
    }
}

impl SccmConnector {
    /// The application of a correlation id as the site holds it now: the
    /// remembered one when it still carries the correlation id, else a lookup
    /// by name and a scan (see `lookup::find_app`).
    async fn find_app(
        &self,
        correlation_id: &str,
        display_name: Option<&str>,
    ) -> Result<Option<lookup::FoundApp>, ConnectorError> {
        let known = self.known_apps().get(correlation_id).copied();
        if let Some(ci_id) = known
            && let Some(app) = lookup::get_app(self.client(), ci_id, correlation_id).await?
        {
            return Ok(Some(app));
        }
        let found = lookup::find_app(self.client(), correlation_id, display_name).await?;
        match &found {
            Some(app) => self.remember_app(correlation_id, app.ci_id),
            None => {
                self.known_apps().remove(correlation_id);
            }
        }
        Ok(found)
    }

    fn remember_app(&self, correlation_id: &str, ci_id: i64) {
        self.known_apps().insert(correlation_id.to_string(), ci_id);
    }

    fn known_apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.shared
            .known_apps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl ExecutionPlaneConnector for SccmConnector {
    async fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        publish::check_request(request)?;
        let lock = self.lock_for(&request.correlation_id);
        let _turn = lock.lock().await;
        publish::publish(self, request, now).await
    }

    async fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        status::query_status(self, correlation_id, now).await
    }

    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let lock = self.lock_for(correlation_id);
        let _turn = lock.lock().await;
        remediation::remediate(self, correlation_id, remediation, now).await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        Ok(lookup::find_app(self.client(), correlation_id, None)
            .await?
            .is_some())
    }
}
