//! Writing an audit bundle (see the parent module for its layout).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::{BUNDLE_FORMAT, BUNDLE_ROOT, BundleFilter, no_records, read_records, select, trailers};
use crate::evidence::branch::EvidenceBranch;
use crate::evidence::canonical::sha256_hex;
use crate::evidence::{EvidenceError, Result, VerifyingKey, git_context, io_context};

/// What to export, and who asks.
pub struct ExportOptions<'a> {
    pub filter: BundleFilter,
    /// Who exported (recorded in the manifest, the event and the SIEM line).
    pub exported_by: String,
    pub exported_at: DateTime<Utc>,
    /// The public key the packs verify with (copied into the bundle).
    pub public_key: &'a Path,
    /// The state store, for the event-store extract (`None`: no extract).
    pub store: Option<&'a crate::store::Store>,
}

/// Progress of a long export, for the caller to show.
#[derive(Debug, Clone, Copy)]
pub struct ExportProgress {
    pub records_written: usize,
    pub records_total: usize,
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleSummary {
    pub path: PathBuf,
    pub records: usize,
    /// Records between the first and last selected, left out by the filter.
    pub omitted_in_chain: usize,
    pub first_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
    pub events: usize,
    pub bytes: u64,
    /// SHA-256 of the bundle file itself.
    pub sha256: String,
    pub filter: BundleFilter,
}

/// Writes the bundle for `options` to `out` (a temporary file renamed into
/// place, so a reader never sees half a bundle). `progress` is called every
/// 1000 records.
pub fn export_bundle(
    branch: &EvidenceBranch,
    options: &ExportOptions<'_>,
    out: &Path,
    progress: &mut dyn FnMut(ExportProgress),
) -> Result<BundleSummary> {
    let records = read_records(branch)?;
    let selection = select(&records, &options.filter);
    if selection.selected.is_empty() {
        return Err(no_records(&options.filter));
    }
    let key = VerifyingKey::load(options.public_key)?;
    let public_key_bytes =
        std::fs::read(options.public_key).map_err(io_context(options.public_key))?;
    let events = match options.store {
        Some(store) => Some(event_extract(store, &options.filter)?),
        None => None,
    };

    let temporary = out.with_extension(format!("partial-{}", std::process::id()));
    let file = File::create(&temporary).map_err(io_context(&temporary))?;
    let mut writer = BundleWriter {
        archive: tar::Builder::new(GzEncoder::new(BufWriter::new(file), Compression::default())),
        listed: Vec::new(),
        mtime: options.exported_at.timestamp().max(0) as u64,
        path: temporary.clone(),
    };
    let repository = &branch.repository;
    let total = selection.selected.len();
    for (index, record) in selection.selected.iter().enumerate() {
        for (path, blob) in [
            (&record.pack_path, record.pack_blob),
            (&record.signature_path, record.signature_blob),
        ] {
            let blob = repository
                .find_blob(blob)
                .map_err(git_context(format!("cannot read {path}")))?;
            writer.add(path, blob.content())?;
        }
        if (index + 1) % 1000 == 0 || index + 1 == total {
            progress(ExportProgress {
                records_written: index + 1,
                records_total: total,
            });
        }
    }
    let mut commits = Vec::new();
    for record in &selection.selected {
        let line = json!({
            "sequence": record.sequence,
            "commit": record.commit,
            "parent": record.parent,
            "message": record.message,
            "trailers": trailers(&record.message),
        });
        commits.extend_from_slice(line.to_string().as_bytes());
        commits.push(b'\n');
    }
    writer.add("commits.jsonl", &commits)?;
    let events_manifest = match &events {
        Some(extract) => {
            writer.add("events/events.jsonl", extract.lines.as_bytes())?;
            writer.add("events/hashes.txt", extract.hashes.as_bytes())?;
            let anchors = serde_json::to_vec_pretty(&extract.anchors).unwrap_or_default();
            writer.add("events/anchors.json", &anchors)?;
            extract.anchors.clone()
        }
        None => Value::Null,
    };
    writer.add("ringmaster.pub", &public_key_bytes)?;
    let fingerprint = format!(
        "key id: {}\nsha256 of ringmaster.pub: {}\n",
        key.key_id(),
        sha256_hex(&public_key_bytes)
    );
    writer.add("ringmaster.pub.fingerprint", fingerprint.as_bytes())?;
    writer.add("VERIFY.md", verify_instructions(key.key_id()).as_bytes())?;

    let head = records.last();
    let chain: Vec<Value> = selection
        .chain
        .iter()
        .map(|record| {
            json!({
                "sequence": record.sequence,
                "sha256": record.pack_sha256,
                "previous_pack_sha256": record.previous_pack_sha256,
                "included": options.filter.matches(record),
            })
        })
        .collect();
    let omitted_in_chain = selection.chain.len() - selection.selected.len();
    let manifest = json!({
        "format": BUNDLE_FORMAT,
        "exported_at": options.exported_at,
        "exported_by": options.exported_by,
        "ringmaster_version": env!("CARGO_PKG_VERSION"),
        "filter": options.filter,
        "branch": {
            "name": branch.branch_name(),
            "head": head.map(|record| json!({"sequence": record.sequence, "sha256": record.pack_sha256, "commit": record.commit})),
        },
        "public_key": {"file": "ringmaster.pub", "key_id": key.key_id(), "sha256": sha256_hex(&public_key_bytes)},
        "records": selection.selected,
        "omitted_in_chain": omitted_in_chain,
        "chain": chain,
        "events": events_manifest,
        "object_store_keys": "packs/<sequence padded to 8>-<sha256>.json and .minisig, under the configured prefix",
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    writer.add("manifest.json", &manifest_bytes)?;
    let mut sums = String::new();
    for (path, sha256) in &writer.listed {
        sums.push_str(&format!("{sha256}  {path}\n"));
    }
    writer.add_unlisted("MANIFEST.sha256", sums.as_bytes())?;
    writer.finish()?;
    std::fs::rename(&temporary, out).map_err(io_context(out))?;
    let bytes = std::fs::read(out).map_err(io_context(out))?;
    Ok(BundleSummary {
        path: out.to_path_buf(),
        records: selection.selected.len(),
        omitted_in_chain,
        first_sequence: selection.selected.first().map(|record| record.sequence),
        last_sequence: selection.selected.last().map(|record| record.sequence),
        events: events.as_ref().map_or(0, |extract| extract.count),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
        filter: options.filter.clone(),
    })
}

/// The tar.gz being written, and the SHA-256 of every file in it.
struct BundleWriter {
    archive: tar::Builder<GzEncoder<BufWriter<File>>>,
    listed: Vec<(String, String)>,
    mtime: u64,
    path: PathBuf,
}

impl BundleWriter {
    fn add(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.listed.push((path.to_owned(), sha256_hex(bytes)));
        self.add_unlisted(path, bytes)
    }

    fn add_unlisted(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.archive
            .append_data(&mut header, format!("{BUNDLE_ROOT}/{path}"), bytes)
            .map_err(io_context(&self.path))
    }

    fn finish(self) -> Result<()> {
        let path = self.path.clone();
        let encoder = self.archive.into_inner().map_err(io_context(&path))?;
        let mut buffered = encoder.finish().map_err(io_context(&path))?;
        buffered.flush().map_err(io_context(&path))?;
        let file = buffered.into_inner().map_err(|error| EvidenceError::Io {
            path: path.clone(),
            source: error.into_error(),
        })?;
        file.sync_all().map_err(io_context(&path))
    }
}

/// The event-store extract of a period.
struct EventExtract {
    /// One canonical preimage per line.
    lines: String,
    /// One hash per line.
    hashes: String,
    anchors: Value,
    count: usize,
}

/// The contiguous run of events from the first inside the period to the
/// last inside it (events in between are kept, so the chain is unbroken).
fn event_extract(store: &crate::store::Store, filter: &BundleFilter) -> Result<EventExtract> {
    let store_error = |error: crate::store::StoreError| EvidenceError::InvalidInput {
        reason: format!("cannot read the event store: {error}"),
    };
    let events = store
        .events(&crate::store::EventFilter::default())
        .map_err(store_error)?;
    let inside = |event: &crate::store::Event| {
        filter.since.is_none_or(|since| event.timestamp >= since)
            && filter.until.is_none_or(|until| event.timestamp <= until)
    };
    let first = events.iter().position(inside);
    let last = events.iter().rposition(inside);
    let slice = match (first, last) {
        (Some(first), Some(last)) => &events[first..=last],
        _ => &[],
    };
    let mut lines = String::new();
    let mut hashes = String::new();
    for event in slice {
        let mut value =
            serde_json::to_value(event).map_err(|error| EvidenceError::InvalidInput {
                reason: format!("event #{} cannot be serialised: {error}", event.seq),
            })?;
        if let Value::Object(members) = &mut value {
            members.remove("hash");
        }
        let preimage = crate::store::canonical_json(&value);
        let computed = sha256_hex(preimage.as_bytes());
        if computed != event.hash {
            return Err(EvidenceError::InvalidInput {
                reason: format!(
                    "event #{} does not hash to its stored hash: the event chain is broken (run `ringmaster events --state ...`)",
                    event.seq
                ),
            });
        }
        lines.push_str(&preimage);
        lines.push('\n');
        hashes.push_str(&computed);
        hashes.push('\n');
    }
    let head = events.last();
    let anchors = json!({
        "first_seq": slice.first().map(|event| event.seq),
        "last_seq": slice.last().map(|event| event.seq),
        "previous_hash": slice.first().map(|event| event.prev_hash.clone()),
        "last_hash": slice.last().map(|event| event.hash.clone()),
        "store_head": head.map(|event| json!({"seq": event.seq, "hash": event.hash})),
        "period": {"since": filter.since, "until": filter.until},
    });
    Ok(EventExtract {
        lines,
        hashes,
        anchors,
        count: slice.len(),
    })
}

/// `VERIFY.md`: commands that check the bundle with minisign, sha256sum,
/// jq and a POSIX shell with coreutils — no ringmaster.
fn verify_instructions(key_id: &str) -> String {
    include_str!("VERIFY.md").replace("{KEY_ID}", key_id)
}
