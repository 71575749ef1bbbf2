//! The evidence pack: its fields, how a record is prepared (canonical bytes,
//! hash, signature, path, commit message) and the exact text formats that
//! bind them together.
//!
//! Formats (all checked again by `verify_branch`):
//!
//! - `pack_id` is deterministic: the UUID v5, in the namespace
//!   [`PACK_ID_NAMESPACE`], of the canonical JSON of the pack without its
//!   `pack_id` member. The same content always gets the same id and anyone
//!   can recompute it; two records never share one because sequence and
//!   previous hash differ.
//! - path: `packs/YYYY/MM/BBBBBBxx/SSSSSSSS-LABEL.json` where `YYYY/MM` is
//!   the UTC month of `created_at`, `SSSSSSSS` the sequence padded to 8
//!   digits, `BBBBBBxx` its bucket of 100 (sequence 1234 → `000012xx`) and
//!   `LABEL` the intent id (or, without one, the record type) with every
//!   character outside `[A-Za-z0-9._-]` replaced by `-`, at most 64 long.
//!   The bucket level keeps every directory small (≤ 200 entries) however
//!   many records a month holds, which keeps append and verify linear.
//!   The signature sits beside the pack as `….json.minisig`.
//! - trusted comment: `ringmaster seq=<n> sha256=<pack sha256> prev=<previous
//!   pack sha256> source=<source commit>` — single spaces, lower-case hex,
//!   `n` in decimal without padding.
//! - commit message: `evidence: <record_type> <intent_id> #<n>` (the intent
//!   id left out when there is none), a blank line, then the trailers
//!   `Intent-Id` (when there is one), `Correlation-Id`, `Decision` (when the
//!   body has one, see [`EvidencePackInput::body`]), `Source-Commit`,
//!   `Evidence-Path`, `Evidence-Sequence`, `Evidence-Sha256`, one per line,
//!   with control characters in values replaced by spaces.
//! - batch commit (many records in one commit, see
//!   `EvidenceBranch::append_batch`): `evidence: batch #<first>..#<last>
//!   (<count> records)`, a blank line, then `Evidence-First-Sequence`,
//!   `Evidence-Records`, and `Evidence-Path`, `Evidence-Sequence`,
//!   `Evidence-Sha256` of its *last* record (so the tip of the branch reads
//!   the same in both layouts). A batch holds at least two records; one
//!   record is always written as a one-record commit.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::canonical::{canonical_json, canonical_json_without_member, sha256_hex};
use super::keys::SigningKey;
use super::{EvidenceError, Result};

/// Value of the `format` member of every pack of this version.
pub const PACK_FORMAT: &str = "ringmaster.dev/evidence-pack/v1";

/// `previous_pack_sha256` of the first record of a branch.
pub const GENESIS_PREVIOUS_PACK_SHA256: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Namespace of the UUID v5 pack ids (a fixed random UUID).
pub const PACK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_93b7_4d0a_8e55_1c7d_b2f0_9a31);

/// What a record is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// A policy decision on an intent (on merge to main).
    Decision,
    /// An intent moved from one ring state to another.
    RingTransition,
    /// A promotion gate was evaluated.
    GateResult,
    /// A ring was rolled back.
    Rollback,
    /// The reconciler found a plane out of line with the intent.
    Drift,
    /// Drift was remediated (or a ticket raised).
    Remediation,
    /// A human acted through the API or CLI.
    OperatorAction,
    /// The rules in force: the root of authority, an authorised change to
    /// the rules, or a change not put in force (`governance_change_unauthorised`).
    Governance,
}

impl RecordType {
    /// The snake_case name used in JSON, paths and commit messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Decision => "decision",
            RecordType::RingTransition => "ring_transition",
            RecordType::GateResult => "gate_result",
            RecordType::Rollback => "rollback",
            RecordType::Drift => "drift",
            RecordType::Remediation => "remediation",
            RecordType::OperatorAction => "operator_action",
            RecordType::Governance => "governance",
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A git identity with the time it acted, as recorded on a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitIdentity {
    pub name: String,
    pub email: String,
    /// With the offset git recorded, so the record reads as the log does.
    pub time: DateTime<FixedOffset>,
}

/// What the caller supplies for a record; the chain fields (sequence,
/// previous hash, pack id, version) are filled in by `append`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidencePackInput {
    pub record_type: RecordType,
    /// The deployment intent concerned, when there is one.
    pub intent_id: Option<String>,
    /// Ties the record to store events and connector calls.
    pub correlation_id: String,
    /// The governed-repository commit the record is about (hex object id).
    pub source_commit: String,
    /// Its first parent, when it has one (hex object id).
    pub source_parent: Option<String>,
    /// Author of the source commit.
    pub author: GitIdentity,
    /// Committer of the source commit.
    pub committer: GitIdentity,
    /// When the record was made (the injected clock, not the wall clock).
    pub created_at: DateTime<Utc>,
    /// Record-type-specific content; must be a JSON object. When it has a
    /// string at `/decision` (or else at `/policy/decision`), that string is
    /// the commit's `Decision:` trailer.
    pub body: Value,
}

