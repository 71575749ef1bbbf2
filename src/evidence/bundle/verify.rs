//! `ringmaster evidence verify-bundle`: the checks of `VERIFY.md`, in Rust,
//! plus the full per-record checks of `verify` (canonical form, pack id,
//! path, commit message) on every exported pack.
//!
//! The archive is hostile input: only regular files under
//! `evidence-bundle/` with plain relative paths are read; anything else
//! (links, devices, `..`, absolute paths, duplicates) is a finding.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{BUNDLE_FORMAT, BUNDLE_ROOT};
use crate::evidence::canonical::sha256_hex;
use crate::evidence::pack::GENESIS_PREVIOUS_PACK_SHA256;
use crate::evidence::record::{RecordView, check_record};
use crate::evidence::{Result, VerifyingKey, io_context};

/// Largest bundle member read into memory (a pack is a few KiB).
const MAX_MEMBER_BYTES: u64 = 256 * 1024 * 1024;

/// The outcome of [`verify_bundle`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BundleReport {
    pub records: usize,
    pub chain: usize,
    pub events: usize,
    /// Everything that does not hold; empty when the bundle verifies.
    pub findings: Vec<String>,
}

impl BundleReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for BundleReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok() {
            return write!(
                formatter,
                "bundle verified: {} record(s) signed and chained ({} in the chain), {} event(s) hash-chained, every file matches the manifest",
                self.records, self.chain, self.events
            );
        }
        write!(
            formatter,
            "bundle FAILED verification ({} finding(s)):",
            self.findings.len()
        )?;
        for finding in &self.findings {
            write!(formatter, "\n  {finding}")?;
        }
        Ok(())
    }
}

/// Checks the bundle at `path` with `key` (the auditor's own copy of the
/// public key). `Err` only when the file cannot be read at all.
pub fn verify_bundle(path: &Path, key: &VerifyingKey) -> Result<BundleReport> {
    let file = std::fs::File::open(path).map_err(io_context(path))?;
    let mut report = BundleReport::default();
    let files = match read_members(file, &mut report.findings) {
        Ok(files) => files,
        Err(error) => {
            report
                .findings
                .push(format!("not a readable tar.gz bundle: {error}"));
            return Ok(report);
        }
    };
    check_files(&files, &mut report);
    let Some(manifest) = files
        .get("manifest.json")
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
    else {
        report
            .findings
            .push("manifest.json is missing or not JSON".into());
        return Ok(report);
    };
    if manifest["format"] != BUNDLE_FORMAT {
        report.findings.push(format!(
            "manifest.json format is {}, expected {BUNDLE_FORMAT}",
            manifest["format"]
        ));
    }
    if let Some(bundled_key) = manifest
        .pointer("/public_key/key_id")
        .and_then(Value::as_str)
        && bundled_key != key.key_id()
    {
        report.findings.push(format!(
            "the bundle was signed with key {bundled_key}, not the given public key {}",
            key.key_id()
        ));
    }
    check_records(&files, &manifest, key, &mut report);
    check_chain(&manifest, &mut report);
    check_events(&files, &mut report);
    Ok(report)
}

/// Every regular file under `evidence-bundle/`, by path below it.
fn read_members(
    file: std::fs::File,
    findings: &mut Vec<String>,
) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(relative) = name.strip_prefix(&format!("{BUNDLE_ROOT}/")) else {
            findings.push(format!("{name}: outside {BUNDLE_ROOT}/"));
            continue;
        };
        let plain = !relative.is_empty()
            && relative
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !plain || entry.header().entry_type() != tar::EntryType::Regular {
            findings.push(format!(
                "{name}: not a plain file path (links, `..` and directories are refused)"
            ));
            continue;
        }
        if entry.size() > MAX_MEMBER_BYTES {
            findings.push(format!("{name}: larger than {MAX_MEMBER_BYTES} bytes"));
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        if files.insert(relative.to_owned(), bytes).is_some() {
            findings.push(format!("{name}: appears twice in the archive"));
        }
    }
    Ok(files)
}

/// Check 1: MANIFEST.sha256 covers every file, with the right hashes.
fn check_files(files: &BTreeMap<String, Vec<u8>>, report: &mut BundleReport) {
    let Some(sums) = files.get("MANIFEST.sha256") else {
        report.findings.push("MANIFEST.sha256 is missing".into());
        return;
    };
    let text = String::from_utf8_lossy(sums);
    let mut listed = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        match line.split_once("  ") {
            Some((hash, path)) if hash.len() == 64 => {
                listed.insert(path.to_owned(), hash.to_owned());
            }
            _ => report.findings.push(format!(
                "MANIFEST.sha256:{}: not `<sha256>  <path>`",
                number + 1
            )),
        }
    }
    for (path, bytes) in files {
        if path == "MANIFEST.sha256" {
            continue;
        }
        match listed.get(path) {
            None => report
                .findings
                .push(format!("{path}: not listed in MANIFEST.sha256")),
            Some(hash) if *hash != sha256_hex(bytes) => {
                report.findings.push(format!(
                    "{path}: sha256 {} differs from MANIFEST.sha256 ({hash})",
                    sha256_hex(bytes)
                ));
            }
            Some(_) => {}
        }
    }
    for path in listed.keys() {
        if !files.contains_key(path) {
            report
                .findings
                .push(format!("{path}: listed in MANIFEST.sha256 but missing"));
        }
    }
}

