//! Configuration: the YAML shape, and one clear error per mistake.

use crate::planes::jamf::{JamfAuth, JamfConfig, JamfConfigError, JamfConnector};
use crate::planes::{ConnectorConfig, ConnectorConfigError};
use std::path::PathBuf;
use std::time::Duration;

fn client_credentials(env: Option<&str>, file: Option<PathBuf>) -> JamfAuth {
    JamfAuth::ClientCredentials {
        client_id: "3f1c2a4b".into(),
        client_secret_env: env.map(str::to_string),
        client_secret_file: file,
    }
}

/// `PATH` is set on every machine the tests run on: a stand-in secret.
fn valid() -> JamfConfig {
    JamfConfig::new(
        "https://contoso.jamfcloud.com",
        client_credentials(Some("PATH"), None),
    )
}

fn error_of(config: &JamfConfig) -> JamfConfigError {
    JamfConnector::new(config).expect_err("invalid configuration")
}

#[test]
fn yaml_config_reads_with_defaults_and_builds_through_connector_config() {
    let yaml = r#"
type: jamf
base_url: https://contoso.jamfcloud.com
auth:
  type: client_credentials
  client_id: 3f1c2a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b
  client_secret_env: PATH
"#;
    let config: ConnectorConfig = serde_yaml::from_str(yaml).expect("yaml");
    let ConnectorConfig::Jamf(jamf) = &config else {
        panic!("not a jamf config: {config:?}");
    };
    assert_eq!(jamf.page_size, 100);
    assert_eq!(jamf.max_connections, 5);
    assert_eq!(jamf.request_timeout, Duration::from_secs(30));
    let connector = config.build().expect("builds");
    assert_eq!(connector.kind(), "jamf");
    assert_eq!(connector.plane(), crate::model::Plane::Jamf);
    let debug = format!("{connector:?}");
    assert!(
        !debug.contains(&std::env::var("PATH").unwrap_or_default()),
        "{debug}"
    );
}

#[test]
fn inline_secrets_are_refused_by_the_schema() {
    let yaml = r#"
type: jamf
base_url: https://contoso.jamfcloud.com
auth: {type: client_credentials, client_id: abc, client_secret: hunter22}
"#;
    let error = serde_yaml::from_str::<ConnectorConfig>(yaml).expect_err("inline secret");
    assert!(error.to_string().contains("client_secret"), "{error}");
}

#[test]
fn each_mistake_has_its_own_error() {
    let mut plain = valid();
    plain.base_url = "http://jamf.contoso.com".into();
    assert!(matches!(
        error_of(&plain),
        JamfConfigError::PlainHttp { .. }
    ));

    let mut not_url = valid();
    not_url.base_url = "contoso.jamfcloud.com".into();
    assert!(matches!(error_of(&not_url), JamfConfigError::BadUrl { .. }));

    let mut too_many = valid();
    too_many.max_connections = 6;
    let error = error_of(&too_many);
    assert!(matches!(
        error,
        JamfConfigError::TooManyConnections { value: 6 }
    ));
    assert!(error.to_string().contains("no more than 5"), "{error}");

    let mut zero = valid();
    zero.max_connections = 0;
    assert!(matches!(
        error_of(&zero),
        JamfConfigError::NotPositive {
            field: "max_connections"
        }
    ));

    let mut no_pages = valid();
    no_pages.page_size = 0;
    assert!(matches!(
        error_of(&no_pages),
        JamfConfigError::NotPositive { field: "page_size" }
    ));

    let mut huge_pages = valid();
    huge_pages.page_size = 5000;
    assert!(matches!(
        error_of(&huge_pages),
        JamfConfigError::PageTooLarge { .. }
    ));

    let mut no_timeout = valid();
    no_timeout.request_timeout = Duration::ZERO;
    assert!(matches!(
        error_of(&no_timeout),
        JamfConfigError::NotPositive { .. }
    ));

    let mut both = valid();
    both.auth = client_credentials(Some("PATH"), Some("/etc/hostname".into()));
    assert!(matches!(
        error_of(&both),
        JamfConfigError::SecretSource { .. }
    ));

    let mut neither = valid();
    neither.auth = client_credentials(None, None);
    assert!(matches!(
        error_of(&neither),
        JamfConfigError::SecretSource { .. }
    ));

    let mut unset = valid();
    unset.auth = client_credentials(Some("RINGMASTER_JAMF_SURELY_UNSET_VARIABLE"), None);
    let error = error_of(&unset);
    assert!(
        error
            .to_string()
            .contains("RINGMASTER_JAMF_SURELY_UNSET_VARIABLE"),
        "{error}"
    );

    let mut missing_file = valid();
    missing_file.auth = client_credentials(None, Some("/nonexistent/jamf-secret".into()));
    assert!(matches!(
        error_of(&missing_file),
        JamfConfigError::SecretFile { .. }
    ));

    let directory = tempfile::tempdir().expect("temp dir");
    let empty = directory.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let mut empty_file = valid();
    empty_file.auth = client_credentials(None, Some(empty));
    assert!(matches!(
        error_of(&empty_file),
        JamfConfigError::EmptySecretFile { .. }
    ));

    let mut bad_client = valid();
    bad_client.auth = JamfAuth::ClientCredentials {
        client_id: "has space".into(),
        client_secret_env: Some("PATH".into()),
        client_secret_file: None,
    };
    assert!(matches!(
        error_of(&bad_client),
        JamfConfigError::BadIdentifier { .. }
    ));

    let through_enum = ConnectorConfig::Jamf(too_many)
        .build()
        .expect_err("refused");
    assert!(matches!(through_enum, ConnectorConfigError::Jamf(_)));
}

#[test]
fn basic_bearer_reads_its_password_from_a_file_and_loopback_http_is_allowed() {
    let directory = tempfile::tempdir().expect("temp dir");
    let file = directory.path().join("password");
    std::fs::write(&file, "p4ssw0rd-for-jamf\n").expect("write");
    let config = JamfConfig::new(
        "http://127.0.0.1:9/",
        JamfAuth::BasicBearer {
            username: "ringmaster-svc".into(),
            password_env: None,
            password_file: Some(file),
        },
    );
    let connector = JamfConnector::new(&config).expect("builds");
    assert!(!format!("{connector:?} {config:?}").contains("p4ssw0rd"));
}