/// One evidence record as stored (see `schemas/evidence-pack.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidencePack {
    /// Always [`PACK_FORMAT`] for this version.
    pub format: String,
    pub pack_id: String,
    /// 1 for the first record of the branch, then contiguous.
    pub sequence: u64,
    pub record_type: RecordType,
    pub intent_id: Option<String>,
    pub correlation_id: String,
    pub source_commit: String,
    pub source_parent: Option<String>,
    pub author: GitIdentity,
    pub committer: GitIdentity,
    pub created_at: DateTime<Utc>,
    pub ringmaster_version: String,
    /// SHA-256 of the previous pack's file, or 64 zeros for the first.
    pub previous_pack_sha256: String,
    /// The head of the state store's event log when the record was signed:
    /// `verify --state` checks that the log still holds that event with
    /// that hash, so a truncated, emptied or rewritten log is caught against
    /// the signed branch. Absent in records written before it existed and
    /// by writers without a store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_chain: Option<EventChainAnchor>,
    pub body: Value,
}

/// A point of the state store's hash-chained event log: event `seq` and
/// its `hash` (see `store::events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventChainAnchor {
    pub seq: u64,
    pub hash: String,
}

/// Where a new record goes in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPosition {
    pub sequence: u64,
    pub previous_pack_sha256: String,
}

impl ChainPosition {
    /// The position of the first record of a branch.
    pub fn genesis() -> Self {
        Self {
            sequence: 1,
            previous_pack_sha256: GENESIS_PREVIOUS_PACK_SHA256.to_string(),
        }
    }
}

/// A record ready to be written: the exact bytes and texts of its files and
/// commit. [`super::EvidenceBranch::append`] commits one; it is public so
/// other writers (bulk import, benchmarks) produce identical records.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    pub pack: EvidencePack,
    /// Canonical JSON of `pack`: the committed file content.
    pub pack_bytes: Vec<u8>,
    pub pack_sha256: String,
    /// The `.minisig` file content.
    pub signature: String,
    pub pack_path: String,
    pub signature_path: String,
    pub commit_message: String,
}

/// Builds, hashes and signs the record for `input` at `position`.
pub fn prepare_record(
    input: EvidencePackInput,
    position: &ChainPosition,
    signer: &SigningKey,
) -> Result<PreparedRecord> {
    prepare_anchored_record(input, position, None, signer)
}

/// [`prepare_record`], anchoring the state store's event log at `event_chain`.
pub fn prepare_anchored_record(
    input: EvidencePackInput,
    position: &ChainPosition,
    event_chain: Option<EventChainAnchor>,
    signer: &SigningKey,
) -> Result<PreparedRecord> {
    let unsigned = build_unsigned(input, position, event_chain, Body::Kept)?;
    sign_unsigned(unsigned, signer)
}

/// The records for `inputs`, chained from `position` in order: one after
/// the other, each `previous_pack_sha256` the hash of the one before. The
/// packs are built and hashed in order (each needs the previous hash);
/// the signatures, most of the cost, are made on every core.
///
/// Each input is taken from `inputs` only when its pack is built, and the
/// records answered keep their canonical bytes, not their bodies
/// (`pack.body` is `Null`; `commit_message` was made with the body): a
/// batch of 1,000 records holds each body only while its bytes are made
/// (issue 17: a rollout record's body carries its whole run).
pub fn prepare_anchored_records(
    inputs: impl IntoIterator<Item = EvidencePackInput>,
    position: &ChainPosition,
    event_chain: Option<EventChainAnchor>,
    signer: &SigningKey,
) -> Result<Vec<PreparedRecord>> {
    let inputs = inputs.into_iter();
    let mut records = Vec::with_capacity(inputs.size_hint().0);
    prepare_anchored_records_each(
        inputs,
        position,
        event_chain,
        signer,
        Kept::Message,
        |record| {
            records.push(record);
            Ok(())
        },
    )?;
    Ok(records)
}

