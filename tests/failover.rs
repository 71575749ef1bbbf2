//! Replicas of `ringmaster serve` on one PostgreSQL store, across real
//! processes: the leader killed (`kill -9`) in the middle of a ring at each
//! pause point with two and three replicas, a stalled ex-leader (SIGSTOP past
//! its lease, then SIGCONT) fenced, PostgreSQL restarted mid-rollout, and a
//! GitHub webhook delivered to a standby processed once by the leader.
//!
//! Every replica is the binary under test, with a 3-second lease (renewed
//! at a third of it) so a failover takes seconds; the planes are simulated
//! fleets kept outside every replica, whose publish calls are counted.
//! Conditions are polled with a deadline; nothing sleeps to synchronise,
//! and no assertion is about time (the failover time is measured by
//! `cargo bench --bench failover`).

mod forge_support;
#[path = "support/replicas.rs"]
mod replicas;
mod support;

use replicas::{OwnPostgres, Replica, Site};
use rustix::process::Signal;
use support::postgres;

const LEASE_SECONDS: u64 = 3;

const PAUSE_POINTS: [&str; 4] = [
    "after-evidence-append",
    "after-record-append",
    "before-publish",
    "after-publish",
];

/// The leader stops dead at `point` in its first step (decision records,
/// the lab ring's records and publishes), `standbys` replicas start, the
/// leader is killed with SIGKILL: one standby takes the lead under epoch 2
/// (or later epochs, if the lease changes hands again under load) and
/// finishes the ring, with every invariant intact.
fn leader_killed_at(point: &str, standbys: usize, expected: usize) {
    let site = Site::new(postgres::fresh_database(), LEASE_SECONDS);
    let mut leader = site.spawn("leader", &[("RINGMASTER_TEST_PAUSE_AT", point)]);
    leader.wait_for("ringmaster: leading (epoch 1)");
    leader.wait_for(&format!("RINGMASTER-PAUSED-AT {point}"));
    let mut others: Vec<Replica> = (0..standbys)
        .map(|number| site.spawn(&format!("standby-{number}"), &[]))
        .collect();
    leader.kill();
    let watched: Vec<&Replica> = others.iter().collect();
    site.wait_until(&format!("{point}: a standby leads"), &watched, || {
        others
            .iter()
            .any(|replica| replica.said("ringmaster: leading (epoch"))
    });
    site.wait_until(
        &format!("{point}: the lab ring is published"),
        &watched,
        || site.settled_at(expected),
    );
    // Under load a 3 s lease may change hands again between the standbys:
    // safe (each takeover resumes from the journal), so only "a standby
    // leads" is asserted, never how often.
    let leadership = site.store().leadership().expect("row").expect("led");
    assert!(leadership.epoch >= 2, "{point}: a standby took over");
    let leader_at = others
        .iter()
        .position(|replica| leadership.holder.ends_with(&format!(":{}", replica.pid())))
        .unwrap_or(0);
    // The standbys first: the leader's clean stop would hand the lead over.
    for (at, replica) in others.iter_mut().enumerate() {
        if at != leader_at {
            replica.stop();
        }
    }
    others[leader_at].stop();
    let held = site.check(others[leader_at].state.path());
    assert_eq!(held, expected, "{point}: as many as an uninterrupted run");
}

#[test]
fn two_replicas_the_leader_killed_at_each_pause_point_a_standby_finishes_the_ring() {
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    assert!(expected >= 5, "the lab rings publish ({expected})");
    for point in PAUSE_POINTS {
        leader_killed_at(point, 1, expected);
    }
}

#[test]
fn three_replicas_the_leader_killed_at_each_pause_point_one_standby_finishes_the_ring() {
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    for point in PAUSE_POINTS {
        leader_killed_at(point, 2, expected);
    }
}

