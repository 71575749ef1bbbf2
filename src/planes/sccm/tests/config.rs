//! The Configuration Manager configuration: validation errors and the tagged
//! JSON form.

use super::*;
use crate::planes::{ConnectorConfig, ExecutionPlaneConnector};

#[test]
fn configuration_errors_name_the_field_and_the_fix() {
    let base = || {
        let auth = SccmAuth::EntraClientCredentials {
            token_url: "https://login.microsoftonline.com".into(),
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret_env: Some("RINGMASTER_TEST_UNSET_SCCM_SECRET_VARIABLE".into()),
            client_secret_file: None,
            scope: "api://cmg/.default".into(),
        };
        SccmConfig::new(
            "https://cm01.contoso.com/AdminService",
            auth,
            "\\\\fs01\\packages",
        )
    };
    let check = |change: &dyn Fn(&mut SccmConfig), expected: &str| {
        let mut config = base();
        change(&mut config);
        let error = SccmConnector::new(&config).expect_err(expected).to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    };
    check(
        &|config| config.base_url = "http://cm01.contoso.com/AdminService".into(),
        "plain http",
    );
    check(
        &|config| config.content_location = "C:\\packages".into(),
        "is not a UNC path",
    );
    check(
        &|config| config.page_size = 0,
        "page_size must be above zero",
    );
    check(
        &|_| {},
        "RINGMASTER_TEST_UNSET_SCCM_SECRET_VARIABLE (client_secret_env) is not set",
    );
    check(
        &|config| {
            if let SccmAuth::EntraClientCredentials {
                client_secret_file, ..
            } = &mut config.auth
            {
                *client_secret_file = Some("/nonexistent".into());
            }
        },
        "exactly one of client_secret_env and client_secret_file",
    );
    check(
        &|config| {
            config.auth = SccmAuth::BearerTokenFile {
                path: "/nonexistent/token".into(),
            }
        },
        "cannot read /nonexistent/token",
    );
}

#[tokio::test]
async fn a_tagged_configuration_builds_an_sccm_connector() {
    let site = site().await;
    let SccmAuth::EntraClientCredentials {
        token_url,
        client_secret_file,
        ..
    } = &site.config.auth
    else {
        unreachable!("the test site uses client credentials")
    };
    let json = serde_json::json!({
        "type": "sccm",
        "base_url": site.config.base_url,
        "auth": {
            "type": "entra_client_credentials",
            "token_url": token_url,
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "client_secret_file": client_secret_file,
            "scope": "api://cmg-server-app/.default"
        },
        "content_location": "\\\\fs01\\packages",
        "page_size": 3,
        "request_timeout_seconds": 5
    });
    let config: ConnectorConfig = serde_json::from_value(json).unwrap();
    assert_eq!(config.plane(), Plane::Sccm);
    let connector = config.build().unwrap();
    assert_eq!(connector.kind(), "sccm");
    assert!(!format!("{connector:?}").contains(SECRET));
    connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert!(
        connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
}
