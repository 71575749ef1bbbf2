//! The Graph client: the write budget, `Retry-After`, token refresh limits,
//! message hygiene, and the ledger kept in `notes`.

use super::*;
use crate::planes::http::{describe, parse_retry_after};
use crate::planes::intune::budget::{ClientBudget, RequestBudget, SlidingWindow};
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ErrorCode, ExecutionPlaneConnector};

#[tokio::test]
async fn the_write_budget_refuses_before_graph_sees_the_request() {
    let tenant = tenant_with(|config| {
        config.write_budget = RequestBudget {
            requests: 2,
            window_seconds: Duration::from_secs(20),
        };
    })
    .await;
    let error = tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::RateLimit, "{error}");
    let wait = error.retry_after.expect("the wait");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    assert!(
        error.message.contains("write budget of 2 requests per 20s"),
        "{error}"
    );
}

#[test]
fn a_sliding_window_frees_its_oldest_slot_after_the_window() {
    let window = SlidingWindow::new(RequestBudget {
        requests: 2,
        window_seconds: Duration::from_secs(20),
    });
    let start = tokio::time::Instant::now();
    assert!(window.try_take(start).is_ok());
    assert!(window.try_take(start + Duration::from_secs(5)).is_ok());
    assert_eq!(
        window.try_take(start + Duration::from_secs(6)),
        Err(Duration::from_secs(14))
    );
    assert!(
        window.try_take(start + Duration::from_secs(20)).is_ok(),
        "the first slot is free again"
    );
    let budget = ClientBudget::new(
        RequestBudget {
            requests: 1,
            window_seconds: Duration::from_secs(20),
        },
        RequestBudget::intune_all(),
    );
    assert!(budget.admit(true, "POST x").is_ok());
    assert!(
        budget.admit(false, "GET x").is_ok(),
        "reads do not spend the write budget"
    );
    let wait = budget
        .admit(true, "POST y")
        .unwrap_err()
        .retry_after
        .unwrap();
    assert!(
        wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
}

#[tokio::test]
async fn refused_credentials_cost_one_token_request_and_are_permanent() {
    let tenant = tenant().await;
    tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    let tokens = tenant.simulator.token_requests();
    tenant.simulator.expire_tokens();
    tenant.simulator.revoke_credentials();
    let error = tenant
        .connector
        .query_status(CORRELATION, at(1))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidCredentials, "{error}");
    assert!(
        error.message.contains(CLIENT) && !error.message.contains(SECRET),
        "{error}"
    );
    assert_eq!(tenant.simulator.token_requests(), tokens + 1);
}

#[test]
fn retry_after_is_read_as_seconds_fractions_or_an_http_date() {
    assert_eq!(
        parse_retry_after("2.128"),
        Some(Duration::from_millis(2128))
    );
    assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO),
        "a past date"
    );
    let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
    let wait = parse_retry_after(&later).unwrap();
    assert!(
        wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
    assert_eq!(parse_retry_after("soon"), None);
    assert_eq!(parse_retry_after("-1"), None);
}

#[test]
fn descriptions_drop_hosts_and_queries() {
    assert_eq!(
        describe("http://127.0.0.1:9/blob/f1?sv=1&sig=SECRET"),
        "/blob/f1"
    );
    assert_eq!(
        describe("/beta/deviceAppManagement/mobileApps?$filter=x"),
        "/beta/deviceAppManagement/mobileApps"
    );
}

#[test]
fn the_ledger_round_trips_through_notes() {
    let mut ledger = Ledger::new(CORRELATION, "vpn-client", "2.1.0");
    ledger.record_ring("ring-1", &["g1".into()], &["x1".into()]);
    ledger.record_ring("ring-2", &["g2".into(), "g3".into()], &[]);
    ledger.record_ring("ring-1", &["g1".into(), "g4".into()], &["x1".into()]);
    ledger.pinned_ring = Some("ring-1".into());
    ledger.state = DeploymentState::RolledBack {
        to_version: "2.0.5".into(),
    };
    let notes = ledger.render();
    assert_eq!(
        notes,
        format!(
            "corr:{CORRELATION};pkg:vpn-client@2.1.0;state:rolledback=2.0.5;ring:ring-1=g1,g4;ring:ring-2=g2,g3;excl:x1;pin:ring-1"
        )
    );
    assert_eq!(Ledger::parse(&notes), Some(ledger.clone()));
    assert_eq!(ledger.allowed_groups(), ["g1", "g4"]);
    assert!(!ledger.ring_allowed("ring-2") && !ledger.ring_allowed("ring-3"));
    assert_eq!(Ledger::parse("owner:team-3"), None, "not a ringmaster app");
}

#[tokio::test]
async fn a_remembered_app_is_checked_against_the_plane() {
    let tenant = tenant().await;
    let published = tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert!(
        tenant
            .connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
    assert!(tenant.simulator.delete_app(&published.external_id));
    assert!(
        !tenant
            .connector
            .verify_idempotency(CORRELATION, at(2))
            .await
            .unwrap(),
        "a deleted app is gone, whatever the connector remembers"
    );
    let again = tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(3))
        .await
        .unwrap();
    assert!(again.created && again.external_id != published.external_id);
}
