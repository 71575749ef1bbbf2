//! Loading hostile and broken governed files: each case is a diagnostic with a
//! file and a line, and every other file of the repository still loads.

use ringmaster::diagnostic::Diagnostic;
use ringmaster::model::{self, Entry, EntryContent};
use ringmaster::sample::SAMPLE_REPO;

fn sample_entries() -> Vec<Entry> {
    SAMPLE_REPO
        .iter()
        .map(|(path, bytes)| Entry::file(*path, bytes.to_vec()))
        .collect()
}

/// Loads the sample plus `extra` (replacing same-path entries) and returns
/// the diagnostics for `file`.
fn diagnostics_with(extra: Vec<Entry>, file: &str) -> (Vec<Diagnostic>, model::Snapshot) {
    let mut entries = sample_entries();
    for entry in extra {
        entries.retain(|e| e.path != entry.path);
        entries.push(entry);
    }
    let (snapshot, mut diagnostics) = model::load(&entries);
    diagnostics.extend(model::links::check(&snapshot));
    let own = diagnostics.into_iter().filter(|d| d.file == file).collect();
    (own, snapshot)
}

/// `extra` makes exactly the expected finding at `file:line`, and the sample's
/// own objects are unaffected.
fn check(extra: Vec<Entry>, file: &str, line: usize, needle: &str) {
    let (diagnostics, snapshot) = diagnostics_with(extra, file);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.is_error() && d.line == line && d.message.contains(needle)),
        "expected {file}:{line} containing {needle:?}, got {diagnostics:#?}"
    );
    assert!(
        snapshot.config.is_some(),
        "the rest of the repository still loads"
    );
    assert!(snapshot.intents.len() >= 5, "sample intents still load");
}

fn file(path: &str, text: &str) -> Entry {
    Entry::file(path, text.as_bytes().to_vec())
}

#[test]
fn the_sample_repository_loads_without_findings() {
    let (snapshot, mut diagnostics) = model::load(&sample_entries());
    diagnostics.extend(model::links::check(&snapshot));
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}

#[test]
fn symlink_entry_is_refused() {
    let entry = Entry {
        path: "intents/link.yaml".into(),
        content: EntryContent::Symlink,
    };
    check(vec![entry], "intents/link.yaml", 0, "symbolic links");
}

#[test]
fn submodule_entry_is_refused() {
    let entry = Entry {
        path: "apps/vendored".into(),
        content: EntryContent::Submodule,
    };
    check(vec![entry], "apps/vendored", 0, "submodules");
}

#[test]
fn oversized_file_is_refused_unread() {
    let entry = Entry {
        path: "intents/huge.yaml".into(),
        content: EntryContent::TooLarge(50 * 1024 * 1024),
    };
    check(vec![entry], "intents/huge.yaml", 0, "at most");
}

#[test]
fn non_utf8_file_names_its_line() {
    let entry = Entry::file(
        "intents/latin1.yaml",
        b"apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nnote: caf\xe9\n".to_vec(),
    );
    check(vec![entry], "intents/latin1.yaml", 3, "UTF-8");
}

#[test]
fn alias_bomb_is_refused() {
    let mut text =
        String::from("apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\na0: &a0 [lol]\n");
    for i in 1..12 {
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
            p = i - 1
        ));
    }
    check(
        vec![file("intents/bomb.yaml", &text)],
        "intents/bomb.yaml",
        4,
        "aliases",
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!(
        "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\ndeep: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    check(
        vec![file("intents/deep.yaml", &text)],
        "intents/deep.yaml",
        3,
        "nesting deeper",
    );
    // Far deeper input stops in the parser itself, before any tree is built.
    let text = format!("deep: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    check(
        vec![file("intents/deeper.yaml", &text)],
        "intents/deeper.yaml",
        1,
        "recursion limit",
    );
}

#[test]
fn duplicate_key_is_refused() {
    let text = "apiVersion: ringmaster.dev/v1\nkind: Principal\nid: zed\nid: zed2\n";
    check(
        vec![file("principals/zed.yaml", text)],
        "principals/zed.yaml",
        4,
        "duplicate key",
    );
}

#[test]
fn unknown_kind_is_refused() {
    let text = "apiVersion: ringmaster.dev/v1\nkind: Deployment\nid: x\n";
    check(
        vec![file("intents/x.yaml", text)],
        "intents/x.yaml",
        2,
        "unknown kind",
    );
}

#[test]
fn kind_in_the_wrong_folder_is_refused() {
    let text = "apiVersion: ringmaster.dev/v1\nkind: Principal\nid: x\n";
    check(
        vec![file("intents/x.yaml", text)],
        "intents/x.yaml",
        2,
        "must be kind: DeploymentIntent",
    );
}

