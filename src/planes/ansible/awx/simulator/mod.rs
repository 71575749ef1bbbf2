//! `simulator`: an AWX / Automation Controller API simulator, a real HTTP
//! server (`127.0.0.1:0` in tests, `serve` on any listener).
//!
//! It holds job templates (with their `ask_*_on_launch` flags), one inventory
//! of groups and hosts, and the jobs launched. What it imitates
//! (`execution-planes.md` 5.2):
//!
//! - `POST job_templates/{id}/launch/` answers `201 Created` with a `Location`
//!   and the job; every prompted field the template does not ask for comes
//!   back in `ignored_fields` and the job still launches. `GET` on the same
//!   path answers the `ask_*` flags.
//! - The job's hosts are its `limit` resolved as an Ansible host pattern over
//!   the inventory (groups and host names, `!` exclusions, `:` or `,`).
//! - Jobs go `pending` → `running` → `successful`/`failed`: one step per
//!   `GET jobs/{id}/` ([`JobProgress::OnPoll`]), or only when a control
//!   finishes them ([`JobProgress::OnControl`]: [`AwxSimulator::finish_job`],
//!   [`AwxSimulator::check_in`]), which also stamps `finished`.
//! - `GET jobs/` with `job_template`, `job_template__in`,
//!   `status`, `id__gt`, `order_by` (a filter on `extra_vars` is refused
//!   with AWX's 403, as every request AWX's API would refuse: see
//!   `planes::apispec`); an unknown
//!   filter field is a 400.
//! - `job_host_summaries` of a finished job (`host_name, ok, changed,
//!   failures, dark, skipped, failed`); inventory groups by `name`, group
//!   `hosts/` and `all_hosts/`.
//! - Every list pages with `count`, `next`, `previous`, `results` and
//!   `page`/`page_size` (capped at the simulator's page size); `next` is a
//!   relative URL, as AWX sends it.
//! - Bearer tokens: a missing, expired or revoked token answers 401 with
//!   DRF's `{"detail": ...}`.
//! - Switchable faults ([`SimulatorFault`]): 429 with or without
//!   `Retry-After` (AWX documents no throttling; a gateway in front may),
//!   5xx storms, slow answers, an answer lost after the launch was applied,
//!   rejections with DRF's error body.

mod routes;

use crate::planes::simulators::kit::{self, Fault, Faults, Shutdown};
use axum::Router;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;

/// Which prompted fields a template accepts on launch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AskOnLaunch {
    pub variables: bool,
    pub limit: bool,
    pub job_type: bool,
    pub diff_mode: bool,
}

impl AskOnLaunch {
    pub fn all() -> AskOnLaunch {
        AskOnLaunch {
            variables: true,
            limit: true,
            job_type: true,
            diff_mode: true,
        }
    }
}

/// How jobs move towards a final status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobProgress {
    /// One step per `GET jobs/{id}/`; hosts marked with `fail_host` fail.
    #[default]
    OnPoll,
    /// Jobs wait in `pending` until a control finishes them.
    OnControl,
}

/// How one host came out of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostResult {
    Ok,
    Failed,
    Unreachable,
}

/// Which request loses its answer after it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRequest {
    /// `POST job_templates/{id}/launch/`: the job exists, the answer never comes.
    Launch,
}

/// A failure of the next request(s) to the API. (AWX documents no
/// throttling; a gateway in front may. A 429 carries DRF's throttle text, a
/// rejection `{"detail": ...}`.)
pub type SimulatorFault = Fault<LostRequest>;

/// A job as a test sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub id: u64,
    pub template: u64,
    pub status: String,
    pub limit: String,
    pub job_type: String,
    pub extra_vars: Map<String, Value>,
    /// The hosts its limit resolved to at launch.
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone)]
struct SimTemplate {
    name: String,
    ask: AskOnLaunch,
}

#[derive(Debug, Clone)]
struct SimGroup {
    id: u64,
    hosts: Vec<String>,
}

