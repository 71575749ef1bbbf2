//! The audit bundle: a self-contained `tar.gz` of evidence an auditor can
//! check with `minisign`, `sha256sum` and `jq` alone (its `VERIFY.md` says
//! how), or with `ringmaster evidence verify-bundle`.
//!
//! Layout (everything under `evidence-bundle/`):
//!
//! - `packs/…/SSSSSSSS-LABEL.json` and `.minisig`: the selected records,
//!   at their paths on the evidence branch;
//! - `ringmaster.pub` and `ringmaster.pub.fingerprint` (key id, SHA-256);
//! - `manifest.json`: who exported what and when, the filter, the branch
//!   head, every selected record (sequence, sha256, previous hash, source
//!   commit, path, evidence commit), and `chain`: every record from the
//!   first selected to the last, selected or not, as (sequence, sha256,
//!   previous sha256) — so a filtered bundle still links from end to end;
//! - `commits.jsonl`: the evidence commit of each selected record, its
//!   parent, message and trailers;
//! - `events/events.jsonl`: the event-store extract for the period, one
//!   event per line as the exact canonical JSON its hash covers, with
//!   `events/hashes.txt` (one hash per line) and `events/anchors.json` (the
//!   hash before the first event, the last hash, the store's head);
//! - `VERIFY.md`; `MANIFEST.sha256` (`sha256sum -c` format) over every
//!   other file.
//!
//! [`read_records`] and [`select`] are what the API's evidence endpoints
//! reuse.

mod export;
mod verify;

pub use export::{BundleSummary, ExportOptions, ExportProgress, export_bundle};
pub use verify::{BundleReport, verify_bundle};

use chrono::{DateTime, Utc};
use git2::Oid;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

use super::CommitRecord;
use super::branch::EvidenceBranch;
use super::{EvidenceError, Result, git_context};

/// The `format` of a bundle's manifest.
pub const BUNDLE_FORMAT: &str = "ringmaster.dev/evidence-bundle/v1";

/// The directory every bundle file sits in.
pub const BUNDLE_ROOT: &str = "evidence-bundle";

/// Which records go into a bundle. Every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BundleFilter {
    /// Records created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Records created at or before this instant.
    pub until: Option<DateTime<Utc>>,
    pub intent: Option<String>,
    /// Records about intents targeting this business unit.
    pub business_unit: Option<String>,
}

impl BundleFilter {
    /// Whether the filter leaves anything out.
    pub fn is_empty(&self) -> bool {
        *self == BundleFilter::default()
    }

    fn matches(&self, record: &RecordEntry) -> bool {
        self.since.is_none_or(|since| record.created_at >= since)
            && self.until.is_none_or(|until| record.created_at <= until)
            && self
                .intent
                .as_ref()
                .is_none_or(|intent| record.intent_id.as_ref() == Some(intent))
            && self
                .business_unit
                .as_ref()
                .is_none_or(|bu| record.business_unit.as_ref() == Some(bu))
    }
}

/// One record of the evidence branch, as the bundle (and the API) needs it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordEntry {
    pub sequence: u64,
    #[serde(rename = "sha256")]
    pub pack_sha256: String,
    pub previous_pack_sha256: String,
    pub source_commit: String,
    pub record_type: String,
    pub intent_id: Option<String>,
    /// From the record's intent (its own body, or the intent's decision).
    pub business_unit: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(rename = "path")]
    pub pack_path: String,
    pub signature_path: String,
    /// The evidence commit (hex).
    pub commit: String,
    #[serde(skip)]
    pub parent: Option<String>,
    #[serde(skip)]
    pub message: String,
    #[serde(skip)]
    pub pack_blob: Oid,
    #[serde(skip)]
    pub signature_blob: Oid,
}

