//! `routes`: the simulated endpoints, AWX's list paging and filters, and the
//! fault and bearer-token layer in front of them.

use super::TokenState;
use super::{AwxSimulator, HostResult, JobProgress, LostRequest, SimJob, SimState};
use crate::planes::http::{percent_decode, query_value};
use crate::planes::simulators::kit;
use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// DRF's error body, `{"detail": ...}`.
fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

pub async fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not found.")
}

/// The query pairs, decoded, in order.
fn pairs(raw_query: Option<&str>) -> Vec<(String, String)> {
    raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// One page of `items` as AWX answers lists: `count`, `next`, `previous`
/// (relative URLs keeping the other query parameters), `results`.
fn page(items: Vec<Value>, path: &str, raw_query: Option<&str>, max_size: usize) -> Response {
    let count = items.len();
    page_of(
        count,
        |range| {
            items
                .into_iter()
                .skip(range.start)
                .take(range.len())
                .collect()
        },
        path,
        raw_query,
        max_size,
    )
}

/// As [`page`], for `count` items of which only the page asked for is built.
fn page_of(
    count: usize,
    items_in: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
    path: &str,
    raw_query: Option<&str>,
    max_size: usize,
) -> Response {
    let number = query_value(raw_query, "page")
        .and_then(|page| page.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let size = query_value(raw_query, "page_size")
        .and_then(|size| size.parse::<usize>().ok())
        .unwrap_or(max_size)
        .clamp(1, max_size);
    let start = (number - 1) * size;
    if start > 0 && start >= count {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let link = |page: usize| {
        let query = kit::query_with(raw_query, "page", &page.to_string());
        format!("{path}?{query}")
    };
    let next = (start + size < count).then(|| link(number + 1));
    let previous = (number > 1).then(|| link(number - 1));
    let results: Vec<Value> = items_in(start.min(count)..(start + size).min(count));
    Json(json!({
        "count": count,
        "next": next,
        "previous": previous,
        "results": results,
    }))
    .into_response()
}

fn job_body(job: &SimJob, template_name: &str) -> Value {
    json!({
        "id": job.id,
        "type": "job",
        "url": format!("/api/v2/jobs/{}/", job.id),
        "name": template_name,
        "job_template": job.template,
        "job_type": job.job_type,
        "status": job.status,
        "failed": matches!(job.status, "failed" | "error"),
        "limit": job.limit,
        "extra_vars": Value::Object(job.extra_vars.clone()).to_string(),
        "finished": job.finished.map(|at| at.to_rfc3339()),
        "job_explanation": "",
        "launch_type": "manual",
    })
}

fn template_name(state: &SimState, id: u64) -> String {
    state
        .templates
        .get(&id)
        .map(|template| template.name.clone())
        .unwrap_or_default()
}

pub async fn launch_info(State(simulator): State<AwxSimulator>, Path(id): Path<u64>) -> Response {
    let state = simulator.lock();
    let Some(template) = state.templates.get(&id) else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    let ask = template.ask;
    Json(json!({
        "ask_variables_on_launch": ask.variables,
        "ask_limit_on_launch": ask.limit,
        "ask_job_type_on_launch": ask.job_type,
        "ask_diff_mode_on_launch": ask.diff_mode,
        "can_start_without_user_input": true,
        "passwords_needed_to_start": [],
        "variables_needed_to_start": [],
        "survey_enabled": false,
    }))
    .into_response()
}

pub async fn launch(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    let mut state = simulator.lock();
    let Some(ask) = state.templates.get(&id).map(|template| template.ask) else {
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
    let extra_vars = match accepted("extra_vars", ask.variables) {
        Some(Value::Object(map)) => map,
        Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or_default(),
        _ => Map::new(),
    };
    let limit = accepted("limit", ask.limit)
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let job_type = accepted("job_type", ask.job_type)
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_else(|| "run".into());
    if !matches!(job_type.as_str(), "run" | "check") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"job_type": [format!("\"{job_type}\" is not a valid choice.")]})),
        )
            .into_response();
    }
    accepted("diff_mode", ask.diff_mode);
    let hosts = state.hosts_of_limit(&limit);
    let job_id = state.next_job;
    state.next_job += 1;
    state.launches += 1;
    let job = SimJob {
        id: job_id,
        template: id,
        status: "pending",
        limit,
        job_type,
        extra_vars,
        hosts,
        results: BTreeMap::new(),
        changed: Default::default(),
        finished: None,
    };
    let mut answer = job_body(&job, &template_name(&state, id));
    answer["job"] = json!(job_id);
    answer["ignored_fields"] = Value::Object(ignored);
    state.jobs.insert(job_id, job);
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v2/jobs/{job_id}/"))],
        Json(answer),
    )
        .into_response()
}

