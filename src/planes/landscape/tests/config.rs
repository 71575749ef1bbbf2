//! The configuration: the documented YAML shape, and every check made at
//! start with the error it gives.

use super::super::{LandscapeAuth, LandscapeConfig, LandscapeConfigError, LandscapeConnector};
use super::SECRET_KEY;
use crate::planes::ConnectorConfig;
use std::path::PathBuf;

fn config_in(directory: &std::path::Path) -> LandscapeConfig {
    let secret_file = directory.join("secret");
    std::fs::write(&secret_file, format!("{SECRET_KEY}\n")).expect("secret");
    LandscapeConfig::new(
        "https://landscape.example.com",
        LandscapeAuth::LegacyApi {
            access_key: "3OTS8UWJOH4XBSRMSOYQ".into(),
            secret_key_env: None,
            secret_key_file: Some(secret_file),
        },
        directory.join("journal.sqlite"),
    )
}

fn error_of(config: &LandscapeConfig) -> LandscapeConfigError {
    LandscapeConnector::new(config).expect_err("the configuration is refused")
}

#[test]
fn the_documented_yaml_builds_a_connector() {
    let directory = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "type: landscape\n\
         base_url: https://landscape.example.com\n\
         auth:\n  type: rest_login\n  email: ringmaster@example.com\n  password_file: {}\n  account: contoso\n\
         journal: {}\n\
         page_size: 500\n\
         max_concurrency: 2\n\
         request_timeout_seconds: 12.5\n",
        directory.path().join("password").display(),
        directory.path().join("journal.sqlite").display()
    );
    std::fs::write(directory.path().join("password"), "pw-from-file").expect("password");
    let config: ConnectorConfig = serde_yaml::from_str(&yaml).expect("yaml");
    let ConnectorConfig::Landscape(landscape) = &config else {
        panic!("not a landscape config: {config:?}");
    };
    assert_eq!(landscape.page_size, 500);
    assert_eq!(landscape.request_timeout.as_millis(), 12_500);
    let connector = config.build().expect("connector");
    assert_eq!(connector.kind(), "landscape");
    assert!(directory.path().join("journal.sqlite").exists());
    let printed = format!("{connector:?} {config:?}");
    assert!(!printed.contains("pw-from-file"), "{printed}");
}

#[test]
fn the_debug_print_of_a_connector_holds_no_secret() {
    let directory = tempfile::tempdir().expect("temp dir");
    let connector = LandscapeConnector::new(&config_in(directory.path())).expect("connector");
    let printed = format!("{connector:?}");
    assert!(printed.contains("landscape.example.com"), "{printed}");
    assert!(!printed.contains(SECRET_KEY), "{printed}");
}

#[test]
fn every_check_names_the_field_and_the_fix() {
    let directory = tempfile::tempdir().expect("temp dir");
    let base = config_in(directory.path());
    let mut cases: Vec<(LandscapeConfig, &str)> = Vec::new();

    let mut plain = base.clone();
    plain.base_url = "http://landscape.example.com".into();
    cases.push((plain, "plain http"));
    let mut not_url = base.clone();
    not_url.base_url = "landscape.example.com".into();
    cases.push((not_url, "is not an http(s) URL"));
    let mut no_journal = base.clone();
    no_journal.journal = PathBuf::new();
    cases.push((no_journal, "needs a journal file"));
    let mut bad_journal = base.clone();
    bad_journal.journal = directory.path().join("missing-dir").join("journal.sqlite");
    cases.push((bad_journal, "cannot open the journal"));
    let mut zero_page = base.clone();
    zero_page.page_size = 0;
    cases.push((zero_page, "page_size must be above zero"));
    let mut zero_concurrency = base.clone();
    zero_concurrency.max_concurrency = 0;
    cases.push((zero_concurrency, "max_concurrency must be above zero"));
    let mut zero_timeout = base.clone();
    zero_timeout.request_timeout = std::time::Duration::ZERO;
    cases.push((zero_timeout, "request_timeout_seconds must be above zero"));
    let mut both_sources = base.clone();
    both_sources.auth = LandscapeAuth::LegacyApi {
        access_key: "KEY".into(),
        secret_key_env: Some("LANDSCAPE_TEST_SECRET_SET_NOWHERE".into()),
        secret_key_file: Some(directory.path().join("secret")),
    };
    cases.push((
        both_sources,
        "set exactly one of auth.secret_key_env and auth.secret_key_file",
    ));
    let mut unset_env = base.clone();
    unset_env.auth = LandscapeAuth::LegacyApi {
        access_key: "KEY".into(),
        secret_key_env: Some("LANDSCAPE_TEST_SECRET_SET_NOWHERE".into()),
        secret_key_file: None,
    };
    cases.push((
        unset_env,
        "LANDSCAPE_TEST_SECRET_SET_NOWHERE (auth.secret_key_env) is not set",
    ));
    let mut empty_file = base.clone();
    std::fs::write(directory.path().join("empty"), "  \n").expect("empty");
    empty_file.auth = LandscapeAuth::LegacyApi {
        access_key: "KEY".into(),
        secret_key_env: None,
        secret_key_file: Some(directory.path().join("empty")),
    };
    cases.push((empty_file, "empty"));
    let mut blank_key = base.clone();
    blank_key.auth = LandscapeAuth::LegacyApi {
        access_key: "".into(),
        secret_key_env: None,
        secret_key_file: Some(directory.path().join("secret")),
    };
    cases.push((blank_key, "auth.access_key is empty"));
    let mut bad_email = base.clone();
    bad_email.auth = LandscapeAuth::RestLogin {
        email: "not-an-email".into(),
        password_env: None,
        password_file: Some(directory.path().join("secret")),
        account: None,
    };
    cases.push((bad_email, "auth.email"));
    let mut no_password = base.clone();
    no_password.auth = LandscapeAuth::RestLogin {
        email: "api@example.com".into(),
        password_env: None,
        password_file: None,
        account: None,
    };
    cases.push((
        no_password,
        "set exactly one of auth.password_env and auth.password_file",
    ));

    for (config, expected) in cases {
        let message = error_of(&config).to_string();
        assert!(
            message.starts_with("landscape connector: ") && message.contains(expected),
            "{expected:?} not in {message:?}"
        );
        assert!(!message.contains(SECRET_KEY), "{message}");
    }
}

#[test]
fn loopback_may_use_plain_http() {
    let directory = tempfile::tempdir().expect("temp dir");
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost",
        "http://[::1]:9000/",
    ] {
        let mut config = config_in(directory.path());
        config.base_url = url.into();
        LandscapeConnector::new(&config).unwrap_or_else(|error| panic!("{url}: {error}"));
    }
}

#[test]
fn unknown_fields_are_refused() {
    let yaml = "base_url: https://l.example.com\nauth: {type: legacy_api, access_key: K, secret_key_env: S}\njournal: /tmp/j\nsecret_key: oops\n";
    let error = serde_yaml::from_str::<LandscapeConfig>(yaml).expect_err("unknown field");
    assert!(error.to_string().contains("secret_key"), "{error}");
}
