//! The WORM copy of evidence against a real local S3 server with Object
//! Lock (moto in server mode): buckets created with Object Lock, every
//! record's pack and signature locked, locked versions that cannot be
//! deleted or replaced, the different-body alarm, and an outage that blocks
//! the record until the store is back.
//!
//! What moto does not enforce (checked by hand with moto 5.2.1): shortening
//! a compliance-mode retention with PutObjectRetention is accepted (AWS
//! refuses it), and request signatures are not checked. The tests below
//! assert only what moto enforces: a locked version cannot be deleted, a
//! conditional put never replaces an object, retention is stored and read
//! back per object.

#[path = "evidence/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "worm/moto.rs"]
mod moto;

use chrono::{DateTime, Duration, Utc};
use ringmaster::evidence::worm::{WormCopy, WormError, pack_object_key, signature_object_key};
use ringmaster::evidence::{EvidenceBranch, EvidenceError};
use ringmaster::worm::{ImmutableStore, LockMode, StoreError};
use tempfile::TempDir;

use harness::{BRANCH, Governed, decision_input};
use moto::{Moto, locked_bucket};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-03T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn worm_branch(
    governed: &Governed,
    config: &ringmaster::worm::ObjectStoreConfig,
) -> EvidenceBranch {
    EvidenceBranch::open(governed.path(), BRANCH)
        .unwrap()
        .with_worm_copy(WormCopy::open(config).unwrap())
}

#[test]
fn every_record_is_copied_with_its_lock_before_append_returns() {
    let moto = Moto::start();
    let directory = TempDir::new().unwrap();
    let (config, store) = locked_bucket(
        &moto,
        "evidence-locked",
        LockMode::Compliance,
        directory.path(),
    );
    let governed = Governed::new();
    let branch = worm_branch(&governed, &config);
    branch
        .worm_copy()
        .unwrap()
        .check_bucket()
        .expect("bucket has Object Lock and versioning");

    let mut records = Vec::new();
    for number in 1..=3 {
        let input = decision_input(number);
        let created_at = input.created_at;
        let record = branch
            .append(input, &governed.signer, &Default::default())
            .expect("committed and copied");
        records.push((record, created_at));
    }
    let keys = store.list("packs/").unwrap();
    assert_eq!(keys.len(), 6, "{keys:?}");
    for (record, created_at) in &records {
        let pack_key = pack_object_key("", record.sequence, &record.pack_sha256);
        let signature_key = signature_object_key("", record.sequence, &record.pack_sha256);
        assert!(keys.contains(&pack_key) && keys.contains(&signature_key));
        assert_eq!(
            store.get(&pack_key).unwrap().unwrap(),
            governed.evidence_file(&record.pack_path),
            "the bucket holds the committed bytes"
        );
        assert_eq!(
            store.get(&signature_key).unwrap().unwrap(),
            governed.evidence_file(&record.signature_path)
        );
        // The lock: from GetObjectRetention and from HEAD's headers.
        let required = config.required_retention(*created_at);
        for key in [&pack_key, &signature_key] {
            let retention = store.retention(key).unwrap().expect("object has a lock");
            assert_eq!(retention.mode, LockMode::Compliance);
            assert!(retention.covers(&required), "{retention} covers {required}");
            assert!(
                retention.retain_until < required.retain_until + Duration::days(2),
                "the lock runs from the record's creation (or the copy): {retention}"
            );
            let head = store.head(key).unwrap().unwrap();
            assert_eq!(
                head.retention,
                Some(retention),
                "HEAD reports the same lock"
            );
        }
    }
    let counts = branch.worm_copy().unwrap().counts();
    assert_eq!(counts.objects_written, 6);
    assert_eq!(counts.failures, 0);
}

#[test]
fn a_locked_version_cannot_be_deleted_and_a_put_never_replaces_it() {
    let moto = Moto::start();
    let directory = TempDir::new().unwrap();
    for (bucket, mode) in [
        ("evidence-compliance", LockMode::Compliance),
        ("evidence-governance", LockMode::Governance),
    ] {
        let (config, store) = locked_bucket(&moto, bucket, mode, directory.path());
        let governed = Governed::new();
        let branch = worm_branch(&governed, &config);
        let record = branch
            .append(decision_input(1), &governed.signer, &Default::default())
            .unwrap();
        let key = pack_object_key("", record.sequence, &record.pack_sha256);
        let original = store.get(&key).unwrap().unwrap();
        let version = store
            .head(&key)
            .unwrap()
            .unwrap()
            .version_id
            .expect("versioned bucket");

        // Deleting the locked version is refused (governance too: no bypass header).
        let error = store
            .delete(&key, Some(&version))
            .expect_err("locked version deleted");
        assert!(
            matches!(&error, StoreError::Refused { status: 403, code, .. } if code == "AccessDenied"),
            "{mode}: {error}"
        );
        // A plain delete only hides it behind a delete marker; the version stays.
        store.delete(&key, None).unwrap();
        assert_eq!(store.get(&key).unwrap(), None, "delete marker on top");
        assert_eq!(
            store.get_version(&key, &version).unwrap(),
            Some(original.clone())
        );
        // An unconditional put adds a version; the locked one is unchanged.
        let other = store
            .put_unconditionally(&key, b"{\"forged\":true}\n")
            .unwrap()
            .unwrap();
        assert_ne!(other, version);
        assert_eq!(
            store.get_version(&key, &version).unwrap(),
            Some(original.clone())
        );
        let error = store
            .delete(&key, Some(&version))
            .expect_err("still locked");
        assert!(
            matches!(error, StoreError::Refused { status: 403, .. }),
            "{error}"
        );
        // The conditional put ringmaster uses never writes over an existing key.
        let retention = config.required_retention(now());
        let outcome = store
            .put_if_absent(&key, b"{\"replacement\":true}\n", &retention)
            .unwrap();
        assert_eq!(outcome, ringmaster::worm::PutOutcome::AlreadyPresent);
        let versions: Vec<_> = store
            .list_versions(&key)
            .unwrap()
            .into_iter()
            .filter(|entry| entry.key == key && !entry.delete_marker)
            .collect();
        assert_eq!(
            versions.len(),
            2,
            "only the forged put added a version: {versions:?}"
        );
    }
}

