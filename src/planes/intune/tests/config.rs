//! The Intune configuration: validation errors and the tagged JSON form.

use super::*;
use crate::planes::{ConnectorConfig, ExecutionPlaneConnector};

#[test]
fn configuration_errors_name_the_field_and_the_fix() {
    let base = || {
        let mut config = IntuneConfig::new(TENANT, CLIENT, ContentSource::SimulatorPlaceholder);
        config.client_secret_env = Some("RINGMASTER_TEST_UNSET_INTUNE_SECRET_VARIABLE".into());
        config
    };
    let check = |change: &dyn Fn(&mut IntuneConfig), expected: &str| {
        let mut config = base();
        change(&mut config);
        let error = IntuneConnector::new(&config)
            .expect_err(expected)
            .to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    };
    check(
        &|config| config.tenant_id = String::new(),
        "tenant_id is empty",
    );
    check(&|config| config.client_id = "a b".into(), "client_id");
    check(
        &|config| config.base_url = "http://graph.example.com".into(),
        "plain http",
    );
    check(
        &|config| config.token_url = "ftp://login".into(),
        "token_url \"ftp://login\" is not an http(s) URL",
    );
    check(
        &|config| config.client_secret_file = Some("/nonexistent".into()),
        "exactly one of client_secret_env",
    );
    check(
        &|config| config.max_concurrent_requests = 0,
        "max_concurrent_requests must be above zero",
    );
    check(
        &|config| config.write_budget.requests = 0,
        "write_budget must be above zero",
    );
    check(
        &|_| {},
        "RINGMASTER_TEST_UNSET_INTUNE_SECRET_VARIABLE (client_secret_env) is not set",
    );
    check(
        &|config| {
            config.client_secret_env = None;
            config.client_secret_file = Some("/nonexistent/secret".into());
        },
        "cannot read client_secret_file /nonexistent/secret",
    );
}

#[tokio::test]
async fn a_tagged_configuration_builds_an_intune_connector_without_showing_the_secret() {
    let tenant = tenant().await;
    let json = serde_json::json!({
        "type": "intune",
        "base_url": tenant.config.base_url,
        "token_url": tenant.config.token_url,
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret_file": tenant.config.client_secret_file,
        "content": {"from": "simulator_placeholder"},
        "write_budget": {"requests": 50, "window_seconds": 20},
        "max_concurrent_requests": 2,
        "request_timeout_seconds": 5,
        "upload_poll_interval_seconds": 0
    });
    let config: ConnectorConfig = serde_json::from_value(json).unwrap();
    assert_eq!(config.plane(), Plane::Intune);
    let connector = config.build().unwrap();
    assert_eq!(connector.kind(), "intune");
    assert!(!format!("{connector:?}").contains(SECRET));
    connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert!(
        connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
    let unknown: Result<ConnectorConfig, _> = serde_json::from_value(serde_json::json!({
        "type": "intune", "tenant_id": TENANT, "client_id": CLIENT, "client_secret": "inline", "content": {"from": "simulator_placeholder"}
    }));
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `client_secret`"),
        "secrets are never inline"
    );
}
