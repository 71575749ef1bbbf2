//! The write side of `/api/v1`. Nothing here acts on a plane or the
//! evidence branch: a hold, resume, rollback or reconciliation is queued in
//! the store as the local CLI queues it, and the daemon's one performer
//! carries it out through the journal, evidence first. Acknowledging drift
//! and opening or resolving incidents are records in the store. Every write
//! is an `operator_action` event (actor, role, source address, user agent,
//! with the request id as its correlation id) and a SIEM line.
//!
//! Approvals and exceptions are never made here: they are Git records (see
//! `GET /api/v1/approvals` for how).

use super::segment_of;
use crate::api::auth::Caller;
use crate::api::auth::rbac::{Action, Segment, Target};
use crate::api::context::ApiContext;
use crate::api::problem::{ApiProblem, ProblemBody};
use crate::api::v1::read::incident_segment;
use crate::api::v1::view::IntentView;
use crate::store::{
    EventFilter, EventOutcome, EventType, IncidentReport, IncidentStatus, NewEvent, Store,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The longest reason accepted.
const MAX_REASON: usize = 2000;

/// Why (goes into the audit trail).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

/// What a queued write answers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// `queued` (the daemon carries it out at its next step) or `recorded`.
    pub status: String,
    /// The request id: the correlation id of the events this write causes.
    pub correlation_id: String,
    /// The store's number of the queued request, when one was queued.
    pub request_id: Option<u64>,
    pub detail: String,
}

fn checked_reason(reason: &str) -> Result<String, ApiProblem> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiProblem::bad_request(
            "reason must say why (it goes into the audit trail)",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(ApiProblem::bad_request(format!(
            "reason is longer than {MAX_REASON} characters"
        )));
    }
    Ok(reason.to_owned())
}

/// Appends the write's event and sends its SIEM line.
fn record_write(
    store: &mut Store,
    context: &ApiContext,
    caller: &Caller,
    origin: &Value,
    intent_id: Option<String>,
    details: Value,
) -> Result<(), ApiProblem> {
    let now = (context.clock)();
    let mut details = details;
    details["stage"] = json!("requested");
    details["origin"] = origin.clone();
    store.append_event(NewEvent {
        correlation_id: caller.request_id.clone(),
        intent_id: intent_id.clone(),
        event_type: EventType::OperatorAction,
        timestamp: now,
        actor: caller.principal_id.clone(),
        actor_role: origin["role"].as_str().unwrap_or_default().to_owned(),
        execution_plane: None,
        ring: None,
        outcome: EventOutcome::Pending,
        details: details.clone(),
    })?;
    context.emit_siem(&json!({
        "type": "api_write",
        "intent_id": intent_id,
        "actor": caller.principal_id,
        "actor_role": origin["role"],
        "request_id": caller.request_id,
        "source_address": origin["source_address"],
        "user_agent": origin["user_agent"],
        "authentication": origin["authentication"],
        "details": details,
        "at": now,
    }));
    Ok(())
}

async fn operator(
    context: Arc<ApiContext>,
    caller: Caller,
    intent_id: String,
    action: Action,
    body: ReasonBody,
) -> Result<(StatusCode, Json<Accepted>), ApiProblem> {
    let reason = checked_reason(&body.reason)?;
    let accepted = context
        .with_store(move |store, context| {
            let record = store
                .get_intent(&intent_id)?
                .ok_or_else(|| ApiProblem::not_found(format!("no intent {intent_id:?}")))?;
            let staging = IntentView::of(&record).in_staging();
            let role = caller.authorise(action, &Target::Segment { segment: segment_of(&record), staging })?;
            let origin = serde_json::to_value(caller.origin(role))
                .map_err(|error| ApiProblem::internal(error.to_string()))?;
            let name = action.as_str();
            let number = store.request_operator_action_from(
                &intent_id,
                name,
                &reason,
                &caller.principal_id,
                Some(&origin),
                (context.clock)(),
            )?;
            record_write(
                store,
                context,
                &caller,
                &origin,
                Some(intent_id.clone()),
                json!({"action": name, "reason": reason, "request_id": number}),
            )?;
            Ok(Accepted {
                status: "queued".into(),
                correlation_id: caller.request_id.clone(),
                request_id: Some(number),
                detail: format!("{name} of {intent_id} queued; the daemon applies it at its next step and records it as an event and evidence"),
            })
        })
        .await?;
    (context.on_request)();
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

macro_rules! operator_endpoint {
    ($name:ident, $action:expr, $path:literal, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "rollouts",
            params(("intent_id" = String, Path, description = "The intent id")),
            request_body = ReasonBody,
            responses((status = 202, body = Accepted), (status = 400, body = ProblemBody), (status = 401, body = ProblemBody),
                (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 429, body = ProblemBody)),
            security(("bearer" = []), ("client_certificate" = [])))]
        pub async fn $name(
            State(context): State<Arc<ApiContext>>,
            caller: Caller,
            Path(intent_id): Path<String>,
            Json(body): Json<ReasonBody>,
        ) -> Result<(StatusCode, Json<Accepted>), ApiProblem> {
            operator(context, caller, intent_id, $action, body).await
        }
    };
}

