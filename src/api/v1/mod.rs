//! `/api/v1`: the control plane's API (see `docs/api.md`).
//!
//! [`routes`] puts every resource behind the same layers, outermost first:
//! a request id ([`crate::api::protect::request_id`]), the per-address rate
//! limit and time limit ([`crate::api::protect::guard`]), the body cap,
//! authentication ([`crate::api::auth::require_caller`]), then each handler
//! authorises its own action on its own target ([`crate::api::auth::rbac`]).
//! `/api/v1/openapi.json` is generated from this code ([`ApiDoc`]) and
//! needs no credentials.

pub mod evidence;
pub mod read;
pub mod view;
pub mod write;

use crate::api::auth::rbac::{self, Action, Reach, Segment};
use crate::api::auth::{self, Caller};
use crate::api::context::ApiContext;
use crate::api::problem::{ApiProblem, ProblemBody};
use crate::api::protect;
use crate::store::{IntentRecord, Store};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::OpenApi;

/// A page of a list, and where the next one starts.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` (or `before`) for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// The segment an intent targets.
pub fn segment_of(record: &IntentRecord) -> Segment {
    Segment {
        acquisition_boundary: record.acquisition_boundary.clone(),
        business_unit: Some(record.business_unit.clone()),
    }
}

/// Governance changes that took effect without an admin's authorisation.
/// The daemon records none yet on this build (the judge's
/// `governance_change_unauthorised` finding lands with issue 10); the list
/// is the shape clients read.
pub fn unauthorised_changes(_store: &Store) -> Result<Vec<read::EventView>, ApiProblem> {
    Ok(Vec::new())
}

impl Caller {
    /// `403` unless one of the caller's roles may do `action` somewhere.
    pub fn authorise_any_read(&self, action: Action) -> Result<(), ApiProblem> {
        if self
            .roles
            .iter()
            .any(|role| rbac::reach(*role, action) != Reach::Never)
        {
            Ok(())
        } else {
            Err(ApiProblem::forbidden(format!(
                "{} may not {}: none of its roles ({}) allows it",
                self.principal_id,
                action.as_str(),
                self.roles
                    .iter()
                    .map(|r| rbac::scope_name(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Whether the caller reads everything, whatever the segment.
    pub fn reads_everywhere(&self) -> bool {
        self.roles
            .iter()
            .any(|role| rbac::reach(*role, Action::Read) == Reach::Everywhere)
    }

    /// Whether the caller reads every evidence record.
    pub fn reads_evidence_everywhere(&self) -> bool {
        self.roles
            .iter()
            .any(|role| rbac::reach(*role, Action::ReadEvidence) == Reach::Everywhere)
    }
}

/// Security schemes of the document.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An OpenID Connect access token (Entra ID or another issuer), RS256 or ES256"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_certificate",
            SecurityScheme::MutualTls {
                description: Some("A client certificate from the configured CA, mapped to a principal by certificate_subjects".into()),
                extensions: None,
            },
        );
    }
}

/// The OpenAPI 3.1 document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(title = "ringmaster control plane API", version = "1",
        description = "Intents, rollouts, approvals, exceptions, drift, events, evidence, plane health and the rules in force of a ringmaster control plane. Authenticate with an OIDC bearer token or a client certificate; what each role may do is in docs/api.md."),
    paths(
        read::list_intents, read::get_intent, read::get_rings, read::approval_queue, read::exceptions,
        read::events, read::drift, read::incidents, read::plane_health, read::rules,
        evidence::list, evidence::pack, evidence::signature,
        write::hold, write::resume, write::rollback, write::acknowledge_drift,
        write::open_incident, write::resolve_incident, write::reconcile,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Security),
    tags(
        (name = "intents", description = "Deployment intents with their decision, risk and rollout state"),
        (name = "rollouts", description = "Hold, resume and roll back (queued for the daemon)"),
        (name = "governance", description = "The approval queue, exceptions and the rules in force (decisions are made in Git)"),
        (name = "events", description = "The hash-chained audit log"),
        (name = "evidence", description = "Signed evidence packs, byte for byte"),
        (name = "drift", description = "Drift findings and reconciliation"),
        (name = "incidents", description = "Incidents the promotion gates read"),
        (name = "health", description = "Execution planes and the daemon's dependencies"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as served and as committed in `docs/openapi.json`.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
        + "\n"
}

async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
}

/// Every `/api/v1` route with its layers (see the module doc). Serve it
/// with `ClientInfo` connect info (`ApiServer` does).
pub fn routes(context: Arc<ApiContext>) -> Router {
    let authenticated = Router::new()
        .route("/api/v1/intents", get(read::list_intents))
        .route("/api/v1/intents/{intent_id}", get(read::get_intent))
        .route("/api/v1/intents/{intent_id}/rings", get(read::get_rings))
        .route("/api/v1/intents/{intent_id}/hold", post(write::hold))
        .route("/api/v1/intents/{intent_id}/resume", post(write::resume))
        .route(
            "/api/v1/intents/{intent_id}/rollback",
            post(write::rollback),
        )
        .route("/api/v1/approvals", get(read::approval_queue))
        .route("/api/v1/exceptions", get(read::exceptions))
        .route("/api/v1/events", get(read::events))
        .route("/api/v1/drift", get(read::drift))
        .route(
            "/api/v1/drift/{finding}/acknowledge",
            post(write::acknowledge_drift),
        )
        .route(
            "/api/v1/incidents",
            get(read::incidents).post(write::open_incident),
        )
        .route(
            "/api/v1/incidents/{incident_id}/resolve",
            post(write::resolve_incident),
        )
        .route("/api/v1/reconcile", post(write::reconcile))
        .route("/api/v1/health/planes", get(read::plane_health))
        .route("/api/v1/rules", get(read::rules))
        .route("/api/v1/evidence", get(evidence::list))
        .route("/api/v1/evidence/{sequence}", get(evidence::pack))
        .route(
            "/api/v1/evidence/{sequence}/signature",
            get(evidence::signature),
        )
        .layer(from_fn_with_state(context.clone(), auth::require_caller))
        .layer(DefaultBodyLimit::max(context.limits.settings.body_bytes));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .merge(authenticated)
        .fallback(|| async { ApiProblem::not_found("no such resource under /api/v1") })
        .layer(from_fn_with_state(context.clone(), protect::guard))
        .layer(from_fn(protect::request_id))
        .with_state(context)
}