#[test]
fn the_same_bytes_again_are_fine_and_a_different_body_is_an_alarm() {
    let moto = Moto::start();
    let directory = TempDir::new().unwrap();
    let (config, store) = locked_bucket(
        &moto,
        "evidence-alarm",
        LockMode::Compliance,
        directory.path(),
    );
    let governed = Governed::new();
    // Records committed without a WORM copy (e.g. before it was configured).
    let plain = governed.append(2);
    // Record 2's signature is already there with the right bytes and no
    // lock (a copy interrupted between its two objects).
    let signature_key = signature_object_key("", 2, &plain[1].pack_sha256);
    store
        .put_unconditionally(
            &signature_key,
            &governed.evidence_file(&plain[1].signature_path),
        )
        .unwrap();

    let worm = WormCopy::open(&config).unwrap();
    let branch = EvidenceBranch::open(governed.path(), BRANCH).unwrap();
    let report = worm
        .copy_through(&branch, now())
        .expect("same bytes are fine");
    assert_eq!(report.records, vec![1, 2]);
    assert_eq!(report.already_present, 1);
    let lock = store
        .retention(&signature_key)
        .unwrap()
        .expect("its missing lock was added");
    assert!(lock.covers(&config.required_retention(now())));

    // Somebody puts their own body under record 3's signature key first.
    let third = governed.append(1).remove(0);
    let forged_key = signature_object_key("", 3, &third.pack_sha256);
    store
        .put_unconditionally(&forged_key, b"forged signature\n")
        .unwrap();
    let error = worm.copy_through(&branch, now()).expect_err("alarm");
    match &error {
        WormError::Conflict {
            key,
            found_sha256,
            expected_sha256,
            ..
        } => {
            assert_eq!(key, &forged_key);
            assert_ne!(found_sha256, expected_sha256);
        }
        other => panic!("expected the different-body alarm, got {other}"),
    }
    assert!(error.to_string().starts_with("ALARM:"), "{error}");
    assert_eq!(
        store.get(&forged_key).unwrap().unwrap(),
        b"forged signature\n",
        "never overwritten"
    );
    assert_eq!(
        store
            .get(&pack_object_key("", 3, &third.pack_sha256))
            .unwrap(),
        None,
        "the pack waits"
    );
    assert_eq!(worm.counts().conflicts, 1);

    // A restarted copy (no memory of what it wrote) checks where it resumes.
    let forged_pack = pack_object_key("", 2, &plain[1].pack_sha256);
    let restarted = WormCopy::open(&config).unwrap();
    // Record 2's pack is ours: the restart resumes after it, and meets the alarm again.
    assert!(
        restarted
            .copy_through(&branch, now())
            .unwrap_err()
            .is_conflict()
    );
    assert!(store.get(&forged_pack).unwrap().is_some());

    // An append on top of the alarm does not count as written either.
    let branch = branch.with_worm_copy(worm);
    let error = branch
        .append(decision_input(4), &governed.signer, &Default::default())
        .expect_err("blocked");
    assert!(
        matches!(&error, EvidenceError::NotCopied { sequence: 4, source } if source.is_conflict()),
        "{error}"
    );
}

#[test]
fn a_restarted_copy_refuses_to_resume_on_a_foreign_object() {
    let moto = Moto::start();
    let directory = TempDir::new().unwrap();
    let (config, store) = locked_bucket(
        &moto,
        "evidence-resume",
        LockMode::Compliance,
        directory.path(),
    );
    let governed = Governed::new();
    let plain = governed.append(2);
    // The tip's pack key is taken by somebody else's body.
    let key = pack_object_key("", 2, &plain[1].pack_sha256);
    store.put_unconditionally(&key, b"{}\n").unwrap();
    let branch = EvidenceBranch::open(governed.path(), BRANCH).unwrap();
    let error = WormCopy::open(&config)
        .unwrap()
        .copy_through(&branch, now())
        .expect_err("alarm");
    assert!(error.is_conflict(), "{error}");
    assert_eq!(
        store.list("packs/").unwrap(),
        vec![key],
        "nothing else written"
    );
}

