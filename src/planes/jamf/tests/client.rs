//! The client against the simulator: the five-connection cap, 409
//! "Duplicate name" taken as "exists", the user bearer token, error texts.

use super::{CORRELATION, at, request, setup};
use crate::planes::jamf::client::{Refusal, error_text, is_duplicate_field, is_duplicate_name};
use crate::planes::jamf::simulator::{JamfSimulator, SimulatorOptions};
use crate::planes::jamf::{JamfAuth, JamfConfig, JamfConnector};
use crate::planes::{ErrorCode, ExecutionPlaneConnector, Secret};
use reqwest::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn twenty_concurrent_calls_never_have_more_than_five_requests_in_flight() {
    let setup = setup(2).await;
    setup.simulator.set_latency(Duration::from_millis(20));
    setup
        .connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("publish");
    let mut tasks = tokio::task::JoinSet::new();
    for minute in 0..20 {
        let connector = setup.connector.clone();
        tasks.spawn(async move { connector.query_status(CORRELATION, at(minute)).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task").expect("status");
    }
    // Each request takes 20 ms on the server, so the twenty calls pile up:
    // the cap, not the timing, keeps the count at five.
    assert_eq!(setup.simulator.max_in_flight(), 5);
    assert_eq!(
        setup.simulator.refused_busy(),
        0,
        "no sixth request was sent"
    );
}

#[tokio::test]
async fn the_simulator_refuses_a_sixth_request_in_flight_with_503() {
    let mut options = SimulatorOptions::new("client", Secret::new("secret-value-1"));
    options.max_connections = 5;
    let simulator = JamfSimulator::new(options);
    let address = simulator.start().await.expect("start");
    // Five requests held by the Slow fault, then a sixth.
    for _ in 0..5 {
        simulator.inject(crate::planes::jamf::simulator::SimulatorFault::Slow);
    }
    let http = reqwest::Client::new();
    let url = format!("http://{address}/api/v1/packages");
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::spawn(http.get(&url).send()));
    }
    simulator.until_in_flight(5).await;
    let answer = http.get(&url).send().await.expect("answer");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(simulator.refused_busy(), 1);
    for task in held {
        task.abort();
    }
}

#[tokio::test]
async fn a_policy_that_exists_answers_409_and_publish_takes_it_as_existing() {
    let setup = setup(100).await;
    let request = request("ring-1", &["213"]);
    let first = setup
        .connector
        .publish(&request, at(0))
        .await
        .expect("first");
    assert!(first.created);
    let policies = setup.simulator.policy_ids(CORRELATION);
    assert_eq!(policies.len(), 1);
    // A second daemon (nothing shared) publishes the same ring.
    let other = JamfConnector::new(&setup.config).expect("second connector");
    let second = other.publish(&request, at(1)).await.expect("second");
    assert!(!second.created, "409 Duplicate name is 'exists'");
    assert_eq!(second.external_id, first.external_id);
    assert_eq!(setup.simulator.policy_ids(CORRELATION), policies);
    assert_eq!(setup.simulator.install_assignment_count(CORRELATION), 1);
}

#[tokio::test]
async fn a_ring_republished_with_another_group_widens_its_policy_once() {
    let setup = setup(100).await;
    setup
        .connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("first");
    let widened = setup
        .connector
        .publish(&request("ring-1", &["213", "214"]), at(1))
        .await
        .expect("widened");
    assert!(widened.created, "a group was added");
    assert_eq!(setup.simulator.install_assignment_count(CORRELATION), 2);
    let replay = setup
        .connector
        .publish(&request("ring-1", &["213", "214"]), at(2))
        .await
        .expect("replay");
    assert!(!replay.created);
}

#[tokio::test]
async fn user_bearer_token_from_basic_auth_works_and_is_refreshed_after_expiry() {
    let secret = "user-password-for-jamf";
    let simulator =
        JamfSimulator::new(SimulatorOptions::new("ringmaster-svc", Secret::new(secret)));
    simulator.add_group("213", "Ring 1", 2);
    simulator.add_group("87", "Excluded", 1);
    let address = simulator.start().await.expect("start");
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("password");
    std::fs::write(&file, secret).expect("write");
    let mut config = JamfConfig::new(
        &format!("http://{address}"),
        JamfAuth::BasicBearer {
            username: "ringmaster-svc".into(),
            password_env: None,
            password_file: Some(file),
        },
    );
    config.request_timeout = Duration::from_secs(2);
    let connector = JamfConnector::new(&config).expect("connector");
    connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("publish with a user token");
    assert_eq!(simulator.token_requests(), 1);
    simulator.expire_tokens();
    connector
        .query_status(CORRELATION, at(1))
        .await
        .expect("status after expiry");
    assert_eq!(simulator.token_requests(), 2, "one refresh");
    simulator.revoke_credentials();
    simulator.expire_tokens();
    let error = connector
        .query_status(CORRELATION, at(2))
        .await
        .expect_err("revoked");
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(!error.message.contains(secret));
}

#[test]
fn error_texts_of_both_apis_are_read() {
    let classic = "<html><body><p style=\"x\"><b>Conflict</b></p>\n<p>Error: Duplicate name</p>\n<p>You can get technical details <a href=\"#\">here</a>.</p></body></html>";
    assert_eq!(error_text(classic), "Error: Duplicate name");
    let refusal = Refusal {
        status: StatusCode::CONFLICT,
        text: classic.into(),
    };
    assert!(is_duplicate_name(&refusal));
    let other = Refusal {
        status: StatusCode::CONFLICT,
        text: "<p>Error: Problem with package 4</p>".into(),
    };
    assert!(!is_duplicate_name(&other));

    let json = r#"{"httpStatus":400,"errors":[{"code":"DUPLICATE_FIELD","field":"packageName","description":"Package name must be unique","id":"0"}]}"#;
    assert_eq!(
        error_text(json),
        "DUPLICATE_FIELD on packageName: Package name must be unique"
    );
    for status in [StatusCode::BAD_REQUEST, StatusCode::CONFLICT] {
        let duplicate = Refusal {
            status,
            text: json.into(),
        };
        assert!(is_duplicate_field(&duplicate, "packageName"));
        assert!(!is_duplicate_field(&duplicate, "fileName"));
    }
    assert_eq!(error_text(""), "no error body");
}

#[tokio::test]
async fn the_load_balancer_cookie_is_sent_back_on_every_later_request() {
    let setup = setup(100).await;
    setup
        .connector
        .publish(&request("ring-1", &["213"]), at(0))
        .await
        .expect("publish");
    // The token request got the cookie; every API request carried it.
    let api_requests = setup.simulator.api_requests();
    assert!(api_requests > 3);
    assert_eq!(setup.simulator.sticky_requests(), api_requests);
}
