//! What every `/api/v1` request (and any router behind the API's auth
//! layer: metrics, the status page) shares: store connections, the
//! governed snapshot, the authenticator, the limits, the clock, the SIEM
//! sink, and the daemon's wake-up and health board.

use super::auth::Authenticator;
use super::governed::{Governed, GovernedSource};
use super::health::HealthBoard;
use super::problem::ApiProblem;
use super::protect::Limits;
use crate::daemon::siem::Siem;
use crate::store::{Store, StorePool};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Shared state of the API.
pub struct ApiContext {
    /// A pool of connections to the daemon's store (SQLite in WAL mode:
    /// readers never wait for the daemon's writer); none carries the
    /// leader's fencing epoch.
    stores: StorePool,
    pub governed: GovernedSource,
    /// The repository holding the evidence branch, and the branch.
    pub evidence_repository: PathBuf,
    pub evidence_branch: String,
    pub authenticator: Authenticator,
    pub limits: Limits,
    pub clock: super::Clock,
    pub siem: Mutex<Siem>,
    /// Wakes the daemon after a write was queued.
    pub on_request: Box<dyn Fn() + Send + Sync>,
    /// Breakers and plane figures the daemon publishes.
    pub health: HealthBoard,
}

impl std::fmt::Debug for ApiContext {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ApiContext")
            .field("governed", &self.governed)
            .finish_non_exhaustive()
    }
}

/// How to build an [`ApiContext`].
pub struct ApiContextParts {
    /// The state store (by default `<state>/ringmaster.db`).
    pub database: crate::store::StoreLocation,
    /// How many store connections requests share at most
    /// (`api.store_connections`).
    pub connections: usize,
    pub governed: GovernedSource,
    pub evidence_repository: PathBuf,
    pub evidence_branch: String,
    pub authenticator: Authenticator,
    pub limits: Limits,
    pub clock: super::Clock,
    pub siem: Siem,
    pub on_request: Box<dyn Fn() + Send + Sync>,
    pub health: HealthBoard,
}

impl ApiContext {
    pub fn new(parts: ApiContextParts) -> Result<ApiContext, crate::store::StoreError> {
        let stores = StorePool::new(parts.database, parts.connections)?;
        Ok(ApiContext {
            stores,
            governed: parts.governed,
            evidence_repository: parts.evidence_repository,
            evidence_branch: parts.evidence_branch,
            authenticator: parts.authenticator,
            limits: parts.limits,
            clock: parts.clock,
            siem: Mutex::new(parts.siem),
            on_request: parts.on_request,
            health: parts.health,
        })
    }

    /// Runs `work` with a store connection on a blocking thread.
    pub async fn with_store<T, F>(self: &Arc<Self>, work: F) -> Result<T, ApiProblem>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &ApiContext) -> Result<T, ApiProblem> + Send + 'static,
    {
        let context = self.clone();
        tokio::task::spawn_blocking(move || {
            // A free connection, a new one up to the pool's size, or the
            // first one returned.
            let mut store = context.stores.get().map_err(|error| {
                ApiProblem::unavailable(format!("state store unavailable: {error}"))
            })?;
            work(&mut store, &context)
        })
        .await
        .map_err(|error| ApiProblem::internal(format!("request task failed: {error}")))?
    }

    /// The governed revision in force (503 before the daemon accepted one).
    pub fn governed(&self, store: &Store) -> Result<Arc<Governed>, ApiProblem> {
        self.governed
            .current(store)
            .map_err(|error| ApiProblem::unavailable(format!("governed repository: {error}")))?
            .ok_or_else(|| {
                ApiProblem::unavailable(
                    "the daemon has not accepted a commit of the governed repository yet",
                )
            })
    }

    /// Sends one record to the SIEM sink.
    pub fn emit_siem(&self, record: &serde_json::Value) {
        if let Ok(mut siem) = self.siem.lock() {
            siem.emit(record);
        }
    }
}
