//! The read-only views the HTTP server adds to the daemon: `/metrics` and
//! the status page at `/`. Each reads the store through its own connection.

use super::config::RepoLocation;
use super::{Clock, Daemon, DaemonError};
use crate::api;
use crate::metrics::approvals::ApprovalSource;
use crate::store::Store;
use axum::Router;
use std::sync::Arc;

impl Daemon {
    /// The routes of the views, each with its own read connection.
    pub(super) fn observability_routes(&self, clock: Clock) -> Result<Router, DaemonError> {
        let database = self.config.store_location();
        let repo = match &self.config.repo {
            RepoLocation::Local(path) => path.clone(),
            RepoLocation::Remote(_) => self.config.state_dir.join("mirror.git"),
        };
        let repo_path = repo.clone();
        let approvals = ApprovalSource::new(repo, self.config.branch.clone());
        let metrics = api::metrics::MetricsState::new(
            Store::open_location(&database)?,
            approvals,
            clock.clone(),
        );
        let status = api::status_page::StatusPageState {
            store: std::sync::Mutex::new(Store::open_location(&database)?),
            evidence: Some((repo_path, self.config.evidence_branch.clone())),
            clock,
        };
        Ok(api::metrics::routes(Arc::new(metrics))
            .merge(api::status_page::routes(Arc::new(status))))
    }
}
