//! `upload`: the Intune content upload flow for a new app (Graph PowerShell
//! samples, `Win32_Application_Add.ps1`): a content version, a content file,
//! the Azure Storage SAS URI once Intune has made it, the bytes in blocks and a
//! block list, the commit with the file's encryption info, and finally the
//! app's `committedContentVersion`. The simulator refuses any step out of order.
//!
//! Where the bytes come from is the configuration's [`ContentSource`].

use super::client::{Call, GraphClient, Payload};
use super::wire::AppKind;
use crate::planes::{ConnectorError, ErrorCode, PublishRequest};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

/// Blocks are uploaded in pieces of this size.
const BLOCK_SIZE: usize = 4 * 1024 * 1024;
/// Polls of a content file's `uploadState` before giving up with `timeout`.
const MAX_POLLS: u32 = 60;

/// Where the package bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentSource {
    /// `<path>/<artifact file>` holds the encrypted payload prepared for Intune
    /// (the content of the `.intunewin`), `<path>/<artifact file>.encryption.json`
    /// its `fileEncryptionInfo` as the packaging tool wrote it, and
    /// `unencryptedContentSize` beside it.
    Directory { path: PathBuf },
    /// A small JSON descriptor of the artifact stands in for the package, with
    /// zero keys. Only for a simulator: a real tenant would install nothing.
    SimulatorPlaceholder,
}

/// The bytes to upload and what the commit says about them.
pub struct Content {
    pub bytes: Vec<u8>,
    pub plain_size: u64,
    pub encryption_info: Value,
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (block ids, digests, script content).
pub fn base64(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let number = u32::from(triple[0]) << 16 | u32::from(triple[1]) << 8 | u32::from(triple[2]);
        for position in 0..4 {
            if position <= chunk.len() {
                let index = (number >> (18 - 6 * position)) & 0x3f;
                text.push(char::from(BASE64_ALPHABET[index as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

fn percent_encode_base64(text: &str) -> String {
    text.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ContentSource {
    /// Loads the artifact's content, checking it against the request's hash.
    pub fn load(&self, request: &PublishRequest) -> Result<Content, ConnectorError> {
        let artifact = &request.artifact;
        match self {
            ContentSource::SimulatorPlaceholder => {
                let bytes = serde_json::to_vec(artifact).unwrap_or_default();
                let zeros = |count: usize| base64(&vec![0u8; count]);
                Ok(Content {
                    plain_size: bytes.len() as u64,
                    encryption_info: json!({
                        "encryptionKey": zeros(32),
                        "macKey": zeros(32),
                        "initializationVector": zeros(16),
                        "mac": zeros(32),
                        "profileIdentifier": "ProfileVersion1",
                        "fileDigest": base64(&Sha256::digest(&bytes)),
                        "fileDigestAlgorithm": "SHA256",
                    }),
                    bytes,
                })
            }
            ContentSource::Directory { path } => {
                let file = path.join(&artifact.file);
                let unreadable = |what: &str, error: std::io::Error| {
                    ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "artifact {}: cannot read {what} {}: {error}",
                            artifact.id,
                            file.display()
                        ),
                    )
                };
                let bytes =
                    std::fs::read(&file).map_err(|error| unreadable("the content", error))?;
                let expected = artifact.sha256.trim_start_matches("sha256:");
                let found = sha256_hex(&bytes);
                if found != expected {
                    return Err(ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "artifact {}: {} has sha256 {found}, the intent says {expected}; publish the file the intent names",
                            artifact.id,
                            file.display()
                        ),
                    ));
                }
                let sidecar = path.join(format!("{}.encryption.json", artifact.file));
                let text = std::fs::read_to_string(&sidecar)
                    .map_err(|error| unreadable("the encryption info", error))?;
                let mut info: Value = serde_json::from_str(&text).map_err(|error| {
                    ConnectorError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "artifact {}: {} is not JSON: {error}",
                            artifact.id,
                            sidecar.display()
                        ),
                    )
                })?;
                let plain_size = info
                    .get("unencryptedContentSize")
                    .and_then(Value::as_u64)
                    .unwrap_or(bytes.len() as u64);
                if let Value::Object(fields) = &mut info {
                    fields.remove("unencryptedContentSize");
                }
                Ok(Content {
                    bytes,
                    plain_size,
                    encryption_info: info,
                })
            }
        }
    }
}

/// How the flow waits between polls of a content file.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub interval: Duration,
}

async fn poll_file(
    client: &GraphClient,
    file_path: &str,
    stage: &str,
    polling: Polling,
    correlation_id: &str,
) -> Result<Value, ConnectorError> {
    let success = format!("{stage}Success");
    let pending = format!("{stage}Pending");
    for attempt in 0..MAX_POLLS {
        if attempt > 0 && !polling.interval.is_zero() {
            tokio::time::sleep(polling.interval).await;
        }
        let call = Call {
            method: Method::GET,
            target: file_path,
            correlation_id,
        };
        let file = client.send(&call, Payload::Empty).await?;
        let state = file
            .get("uploadState")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if state == success {
            return Ok(file);
        }
        if state != pending {
            return Err(ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!(
                    "intune content file {file_path} reached uploadState {state}; publish again to start a new content version"
                ),
            ));
        }
    }
    Err(ConnectorError::new(
        ErrorCode::Timeout,
        format!(
            "intune content file {file_path} stayed {pending} after {MAX_POLLS} polls; retry later"
        ),
    ))
}

