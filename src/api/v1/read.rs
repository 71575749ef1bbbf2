//! The read side of `/api/v1`: intents and rollouts, the approval queue,
//! exceptions, drift findings, events, incidents, plane health and the
//! rules in force. Everything is filtered to what the caller may see.

use super::view::{IntentView, RingView};
use super::{Page, segment_of};
use crate::api::auth::Caller;
use crate::api::auth::rbac::{self, Action, Segment, Target};
use crate::api::context::ApiContext;
use crate::api::problem::{ApiProblem, ProblemBody};
use crate::model::Role;
use crate::store::{Event, EventFilter, EventType, Store};
use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

fn limit_of(limit: Option<usize>) -> Result<usize, ApiProblem> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiProblem::bad_request("limit must be at least 1")),
        Some(limit) if limit > MAX_LIMIT => Err(ApiProblem::bad_request(format!(
            "limit must be at most {MAX_LIMIT}"
        ))),
        Some(limit) => Ok(limit),
    }
}

/// Paging through intents.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct IntentQuery {
    /// Only intents in this rollout state (`ring_in_progress`, `held`, ...).
    pub state: Option<String>,
    /// Only this business unit.
    pub business_unit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<usize>,
}

/// `GET /api/v1/intents`
#[utoipa::path(get, path = "/api/v1/intents", tag = "intents", params(IntentQuery),
    responses((status = 200, body = Page<IntentView>), (status = 401, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn list_intents(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Query(query): Query<IntentQuery>,
) -> Result<Json<Page<IntentView>>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    let limit = limit_of(query.limit)?;
    context
        .with_store(move |store, _| {
            let mut items = Vec::new();
            let mut next_cursor = None;
            for record in store.list_intents_after(query.cursor.as_deref(), usize::MAX)? {
                let segment = Segment {
                    acquisition_boundary: record.acquisition_boundary.clone(),
                    business_unit: Some(record.business_unit.clone()),
                };
                if !caller.may_read(Action::Read, Some(&segment))
                    || query
                        .business_unit
                        .as_ref()
                        .is_some_and(|bu| *bu != record.business_unit)
                {
                    continue;
                }
                let view = IntentView::of(&record);
                if query
                    .state
                    .as_ref()
                    .is_some_and(|state| *state != view.state)
                {
                    continue;
                }
                if items.len() == limit {
                    next_cursor = items.last().map(|last: &IntentView| last.intent_id.clone());
                    break;
                }
                items.push(view);
            }
            Ok(Json(Page { items, next_cursor }))
        })
        .await
}

/// One intent, readable by the caller.
fn visible_intent(
    store: &Store,
    caller: &Caller,
    intent_id: &str,
) -> Result<IntentView, ApiProblem> {
    let record = store
        .get_intent(intent_id)?
        .ok_or_else(|| ApiProblem::not_found(format!("no intent {intent_id:?}")))?;
    let segment = segment_of(&record);
    caller.authorise(
        Action::Read,
        &Target::Segment {
            segment,
            staging: true,
        },
    )?;
    Ok(IntentView::of(&record))
}

/// `GET /api/v1/intents/{intent_id}`
#[utoipa::path(get, path = "/api/v1/intents/{intent_id}", tag = "intents",
    params(("intent_id" = String, Path, description = "The intent id")),
    responses((status = 200, body = IntentView), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn get_intent(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Path(intent_id): Path<String>,
) -> Result<Json<IntentView>, ApiProblem> {
    context
        .with_store(move |store, _| visible_intent(store, &caller, &intent_id).map(Json))
        .await
}

/// `GET /api/v1/intents/{intent_id}/rings`
#[utoipa::path(get, path = "/api/v1/intents/{intent_id}/rings", tag = "intents",
    params(("intent_id" = String, Path, description = "The intent id")),
    responses((status = 200, body = [RingView]), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn get_rings(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Path(intent_id): Path<String>,
) -> Result<Json<Vec<RingView>>, ApiProblem> {
    context
        .with_store(move |store, _| {
            visible_intent(store, &caller, &intent_id).map(|v| Json(v.rings))
        })
        .await
}

/// An intent waiting for a decision made in Git.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalWait {
    pub intent_id: String,
    pub acquisition_boundary: String,
    pub business_unit: String,
    pub decision: Option<String>,
    /// `cab-approver` (an approval record or review) or `security-reviewer` (an exception).
    pub waits_for: String,
    /// The ring that cannot start without it, when the rollout is waiting at one.
    pub ring: Option<String>,
    /// What the policy asks for, as the rollout recorded it.
    #[schema(value_type = Option<Object>)]
    pub requirement: Option<Value>,
    /// When the intent was last judged to need it.
    pub since: Option<DateTime<Utc>>,
    /// Principals holding the role for the intent's segment who are not its requester.
    pub could_approve: Vec<String>,
    /// How to give the decision: approvals and exceptions are made in Git, never through the API.
    pub how: String,
}

/// `GET /api/v1/approvals`: what waits for whom, since when, and who could decide.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "governance",
    responses((status = 200, body = [ApprovalWait]), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn approval_queue(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Vec<ApprovalWait>>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    context
        .with_store(move |store, context| {
            let governed = context.governed(store)?;
            let mut waits = Vec::new();
            for record in store.list_intents()? {
                let segment = segment_of(&record);
                if !caller.may_read(Action::Read, Some(&segment)) {
                    continue;
                }
                let view = IntentView::of(&record);
                let awaiting = view.state == "awaiting_approval";
                let decision = record.decision.as_deref().unwrap_or_default();
                if !awaiting && !matches!(decision, "REQUIRE_APPROVAL" | "REQUIRE_EXCEPTION") {
                    continue;
                }
                if !awaiting && view.phase.is_some() {
                    // A rollout that moved on (or ended) waits for nobody.
                    continue;
                }
                let exception = decision == "REQUIRE_EXCEPTION";
                let role = if exception { Role::SecurityReviewer } else { Role::CabApprover };
                let requester = governed
                    .snapshot
                    .intents
                    .get(&record.intent_id)
                    .map(|intent| intent.requested_by.clone());
                let could_approve = governed
                    .snapshot
                    .principals
                    .values()
                    .filter(|p| p.has_role(role))
                    .filter(|p| rbac::covers(&p.scope, &segment))
                    .filter(|p| requester.as_deref() != Some(p.id.as_str()))
                    .map(|p| p.id.clone())
                    .collect();
                let since = store
                    .events(&EventFilter {
                        intent_id: Some(record.intent_id.clone()),
                        ..EventFilter::default()
                    })?
                    .into_iter()
                    .rev()
                    .find(|event| event.event_type == EventType::PolicyEvaluated)
                    .map(|event| event.timestamp);
                waits.push(ApprovalWait {
                    intent_id: record.intent_id.clone(),
                    acquisition_boundary: record.acquisition_boundary.clone(),
                    business_unit: record.business_unit.clone(),
                    decision: record.decision.clone(),
                    waits_for: rbac::scope_name(role).to_owned(),
                    ring: view.phase.as_ref().and_then(|p| p["ring"].as_str()).map(str::to_owned),
                    requirement: view.phase.as_ref().map(|p| p["requirement"].clone()).filter(|r| !r.is_null()),
                    since,
                    could_approve,
                    how: if exception {
                        "a security reviewer adds exceptions/<id>.yaml (an Exception bound to the artifact's sha256) through a reviewed pull request; see docs/governance.md".into()
                    } else {
                        "a CAB approver approves the pull request, or commits approvals/<id>.yaml (an ApprovalRecord with the intent's intent_sha256) signed with their key; see docs/governance.md".into()
                    },
                });
            }
            Ok(Json(waits))
        })
        .await
}

/// An exception in force or expired.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExceptionView {
    pub exception_id: String,
    pub artifact_id: String,
    pub artifact_sha256: Option<String>,
    pub exception_type: String,
    pub severity: String,
    pub cves: Vec<String>,
    pub approved_by: String,
    pub owner: String,
    pub expiry: DateTime<Utc>,
    /// Whether it has expired at the time of the request.
    pub expired: bool,
    /// Seconds until it expires (negative: since it expired).
    pub expires_in_seconds: i64,
}

/// `GET /api/v1/exceptions`
#[utoipa::path(get, path = "/api/v1/exceptions", tag = "governance",
    responses((status = 200, body = [ExceptionView]), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn exceptions(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Vec<ExceptionView>>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    context
        .with_store(move |store, context| {
            let governed = context.governed(store)?;
            let now = (context.clock)();
            Ok(Json(
                governed
                    .snapshot
                    .exceptions
                    .values()
                    .map(|exception| ExceptionView {
                        exception_id: exception.exception_id.clone(),
                        artifact_id: exception.artifact_id.clone(),
                        artifact_sha256: exception.artifact_sha256.clone(),
                        exception_type: serde_json::to_value(exception.exception_type)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        severity: serde_json::to_value(exception.severity)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        cves: exception.cves.clone(),
                        approved_by: exception.approved_by.clone(),
                        owner: exception.owner.clone(),
                        expiry: exception.expiry,
                        expired: exception.expiry <= now,
                        expires_in_seconds: (exception.expiry - now).num_seconds(),
                    })
                    .collect(),
            ))
        })
        .await
}

/// Events filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    /// Only this intent's events.
    pub intent: Option<String>,
    /// Only events with this correlation id (an intent's, or a request's id).
    pub correlation_id: Option<String>,
    /// Only this type (`operator_action`, `drift_detected`, ...).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events before this instant (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page (an event `seq`).
    pub cursor: Option<u64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<usize>,
}

/// A stored event (the hash chain's fields included).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub event_id: String,
    pub correlation_id: String,
    pub intent_id: Option<String>,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub actor: String,
    pub actor_role: String,
    pub execution_plane: Option<String>,
    pub ring: Option<String>,
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<Event> for EventView {
    fn from(event: Event) -> Self {
        EventView {
            seq: event.seq,
            event_id: event.event_id,
            correlation_id: event.correlation_id,
            intent_id: event.intent_id,
            event_type: event.event_type.as_str().to_owned(),
            timestamp: event.timestamp,
            actor: event.actor,
            actor_role: event.actor_role,
            execution_plane: event.execution_plane,
            ring: event.ring,
            outcome: event.outcome.as_str().to_owned(),
            details: event.details,
            prev_hash: event.prev_hash,
            hash: event.hash,
        }
    }
}

/// Segments of intents, looked up once per request.
struct Segments<'a> {
    store: &'a Store,
    known: BTreeMap<String, Option<Segment>>,
}

impl Segments<'_> {
    fn of(&mut self, intent_id: &str) -> Result<Option<Segment>, ApiProblem> {
        if let Some(known) = self.known.get(intent_id) {
            return Ok(known.clone());
        }
        let segment = self
            .store
            .get_intent(intent_id)?
            .map(|record| segment_of(&record));
        self.known.insert(intent_id.to_owned(), segment.clone());
        Ok(segment)
    }

    /// Whether the caller may see an event (an intent's in its scope; one
    /// about no intent by any reader).
    fn visible(&mut self, caller: &Caller, event: &Event) -> Result<bool, ApiProblem> {
        Ok(match &event.intent_id {
            Some(intent) => match self.of(intent)? {
                Some(segment) => caller.may_read(Action::Read, Some(&segment)),
                // An intent the store no longer knows: only unscoped readers.
                None => caller.may_read(Action::Read, None) && caller.reads_everywhere(),
            },
            None => caller.may_read(Action::Read, None),
        })
    }
}

