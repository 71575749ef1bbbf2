//! Keys and signatures: files in minisign's formats, modes, passwords,
//! and signatures the minisign CLI accepts (and refuses once tampered).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ringmaster::evidence::{
    AppendContext, EvidenceBranch, EvidenceError, SigningKey, VerifyingKey, generate_keypair,
    verify_branch,
};
use tempfile::TempDir;

use super::harness::{BRANCH, Governed, decision_input, git, minisign};

#[test]
fn signatures_verify_with_the_minisign_cli() {
    let governed = Governed::new();
    let records = governed.append(2);
    let scratch = TempDir::new().unwrap();
    let record = &records[1];
    let pack_file = scratch.path().join("pack.json");
    let signature_file = scratch.path().join("pack.json.minisig");
    fs::write(&pack_file, governed.evidence_file(&record.pack_path)).unwrap();
    fs::write(
        &signature_file,
        governed.evidence_file(&record.signature_path),
    )
    .unwrap();

    let output = minisign(
        &[
            "-Vm",
            pack_file.to_str().unwrap(),
            "-x",
            signature_file.to_str().unwrap(),
            "-p",
            governed.public_key_path().to_str().unwrap(),
        ],
        "",
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "minisign -V failed: {printed}");
    let expected_comment = format!(
        "Trusted comment: ringmaster seq=2 sha256={} prev={} source={:040x}",
        record.pack_sha256, records[0].pack_sha256, 2
    );
    assert!(printed.contains(&expected_comment), "{printed}");

    // The same check fails once the pack changes: the test can fail.
    let mut tampered = fs::read(&pack_file).unwrap();
    let position = tampered
        .windows(5)
        .position(|window| window == b"ALLOW")
        .unwrap();
    tampered[position..position + 5].copy_from_slice(b"DENY_");
    fs::write(&pack_file, tampered).unwrap();
    let output = minisign(
        &[
            "-Vm",
            pack_file.to_str().unwrap(),
            "-x",
            signature_file.to_str().unwrap(),
            "-p",
            governed.public_key_path().to_str().unwrap(),
        ],
        "",
    );
    assert!(
        !output.status.success(),
        "minisign accepted a tampered pack"
    );
}

#[test]
fn committed_pack_file_hashes_to_its_recorded_sha256() {
    let governed = Governed::new();
    let record = governed.append(1).remove(0);
    let bytes = governed.evidence_file(&record.pack_path);
    assert_eq!(ringmaster::evidence::sha256_hex(&bytes), record.pack_sha256);
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(ringmaster::evidence::canonical_json(&value), bytes);
    assert!(bytes.ends_with(b"}\n"));
}

