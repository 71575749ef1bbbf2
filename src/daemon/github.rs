//! The daemon's side of the forge: the HTTP server, the webhook queue, PR
//! checks, the poll of open PRs, merge facts for commit processing, and the
//! status of each processed commit on GitHub.
//!
//! Webhooks are hints. The HTTP server only records a delivery in the store
//! and sends [`Event::Webhook`]; the loop then drains every unprocessed
//! delivery: a push to the tracked branch or a merged PR processes the
//! branch, a PR or review event re-checks that PR (each PR once per drain,
//! however many deliveries named it). A delivery is marked processed after
//! its attempt; what failed is caught by the poll, which on every tick
//! re-judges each open PR whose head, update time or base moved.

use super::{Daemon, DaemonError, Event, StepReport};
use crate::api::{self, ApiServer, WebhookState};
use crate::daemon::Clock;
use crate::daemon::config::RepoLocation;
use crate::daemon::process::CommitReport;
use crate::forge::webhook::WebhookHint;
use crate::forge::{CheckState, Forge, ForgeError, GitHubClient};
use crate::store::{CommitOutcome, Store};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

impl From<ForgeError> for DaemonError {
    fn from(error: ForgeError) -> Self {
        DaemonError::Forge(Box::new(error))
    }
}

impl From<api::ApiError> for DaemonError {
    fn from(error: api::ApiError) -> Self {
        DaemonError::Api(error.to_string())
    }
}

impl Daemon {
    /// Connects the forge when GitHub is configured (nothing is sent yet).
    pub fn connect_forge(&mut self, clock: Clock) -> Result<(), DaemonError> {
        if self.forge.is_some() {
            return Ok(());
        }
        if let Some(github) = &self.config.github {
            let client = GitHubClient::new(&github.settings, clock)?;
            let remote = matches!(self.config.repo, RepoLocation::Remote(_));
            let mut forge = Forge::new(Arc::new(client), self.config.branch.clone(), remote);
            forge.git_credentials = self.git_credentials.clone();
            self.forge = Some(forge);
        }
        Ok(())
    }

    /// Starts the HTTP server when a listen address is configured; webhooks
    /// are served when the forge has a webhook secret. Prints the address.
    pub(super) async fn start_api(
        &self,
        events: mpsc::Sender<Event>,
        clock: Clock,
    ) -> Result<Vec<ApiServer>, DaemonError> {
        let mut servers = Vec::new();
        let (api_router, api_context) = match &self.config.api {
            Some(api) => {
                let context = self.api_context(api, events.clone(), clock.clone())?;
                (
                    Some(api::v1::routes(context.clone())),
                    Some((context, api.metrics_token_sha256)),
                )
            }
            None => (None, None),
        };
        // The status page and /metrics: behind the API's authentication
        // (read roles; /metrics also the scrape token) when the API is
        // configured, open as before when it is not.
        let views_clock = clock.clone();
        let views = |daemon: &Daemon| -> Result<axum::Router, DaemonError> {
            let views = daemon.observability_routes(views_clock.clone())?;
            Ok(match &api_context {
                Some((context, metrics_token_sha256)) => api::auth::guard_views(
                    views,
                    Arc::new(api::auth::ViewGuard {
                        context: context.clone(),
                        metrics_token_sha256: *metrics_token_sha256,
                    }),
                ),
                None => views,
            })
        };
        let separate = self.config.api.as_ref().is_some_and(|api| {
            api.listen.is_some() || (api.tls.is_some() && self.config.listen.is_some())
        });
        if let (Some(api), Some(router)) = (&self.config.api, &api_router)
            && (separate || self.config.listen.is_none())
        {
            let address = api
                .listen
                .clone()
                .or_else(|| self.config.listen.clone())
                .unwrap_or_default();
            // The views too, so a client-certificate caller reaches them.
            let router = router.clone().merge(views(self)?);
            servers.push(serve_api(&address, router, api, self.health.clone()).await?);
        }
        let Some(address) = &self.config.listen else {
            return Ok(servers);
        };
        let incident_waker = events.clone();
        let incident_clock = clock.clone();
        let webhooks = match &self.config.github {
            Some(github) => match &github.webhook_secret {
                Some(secret) => Some(Arc::new(WebhookState {
                    secret: secret.clone(),
                    repository: format!("{}/{}", github.settings.owner, github.settings.repository),
                    // Concurrent deliveries share one commit (issue 17).
                    deliveries: crate::store::GroupCommitter::start(
                        Store::open_location(&self.config.store_location())?,
                        crate::store::GroupCommitOptions::default(),
                    )?,
                    clock,
                    // A full channel already holds a wake-up; the queue is the store.
                    on_enqueued: Box::new(move || {
                        let _ = events.try_send(Event::Webhook);
                    }),
                })),
                None => None,
            },
            None => None,
        };
        let incidents = &self.config.incidents;
        let mut router = api::router_with_health(webhooks, self.health.clone());
        if incidents.alertmanager.is_some() || incidents.webhook_secret.is_some() {
            let waker = incident_waker;
            let intake = Arc::new(api::incidents::IncidentIntake {
                alertmanager: incidents.alertmanager.clone(),
                webhook_secret: incidents.webhook_secret.clone(),
                store: Mutex::new(Store::open_location(&self.config.store_location())?),
                clock: incident_clock,
                // The gates read the store; wake the loop so they look now.
                on_recorded: Box::new(move || {
                    let _ = waker.try_send(Event::RepoChanged);
                }),
            });
            router = router.merge(api::incidents::routes(intake));
        }
        router = router.merge(views(self)?);
        if let (false, Some(api_router)) = (separate, api_router) {
            router = router.merge(api_router);
        }
        let server = ApiServer::start(address, router).await?;
        eprintln!("ringmaster: listening on http://{}", server.local_addr);
        servers.push(server);
        Ok(servers)
    }