#[derive(Debug, Clone)]
struct SimJob {
    id: u64,
    template: u64,
    status: &'static str,
    limit: String,
    job_type: String,
    extra_vars: Map<String, Value>,
    hosts: Vec<String>,
    results: BTreeMap<String, HostResult>,
    /// Hosts whose summary says `changed` (fixed when the job finishes).
    changed: BTreeSet<String>,
    finished: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenState {
    Valid,
    Expired,
    Revoked,
}

#[derive(Debug)]
struct SimState {
    templates: BTreeMap<u64, SimTemplate>,
    inventory_id: u64,
    groups: BTreeMap<String, SimGroup>,
    failing: BTreeSet<String>,
    /// Hosts that lost the app: check-mode jobs report them changed.
    drifted: BTreeSet<String>,
    jobs: BTreeMap<u64, SimJob>,
    next_job: u64,
    next_group: u64,
    launches: u64,
    tokens: Vec<(String, TokenState)>,
    /// The faults waiting for the next requests, and the request count.
    faults: Faults<LostRequest>,
    /// Every host's id (see `host_id`).
    host_ids: std::collections::HashMap<String, u64>,
    token_requests: u64,
    progress: JobProgress,
}

impl SimState {
    /// Host ids are stable: their position among every host name (looked
    /// up in `host_ids`, made again whenever a group changes).
    fn host_id(&self, host: &str) -> u64 {
        self.host_ids.get(host).copied().unwrap_or(1)
    }

    fn index_hosts(&mut self) {
        let hosts: BTreeSet<&String> = self.groups.values().flat_map(|g| &g.hosts).collect();
        self.host_ids = hosts
            .into_iter()
            .enumerate()
            .map(|(position, host)| (host.clone(), position as u64 + 1))
            .collect();
    }

    /// The hosts of an Ansible host pattern over the inventory.
    fn hosts_of_limit(&self, limit: &str) -> Vec<String> {
        let every: BTreeSet<String> = self
            .groups
            .values()
            .flat_map(|group| group.hosts.iter().cloned())
            .collect();
        let expand = |term: &str| -> Vec<String> {
            if term == "all" {
                return every.iter().cloned().collect();
            }
            match self.groups.get(term) {
                Some(group) => group.hosts.clone(),
                None if every.contains(term) => vec![term.to_string()],
                None => Vec::new(),
            }
        };
        let terms: Vec<&str> = limit
            .split([':', ','])
            .map(str::trim)
            .filter(|term| !term.is_empty())
            .collect();
        let positive: Vec<&str> = terms
            .iter()
            .copied()
            .filter(|term| !term.starts_with(['!', '&']))
            .collect();
        let mut hosts: BTreeSet<String> = if positive.is_empty() {
            every.clone()
        } else {
            positive.iter().flat_map(|term| expand(term)).collect()
        };
        for term in &terms {
            if let Some(required) = term.strip_prefix('&') {
                let keep: BTreeSet<String> = expand(required).into_iter().collect();
                hosts.retain(|host| keep.contains(host));
            }
        }
        for term in &terms {
            if let Some(excluded) = term.strip_prefix('!') {
                for host in expand(excluded) {
                    hosts.remove(&host);
                }
            }
        }
        hosts.into_iter().collect()
    }

