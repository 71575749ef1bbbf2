//! The audit bundle round trip: the daemon writes evidence on the sample
//! tenant, `ringmaster evidence export` writes a bundle, and the bundle is
//! extracted in a temporary directory with no repository and no ringmaster
//! where the commands of its own `VERIFY.md` are run for real (bash,
//! minisign, sha256sum, jq). Then one file at a time is tampered with — a
//! pack, a signature, the manifest — and the same commands must fail.
//! `ringmaster evidence verify-bundle` agrees both ways.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{TestRepo, ringmaster, stderr, stdout};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

struct Setup {
    repo: TestRepo,
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl Setup {
    /// The sample tenant after one daemon pass: decision records, ring
    /// records and events.
    fn new() -> Setup {
        let repo = TestRepo::sample();
        let keys = tempfile::tempdir().unwrap();
        let output = ringmaster(&["keygen", "--out", path(keys.path())], keys.path());
        assert!(output.status.success(), "{}", stderr(&output));
        let state = tempfile::tempdir().unwrap();
        let key = keys.path().join("ringmaster.key");
        let output = ringmaster(
            &[
                "serve",
                "--repo",
                path(&repo.path),
                "--state",
                path(state.path()),
                "--key",
                path(&key),
                "--config",
                path(&support::sim_planes_config(keys.path())),
                "--once",
            ],
            &repo.path,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        Setup {
            repo,
            keys,
            state,
            out: tempfile::tempdir().unwrap(),
        }
    }

    fn public_key(&self) -> PathBuf {
        self.keys.path().join("ringmaster.pub")
    }

    fn export(&self, name: &str, extra: &[&str]) -> PathBuf {
        let bundle = self.out.path().join(name);
        let siem = self.out.path().join("siem.jsonl");
        let public_key = self.public_key();
        let mut args = vec![
            "evidence",
            "export",
            "--repo",
            path(&self.repo.path),
            "--public-key",
            path(&public_key),
            "--state",
            path(self.state.path()),
            "--out",
            path(&bundle),
            "--actor",
            "auditor@example.com",
            "--siem",
            path(&siem),
        ];
        args.extend_from_slice(extra);
        let output = ringmaster(&args, &self.repo.path);
        assert!(
            output.status.success(),
            "{}\n{}",
            stdout(&output),
            stderr(&output)
        );
        bundle
    }
}

/// Extracts `bundle` into a fresh directory (no repository anywhere near).
fn extract(bundle: &Path) -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .args(["-xzf", path(bundle), "-C", path(directory.path())])
        .status()
        .expect("tar runs");
    assert!(status.success());
    let root = directory.path().join("evidence-bundle");
    (directory, root)
}

/// The shell blocks of VERIFY.md, run in the bundle directory by `bash -e`
/// with a PATH that has the standard tools only.
fn run_verify_md(root: &Path) -> std::process::Output {
    let text = std::fs::read_to_string(root.join("VERIFY.md")).unwrap();
    let mut script = String::new();
    let mut inside = false;
    for line in text.lines() {
        match (inside, line) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, _) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(script.contains("minisign -V"), "VERIFY.md has the commands");
    for tool in ["minisign", "sha256sum", "jq", "bash"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "{tool} must be installed (scripts/test.sh installs it)"
        );
    }
    Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root)
        .output()
        .expect("bash runs")
}

fn manifest(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap()
}

