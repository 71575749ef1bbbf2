//! `content`: the simulated content upload flow. Each step checks the one
//! before it, so a connector that skips or reorders a step is refused:
//! content version → file (`azureStorageUriRequestPending`, `Success` from the
//! second poll on) → blocks and block list on the SAS URL → commit with every
//! `fileEncryptionInfo` field (`commitFilePending`, then `commitFileSuccess`) →
//! `PATCH committedContentVersion` (in `routes`).

use super::IntuneSimulator;
use super::http::{bad_request, graph_error, not_found};
use super::state::{ContentFile, ContentVersion};
use crate::planes::http::query_value;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const CASTS: [&str; 2] = ["microsoft.graph.win32LobApp", "microsoft.graph.macOSPkgApp"];
const ENCRYPTION_FIELDS: [&str; 7] = [
    "encryptionKey",
    "macKey",
    "initializationVector",
    "mac",
    "profileIdentifier",
    "fileDigest",
    "fileDigestAlgorithm",
];

fn file_json(file: &ContentFile, origin: &str) -> Value {
    let uri = (file.upload_state != "azureStorageUriRequestPending").then(|| {
        format!(
            "{origin}/blob/{}?sv=2024-05-04&sr=b&sp=w&sig={}",
            file.id, file.signature
        )
    });
    json!({
        "@odata.type": "#microsoft.graph.mobileAppContentFile",
        "id": file.id,
        "name": file.name,
        "size": file.size,
        "sizeEncrypted": file.size_encrypted,
        "manifest": null,
        "isDependency": false,
        "isCommitted": file.upload_state == "commitFileSuccess",
        "uploadState": file.upload_state,
        "azureStorageUri": uri,
    })
}

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

pub async fn create_content_version(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id, cast)): Path<(String, String, String)>,
) -> Response {
    let mut state = simulator.lock();
    let id = match state.app(&app_id) {
        None => return not_found(&format!("mobileApp {app_id}")),
        Some(app)
            if !CASTS.contains(&cast.as_str()) || app.text("@odata.type") != format!("#{cast}") =>
        {
            return bad_request(&format!("The app is not a {cast}."));
        }
        Some(app) => (app.content_versions.len() + 1).to_string(),
    };
    let app = state.app_mut(&app_id).expect("checked above");
    app.content_versions.push(ContentVersion {
        id: id.clone(),
        files: Vec::new(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"@odata.type": "#microsoft.graph.mobileAppContent", "id": id})),
    )
        .into_response()
}

pub async fn create_file(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id, _cast, content_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let size = body.get("size").and_then(Value::as_u64);
    let size_encrypted = body.get("sizeEncrypted").and_then(Value::as_u64);
    let (Some(size), Some(size_encrypted)) = (size, size_encrypted) else {
        return bad_request("A content file needs size and sizeEncrypted.");
    };
    if name.is_empty() {
        return bad_request("A content file needs a name.");
    }
    let mut state = simulator.lock();
    let id = state.new_id("file");
    let signature = state.new_opaque("sas");
    let Some(app) = state.app_mut(&app_id) else {
        return not_found(&format!("mobileApp {app_id}"));
    };
    let Some(content) = app
        .content_versions
        .iter_mut()
        .find(|content| content.id == content_id)
    else {
        return not_found(&format!("contentVersion {content_id}"));
    };
    let file = ContentFile {
        id,
        name,
        size,
        size_encrypted,
        upload_state: "azureStorageUriRequestPending".into(),
        signature,
        blocks: Default::default(),
        content: None,
        encryption_info: None,
    };
    let answer = file_json(&file, &origin(&headers));
    content.files.push(file);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Changes one content file; `Err` names what does not exist.
fn with_file<T>(
    simulator: &IntuneSimulator,
    app_id: &str,
    content_id: &str,
    file_id: &str,
    change: impl FnOnce(&mut ContentFile) -> T,
) -> Result<T, String> {
    let mut state = simulator.lock();
    let app = state
        .app_mut(app_id)
        .ok_or_else(|| format!("mobileApp {app_id}"))?;
    let content = app
        .content_versions
        .iter_mut()
        .find(|content| content.id == content_id)
        .ok_or_else(|| format!("contentVersion {content_id}"))?;
    let file = content
        .files
        .iter_mut()
        .find(|file| file.id == file_id)
        .ok_or_else(|| format!("contentFile {file_id}"))?;
    Ok(change(file))
}

/// A poll: answers the state as it is, then moves a pending stage on, so the
/// client sees `...Pending` at least once.
pub async fn get_file(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id, _cast, content_id, file_id)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
    headers: HeaderMap,
) -> Response {
    let origin = origin(&headers);
    let answer = with_file(&simulator, &app_id, &content_id, &file_id, |file| {
        let answer = file_json(file, &origin);
        file.upload_state = match file.upload_state.as_str() {
            "azureStorageUriRequestPending" => "azureStorageUriRequestSuccess".into(),
            "commitFilePending" => "commitFileSuccess".into(),
            other => other.to_string(),
        };
        answer
    });
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(missing) => not_found(&missing),
    }
}