#[test]
fn an_outage_blocks_the_record_and_the_copy_resumes_when_the_store_is_back() {
    let mut moto = Moto::start();
    let port = moto.port;
    let directory = TempDir::new().unwrap();
    let (config, _store) = locked_bucket(
        &moto,
        "evidence-outage",
        LockMode::Compliance,
        directory.path(),
    );
    let governed = Governed::new();
    let branch = worm_branch(&governed, &config);
    branch
        .append(decision_input(1), &governed.signer, &Default::default())
        .unwrap();

    moto.kill();
    let error = branch
        .append(decision_input(2), &governed.signer, &Default::default())
        .expect_err("store down");
    match &error {
        EvidenceError::NotCopied {
            sequence: 2,
            source,
        } => {
            assert!(
                matches!(source.as_ref(), WormError::Store(store_error) if store_error.is_unavailable()),
                "{source}"
            );
        }
        other => panic!("expected NotCopied, got {other}"),
    }
    assert!(!error.to_string().contains("test-secret-never-logged"));
    assert_eq!(branch.worm_copy().unwrap().counts().failures, 1);

    // The store comes back (moto keeps its state in memory, so its bucket
    // is made again, as a restarted store would still have it).
    let moto = Moto::start_on(port);
    let (_, store) = locked_bucket(
        &moto,
        "evidence-outage",
        LockMode::Compliance,
        directory.path(),
    );
    let report = branch
        .copy_to_worm(now())
        .expect("resumes without operator action")
        .unwrap();
    // Record 1 was copied before the outage (moto's restart lost it; a real
    // store keeps it): the copy resumes with record 2.
    assert_eq!(report.records, vec![2]);
    let third = branch
        .append(decision_input(3), &governed.signer, &Default::default())
        .expect("written again");
    assert_eq!(third.sequence, 3);
    assert_eq!(store.list("packs/").unwrap().len(), 4);
    // A restarted daemon (no memory of what it copied) resumes after the
    // newest record the store has; a hole below it is for `verify
    // --object-store` to report.
    let restarted = worm_branch(&governed, &config);
    assert_eq!(
        restarted.copy_to_worm(now()).unwrap().unwrap().records,
        Vec::<u64>::new()
    );
}

#[test]
fn a_bucket_without_object_lock_is_refused() {
    let moto = Moto::start();
    let directory = TempDir::new().unwrap();
    let config = moto.config("evidence-unlocked", LockMode::Compliance, directory.path());
    let store = ringmaster::worm::s3::S3Store::new(&config).unwrap();
    store.create_bucket(false).unwrap();
    let error = WormCopy::open(&config)
        .unwrap()
        .check_bucket()
        .expect_err("not write-once");
    assert!(
        error.to_string().contains("Object Lock is not enabled"),
        "{error}"
    );
}

#[test]
fn verify_object_store_checks_the_bucket_against_the_branch_both_ways() {
    use ringmaster::evidence::verify_object_store;
    let moto = Moto::start();
    let directory = TempDir::new().unwrap();
    let (config, store) = locked_bucket(
        &moto,
        "evidence-verify",
        LockMode::Compliance,
        directory.path(),
    );
    let governed = Governed::new();
    // Copies locked for one day only: shorter than the 2557 days required.
    let mut short = config.clone();
    short.retention_days = 1;
    let branch = EvidenceBranch::open(governed.path(), BRANCH)
        .unwrap()
        .with_worm_copy(WormCopy::open(&short).unwrap());
    let records: Vec<_> = (1..=3)
        .map(|number| {
            branch
                .append(
                    decision_input(number),
                    &governed.signer,
                    &Default::default(),
                )
                .unwrap()
        })
        .collect();
    let strict = WormCopy::open(&config).unwrap();
    let report = verify_object_store(&branch, &strict).unwrap();
    assert_eq!(report.findings.len(), 6, "{report}");
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.problem.contains("is required")),
        "{report}"
    );
    assert!(
        verify_object_store(&branch, branch.worm_copy().unwrap())
            .unwrap()
            .ok()
    );

    // A delete marker hides record 2's pack; a foreign object appears.
    let hidden = pack_object_key("", 2, &records[1].pack_sha256);
    store.delete(&hidden, None).unwrap();
    let foreign = pack_object_key("", 9, &"e".repeat(64));
    store.put_unconditionally(&foreign, b"{}\n").unwrap();
    // And record 3's signature gets a new current version with other bytes.
    let replaced = signature_object_key("", 3, &records[2].pack_sha256);
    store
        .put_unconditionally(&replaced, b"not the signature\n")
        .unwrap();
    let report = verify_object_store(&branch, branch.worm_copy().unwrap()).unwrap();
    let text = report.to_string();
    assert!(!report.ok());
    assert_eq!(report.findings.len(), 3, "{text}");
    assert!(
        text.contains(&format!("record #2 {hidden}: missing from the bucket")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "record #9 {foreign}: is in the bucket but not on the branch"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("record #3 {replaced}: holds different bytes")),
        "{text}"
    );
}