/// The leader stops itself (SIGSTOP) right before its first plane call,
/// the journal entry already marked sent. A standby takes over past the
/// lease and publishes the ring. Then the ex-leader is continued: it sends
/// nothing (every plane's publish count unchanged), journals nothing (its
/// publish entry was resumed and confirmed by the successor) and stands by
/// while the successor keeps the lead.
#[test]
fn a_stalled_ex_leader_continued_after_its_lease_is_fenced_and_sends_nothing() {
    let site = Site::new(postgres::fresh_database(), LEASE_SECONDS);
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    let mut stalled = site.spawn(
        "stalled",
        &[
            ("RINGMASTER_TEST_PAUSE_AT", "before-publish"),
            ("RINGMASTER_TEST_PAUSE_STOPS", "1"),
        ],
    );
    stalled.wait_for("RINGMASTER-PAUSED-AT before-publish");
    assert_eq!(
        site.publish_calls(),
        vec![0; 5],
        "stopped before its first call"
    );
    let mut successor = site.spawn("successor", &[]);
    site.wait_until("the successor leads", &[&successor], || {
        successor.said("ringmaster: leading (epoch 2)")
    });
    site.wait_until("the lab ring is published", &[&successor], || {
        site.settled_at(expected)
    });
    // The ring is published: the successor, soaking it, sends no publish
    // and journals none from here on; any would be the ex-leader's.
    let publishes = |store: &ringmaster::store::Store| {
        store
            .actions()
            .expect("journal")
            .into_iter()
            .filter(|action| action.action == "publish")
            .collect::<Vec<_>>()
    };
    let calls = site.publish_calls();
    let journal = publishes(&site.store());
    stalled.signal(Signal::CONT);
    stalled.wait_for("ringmaster: stops acting: ");
    stalled.wait_for("ringmaster: standing by: ");
    assert_eq!(site.publish_calls(), calls, "the ex-leader sent nothing");
    assert_eq!(
        publishes(&site.store()),
        journal,
        "nor wrote to the journal"
    );
    assert_eq!(
        site.store().leadership().expect("row").expect("led").epoch,
        2,
        "the successor still leads"
    );
    stalled.kill();
    successor.stop();
    let held = site.check(successor.state.path());
    assert_eq!(held, expected);
}

/// PostgreSQL stops while the leader is in the middle of its first step
/// (a decision record on the branch, nothing published yet): publishing is
/// blocked while it is down (no plane receives a call; the replica says it
/// cannot confirm its lead, and retries without spinning), and once it is
/// back the same replica reconnects and finishes the ring — nothing lost,
/// nothing doubled.
#[test]
fn postgresql_restarted_mid_rollout_blocks_publishing_then_work_resumes() {
    let server = OwnPostgres::start();
    let site = Site::new(server.url("ringmaster"), LEASE_SECONDS);
    let expected = Site::new(String::new(), LEASE_SECONDS).expected_assignments();
    let mut replica = site.spawn(
        "replica",
        &[
            ("RINGMASTER_TEST_PAUSE_AT", "after-evidence-append"),
            ("RINGMASTER_TEST_PAUSE_STOPS", "1"),
        ],
    );
    replica.wait_for("RINGMASTER-PAUSED-AT after-evidence-append");
    server.stop();
    replica.signal(Signal::CONT);
    // Two failed attempts at its lead, a third of the lease apart.
    replica.wait_for_count("ringmaster: not acting: cannot confirm the lead", 2);
    assert_eq!(
        site.publish_calls(),
        vec![0; 5],
        "nothing is published while the store is down"
    );
    server.resume();
    site.wait_until("the lab ring is published", &[&replica], || {
        site.settled_at(expected)
    });
    replica.stop();
    let held = site.check(replica.state.path());
    assert_eq!(held, expected);
}

/// The lease of the webhook test: long enough that a loaded machine does
/// not hand the lead to the standby (whose role the test relies on), short
/// enough that the leader looks at the shared queue often (a third of it).
const WEBHOOK_LEASE_SECONDS: u64 = 6;

