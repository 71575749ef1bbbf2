//! Evidence benchmark (a plain `harness = false` binary that prints figures):
//!
//! 1. durable appends: packs signed and committed per second through
//!    `EvidenceBranch::append` (one commit and fsync per record), then
//!    through `EvidenceBranch::append_batch` (one commit and one fsync'd
//!    pack file for a whole batch, as for a policy edit touching every
//!    intent), and `verify_branch` on each repository;
//! 2. verification at scale: N records prepared and signed with
//!    `prepare_record` (the code `append` uses), loaded with
//!    `git fast-import` (as a long-lived, packed repository looks), then
//!    `verify_branch` timed.
//!
//! 3. the audit bundle: `export_bundle` of all N records (time, size) and
//!    `verify_bundle` of it;
//! 4. the WORM copy: durable appends with and without the copy to a local
//!    moto S3 server with Object Lock (when `moto_server` is installed),
//!    the difference being the time the copy adds per record.
//!
//! `cargo bench --bench evidence`; environment:
//! `RINGMASTER_BENCH_PACKS` (N, default 100000),
//! `RINGMASTER_BENCH_APPENDS` (default 2000),
//! `RINGMASTER_BENCH_BATCH` (records per batch commit, default 10000),
//! `RINGMASTER_BENCH_BATCHES` (batches appended, default 3),
//! `RINGMASTER_BENCH_WORM_APPENDS` (default 500; 0 skips the WORM figures),
//! `RINGMASTER_BENCH_RECORDS_PER_DAY` (spacing of `created_at`, default 100),
//! `RINGMASTER_BENCH_FIXTURE` (a directory to keep the N-record repository
//! and its key in, reused by later runs; default a temporary directory).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use ringmaster::evidence::{
    AppendContext, ChainPosition, EvidenceBranch, EvidencePackInput, GitIdentity, RecordType,
    SigningKey, VerifyingKey, generate_keypair, prepare_record, verify_branch,
};
use serde_json::json;

fn environment_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn git(directory: &Path, arguments: &[&str]) {
    let status = Command::new("git")
        .current_dir(directory)
        .args(arguments)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {arguments:?} failed");
}

fn decision_input(number: u64, records_per_day: u64) -> EvidencePackInput {
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let created_at = start + Duration::seconds((number * 86_400 / records_per_day.max(1)) as i64);
    let identity = GitIdentity {
        name: "Alice Publisher".to_string(),
        email: "alice@example.com".to_string(),
        time: (created_at - Duration::hours(1)).fixed_offset(),
    };
    EvidencePackInput {
        record_type: RecordType::Decision,
        intent_id: Some(format!("intent-{:05}", number % 50_000)),
        correlation_id: format!("corr-{number:08}"),
        source_commit: format!("{:040x}", number * 7919),
        source_parent: Some(format!("{:040x}", number * 7919 + 1)),
        author: identity.clone(),
        committer: identity,
        created_at,
        body: json!({
            "decision": "REQUIRE_APPROVAL",
            "reasons": [
                {"rule": "cab.threshold", "message": "risk 64 is at or above the CAB threshold 60"},
                {"rule": "scope.cross_bu", "message": "target covers two business units"}
            ],
            "intent": {
                "app": "globalprotect-vpn", "version": "6.2.1",
                "artifact_sha256": "9f2b5c1e7d3a4b6c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f",
                "rings": ["ring-0-it", "ring-1-pilot", "ring-2-broad"],
                "target_scope": {"business_units": ["bu-finance", "bu-sales"], "sites": ["lon", "nyc"]}
            },
            "approvals": [
                {"reviewer": "bob", "role": "cab-approver", "scope": "bu-finance", "head_commit": format!("{:040x}", number * 7919), "counted": true, "why": "review on the merged head commit, not the author, unexpired"},
                {"reviewer": "carol", "role": "cab-approver", "scope": "bu-sales", "head_commit": format!("{:040x}", number * 7919), "counted": true, "why": "review on the merged head commit, not the author, unexpired"}
            ],
            "risk": {"score": 64, "model_version": "2026.1", "factors": [
                {"name": "privileged", "weight": 20, "value": 1},
                {"name": "device_count", "weight": 15, "value": 0.8},
                {"name": "cve_exceptions", "weight": 10, "value": 1}
            ]},
            "scope_diff": {"added": ["bu-sales"], "removed": []},
            "blast_radius": {"devices": 4200, "business_units": 2, "sites": 2},
            "exceptions": [{"id": "exc-2026-014", "cve": "CVE-2026-1234", "expires": "2026-12-31"}],
            "forge": null
        }),
    }
}

