//! Drift injected behind the connector's back shows up in `observed`, and
//! Redeploy puts the plane back as published.

use super::*;
use crate::planes::sim::Drift;

#[tokio::test]
async fn drift_shows_up_in_observed() {
    let sim = fleet(9);
    sim.set_success_rate("vpn-client", "2.1.0", 1.0).unwrap();
    sim.publish(&request("ring-1-canary", &[CANARY, PILOT]), at(0))
        .await
        .unwrap();
    let settled = at(MAX_DELAY_MINUTES);
    let before = sim
        .query_status(CORRELATION, settled)
        .await
        .unwrap()
        .observed;
    assert_eq!(
        (before.version.as_deref(), before.assigned_devices),
        (Some("2.1.0"), 700)
    );

    sim.inject_drift(
        CORRELATION,
        Drift::AssignmentMissing {
            group: PILOT.into(),
        },
        settled,
    )
    .unwrap();
    let missing = sim
        .query_status(CORRELATION, settled)
        .await
        .unwrap()
        .observed;
    assert_eq!(missing.assigned_groups, vec![CANARY.to_string()]);
    assert_eq!(missing.assigned_devices, 400);

    sim.inject_drift(
        CORRELATION,
        Drift::VersionReverted {
            to_version: "2.0.5".into(),
            devices: 30,
        },
        settled,
    )
    .unwrap();
    let reverted = sim.query_status(CORRELATION, settled).await.unwrap();
    assert_eq!(reverted.observed.installed_versions.get("2.0.5"), Some(&30));
    assert_eq!(
        ring(&reverted, "ring-1-canary").installed,
        370,
        "reverted devices no longer count as installed"
    );

    sim.inject_drift(
        CORRELATION,
        Drift::VersionReverted {
            to_version: "2.0.5".into(),
            devices: 400,
        },
        settled,
    )
    .unwrap();
    let mostly_reverted = sim
        .query_status(CORRELATION, settled)
        .await
        .unwrap()
        .observed;
    assert_eq!(mostly_reverted.version.as_deref(), Some("2.0.5"));

    sim.inject_drift(
        CORRELATION,
        Drift::ScopeWidened {
            extra_group: ROGUE.into(),
        },
        settled,
    )
    .unwrap();
    let widened = sim
        .query_status(CORRELATION, settled)
        .await
        .unwrap()
        .observed;
    assert!(widened.assigned_groups.contains(&ROGUE.to_string()));
    assert_eq!(widened.assigned_devices, 450);

    let redeploy = sim
        .remediate(CORRELATION, &Remediation::Redeploy, settled)
        .await
        .unwrap();
    assert!(redeploy.applied);
    let converged = sim
        .query_status(CORRELATION, at(3 * MAX_DELAY_MINUTES))
        .await
        .unwrap()
        .observed;
    assert_eq!(
        converged.assigned_groups,
        vec![CANARY.to_string(), PILOT.to_string()]
    );
    assert_eq!(converged.assigned_devices, 700);
    assert_eq!(converged.version.as_deref(), Some("2.1.0"));
    assert_eq!(
        converged.installed_versions.get("2.1.0"),
        Some(&750),
        "rogue devices keep what they got"
    );
}

#[tokio::test]
async fn drift_on_an_unknown_deployment_or_group_is_refused() {
    let sim = fleet(9);
    assert!(
        sim.inject_drift(
            "missing",
            Drift::AssignmentMissing {
                group: CANARY.into()
            },
            at(0)
        )
        .is_err()
    );
    sim.publish(&canary(), at(0)).await.unwrap();
    assert!(
        sim.inject_drift(
            CORRELATION,
            Drift::ScopeWidened {
                extra_group: "grp-nope".into()
            },
            at(0)
        )
        .is_err()
    );
    assert!(
        sim.inject_drift(
            CORRELATION,
            Drift::AssignmentMissing {
                group: PILOT.into()
            },
            at(0)
        )
        .is_err()
    );
}
