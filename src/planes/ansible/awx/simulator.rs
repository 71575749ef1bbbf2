//! `simulator`: an AWX / Automation Controller API simulator for tests, a real
//! HTTP server on `127.0.0.1:0`.
//!
//! It holds job templates (with their `ask_*_on_launch` flags) and the hosts of
//! the inventory. A launch answers `201 Created` with a `Location` and the job,
//! and puts every prompted field the template does not ask for into
//! `ignored_fields` (the job still launches, as AWX does). Each `GET jobs/{id}/`
//! moves the job one step: `pending` → `running` → `successful` (or `failed`
//! when a host of its limit is marked failing). Host summaries page with
//! `next`. Requests without the bearer token answer 401 with AWX's `detail`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
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

#[derive(Debug, Clone)]
struct SimJob {
    status: &'static str,
    template: u64,
    extra_vars: Map<String, Value>,
    hosts: Vec<String>,
}

#[derive(Debug, Default)]
struct SimState {
    templates: BTreeMap<u64, AskOnLaunch>,
    /// Inventory group → hosts.
    groups: BTreeMap<String, Vec<String>>,
    failing: BTreeSet<String>,
    jobs: BTreeMap<u64, SimJob>,
    next_job: u64,
    launches: u64,
}

/// A handle to the simulator; clones share its state.
#[derive(Clone)]
pub struct AwxSimulator {
    state: Arc<Mutex<SimState>>,
    token: String,
    page_size: usize,
}

impl AwxSimulator {
    pub fn new(token: &str, page_size: usize) -> AwxSimulator {
        AwxSimulator {
            state: Arc::new(Mutex::new(SimState {
                next_job: 100,
                ..SimState::default()
            })),
            token: token.to_string(),
            page_size: page_size.max(1),
        }
    }

    fn with<T>(&self, action: impl FnOnce(&mut SimState) -> T) -> T {
        action(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn add_template(&self, id: u64, ask: AskOnLaunch) {
        self.with(|state| state.templates.insert(id, ask));
    }

    pub fn add_group(&self, group: &str, hosts: &[&str]) {
        self.with(|state| {
            state.groups.insert(
                group.to_string(),
                hosts.iter().map(|host| host.to_string()).collect(),
            )
        });
    }

    /// The host's tasks fail in every later job.
    pub fn fail_host(&self, host: &str) {
        self.with(|state| state.failing.insert(host.to_string()));
    }

    pub fn launches(&self) -> u64 {
        self.with(|state| state.launches)
    }

    /// The extra variables job `id` was launched with.
    pub fn job_extra_vars(&self, id: u64) -> Option<Map<String, Value>> {
        self.with(|state| state.jobs.get(&id).map(|job| job.extra_vars.clone()))
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v2/job_templates/{id}/launch/", post(launch))
            .route("/api/v2/jobs/{id}/", get(job))
            .route("/api/v2/jobs/{id}/job_host_summaries/", get(host_summaries))
            .with_state(self.clone())
    }

    /// Binds `127.0.0.1:0`, serves in a background task, answers the address.
    pub async fn start(&self) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "awx simulator stopped");
            }
        });
        Ok(address)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value == format!("Bearer {}", self.token))
    }
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

fn unauthorized() -> Response {
    detail(
        StatusCode::UNAUTHORIZED,
        "Authentication credentials were not provided.",
    )
}

async fn launch(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !simulator.authorized(&headers) {
        return unauthorized();
    }
    simulator.with(|state| {
        let Some(ask) = state.templates.get(&id).copied() else {
            return detail(StatusCode::NOT_FOUND, "Not found.");
        };
        let mut ignored = Map::new();
        let mut accepted = |field: &str, asked: bool| match body.get(field) {
            Some(value) if !asked => {
                ignored.insert(field.to_string(), value.clone());
                None
            }
            other => other.cloned(),
        };
        let extra_vars = accepted("extra_vars", ask.variables)
            .and_then(|value| value.as_object().cloned())
            .unwrap_or_default();
        let limit = accepted("limit", ask.limit)
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_default();
        accepted("job_type", ask.job_type);
        accepted("diff_mode", ask.diff_mode);
        let hosts: Vec<String> = if limit.is_empty() {
            state.groups.values().flatten().cloned().collect()
        } else {
            limit
                .split(':')
                .filter_map(|group| state.groups.get(group))
                .flatten()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let job_id = state.next_job;
        state.next_job += 1;
        state.launches += 1;
        state.jobs.insert(
            job_id,
            SimJob {
                status: "pending",
                template: id,
                extra_vars: extra_vars.clone(),
                hosts,
            },
        );
        let location = format!("/api/v2/jobs/{job_id}/");
        (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(json!({
                "job": job_id,
                "id": job_id,
                "type": "job",
                "status": "pending",
                "job_template": id,
                "extra_vars": Value::Object(extra_vars).to_string(),
                "limit": limit,
                "ignored_fields": ignored,
            })),
        )
            .into_response()
    })
}

async fn job(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> Response {
    if !simulator.authorized(&headers) {
        return unauthorized();
    }
    simulator.with(|state| {
        let failing = state.failing.clone();
        let Some(job) = state.jobs.get_mut(&id) else {
            return detail(StatusCode::NOT_FOUND, "Not found.");
        };
        job.status = match job.status {
            "pending" => "running",
            "running" if job.hosts.iter().any(|host| failing.contains(host)) => "failed",
            "running" => "successful",
            final_status => final_status,
        };
        Json(json!({
            "id": id,
            "type": "job",
            "job_template": job.template,
            "status": job.status,
            "failed": job.status == "failed",
            "job_explanation": "",
        }))
        .into_response()
    })
}

async fn host_summaries(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !simulator.authorized(&headers) {
        return unauthorized();
    }
    let page: usize = query
        .get("page")
        .and_then(|page| page.parse().ok())
        .unwrap_or(1)
        .max(1);
    simulator.with(|state| {
        let Some(job) = state.jobs.get(&id) else {
            return detail(StatusCode::NOT_FOUND, "Not found.");
        };
        let finished = matches!(job.status, "successful" | "failed");
        let rows: Vec<Value> = if finished {
            job.hosts
                .iter()
                .map(|host| {
                    let failed = state.failing.contains(host);
                    json!({
                        "host_name": host,
                        "ok": if failed { 1 } else { 3 },
                        "changed": if failed { 0 } else { 1 },
                        "failures": u32::from(failed),
                        "dark": 0,
                        "skipped": 0,
                        "failed": failed,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let size = simulator.page_size;
        let start = (page - 1) * size;
        let results: Vec<Value> = rows.iter().skip(start).take(size).cloned().collect();
        let next = (start + size < rows.len())
            .then(|| format!("/api/v2/jobs/{id}/job_host_summaries/?page={}", page + 1));
        Json(json!({
            "count": rows.len(),
            "next": next,
            "previous": Value::Null,
            "results": results,
        }))
        .into_response()
    })
}