/// What a record prepared for a batch keeps besides its bytes, hash,
/// signature and paths (`pack.body` is always `Null`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Its `commit_message`, made with the body.
    Message,
    /// Nothing more: `commit_message` is empty (a batch commit has a
    /// message of its own and never reads the records' messages).
    BytesOnly,
}

/// [`prepare_anchored_records`] handing each record to `each`, in chain
/// order, as soon as it is signed: at most a few dozen records per core
/// (their bytes, never their bodies) are held at once, however long the
/// batch (issue 17: a caller that writes each record away as it comes holds
/// each record's bytes once). Stops at the first error, its own or `each`'s.
pub(crate) fn prepare_anchored_records_each(
    inputs: impl IntoIterator<Item = EvidencePackInput>,
    position: &ChainPosition,
    event_chain: Option<EventChainAnchor>,
    signer: &SigningKey,
    kept: Kept,
    mut each: impl FnMut(PreparedRecord) -> Result<()>,
) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8);
    let chunk_len = (SIGNED_PER_WORKER * workers).max(64);
    let body = match kept {
        Kept::Message => Body::Dropped,
        Kept::BytesOnly => Body::DroppedWithoutMessage,
    };
    let mut next = position.clone();
    let mut unsigned = Vec::new();
    let mut inputs = inputs.into_iter().peekable();
    while inputs.peek().is_some() {
        for input in inputs.by_ref().take(chunk_len) {
            let record = build_unsigned(input, &next, event_chain.clone(), body)?;
            next = ChainPosition {
                sequence: record.pack.sequence + 1,
                previous_pack_sha256: record.pack_sha256.clone(),
            };
            unsigned.push(record);
        }
        for record in sign_all(std::mem::take(&mut unsigned), signer, workers)? {
            each(record)?;
        }
    }
    Ok(())
}

/// Records each worker signs per round of [`prepare_anchored_records_each`].
const SIGNED_PER_WORKER: usize = 32;

/// Signs `unsigned`, on up to `workers` threads when there are enough
/// records to share; the records in their order.
fn sign_all(
    mut unsigned: Vec<UnsignedRecord>,
    signer: &SigningKey,
    workers: usize,
) -> Result<Vec<PreparedRecord>> {
    if workers == 1 || unsigned.len() < 64 {
        return unsigned
            .into_iter()
            .map(|record| sign_unsigned(record, signer))
            .collect();
    }
    let chunk_size = unsigned.len().div_ceil(workers);
    let mut chunks = Vec::with_capacity(workers);
    while !unsigned.is_empty() {
        let rest = unsigned.split_off(chunk_size.min(unsigned.len()));
        chunks.push(std::mem::replace(&mut unsigned, rest));
    }
    let signed: Vec<Result<Vec<PreparedRecord>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|record| sign_unsigned(record, signer))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut records = Vec::with_capacity(chunk_size * workers);
    for chunk in signed {
        records.extend(chunk?);
    }
    Ok(records)
}

/// A record with its canonical bytes and hash, not yet signed.
struct UnsignedRecord {
    pack: EvidencePack,
    pack_bytes: Vec<u8>,
    pack_sha256: String,
    pack_path: String,
    commit_message: String,
}

/// Whether a built record keeps its body in `pack.body` (its bytes and
/// commit message are the same either way).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Kept,
    Dropped,
    /// Dropped, and no commit message made (`commit_message` is empty).
    DroppedWithoutMessage,
}

