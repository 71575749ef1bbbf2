//! `--store`: the daemon and the reading commands on a real PostgreSQL
//! store, and a store URL's password never shown.

mod support;

use std::path::Path;
use support::{TestRepo, postgres, ringmaster, stderr, stdout};

fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn serve_events_verify_and_status_run_on_a_postgresql_store() {
    let url = postgres::fresh_database();
    let repo = TestRepo::sample();
    let keys = tempfile::tempdir().unwrap();
    let output = ringmaster(&["keygen", "--out", path(keys.path())], keys.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let state = tempfile::tempdir().unwrap();
    // The URL from a file, as a deployment keeps it.
    let url_file = keys.path().join("store-url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let config = support::sim_planes_config(keys.path());
    let serve = ringmaster(
        &[
            "serve",
            "--repo",
            path(&repo.path),
            "--state",
            path(state.path()),
            "--key",
            path(&keys.path().join("ringmaster.key")),
            "--config",
            path(&config),
            "--store-file",
            path(&url_file),
            "--once",
        ],
        &repo.path,
    );
    assert!(
        serve.status.success(),
        "{}{}",
        stdout(&serve),
        stderr(&serve)
    );
    // Nothing went to a SQLite file in --state.
    assert!(!state.path().join("ringmaster.db").exists());

    let events = ringmaster(
        &[
            "events",
            "--state",
            path(state.path()),
            "--store",
            &url,
            "--format",
            "json",
        ],
        &repo.path,
    );
    assert!(events.status.success(), "{}", stderr(&events));
    let text = stdout(&events);
    assert!(text.contains("commit_processed"), "{text}");

    let verify = ringmaster(
        &[
            "verify",
            path(&repo.path),
            "--public-key",
            path(&keys.path().join("ringmaster.pub")),
            "--state",
            path(state.path()),
            "--store",
            &url,
        ],
        &repo.path,
    );
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );

    let status = ringmaster(
        &["status", "--state", path(state.path()), "--format", "json"],
        &repo.path,
    );
    // Without --store, status reads --state's SQLite file, which is absent.
    assert!(!status.status.success());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["status", "--state", path(state.path()), "--format", "json"])
        .env("RINGMASTER_STORE_URL", &url)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
}

#[test]
fn a_store_password_is_never_printed() {
    let server = postgres::server();
    let url = server
        .url("no_such_database")
        .replace("postgres@", "postgres:s3cret-pw@");
    let state = tempfile::tempdir().unwrap();
    for args in [
        vec![
            "events",
            "--state",
            path(state.path()),
            "--store",
            url.as_str(),
        ],
        vec![
            "status",
            "--state",
            path(state.path()),
            "--store",
            url.as_str(),
        ],
    ] {
        let output = ringmaster(&args, state.path());
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let shown = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("no_such_database"), "{shown}");
    }
    let bad = ringmaster(
        &[
            "events",
            "--state",
            path(state.path()),
            "--store",
            "postgres://u:s3cret-pw@host:notaport/db",
        ],
        state.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(!stderr(&bad).contains("s3cret-pw"), "{}", stderr(&bad));
}

/// Replicas on one PostgreSQL store: the first leads and processes; a
/// second stands by while the lease runs, then takes over with a new epoch
/// and finds the work done (nothing processed twice); the first then
/// stands by.
#[test]
fn replicas_on_one_postgresql_store_take_turns_leading_by_lease() {
    let url = postgres::fresh_database();
    let repo = TestRepo::sample();
    let keys = tempfile::tempdir().unwrap();
    let output = ringmaster(&["keygen", "--out", path(keys.path())], keys.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let config = support::sim_planes_config(keys.path());
    let key = keys.path().join("ringmaster.key");
    let states = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let serve = |replica: usize, now: &str| {
        let output = ringmaster(
            &[
                "serve",
                "--repo",
                path(&repo.path),
                "--state",
                path(states[replica].path()),
                "--key",
                path(&key),
                "--config",
                path(&config),
                "--store",
                &url,
                "--now",
                now,
                "--once",
            ],
            &repo.path,
        );
        assert!(
            output.status.success(),
            "{}{}",
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    };
    let events = |replica: usize| {
        let output = ringmaster(
            &[
                "events",
                "--state",
                path(states[replica].path()),
                "--store",
                &url,
                "--format",
                "json",
            ],
            &repo.path,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).matches("\"seq\"").count()
    };
    let first = serve(0, "2026-12-01T00:00:00Z");
    assert!(first.contains("leader (epoch 1)"), "{first}");
    assert!(first.contains("evidence record"), "{first}");
    let after_first = events(0);
    assert!(after_first > 0);

    let standby = serve(1, "2026-12-01T00:00:05Z");
    assert!(standby.contains("standby"), "{standby}");
    assert!(standby.contains("epoch 1"), "{standby}");
    assert_eq!(events(1), after_first, "a standby writes nothing");

    let takeover = serve(1, "2026-12-01T00:01:00Z");
    assert!(takeover.contains("leader (epoch 2)"), "{takeover}");
    assert!(
        takeover.contains("nothing to process"),
        "the new leader finds the commit processed: {takeover}"
    );

    let deposed = serve(0, "2026-12-01T00:01:05Z");
    assert!(deposed.contains("standby"), "{deposed}");
    assert!(deposed.contains("epoch 2"), "{deposed}");

    // `status` names the replica that leads, under which epoch.
    let status = ringmaster(
        &["status", "--state", path(states[0].path()), "--store", &url],
        &repo.path,
    );
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stderr(&status).contains("leader: ") && stderr(&status).contains("(epoch 2, lease until"),
        "{}",
        stderr(&status)
    );
}