/// How many events one request scans at most before answering with a cursor.
const EVENT_SCAN_BUDGET: usize = 20_000;

/// `GET /api/v1/events`
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = Page<EventView>), (status = 400, body = ProblemBody), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn events(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Query(query): Query<EventQuery>,
) -> Result<Json<Page<EventView>>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    let limit = limit_of(query.limit)?;
    let wanted_type = match &query.event_type {
        Some(name) => Some(EventType::from_stored(name).ok_or_else(|| {
            ApiProblem::bad_request(format!(
                "unknown event type {name:?}; known: {}",
                EventType::ALL.map(EventType::as_str).join(", ")
            ))
        })?),
        None => None,
    };
    context
        .with_store(move |store, _| {
            let mut segments = Segments {
                store,
                known: BTreeMap::new(),
            };
            let mut items = Vec::new();
            let mut cursor = query.cursor.unwrap_or(0);
            let mut scanned = 0;
            let mut next_cursor = None;
            'scan: loop {
                let batch = store.events(&EventFilter {
                    intent_id: query.intent.clone(),
                    correlation_id: query.correlation_id.clone(),
                    since_seq: Some(cursor),
                    limit: Some(500),
                })?;
                if batch.is_empty() {
                    break;
                }
                for event in batch {
                    cursor = event.seq;
                    scanned += 1;
                    let wanted = wanted_type.is_none_or(|t| t == event.event_type)
                        && query.since.is_none_or(|since| event.timestamp >= since)
                        && query.until.is_none_or(|until| event.timestamp < until);
                    if wanted && segments.visible(&caller, &event)? {
                        items.push(EventView::from(event));
                        if items.len() == limit {
                            next_cursor = Some(cursor.to_string());
                            break 'scan;
                        }
                    }
                    if scanned >= EVENT_SCAN_BUDGET {
                        next_cursor = Some(cursor.to_string());
                        break 'scan;
                    }
                }
            }
            Ok(Json(Page { items, next_cursor }))
        })
        .await
}

