//! `ringmaster validate`, `plan`, `init` and `schema export` run as a user
//! would, on real Git repositories.

mod support;

use support::{NOW, TestRepo, ringmaster, stderr, stdout};

fn validate_json(repo: &TestRepo, extra: &[&str]) -> (i32, serde_json::Value) {
    validate_json_at(repo, NOW, extra)
}

fn validate_json_at(repo: &TestRepo, now: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let path = repo.path.to_str().expect("utf-8 path");
    let mut args = vec!["validate", path, "--format", "json", "--now", now];
    args.extend_from_slice(extra);
    let output = ringmaster(&args, &repo.path);
    let report = serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("json: {e}\n{}\n{}", stdout(&output), stderr(&output)));
    (output.status.code().expect("exit code"), report)
}

fn decision(report: &serde_json::Value, intent: &str) -> String {
    report["intents"]
        .as_array()
        .expect("intents")
        .iter()
        .find(|i| i["id"] == intent)
        .unwrap_or_else(|| panic!("{intent} in {report}"))["decision"]
        .as_str()
        .expect("decision")
        .to_owned()
}

#[test]
fn sample_repository_validates_with_every_intent_decided() {
    let repo = TestRepo::sample();
    let (code, report) = validate_json(&repo, &[]);
    assert_eq!(code, 0, "{report:#}");
    // No errors; the only findings are the posture constraints no connector
    // applies, one warning per entitlement rule that sets one, at its
    // `/posture` with a line (never a silent ALLOW).
    let with_posture: std::collections::BTreeSet<String> =
        std::fs::read_dir(repo.path.join("entitlements"))
            .expect("entitlements")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| {
                let text = std::fs::read_to_string(path).expect("read");
                text.contains("compliant_only: true")
                    || text.contains("min_os_version:")
                    || text.contains("encryption_required: true")
            })
            .map(|path| {
                format!(
                    "entitlements/{}",
                    path.file_name().expect("name").to_string_lossy()
                )
            })
            .collect();
    assert!(!with_posture.is_empty());
    let diagnostics = report["diagnostics"].as_array().expect("array");
    let warned: std::collections::BTreeSet<String> = diagnostics
        .iter()
        .map(|d| {
            assert_eq!(d["severity"], "warning", "{d:#}");
            assert_eq!(d["pointer"], "/posture", "{d:#}");
            assert!(d["line"].as_u64().unwrap_or(0) > 0, "{d:#}");
            assert!(
                d["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("is not applied on plane"),
                "{d:#}"
            );
            d["file"].as_str().expect("file").to_owned()
        })
        .collect();
    assert_eq!(warned, with_posture, "{report:#}");
    assert_eq!(diagnostics.len(), with_posture.len());
    assert_eq!(decision(&report, "chrome-131-finance"), "ALLOW");
    assert_eq!(decision(&report, "vpn-6.2.1-finance"), "ALLOW");
    assert_eq!(decision(&report, "benefits-3.4.2-hr"), "ALLOW");
    assert_eq!(decision(&report, "osquery-6.0.0-it"), "REQUIRE_APPROVAL");
    assert_eq!(
        decision(&report, "build-agent-2.8.0-engineering"),
        "REQUIRE_EXCEPTION"
    );
    for intent in report["intents"].as_array().expect("intents") {
        let score = intent["risk_score"].as_u64().expect("score");
        assert!(score <= 100);
    }
}

#[test]
fn strict_fails_on_require_decisions() {
    let repo = TestRepo::sample();
    let (code, _) = validate_json(&repo, &["--strict"]);
    assert_eq!(code, 1);
}