    /// The shared context of `/api/v1` (and of the views behind its
    /// authentication).
    fn api_context(
        &self,
        api: &crate::daemon::api_config::ApiConfig,
        events: mpsc::Sender<Event>,
        clock: Clock,
    ) -> Result<Arc<api::context::ApiContext>, DaemonError> {
        let oidc = api
            .oidc
            .clone()
            .map(api::auth::oidc::OidcValidator::new)
            .transpose()
            .map_err(DaemonError::Api)?;
        let governed_path = match &self.config.repo {
            RepoLocation::Local(path) => path.clone(),
            RepoLocation::Remote(_) => self.config.state_dir.join("mirror.git"),
        };
        let context = api::context::ApiContext::new(api::context::ApiContextParts {
            database: self.config.store_location(),
            connections: api.store_connections,
            governed: api::governed::GovernedSource::new(governed_path, self.config.branch.clone()),
            evidence_repository: self.repo.repository.path().to_path_buf(),
            evidence_branch: self.config.evidence_branch.clone(),
            authenticator: api::auth::Authenticator {
                oidc,
                role_source: api.role_source,
            },
            limits: api::protect::Limits::new(api.limits.clone()),
            clock,
            siem: crate::daemon::siem::Siem::new(self.config.siem.clone()),
            // A full channel already holds a wake-up; the queue is the store.
            on_request: Box::new(move || {
                let _ = events.try_send(Event::ApiRequest);
            }),
            health: self.health.clone(),
        })?;
        Ok(Arc::new(context))
    }
}

/// Serves the API router on its own listener (TLS when configured).
async fn serve_api(
    address: &str,
    router: axum::Router,
    api: &crate::daemon::api_config::ApiConfig,
    health: api::health::HealthBoard,
) -> Result<ApiServer, DaemonError> {
    let router = router.route("/healthz", api::healthz(health));
    match &api.tls {
        Some(tls) => {
            let config = api::tls::server_config(tls).map_err(DaemonError::Api)?;
            let server = ApiServer::start_tls(address, router, config).await?;
            eprintln!("ringmaster: API listening on https://{}", server.local_addr);
            Ok(server)
        }
        None => {
            let server = ApiServer::start(address, router).await?;
            eprintln!("ringmaster: API listening on http://{}", server.local_addr);
            Ok(server)
        }
    }
}

impl Daemon {
    /// Publishes the daemon's circuit breakers for the API's health view.
    pub(super) fn publish_health(&self, now: DateTime<Utc>) {
        self.health.publish(&self.git_fetch, now);
        self.health.publish(&self.push.breaker, now);
    }

    /// Drains the webhook queue (see the module doc).
    pub(super) async fn handle_webhooks(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let deliveries = self.store.unprocessed_deliveries()?;
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut pull_requests = BTreeSet::new();
        let mut branch_moved = false;
        let tracked = format!("refs/heads/{}", self.config.branch);
        for delivery in &deliveries {
            match serde_json::from_value::<WebhookHint>(delivery.payload.clone()) {
                Ok(WebhookHint::Push { reference, .. }) => branch_moved |= reference == tracked,
                Ok(WebhookHint::PullRequest { number, merged, .. }) => {
                    branch_moved |= merged;
                    pull_requests.insert(number);
                }
                Ok(WebhookHint::PullRequestReview { number, .. }) => {
                    pull_requests.insert(number);
                }
                Ok(WebhookHint::Ping) => {}
                Err(error) => {
                    tracing::warn!(delivery = %delivery.delivery_id, %error, "unreadable queued delivery; dropped")
                }
            }
        }
        if branch_moved && let Some(schedule) = &mut self.schedule {
            schedule.want_step();
        }
        for number in pull_requests {
            self.check_pull_request(number, now).await;
        }
        for delivery in deliveries {
            self.store
                .mark_delivery_processed(&delivery.delivery_id, now)?;
        }
        Ok(())
    }

