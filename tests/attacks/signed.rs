//! Bypass 3: approvals in someone else's name. Without a forge, a record
//! counts only when the commit that wrote it carries a valid SSH signature
//! (`git commit -S`, `gpg.format=ssh`) by a key its decider lists in
//! `signing_keys` — in the rules in force before the change. Real keys from
//! `ssh-keygen`, real signatures from `git`, through `validate --base`, the
//! PR check and the daemon.

use crate::harness::{Attack, daemon_config, each_judge, events_of, now};
use crate::support::TestRepo;
use ringmaster::daemon::Daemon;
use ringmaster::source::GovernedRepo;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An SSH key pair made by the real `ssh-keygen` (fails loudly without it:
/// `scripts/test.sh` installs openssh-client).
struct Key {
    private: PathBuf,
    public: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let private = dir.join(name);
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .output()
        .expect("ssh-keygen must be installed (openssh-client; scripts/test.sh installs it)");
    assert!(output.status.success(), "ssh-keygen: {output:?}");
    let public = std::fs::read_to_string(private.with_extension("pub")).expect("public key");
    Key {
        private,
        public: public.trim().to_owned(),
    }
}

/// The keys of Carol and Dave (CAB approvers) and Olivia (admin).
struct Keys {
    _dir: tempfile::TempDir,
    carol: Key,
    dave: Key,
    olivia: Key,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("key dir");
    Keys {
        carol: keygen(dir.path(), "carol"),
        dave: keygen(dir.path(), "dave"),
        olivia: keygen(dir.path(), "olivia"),
        _dir: dir,
    }
}

/// Lists `key` in `principal`'s signing_keys.
fn list_key(repo: &TestRepo, principal: &str, key: &Key) {
    repo.edit(
        &format!("principals/{principal}.yaml"),
        "roles:\n",
        &format!("signing_keys:\n  - \"{}\"\nroles:\n", key.public),
    );
}

fn with_keys(repo: &TestRepo, keys: &Keys) {
    list_key(repo, "carol", &keys.carol);
    list_key(repo, "dave", &keys.dave);
    list_key(repo, "olivia", &keys.olivia);
}

/// Commits the work tree signed with `key`, as `git commit -S` does with
/// `gpg.format=ssh`.
fn commit_signed(repo: &TestRepo, key: &Key, message: &str) -> String {
    repo.git(&["add", "-A"]);
    repo.git(&[
        "-c",
        "gpg.format=ssh",
        "-c",
        &format!("user.signingkey={}", key.private.display()),
        "commit",
        "-q",
        "-S",
        "-m",
        message,
    ]);
    repo.git(&["rev-parse", "HEAD"])
}

/// Carol's CAB approval of osquery 6.0.0 for IT, bound to the intent as it
/// is (osquery's risk 60 needs one approval).
fn write_approval(repo: &TestRepo) {
    let governed = GovernedRepo::open(&repo.path).expect("repo");
    let head = governed.resolve("HEAD").expect("head");
    let (snapshot, _) = ringmaster::model::load(&governed.entries_at(head).expect("entries"));
    let intent = &snapshot.intents["osquery-6.0.0-it"].value;
    let digest = ringmaster::model::digest::intent_sha256(&snapshot, intent);
    repo.write(
        "approvals/cab-osquery.yaml",
        &format!(
            "apiVersion: ringmaster.dev/v1\nkind: ApprovalRecord\napproval_id: cab-osquery\ndeployment_intent_id: osquery-6.0.0-it\nintent_sha256: \"{digest}\"\ndecision: approved\ndecided_by: carol\ndecided_at: \"2026-11-30T10:00:00Z\"\nexpiry: \"2027-11-30T23:59:59Z\"\njustification: reviewed the config migration\n"
        ),
    );
}

fn approval_counts(judge: &str, verdict: &crate::harness::Verdict) {
    assert_eq!(
        verdict.decision("osquery-6.0.0-it"),
        "ALLOW",
        "{judge}: Carol's signed approval counts: {verdict:#?}"
    );
}

fn approval_does_not_count(needle: &'static str) -> impl Fn(&str, &crate::harness::Verdict) {
    move |judge, verdict| {
        assert_eq!(
            verdict.decision("osquery-6.0.0-it"),
            "REQUIRE_APPROVAL",
            "{judge} counted an approval Carol did not sign: {verdict:#?}"
        );
        assert!(
            verdict
                .warnings
                .iter()
                .any(|w| w.starts_with("approvals/cab-osquery.yaml:") && w.contains(needle)),
            "{judge} says why the claim does not count ({needle}): {verdict:#?}"
        );
    }
}

#[test]
fn an_approval_signed_by_its_decider_counts() {
    let keys = keys();
    let attack = Attack::on_base(|repo| with_keys(repo, &keys));
    write_approval(&attack.repo);
    commit_signed(&attack.repo, &keys.carol, "cab: Carol approves osquery");
    each_judge(&attack, approval_counts);
}

#[test]
fn an_approval_signed_with_another_principals_key_does_not_count() {
    let keys = keys();
    let attack = Attack::on_base(|repo| with_keys(repo, &keys));
    write_approval(&attack.repo);
    commit_signed(&attack.repo, &keys.dave, "cab: Carol approves osquery");
    each_judge(&attack, approval_does_not_count("dave's key"));
}

#[test]
fn an_unsigned_approval_in_someone_elses_name_does_not_count() {
    let keys = keys();
    let attack = Attack::on_base(|repo| with_keys(repo, &keys));
    write_approval(&attack.repo);
    attack.commit("cab: Carol approves osquery");
    each_judge(&attack, approval_does_not_count("is not signed"));
}

/// Carol signed a commit; someone rewrote it (here its message) keeping
/// her `gpgsig` header.
#[test]
fn a_tampered_signed_commit_does_not_count() {
    let keys = keys();
    let attack = Attack::on_base(|repo| with_keys(repo, &keys));
    write_approval(&attack.repo);
    commit_signed(&attack.repo, &keys.carol, "cab: Carol approves osquery");
    let original = attack.repo.git(&["cat-file", "commit", "HEAD"]);
    assert!(original.contains("gpgsig -----BEGIN SSH SIGNATURE-----"));
    let tampered = original.replace("Carol approves osquery", "Carol approves everything");
    let path = attack.repo.path.join(".git/tampered-commit");
    std::fs::write(&path, format!("{tampered}\n")).expect("write");
    let forged = attack.repo.git(&[
        "hash-object",
        "-t",
        "commit",
        "-w",
        path.to_str().expect("utf-8"),
    ]);
    attack
        .repo
        .git(&["update-ref", "refs/heads/attack", &forged]);
    attack.repo.git(&["reset", "-q", "--hard", "attack"]);
    each_judge(&attack, approval_does_not_count("does not verify"));
}

/// Olivia (admin) signs the removal of Carol's key; the daemon puts it in
/// force. An approval signed afterwards with Carol's old key proves nothing.
#[test]
fn a_key_revoked_by_an_authorised_commit_does_not_count() {
    let keys = keys();
    let repo = TestRepo::sample();
    with_keys(&repo, &keys);
    repo.commit_all("signing keys");
    let mut daemon = Daemon::open(daemon_config(&repo)).expect("daemon");
    daemon.process_pending(now()).expect("root of authority");

    repo.edit(
        "principals/carol.yaml",
        &format!("signing_keys:\n  - \"{}\"\n", keys.carol.public),
        "",
    );
    let revocation = commit_signed(&repo, &keys.olivia, "revoke Carol's key");
    daemon.process_pending(now()).expect("revocation");
    let authorised = events_of(&daemon, "rules_in_force");
    assert!(
        authorised
            .iter()
            .any(|e| e["kind"] == "governance_change_authorised"
                && e["authorised_by"]["principal"] == "olivia"
                && e["authorised_by"]["kind"] == "signature"),
        "the admin's signature put the revocation in force: {authorised:#?}"
    );
    let state = daemon
        .store()
        .rules_state("main")
        .expect("store")
        .expect("state");
    assert_eq!(state.rules_commit, revocation);

    repo.git(&["checkout", "-q", "-b", "attack"]);
    write_approval(&repo);
    commit_signed(&repo, &keys.carol, "cab: Carol approves osquery");
    let attack = Attack {
        repo,
        base: revocation,
    };
    let check = approval_does_not_count("no principal lists");
    check("validate --base", &attack.validate());
    check("the PR check", &attack.pr_check());
    let (verdict, ()) = attack.daemon_run(&mut daemon, now());
    check("the daemon", &verdict);
}

/// A governance change signed by a key that is not an admin's is not put
/// in force (Dave is a CAB approver).
#[test]
fn a_rules_change_signed_by_a_non_admin_is_not_in_force() {
    let keys = keys();
    let attack = Attack::on_base(|repo| with_keys(repo, &keys));
    attack.repo.edit(
        "ringmaster.yaml",
        "risk_threshold: 50",
        "risk_threshold: 90",
    );
    commit_signed(&attack.repo, &keys.dave, "cab: a higher threshold");
    let mut daemon = Daemon::open(daemon_config(&attack.repo)).expect("daemon");
    let (verdict, ()) = attack.daemon_run(&mut daemon, now());
    assert_eq!(verdict.decision("osquery-6.0.0-it"), "REQUIRE_APPROVAL");
    let events = events_of(&daemon, "governance_change_unauthorised");
    assert!(
        events.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not an admin"))),
        "{events:#?}"
    );
}

/// `require_signed_commits: true`: an unsigned commit is refused by every
/// judge, a signed one is not.
#[test]
fn require_signed_commits_refuses_an_unsigned_commit() {
    let keys = keys();
    let attack = Attack::on_base(|repo| {
        with_keys(repo, &keys);
        repo.edit(
            "ringmaster.yaml",
            "remediation: ticket",
            "remediation: ticket\nrequire_signed_commits: true",
        );
    });
    attack.repo.edit(
        "intents/chrome-131-finance.yaml",
        "Monthly Chrome",
        "Monthly (unsigned) Chrome",
    );
    attack.commit("chrome: unsigned");
    each_judge(&attack, |judge, verdict| {
        assert!(
            verdict
                .errors
                .iter()
                .any(|e| e.starts_with("ringmaster.yaml:") && e.contains("require_signed_commits")),
            "{judge} accepted an unsigned commit: {verdict:#?}"
        );
    });

    let signed = Attack::on_base(|repo| {
        with_keys(repo, &keys);
        repo.edit(
            "ringmaster.yaml",
            "remediation: ticket",
            "remediation: ticket\nrequire_signed_commits: true",
        );
    });
    signed.repo.edit(
        "intents/chrome-131-finance.yaml",
        "Monthly Chrome",
        "Monthly (signed) Chrome",
    );
    commit_signed(&signed.repo, &keys.carol, "chrome: signed");
    each_judge(&signed, |judge, verdict| {
        assert!(
            !verdict
                .errors
                .iter()
                .any(|e| e.contains("require_signed_commits")),
            "{judge} refused a signed commit: {verdict:#?}"
        );
        assert_eq!(verdict.decision("chrome-131-finance"), "ALLOW", "{judge}");
    });
}
