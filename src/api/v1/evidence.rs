//! Evidence packs and their signatures, byte for byte as the branch holds
//! them, so a client verifies them itself (`minisign -Vm pack.json -p
//! ringmaster.pub`). The caller needs `read_evidence` for the pack's intent
//! (packs about no intent: any role that reads evidence). Every read of a
//! pack or a signature is recorded (`evidence_exported`, `via: api`: who,
//! with which role, from where, with which client, under which request id)
//! and sent to the SIEM sink, as auditors expect.

use super::{Page, segment_of};
use crate::api::auth::Caller;
use crate::api::auth::rbac::{self, Action, Reach, Target};
use crate::api::context::ApiContext;
use crate::api::problem::{ApiProblem, ProblemBody};
use crate::evidence::EvidenceBranch;
use crate::model::Role;
use crate::store::{EventOutcome, EventType, NewEvent, Store};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// One record of the evidence branch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvidenceRecordView {
    pub sequence: u64,
    pub record_type: String,
    pub intent_id: Option<String>,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    /// SHA-256 of the pack file (what `GET /api/v1/evidence/{sequence}` returns).
    pub pack_sha256: String,
    pub path: String,
    pub source_commit: String,
}

/// Paging backwards through the branch.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EvidenceQuery {
    /// Only records with a smaller sequence (the `next_cursor` of the previous page).
    pub before: Option<u64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<usize>,
}

fn open_branch(context: &ApiContext) -> Result<EvidenceBranch, ApiProblem> {
    EvidenceBranch::open(&context.evidence_repository, &context.evidence_branch)
        .map_err(|error| ApiProblem::unavailable(format!("evidence branch: {error}")))
}

/// The role letting the caller read a pack about `intent_id` (None: refused).
fn pack_reader_role(
    store: &Store,
    caller: &Caller,
    intent_id: Option<&str>,
) -> Result<Option<Role>, ApiProblem> {
    let role_reaching = |wanted: &dyn Fn(Reach) -> bool| {
        caller
            .roles
            .iter()
            .copied()
            .find(|role| wanted(rbac::reach(*role, Action::ReadEvidence)))
    };
    Ok(match intent_id {
        Some(intent) => match store.get_intent(intent)? {
            Some(record) => caller
                .authorise(
                    Action::ReadEvidence,
                    &Target::Segment {
                        segment: segment_of(&record),
                        staging: true,
                    },
                )
                .ok(),
            // An intent the store no longer knows: only unscoped readers.
            None => role_reaching(&|reach| reach == Reach::Everywhere),
        },
        None => caller
            .authorise(Action::ReadEvidence, &Target::Tenant)
            .ok()
            .or_else(|| role_reaching(&|reach| reach != Reach::Never)),
    })
}

fn may_read_pack(
    store: &Store,
    caller: &Caller,
    intent_id: Option<&str>,
) -> Result<bool, ApiProblem> {
    Ok(pack_reader_role(store, caller, intent_id)?.is_some())
}