/// A drift finding and what was done about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DriftFinding {
    /// The `seq` of its `drift_detected` event (what acknowledging names).
    pub finding: u64,
    pub intent_id: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub execution_plane: Option<String>,
    pub ring: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
    /// Acknowledgements and tickets, oldest first (who, when, why, ticket).
    #[schema(value_type = Vec<Object>)]
    pub acknowledgements: Vec<Value>,
}

/// Every drift finding and every acknowledgement, in one scan of the log.
pub(super) fn drift_findings(
    store: &Store,
    caller: &Caller,
) -> Result<Vec<DriftFinding>, ApiProblem> {
    let mut segments = Segments {
        store,
        known: BTreeMap::new(),
    };
    let mut findings: BTreeMap<u64, DriftFinding> = BTreeMap::new();
    let mut cursor = 0;
    loop {
        let batch = store.events(&EventFilter {
            since_seq: Some(cursor),
            limit: Some(1000),
            ..EventFilter::default()
        })?;
        if batch.is_empty() {
            break;
        }
        for event in batch {
            cursor = event.seq;
            match event.event_type {
                EventType::DriftDetected if segments.visible(caller, &event)? => {
                    findings.insert(
                        event.seq,
                        DriftFinding {
                            finding: event.seq,
                            intent_id: event.intent_id,
                            detected_at: event.timestamp,
                            execution_plane: event.execution_plane,
                            ring: event.ring,
                            details: event.details,
                            acknowledgements: Vec::new(),
                        },
                    );
                }
                EventType::OperatorAction if event.details["action"] == "drift_acknowledge" => {
                    if let Some(finding) = event.details["finding"]
                        .as_u64()
                        .and_then(|seq| findings.get_mut(&seq))
                    {
                        finding.acknowledgements.push(serde_json::json!({
                            "by": event.actor,
                            "role": event.actor_role,
                            "at": event.timestamp,
                            "reason": event.details["reason"],
                            "ticket": event.details["ticket"],
                            "request_id": event.correlation_id,
                        }));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(findings.into_values().collect())
}

/// `GET /api/v1/drift`
#[utoipa::path(get, path = "/api/v1/drift", tag = "drift",
    responses((status = 200, body = [DriftFinding]), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn drift(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Vec<DriftFinding>>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    context
        .with_store(move |store, _| drift_findings(store, &caller).map(Json))
        .await
}

/// An incident as stored (from Alertmanager, the signed webhook or the API).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    pub incident_id: u64,
    pub source: String,
    pub external_id: String,
    pub application_id: String,
    pub ring: Option<String>,
    pub business_unit: Option<String>,
    pub severity: String,
    pub summary: String,
    /// `open` or `resolved`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<crate::store::Incident> for IncidentView {
    fn from(incident: crate::store::Incident) -> Self {
        IncidentView {
            incident_id: incident.incident_id,
            source: incident.source,
            external_id: incident.external_id,
            application_id: incident.application_id,
            ring: incident.ring,
            business_unit: incident.business_unit,
            severity: incident.severity,
            summary: incident.summary,
            status: incident.status.as_str().to_owned(),
            started_at: incident.started_at,
            resolved_at: incident.resolved_at,
            updated_at: incident.updated_at,
        }
    }
}

/// The segment of an incident: every boundary of its business unit.
pub(super) fn incident_segment(incident_business_unit: Option<&str>) -> Segment {
    Segment {
        acquisition_boundary: "*".into(),
        business_unit: incident_business_unit.map(str::to_owned),
    }
}

/// `GET /api/v1/incidents`
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    responses((status = 200, body = [IncidentView]), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn incidents(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<Vec<IncidentView>>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    context
        .with_store(move |store, _| {
            Ok(Json(
                store
                    .incidents()?
                    .into_iter()
                    .filter(|incident| {
                        caller.reads_everywhere()
                            || incident.business_unit.as_ref().is_some_and(|unit| {
                                caller
                                    .scope
                                    .business_units
                                    .iter()
                                    .any(|u| u == "*" || u == unit)
                            })
                    })
                    .map(IncidentView::from)
                    .collect(),
            ))
        })
        .await
}

/// One plane's health.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlaneHealth {
    pub plane: String,
    /// The last time a call to the plane was confirmed.
    pub last_success: Option<DateTime<Utc>>,
    /// Failed calls in the journal by error class (the connector's class,
    /// e.g. `transient`, `throttled`, `auth`, `policy_violation`).
    pub error_classes: BTreeMap<String, u64>,
    /// Calls waiting for a retry.
    pub retrying: u64,
    /// The plane's circuit breaker, when the daemon keeps one for it.
    pub circuit: Option<crate::api::health::BreakerView>,
}

/// Plane health and the daemon's other dependencies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    pub planes: Vec<PlaneHealth>,
    /// Every circuit breaker the daemon published (Git remote, evidence
    /// push, GitHub API, planes).
    pub breakers: Vec<crate::api::health::BreakerView>,
}

/// `GET /api/v1/health/planes`
#[utoipa::path(get, path = "/api/v1/health/planes", tag = "health",
    responses((status = 200, body = HealthView), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn plane_health(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<HealthView>, ApiProblem> {
    caller
        .authorise(Action::Read, &Target::Tenant)
        .or_else(|refusal| {
            // Plane health is not segmented: every reading role sees it.
            if caller.may_read(Action::Read, None) {
                Ok(Role::Auditor)
            } else {
                Err(refusal)
            }
        })?;
    context
        .with_store(move |store, context| {
            let governed = context.governed(store)?;
            let breakers = context.health.breakers();
            let mut planes: BTreeMap<String, PlaneHealth> = BTreeMap::new();
            if let Some(config) = &governed.snapshot.config {
                for plane in &config.planes {
                    let name = plane.as_str().to_owned();
                    planes.insert(
                        name.clone(),
                        PlaneHealth {
                            circuit: breakers
                                .iter()
                                .find(|b| b.dependency == format!("plane {name}"))
                                .cloned(),
                            plane: name,
                            last_success: None,
                            error_classes: BTreeMap::new(),
                            retrying: 0,
                        },
                    );
                }
            }
            for figures in store.plane_action_figures()? {
                let entry = planes
                    .entry(figures.plane.clone())
                    .or_insert_with(|| PlaneHealth {
                        plane: figures.plane.clone(),
                        last_success: None,
                        error_classes: BTreeMap::new(),
                        retrying: 0,
                        circuit: None,
                    });
                entry.last_success = figures.last_success;
                entry.error_classes = figures.error_classes;
                entry.retrying = figures.retrying;
            }
            Ok(Json(HealthView {
                planes: planes.into_values().collect(),
                breakers,
            }))
        })
        .await
}

/// The rules in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RulesView {
    /// The commit of the governed repository whose rules are in force.
    pub commit: String,
    /// `ringmaster.yaml`: rings, gates, CAB policy, change freezes, planes.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Principals: id, roles, scope (no keys or identities).
    #[schema(value_type = Vec<Object>)]
    pub principals: Vec<Value>,
    /// The tenant's policy files, with the sha256 of each.
    #[schema(value_type = Vec<Object>)]
    pub policies: Vec<Value>,
    /// Governance changes (config, principals, policies) that landed
    /// without an admin's authorisation, as the daemon recorded them.
    pub unauthorised_changes: Vec<EventView>,
}

/// `GET /api/v1/rules`
#[utoipa::path(get, path = "/api/v1/rules", tag = "governance",
    responses((status = 200, body = RulesView), (status = 401, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn rules(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
) -> Result<Json<RulesView>, ApiProblem> {
    caller.authorise_any_read(Action::Read)?;
    context
        .with_store(move |store, context| {
            let governed = context.governed(store)?;
            let snapshot = &governed.snapshot;
            Ok(Json(RulesView {
                commit: governed.commit.clone(),
                config: snapshot
                    .config
                    .as_ref()
                    .and_then(|config| serde_json::to_value(&config.value).ok()),
                principals: snapshot
                    .principals
                    .values()
                    .map(|p| serde_json::json!({"id": p.id, "roles": p.roles, "scope": p.scope}))
                    .collect(),
                policies: snapshot
                    .policies
                    .iter()
                    .map(|policy| {
                        serde_json::json!({
                            "path": policy.path,
                            "sha256": crate::evidence::sha256_hex(policy.source.as_bytes()),
                        })
                    })
                    .collect(),
                unauthorised_changes: super::unauthorised_changes(store)?,
            }))
        })
        .await
}
