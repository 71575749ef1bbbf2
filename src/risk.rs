//! The versioned risk rubric: weighted factors → a 0–100 score.
//!
//! The rubric is data ([`RUBRIC_V1`]): each factor has a weight and a table of
//! levels; the weights sum to 100. A factor's normalized value (0–1) times its
//! weight is its contribution; the score is the rounded sum. Output matches
//! the seed's `compute_risk_score`: score, model version, factors, threshold.
//! Pure: takes the snapshot and the intent, reads nothing else.

use crate::model::{DeploymentIntent, Severity, Snapshot};
use serde::{Deserialize, Serialize};

/// One weighted factor of a rubric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorDefinition {
    pub name: &'static str,
    pub weight: f64,
    pub description: &'static str,
}

/// A rubric: a version and its factors (weights sum to 100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rubric {
    pub version: &'static str,
    pub factors: &'static [FactorDefinition],
}

pub const RUBRIC_V1: Rubric = Rubric {
    version: "v1.0",
    factors: &[
        FactorDefinition {
            name: "privilege_impact",
            weight: 20.0,
            description: "privileged app 1.0; security-agent, system-utility or driver 0.5; otherwise 0.1",
        },
        FactorDefinition {
            name: "supply_chain_trust",
            weight: 15.0,
            description: "unsigned 1.0; signed, unverified 0.6; unknown provenance 0.8; vendor/internal build at SLSA 2+ 0.1; otherwise 0.3",
        },
        FactorDefinition {
            name: "vulnerability_exposure",
            weight: 20.0,
            description: "highest CVE severity in the SBOM: none 0, low 0.2, medium 0.4, high 0.8, critical 1.0",
        },
        FactorDefinition {
            name: "blast_radius",
            weight: 20.0,
            description: "devices targeted across the intent's rings (from entitlements): min(1, log10(1 + devices) / 4)",
        },
        FactorDefinition {
            name: "change_magnitude",
            weight: 15.0,
            description: "against the previous version in the repo: new app 0.6, major 1.0, minor 0.5, patch 0.2",
        },
        FactorDefinition {
            name: "rollback_readiness",
            weight: 10.0,
            description: "validated rollback plan 0; plan not validated 0.6; no plan 1.0",
        },
    ],
};

