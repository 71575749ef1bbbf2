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
                        ring: ring.ring.clone(),
                        started_at: ring.started_at,
                        completed_at: ring.completed_at,
                        observed: ring
                            .observed
                            .as_ref()
                            .and_then(|o| serde_json::to_value(o).ok()),
                        observed_at: ring.observed_at,
                        gate: ring
                            .gate
                            .as_ref()
                            .and_then(|g| serde_json::to_value(g).ok()),
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