    fn finish(
        &mut self,
        id: u64,
        at: Option<DateTime<Utc>>,
        results: BTreeMap<String, HostResult>,
    ) {
        if let Some(job) = self.jobs.get_mut(&id) {
            let succeeded = results
                .iter()
                .filter(|(_, result)| **result == HostResult::Ok)
                .map(|(host, _)| host.clone());
            if job.job_type == "check" {
                job.changed = succeeded
                    .filter(|host| self.drifted.contains(host))
                    .collect();
            } else {
                job.changed = succeeded.collect();
                for host in &job.changed {
                    self.drifted.remove(host);
                }
            }
            let failed = results.values().any(|result| *result != HostResult::Ok);
            job.status = if failed { "failed" } else { "successful" };
            job.results = results;
            job.finished = at;
        }
    }
}

/// A handle to the simulator; clones share its state.
#[derive(Clone)]
pub struct AwxSimulator {
    state: Arc<Mutex<SimState>>,
    /// Items per page at most (AWX's max page size, small in tests).
    page_size: usize,
    /// Flips to true at shutdown: held (slow or lost) answers are released.
    shutdown: Shutdown,
}

impl AwxSimulator {
    /// A controller that accepts `token` and pages lists by `page_size`.
    pub fn new(token: &str, page_size: usize) -> AwxSimulator {
        AwxSimulator {
            state: Arc::new(Mutex::new(SimState {
                templates: BTreeMap::new(),
                inventory_id: 1,
                groups: BTreeMap::new(),
                failing: BTreeSet::new(),
                drifted: BTreeSet::new(),
                jobs: BTreeMap::new(),
                next_job: 100,
                next_group: 10,
                launches: 0,
                tokens: vec![(token.to_string(), TokenState::Valid)],
                faults: Faults::default(),
                host_ids: std::collections::HashMap::new(),
                token_requests: 0,
                progress: JobProgress::OnPoll,
            })),
            page_size: page_size.max(1),
            shutdown: Shutdown::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_job_progress(&self, progress: JobProgress) {
        self.lock().progress = progress;
    }

    /// The inventory (1 unless changed) whose groups `add_group` fills.
    pub fn inventory_id(&self) -> u64 {
        self.lock().inventory_id
    }

    pub fn add_template(&self, id: u64, ask: AskOnLaunch) {
        let name = format!("template-{id}");
        self.lock().templates.insert(id, SimTemplate { name, ask });
    }

    /// Adds (or replaces the hosts of) an inventory group.
    pub fn add_group(&self, group: &str, hosts: &[&str]) {
        let mut state = self.lock();
        let id = match state.groups.get(group) {
            Some(existing) => existing.id,
            None => {
                state.next_group += 1;
                state.next_group
            }
        };
        let hosts = hosts.iter().map(|host| host.to_string()).collect();
        state
            .groups
            .insert(group.to_string(), SimGroup { id, hosts });
        state.index_hosts();
    }

    /// The host's tasks fail in every later job.
    pub fn fail_host(&self, host: &str) {
        self.lock().failing.insert(host.to_string());
    }

    /// The host lost the app behind ringmaster's back: a check-mode job
    /// (`job_type: check`) reports it `changed`, a later run repairs it.
    pub fn drift_host(&self, host: &str) {
        self.lock().drifted.insert(host.to_string());
    }

    pub fn launches(&self) -> u64 {
        self.lock().launches
    }

    /// The extra variables job `id` was launched with.
    pub fn job_extra_vars(&self, id: u64) -> Option<Map<String, Value>> {
        self.lock().jobs.get(&id).map(|job| job.extra_vars.clone())
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<JobView> {
        self.lock()
            .jobs
            .values()
            .map(|job| JobView {
                id: job.id,
                template: job.template,
                status: job.status.to_string(),
                limit: job.limit.clone(),
                job_type: job.job_type.clone(),
                extra_vars: job.extra_vars.clone(),
                hosts: job.hosts.clone(),
            })
            .collect()
    }

    /// Finishes an unfinished job at `at` with these host results (hosts of
    /// the job left out get no summary row); false when it was finished.
    pub fn finish_job(
        &self,
        id: u64,
        at: DateTime<Utc>,
        results: &BTreeMap<String, HostResult>,
    ) -> bool {
        let mut state = self.lock();
        let Some(job) = state.jobs.get(&id) else {
            return false;
        };
        if matches!(job.status, "successful" | "failed" | "error" | "canceled") {
            return false;
        }
        let kept = results
            .iter()
            .filter(|(host, _)| job.hosts.contains(host))
            .map(|(host, result)| (host.clone(), *result))
            .collect();
        state.finish(id, Some(at), kept);
        true
    }

    /// Finishes every job still pending or running at `at`: a host marked
    /// with `fail_host` fails, any other fails for a deterministic share
    /// `1 - success_rate` (a UUID v5 draw on job and host). Answers how many
    /// host results appeared.
    pub fn check_in(&self, at: DateTime<Utc>, success_rate: f64) -> usize {
        let mut state = self.lock();
        let open: Vec<(u64, Vec<String>)> = state
            .jobs
            .values()
            .filter(|job| matches!(job.status, "new" | "pending" | "waiting" | "running"))
            .map(|job| (job.id, job.hosts.clone()))
            .collect();
        let mut changed = 0;
        for (id, hosts) in open {
            let results: BTreeMap<String, HostResult> = hosts
                .into_iter()
                .map(|host| {
                    let draw = uuid::Uuid::new_v5(
                        &uuid::Uuid::NAMESPACE_OID,
                        format!("awx-job-{id}/{host}").as_bytes(),
                    );
                    let fraction = (draw.as_u128() % 10_000) as f64 / 10_000.0;
                    let result = if state.failing.contains(&host) || fraction >= success_rate {
                        HostResult::Failed
                    } else {
                        HostResult::Ok
                    };
                    (host, result)
                })
                .collect();
            changed += results.len();
            state.finish(id, Some(at), results);
        }
        changed
    }

    /// Jobs ringmaster did not launch (a patch run of every host), finished,
    /// so job lists span pages.
    pub fn add_unrelated_jobs(&self, count: usize) {
        let mut state = self.lock();
        let Some(template) = state.templates.keys().next().copied() else {
            return;
        };
        for index in 0..count {
            let id = state.next_job;
            state.next_job += 1;
            let mut extra_vars = Map::new();
            extra_vars.insert("patch_window".into(), json!(format!("weekly-{index}")));
            state.jobs.insert(
                id,
                SimJob {
                    id,
                    template,
                    status: "successful",
                    limit: String::new(),
                    job_type: "run".into(),
                    extra_vars,
                    hosts: Vec::new(),
                    results: BTreeMap::new(),
                    changed: BTreeSet::new(),
                    finished: None,
                },
            );
        }
    }

    /// Queues a fault for the next request(s).
    pub fn inject(&self, fault: SimulatorFault) {
        self.lock().faults.inject(fault);
    }

    /// Every token issued so far expires (a personal token past its
    /// expiry answers 401 like a wrong one).
    pub fn expire_tokens(&self) {
        for (_, state) in self.lock().tokens.iter_mut() {
            if *state == TokenState::Valid {
                *state = TokenState::Expired;
            }
        }
    }

    /// Issues a new valid token (what a user does with `POST /api/v2/tokens/`)
    /// and answers it.
    pub fn issue_token(&self) -> String {
        let token = format!("awx-{}", uuid::Uuid::new_v4().simple());
        let mut state = self.lock();
        state.token_requests += 1;
        state.tokens.push((token.clone(), TokenState::Valid));
        token
    }

    /// Every token is revoked from now on.
    pub fn revoke_credentials(&self) {
        for (_, state) in self.lock().tokens.iter_mut() {
            *state = TokenState::Revoked;
        }
    }

    /// Every token the simulator ever accepted, to search for in logs.
    pub fn credentials(&self) -> Vec<String> {
        self.lock()
            .tokens
            .iter()
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// Tokens issued by [`AwxSimulator::issue_token`].
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// API requests answered so far (faults included).
    pub fn api_requests(&self) -> u64 {
        self.lock().faults.requests()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/api/v2/job_templates/{id}/launch/",
                get(routes::launch_info).post(routes::launch),
            )
            .route("/api/v2/jobs/", get(routes::list_jobs))
            .route("/api/v2/jobs/{id}/", get(routes::job))
            .route(
                "/api/v2/jobs/{id}/cancel/",
                get(routes::can_cancel).post(routes::cancel),
            )
            .route(
                "/api/v2/jobs/{id}/job_host_summaries/",
                get(routes::host_summaries),
            )
            .route(
                "/api/v2/inventories/{id}/groups/",
                get(routes::inventory_groups),
            )
            .route("/api/v2/groups/{id}/hosts/", get(routes::group_hosts))
            .route("/api/v2/groups/{id}/all_hosts/", get(routes::group_hosts))
            .fallback(routes::not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                routes::faults_and_auth,
            ))
            .with_state(self.clone())
    }

    /// Binds `127.0.0.1:0`, serves in a background task until the handle's
    /// runtime ends, and answers the address.
    pub async fn start(&self) -> std::io::Result<SocketAddr> {
        kit::start(self.router(), self.shutdown.clone(), "awx").await
    }
}

/// Serves the simulator on `listener` until `shutdown` completes; held answers
/// are then released so the server can drain.
pub async fn serve(
    listener: TcpListener,
    simulator: AwxSimulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    kit::serve(
        listener,
        simulator.router(),
        simulator.shutdown.clone(),
        shutdown,
    )
    .await
}