/// Rewrites MANIFEST.sha256's line for `relative` to the file's new hash
/// (a tamperer covering their tracks).
fn relist(root: &Path, relative: &str) {
    let bytes = std::fs::read(root.join(relative)).unwrap();
    let hash = ringmaster::evidence::sha256_hex(&bytes);
    let sums = std::fs::read_to_string(root.join("MANIFEST.sha256")).unwrap();
    let updated: String = sums
        .lines()
        .map(|line| match line.split_once("  ") {
            Some((_, path)) if path == relative => format!("{hash}  {path}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(root.join("MANIFEST.sha256"), updated).unwrap();
}

fn retar(directory: &Path, bundle: &Path) {
    let status = Command::new("tar")
        .args([
            "-czf",
            path(bundle),
            "-C",
            path(directory),
            "evidence-bundle",
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

/// One tampering: its name, what it does, what VERIFY.md must print.
type Tampering<'a> = (&'a str, Box<dyn Fn(&Path) + 'a>, &'a str);

fn verify_bundle(setup: &Setup, bundle: &Path) -> std::process::Output {
    let public_key = setup.public_key();
    ringmaster(
        &[
            "evidence",
            "verify-bundle",
            path(bundle),
            "--public-key",
            path(&public_key),
        ],
        setup.out.path(),
    )
}

#[test]
fn a_bundle_verifies_with_standard_tools_and_every_tampering_is_caught() {
    let setup = Setup::new();
    let bundle = setup.export("audit.tar.gz", &[]);

    // The export is recorded: an event and a SIEM line naming who and what.
    let events = ringmaster(
        &[
            "events",
            "--state",
            path(setup.state.path()),
            "--format",
            "json",
        ],
        setup.out.path(),
    );
    let events: Vec<serde_json::Value> = serde_json::from_slice(&events.stdout).unwrap();
    let exported = events
        .iter()
        .find(|event| event["event_type"] == "evidence_exported")
        .expect("export event");
    assert_eq!(exported["actor"], "auditor@example.com");
    let siem = std::fs::read_to_string(setup.out.path().join("siem.jsonl")).unwrap();
    assert!(
        siem.contains("\"type\":\"evidence_exported\"") && siem.contains("auditor@example.com"),
        "{siem}"
    );

    // The documented commands, for real, on an extracted copy.
    let (_directory, root) = extract(&bundle);
    let output = run_verify_md(&root);
    let printed = stdout(&output);
    assert!(output.status.success(), "{printed}\n{}", stderr(&output));
    for check in ["OK 1", "OK 2", "OK 3", "OK 4", "OK 5", "ALL CHECKS PASSED"] {
        assert!(printed.contains(check), "{check} missing:\n{printed}");
    }
    let records = manifest(&root)["records"].as_array().unwrap().len();
    assert!(records >= 7, "decisions and ring records: {records}");
    assert!(
        printed.contains(&format!("OK 2: {records} record(s)")),
        "{printed}"
    );
    assert!(verify_bundle(&setup, &bundle).status.success());

    let first_pack = manifest(&root)["records"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_pack = manifest(&root)["records"][1]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: Vec<Tampering<'_>> = vec![
        (
            "a pack edited",
            Box::new(|root: &Path| {
                let file = root.join(&first_pack);
                let text = std::fs::read_to_string(&file)
                    .unwrap()
                    .replace("\"ALLOW\"", "\"DENY\"")
                    .replace("\"REQUIRE_APPROVAL\"", "\"ALLOW\"");
                std::fs::write(&file, text).unwrap();
            }),
            "FAILED 1",
        ),
        (
            "a pack edited and relisted",
            Box::new(|root: &Path| {
                let file = root.join(&first_pack);
                let mut bytes = std::fs::read(&file).unwrap();
                bytes.insert(1, b' ');
                std::fs::write(&file, bytes).unwrap();
                relist(root, &first_pack);
            }),
            "BAD signature",
        ),
        (
            "a signature swapped and relisted",
            Box::new(|root: &Path| {
                let other = std::fs::read(root.join(format!("{second_pack}.minisig"))).unwrap();
                std::fs::write(root.join(format!("{first_pack}.minisig")), other).unwrap();
                relist(root, &format!("{first_pack}.minisig"));
            }),
            "BAD signature",
        ),
        (
            "the manifest edited",
            Box::new(|root: &Path| {
                let mut value = manifest(root);
                value["records"].as_array_mut().unwrap().remove(1);
                std::fs::write(
                    root.join("manifest.json"),
                    serde_json::to_vec_pretty(&value).unwrap(),
                )
                .unwrap();
            }),
            "FAILED 1",
        ),
        (
            "the manifest edited and relisted",
            Box::new(|root: &Path| {
                let mut value = manifest(root);
                value["records"][0]["sha256"] = serde_json::json!("0".repeat(64));
                std::fs::write(
                    root.join("manifest.json"),
                    serde_json::to_vec_pretty(&value).unwrap(),
                )
                .unwrap();
                relist(root, "manifest.json");
            }),
            "FAILED 2",
        ),
        (
            "a record dropped from manifest and chain, relisted",
            Box::new(|root: &Path| {
                let mut value = manifest(root);
                value["records"].as_array_mut().unwrap().remove(1);
                std::fs::write(
                    root.join("manifest.json"),
                    serde_json::to_vec_pretty(&value).unwrap(),
                )
                .unwrap();
                relist(root, "manifest.json");
            }),
            "FAILED 3",
        ),
        (
            "MANIFEST.sha256 edited",
            Box::new(|root: &Path| {
                let sums = std::fs::read_to_string(root.join("MANIFEST.sha256")).unwrap();
                std::fs::write(
                    root.join("MANIFEST.sha256"),
                    sums.replacen(&sums[..1], if &sums[..1] == "0" { "1" } else { "0" }, 1),
                )
                .unwrap();
            }),
            "FAILED 1",
        ),
        (
            "an event edited and relisted",
            Box::new(|root: &Path| {
                let events = std::fs::read_to_string(root.join("events/events.jsonl")).unwrap();
                std::fs::write(
                    root.join("events/events.jsonl"),
                    events.replacen("ringmaster", "mallory", 1),
                )
                .unwrap();
                relist(root, "events/events.jsonl");
            }),
            "FAILED 5",
        ),
    ];
    for (name, tamper, expected) in cases {
        let (directory, root) = extract(&bundle);
        tamper(&root);
        let output = run_verify_md(&root);
        let printed = stdout(&output);
        assert!(
            !output.status.success(),
            "{name}: VERIFY.md passed:\n{printed}"
        );
        assert!(
            printed.contains(expected),
            "{name}: expected {expected}:\n{printed}\n{}",
            stderr(&output)
        );
        assert!(!printed.contains("ALL CHECKS PASSED"), "{name}");
        let tampered = setup.out.path().join("tampered.tar.gz");
        retar(directory.path(), &tampered);
        let output = verify_bundle(&setup, &tampered);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: verify-bundle:\n{}",
            stdout(&output)
        );
    }
}

#[test]
fn a_filtered_bundle_still_links_end_to_end() {
    let setup = Setup::new();
    let records = {
        let bundle = setup.export("all.tar.gz", &[]);
        let (_directory, root) = extract(&bundle);
        manifest(&root)["records"].as_array().unwrap().clone()
    };
    // An intent whose records are not contiguous on the branch.
    let intent = records
        .iter()
        .filter_map(|record| record["intent_id"].as_str())
        .find(|intent| {
            let sequences: Vec<u64> = records
                .iter()
                .filter(|r| r["intent_id"] == *intent)
                .map(|r| r["sequence"].as_u64().unwrap())
                .collect();
            sequences.windows(2).any(|pair| pair[1] != pair[0] + 1)
        })
        .expect("an intent with records spread over the branch")
        .to_owned();
    let bundle = setup.export("intent.tar.gz", &["--intent", &intent]);
    let (_directory, root) = extract(&bundle);
    let value = manifest(&root);
    assert!(
        value["omitted_in_chain"].as_u64().unwrap() > 0,
        "the filter left records out"
    );
    assert!(
        value["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["intent_id"] == intent.as_str())
    );
    let output = run_verify_md(&root);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("left out by the filter"));
    assert!(verify_bundle(&setup, &bundle).status.success());

    // Faking the hash of a left-out record breaks the chain.
    let mut value = manifest(&root);
    let chain = value["chain"].as_array_mut().unwrap();
    let omitted = chain
        .iter_mut()
        .find(|entry| entry["included"] == false)
        .unwrap();
    omitted["sha256"] = serde_json::json!("f".repeat(64));
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_vec_pretty(&value).unwrap(),
    )
    .unwrap();
    relist(&root, "manifest.json");
    let output = run_verify_md(&root);
    assert!(stdout(&output).contains("FAILED 3"), "{}", stdout(&output));

    // A business unit and a period filter work the same way; nothing
    // matching is an error, not an empty bundle.
    let bundle = setup.export(
        "finance.tar.gz",
        &["--business-unit", "bu-finance", "--since", "2000-01-01"],
    );
    assert!(verify_bundle(&setup, &bundle).status.success());
    let public_key = setup.public_key();
    let output = ringmaster(
        &[
            "evidence",
            "export",
            "--repo",
            path(&setup.repo.path),
            "--public-key",
            path(&public_key),
            "--out",
            path(&setup.out.path().join("none.tar.gz")),
            "--until",
            "2000-01-01",
        ],
        &setup.repo.path,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no evidence record matches"),
        "{}",
        stderr(&output)
    );
}