operator_endpoint!(
    hold,
    Action::Hold,
    "/api/v1/intents/{intent_id}/hold",
    "Hold a rollout before its next ring."
);
operator_endpoint!(
    resume,
    Action::Resume,
    "/api/v1/intents/{intent_id}/resume",
    "Resume a held rollout (its gate is judged again)."
);
operator_endpoint!(
    rollback,
    Action::Rollback,
    "/api/v1/intents/{intent_id}/rollback",
    "Roll a rollout back by its rollback plan."
);

/// Acknowledge or ticket a drift finding.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    pub reason: String,
    /// A ticket in the ITSM tool, e.g. `INC0012345`.
    pub ticket: Option<String>,
}

/// `POST /api/v1/drift/{finding}/acknowledge`
#[utoipa::path(post, path = "/api/v1/drift/{finding}/acknowledge", tag = "drift",
    params(("finding" = u64, Path, description = "The seq of the drift_detected event")),
    request_body = AcknowledgeBody,
    responses((status = 201, body = Accepted), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn acknowledge_drift(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Path(finding): Path<u64>,
    Json(body): Json<AcknowledgeBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiProblem> {
    let reason = checked_reason(&body.reason)?;
    let ticket = body
        .ticket
        .map(|t| t.trim().chars().take(200).collect::<String>())
        .filter(|t| !t.is_empty());
    let accepted = context
        .with_store(move |store, context| {
            let event = store
                .events(&EventFilter { since_seq: Some(finding.saturating_sub(1)), limit: Some(1), ..EventFilter::default() })?
                .into_iter()
                .find(|event| event.seq == finding && event.event_type == EventType::DriftDetected)
                .ok_or_else(|| ApiProblem::not_found(format!("no drift finding {finding}")))?;
            let record = match &event.intent_id {
                Some(intent) => store.get_intent(intent)?,
                None => None,
            };
            let target = match &record {
                Some(record) => Target::Segment { segment: segment_of(record), staging: true },
                None => Target::Tenant,
            };
            let role = caller.authorise(Action::AcknowledgeDrift, &target)?;
            let origin = serde_json::to_value(caller.origin(role)).map_err(|error| ApiProblem::internal(error.to_string()))?;
            record_write(store, context, &caller, &origin, event.intent_id.clone(),
                json!({"action": "drift_acknowledge", "finding": finding, "reason": reason, "ticket": ticket}))?;
            Ok(Accepted {
                status: "recorded".into(),
                correlation_id: caller.request_id.clone(),
                request_id: None,
                detail: format!("drift finding {finding} acknowledged"),
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

/// A new incident.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentBody {
    /// The application it is about (gates of its rollouts count it).
    pub application_id: String,
    /// The ring it was seen in; absent: every ring.
    pub ring: Option<String>,
    /// The business unit it was seen in; absent: every business unit.
    pub business_unit: Option<String>,
    pub severity: String,
    pub summary: String,
}

fn bounded(field: &str, value: &str, max: usize) -> Result<String, ApiProblem> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiProblem::bad_request(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(value.to_owned())
}

/// `POST /api/v1/incidents`: open an incident (the store's incidents, which the gates read).
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents",
    request_body = IncidentBody,
    responses((status = 201, body = Accepted), (status = 400, body = ProblemBody), (status = 403, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn open_incident(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Json(body): Json<IncidentBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiProblem> {
    let application_id = bounded("application_id", &body.application_id, 128)?;
    let severity = bounded("severity", &body.severity, 32)?;
    let summary = bounded("summary", &body.summary, 500)?;
    let ring = body
        .ring
        .as_deref()
        .map(|r| bounded("ring", r, 128))
        .transpose()?;
    let business_unit = body
        .business_unit
        .as_deref()
        .map(|b| bounded("business_unit", b, 128))
        .transpose()?;
    let accepted = context
        .with_store(move |store, context| {
            let segment: Segment = incident_segment(business_unit.as_deref());
            let role = caller.authorise(Action::ManageIncident, &Target::Segment { segment, staging: true })?;
            let origin = serde_json::to_value(caller.origin(role)).map_err(|error| ApiProblem::internal(error.to_string()))?;
            let now = (context.clock)();
            store.record_incident(
                &IncidentReport {
                    source: "api".into(),
                    external_id: caller.request_id.clone(),
                    application_id: application_id.clone(),
                    ring: ring.clone(),
                    business_unit: business_unit.clone(),
                    severity: severity.clone(),
                    summary: summary.clone(),
                    status: IncidentStatus::Open,
                    started_at: now,
                    details: json!({"opened_by": caller.principal_id, "request_id": caller.request_id}),
                },
                now,
            )?;
            record_write(store, context, &caller, &origin, None,
                json!({"action": "incident_open", "application_id": application_id, "ring": ring, "business_unit": business_unit, "severity": severity, "summary": summary}))?;
            Ok(Accepted {
                status: "recorded".into(),
                correlation_id: caller.request_id.clone(),
                request_id: None,
                detail: format!("incident opened for {application_id}; gates of its rollouts count it"),
            })
        })
        .await?;
    (context.on_request)();
    Ok((StatusCode::CREATED, Json(accepted)))
}

/// `POST /api/v1/incidents/{incident_id}/resolve`
#[utoipa::path(post, path = "/api/v1/incidents/{incident_id}/resolve", tag = "incidents",
    params(("incident_id" = u64, Path, description = "The incident's id")),
    request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn resolve_incident(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Path(incident_id): Path<u64>,
    Json(body): Json<ReasonBody>,
) -> Result<Json<Accepted>, ApiProblem> {
    let reason = checked_reason(&body.reason)?;
    let accepted = context
        .with_store(move |store, context| {
            let incident = store
                .incidents()?
                .into_iter()
                .find(|incident| incident.incident_id == incident_id)
                .ok_or_else(|| ApiProblem::not_found(format!("no incident {incident_id}")))?;
            let segment = incident_segment(incident.business_unit.as_deref());
            let role = caller.authorise(
                Action::ManageIncident,
                &Target::Segment {
                    segment,
                    staging: true,
                },
            )?;
            let origin = serde_json::to_value(caller.origin(role))
                .map_err(|error| ApiProblem::internal(error.to_string()))?;
            let now = (context.clock)();
            let mut details = incident.details.clone();
            if let Value::Object(object) = &mut details {
                object.insert("resolved_by".into(), json!(caller.principal_id));
                object.insert("resolution".into(), json!(reason));
            }
            store.record_incident(
                &IncidentReport {
                    source: incident.source.clone(),
                    external_id: incident.external_id.clone(),
                    application_id: incident.application_id.clone(),
                    ring: incident.ring.clone(),
                    business_unit: incident.business_unit.clone(),
                    severity: incident.severity.clone(),
                    summary: incident.summary.clone(),
                    status: IncidentStatus::Resolved,
                    started_at: incident.started_at,
                    details,
                },
                now,
            )?;
            record_write(
                store,
                context,
                &caller,
                &origin,
                None,
                json!({"action": "incident_resolve", "incident_id": incident_id, "reason": reason}),
            )?;
            Ok(Accepted {
                status: "recorded".into(),
                correlation_id: caller.request_id.clone(),
                request_id: None,
                detail: format!("incident {incident_id} resolved"),
            })
        })
        .await?;
    (context.on_request)();
    Ok(Json(accepted))
}

/// `POST /api/v1/reconcile`: run drift reconciliation at the daemon's next step.
#[utoipa::path(post, path = "/api/v1/reconcile", tag = "drift",
    request_body = ReasonBody,
    responses((status = 202, body = Accepted), (status = 403, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn reconcile(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Json(body): Json<ReasonBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiProblem> {
    let reason = checked_reason(&body.reason)?;
    let accepted = context
        .with_store(move |store, context| {
            let role = caller.authorise(Action::Reconcile, &Target::Tenant)?;
            let origin = serde_json::to_value(caller.origin(role))
                .map_err(|error| ApiProblem::internal(error.to_string()))?;
            let number = store.request_reconcile(
                &caller.principal_id,
                &reason,
                &origin,
                (context.clock)(),
            )?;
            record_write(
                store,
                context,
                &caller,
                &origin,
                None,
                json!({"action": "reconcile", "reason": reason, "request_id": number}),
            )?;
            Ok(Accepted {
                status: "queued".into(),
                correlation_id: caller.request_id.clone(),
                request_id: Some(number),
                detail: "reconciliation queued for the daemon's next step".into(),
            })
        })
        .await?;
    (context.on_request)();
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