/// Every record of `branch`, root first, read once (pack contents parsed
/// for the fields above; bytes stay in git until written).
pub fn read_records(branch: &EvidenceBranch) -> Result<Vec<RecordEntry>> {
    let mut commits = Vec::new();
    if let Some(tip) = branch.tip()? {
        let mut cursor =
            Some(Oid::from_str(&tip.commit).map_err(git_context("invalid tip commit"))?);
        while let Some(commit_id) = cursor {
            commits.push(commit_id);
            cursor = branch
                .repository
                .find_commit(commit_id)
                .map_err(git_context(format!("cannot read commit {commit_id}")))?
                .parent_id(0)
                .ok();
        }
    }
    commits.reverse();
    let mut business_units: BTreeMap<String, String> = BTreeMap::new();
    let mut records = Vec::with_capacity(commits.len());
    for commit_id in commits {
        let commit = branch
            .repository
            .find_commit(commit_id)
            .map_err(git_context(format!("cannot read commit {commit_id}")))?;
        let commit_message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        let in_commit = branch.records_in_commit(commit_id)?;
        let batch = in_commit.len() > 1;
        for record in in_commit {
            let CommitRecord {
                tip,
                pack,
                pack_blob,
                signature_blob,
            } = record;
            let signature_path = format!("{}.minisig", tip.pack_path);
            // A record of a batch commit is listed with the message its own
            // one-record commit would carry (its trailers); the batch
            // commit's message names only the range.
            let message = if batch {
                super::pack::commit_message(&pack, &tip.pack_path, &tip.pack_sha256)
            } else {
                commit_message.clone()
            };
            let own_unit = business_unit_of(&pack.body);
            if let (Some(intent), Some(unit)) = (&pack.intent_id, &own_unit) {
                business_units.insert(intent.clone(), unit.clone());
            }
            let business_unit = own_unit.or_else(|| {
                pack.intent_id
                    .as_ref()
                    .and_then(|intent| business_units.get(intent).cloned())
            });
            records.push(RecordEntry {
                sequence: tip.sequence,
                pack_sha256: tip.pack_sha256,
                previous_pack_sha256: pack.previous_pack_sha256,
                source_commit: pack.source_commit,
                record_type: pack.record_type.as_str().to_owned(),
                intent_id: pack.intent_id,
                business_unit,
                created_at: pack.created_at,
                pack_path: tip.pack_path,
                signature_path,
                commit: commit_id.to_string(),
                parent: commit.parent_id(0).ok().map(|id| id.to_string()),
                message,
                pack_blob,
                signature_blob,
            });
        }
    }
    Ok(records)
}

/// The business unit a record body names: the decision's intent's target
/// scope, or a `business_unit` member of the body.
fn business_unit_of(body: &Value) -> Option<String> {
    body.pointer("/intent/target_scope/business_unit")
        .or_else(|| body.pointer("/business_unit"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The records a filter selects, and the stretch of chain that links them.
#[derive(Debug, Clone)]
pub struct Selection<'records> {
    pub selected: Vec<&'records RecordEntry>,
    /// Every record from the first selected to the last selected.
    pub chain: &'records [RecordEntry],
}

/// Applies `filter` to `records` (root first, as [`read_records`] gives).
pub fn select<'records>(
    records: &'records [RecordEntry],
    filter: &BundleFilter,
) -> Selection<'records> {
    let indexes: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, record)| filter.matches(record))
        .map(|(index, _)| index)
        .collect();
    let chain = match (indexes.first(), indexes.last()) {
        (Some(&first), Some(&last)) => &records[first..=last],
        _ => &[],
    };
    Selection {
        selected: indexes.into_iter().map(|index| &records[index]).collect(),
        chain,
    }
}

/// The trailers of a commit message (`Key: value` lines after the subject).
pub(crate) fn trailers(message: &str) -> BTreeMap<String, String> {
    message
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(": "))
        .filter(|(key, _)| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// Fails when the bundle would be empty of records and the caller asked for some.
pub(crate) fn no_records(filter: &BundleFilter) -> EvidenceError {
    EvidenceError::InvalidInput {
        reason: format!(
            "no evidence record matches the filter {}",
            serde_json::to_string(filter).unwrap_or_default()
        ),
    }
}