    /// Hands the forge what the store knows, so PR checks judge with the
    /// same runtime facts as the tracked branch (rolled-back versions,
    /// changes in flight).
    fn refresh_forge_runtime(&mut self) {
        let Some(forge) = self.forge.as_mut() else {
            return;
        };
        match super::process::StoreFacts::read(&self.store) {
            Ok(facts) => forge.set_runtime(Arc::new(facts)),
            Err(error) => tracing::warn!(%error, "could not read runtime facts for PR checks"),
        }
    }

    async fn check_pull_request(&mut self, number: u64, now: DateTime<Utc>) {
        self.refresh_forge_runtime();
        let Some(forge) = self.forge.as_mut() else {
            return;
        };
        match forge.check_pull_request(&self.repo, number, now).await {
            Ok(outcome) => {
                tracing::info!(number, state = ?outcome.state, summary = %outcome.summary, api_calls = outcome.api_calls, "checked pull request")
            }
            Err(error) => {
                tracing::warn!(number, %error, "pull request check failed; the poll retries")
            }
        }
    }

    /// The safety net behind webhooks: re-judges open PRs that moved.
    pub(super) async fn poll_forge(&mut self, now: DateTime<Utc>) {
        self.refresh_forge_runtime();
        let Some(forge) = self.forge.as_mut() else {
            return;
        };
        match forge.poll_pull_requests(&self.repo, now).await {
            Ok(outcomes) => {
                for outcome in outcomes {
                    tracing::info!(number = outcome.number, state = ?outcome.state, "polled pull request");
                }
            }
            Err(error) => tracing::warn!(%error, "polling pull requests failed; will retry"),
        }
    }

    /// `serve --once`: the queued deliveries, one step (the tracked branch,
    /// rollouts, evidence), then every open PR — all that is pending, once.
    pub async fn run_once(&mut self, clock: Clock) -> Result<StepReport, DaemonError> {
        self.connect_forge(clock.clone())?;
        // On a shared store a standby only says who leads (the step below
        // finds it out again and does nothing).
        let leading = self.lead(clock())?.is_none_or(|(leading, _)| leading);
        if leading {
            self.refresh_git_token().await;
            if self.forge.is_some() {
                self.handle_webhooks(clock()).await?;
            }
        }
        let step = self.step(clock()).await?;
        if step.leadership.is_none_or(|(leading, _)| leading) {
            self.poll_forge(clock()).await;
        }
        Ok(step)
    }

    /// Posts `ringmaster/policy` on each processed commit: the decisions the
    /// commit recorded, re-evaluated on the merged tree. Failures are logged;
    /// the evidence, not the status, is the record.
    pub(super) async fn report_to_forge(&self, reports: &[CommitReport]) {
        let Some(forge) = &self.forge else {
            return;
        };
        for report in reports {
            let (state, summary) = self.commit_summary(report);
            let details = format!("Re-evaluated on merge: {summary}");
            let result = forge
                .publish(&report.commit, state, &summary, &details, None)
                .await;
            if let Err(error) = result {
                tracing::warn!(commit = %report.commit, %error, "could not post the merged commit's status");
            }
        }
    }

    fn commit_summary(&self, report: &CommitReport) -> (CheckState, String) {
        if report.outcome == CommitOutcome::Invalid {
            return (
                CheckState::Failure,
                format!(
                    "{} invalid file(s); the last good snapshot stays in force",
                    report.errors
                ),
            );
        }
        let mut decisions = Vec::new();
        for record in &report.records {
            let Some(intent_id) = &record.intent_id else {
                continue;
            };
            let decision = self
                .store
                .get_intent(intent_id)
                .ok()
                .flatten()
                .and_then(|intent| intent.decision)
                .unwrap_or_else(|| "UNKNOWN".into());
            decisions.push((intent_id.clone(), decision, record.sequence));
        }
        let state = if decisions.iter().any(|(_, d, _)| d == "DENY") {
            CheckState::Failure
        } else if decisions.iter().any(|(_, d, _)| d != "ALLOW") {
            CheckState::Pending
        } else {
            CheckState::Success
        };
        let summary = if decisions.is_empty() {
            "no decision changed".to_owned()
        } else {
            decisions
                .iter()
                .map(|(intent, decision, sequence)| {
                    format!("{intent} {decision} (evidence #{sequence})")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        (state, crate::forge::check::truncate(&summary, 140))
    }
}
