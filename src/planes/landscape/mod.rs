//! `landscape`: the Canonical Landscape connector, over the legacy API
//! (`<base_url>/api/?action=...`), signed with an access key and secret key
//! or authorised by the JWT of a REST login.
//!
//! A deployment is the APT package `application_id` at `version`: each ring
//! group is a tag, and publishing a ring sends one `InstallPackages` per tag
//! (`query=tag:<group> NOT tag:<excluded>`, `packages.1=<package>=<version>`),
//! whose parent activity has one `ChangePackagesRequest` child per computer.
//! Status is the newest child activity of the package on each computer of the
//! ring's tags (`GetActivities`), checked against the installed version the
//! computer last reported (`GetPackages`). Uninstall is `RemovePackages`,
//! rollback installs the earlier version by name, a ring pin and a redeploy
//! cancel activities that should not be delivered (`CancelActivities`).
//!
//! Landscape has no idempotency key and no free-text field on an activity, so
//! the connector keeps a [`journal`] (SQLite): correlation id → ledger and
//! activity ids, with each change written as pending before its request is
//! sent. The API as used is `../shared/reference/execution-planes.md` section
//! 4; [`simulator`] imitates it. The contract is `docs/connectors.md`.

mod client;
mod config;
mod journal;
mod plane;
mod publish;
mod remediation;
pub mod signature;
pub mod simulator;
mod status;
#[cfg(test)]
mod tests;
mod wire;

pub use config::{LandscapeAuth, LandscapeConfig, LandscapeConfigError};

use crate::planes::{
    ConnectorError, DeploymentStatus, ExecutionPlaneConnector, PublishRequest, PublishResult,
    Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use client::LandscapeClient;
use journal::{Journal, JournalEntry};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// A handle to one Landscape account. Clones share the client, its token,
/// its concurrency cap, the journal and the per-deployment locks.
#[derive(Clone)]
pub struct LandscapeConnector {
    shared: Arc<Shared>,
}

struct Shared {
    client: LandscapeClient,
    journal: Journal,
    base_url: String,
    journal_path: PathBuf,
    /// One lock per correlation id: Landscape cannot make find-then-create
    /// atomic, so calls for one deployment take turns here.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for LandscapeConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LandscapeConnector")
            .field("base_url", &self.shared.base_url)
            .field("journal", &self.shared.journal_path)
            .finish_non_exhaustive()
    }
}

impl LandscapeConnector {
    /// A connector as configured; reads the credentials from their source and
    /// opens (or creates) the journal.
    pub fn new(config: &LandscapeConfig) -> Result<LandscapeConnector, LandscapeConfigError> {
        let auth = config.resolve()?;
        let client = LandscapeClient::new(
            &config.base_url,
            auth,
            config.request_timeout,
            config.call_budget(),
            config.page_size,
        )
        .map_err(|reason| LandscapeConfigError::Http { reason })?;
        let journal =
            Journal::open(&config.journal).map_err(|reason| LandscapeConfigError::Journal {
                path: config.journal.clone(),
                reason,
            })?;
        Ok(LandscapeConnector {
            shared: Arc::new(Shared {
                client,
                journal,
                base_url: config.base_url.clone(),
                journal_path: config.journal.clone(),
                locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The shared send loop (`planes::http_send`): the plane's call budget
    /// and its coalesced reads, shared by every clone.
    pub fn transport(&self) -> &crate::planes::http_send::Transport {
        self.client().transport()
    }

    fn client(&self) -> &LandscapeClient {
        &self.shared.client
    }

    fn journal(&self) -> &Journal {
        &self.shared.journal
    }

    fn lock_for(&self, correlation_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(correlation_id.to_string()).or_default())
    }

    /// The journal's entry for a correlation id, its pending changes settled
    /// against the plane.
    async fn entry(&self, correlation_id: &str) -> Result<Option<JournalEntry>, ConnectorError> {
        match self.journal().load(correlation_id)? {
            Some(entry) => plane::settle_pending(self.client(), self.journal(), entry)
                .await
                .map(Some),
            None => Ok(None),
        }
    }
}

impl ExecutionPlaneConnector for LandscapeConnector {
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
        let lock = self.lock_for(correlation_id);
        let entry = {
            let _turn = lock.lock().await;
            self.entry(correlation_id).await?
        };
        let entry = entry.ok_or_else(|| status::not_found(correlation_id))?;
        status::query_status(self, &entry, now).await
    }

    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let lock = self.lock_for(correlation_id);
        let _turn = lock.lock().await;
        let entry = self
            .entry(correlation_id)
            .await?
            .ok_or_else(|| status::not_found(correlation_id))?;
        remediation::remediate(self, entry, remediation, now).await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        _now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        let lock = self.lock_for(correlation_id);
        let _turn = lock.lock().await;
        Ok(self
            .entry(correlation_id)
            .await?
            .is_some_and(|entry| !entry.activities.is_empty()))
    }
}
