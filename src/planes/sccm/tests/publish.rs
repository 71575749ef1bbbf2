//! What publish and remediation build on the simulated site, and paging by
//! `$top`/`$skip` without next links.

use super::*;
use crate::planes::{ErrorCode, ExecutionPlaneConnector, Remediation};

#[tokio::test]
async fn publish_builds_the_application_a_ring_collection_and_a_required_deployment() {
    let site = site().await;
    let published = site
        .connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    let ci: i64 = published.external_id.parse().unwrap();
    let xml = site.simulator.application_xml(ci).unwrap();
    assert!(
        xml.contains("<Title ResourceId=\"Res_Title\">Contoso R&amp;D Agent 4.2.0</Title>"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<Description ResourceId=\"Res_Description\">corr:{CORRELATION};pkg:rd-agent@4.2.0</Description>")));
    assert!(xml.contains("<Arg Name=\"InstallCommandLine\" Type=\"String\">msiexec /i &quot;RdAgent-4.2.0.msi&quot; /qn</Arg>"));
    assert!(xml.contains("<UninstallAction>") && xml.contains("<Provider>MSI</Provider>"));
    assert!(xml.contains("<Location>\\\\fs01\\packages\\rd-agent\\4.2.0\\</Location>"));

    let deployment = install_deployment(&site, CORRELATION);
    for (field, value) in [
        ("DesiredConfigType", 1),
        ("OfferTypeID", 0),
        ("AssignmentAction", 2),
        ("AssignmentType", 2),
        ("Priority", 1),
    ] {
        assert_eq!(deployment[field], value, "{field}");
    }
    assert_eq!(
        deployment["AssignmentDescription"],
        format!("corr:{CORRELATION};ring:ring-1;install")
    );
    assert_eq!(
        deployment["StartTime"], "2026-01-05T09:00:00Z",
        "the caller's clock, not the wall clock"
    );
    let ring_collection = deployment["TargetCollectionID"].as_str().unwrap();
    let (collection, rules) = site.simulator.collection(ring_collection).unwrap();
    assert_eq!(
        collection["Name"],
        format!("ringmaster {CORRELATION} ring-1")
    );
    assert_eq!(collection["LimitToCollectionID"], "SMS00001");
    assert!(
        collection["Comment"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "corr:{CORRELATION};pkg:rd-agent@4.2.0;state:active;ring:ring-1={CANARY}"
            ))
    );
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["IncludeCollectionID"], CANARY);
    assert_eq!(rules[1]["ExcludeCollectionID"], KIOSKS);
}

#[tokio::test]
async fn uninstall_swaps_the_install_deployment_for_an_uninstall_one() {
    let site = site().await;
    let published = site
        .connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert!(
        site.connector
            .remediate(CORRELATION, &Remediation::Uninstall, at(1))
            .await
            .unwrap()
            .applied
    );
    let deployments = site
        .simulator
        .assignments(published.external_id.parse().unwrap());
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        deployments[0]["DesiredConfigType"], 2,
        "NOT_ALLOWED: uninstall"
    );
    assert_eq!(deployments[0]["OfferTypeID"], 0);
    let status = site
        .connector
        .query_status(CORRELATION, at(2))
        .await
        .unwrap();
    assert_eq!(
        status.rings["ring-1"].targeted, 0,
        "nothing installs any more"
    );
}

