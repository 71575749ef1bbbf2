//! The evaluator against the embedded descriptions: one line per request, the
//! five mismatches of issue 12 among them.

use super::*;

fn request<'a>(method: &'a str, target: &'a str, body: &'a str) -> Request<'a> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    Request {
        method,
        path,
        query,
        content_type: Some("application/json"),
        body: body.as_bytes(),
    }
}

fn accepted(description: &Description, method: &str, target: &str, body: &str) -> String {
    match description.check_request(&request(method, target, body)) {
        Ok(operation) => operation.id,
        Err(violation) => panic!("{method} {target} refused: {violation}"),
    }
}

fn refused(description: &Description, method: &str, target: &str, body: &str) -> Violation {
    match description.check_request(&request(method, target, body)) {
        Ok(operation) => panic!("{method} {target} accepted as {}", operation.id),
        Err(violation) => violation,
    }
}

#[test]
fn awx_refuses_filtering_on_extra_vars_with_403() {
    let violation = refused(
        awx(),
        "GET",
        "/api/v2/jobs/?job_template__in=11,12,13&order_by=id&extra_vars__icontains=5f0c",
        "",
    );
    assert_eq!(violation.refused_with, Some(403));
    assert_eq!(violation.message, "Filtering on extra_vars is not allowed.");
    let violation = refused(
        awx(),
        "GET",
        "/api/v2/jobs/?not__extra_vars__contains=x",
        "",
    );
    assert_eq!(violation.refused_with, Some(403));
    assert_eq!(
        refused(awx(), "GET", "/api/v2/jobs/?colour=blue", "").refused_with,
        Some(400)
    );
    assert_eq!(
        accepted(
            awx(),
            "GET",
            "/api/v2/jobs/?job_template__in=11,12,13&order_by=id&page_size=2",
            ""
        ),
        "GET /jobs/"
    );
    assert_eq!(
        accepted(
            awx(),
            "GET",
            "/api/v2/inventories/3/groups/?name=fab_eng",
            ""
        ),
        "GET /inventories/{id}/groups/"
    );
}

#[test]
fn awx_launch_body_is_the_launch_serializers() {
    accepted(
        awx(),
        "POST",
        "/api/v2/job_templates/11/launch/",
        r#"{"limit":"a:!b","extra_vars":{"x":1},"job_type":"check","diff_mode":true}"#,
    );
    let violation = refused(
        awx(),
        "POST",
        "/api/v2/job_templates/11/launch/",
        r#"{"job_type":"verify"}"#,
    );
    assert!(violation.message.contains("job_type"), "{violation}");
    let violation = refused(
        awx(),
        "POST",
        "/api/v2/job_templates/11/launch/",
        r#"{"hosts":"a"}"#,
    );
    assert!(violation.message.contains("'hosts'"), "{violation}");
}

#[test]
fn graph_beta_has_no_device_statuses_under_mobile_apps() {
    let violation = refused(
        graph_beta(),
        "GET",
        "/beta/deviceAppManagement/mobileApps/0b6d/deviceStatuses",
        "",
    );
    assert_eq!(violation.refused_with, Some(400));
    assert_eq!(
        accepted(
            graph_v1(),
            "POST",
            "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport",
            r#"{"filter":"(ApplicationId eq 'x')","select":["DeviceId"],"skip":0,"top":50}"#
        ),
        "POST /deviceManagement/reports/retrieveDeviceAppInstallationStatusReport"
    );
}

#[test]
fn graph_select_needs_a_cast_for_a_derived_types_property() {
    let violation = refused(
        graph_beta(),
        "GET",
        "/beta/deviceAppManagement/mobileApps?$select=id,notes,committedContentVersion",
        "",
    );
    assert!(
        violation.message.contains("committedContentVersion"),
        "{violation}"
    );
    accepted(
        graph_beta(),
        "GET",
        "/beta/deviceAppManagement/mobileApps?$select=id,notes,microsoft.graph.mobileLobApp/committedContentVersion",
        "",
    );
    // A cast to a type that does not derive from mobileApp is refused.
    refused(
        graph_beta(),
        "GET",
        "/beta/deviceAppManagement/mobileApps?$select=microsoft.graph.managedDevice/id",
        "",
    );
    accepted(
        graph_beta(),
        "GET",
        "/beta/deviceAppManagement/mobileApps?$filter=isof('microsoft.graph.win32LobApp')%20and%20displayName%20eq%20'A%20B'&$select=id",
        "",
    );
    refused(
        graph_beta(),
        "GET",
        "/beta/deviceAppManagement/mobileApps?$filter=colour%20eq%20'x'",
        "",
    );
}