#[test]
fn broken_file_fails_with_path_and_line() {
    let repo = TestRepo::sample();
    repo.edit(
        "intents/chrome-131-finance.yaml",
        "application_id: google-chrome",
        "application_id: google-chrom",
    );
    repo.commit_all("typo");
    let (code, report) = validate_json(&repo, &[]);
    assert_eq!(code, 1);
    let diagnostic = report["diagnostics"]
        .as_array()
        .expect("array")
        .iter()
        .find(|d| d["file"] == "intents/chrome-131-finance.yaml")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(diagnostic["line"], 4);
    assert_eq!(diagnostic["pointer"], "/application_id");
    assert!(
        diagnostic["message"]
            .as_str()
            .expect("message")
            .contains("google-chrom")
    );
    assert_eq!(decision(&report, "chrome-131-finance"), "DENY");
    // Everything else is still judged.
    assert_eq!(decision(&report, "vpn-6.2.1-finance"), "ALLOW");

    // The human format prints file:line:column first, as editors expect.
    let output = ringmaster(&["validate", ".", "--now", NOW], &repo.path);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("intents/chrome-131-finance.yaml:4:17: error:"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn validate_reads_the_revision_not_the_work_tree() {
    let repo = TestRepo::sample();
    repo.write("intents/chrome-131-finance.yaml", "not: [valid");
    let (code, _) = validate_json(&repo, &[]);
    assert_eq!(code, 0, "HEAD is still good");
    let (code, report) = validate_json(&repo, &["--worktree"]);
    assert_eq!(code, 1, "the work tree is broken: {report:#}");
}

#[test]
fn subfolder_of_a_repository_is_a_governed_root() {
    let repo = TestRepo::sample();
    // Move the tenant into a folder of a bigger repository, as sample-repo/ is here.
    let inner = repo.path.join("tenant");
    std::fs::create_dir_all(&inner).expect("mkdir");
    for name in [
        "ringmaster.yaml",
        "principals",
        "apps",
        "entitlements",
        "intents",
        "approvals",
        "exceptions",
        "policies",
        "README.md",
    ] {
        std::fs::rename(repo.path.join(name), inner.join(name)).expect("move");
    }
    repo.write("README.md", "# a bigger project\n");
    repo.commit_all("move tenant into a folder");
    let output = ringmaster(
        &["validate", "tenant", "--now", NOW, "--format", "github"],
        &repo.path,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    // Annotations name paths from the repository root.
    assert!(
        stdout(&output).contains("file=tenant/intents/osquery-6.0.0-it.yaml"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn expired_approval_counts_for_nothing() {
    let repo = TestRepo::sample();
    let (_, report) = validate_json_at(&repo, "2028-01-01T00:00:00Z", &[]);
    assert_eq!(decision(&report, "vpn-6.2.1-finance"), "REQUIRE_APPROVAL");
}

#[test]
fn application_scope_change_needs_approval_against_the_base() {
    let repo = TestRepo::sample();
    let base = repo.git(&["rev-parse", "HEAD"]);
    repo.edit(
        "apps/google-chrome/app.yaml",
        "acquisition_boundaries: [acq-001]",
        "acquisition_boundaries: [acq-001, acq-002]",
    );
    repo.commit_all("widen chrome's scope");
    let (_, report) = validate_json(&repo, &["--base", &base]);
    assert_eq!(
        decision(&report, "chrome-131-finance"),
        "REQUIRE_APPROVAL",
        "{report:#}"
    );
    let (_, report) = validate_json(&repo, &[]);
    assert_eq!(
        decision(&report, "chrome-131-finance"),
        "ALLOW",
        "without a base nothing is compared"
    );
}

#[test]
fn plan_shows_factors_blast_radius_and_timeline() {
    let repo = TestRepo::sample();
    let output = ringmaster(
        &[
            "plan",
            ".",
            "vpn-6.2.1-finance",
            "--now",
            NOW,
            "--base",
            "HEAD",
        ],
        &repo.path,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    for needle in [
        "decision: ALLOW",
        "privilege_impact",
        "blast radius",
        "ring-4-global",
        "ring timeline",
        "approvals: 1/1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let output = ringmaster(
        &[
            "plan",
            ".",
            "vpn-6.2.1-finance",
            "--now",
            NOW,
            "--format",
            "json",
        ],
        &repo.path,
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
    let devices: u64 = plan["blast_radius"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["devices"].as_u64().expect("n"))
        .sum();
    assert_eq!(plan["total_devices"].as_u64(), Some(devices));
    assert!(devices > 0);
}

#[test]
fn plan_for_an_unknown_intent_lists_the_known_ones() {
    let repo = TestRepo::sample();
    let output = ringmaster(&["plan", ".", "nope", "--now", NOW], &repo.path);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("chrome-131-finance"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn init_creates_a_committed_repository_that_validates() {
    let dir = tempfile::tempdir().expect("temp");
    let target = dir.path().join("tenant");
    let output = ringmaster(&["init", target.to_str().expect("utf-8")], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = ringmaster(&["validate", "tenant", "--now", NOW], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    // A second init into the same place refuses.
    let output = ringmaster(&["init", "tenant"], dir.path());
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn schema_export_writes_every_schema() {
    let dir = tempfile::tempdir().expect("temp");
    let output = ringmaster(&["schema", "export", "out"], dir.path());
    assert_eq!(output.status.code(), Some(0));
    for entry in ringmaster::schema::KIND_SCHEMAS {
        let text =
            std::fs::read_to_string(dir.path().join("out").join(entry.file_name)).expect("written");
        let schema: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}

#[test]
fn not_a_repository_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp");
    let output = ringmaster(&["validate", "."], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not inside a Git repository"),
        "{}",
        stderr(&output)
    );
}

/// Intents are judged in batches (one message to the tenant-policy worker
/// for many inputs): a tenant rule that breaks on one intent fails that
/// intent alone, closed, a finding lands on its own intent only, and every
/// other intent of the batch keeps exactly its verdict.
#[test]
fn a_tenant_rule_failing_on_one_batched_intent_fails_that_intent_alone() {
    let repo = TestRepo::generated(80);
    let (code, before) = validate_json(&repo, &[]);
    assert_eq!(code, 0, "{before:#}");
    let ids: Vec<String> = before["intents"]
        .as_array()
        .expect("intents")
        .iter()
        .map(|intent| intent["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 80);
    let (broken, denied) = (&ids[5], &ids[45]);
    repo.write(
        "policies/batched.rego",
        &format!(
            "package ringmaster.tenant.batched\n\nimport rego.v1\n\n\
             deny contains {{\"rule\": \"batched.broken\", \"message\": \"never\"}} if {{\n\
             \tinput.intent.intent_id == \"{broken}\"\n\
             \tto_number(\"not a number\") > 0\n}}\n\n\
             deny contains {{\"rule\": \"batched.denied\", \"message\": \"this one\"}} if {{\n\
             \tinput.intent.intent_id == \"{denied}\"\n}}\n"
        ),
    );
    repo.commit_all("a tenant rule for two intents");
    let (code, after) = validate_json(&repo, &[]);
    assert_eq!(code, 1, "{after:#}");
    let intents = after["intents"].as_array().expect("intents");
    for (index, (old, new)) in before["intents"]
        .as_array()
        .expect("intents")
        .iter()
        .zip(intents)
        .enumerate()
    {
        let id = &ids[index];
        if id == broken {
            assert_eq!(new["decision"], "DENY", "{new:#}");
            assert!(
                new["reasons"]
                    .as_array()
                    .expect("reasons")
                    .iter()
                    .any(|reason| reason["rule"] == "policy.error"),
                "{new:#}"
            );
        } else if id == denied {
            assert_eq!(new["decision"], "DENY", "{new:#}");
            assert!(
                new["reasons"]
                    .as_array()
                    .expect("reasons")
                    .iter()
                    .any(|reason| reason["rule"] == "batched.denied"),
                "{new:#}"
            );
        } else {
            assert_eq!(old, new, "{id} keeps its verdict");
        }
    }
    let errors: Vec<&serde_json::Value> = after["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one policy error, on {broken}: {errors:#?}"
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("policy evaluation failed")),
        "{errors:#?}"
    );
}
