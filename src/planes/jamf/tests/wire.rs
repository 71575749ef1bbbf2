//! The Classic policy XML against the reference's sample, both ways.

use crate::planes::jamf::wire::{self, Policy, PolicyRole};

/// `../shared/reference/execution-planes.md` section 2.4.
const REFERENCE_SAMPLE: &str = r#"<policy>
  <general>
    <name>Contoso Agent 1.2.3 [canary] corr:7f1c</name>
    <enabled>true</enabled>
    <trigger_checkin>true</trigger_checkin>
    <frequency>Once per computer</frequency>
  </general>
  <scope>
    <all_computers>false</all_computers>
    <computer_groups><computer_group><id>7</id></computer_group></computer_groups>
    <exclusions><computer_groups><computer_group><id>9</id></computer_group></computer_groups></exclusions>
  </scope>
  <package_configuration>
    <packages><package><id>42</id><action>Install</action><fut>false</fut><feu>false</feu></package></packages>
  </package_configuration>
  <maintenance><recon>true</recon></maintenance>
</policy>"#;

#[test]
fn reference_sample_reads_and_matches_what_the_connector_writes() {
    let read: Policy = wire::from_xml(REFERENCE_SAMPLE).expect("sample reads");
    let written = wire::install_policy("Contoso Agent 1.2.3 [canary] corr:7f1c", 42, &[7], &[9]);
    assert_eq!(read, written);
    let xml = wire::to_xml(&written).expect("writes");
    let compact: String = REFERENCE_SAMPLE
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(xml, compact);
    assert_eq!(wire::from_xml::<Policy>(&xml).expect("reads back"), written);
}

#[test]
fn a_server_answer_with_sizes_names_and_other_sections_still_reads() {
    let answer = r#"<?xml version="1.0" encoding="UTF-8"?><policy><general><id>12</id><name>GP 6.2.1 [ring ring-1] corr:abc</name><enabled>true</enabled><trigger>EVENT</trigger><trigger_checkin>true</trigger_checkin><frequency>Once per computer</frequency><category><id>-1</id><name>No category assigned</name></category></general><scope><all_computers>false</all_computers><computers/><computer_groups><size>2</size><computer_group><id>213</id><name>Ring 1</name></computer_group><computer_group><id>214</id><name>Ring 2</name></computer_group></computer_groups><exclusions><computers/><computer_groups><size>0</size></computer_groups></exclusions></scope><self_service><use_for_self_service>false</use_for_self_service></self_service><package_configuration><packages><size>1</size><package><id>42</id><name>GP.pkg</name><action>Install</action><fut>false</fut><feu>false</feu></package></packages></package_configuration><files_processes><run_command/></files_processes><maintenance><recon>true</recon></maintenance></policy>"#;
    let policy: Policy = wire::from_xml(answer).expect("reads");
    assert_eq!(policy.general.id, Some(12));
    assert_eq!(policy.scoped_groups(), vec![213, 214]);
    assert!(policy.excluded_groups().is_empty());
    assert_eq!(policy.installed_package(), Some(42));
    assert_eq!(policy.run_command(), None);
}

#[test]
fn uninstall_policy_runs_the_command_and_installs_nothing() {
    let policy = wire::uninstall_policy(
        "GP 6.2.1 [uninstall] corr:abc",
        "/Applications/GlobalProtect.app/Contents/Resources/uninstall_gp.sh & echo <done>",
        &[213],
        &[87],
    );
    let xml = wire::to_xml(&policy).expect("writes");
    assert!(xml.contains("&lt;done&gt;"), "escaped: {xml}");
    let back: Policy = wire::from_xml(&xml).expect("reads");
    assert_eq!(back, policy);
    assert_eq!(back.installed_package(), None);
    assert!(
        back.run_command()
            .is_some_and(|command| command.ends_with("<done>"))
    );
}

#[test]
fn policy_names_carry_ring_or_uninstall_and_the_correlation_id() {
    let check = |name: &str, expected: Option<PolicyRole>| {
        assert_eq!(wire::policy_role(name, "abc"), expected, "{name}");
    };
    check(
        &wire::ring_policy_name("GP [beta] 6.2.1", "ring-1", "abc"),
        Some(PolicyRole::Ring("ring-1".into())),
    );
    check(
        &wire::uninstall_policy_name("GP 6.2.1", "abc"),
        Some(PolicyRole::Uninstall),
    );
    check("GP 6.2.1 [ring ring-1] corr:abcd", None);
    check("GP 6.2.1 corr:abc", None);
    check("Inventory Update 4", None);
}

#[test]
fn package_info_lines_round_trip() {
    let info = wire::PackageInfo {
        ledger: "corr:abc;pkg:gp@6.2.1;state:active;ring:ring-1=213".into(),
        detection_type: "bundle_id".into(),
        detection_value: "com.paloaltonetworks.GlobalProtect.client".into(),
        version: "6.2.1".into(),
        uninstall: "/bin/sh -c 'a; b: c'".into(),
        live: [
            ("ring-1".to_string(), 1_767_603_600),
            ("ring-2".to_string(), 0),
        ]
        .into(),
    };
    assert_eq!(wire::PackageInfo::parse(&info.render()), info);
    let without = wire::PackageInfo {
        live: Default::default(),
        ..info
    };
    assert!(!without.render().contains("live:"));
    assert_eq!(wire::PackageInfo::parse(&without.render()), without);
}