fn measure_appends(count: u64, records_per_day: u64, signer: &SigningKey) {
    let directory = tempfile::TempDir::new().unwrap();
    git(directory.path(), &["init", "-q", "-b", "main"]);
    let branch = EvidenceBranch::open(directory.path(), "evidence").unwrap();
    let started = Instant::now();
    for number in 1..=count {
        branch
            .append(
                decision_input(number, records_per_day),
                signer,
                &AppendContext::default(),
            )
            .unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "append (durable, loose objects): {count} packs in {:.2} s = {:.0} packs/s ({:.2} ms each)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / count as f64
    );
    let started = Instant::now();
    let report =
        verify_branch(directory.path(), "evidence", &signer.verifying_key(), None).unwrap();
    assert!(report.ok, "{report}");
    println!(
        "verify (loose objects): {} records in {:.2} s",
        report.records_checked,
        started.elapsed().as_secs_f64()
    );
}

fn measure_batch_appends(batch: u64, batches: u64, records_per_day: u64, signer: &SigningKey) {
    let directory = tempfile::TempDir::new().unwrap();
    git(directory.path(), &["init", "-q", "-b", "main"]);
    let branch = EvidenceBranch::open(directory.path(), "evidence").unwrap();
    // One record first, so every batch chains onto an existing tip.
    branch
        .append(
            decision_input(0, records_per_day),
            signer,
            &AppendContext::default(),
        )
        .unwrap();
    let mut rates = Vec::new();
    for round in 0..batches {
        let inputs: Vec<_> = (1..=batch)
            .map(|number| decision_input(round * batch + number, records_per_day))
            .collect();
        let started = Instant::now();
        let records = branch
            .append_batch(inputs, signer, &AppendContext::default())
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(records.len() as u64, batch);
        rates.push(batch as f64 / elapsed.as_secs_f64());
        println!(
            "append_batch (durable, one commit, one pack file): batch {} of {batch} records in {:.2} s = {:.0} records/s",
            round + 1,
            elapsed.as_secs_f64(),
            batch as f64 / elapsed.as_secs_f64()
        );
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "append_batch median: {:.0} records/s over {batches} batches of {batch}",
        rates[rates.len() / 2]
    );
    let started = Instant::now();
    let report =
        verify_branch(directory.path(), "evidence", &signer.verifying_key(), None).unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.records_checked, 1 + batch * batches);
    println!(
        "verify (batch commits): {} records in {:.2} s",
        report.records_checked,
        started.elapsed().as_secs_f64()
    );
}