#[test]
fn unsupported_api_version_is_refused() {
    let text = "apiVersion: ringmaster.dev/v2\nkind: Principal\nid: x\n";
    check(
        vec![file("principals/x.yaml", text)],
        "principals/x.yaml",
        1,
        "unsupported apiVersion",
    );
}

#[test]
fn file_outside_the_layout_is_refused() {
    check(
        vec![file("intents/nested/deep.yaml", "a: 1\n")],
        "intents/nested/deep.yaml",
        0,
        "not where the layout",
    );
    check(
        vec![file("stray.yaml", "a: 1\n")],
        "stray.yaml",
        0,
        "outside the governed layout",
    );
    check(
        vec![file("approvals/x.yml", "a: 1\n")],
        "approvals/x.yml",
        0,
        ".yaml extension",
    );
}

#[test]
fn id_that_disagrees_with_the_file_name_is_refused() {
    let (_, original) = SAMPLE_REPO
        .iter()
        .find(|(p, _)| p.starts_with("principals/"))
        .expect("sample has principals");
    let text = String::from_utf8(original.to_vec()).expect("utf-8");
    let (path, _) = SAMPLE_REPO
        .iter()
        .find(|(p, _)| p.starts_with("principals/"))
        .expect("principal");
    let renamed = path.replace("principals/", "principals/copy-of-");
    let (diagnostics, _) = diagnostics_with(vec![file(&renamed, &text)], &renamed);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.contains("does not match the file name") && d.line > 0),
        "{diagnostics:#?}"
    );
}

#[test]
fn duplicate_artifact_id_is_reported_at_the_second_place() {
    // Copy one version file under a new version number: same artifact ids twice.
    let (path, bytes) = SAMPLE_REPO
        .iter()
        .find(|(p, _)| p.starts_with("apps/") && !p.ends_with("app.yaml"))
        .expect("a version file");
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    let folder = &path[..path.rfind('/').expect("folder") + 1];
    let old_version = path[folder.len()..].trim_end_matches(".yaml");
    let copy = format!("{folder}99.0.0.yaml");
    let text = text
        .replace(
            &format!("version: \"{old_version}\""),
            "version: \"99.0.0\"",
        )
        .replace(&format!("version: {old_version}\n"), "version: 99.0.0\n");
    let (diagnostics, _) = diagnostics_with(vec![file(&copy, &text)], &copy);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.contains("artifact id") && d.message.contains("already used")),
        "{diagnostics:#?}"
    );
}

#[test]
fn schema_violations_point_at_the_offending_line() {
    // A wrong enum value, an unknown field and a bad hash, all reported at once.
    let text = "\
apiVersion: ringmaster.dev/v1
kind: Principal
id: zed
email: zed@contoso.example
roles: [publisher, wizard]
scope:
  acquisition_boundaries: [acq-001]
  business_units: [bu-it]
shoe_size: 44
";
    let (diagnostics, _) = diagnostics_with(
        vec![file("principals/zed.yaml", text)],
        "principals/zed.yaml",
    );
    assert!(
        diagnostics
            .iter()
            .any(|d| d.line == 5 && d.pointer == "/roles/1"),
        "{diagnostics:#?}"
    );
    assert!(
        diagnostics.iter().any(|d| d.message.contains("shoe_size")),
        "{diagnostics:#?}"
    );
}

#[test]
fn missing_config_is_reported() {
    let entries: Vec<Entry> = sample_entries()
        .into_iter()
        .filter(|e| e.path != "ringmaster.yaml")
        .collect();
    let (_, diagnostics) = model::load(&entries);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.file == "ringmaster.yaml" && d.message.contains("missing"))
    );
}

#[test]
fn a_freeze_in_an_unknown_time_zone_is_reported_at_its_line() {
    let (_, config) = SAMPLE_REPO
        .iter()
        .find(|(p, _)| *p == "ringmaster.yaml")
        .expect("config");
    let text = String::from_utf8(config.to_vec()).expect("utf-8");
    assert!(text.contains("timezone: UTC"), "the sample names its zones");
    let broken = text.replacen("timezone: UTC", "timezone: Mars/Olympus_Mons", 1);
    let mut entries = sample_entries();
    entries.retain(|e| e.path != "ringmaster.yaml");
    entries.push(file("ringmaster.yaml", &broken));
    let evaluation = ringmaster::judge::judge(ringmaster::judge::Case {
        entries: &entries,
        rules: None,
        base: None,
        proof: None,
        runtime: &ringmaster::evaluation::NoRuntime,
        now: chrono::Utc::now(),
    })
    .evaluation;
    let finding = evaluation
        .diagnostics
        .iter()
        .find(|d| d.file == "ringmaster.yaml" && d.message.contains("Mars/Olympus_Mons"))
        .unwrap_or_else(|| panic!("{:#?}", evaluation.diagnostics));
    assert!(finding.line > 0 && finding.pointer.starts_with("/change_freezes/"));
}