/// A door to the fake GitHub of one replica's own: a TCP forwarder that
/// counts the connections made through it, so the test knows which
/// replica called the API.
struct Door {
    url: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Door {
    async fn open(target: &str) -> Door {
        let target = target
            .strip_prefix("http://")
            .expect("the fake serves plain HTTP")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the door");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Door { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A delivery signed with `secret` as GitHub signs it; answers the status
/// and the receiver's JSON answer.
fn deliver(
    replica: &Replica,
    event: &str,
    delivery_id: &str,
    payload: &serde_json::Value,
    secret: &str,
) -> (u16, serde_json::Value) {
    let body = serde_json::to_vec(payload).expect("payload");
    let signature =
        ringmaster::forge::signature::sign(&ringmaster::forge::WebhookSecret::new(secret), &body);
    let (status, answer) = replicas::http(
        replica.address.as_deref().expect("listening"),
        "POST",
        "/webhooks/github",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", delivery_id),
            ("X-Hub-Signature-256", &signature),
        ],
        &body,
    );
    (
        status,
        serde_json::from_str(&answer).unwrap_or(serde_json::Value::String(answer)),
    )
}

/// A leader and a standby on one PostgreSQL, both with the same webhook
/// secret and the same (fake) GitHub, each through a door of its own. A
/// `pull_request` delivery for a PR GitHub knows goes to the standby only:
/// the standby acknowledges and stores it, the leader handles it (reads the
/// PR once, posts `ringmaster/policy` on its head once, marks the delivery
/// processed), and the standby never calls GitHub. The same delivery id
/// again, to either replica, is a duplicate that changes nothing; a forged
/// signature is refused and not stored.
#[test]
fn a_webhook_delivered_to_a_standby_is_processed_once_by_the_leader() {
    use forge_support::{FakeAuth, FakeGitHub, OWNER, REPOSITORY, TOKEN, WEBHOOK_SECRET};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let github = runtime.block_on(FakeGitHub::start(
        OWNER,
        REPOSITORY,
        FakeAuth::Token(TOKEN.into()),
    ));
    let leader_door = runtime.block_on(Door::open(&github.url));
    let standby_door = runtime.block_on(Door::open(&github.url));
    let mut site = Site::new(postgres::fresh_database(), WEBHOOK_LEASE_SECONDS);
    // The poll runs once at start (before the PR exists): from then on only
    // the webhook can make the leader judge the PR.
    site.poll_seconds = 3600;
    let secrets = tempfile::tempdir().expect("secrets");
    let token_file = secrets.path().join("github.token");
    let secret_file = secrets.path().join("webhook.secret");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token");
    std::fs::write(&secret_file, format!("{WEBHOOK_SECRET}\n")).expect("secret");
    let forge = |door: &Door| -> Vec<String> {
        [
            "--github-repository",
            &format!("{OWNER}/{REPOSITORY}"),
            "--github-api-url",
            &door.url,
            "--github-token-file",
            token_file.to_str().expect("UTF-8"),
            "--github-webhook-secret-file",
            secret_file.to_str().expect("UTF-8"),
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
    };
    let pulls = format!("/repos/{OWNER}/{REPOSITORY}/pulls");
    let pull_7 = format!("{pulls}/7");
    let requests_to = |path: &str| {
        github
            .requests()
            .iter()
            .filter(|request| request.method == "GET" && request.path == path)
            .count()
    };

    let mut leader = site.spawn_with("leader", &[], &forge(&leader_door));
    leader.wait_for("ringmaster: leading (epoch 1)");
    site.wait_until("the leader's first poll of open PRs", &[&leader], || {
        requests_to(&pulls) >= 1
    });
    let mut standby = site.spawn_with("standby", &[], &forge(&standby_door));
    site.wait_until("the standby knows it stands by", &[&standby], || {
        standby.healthz()["role"] == "standby"
    });
    assert_eq!(leader.healthz()["role"], "leader");

    // PR 7: its head in the governed repository (as GitHub publishes
    // `refs/pull/7/head`), and open on GitHub.
    let base = site.repo.git(&["rev-parse", "main"]);
    let head = site.repo.git(&[
        "commit-tree",
        "main^{tree}",
        "-p",
        "main",
        "-m",
        "PR 7: nothing changed",
    ]);
    site.repo.git(&["update-ref", "refs/pull/7/head", &head]);
    github.open_pull_request(7, "bokafor", "pr-7", &head, "main", &base);
    let opened = forge_support::pull_request_payload("opened", 7, &head, false);

    // A forged signature: refused, not stored.
    let (status, answer) = deliver(
        &standby,
        "pull_request",
        "forged-1",
        &opened,
        "not the secret",
    );
    assert_eq!(status, 401, "a forged delivery is refused: {answer}");
    assert_eq!(answer["status"], "refused", "{answer}");

    // The delivery, to the standby only: acknowledged and stored.
    let (status, answer) = deliver(
        &standby,
        "pull_request",
        "delivery-7",
        &opened,
        WEBHOOK_SECRET,
    );
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    let stored = site.webhook_deliveries();
    assert_eq!(
        stored
            .iter()
            .map(|(id, _, _)| id.as_str())
            .collect::<Vec<_>>(),
        vec!["delivery-7"],
        "the standby stored the delivery, and nothing of the forged one"
    );

    // The leader handles it: the policy status on the PR head, the delivery
    // marked processed.
    let policy_statuses = || {
        github
            .statuses(&head)
            .into_iter()
            .filter(|status| status["context"] == "ringmaster/policy")
            .count()
    };
    site.wait_until(
        "the leader handles the delivery",
        &[&leader, &standby],
        || policy_statuses() >= 1 && site.webhook_deliveries()[0].1 == 1,
    );
    let handled = site.webhook_deliveries();
    assert!(handled[0].2.is_some(), "processed at a time: {handled:?}");

    // The same delivery again, to the leader and to the standby: duplicates.
    for replica in [&leader, &standby] {
        let (status, answer) = deliver(
            replica,
            "pull_request",
            "delivery-7",
            &opened,
            WEBHOOK_SECRET,
        );
        assert_eq!(
            (status, answer["status"].as_str()),
            (202, Some("duplicate")),
            "{}: {answer}",
            replica.name
        );
    }
    // A later delivery (a push to another branch: nothing to do) to the
    // standby: once the leader marked it processed, the leader has drained
    // the queue after the duplicates; had one been queued, it was handled.
    let push = forge_support::push_payload("refs/heads/feature", &head);
    let (status, answer) = deliver(&standby, "push", "delivery-8", &push, WEBHOOK_SECRET);
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("queued")),
        "{answer}"
    );
    site.wait_until(
        "the leader handles the later delivery",
        &[&leader, &standby],
        || {
            site.webhook_deliveries()
                .iter()
                .all(|(_, processed, _)| *processed == 1)
        },
    );

    let deliveries = site.webhook_deliveries();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    assert_eq!(
        deliveries[0], handled[0],
        "delivery-7 is stored once and marked processed once"
    );
    assert_eq!(requests_to(&pull_7), 1, "the PR was read once");
    assert_eq!(policy_statuses(), 1, "one policy status on the PR head");
    assert_eq!(
        standby_door.connections(),
        0,
        "the standby never called GitHub"
    );
    assert!(leader_door.connections() > 0, "the leader called GitHub");
    let leadership = site.store().leadership().expect("row").expect("led");
    assert_eq!(
        (
            leadership.epoch,
            leadership.holder.ends_with(&format!(":{}", leader.pid()))
        ),
        (1, true),
        "the leader led throughout: {leadership:?}"
    );
    standby.stop();
    leader.stop();
}