fn build_fixture(directory: &Path, count: u64, records_per_day: u64, signer: &SigningKey) {
    git(directory, &["init", "-q", "--bare"]);
    let mut child = Command::new("git")
        .current_dir(directory)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    let mut stream = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    let mut position = ChainPosition::genesis();
    let started = Instant::now();
    for number in 1..=count {
        let record =
            prepare_record(decision_input(number, records_per_day), &position, signer).unwrap();
        let time = record.pack.created_at.timestamp();
        write!(
            stream,
            "commit refs/heads/evidence\ncommitter ringmaster <ringmaster@localhost> {time} +0000\ndata {}\n{}\n",
            record.commit_message.len(),
            record.commit_message
        )
        .unwrap();
        write!(
            stream,
            "M 100644 inline {}\ndata {}\n",
            record.pack_path,
            record.pack_bytes.len()
        )
        .unwrap();
        stream.write_all(&record.pack_bytes).unwrap();
        write!(
            stream,
            "\nM 100644 inline {}\ndata {}\n{}\n\n",
            record.signature_path,
            record.signature.len(),
            record.signature
        )
        .unwrap();
        position = ChainPosition {
            sequence: number + 1,
            previous_pack_sha256: record.pack_sha256,
        };
    }
    stream.flush().unwrap();
    drop(stream);
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    let elapsed = started.elapsed();
    println!(
        "prepare + sign + fast-import: {count} packs in {:.2} s = {:.0} packs/s",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let packs = environment_number("RINGMASTER_BENCH_PACKS", 100_000);
    let appends = environment_number("RINGMASTER_BENCH_APPENDS", 2_000);
    let records_per_day = environment_number("RINGMASTER_BENCH_RECORDS_PER_DAY", 100);
    let signer = SigningKey::generate_ephemeral().unwrap();
    println!(
        "evidence bench: {packs} packs to verify, {appends} durable appends, {records_per_day} records/day, {} cores",
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    if appends > 0 {
        measure_appends(appends, records_per_day, &signer);
    }
    let batch = environment_number("RINGMASTER_BENCH_BATCH", 10_000);
    let batches = environment_number("RINGMASTER_BENCH_BATCHES", 3);
    if batch > 0 && batches > 0 {
        measure_batch_appends(batch, batches, records_per_day, &signer);
    }

    let temporary = tempfile::TempDir::new().unwrap();
    let fixture = std::env::var_os("RINGMASTER_BENCH_FIXTURE")
        .map_or_else(|| temporary.path().to_path_buf(), std::path::PathBuf::from);
    let keys = fixture.join("keys");
    let repository = fixture.join("repository.git");
    if !keys.join("ringmaster.key").exists() {
        generate_keypair(&keys, None, false).unwrap();
        std::fs::create_dir_all(&repository).unwrap();
        let fixture_signer = SigningKey::load(&keys.join("ringmaster.key"), None).unwrap();
        build_fixture(&repository, packs, records_per_day, &fixture_signer);
    } else {
        println!("reusing the fixture in {}", fixture.display());
    }
    let verifying_key = VerifyingKey::load(&keys.join("ringmaster.pub")).unwrap();
    let started = Instant::now();
    let report = verify_branch(&repository, "evidence", &verifying_key, None).unwrap();
    let elapsed = started.elapsed();
    assert!(report.ok, "{report}");
    println!(
        "verify (packed): {} records in {:.2} s = {:.0} records/s",
        report.records_checked,
        elapsed.as_secs_f64(),
        report.records_checked as f64 / elapsed.as_secs_f64()
    );

    measure_export(
        &repository,
        &keys.join("ringmaster.pub"),
        report.records_checked,
    );

    let worm_appends = environment_number("RINGMASTER_BENCH_WORM_APPENDS", 500);
    if worm_appends > 0 {
        measure_worm_copy(worm_appends, records_per_day, &signer);
    }
}

fn measure_export(repository: &Path, public_key: &Path, records: u64) {
    use ringmaster::evidence::bundle::{BundleFilter, ExportOptions, export_bundle, verify_bundle};
    let branch = EvidenceBranch::open(repository, "evidence").unwrap();
    let directory = tempfile::TempDir::new().unwrap();
    let out = directory.path().join("bundle.tar.gz");
    let options = ExportOptions {
        filter: BundleFilter::default(),
        exported_by: "bench".into(),
        exported_at: Utc::now(),
        public_key,
        store: None,
    };
    let started = Instant::now();
    let summary = export_bundle(&branch, &options, &out, &mut |_| {}).unwrap();
    let elapsed = started.elapsed();
    println!(
        "export bundle: {} records in {:.2} s = {:.0} records/s; bundle {:.1} MiB ({:.0} bytes/record)",
        summary.records,
        elapsed.as_secs_f64(),
        summary.records as f64 / elapsed.as_secs_f64(),
        summary.bytes as f64 / (1024.0 * 1024.0),
        summary.bytes as f64 / records.max(1) as f64
    );
    let key = VerifyingKey::load(public_key).unwrap();
    let started = Instant::now();
    let report = verify_bundle(&out, &key).unwrap();
    assert!(report.ok(), "{report}");
    println!(
        "verify-bundle: {} records in {:.2} s",
        report.records,
        started.elapsed().as_secs_f64()
    );
}

/// A moto S3 server on 127.0.0.1 (killed on drop), if installed.
struct Moto(std::process::Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<Moto> {
    use std::io::BufRead;
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let stderr = child.stderr.take()?;
    let mut port = None;
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
    {
        if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
            port = rest.trim().parse().ok();
            break;
        }
    }
    Some(Moto(child, port?))
}

fn measure_worm_copy(count: u64, records_per_day: u64, signer: &SigningKey) {
    use ringmaster::evidence::worm::WormCopy;
    use ringmaster::worm::{LockMode, RawObjectStoreConfig, StoreCredentials, s3::S3Store};
    let Some(moto) = start_moto() else {
        println!("WORM copy: skipped (moto_server not installed; scripts/test.sh installs it)");
        return;
    };
    let config = RawObjectStoreConfig {
        url: Some(format!("http://127.0.0.1:{}", moto.1)),
        bucket: Some("bench-evidence".into()),
        mode: Some(LockMode::Compliance),
        retention_days: Some(2557),
        ..RawObjectStoreConfig::default()
    }
    .validate_with(Some(StoreCredentials::new(
        "AKIDBENCH",
        "bench-secret",
        None,
    )))
    .unwrap();
    S3Store::new(&config).unwrap().create_bucket(true).unwrap();
    let mut per_record = Vec::new();
    for with_copy in [false, true] {
        let directory = tempfile::TempDir::new().unwrap();
        git(directory.path(), &["init", "-q", "-b", "main"]);
        let mut branch = EvidenceBranch::open(directory.path(), "evidence").unwrap();
        if with_copy {
            branch = branch.with_worm_copy(WormCopy::open(&config).unwrap());
        }
        let started = Instant::now();
        for number in 1..=count {
            branch
                .append(
                    decision_input(number, records_per_day),
                    signer,
                    &Default::default(),
                )
                .unwrap();
        }
        per_record.push(started.elapsed().as_secs_f64() * 1000.0 / count as f64);
    }
    println!(
        "WORM copy (moto on 127.0.0.1, 2 objects per record): append {:.2} ms/record without, {:.2} ms/record with: +{:.2} ms per record",
        per_record[0],
        per_record[1],
        per_record[1] - per_record[0]
    );
}