pub async fn commit_file(
    State(simulator): State<IntuneSimulator>,
    Path((_version, app_id, _cast, content_id, file_id)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
    Json(body): Json<Value>,
) -> Response {
    let Some(info) = body.get("fileEncryptionInfo") else {
        return bad_request("The commit needs fileEncryptionInfo.");
    };
    if let Some(missing) = ENCRYPTION_FIELDS
        .iter()
        .find(|field| info.get(**field).and_then(Value::as_str).is_none())
    {
        return bad_request(&format!("fileEncryptionInfo.{missing} is missing."));
    }
    let outcome = with_file(&simulator, &app_id, &content_id, &file_id, |file| {
        let Some(content) = &file.content else {
            return Err(
                "The file's block list was not committed to storage; upload it first.".to_string(),
            );
        };
        if content.len() as u64 != file.size_encrypted {
            return Err(format!(
                "Uploaded {} bytes; the file was declared with sizeEncrypted {}.",
                content.len(),
                file.size_encrypted
            ));
        }
        file.encryption_info = Some(info.clone());
        file.upload_state = "commitFilePending".into();
        Ok(())
    });
    match outcome {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(message)) => bad_request(&message),
        Err(missing) => not_found(&missing),
    }
}

/// Azure Blob storage behind the SAS URL: `comp=block&blockid=...` stores a
/// block, `comp=blocklist` assembles the listed blocks into the file's content.
pub async fn put_blob(
    State(simulator): State<IntuneSimulator>,
    Path(file_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.as_deref();
    let storage_error = |status: StatusCode, code: &str| {
        graph_error(status, code, "Azure Storage refused the request.")
    };
    let mut state = simulator.lock();
    let file = state
        .apps
        .iter_mut()
        .flat_map(|app| app.content_versions.iter_mut())
        .flat_map(|content| content.files.iter_mut())
        .find(|file| file.id == file_id);
    let Some(file) = file else {
        return storage_error(StatusCode::NOT_FOUND, "BlobNotFound");
    };
    if query_value(query, "sig").as_deref() != Some(file.signature.as_str()) {
        return storage_error(StatusCode::FORBIDDEN, "AuthenticationFailed");
    }
    if file.upload_state != "azureStorageUriRequestSuccess" {
        return storage_error(StatusCode::CONFLICT, "InvalidBlobOrBlock");
    }
    match query_value(query, "comp").as_deref() {
        Some("block") => {
            let Some(block_id) = query_value(query, "blockid").filter(|id| !id.is_empty()) else {
                return storage_error(StatusCode::BAD_REQUEST, "InvalidQueryParameterValue");
            };
            file.blocks.insert(block_id, body.to_vec());
        }
        Some("blocklist") => {
            let text = String::from_utf8_lossy(&body);
            let mut content = Vec::new();
            for piece in text.split("<Latest>").skip(1) {
                let id = piece.split("</Latest>").next().unwrap_or_default();
                match file.blocks.get(id) {
                    Some(block) => content.extend_from_slice(block),
                    None => return storage_error(StatusCode::BAD_REQUEST, "InvalidBlockList"),
                }
            }
            file.content = Some(content);
        }
        _ => return storage_error(StatusCode::BAD_REQUEST, "InvalidQueryParameterValue"),
    }
    StatusCode::CREATED.into_response()
}
