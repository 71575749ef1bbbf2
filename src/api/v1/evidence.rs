//! Evidence packs and their signatures, byte for byte as the branch holds
//! them, so a client verifies them itself (`minisign -Vm pack.json -p
//! ringmaster.pub`). The caller needs `read_evidence` for the pack's intent
//! (packs about no intent: any role that reads evidence).

use super::{Page, segment_of};
use crate::api::auth::Caller;
use crate::api::auth::rbac::{Action, Target};
use crate::api::context::ApiContext;
use crate::api::problem::{ApiProblem, ProblemBody};
use crate::evidence::EvidenceBranch;
use crate::store::Store;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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

fn may_read_pack(
    store: &Store,
    caller: &Caller,
    intent_id: Option<&str>,
) -> Result<bool, ApiProblem> {
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
                .is_ok(),
            None => caller.reads_evidence_everywhere(),
        },
        None => caller.may_read(Action::ReadEvidence, None),
    })
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
            if !may_read_pack(store, &caller, pack.intent_id.as_deref())? {
                return Err(ApiProblem::forbidden(format!(
                    "{} may not read_evidence of record {sequence}",
                    caller.principal_id
                )));
            }
            let bytes = if signature {
                files.signature.clone()
            } else {
                files.pack.clone()
            };
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