fn build_unsigned(
    input: EvidencePackInput,
    position: &ChainPosition,
    event_chain: Option<EventChainAnchor>,
    body: Body,
) -> Result<UnsignedRecord> {
    validate_input(&input)?;
    if let Some(anchor) = &event_chain
        && (anchor.seq == 0
            || anchor.hash.len() != 64
            || !anchor
                .hash
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(EvidenceError::InvalidInput {
            reason: format!(
                "event chain anchor (seq {}, hash {:?}) is not an event of a hash chain",
                anchor.seq, anchor.hash
            ),
        });
    }
    let mut pack = EvidencePack {
        format: PACK_FORMAT.to_string(),
        pack_id: String::new(),
        sequence: position.sequence,
        record_type: input.record_type,
        intent_id: input.intent_id,
        correlation_id: input.correlation_id,
        source_commit: input.source_commit,
        source_parent: input.source_parent,
        author: input.author,
        committer: input.committer,
        created_at: input.created_at,
        ringmaster_version: env!("CARGO_PKG_VERSION").to_string(),
        previous_pack_sha256: position.previous_pack_sha256.clone(),
        event_chain,
        body: Value::Null,
    };
    // The body is moved in and out of the JSON value rather than copied.
    let mut value = pack_to_value(&pack)?;
    if let Value::Object(members) = &mut value {
        members.insert("body".to_string(), input.body);
    }
    pack.pack_id = pack_id_of(&value);
    if let Value::Object(members) = &mut value {
        members.insert("pack_id".to_string(), Value::String(pack.pack_id.clone()));
    }
    let pack_bytes = canonical_json(&value);
    if let Value::Object(members) = &mut value
        && let Some(body) = members.remove("body")
    {
        pack.body = body;
    }
    drop(value);
    let pack_sha256 = sha256_hex(&pack_bytes);
    let pack_path = pack_path(&pack);
    let commit_message = match body {
        Body::DroppedWithoutMessage => String::new(),
        Body::Kept | Body::Dropped => commit_message(&pack, &pack_path, &pack_sha256),
    };
    if body != Body::Kept {
        pack.body = Value::Null;
    }
    Ok(UnsignedRecord {
        pack,
        pack_bytes,
        pack_sha256,
        pack_path,
        commit_message,
    })
}

fn sign_unsigned(record: UnsignedRecord, signer: &SigningKey) -> Result<PreparedRecord> {
    let UnsignedRecord {
        pack,
        pack_bytes,
        pack_sha256,
        pack_path,
        commit_message,
    } = record;
    let comment = trusted_comment(
        pack.sequence,
        &pack_sha256,
        &pack.previous_pack_sha256,
        &pack.source_commit,
    );
    let signature = signer.sign(
        &pack_bytes,
        &comment,
        &format!("ringmaster evidence pack #{}", pack.sequence),
    )?;
    let signature_path = signature_path_for(&pack_path);
    Ok(PreparedRecord {
        pack,
        pack_bytes,
        pack_sha256,
        signature,
        pack_path,
        signature_path,
        commit_message,
    })
}

pub(crate) fn pack_to_value(pack: &EvidencePack) -> Result<Value> {
    serde_json::to_value(pack).map_err(|error| EvidenceError::InvalidInput {
        reason: format!("pack cannot be serialised: {error}"),
    })
}

/// The deterministic pack id of a pack given as JSON (its `pack_id` member,
/// if any, is ignored).
pub(crate) fn pack_id_of(pack_value: &Value) -> String {
    let canonical_without_id = canonical_json_without_member(pack_value, "pack_id");
    Uuid::new_v5(&PACK_ID_NAMESPACE, &canonical_without_id).to_string()
}

fn validate_input(input: &EvidencePackInput) -> Result<()> {
    let invalid = |reason: String| Err(EvidenceError::InvalidInput { reason });
    if !is_object_id(&input.source_commit) {
        return invalid(format!(
            "source_commit {:?} is not a hex git object id",
            input.source_commit
        ));
    }
    if let Some(parent) = &input.source_parent
        && !is_object_id(parent)
    {
        return invalid(format!(
            "source_parent {parent:?} is not a hex git object id"
        ));
    }
    if input.correlation_id.trim().is_empty() {
        return invalid("correlation_id is empty".to_string());
    }
    if input
        .intent_id
        .as_deref()
        .is_some_and(|id| id.trim().is_empty())
    {
        return invalid("intent_id is empty (use None for records without an intent)".to_string());
    }
    if !input.body.is_object() {
        return invalid("body must be a JSON object".to_string());
    }
    if !(0..=9999).contains(&input.created_at.year()) {
        return invalid(format!("created_at {} is out of range", input.created_at));
    }
    Ok(())
}

fn is_object_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64)
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// The path of a pack's file on the evidence branch (see module docs).
pub fn pack_path(pack: &EvidencePack) -> String {
    let label = match &pack.intent_id {
        Some(intent_id) => path_label(intent_id),
        None => pack.record_type.as_str().to_string(),
    };
    format!(
        "packs/{:04}/{:02}/{:06}xx/{:08}-{label}.json",
        pack.created_at.year(),
        pack.created_at.month(),
        pack.sequence / 100,
        pack.sequence,
    )
}

