//! Publishing and remediating on the simulated tenant: content upload order,
//! macOS packages, supersedence, uninstall intents.

use super::*;
use crate::planes::ledger::{DeploymentState, Ledger};
use crate::planes::{ExecutionPlaneConnector, Remediation};

#[tokio::test]
async fn publish_uploads_and_commits_content_before_assigning() {
    let tenant = tenant().await;
    let published = tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    let app = tenant.simulator.app_json(&published.external_id).unwrap();
    assert_eq!(app["@odata.type"], "#microsoft.graph.win32LobApp");
    assert_eq!(app["publishingState"], "published");
    assert_eq!(app["committedContentVersion"], "1");
    assert_eq!(app["setupFilePath"], "VpnClient.msi");
    assert_eq!(
        app["rules"][0]["@odata.type"],
        "#microsoft.graph.win32LobAppProductCodeRule"
    );
    assert!(
        app["notes"]
            .as_str()
            .unwrap()
            .starts_with(&format!("corr:{CORRELATION};pkg:vpn-client@2.1.0;"))
    );
    let assignments = tenant.simulator.assignments(&published.external_id);
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["intent"], "required");
    assert_eq!(assignments[0]["target"]["groupId"], CANARY);
}

#[tokio::test]
async fn the_simulator_refuses_steps_out_of_order() {
    let tenant = tenant().await;
    let http = reqwest::Client::new();
    let base = &tenant.config.base_url;
    let token: serde_json::Value = http
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("grant_type", "client_credentials"),
            ("scope", "x"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_string();
    let post = |path: String, body: serde_json::Value| {
        let request = http
            .post(format!("{base}{path}"))
            .bearer_auth(&bearer)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let app: serde_json::Value = post(
        "/beta/deviceAppManagement/mobileApps".into(),
        serde_json::json!({"@odata.type": "#microsoft.graph.win32LobApp", "displayName": "x", "publisher": "x",
            "fileName": "x.intunewin", "setupFilePath": "x.exe", "installCommandLine": "x", "uninstallCommandLine": "x",
            "installExperience": {}, "rules": [{}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let app_path = format!(
        "/beta/deviceAppManagement/mobileApps/{}",
        app["id"].as_str().unwrap()
    );
    let assign = post(
        format!("{app_path}/assign"),
        serde_json::json!({"mobileAppAssignments": []}),
    )
    .await;
    assert_eq!(
        assign.status(),
        400,
        "no assignment before the content is committed"
    );
    let content = format!("{app_path}/microsoft.graph.win32LobApp/contentVersions");
    post(content.clone(), serde_json::json!({})).await;
    let file: serde_json::Value = post(
        format!("{content}/1/files"),
        serde_json::json!({"name": "x", "size": 1, "sizeEncrypted": 1}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(file["uploadState"], "azureStorageUriRequestPending");
    let info = serde_json::json!({"fileEncryptionInfo": {"encryptionKey": "a", "macKey": "a", "initializationVector": "a",
        "mac": "a", "profileIdentifier": "ProfileVersion1", "fileDigest": "a", "fileDigestAlgorithm": "SHA256"}});
    let commit = post(
        format!("{content}/1/files/{}/commit", file["id"].as_str().unwrap()),
        info,
    )
    .await;
    assert_eq!(
        commit.status(),
        400,
        "no commit before the blocks are uploaded"
    );
    let patch = http
        .patch(format!("{base}{app_path}"))
        .bearer_auth(&bearer)
        .json(&serde_json::json!({"committedContentVersion": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        patch.status(),
        400,
        "no committed version before the file is committed"
    );
    let error: serde_json::Value = patch.json().await.unwrap();
    assert_eq!(error["error"]["code"], "BadRequest");
    assert!(error["error"]["innerError"]["request-id"].is_string());
}

#[tokio::test]
async fn a_pkg_artifact_becomes_a_macos_pkg_app() {
    let tenant = tenant().await;
    let mut mac = request("2.1.0", CORRELATION);
    mac.artifact.file = "VpnClient-2.1.0.pkg".into();
    mac.artifact.detection_type = "bundle_id".into();
    mac.artifact.detection_value = "com.contoso.vpn".into();
    let published = tenant.connector.publish(&mac, at(0)).await.unwrap();
    let app = tenant.simulator.app_json(&published.external_id).unwrap();
    assert_eq!(app["@odata.type"], "#microsoft.graph.macOSPkgApp");
    assert_eq!(app["primaryBundleId"], "com.contoso.vpn");
    assert_eq!(app["includedApps"][0]["bundleVersion"], "2.1.0");
    assert_eq!(app["publishingState"], "published");
    let status = tenant
        .connector
        .query_status(CORRELATION, at(1))
        .await
        .unwrap();
    assert_eq!(status.rings["ring-1"].targeted, 8);
}

#[tokio::test]
async fn a_new_version_supersedes_the_old_until_rolled_back() {
    let tenant = tenant().await;
    let old = tenant
        .connector
        .publish(
            &request("2.0.5", "0b6d3f7a-2c4e-5f81-a9b0-c1d2e3f40516"),
            at(0),
        )
        .await
        .unwrap();
    let mut newer = request("2.1.0", CORRELATION);
    newer.supersedes_version = Some("2.0.5".into());
    let new = tenant.connector.publish(&newer, at(1)).await.unwrap();
    assert_eq!(
        tenant.simulator.superseded_by(&new.external_id),
        std::slice::from_ref(&old.external_id)
    );
    tenant.connector.publish(&newer, at(2)).await.unwrap();
    assert_eq!(
        tenant.simulator.superseded_by(&new.external_id).len(),
        1,
        "set once"
    );

    let rollback = Remediation::Rollback {
        to_version: "2.0.5".into(),
        strategy: None,
    };
    assert!(
        tenant
            .connector
            .remediate(CORRELATION, &rollback, at(3))
            .await
            .unwrap()
            .applied
    );
    assert!(tenant.simulator.superseded_by(&new.external_id).is_empty());
    assert!(
        tenant.simulator.assignments(&new.external_id).is_empty(),
        "the new app is unassigned"
    );
    assert_eq!(
        tenant.simulator.assignments(&old.external_id).len(),
        1,
        "the old app serves the ring"
    );
    let devices = tenant.simulator.group_devices(CANARY);
    tenant.simulator.set_device_status(
        &old.external_id,
        &devices[0],
        &report("installed", "", 0, "2.0.5"),
        at(4),
    );
    let status = tenant
        .connector
        .query_status(CORRELATION, at(5))
        .await
        .unwrap();
    assert_eq!(
        status.rings["ring-1"].installed, 1,
        "counts follow the version rolled back to"
    );
    assert_eq!(status.observed.version.as_deref(), Some("2.0.5"));
}

#[tokio::test]
async fn uninstall_turns_install_assignments_into_uninstall_ones() {
    let tenant = tenant().await;
    let published = tenant
        .connector
        .publish(&request("2.1.0", CORRELATION), at(0))
        .await
        .unwrap();
    let result = tenant
        .connector
        .remediate(CORRELATION, &Remediation::Uninstall, at(1))
        .await
        .unwrap();
    assert!(result.applied, "{}", result.detail);
    let assignments = tenant.simulator.assignments(&published.external_id);
    assert_eq!(assignments.len(), 1);
    assert_eq!(assignments[0]["intent"], "uninstall");
    let notes = tenant.simulator.app_json(&published.external_id).unwrap()["notes"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        Ledger::parse(&notes).unwrap().state,
        DeploymentState::Uninstalled
    );
}
