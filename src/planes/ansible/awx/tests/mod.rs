//! The AWX client against its simulator on 127.0.0.1:0; the connector in
//! [`connector`], the pure job history in [`history`].

mod connector;
mod history;

use super::simulator::{AskOnLaunch, AwxSimulator};
use super::*;

const TOKEN: &str = "awx-token-Qm9vcGxlIGJlYXJlcg";

async fn started(page_size: usize) -> (AwxSimulator, AwxClient) {
    let simulator = AwxSimulator::new(TOKEN, page_size);
    simulator.add_template(7, AskOnLaunch::all());
    simulator.add_template(8, AskOnLaunch::default());
    simulator.add_group("ring_canary", &["c-1", "c-2", "c-3"]);
    simulator.add_group("ring_pilot", &["p-1"]);
    let address = simulator.start().await.expect("simulator");
    let client = AwxClient::new(
        &format!("http://{address}"),
        Secret::new(TOKEN),
        Duration::from_secs(5),
    )
    .expect("client");
    (simulator, client)
}

fn launch_request() -> LaunchRequest {
    let mut extra_vars = Map::new();
    extra_vars.insert("corr_id".into(), json_string("7f1c0d2e"));
    extra_vars.insert("pkg".into(), json_string("contoso-agent"));
    extra_vars.insert("version".into(), json_string("1.2.3"));
    LaunchRequest {
        extra_vars,
        limit: "ring_canary".into(),
        job_type: Some(JobType::Run),
        diff_mode: Some(false),
    }
}

fn json_string(text: &str) -> Value {
    Value::String(text.into())
}

#[tokio::test]
async fn launch_polls_to_the_end_and_reads_every_host_summary_page() {
    let (simulator, client) = started(2).await;
    simulator.fail_host("c-2");
    let job_id = client.launch(7, &launch_request()).await.expect("launch");
    let vars = simulator.job_extra_vars(job_id).expect("job");
    assert_eq!(vars.get("corr_id"), Some(&json_string("7f1c0d2e")));
    let job = client
        .wait(job_id, Duration::ZERO, 5)
        .await
        .expect("finished");
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.failed);
    let summaries = client.host_summaries(job_id).await.expect("summaries");
    let hosts: Vec<(&str, u32)> = summaries
        .iter()
        .map(|summary| (summary.host_name.as_str(), summary.failures))
        .collect();
    assert_eq!(hosts, [("c-1", 0), ("c-2", 1), ("c-3", 0)]);
}

#[tokio::test]
async fn ignored_fields_on_launch_are_an_error_naming_them() {
    let (simulator, client) = started(2).await;
    let error = client
        .launch(8, &launch_request())
        .await
        .expect_err("ignored fields");
    assert_eq!(error.code, ErrorCode::InvalidRequest, "{error}");
    for field in ["extra_vars", "limit", "job_type", "diff_mode", "ask_"] {
        assert!(error.message.contains(field), "{field}: {error}");
    }
    assert_eq!(simulator.launches(), 1, "AWX launched the job anyway");
}

#[tokio::test]
async fn a_job_not_finished_within_the_polls_is_a_timeout() {
    let (_simulator, client) = started(2).await;
    let job_id = client.launch(7, &launch_request()).await.expect("launch");
    let error = client
        .wait(job_id, Duration::ZERO, 1)
        .await
        .expect_err("still running");
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    let job = client.wait(job_id, Duration::ZERO, 5).await.expect("later");
    assert_eq!(job.status, JobStatus::Successful);
}

#[tokio::test]
async fn unknown_template_and_bad_token_are_permanent_and_never_show_the_token() {
    let (simulator, client) = started(2).await;
    let error = client
        .launch(99, &launch_request())
        .await
        .expect_err("unknown");
    assert_eq!(error.code, ErrorCode::ResourceNotFound, "{error}");
    let address = client.api.clone();
    let wrong = AwxClient::new(
        &address.replace("/api/v2", ""),
        Secret::new("not-the-token"),
        Duration::from_secs(5),
    )
    .expect("client");
    let error = wrong.launch(7, &launch_request()).await.expect_err("401");
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(!error.to_string().contains("not-the-token"), "{error}");
    assert!(!format!("{client:?}").contains(TOKEN));
    assert!(format!("{client:?}").contains(&address));
    assert_eq!(simulator.launches(), 0);
}