#[test]
fn secret_key_file_is_mode_0600_and_public_key_is_readable() {
    let keys = TempDir::new().unwrap();
    let paths = generate_keypair(&keys.path().join("new-dir"), None, false).unwrap();
    let secret_mode = fs::metadata(&paths.secret_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(secret_mode, 0o600, "secret key mode {secret_mode:o}");
    let public_mode = fs::metadata(&paths.public_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(public_mode, 0o644);
    assert_eq!(paths.key_id.len(), 16);
    assert!(paths.to_string().contains("mode 0600"));
}

#[test]
fn generate_keypair_refuses_to_overwrite_unless_forced() {
    let keys = TempDir::new().unwrap();
    let first = generate_keypair(keys.path(), None, false).unwrap();
    let refused = generate_keypair(keys.path(), None, false).unwrap_err();
    assert!(
        matches!(refused, EvidenceError::KeyExists { .. }),
        "{refused}"
    );
    assert_eq!(
        VerifyingKey::load(&first.public_key).unwrap().key_id(),
        first.key_id
    );
    let replaced = generate_keypair(keys.path(), None, true).unwrap();
    assert_ne!(replaced.key_id, first.key_id);
    let mode = fs::metadata(&replaced.secret_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        SigningKey::load(&replaced.secret_key, None)
            .unwrap()
            .key_id(),
        replaced.key_id
    );
}

#[test]
fn password_protected_key_round_trip() {
    let keys = TempDir::new().unwrap();
    let paths = generate_keypair(keys.path(), Some("correct horse"), false).unwrap();
    assert!(paths.password_protected);
    let signer = SigningKey::load(&paths.secret_key, Some("correct horse")).unwrap();
    assert_eq!(signer.key_id(), paths.key_id);
    assert!(format!("{signer:?}").contains("secret: ***"));

    let wrong = SigningKey::load(&paths.secret_key, Some("wrong")).unwrap_err();
    assert!(matches!(wrong, EvidenceError::KeyLoad { .. }), "{wrong}");
    let missing = SigningKey::load(&paths.secret_key, None).unwrap_err();
    assert!(missing.to_string().contains("password"), "{missing}");

    // The key signs packs that verify, with this crate and the minisign CLI.
    let scratch = TempDir::new().unwrap();
    let file = scratch.path().join("data");
    fs::write(&file, b"evidence\n").unwrap();
    let signature = signer
        .sign(b"evidence\n", "ringmaster test", "test")
        .unwrap();
    let verifier = VerifyingKey::load(&paths.public_key).unwrap();
    assert_eq!(
        verifier.verify(b"evidence\n", &signature).unwrap(),
        "ringmaster test"
    );
    fs::write(scratch.path().join("data.minisig"), &signature).unwrap();
    let output = minisign(
        &[
            "-Vm",
            file.to_str().unwrap(),
            "-p",
            paths.public_key.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // And the minisign CLI reads the encrypted secret key file.
    let cli_signed = scratch.path().join("cli.minisig");
    let output = minisign(
        &[
            "-S",
            "-s",
            paths.secret_key.to_str().unwrap(),
            "-m",
            file.to_str().unwrap(),
            "-x",
            cli_signed.to_str().unwrap(),
            "-t",
            "signed by the cli",
        ],
        "correct horse\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cli_signature = fs::read_to_string(&cli_signed).unwrap();
    assert_eq!(
        verifier.verify(b"evidence\n", &cli_signature).unwrap(),
        "signed by the cli"
    );
}

#[test]
fn minisign_cli_signs_with_an_unencrypted_ringmaster_key() {
    let keys = TempDir::new().unwrap();
    let paths = generate_keypair(keys.path(), None, false).unwrap();
    assert!(!paths.password_protected);
    let file = keys.path().join("data");
    fs::write(&file, b"x").unwrap();
    let output = minisign(
        &[
            "-S",
            "-s",
            paths.secret_key.to_str().unwrap(),
            "-m",
            file.to_str().unwrap(),
            "-t",
            "cli",
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signature = fs::read_to_string(keys.path().join("data.minisig")).unwrap();
    let verifier = VerifyingKey::load(&paths.public_key).unwrap();
    assert_eq!(verifier.verify(b"x", &signature).unwrap(), "cli");
}

#[test]
fn unencrypted_keys_made_by_the_minisign_cli_sign_records_that_verify() {
    let keys = TempDir::new().unwrap();
    let unencrypted_secret = keys.path().join("plain.key");
    let unencrypted_public = keys.path().join("plain.pub");
    let output = minisign(
        &[
            "-G",
            "-W",
            "-p",
            unencrypted_public.to_str().unwrap(),
            "-s",
            unencrypted_secret.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // (Keys the CLI encrypts use scrypt with 1 GiB of memory, which takes a
    // minute to open in an unoptimised test build; the encrypted format is
    // covered by password_protected_key_round_trip, which the CLI reads.)
    let signer = SigningKey::load(&unencrypted_secret, None).unwrap();
    let verifier = VerifyingKey::load(&unencrypted_public).unwrap();
    assert_eq!(signer.key_id(), verifier.key_id());
    let repository = TempDir::new().unwrap();
    git(repository.path(), &["init", "-q", "--bare"]);
    let branch = EvidenceBranch::open(repository.path(), BRANCH).unwrap();
    branch
        .append(decision_input(1), &signer, &AppendContext::default())
        .unwrap();
    branch
        .append(decision_input(2), &signer, &AppendContext::default())
        .unwrap();
    let report = verify_branch(repository.path(), BRANCH, &verifier, None).unwrap();
    assert!(report.ok, "{report}");
}

#[test]
fn a_damaged_unencrypted_secret_key_is_refused_at_load() {
    let keys = TempDir::new().unwrap();
    let secret = keys.path().join("plain.key");
    let public = keys.path().join("plain.pub");
    let output = minisign(
        &[
            "-G",
            "-W",
            "-p",
            public.to_str().unwrap(),
            "-s",
            secret.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = fs::read_to_string(&secret).unwrap();
    let (comment, encoded) = text.split_once('\n').unwrap();
    let mut encoded = encoded.trim_end().to_string();
    // Character 100 encodes bits of the Ed25519 seed.
    let replacement = if &encoded[100..101] == "A" { "B" } else { "A" };
    encoded.replace_range(100..101, replacement);
    fs::write(&secret, format!("{comment}\n{encoded}\n")).unwrap();
    let error = SigningKey::load(&secret, None).unwrap_err();
    assert!(matches!(error, EvidenceError::KeyLoad { .. }), "{error}");
    assert!(error.to_string().contains("damaged"), "{error}");
}
