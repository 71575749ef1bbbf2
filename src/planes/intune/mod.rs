//! `intune`: the Microsoft Intune connector, over Microsoft Graph.
//!
//! A deployment is one mobileApp (`win32LobApp`, or `macOSPkgApp` for a `.pkg`),
//! created with its content uploaded and committed, whose `notes` carry the
//! correlation id and the deployment's ledger (`planes::ledger`: rings,
//! exclusions, state).
//! Rings are group assignments; `/assign` replaces the whole list, so every
//! change reads the current list, merges, and sends it all back. Rollback assigns
//! the earlier version's app instead, uninstall turns the install assignments
//! into `uninstall` ones. Status reads the groups' device members and the app's
//! per-device install statuses.
//!
//! The plane's API as the connector uses it is in
//! `../shared/reference/execution-planes.md` section 1; [`simulator`] imitates it
//! for tests and `ringmaster simulate intune`. The contract is
//! `docs/connectors.md`.

mod budget;
mod client;
mod config;
mod lookup;
mod publish;
mod remediation;
pub mod simulator;
mod status;
#[cfg(test)]
mod tests;
mod upload;
mod wire;

pub use budget::RequestBudget;
pub use config::{IntuneConfig, IntuneConfigError};
pub use upload::ContentSource;

use crate::planes::{
    ConnectorError, DeploymentStatus, ExecutionPlaneConnector, PublishRequest, PublishResult,
    Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use client::GraphClient;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use upload::Polling;

/// A handle to one Intune tenant. Clones share the Graph client, its token,
/// its concurrency cap and request budget, and the per-deployment locks.
#[derive(Clone)]
pub struct IntuneConnector {
    shared: Arc<Shared>,
}

struct Shared {
    client: GraphClient,
    tenant_id: String,
    content: ContentSource,
    polling: Polling,
    /// One lock per correlation id: Graph cannot make find-then-create atomic,
    /// so calls for one deployment take turns inside this process.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// App ids found or created per correlation id: a hint that spares a scan
    /// of every app, always checked against the plane before it is used.
    known_apps: Mutex<HashMap<String, String>>,
    /// Intune managed device id → Entra device id, as `managedDevices`
    /// answered it (see `status::ManagedDeviceJoin`).
    managed_devices: Mutex<status::ManagedDeviceJoin>,
}

impl fmt::Debug for IntuneConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("IntuneConnector")
            .field("tenant_id", &self.shared.tenant_id)
            .field("content", &self.shared.content)
            .finish_non_exhaustive()
    }
}

impl IntuneConnector {
    /// A connector as configured; reads the client secret from its source.
    pub fn new(config: &IntuneConfig) -> Result<IntuneConnector, IntuneConfigError> {
        let settings = config.client_settings()?;
        let client = GraphClient::new(settings).map_err(|error| IntuneConfigError::Http {
            reason: error.to_string(),
        })?;
        Ok(IntuneConnector {
            shared: Arc::new(Shared {
                client,
                tenant_id: config.tenant_id.clone(),
                content: config.content.clone(),
                polling: Polling {
                    interval: config.upload_poll_interval,
                },
                locks: Mutex::new(HashMap::new()),
                known_apps: Mutex::new(HashMap::new()),
                managed_devices: Mutex::new(status::ManagedDeviceJoin::default()),
            }),
        })
    }

    /// The shared send loop (`planes::http_send`): the plane's call budget
    /// and its coalesced reads, shared by every clone.
    pub fn transport(&self) -> &crate::planes::http_send::Transport {
        self.client().transport()
    }

    fn client(&self) -> &GraphClient {
        &self.shared.client
    }

    fn managed_devices(&self) -> std::sync::MutexGuard<'_, status::ManagedDeviceJoin> {
        self.shared
            .managed_devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lock of one deployment (created on first use).
    fn lock_for(&self, correlation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(correlation_id.to_string()).or_default())
    }
}

impl IntuneConnector {
    /// The app of a correlation id, as the plane holds it now: the remembered
    /// app when it still carries the correlation id, else a lookup by name and
    /// a scan of every app (see `lookup::find_app`).
    async fn find_app(
        &self,
        correlation_id: &str,
        display_name: Option<&str>,
    ) -> Result<Option<lookup::FoundApp>, ConnectorError> {
        let known = self
            .shared
            .known_apps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(correlation_id)
            .cloned();
        if let Some(app_id) = known
            && let Some(app) = lookup::get_app(self.client(), &app_id, correlation_id).await?
        {
            return Ok(Some(app));
        }
        let found = lookup::find_app(self.client(), correlation_id, display_name).await?;
        match &found {
            Some(app) => self.remember_app(correlation_id, &app.id),
            None => {
                self.shared
                    .known_apps
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(correlation_id);
            }
        }
        Ok(found)
    }

    fn remember_app(&self, correlation_id: &str, app_id: &str) {
        self.shared
            .known_apps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(correlation_id.to_string(), app_id.to_string());
    }
}

impl ExecutionPlaneConnector for IntuneConnector {
    async fn publish(
        &self,
        request: &PublishRequest,
        _now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        publish::check_request(request)?;
        let lock = self.lock_for(&request.correlation_id);
        let _turn = lock.lock().await;
        publish::publish(self, request).await
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
        _now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let lock = self.lock_for(correlation_id);
        let _turn = lock.lock().await;
        remediation::remediate(self, correlation_id, remediation).await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        Ok(self.find_app(correlation_id, None).await?.is_some())
    }
}