/// Check 2 (and 4): every record's pack and signature, as `verify` checks
/// a record, plus its commit's trailers.
fn check_records(
    files: &BTreeMap<String, Vec<u8>>,
    manifest: &Value,
    key: &VerifyingKey,
    report: &mut BundleReport,
) {
    let records = manifest["records"].as_array().cloned().unwrap_or_default();
    report.records = records.len();
    let commits: BTreeMap<u64, Value> = files
        .get("commits.jsonl")
        .map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter_map(|commit| Some((commit["sequence"].as_u64()?, commit)))
                .collect()
        })
        .unwrap_or_default();
    for record in &records {
        let sequence = record["sequence"].as_u64().unwrap_or(0);
        let text = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
        let (path, sha256, previous) = (text("path"), text("sha256"), text("previous_pack_sha256"));
        let (Some(pack), Some(signature)) =
            (files.get(&path), files.get(&format!("{path}.minisig")))
        else {
            report.findings.push(format!(
                "record #{sequence}: {path} or its .minisig is missing"
            ));
            continue;
        };
        if sha256_hex(pack) != sha256 {
            report.findings.push(format!(
                "record #{sequence} {path}: sha256 {} differs from the manifest's {sha256}",
                sha256_hex(pack)
            ));
            continue;
        }
        let view = RecordView {
            position: sequence,
            pack_path: &path,
            pack_bytes: pack,
            signature_bytes: signature,
            pack_sha256: &sha256,
            previous_pack_sha256: Some(&previous),
        };
        match check_record(&view, key) {
            Err(reason) => report
                .findings
                .push(format!("record #{sequence} {path}: {reason}")),
            Ok(content) => match commits.get(&sequence) {
                None => report
                    .findings
                    .push(format!("record #{sequence}: no commit in commits.jsonl")),
                Some(commit)
                    if commit["message"].as_str()
                        != Some(content.expected_commit_message.as_str()) =>
                {
                    report.findings.push(format!("record #{sequence}: commit message in commits.jsonl does not match the pack"));
                }
                Some(commit) if commit["commit"] != record["commit"] => {
                    report.findings.push(format!("record #{sequence}: commit id differs between commits.jsonl and the manifest"));
                }
                Some(_) => {}
            },
        }
    }
}

/// Check 3: the chain stretch links, and holds every record.
fn check_chain(manifest: &Value, report: &mut BundleReport) {
    let chain = manifest["chain"].as_array().cloned().unwrap_or_default();
    report.chain = chain.len();
    let field = |entry: &Value, name: &str| entry[name].as_str().unwrap_or_default().to_owned();
    if let Some(first) = chain.first()
        && first["sequence"].as_u64() == Some(1)
        && field(first, "previous_pack_sha256") != GENESIS_PREVIOUS_PACK_SHA256
    {
        report
            .findings
            .push("chain: record #1 does not start from the genesis hash".into());
    }
    for pair in chain.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        let sequence = next["sequence"].as_u64().unwrap_or(0);
        if previous["sequence"].as_u64().map(|s| s + 1) != Some(sequence) {
            report.findings.push(format!(
                "chain: #{sequence} does not follow #{}",
                previous["sequence"]
            ));
        }
        if field(next, "previous_pack_sha256") != field(previous, "sha256") {
            report.findings.push(format!(
                "chain: #{sequence} does not link to the record before it"
            ));
        }
    }
    let by_sequence: BTreeMap<u64, &Value> = chain
        .iter()
        .filter_map(|entry| Some((entry["sequence"].as_u64()?, entry)))
        .collect();
    let records = manifest["records"].as_array().cloned().unwrap_or_default();
    for record in &records {
        let sequence = record["sequence"].as_u64().unwrap_or(0);
        let matches = by_sequence.get(&sequence).is_some_and(|entry| {
            entry["included"] == true
                && entry["sha256"] == record["sha256"]
                && entry["previous_pack_sha256"] == record["previous_pack_sha256"]
        });
        if !matches {
            report.findings.push(format!(
                "chain: record #{sequence} is not in the chain as exported"
            ));
        }
    }
    let included = chain
        .iter()
        .filter(|entry| entry["included"] == true)
        .count();
    if included != records.len() {
        report.findings.push(format!(
            "chain: {included} entries marked included, {} records exported",
            records.len()
        ));
    }
}

/// Check 5: the event extract hashes and chains.
fn check_events(files: &BTreeMap<String, Vec<u8>>, report: &mut BundleReport) {
    let Some(lines) = files.get("events/events.jsonl") else {
        return;
    };
    let lines = String::from_utf8_lossy(lines);
    let hashes: Vec<String> = files
        .get("events/hashes.txt")
        .map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let anchors: Value = files
        .get("events/anchors.json")
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null);
    let mut previous = anchors["previous_hash"].as_str().map(str::to_owned);
    let mut expected_seq: Option<u64> = None;
    let mut count = 0;
    for (index, line) in lines.lines().enumerate() {
        count += 1;
        let computed = sha256_hex(line.as_bytes());
        let event: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let seq = event["seq"].as_u64();
        if hashes.get(index) != Some(&computed) {
            report.findings.push(format!(
                "events: line {} hashes to {computed}, events/hashes.txt says otherwise",
                index + 1
            ));
        }
        if event["prev_hash"].as_str().map(str::to_owned) != previous {
            report.findings.push(format!(
                "events: event {seq:?} does not link to the event before it"
            ));
        }
        if expected_seq.is_some_and(|expected| seq != Some(expected)) {
            report
                .findings
                .push(format!("events: event {seq:?} is out of sequence"));
        }
        expected_seq = seq.map(|seq| seq + 1);
        previous = Some(computed);
    }
    if count > 0 && anchors["last_hash"].as_str().map(str::to_owned) != previous {
        report
            .findings
            .push("events: the last event's hash is not the anchors' last_hash".into());
    }
    if hashes.len() != count {
        report.findings.push(format!(
            "events: {count} event(s) but {} hash(es)",
            hashes.len()
        ));
    }
    report.events = count;
}
