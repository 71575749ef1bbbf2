//! The pure job history: host patterns, the deployment the jobs record, and
//! host states as of `now`.

use super::super::history::{
    Action, Evidence, HostState, Launch, TaggedJob, deployment, hosts_of_limit, limit_of,
};
use super::super::{HostSummary, JobStatus};
use crate::planes::ansible::deployment::DeploymentState;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;

fn inventory() -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([
        (
            "canary".to_string(),
            vec!["c1".into(), "c2".into(), "k1".into()],
        ),
        ("pilot".to_string(), vec!["p1".into(), "c2".into()]),
        ("kiosks".to_string(), vec!["k1".into()]),
    ])
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

#[test]
fn host_patterns_resolve_like_ansible_limits() {
    let check = |limit: &str, expected: &[&str]| {
        let hosts: Vec<String> = hosts_of_limit(limit, &inventory()).into_iter().collect();
        assert_eq!(hosts, expected, "{limit}");
    };
    check("canary", &["c1", "c2", "k1"]);
    check("canary:!kiosks", &["c1", "c2"]);
    check("canary:pilot:!kiosks", &["c1", "c2", "p1"]);
    check("pilot:!canary", &["p1"]);
    check("c1:p1", &["c1", "p1"]);
    check("c1,p1", &["c1", "p1"]);
    check("", &[]);
    assert_eq!(
        limit_of(&["canary".into(), "pilot".into()], &["kiosks".into()]),
        "canary:pilot:!kiosks"
    );
}

fn job(id: u64, action: Action, ring: &str, version: &str, limit: &str) -> TaggedJob {
    TaggedJob {
        id,
        status: JobStatus::Pending,
        finished: None,
        limit: limit.into(),
        launch: Launch {
            correlation_id: "corr".into(),
            application_id: "vpn".into(),
            version: version.into(),
            action,
            ring: ring.into(),
            groups: limit
                .split(':')
                .filter(|term| !term.starts_with('!'))
                .map(str::to_string)
                .collect(),
            exclusions: vec!["kiosks".into()],
        },
    }
}

fn finished(mut job: TaggedJob, minutes: i64) -> TaggedJob {
    job.status = JobStatus::Failed;
    job.finished = Some(at(minutes));
    job
}

fn row(host: &str, failures: u32, dark: u32, changed: u32) -> HostSummary {
    HostSummary {
        host_name: host.into(),
        ok: 1,
        changed,
        failures,
        dark,
        skipped: 0,
        failed: failures + dark > 0,
    }
}

#[test]
fn the_jobs_record_rings_in_order_and_what_remediation_did() {
    let jobs = vec![
        job(1, Action::Publish, "r1", "2.1", "canary:!kiosks"),
        job(2, Action::Publish, "r2", "2.1", "pilot:!kiosks"),
        job(3, Action::Verify, "", "2.1", "canary:pilot:!kiosks"),
        job(4, Action::Pin, "r1", "2.1", "pilot:!canary:!kiosks"),
    ];
    let recorded = deployment("corr", &jobs).expect("published");
    let rings: Vec<(&str, &[String])> = recorded
        .rings
        .iter()
        .map(|ring| (ring.ring.as_str(), ring.groups.as_slice()))
        .collect();
    assert_eq!(
        rings,
        [
            ("r1", &["canary".to_string()][..]),
            ("r2", &["pilot".to_string()][..])
        ]
    );
    assert_eq!(
        recorded.state,
        DeploymentState::Pinned { ring: "r1".into() }
    );
    assert_eq!(recorded.assigned_groups(), ["canary"]);
    let mut more = jobs.clone();
    more.push(job(5, Action::Rollback, "", "2.0", "canary:!kiosks"));
    let rolled = deployment("corr", &more).expect("published");
    assert_eq!(rolled.delivered_version(), "2.0");
    more.push(job(6, Action::Uninstall, "", "2.0", "canary:pilot:!kiosks"));
    assert_eq!(
        deployment("corr", &more).expect("published").state,
        DeploymentState::Uninstalled
    );
    assert_eq!(deployment("corr", &jobs[2..3]), None, "no publish job");
}

#[test]
fn host_states_follow_the_last_job_as_of_now() {
    let publish = finished(job(1, Action::Publish, "r1", "2.1", "canary:!kiosks"), 30);
    let redeploy = job(2, Action::Redeploy, "", "2.1", "c2");
    let results = BTreeMap::from([(1, vec![row("c1", 0, 0, 1), row("c2", 1, 0, 0)])]);
    let inventory = inventory();
    let jobs = vec![publish.clone()];
    let nothing = BTreeMap::new();
    let before = Evidence::new(&jobs, &nothing, &inventory, at(10));
    assert_eq!(
        before.state_of("c1", "2.1"),
        HostState::InFlight,
        "finished after now"
    );
    let after = Evidence::new(&jobs, &results, &inventory, at(40));
    assert_eq!(after.state_of("c1", "2.1"), HostState::Installed);
    assert_eq!(
        after.state_of("c2", "2.1"),
        HostState::Failed("task_failed".into())
    );
    assert_eq!(
        after.state_of("k1", "2.1"),
        HostState::NotReported,
        "excluded"
    );
    let status = after.status(&deployment("corr", &jobs).expect("published"));
    let ring = &status.rings["r1"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.failed, ring.pending),
        (2, 1, 1, 0)
    );
    assert_eq!(ring.first_install_at, Some(at(30)));
    let with_repair = vec![publish, redeploy];
    let repairing = Evidence::new(&with_repair, &results, &inventory, at(40));
    assert_eq!(repairing.state_of("c2", "2.1"), HostState::InFlight);
    assert!(repairing.in_flight("c2") && !repairing.in_flight("c1"));
}

#[test]
fn unreachable_hosts_and_errored_jobs_fail_with_their_reason() {
    let mut errored = finished(job(2, Action::Publish, "r2", "2.1", "pilot:!kiosks"), 5);
    errored.status = JobStatus::Error;
    let jobs = vec![
        finished(job(1, Action::Publish, "r1", "2.1", "canary:!kiosks"), 5),
        errored,
    ];
    let results = BTreeMap::from([(1, vec![row("c1", 0, 1, 0)]), (2, Vec::new())]);
    let inventory = inventory();
    let evidence = Evidence::new(&jobs, &results, &inventory, at(10));
    assert_eq!(
        evidence.state_of("c1", "2.1"),
        HostState::Failed("unreachable".into())
    );
    assert_eq!(
        evidence.state_of("p1", "2.1"),
        HostState::Failed("job_error".into())
    );
}