/// `GET /api/v1/evidence`: the records, newest first.
#[utoipa::path(get, path = "/api/v1/evidence", tag = "evidence", params(EvidenceQuery),
    responses((status = 200, body = Page<EvidenceRecordView>), (status = 403, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn list(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Query(query): Query<EvidenceQuery>,
) -> Result<Json<Page<EvidenceRecordView>>, ApiProblem> {
    caller.authorise_any_read(Action::ReadEvidence)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    context
        .with_store(move |store, context| {
            let branch = open_branch(context)?;
            let mut items = Vec::new();
            let mut before = query.before;
            let mut next_cursor = None;
            'pages: loop {
                let records = branch
                    .records_before(before, 200)
                    .map_err(|error| ApiProblem::internal(format!("evidence branch: {error}")))?;
                if records.is_empty() {
                    break;
                }
                for record in records {
                    before = Some(record.tip.sequence);
                    if !may_read_pack(store, &caller, record.pack.intent_id.as_deref())? {
                        continue;
                    }
                    items.push(EvidenceRecordView {
                        sequence: record.tip.sequence,
                        record_type: record.pack.record_type.as_str().to_owned(),
                        intent_id: record.pack.intent_id.clone(),
                        correlation_id: record.pack.correlation_id.clone(),
                        created_at: record.pack.created_at,
                        pack_sha256: record.tip.pack_sha256.clone(),
                        path: record.tip.pack_path.clone(),
                        source_commit: record.pack.source_commit.clone(),
                    });
                    if items.len() == limit {
                        next_cursor = Some(record.tip.sequence.to_string());
                        break 'pages;
                    }
                }
            }
            Ok(Json(Page { items, next_cursor }))
        })
        .await
}

async fn record_bytes(
    context: Arc<ApiContext>,
    caller: Caller,
    sequence: u64,
    signature: bool,
) -> Result<Response, ApiProblem> {
    caller.authorise_any_read(Action::ReadEvidence)?;
    let (files, bytes) = context
        .with_store(move |store, context| {
            let branch = open_branch(context)?;
            let files = branch
                .record_files(sequence)
                .map_err(|error| ApiProblem::internal(format!("evidence branch: {error}")))?
                .ok_or_else(|| ApiProblem::not_found(format!("no evidence record {sequence}")))?;
            let pack: crate::evidence::EvidencePack =
                serde_json::from_slice(&files.pack).map_err(|error| {
                    ApiProblem::internal(format!("evidence record {sequence}: {error}"))
                })?;
            let Some(role) = pack_reader_role(store, &caller, pack.intent_id.as_deref())? else {
                return Err(ApiProblem::forbidden(format!(
                    "{} may not read_evidence of record {sequence}",
                    caller.principal_id
                )));
            };
            let bytes = if signature {
                files.signature.clone()
            } else {
                files.pack.clone()
            };
            // Auditors ask who read the evidence: every read of a pack or its
            // signature is an event (and a SIEM line) before the bytes go out.
            record_read(
                store,
                context,
                &caller,
                role,
                sequence,
                &pack,
                &files.tip.pack_sha256,
                if signature { "signature" } else { "pack" },
            )?;
            Ok((files, bytes))
        })
        .await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    let content_type = if signature {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&files.tip.pack_sha256) {
        headers.insert("x-evidence-pack-sha256", value);
    }
    Ok(response)
}

/// Records a read of an evidence record: an `evidence_exported` event
/// (`details.via: api`) whose correlation id is the request's, with the
/// caller's principal, role, authentication, source address and user
/// agent, and a SIEM line.
#[allow(clippy::too_many_arguments)]
fn record_read(
    store: &mut Store,
    context: &ApiContext,
    caller: &Caller,
    role: Role,
    sequence: u64,
    pack: &crate::evidence::EvidencePack,
    pack_sha256: &str,
    file: &str,
) -> Result<(), ApiProblem> {
    let now = (context.clock)();
    let origin = serde_json::to_value(caller.origin(role))
        .map_err(|error| ApiProblem::internal(error.to_string()))?;
    let details = json!({
        "via": "api",
        "file": file,
        "sequence": sequence,
        "record_type": pack.record_type.as_str(),
        "pack_sha256": pack_sha256,
        "pack_correlation_id": pack.correlation_id,
        "origin": origin,
    });
    store.append_event(NewEvent {
        correlation_id: caller.request_id.clone(),
        intent_id: pack.intent_id.clone(),
        event_type: EventType::EvidenceExported,
        timestamp: now,
        actor: caller.principal_id.clone(),
        actor_role: rbac::scope_name(role).to_owned(),
        execution_plane: None,
        ring: None,
        outcome: EventOutcome::Success,
        details: details.clone(),
    })?;
    context.emit_siem(&json!({
        "type": "evidence_read",
        "intent_id": pack.intent_id,
        "actor": caller.principal_id,
        "actor_role": rbac::scope_name(role),
        "request_id": caller.request_id,
        "source_address": origin["source_address"],
        "user_agent": origin["user_agent"],
        "authentication": origin["authentication"],
        "details": details,
        "at": now,
    }));
    Ok(())
}

/// `GET /api/v1/evidence/{sequence}`: the pack file, exactly as signed.
#[utoipa::path(get, path = "/api/v1/evidence/{sequence}", tag = "evidence",
    params(("sequence" = u64, Path, description = "The record's sequence")),
    responses((status = 200, content_type = "application/json", body = Vec<u8>, description = "The pack's bytes"),
        (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn pack(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Path(sequence): Path<u64>,
) -> Result<Response, ApiProblem> {
    record_bytes(context, caller, sequence, false).await
}

/// `GET /api/v1/evidence/{sequence}/signature`: the minisign signature of the pack.
#[utoipa::path(get, path = "/api/v1/evidence/{sequence}/signature", tag = "evidence",
    params(("sequence" = u64, Path, description = "The record's sequence")),
    responses((status = 200, content_type = "text/plain", body = String, description = "The .minisig file"),
        (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)),
    security(("bearer" = []), ("client_certificate" = [])))]
pub async fn signature(
    State(context): State<Arc<ApiContext>>,
    caller: Caller,
    Path(sequence): Path<u64>,
) -> Result<Response, ApiProblem> {
    record_bytes(context, caller, sequence, true).await
}