/// The path of the signature beside `pack_path`.
pub fn signature_path_for(pack_path: &str) -> String {
    format!("{pack_path}.minisig")
}

fn path_label(intent_id: &str) -> String {
    intent_id
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-') {
                character
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// The trusted comment that binds a signature to its place in the chain.
pub fn trusted_comment(
    sequence: u64,
    pack_sha256: &str,
    previous_pack_sha256: &str,
    source_commit: &str,
) -> String {
    format!(
        "ringmaster seq={sequence} sha256={pack_sha256} prev={previous_pack_sha256} source={source_commit}"
    )
}

/// The decision named in a record body, if any (see
/// [`EvidencePackInput::body`]).
pub(crate) fn decision_of(body: &Value) -> Option<&str> {
    body.pointer("/decision")
        .and_then(Value::as_str)
        .or_else(|| body.pointer("/policy/decision").and_then(Value::as_str))
}

/// The commit message of a record (see module docs).
pub fn commit_message(pack: &EvidencePack, pack_path: &str, pack_sha256: &str) -> String {
    let mut subject = format!("evidence: {}", pack.record_type);
    if let Some(intent_id) = &pack.intent_id {
        subject.push(' ');
        subject.push_str(&single_line(intent_id));
    }
    let mut message = format!("{subject} #{}\n\n", pack.sequence);
    let mut trailer = |key: &str, value: &str| {
        message.push_str(&format!("{key}: {}\n", single_line(value)));
    };
    if let Some(intent_id) = &pack.intent_id {
        trailer("Intent-Id", intent_id);
    }
    trailer("Correlation-Id", &pack.correlation_id);
    if let Some(decision) = decision_of(&pack.body) {
        trailer("Decision", decision);
    }
    trailer("Source-Commit", &pack.source_commit);
    trailer("Evidence-Path", pack_path);
    trailer("Evidence-Sequence", &pack.sequence.to_string());
    trailer("Evidence-Sha256", pack_sha256);
    message
}

/// The commit message of a batch commit: one commit adding the records
/// `first_sequence..=last.sequence` (at least two; see module docs).
pub fn batch_commit_message(
    first_sequence: u64,
    last_sequence: u64,
    last_pack_path: &str,
    last_pack_sha256: &str,
) -> String {
    let count = last_sequence.saturating_sub(first_sequence) + 1;
    let mut message =
        format!("evidence: batch #{first_sequence}..#{last_sequence} ({count} records)\n\n");
    let mut trailer = |key: &str, value: &str| {
        message.push_str(&format!("{key}: {}\n", single_line(value)));
    };
    trailer(BATCH_FIRST_TRAILER, &first_sequence.to_string());
    trailer(BATCH_RECORDS_TRAILER, &count.to_string());
    trailer("Evidence-Path", last_pack_path);
    trailer("Evidence-Sequence", &last_sequence.to_string());
    trailer("Evidence-Sha256", last_pack_sha256);
    message
}

/// Trailer of a batch commit: the sequence of its first record.
pub(crate) const BATCH_FIRST_TRAILER: &str = "Evidence-First-Sequence";
/// Trailer of a batch commit: how many records it adds.
pub(crate) const BATCH_RECORDS_TRAILER: &str = "Evidence-Records";

/// How many records a commit claims to add, from its message: the
/// `Evidence-Records` trailer of a batch commit, else one. What a commit
/// claims only places its records; `verify` checks the claim against the
/// commit's content and the message the records imply.
pub(crate) fn claimed_record_count(message: &str) -> u64 {
    trailer_value(message, BATCH_RECORDS_TRAILER)
        .and_then(|count| count.parse::<u64>().ok())
        .filter(|count| (2..=MAX_RECORDS_PER_COMMIT).contains(count))
        .unwrap_or(1)
}

/// The most records one batch commit may carry.
pub const MAX_RECORDS_PER_COMMIT: u64 = 1_000_000;

fn single_line(value: &str) -> String {
    value
        .chars()
        .map(|character| {
            if character.is_control() {
                ' '
            } else {
                character
            }
        })
        .collect()
}

/// Reads one trailer's value from a commit message.
pub(crate) fn trailer_value<'message>(message: &'message str, key: &str) -> Option<&'message str> {
    message.lines().rev().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample_pack(sequence: u64, intent_id: Option<&str>) -> EvidencePack {
        let time = DateTime::parse_from_rfc3339("2026-11-03T10:15:00+01:00").unwrap();
        EvidencePack {
            format: PACK_FORMAT.to_string(),
            pack_id: String::new(),
            sequence,
            record_type: RecordType::Decision,
            intent_id: intent_id.map(str::to_string),
            correlation_id: "corr-1".to_string(),
            source_commit: "a".repeat(40),
            source_parent: None,
            author: GitIdentity {
                name: "Alice".to_string(),
                email: "alice@example.com".to_string(),
                time,
            },
            committer: GitIdentity {
                name: "Alice".to_string(),
                email: "alice@example.com".to_string(),
                time,
            },
            created_at: time.with_timezone(&Utc),
            ringmaster_version: "0.1.0".to_string(),
            previous_pack_sha256: GENESIS_PREVIOUS_PACK_SHA256.to_string(),
            event_chain: None,
            body: json!({"decision": "ALLOW"}),
        }
    }

    #[test]
    fn pack_path_uses_utc_month_bucket_and_padded_sequence() {
        assert_eq!(
            pack_path(&sample_pack(7, Some("vpn-2.1"))),
            "packs/2026/11/000000xx/00000007-vpn-2.1.json"
        );
        assert_eq!(
            pack_path(&sample_pack(1234, Some("vpn-2.1"))),
            "packs/2026/11/000012xx/00001234-vpn-2.1.json"
        );
        assert_eq!(
            pack_path(&sample_pack(3, None)),
            "packs/2026/11/000000xx/00000003-decision.json"
        );
    }

    #[test]
    fn pack_path_label_cannot_escape_its_directory() {
        assert_eq!(
            pack_path(&sample_pack(1, Some("../../etc/passwd\nx"))),
            "packs/2026/11/000000xx/00000001-..-..-etc-passwd-x.json"
        );
        let long_label = "x".repeat(200);
        let path = pack_path(&sample_pack(1, Some(&long_label)));
        assert!(
            path.ends_with(&format!("-{}.json", "x".repeat(64))),
            "{path}"
        );
    }

    #[test]
    fn trusted_comment_has_the_documented_format() {
        assert_eq!(
            trusted_comment(7, &"b".repeat(64), &"0".repeat(64), &"c".repeat(40)),
            format!(
                "ringmaster seq=7 sha256={} prev={} source={}",
                "b".repeat(64),
                "0".repeat(64),
                "c".repeat(40)
            )
        );
    }

    #[test]
    fn commit_message_carries_subject_and_trailers() {
        let pack = sample_pack(7, Some("vpn-2.1"));
        let message = commit_message(&pack, "packs/p.json", &"d".repeat(64));
        let expected = format!(
            "evidence: decision vpn-2.1 #7\n\nIntent-Id: vpn-2.1\nCorrelation-Id: corr-1\nDecision: ALLOW\nSource-Commit: {}\nEvidence-Path: packs/p.json\nEvidence-Sequence: 7\nEvidence-Sha256: {}\n",
            "a".repeat(40),
            "d".repeat(64)
        );
        assert_eq!(message, expected);
        assert_eq!(trailer_value(&message, "Evidence-Sequence"), Some("7"));
    }

    #[test]
    fn commit_message_cannot_be_given_extra_trailers_through_values() {
        let mut pack = sample_pack(2, None);
        pack.correlation_id = "c\nEvidence-Sequence: 99".to_string();
        pack.body = json!({"policy": {"decision": "DENY"}});
        let message = commit_message(&pack, "packs/p.json", &"d".repeat(64));
        assert!(message.starts_with(
            "evidence: decision #2\n\nCorrelation-Id: c Evidence-Sequence: 99\nDecision: DENY\n"
        ));
        assert_eq!(trailer_value(&message, "Evidence-Sequence"), Some("2"));
    }

    #[test]
    fn pack_id_is_deterministic_and_ignores_the_pack_id_member() {
        let pack = sample_pack(1, Some("vpn"));
        let value = serde_json::to_value(&pack).unwrap();
        let mut with_other_id = value.clone();
        with_other_id["pack_id"] = json!("something else");
        assert_eq!(pack_id_of(&value), pack_id_of(&with_other_id));
        let mut next = value.clone();
        next["sequence"] = json!(2);
        assert_ne!(pack_id_of(&value), pack_id_of(&next));
        assert_eq!(
            Uuid::parse_str(&pack_id_of(&value))
                .unwrap()
                .get_version_num(),
            5
        );
    }
}