#[tokio::test]
async fn rollback_deploys_the_previous_application_and_uninstalls_this_one() {
    let site = site().await;
    let previous = site
        .connector
        .publish(
            &request("4.1.0", "0b6d3f7a-2c4e-5f81-a9b0-c1d2e3f40516"),
            at(0),
        )
        .await
        .unwrap();
    let current = site
        .connector
        .publish(&request("4.2.0", CORRELATION), at(1))
        .await
        .unwrap();
    let rollback = Remediation::Rollback {
        to_version: "4.1.0".into(),
        strategy: None,
    };
    assert!(
        site.connector
            .remediate(CORRELATION, &rollback, at(2))
            .await
            .unwrap()
            .applied
    );
    let current_deployments = site
        .simulator
        .assignments(current.external_id.parse().unwrap());
    assert_eq!(current_deployments.len(), 1);
    assert_eq!(current_deployments[0]["DesiredConfigType"], 2);
    let previous_deployments = site
        .simulator
        .assignments(previous.external_id.parse().unwrap());
    let rolled = previous_deployments
        .iter()
        .find(|deployment| {
            deployment["AssignmentDescription"]
                == format!("corr:{CORRELATION};ring:ring-1;rollback")
        })
        .expect("the previous version deployed for this deployment");
    assert_eq!(rolled["DesiredConfigType"], 1);
    let members = site
        .simulator
        .members(rolled["TargetCollectionID"].as_str().unwrap());
    site.simulator.set_enforcement_state(
        rolled["AssignmentID"].as_i64().unwrap(),
        members[0],
        10,
        at(3),
    );
    let status = site
        .connector
        .query_status(CORRELATION, at(4))
        .await
        .unwrap();
    assert_eq!(
        status.rings["ring-1"].installed, 1,
        "counts follow the version rolled back to"
    );
    assert_eq!(status.observed.version.as_deref(), Some("4.1.0"));
    let missing = site
        .connector
        .remediate(
            CORRELATION,
            &Remediation::Rollback {
                to_version: "3.0.0".into(),
                strategy: None,
            },
            at(5),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::ResourceNotFound, "{missing}");
}

#[tokio::test]
async fn skip_top_paging_without_next_links_is_followed_to_the_end() {
    let site = site_with(Paging::SkipTop, |_, _| {}).await;
    site.simulator.add_unrelated_apps(10);
    let first = site
        .connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    site.simulator.add_unrelated_apps(4);
    let restarted = SccmConnector::new(&site.config).unwrap();
    let replay = restarted
        .publish(&request("4.2.0", CORRELATION), at(1))
        .await
        .unwrap();
    assert!(!replay.created);
    assert_eq!(replay.external_id, first.external_id);
    site.simulator.report(CORRELATION, 7, 1, at(2));
    let status = restarted.query_status(CORRELATION, at(3)).await.unwrap();
    let ring = &status.rings["ring-1"];
    assert_eq!(
        (ring.targeted, ring.installed, ring.failed),
        (8, 7, 1),
        "{ring:?}"
    );
}

#[tokio::test]
async fn a_token_file_is_read_again_after_a_401() {
    let site = site_with(Paging::NextLink, |config, directory| {
        let path = directory.join("bearer");
        std::fs::write(&path, "first-bearer-token-value").unwrap();
        config.auth = SccmAuth::BearerTokenFile { path };
    })
    .await;
    site.simulator.install_token("first-bearer-token-value");
    site.connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    site.simulator.expire_tokens();
    let SccmAuth::BearerTokenFile { path } = &site.config.auth else {
        unreachable!("set above")
    };
    std::fs::write(path, "second-bearer-token-value\n").unwrap();
    site.simulator.install_token("second-bearer-token-value");
    assert!(
        site.connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
    site.simulator.expire_tokens();
    let refused = site
        .connector
        .verify_idempotency(CORRELATION, at(2))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidCredentials, "{refused}");
    assert!(!refused.to_string().contains("second-bearer-token-value"));
}

#[tokio::test]
async fn a_remembered_application_is_checked_against_the_site() {
    let site = site().await;
    let published = site
        .connector
        .publish(&request("4.2.0", CORRELATION), at(0))
        .await
        .unwrap();
    assert!(
        site.connector
            .verify_idempotency(CORRELATION, at(1))
            .await
            .unwrap()
    );
    assert!(
        site.simulator
            .delete_application(published.external_id.parse().unwrap())
    );
    assert!(
        !site
            .connector
            .verify_idempotency(CORRELATION, at(2))
            .await
            .unwrap(),
        "a deleted application is gone, whatever the connector remembers"
    );
}
