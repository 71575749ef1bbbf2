//! Client certificates over real TLS (rustls on both ends): a CA made in
//! the test signs the server's and the service principals' certificates;
//! a certificate from another CA never gets a connection; a certificate of
//! the right CA naming nobody is 403; a bearer token still works on the
//! same listener.

use crate::harness::{ApiOptions, CHROME, Tenant, certificate_name, send, serve};
use crate::issuer::{Issuer, rsa_key};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer as CaIssuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use ringmaster::api::tls::TlsSettings;
use serde_json::json;
use std::path::{Path, PathBuf};

struct Ca {
    pem: String,
    issuer: CaIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("key");
    let certificate = params.self_signed(&key).expect("CA");
    Ca {
        pem: certificate.pem(),
        issuer: CaIssuer::new(params, key),
    }
}

/// A leaf (PEM certificate, PEM key) for `names`, for a server or a client.
fn leaf(ca: &Ca, common_name: &str, names: &[&str], client: bool) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    if !client {
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    }
    let key = KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, &ca.issuer).expect("leaf");
    (certificate.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

struct Setup {
    tenant: Tenant,
    _dir: tempfile::TempDir,
    ca: Ca,
    api: crate::harness::Api,
    issuer: Issuer,
    key: crate::issuer::SigningKey,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ca("Contoso API clients CA");
    let (server_cert, server_key) = leaf(&ca, "ringmaster.test", &["localhost"], false);
    let tls = TlsSettings {
        certificate: write(dir.path(), "server.pem", &server_cert),
        key: write(dir.path(), "server.key", &server_key),
        client_ca: Some(write(dir.path(), "ca.pem", &ca.pem)),
        client_crls: Vec::new(),
        require_client_certificate: false,
    };
    let key = rsa_key("tls-key");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let mut options = ApiOptions::for_issuer(&issuer);
    options.tls = Some(tls);
    let api = serve(&tenant, options).await;
    Setup {
        tenant,
        _dir: dir,
        ca,
        api,
        issuer,
        key,
    }
}

fn client(trust: &Ca, identity: Option<(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(trust.pem.as_bytes()).expect("ca"));
    if let Some((cert, key)) = identity {
        builder = builder.identity(
            reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).expect("identity"),
        );
    }
    builder.build().expect("client")
}

const HOLD: &str = "/api/v1/intents/chrome-131-finance/hold";

#[tokio::test]
async fn a_service_principal_certificate_from_the_ca_authenticates_and_is_authorised() {
    let setup = setup().await;
    // heidi is endpoint-ops: may hold Chrome.
    let identity = leaf(
        &setup.ca,
        "heidi-automation",
        &[&certificate_name("heidi")],
        true,
    );
    let http = client(&setup.ca, Some(identity));
    let before = setup.tenant.footprint();
    let answer = send(
        &http,
        reqwest::Method::POST,
        &setup.api.url(HOLD),
        None,
        Some(json!({"reason": "pipeline: canary alarms"})),
    )
    .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(
        setup.tenant.footprint().operator_requests,
        before.operator_requests + 1
    );
    let store = setup.tenant.store();
    let request = store
        .pending_operator_requests()
        .expect("requests")
        .pop()
        .expect("queued");
    assert_eq!(request.actor, "heidi");
    let origin = request.origin.expect("origin");
    assert_eq!(origin["authentication"], "client_certificate");
    assert_eq!(origin["subject"], certificate_name("heidi"));
    assert_eq!(origin["role"], "control-plane.endpoint-ops");
    // The auditor's certificate reads but may not hold.
    let auditor = client(
        &setup.ca,
        Some(leaf(&setup.ca, "audit", &[&certificate_name("ivan")], true)),
    );
    let read = send(
        &auditor,
        reqwest::Method::GET,
        &setup.api.url(&format!("/api/v1/intents/{CHROME}")),
        None,
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    let write = send(
        &auditor,
        reqwest::Method::POST,
        &setup.api.url(HOLD),
        None,
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(write.status, 403);
}

#[tokio::test]
async fn a_certificate_from_another_ca_gets_no_connection_and_changes_nothing() {
    let setup = setup().await;
    let rogue = ca("Rogue CA");
    let identity = leaf(&rogue, "olivia", &[&certificate_name("olivia")], true);
    let http = client(&setup.ca, Some(identity));
    let before = setup.tenant.footprint();
    let result = http
        .post(setup.api.url(HOLD))
        .json(&json!({"reason": "rogue"}))
        .send()
        .await;
    assert!(result.is_err(), "the handshake must fail: {result:?}");
    assert_eq!(setup.tenant.footprint(), before);
}

#[tokio::test]
async fn a_certificate_of_the_ca_naming_no_principal_is_403() {
    let setup = setup().await;
    let identity = leaf(&setup.ca, "mallory", &["mallory.svc.contoso.test"], true);
    let http = client(&setup.ca, Some(identity));
    let before = setup.tenant.footprint();
    let answer = send(
        &http,
        reqwest::Method::POST,
        &setup.api.url(HOLD),
        None,
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("certificate_subjects")
    );
    assert_eq!(setup.tenant.footprint(), before);
}

#[tokio::test]
async fn without_a_certificate_a_bearer_token_works_on_the_tls_listener_and_nothing_is_401() {
    let setup = setup().await;
    let http = client(&setup.ca, None);
    let anonymous = send(
        &http,
        reqwest::Method::GET,
        &setup.api.url("/api/v1/intents"),
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let token = setup.issuer.token(&setup.key, &crate::harness::oid("ivan"));
    let answer = send(
        &http,
        reqwest::Method::GET,
        &setup.api.url("/api/v1/intents"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}