/// The rubrics this build knows, by version.
pub fn rubric(version: &str) -> Option<Rubric> {
    (version == RUBRIC_V1.version).then_some(RUBRIC_V1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Threshold {
    CabRequired,
    AutomatedAllowed,
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Threshold::CabRequired => "CAB_REQUIRED",
            Threshold::AutomatedAllowed => "AUTOMATED_ALLOWED",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    pub name: String,
    pub normalized_value: f64,
    pub weight: f64,
    pub contribution: f64,
    /// What the value was derived from, for the factor table.
    pub basis: String,
}

/// The seed's `compute_risk_score` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAssessment {
    pub risk_score: u32,
    pub risk_model_version: String,
    pub factors: Vec<Factor>,
    pub threshold: Threshold,
}

/// Why a risk score could not be computed (the intent's links are broken,
/// which `links` reports with positions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiskError {
    #[error("risk model version \"{0}\" is unknown; this build knows v1.0")]
    UnknownModel(String),
    #[error("the intent's application, version or artifact does not resolve")]
    Unresolved,
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Scores one intent with the rubric named in the config.
pub fn assess(snapshot: &Snapshot, intent: &DeploymentIntent) -> Result<RiskAssessment, RiskError> {
    let config = snapshot.config.as_ref().ok_or(RiskError::Unresolved)?;
    let rubric = rubric(&config.risk_model_version)
        .ok_or_else(|| RiskError::UnknownModel(config.risk_model_version.clone()))?;
    let application = snapshot
        .applications
        .get(&intent.application_id)
        .ok_or(RiskError::Unresolved)?;
    let artifact = snapshot.artifact_of(intent).ok_or(RiskError::Unresolved)?;

    let privilege = if application.privileged {
        (1.0, "privileged application".to_owned())
    } else if matches!(
        application.category.as_str(),
        "security-agent" | "system-utility" | "driver"
    ) {
        (0.5, format!("category {}", application.category))
    } else {
        (0.1, format!("category {}", application.category))
    };

    let signature = &artifact.signature;
    let provenance = &artifact.provenance;
    let supply_chain = if !signature.signed {
        (1.0, "unsigned".to_owned())
    } else if !signature.verified {
        (0.6, "signed, signature not verified".to_owned())
    } else if provenance.source == "unknown" {
        (0.8, "signed, provenance unknown".to_owned())
    } else if matches!(provenance.source.as_str(), "vendor" | "internal-build")
        && provenance.slsa_level.unwrap_or(0) >= 2
    {
        (
            0.1,
            format!(
                "signed and verified, {} at SLSA {}",
                provenance.source,
                provenance.slsa_level.unwrap_or(0)
            ),
        )
    } else {
        (0.3, format!("signed and verified, {}", provenance.source))
    };

    let worst = artifact
        .sbom
        .cves
        .iter()
        .map(|cve| cve.severity)
        .max()
        .unwrap_or(Severity::None);
    let vulnerability = (
        match worst {
            Severity::None => 0.0,
            Severity::Low => 0.2,
            Severity::Medium => 0.4,
            Severity::High => 0.8,
            Severity::Critical => 1.0,
        },
        format!(
            "{} CVE(s), highest {}",
            artifact.sbom.cves.len(),
            serde_json::to_value(worst)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    );

    let target = &intent.target_scope;
    let devices: u64 = target
        .rings
        .iter()
        .filter_map(|ring| {
            snapshot.entitlement_for(
                artifact.plane,
                ring,
                &target.acquisition_boundary,
                &target.business_unit,
            )
        })
        .map(|rule| u64::from(rule.expected_devices))
        .sum();
    let blast = (
        ((1.0 + devices as f64).log10() / 4.0).min(1.0),
        format!("{devices} devices across {} ring(s)", target.rings.len()),
    );

    let magnitude = change_magnitude(snapshot, intent);

    let rollback = match &intent.rollback_plan {
        Some(plan)
            if plan.validated && (plan.strategy == "halt" || plan.rollback_version.is_some()) =>
        {
            (0.0, format!("validated {}", plan.strategy))
        }
        Some(plan) => (0.6, format!("{} not validated", plan.strategy)),
        None => (1.0, "no rollback plan".to_owned()),
    };

    let values = [
        privilege,
        supply_chain,
        vulnerability,
        blast,
        magnitude,
        rollback,
    ];
    let factors: Vec<Factor> = rubric
        .factors
        .iter()
        .zip(values)
        .map(|(definition, (value, basis))| Factor {
            name: definition.name.to_owned(),
            normalized_value: round2(value),
            weight: definition.weight,
            contribution: round2(value * definition.weight),
            basis,
        })
        .collect();
    let total: f64 = rubric
        .factors
        .iter()
        .zip(&factors)
        .map(|(definition, factor)| definition.weight * factor.normalized_value)
        .sum();
    let risk_score = total.round().clamp(0.0, 100.0) as u32;
    let threshold = if risk_score > config.cab.risk_threshold {
        Threshold::CabRequired
    } else {
        Threshold::AutomatedAllowed
    };
    Ok(RiskAssessment {
        risk_score,
        risk_model_version: rubric.version.to_owned(),
        factors,
        threshold,
    })
}

fn change_magnitude(snapshot: &Snapshot, intent: &DeploymentIntent) -> (f64, String) {
    let Ok(current) = semver::Version::parse(&intent.version) else {
        return (0.6, "version is not semver".to_owned());
    };
    let previous = snapshot
        .versions_of(&intent.application_id)
        .into_iter()
        .filter_map(|v| semver::Version::parse(&v.version).ok())
        .filter(|v| *v < current)
        .max();
    match previous {
        None => (0.6, "first version in the repository".to_owned()),
        Some(previous) if previous.major != current.major => {
            (1.0, format!("major upgrade from {previous}"))
        }
        Some(previous) if previous.minor != current.minor => {
            (0.5, format!("minor upgrade from {previous}"))
        }
        Some(previous) => (0.2, format!("patch upgrade from {previous}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rubric_weights_sum_to_one_hundred() {
        let sum: f64 = RUBRIC_V1.factors.iter().map(|f| f.weight).sum();
        assert_eq!(sum, 100.0);
    }

    #[test]
    fn unknown_rubric_version_is_none() {
        assert!(rubric("v9").is_none());
        assert!(rubric("v1.0").is_some());
    }
}
