//! `jamf`: the Jamf Pro connector, over the Jamf Pro API (JSON: OAuth token,
//! packages, computer inventory) and the Classic API (XML: policies, computer
//! groups, computer history).
//!
//! A deployment is one package record (`/api/v1/packages`; `notes` holds
//! `corr:<id>` so an exact RSQL filter finds it, `info` the ledger, the
//! detection, the version and the uninstall command) and one Classic policy
//! per ring (`/JSSResource/policies`, named `<app> <version> [ring <ring>]
//! corr:<id>`, unique as Jamf requires), scoped to the entitlement's computer
//! groups with the exclusions, installing the package once per computer.
//! Uninstall swaps the install policies for one policy running the artifact's
//! uninstall command; rollback re-points the ring policies at the earlier
//! version's package and flushes their logs. Status comes from the
//! applications inventory, read a page of computers at a time, and the policy
//! logs of only the computers that checked in without the version.
//!
//! Jamf allows an API client no more than five concurrent connections: every
//! clone shares one call budget (`crate::planes::budget`) of at most five
//! requests in flight, a rate, priorities and back-off on 429/503.
//!
//! The API as used is `../shared/reference/execution-planes.md` section 2;
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

pub use config::{JamfAuth, JamfConfig, JamfConfigError, MAX_CONNECTIONS};

use crate::planes::budget;
use crate::planes::{
    ConnectorError, DeploymentStatus, ExecutionPlaneConnector, PublishRequest, PublishResult,
    Remediation, RemediationResult,
};
use chrono::{DateTime, Utc};
use client::JamfClient;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A handle to one Jamf Pro server. Clones share the client, its token, its
/// connection cap and the per-deployment locks.
#[derive(Clone)]
pub struct JamfConnector {
    shared: Arc<Shared>,
}

struct Shared {
    client: JamfClient,
    base_url: String,
    /// One lock per correlation id: Jamf cannot make find-then-create of a
    /// package atomic, so calls for one deployment take turns here.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for JamfConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("JamfConnector")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl JamfConnector {
    /// A connector as configured; validates and reads the credentials.
    pub fn new(config: &JamfConfig) -> Result<JamfConnector, JamfConfigError> {
        let auth = config.resolve()?;
        let client = JamfClient::new(
            &config.base_url,
            auth,
            config.request_timeout,
            config.call_budget(),
            config.page_size,
        )
        .map_err(|error| JamfConfigError::Http {
            reason: error.to_string(),
        })?;
        Ok(JamfConnector {
            shared: Arc::new(Shared {
                client,
                base_url: config.base_url.clone(),
                locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The shared send loop (`planes::http_send`): the plane's call budget
    /// and its coalesced reads, shared by every clone.
    pub fn transport(&self) -> &crate::planes::http_send::Transport {
        self.client().transport()
    }

    fn client(&self) -> &JamfClient {
        &self.shared.client
    }

    /// The plane's call budget, shared by every clone.
    pub fn budget(&self) -> &crate::planes::budget::PlaneBudget {
        self.shared.client.budget()
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

impl ExecutionPlaneConnector for JamfConnector {
    async fn publish(
        &self,
        request: &PublishRequest,
        now: DateTime<Utc>,
    ) -> Result<PublishResult, ConnectorError> {
        publish::check_request(request)?;
        let lock = self.lock_for(&request.correlation_id);
        let _turn = lock.lock().await;
        budget::scope(now, publish::publish(self, request, now)).await
    }

    async fn query_status(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeploymentStatus, ConnectorError> {
        budget::scope(now, status::query_status(self, correlation_id, now)).await
    }

    async fn remediate(
        &self,
        correlation_id: &str,
        remediation: &Remediation,
        now: DateTime<Utc>,
    ) -> Result<RemediationResult, ConnectorError> {
        let lock = self.lock_for(correlation_id);
        let _turn = lock.lock().await;
        budget::scope(
            now,
            remediation::remediate(self, correlation_id, remediation, now),
        )
        .await
    }

    async fn verify_idempotency(
        &self,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ConnectorError> {
        let found = budget::scope(now, lookup::find_package(self.client(), correlation_id)).await?;
        Ok(found.is_some())
    }
}
