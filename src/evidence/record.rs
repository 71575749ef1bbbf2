//! The checks of one evidence record that need no walk of the history:
//! which of a commit's added files are the pack and its signature, and
//! whether the pack's content, signature, trusted comment, pack id and
//! implied commit message hold together.

use git2::{Oid, Repository};
use serde::Deserialize;
use serde_json::Value;

use super::canonical::canonical_json;
use super::keys::VerifyingKey;
use super::pack::{
    EvidencePack, PACK_FORMAT, commit_message, pack_id_of, pack_path, trusted_comment,
};
use super::tree_diff::AddedFile;

/// One record as read from git, for the per-record checks.
pub(crate) struct RecordView<'record> {
    pub position: u64,
    pub pack_path: &'record str,
    pub pack_bytes: &'record [u8],
    pub signature_bytes: &'record [u8],
    pub pack_sha256: &'record str,
    /// The previous pack's sha256 when known here; at the start of a chunk
    /// the link is checked after all chunks are done.
    pub previous_pack_sha256: Option<&'record str>,
}

/// The pack and its signature among a commit's added files, or why the
/// commit is not a record.
pub(crate) fn record_files(
    added: &[AddedFile],
) -> Result<(&AddedFile, &AddedFile), (Option<String>, String)> {
    if let Some(outside) = added.iter().find(|file| !file.path.starts_with("packs/")) {
        return Err((
            Some(outside.path.clone()),
            format!("adds {} outside packs/", outside.path),
        ));
    }
    let pack = added.iter().find(|file| file.path.ends_with(".json"));
    let signature = pack.and_then(|pack| {
        added.iter().find(|file| {
            file.path.len() == pack.path.len() + 8
                && file.path.starts_with(&pack.path)
                && file.path.ends_with(".minisig")
        })
    });
    match (pack, signature, added.len()) {
        (Some(pack), Some(signature), 2) => Ok((pack, signature)),
        _ => {
            let paths: Vec<&str> = added.iter().map(|file| file.path.as_str()).collect();
            Err((
                added.first().map(|file| file.path.clone()),
                format!(
                    "adds {} file(s) [{}]; a record commit adds exactly one pack and its .minisig",
                    added.len(),
                    paths.join(", ")
                ),
            ))
        }
    }
}

pub(crate) fn broken_chain_reason(claimed: &str, actual: &str) -> String {
    format!(
        "previous_pack_sha256 is {claimed}, but the previous pack's sha256 is {actual}: the hash chain is broken"
    )
}

/// The per-record checks that need no git access, in the order the
/// `verify` module documents.
pub(crate) fn check_record(
    record: &RecordView<'_>,
    key: &VerifyingKey,
) -> Result<RecordContent, String> {
    let mut pack_value: Value = serde_json::from_slice(record.pack_bytes)
        .map_err(|error| format!("pack is not JSON: {error}"))?;
    if canonical_json(&pack_value) != record.pack_bytes {
        return Err("pack is not in canonical JSON form (was it edited?)".to_string());
    }
    let derived_pack_id = pack_id_of(&pack_value);
    // Move the body out rather than copy it into the typed pack.
    let body = match pack_value.get_mut("body") {
        Some(body) => body.take(),
        None => Value::Null,
    };
    let simulated = body.get("plane_mode").and_then(Value::as_str) == Some("simulated");
    let mut pack = EvidencePack::deserialize(&pack_value)
        .map_err(|error| format!("pack does not follow the evidence pack format: {error}"))?;
    if !body.is_object() {
        return Err("pack body is not a JSON object".to_string());
    }
    pack.body = body;
    if pack.format != PACK_FORMAT {
        return Err(format!(
            "pack format is {:?}, expected {PACK_FORMAT:?}",
            pack.format
        ));
    }
    if pack.sequence != record.position {
        return Err(format!(
            "pack has sequence {} at position {}: records were removed, inserted or reordered",
            pack.sequence, record.position
        ));
    }
    if let Some(previous) = record.previous_pack_sha256
        && pack.previous_pack_sha256 != previous
    {
        return Err(broken_chain_reason(&pack.previous_pack_sha256, previous));
    }
    let expected_path = pack_path(&pack);
    if expected_path != record.pack_path {
        return Err(format!("pack belongs at {expected_path}"));
    }
    let signature_text = std::str::from_utf8(record.signature_bytes)
        .map_err(|_| "signature file is not UTF-8 text".to_string())?;
    let comment = key.verify(record.pack_bytes, signature_text)?;
    let expected_comment = trusted_comment(
        pack.sequence,
        record.pack_sha256,
        &pack.previous_pack_sha256,
        &pack.source_commit,
    );
    if comment != expected_comment {
        return Err(format!(
            "trusted comment {comment:?} does not match the pack (expected {expected_comment:?})"
        ));
    }
    if pack.pack_id != derived_pack_id {
        return Err(format!(
            "pack_id {} is not the id derived from the content ({derived_pack_id})",
            pack.pack_id
        ));
    }
    let expected_commit_message = commit_message(&pack, record.pack_path, record.pack_sha256);
    Ok(RecordContent {
        claimed_previous_pack_sha256: pack.previous_pack_sha256,
        expected_commit_message,
        simulated,
        event_chain: pack.event_chain,
    })
}

/// What a record's content implies for the chain and the commit.
pub(crate) struct RecordContent {
    pub claimed_previous_pack_sha256: String,
    pub expected_commit_message: String,
    /// The record says its plane is simulated (`body.plane_mode`).
    pub simulated: bool,
    /// The state store's event log head the record anchors, if any.
    pub event_chain: Option<super::pack::EventChainAnchor>,
}

/// Names the first line where a commit's message differs from `expected`.
pub(crate) fn commit_message_difference(
    repository: &Repository,
    commit_id: Oid,
    expected: &str,
) -> String {
    let actual_message = match repository.find_commit(commit_id) {
        Ok(commit) => String::from_utf8_lossy(commit.message_bytes()).into_owned(),
        Err(error) => return format!("commit cannot be read: {}", error.message()),
    };
    let mut actual_lines = actual_message.lines();
    let mut expected_lines = expected.lines();
    let (actual, expected) = loop {
        match (actual_lines.next(), expected_lines.next()) {
            (Some(actual), Some(expected)) if actual == expected => continue,
            (actual, expected) => break (actual.unwrap_or("(end)"), expected.unwrap_or("(end)")),
        }
    };
    format!("commit message does not match the pack: {actual:?} where {expected:?} was expected")
}
