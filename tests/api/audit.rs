//! What auditors ask of the API: every read of an evidence pack or its
//! signature is recorded (who, with which role, from where, with which
//! client, under which request id), and `/api/v1/rules` is the rules in
//! force the daemon recorded — an unauthorised change to `principals/` is
//! reported there and lets no one in.

use crate::harness::{ApiOptions, CHROME, Tenant, git, oid, serve};
use crate::issuer::{Issuer, rsa_key};
use ringmaster::store::{EventFilter, EventType};

#[tokio::test(flavor = "multi_thread")]
async fn each_evidence_read_through_the_api_is_an_event_and_a_siem_line_with_the_caller() {
    let key = rsa_key("audit");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let auditor = issuer.token(&key, &oid("ivan"));
    let list = api.get("/api/v1/evidence?limit=1000", Some(&auditor)).await;
    assert_eq!(list.status, 200);
    let sequence = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["intent_id"] == CHROME)
        .and_then(|item| item["sequence"].as_u64())
        .expect("a chrome record");
    // Listing is not reading a pack: nothing recorded yet.
    let before = tenant.footprint();
    for (file, request_id) in [("", "audit-read-0001"), ("/signature", "audit-read-0002")] {
        let response = api
            .http
            .get(api.url(&format!("/api/v1/evidence/{sequence}{file}")))
            .bearer_auth(&auditor)
            .header("x-request-id", request_id)
            .header("user-agent", "audit-tool/2.3")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 200);
    }
    let after = tenant.footprint();
    assert_eq!(after.events, before.events + 2);
    assert_eq!(after.siem_lines, before.siem_lines + 2);
    let store = tenant.store();
    for (file, request_id) in [
        ("pack", "audit-read-0001"),
        ("signature", "audit-read-0002"),
    ] {
        let events = store
            .events(&EventFilter {
                correlation_id: Some(request_id.into()),
                ..EventFilter::default()
            })
            .expect("events");
        assert_eq!(events.len(), 1, "{events:#?}");
        let event = &events[0];
        assert_eq!(event.event_type, EventType::EvidenceExported);
        assert_eq!(event.intent_id.as_deref(), Some(CHROME));
        assert_eq!(event.actor, "ivan");
        assert_eq!(event.actor_role, "control-plane.auditor");
        assert_eq!(event.details["via"], "api");
        assert_eq!(event.details["file"], file);
        assert_eq!(event.details["sequence"], sequence);
        assert_eq!(event.details["origin"]["source_address"], "127.0.0.1");
        assert_eq!(event.details["origin"]["user_agent"], "audit-tool/2.3");
        assert_eq!(event.details["origin"]["authentication"], "oidc");
        assert_eq!(event.details["origin"]["request_id"], request_id);
    }
    let siem = tenant.siem_lines();
    assert!(siem.iter().any(|line| line["type"] == "evidence_read"
        && line["actor"] == "ivan"
        && line["request_id"] == "audit-read-0001"
        && line["user_agent"] == "audit-tool/2.3"));
    // A refused read records nothing and gives nothing.
    let publisher = issuer.token(&key, &oid("alice"));
    let refused = api
        .get(&format!("/api/v1/evidence/{sequence}"), Some(&publisher))
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body["reason"].is_string());
    let fabrikam = issuer.token(&key, &oid("frank"));
    let refused = api
        .get(&format!("/api/v1/evidence/{sequence}"), Some(&fabrikam))
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(tenant.footprint(), after);
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_are_those_in_force_and_an_unauthorised_principal_change_lets_no_one_in() {
    let key = rsa_key("rules");
    let issuer = Issuer::start(&[&key]).await;
    let tenant = Tenant::new();
    let api = serve(&tenant, ApiOptions::for_issuer(&issuer)).await;
    let auditor = issuer.token(&key, &oid("ivan"));
    let in_force = tenant
        .store()
        .rules_state("main")
        .expect("store")
        .expect("the daemon recorded the rules in force");
    let rules = api.get("/api/v1/rules", Some(&auditor)).await;
    assert_eq!(rules.status, 200, "{:?}", rules.body);
    assert_eq!(rules.body["commit"], in_force.rules_commit);
    assert_eq!(rules.body["in_force"][0]["branch"], "main");
    assert_eq!(
        rules.body["in_force"][0]["root_commit"],
        in_force.root_commit
    );
    assert!(rules.body["in_force"][0]["unauthorised"].is_null());
    assert!(
        rules.body["unauthorised_changes"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    // Someone with push access makes the auditor an admin and adds a
    // principal of their own, with no admin's review or signature.
    let governed = tenant.governed();
    let ivan = governed.join("principals/ivan.yaml");
    let text = std::fs::read_to_string(&ivan).expect("ivan");
    std::fs::write(&ivan, text.replace("  - auditor\n", "  - admin\n")).expect("write");
    std::fs::write(
        governed.join("principals/mallory.yaml"),
        "apiVersion: ringmaster.dev/v1\nkind: Principal\nid: mallory\nname: Mallory\n\
         email: mallory@contoso.com\nroles:\n  - admin\nscope:\n  acquisition_boundaries: [\"*\"]\n  \
         business_units: [\"*\"]\noidc_subjects: [oid-mallory]\n",
    )
    .expect("write mallory");
    git(&governed, &["add", "-A"]);
    git(
        &governed,
        &["commit", "-q", "-m", "principals: a quiet promotion"],
    );
    let head = git(&governed, &["rev-parse", "HEAD"]);
    let mut daemon = tenant.daemon();
    daemon.step(tenant.now).await.expect("step");
    drop(daemon);
    let recorded = tenant
        .store()
        .rules_state("main")
        .expect("store")
        .expect("rules");
    assert!(recorded.unauthorised.is_some(), "{recorded:?}");
    assert_eq!(recorded.rules_commit, in_force.rules_commit);

    let rules = api.get("/api/v1/rules", Some(&auditor)).await;
    assert_eq!(rules.status, 200, "{:?}", rules.body);
    // The rules in force did not move; the records did.
    assert_eq!(rules.body["commit"], in_force.rules_commit);
    assert_eq!(rules.body["records_commit"], head);
    let unauthorised = &rules.body["in_force"][0]["unauthorised"];
    assert_eq!(unauthorised["commit"], head, "{unauthorised}");
    let paths = unauthorised["paths"].to_string();
    assert!(paths.contains("principals/ivan.yaml"), "{paths}");
    assert!(paths.contains("principals/mallory.yaml"), "{paths}");
    assert!(
        rules.body["unauthorised_changes"]
            .as_array()
            .expect("list")
            .iter()
            .any(|event| event["event_type"] == "governance_change_unauthorised"),
        "{:?}",
        rules.body["unauthorised_changes"]
    );
    // The principals shown are those in force: ivan is still an auditor.
    let shown_ivan = rules.body["principals"]
        .as_array()
        .expect("principals")
        .iter()
        .find(|p| p["id"] == "ivan")
        .expect("ivan")
        .clone();
    assert_eq!(shown_ivan["roles"], serde_json::json!(["auditor"]));

    // Mallory is no one; ivan cannot act as the admin the change made him.
    let before = tenant.footprint();
    let mallory = issuer.token(&key, "oid-mallory");
    let refused = api.get("/api/v1/intents", Some(&mallory)).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(
        refused.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no principal")),
        "{:?}",
        refused.body
    );
    let refused = api
        .post(
            &format!("/api/v1/intents/{CHROME}/hold"),
            Some(&auditor),
            serde_json::json!({"reason": "I am an admin now"}),
        )
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(tenant.footprint(), before);
}