/// `GET jobs/{id}/cancel/`: whether the job can still be canceled.
pub async fn can_cancel(State(simulator): State<AwxSimulator>, Path(id): Path<u64>) -> Response {
    let state = simulator.lock();
    let Some(job) = state.jobs.get(&id) else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    let open = matches!(job.status, "new" | "pending" | "waiting" | "running");
    Json(serde_json::json!({ "can_cancel": open })).into_response()
}

/// `POST jobs/{id}/cancel/`: as AWX's `JobCancel`, 202 and the job ends
/// `canceled` (no host result appears) while it is new, pending, waiting
/// or running; 405 once it is final.
pub async fn cancel(State(simulator): State<AwxSimulator>, Path(id): Path<u64>) -> Response {
    let mut state = simulator.lock();
    let Some(job) = state.jobs.get_mut(&id) else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    if !matches!(job.status, "new" | "pending" | "waiting" | "running") {
        return detail(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method \"POST\" not allowed.",
        );
    }
    job.status = "canceled";
    StatusCode::ACCEPTED.into_response()
}

pub async fn job(State(simulator): State<AwxSimulator>, Path(id): Path<u64>) -> Response {
    let mut state = simulator.lock();
    let progress = state.progress;
    let failing = state.failing.clone();
    let Some((status, hosts)) = state
        .jobs
        .get(&id)
        .map(|job| (job.status, job.hosts.clone()))
    else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    if progress == JobProgress::OnPoll {
        match status {
            "new" | "pending" | "waiting" => {
                if let Some(job) = state.jobs.get_mut(&id) {
                    job.status = "running";
                }
            }
            "running" => {
                let results: BTreeMap<String, HostResult> = hosts
                    .into_iter()
                    .map(|host| {
                        let result = if failing.contains(&host) {
                            HostResult::Failed
                        } else {
                            HostResult::Ok
                        };
                        (host, result)
                    })
                    .collect();
                state.finish(id, None, results);
            }
            _ => {}
        }
    }
    let job = state.jobs.get(&id).cloned();
    match job {
        Some(job) => Json(job_body(&job, &template_name(&state, job.template))).into_response(),
        None => detail(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// `GET jobs/`: the filters and ordering ringmaster uses, the rest refused.
pub async fn list_jobs(
    State(simulator): State<AwxSimulator>,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let mut jobs: Vec<&SimJob> = state.jobs.values().collect();
    let mut descending = false;
    for (key, value) in pairs(raw_query.as_deref()) {
        match key.as_str() {
            "page" | "page_size" => {}
            "order_by" => match value.as_str() {
                "id" | "created" => descending = false,
                "-id" | "-created" => descending = true,
                other => {
                    return detail(
                        StatusCode::BAD_REQUEST,
                        &format!("Cannot resolve keyword '{other}' into field."),
                    );
                }
            },
            "job_template" => jobs.retain(|job| job.template.to_string() == value),
            "job_template__in" => {
                let wanted: Vec<&str> = value.split(',').collect();
                jobs.retain(|job| wanted.contains(&job.template.to_string().as_str()));
            }
            "status" => jobs.retain(|job| job.status == value),
            "id__gt" => {
                let floor: u64 = value.parse().unwrap_or(0);
                jobs.retain(|job| job.id > floor);
            }
            other => {
                return detail(
                    StatusCode::BAD_REQUEST,
                    &format!("Cannot resolve keyword '{other}' into field."),
                );
            }
        }
    }
    if descending {
        jobs.reverse();
    }
    // Only the page asked for is built.
    page_of(
        jobs.len(),
        |range| {
            jobs[range]
                .iter()
                .map(|job| job_body(job, &template_name(&state, job.template)))
                .collect()
        },
        uri.path(),
        raw_query.as_deref(),
        simulator.page_size,
    )
}

pub async fn host_summaries(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let Some(job) = state.jobs.get(&id) else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    let rows: Vec<Value> = job
        .results
        .iter()
        .map(|(host, result)| {
            let (ok, changed, failures, dark) = match result {
                HostResult::Ok => (3, u32::from(job.changed.contains(host)), 0, 0),
                HostResult::Failed => (1, 0, 1, 0),
                HostResult::Unreachable => (0, 0, 0, 1),
            };
            json!({
                "host": state.host_id(host),
                "host_name": host,
                "job": id,
                "ok": ok,
                "changed": changed,
                "failures": failures,
                "dark": dark,
                "skipped": 0,
                "processed": 1,
                "rescued": 0,
                "ignored": 0,
                "failed": failures + dark > 0,
            })
        })
        .collect();
    page(rows, uri.path(), raw_query.as_deref(), simulator.page_size)
}

pub async fn inventory_groups(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let state = simulator.lock();
    if id != state.inventory_id {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    }
    let wanted = query_value(raw_query.as_deref(), "name");
    let items = state
        .groups
        .iter()
        .filter(|(name, _)| wanted.as_ref().is_none_or(|wanted| wanted == *name))
        .map(
            |(name, group)| json!({"id": group.id, "type": "group", "name": name, "inventory": id}),
        )
        .collect();
    page(items, uri.path(), raw_query.as_deref(), simulator.page_size)
}

pub async fn group_hosts(
    State(simulator): State<AwxSimulator>,
    Path(id): Path<u64>,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let state = simulator.lock();
    let Some(group) = state.groups.values().find(|group| group.id == id) else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    let items = group
        .hosts
        .iter()
        .map(|host| {
            json!({"id": state.host_id(host), "type": "host", "name": host, "inventory": state.inventory_id})
        })
        .collect();
    page(items, uri.path(), raw_query.as_deref(), simulator.page_size)
}

fn lost_request_of(method: &Method, path: &str) -> Option<LostRequest> {
    let launch = path.starts_with("/api/v2/job_templates/") && path.ends_with("/launch/");
    (method == Method::POST && launch).then_some(LostRequest::Launch)
}

/// AWX's (DRF's) words for the answers the kit gives.
struct AwxAnswers;

impl kit::Answers for AwxAnswers {
    fn throttled(&self, retry_after: Option<std::time::Duration>) -> Response {
        let seconds = retry_after.map_or(1.0, |delay| delay.as_secs_f64().ceil());
        detail(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Request was throttled. Expected available in {seconds} seconds."),
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        detail(status, "A server error has occurred.")
    }

    fn rejected(&self, status: StatusCode) -> Response {
        let text = match status.as_u16() {
            403 => "You do not have permission to perform this action.",
            404 => "Not found.",
            _ => "The request was refused by the simulator's injected fault.",
        };
        detail(status, text)
    }

    fn shutting_down(&self) -> Response {
        detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "The simulator is shutting down.",
        )
    }
}

/// Counts requests, plays the next fault, checks the bearer token.
pub async fn faults_and_auth(
    State(simulator): State<AwxSimulator>,
    request: Request,
    next: Next,
) -> Response {
    let kind = lost_request_of(request.method(), request.uri().path());
    let drawn = simulator.lock().faults.draw(|lost| Some(*lost) == kind);
    if let Some(fault) = drawn.fault {
        return kit::play(fault, &AwxAnswers, &simulator.shutdown).await;
    }
    let valid = kit::bearer(request.headers()).is_some_and(|token| {
        simulator
            .lock()
            .tokens
            .iter()
            .any(|(known, state)| *known == token && *state == TokenState::Valid)
    });
    if !valid {
        return detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided. To establish a login session, visit /api/login/.",
        );
    }
    // What AWX itself refuses (a filter on extra_vars, an unknown field, a
    // launch body field the serializer does not have), as AWX answers it.
    let refuse = |status, _code, message: &str| detail(status, message);
    let request = match kit::screen(crate::planes::apispec::awx(), request, refuse).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let response = next.run(request).await;
    kit::lose_if_drawn(drawn.lose, response, &AwxAnswers, &simulator.shutdown).await
}