fn id_of(value: &Value, what: &str) -> Result<String, ConnectorError> {
    value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!("Graph created {what} without an id"),
            )
        })
}

/// Uploads the content of a freshly created app and commits it.
pub async fn upload_content(
    client: &GraphClient,
    app_id: &str,
    kind: AppKind,
    content: &Content,
    file_name: &str,
    polling: Polling,
    correlation_id: &str,
) -> Result<(), ConnectorError> {
    let app_path = format!("/beta/deviceAppManagement/mobileApps/{app_id}");
    let base = format!("{app_path}/{}", kind.type_name());
    let send = |method: Method, target: String, body: Option<Value>| async move {
        let call = Call {
            method,
            target: &target,
            correlation_id,
        };
        match &body {
            Some(body) => client.send(&call, Payload::Json(body)).await,
            None => client.send(&call, Payload::Empty).await,
        }
    };
    let version = send(
        Method::POST,
        format!("{base}/contentVersions"),
        Some(json!({})),
    )
    .await?;
    let version_id = id_of(&version, "a content version")?;
    let files_path = format!("{base}/contentVersions/{version_id}/files");
    let file_body = json!({
        "@odata.type": "#microsoft.graph.mobileAppContentFile",
        "name": file_name,
        "size": content.plain_size,
        "sizeEncrypted": content.bytes.len(),
        "manifest": null,
        "isDependency": false,
    });
    let file = send(Method::POST, files_path.clone(), Some(file_body)).await?;
    let file_path = format!("{files_path}/{}", id_of(&file, "a content file")?);
    let ready = poll_file(
        client,
        &file_path,
        "azureStorageUriRequest",
        polling,
        correlation_id,
    )
    .await?;
    let sas_url = ready
        .get("azureStorageUri")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ServiceUnavailable,
                format!("intune content file {file_path} has no azureStorageUri"),
            )
        })?
        .to_string();
    let mut block_ids = Vec::new();
    let chunks: Vec<&[u8]> = if content.bytes.is_empty() {
        vec![&[][..]]
    } else {
        content.bytes.chunks(BLOCK_SIZE).collect()
    };
    for (index, chunk) in chunks.into_iter().enumerate() {
        let block_id = base64(format!("block-{index:06}").as_bytes());
        let url = format!(
            "{sas_url}&comp=block&blockid={}",
            percent_encode_base64(&block_id)
        );
        client.put_blob(&url, chunk.to_vec(), true).await?;
        block_ids.push(block_id);
    }
    let latest: String = block_ids
        .iter()
        .map(|id| format!("<Latest>{id}</Latest>"))
        .collect();
    let block_list =
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{latest}</BlockList>");
    client
        .put_blob(
            &format!("{sas_url}&comp=blocklist"),
            block_list.into_bytes(),
            false,
        )
        .await?;
    let commit = json!({"fileEncryptionInfo": content.encryption_info});
    send(Method::POST, format!("{file_path}/commit"), Some(commit)).await?;
    poll_file(client, &file_path, "commitFile", polling, correlation_id).await?;
    let patch = json!({"@odata.type": kind.odata_type(), "committedContentVersion": version_id});
    send(Method::PATCH, app_path, Some(patch)).await?;
    Ok(())
}
