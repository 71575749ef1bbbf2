//! The shapes `/api/v1` answers with for intents and their rollouts, shared
//! with `ringmaster status` so the local and the remote table are the same.

use crate::daemon::rollout::IntentState;
use crate::store::IntentRecord;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One ring of a rollout, with its gate figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RingView {
    pub ring: String,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// What the plane reported: targeted, installed, failed, pending, ...
    #[schema(value_type = Option<Object>)]
    pub observed: Option<Value>,
    pub observed_at: Option<DateTime<Utc>>,
    /// The latest gate judgement: verdict, success_rate and the figures behind it.
    #[schema(value_type = Option<Object>)]
    pub gate: Option<Value>,
}

/// An intent with its decision, risk and rollout state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntentView {
    pub intent_id: String,
    /// Stable for the intent's life; what the planes and events carry.
    pub correlation_id: String,
    pub application_id: String,
    pub version: String,
    pub acquisition_boundary: String,
    pub business_unit: String,
    /// The execution plane the intent's rollout goes through, once known.
    pub plane: Option<String>,
    /// `live`, or `simulated` for a `type: sim` plane (nothing is installed).
    pub plane_mode: Option<String>,
    /// `ALLOW`, `DENY`, `REQUIRE_APPROVAL`, `REQUIRE_EXCEPTION`, once judged.
    pub decision: Option<String>,
    pub risk_score: Option<u8>,
    /// The rollout phase's name (`ring_in_progress`, `held`, ...).
    pub state: String,
    /// The phase with its fields (ring, reason, who held it, ...).
    #[schema(value_type = Option<Object>)]
    pub phase: Option<Value>,
    pub rings: Vec<RingView>,
    pub updated_at: DateTime<Utc>,
}

impl IntentView {
    pub fn of(record: &IntentRecord) -> IntentView {
        let state = IntentState::from_record(record);
        let rings = state
            .run
            .as_ref()
            .map(|run| {
                run.rings
                    .iter()
                    .map(|ring| RingView {
                        ring: ring.ring.to_string(),
                        started_at: ring.started_at(),
                        completed_at: ring.completed_at(),
                        observed: ring.observed().and_then(|o| serde_json::to_value(o).ok()),
                        observed_at: ring.observed_at(),
                        gate: ring.gate().and_then(|g| serde_json::to_value(g).ok()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        IntentView {
            intent_id: record.intent_id.clone(),
            correlation_id: record.correlation_id.clone(),
            application_id: record.application_id.clone(),
            version: record.version.clone(),
            acquisition_boundary: record.acquisition_boundary.clone(),
            business_unit: record.business_unit.clone(),
            plane: state.plane.as_ref().map(|facts| facts.plane.clone()),
            plane_mode: state
                .plane
                .as_ref()
                .map(|facts| facts.mode.as_str().to_owned()),
            decision: record.decision.clone(),
            risk_score: record.risk_score,
            state: state
                .run
                .as_ref()
                .map(|run| run.phase.name().to_owned())
                .unwrap_or_else(|| record.state.clone()),
            phase: state
                .run
                .as_ref()
                .and_then(|run| serde_json::to_value(&run.phase).ok()),
            rings,
            updated_at: record.updated_at,
        }
    }

    /// Whether the rollout has not left its first ring (nothing after the
    /// first ring has started): the staging ring, where packaging may act.
    pub fn in_staging(&self) -> bool {
        self.rings
            .iter()
            .skip(1)
            .all(|ring| ring.started_at.is_none())
    }
}

/// The rules one tracked branch is judged by, as the daemon recorded them
/// (`rules_in_force` in the store): never recomputed from a working tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RulesInForceView {
    pub branch: String,
    /// The first commit the daemon judged on the branch (authorised by definition).
    pub root_commit: String,
    /// The commit whose config, principals and policies are in force.
    pub rules_commit: String,
    /// The change to the rules that is not in force (commit, paths, reason),
    /// while there is one: a `governance_change_unauthorised`.
    #[schema(value_type = Option<Object>)]
    pub unauthorised: Option<Value>,
    /// The commit the decisions in the store were last judged at.
    pub judged_commit: String,
    /// When the decisions must be judged again (the earliest expiry).
    pub rejudge_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl RulesInForceView {
    pub fn of(state: &crate::store::RulesState) -> RulesInForceView {
        RulesInForceView {
            branch: state.branch.clone(),
            root_commit: state.root_commit.clone(),
            rules_commit: state.rules_commit.clone(),
            unauthorised: state.unauthorised.clone(),
            judged_commit: state.judged_commit.clone(),
            rejudge_at: state.rejudge_at,
            updated_at: state.updated_at,
        }
    }
}