#[test]
fn graph_bodies_are_closed_and_follow_odata_type() {
    let body = r##"{"@odata.type":"#microsoft.graph.macOSPkgApp","displayName":"A 1","fileName":"a.pkg","displayVersion":"1","primaryBundleId":"com.a","primaryBundleVersion":"1"}"##;
    let violation = refused(
        graph_beta(),
        "POST",
        "/beta/deviceAppManagement/mobileApps",
        body,
    );
    assert!(
        violation
            .message
            .contains("'displayVersion' does not exist on type 'microsoft.graph.macOSPkgApp'"),
        "{violation}"
    );
    let body = r##"{"@odata.type":"#microsoft.graph.win32LobApp","displayName":"A 1","fileName":"a.intunewin","displayVersion":"1","setupFilePath":"a.msi","rules":[{"@odata.type":"#microsoft.graph.win32LobAppProductCodeRule","ruleType":"detection","productCode":"{x}","productVersionOperator":"notConfigured"}]}"##;
    accepted(
        graph_beta(),
        "POST",
        "/beta/deviceAppManagement/mobileApps",
        body,
    );
    let body = r##"{"@odata.type":"#microsoft.graph.win32LobApp","rules":[{"@odata.type":"#microsoft.graph.win32LobAppProductCodeRule","ruleType":"sometimes"}]}"##;
    let violation = refused(
        graph_beta(),
        "POST",
        "/beta/deviceAppManagement/mobileApps",
        body,
    );
    assert!(violation.message.contains("sometimes"), "{violation}");
}

#[test]
fn landscape_calls_are_form_bodies_as_canonicals_client_sends_them() {
    let query = "action=GetComputers&version=2011-08-01&query=tag%3Aa&limit=10&offset=0";
    let violation = refused(landscape(), "POST", &format!("/api/?{query}"), "");
    assert!(violation.message.contains("query string"), "{violation}");
    let form = Request {
        method: "POST",
        path: "/api/",
        query: None,
        content_type: Some("application/x-www-form-urlencoded"),
        body: query.as_bytes(),
    };
    assert_eq!(
        landscape().check_request(&form).map(|op| op.id),
        Ok("POST /api/ GetComputers".to_string())
    );
    let get = Request {
        method: "GET",
        path: "/api/",
        query: Some("action=InstallPackages&version=2011-08-01&query=tag%3Aa&packages.1=vpn"),
        content_type: None,
        body: b"",
    };
    assert!(landscape().check_request(&get).is_ok());
    let missing = Request {
        method: "GET",
        path: "/api/",
        query: Some("action=InstallPackages&version=2011-08-01&packages.1=vpn"),
        content_type: None,
        body: b"",
    };
    assert!(landscape().check_request(&missing).is_err());
    let unlisted = Request {
        method: "GET",
        path: "/api/",
        query: Some("action=InstallPackages&version=2011-08-01&query=x&packages=vpn"),
        content_type: None,
        body: b"",
    };
    assert!(landscape().check_request(&unlisted).is_err());
}

#[test]
fn github_operations_and_webhook_review_user_nullable() {
    assert_eq!(
        accepted(
            github(),
            "GET",
            "/repos/o/r/pulls?state=open&base=main&per_page=100&page=1",
            ""
        ),
        "GET /repos/{owner}/{repo}/pulls"
    );
    let violation = refused(github(), "GET", "/repos/o/r/pulls?state=merged", "");
    assert!(violation.message.contains("merged"), "{violation}");
    accepted(
        github(),
        "POST",
        "/repos/o/r/statuses/abc",
        r#"{"state":"success","context":"ringmaster/policy","description":"ok"}"#,
    );
    refused(
        github(),
        "POST",
        "/repos/o/r/statuses/abc",
        r#"{"state":"green"}"#,
    );
}

#[test]
fn every_embedded_description_parses_and_names_its_source() {
    for description in [github(), graph_beta(), graph_v1(), awx(), landscape()] {
        assert!(!description.version.is_empty(), "{}", description.name);
        assert!(!description.source.is_empty(), "{}", description.name);
        assert!(!description.operations().is_empty(), "{}", description.name);
    }
}
