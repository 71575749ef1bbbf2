//! The rollout plan: the rings an intent goes through, each with its soak,
//! earliest start and gates, resolved once from the intent and the config.
//!
//! - Rings are the intent's `target_scope.rings`, in the config's rollout order.
//! - Soak: the intent's `schedule[ring].duration_hours`, else the config's
//!   `soak_hours`; a CAB condition `hold_at_ring` + `min_soak_hours` raises it.
//!   A condition with `hold_at_ring` and no hours holds the rollout after that
//!   ring until a human resumes.
//! - Earliest start: the intent's `schedule[ring].start`, when given.
//! - Gates: the config's defaults with the intent's overrides applied.
//! - The CAB ring: the first planned ring at or after `config.cab.from_ring`.
//!
//! The plan is stored inside the run, so a run never needs the config again.

use super::freeze::{FreezeError, freeze_errors};
use crate::model::{
    ApprovalCondition, ChangeFreeze, Config, DeploymentIntent, PromotionGates, RollbackPlan,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Deref;
use std::sync::Arc;

/// Why an intent cannot be planned. Each names the thing and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The intent targets no ring.
    #[error("intent {intent_id}: target_scope.rings is empty; name at least one ring")]
    NoRings { intent_id: String },
    /// The intent names a ring the config does not define.
    #[error("intent {intent_id}: ring {ring:?} is not defined in ringmaster.yaml rings [{known}]")]
    UnknownRing {
        intent_id: String,
        ring: String,
        known: String,
    },
    /// `cab.from_ring` names a ring the config does not define.
    #[error("ringmaster.yaml: cab.from_ring {ring:?} is not one of the rings")]
    UnknownCabRing { ring: String },
    /// A soak duration is negative or not a number.
    #[error("intent {intent_id}: ring {ring:?} has an invalid soak of {hours} hours")]
    InvalidSoak {
        intent_id: String,
        ring: String,
        hours: f64,
    },
    /// A change freeze of the config is unusable.
    #[error(transparent)]
    Freeze(#[from] FreezeError),
}

/// One ring of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRing {
    pub ring: String,
    /// Soak from the intent's schedule or the config, before CAB conditions.
    pub base_soak_hours: f64,
    /// The soak that applies: the base raised by CAB conditions.
    pub soak_hours: f64,
    /// The ring must not start before this (the intent's schedule).
    pub not_before: Option<DateTime<Utc>>,
    /// The same allocation in every ring of the plan, and in every plan
    /// [`PlanShares`] saw with the same gates.
    pub gates: Shared<PromotionGates>,
    /// A CAB condition that holds the rollout after this ring until a human
    /// resumes (its description).
    /// (Boxed text: set on few rings, and 50,000 planned rings held room
    /// for it, issue 17.)
    pub cab_hold: Option<Box<str>>,
}

/// A part of a plan that every run planned under the same config repeats
/// (its rings' gates, the change freezes), held once and shared: 10,000 runs
/// held 50,000 copies of their gates and 10,000 of the freezes (issue 17).
/// Serialized and deserialized as the value itself, so the stored plan is
/// the same; read through `Deref`.
#[derive(Debug, PartialEq)]
pub struct Shared<T>(Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }

    /// Whether both are the one allocation.
    pub fn ptr_eq(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The value to change: this allocation when no other holds it, else a
    /// copy of its own (the others keep the value they share).
    pub fn make_mut(this: &mut Shared<T>) -> &mut T
    where
        T: Clone,
    {
        Arc::make_mut(&mut this.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Shared<T> {
        Shared::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        T::serialize(&self.0, serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Shared::new)
    }
}

/// The plans, gates and freezes the runs of one pass share ([`Shared`]).
/// A value is shared only with one that is the same bit for bit (a float
/// compared by its bits: `-0.0` and `0.0` serialize differently), so every
/// plan serializes exactly as it would on its own.
///
/// Whole plans are shared: the runs of a tenant mostly repeat a handful of
/// plans, and 10,000 runs held 10,000 copies of five planned rings each
/// (issue 17). A plan that differs still shares its gates and freezes.
#[derive(Debug, Default)]
pub struct PlanShares {
    plans: Vec<Shared<RolloutPlan>>,
    gates: Vec<Shared<PromotionGates>>,
    change_freezes: Vec<Shared<Vec<ChangeFreeze>>>,
}

/// Distinct values kept of each (the usual tenant has a handful; intents
/// with gate overrides of their own still share within their plan).
const SHARES_KEPT: usize = 32;

fn same_gates(a: &PromotionGates, b: &PromotionGates) -> bool {
    let PromotionGates {
        success_rate_threshold,
        time_to_compliance_hours,
        max_incidents,
        min_reporting_devices,
        min_reporting_fraction,
        on_incident,
    } = a;
    success_rate_threshold.to_bits() == b.success_rate_threshold.to_bits()
        && time_to_compliance_hours.to_bits() == b.time_to_compliance_hours.to_bits()
        && *max_incidents == b.max_incidents
        && *min_reporting_devices == b.min_reporting_devices
        && min_reporting_fraction.to_bits() == b.min_reporting_fraction.to_bits()
        && *on_incident == b.on_incident
}

fn same_freezes(a: &[ChangeFreeze], b: &[ChangeFreeze]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            let ChangeFreeze {
                name,
                cron,
                duration_hours,
                timezone,
            } = a;
            *name == b.name
                && *cron == b.cron
                && duration_hours.to_bits() == b.duration_hours.to_bits()
                && *timezone == b.timezone
        })
}

/// Whether two plans are the same bit for bit (and so serialize the same).
fn same_plan(a: &RolloutPlan, b: &RolloutPlan) -> bool {
    let RolloutPlan {
        rings,
        cab_ring_index,
        rollback,
        change_freezes,
        site_class,
    } = a;
    rings.len() == b.rings.len()
        && rings
            .iter()
            .zip(&b.rings)
            .all(|(a, b)| same_planned_ring(a, b))
        && *cab_ring_index == b.cab_ring_index
        && *rollback == b.rollback
        && (change_freezes.ptr_eq(&b.change_freezes)
            || same_freezes(change_freezes, &b.change_freezes))
        && *site_class == b.site_class
}

fn same_planned_ring(a: &PlannedRing, b: &PlannedRing) -> bool {
    let PlannedRing {
        ring,
        base_soak_hours,
        soak_hours,
        not_before,
        gates,
        cab_hold,
    } = a;
    *ring == b.ring
        && base_soak_hours.to_bits() == b.base_soak_hours.to_bits()
        && soak_hours.to_bits() == b.soak_hours.to_bits()
        && *not_before == b.not_before
        && (gates.ptr_eq(&b.gates) || same_gates(gates, &b.gates))
        && *cab_hold == b.cab_hold
}

/// The kept value `same` as `value`, else `value`, kept if there is room.
fn share<T>(
    kept: &mut Vec<Shared<T>>,
    value: Shared<T>,
    same: impl Fn(&T, &T) -> bool,
) -> Shared<T> {
    if let Some(known) = kept.iter().find(|known| same(known, &value)) {
        return known.clone();
    }
    if kept.len() < SHARES_KEPT {
        kept.push(value.clone());
    }
    value
}

impl PlanShares {
    fn gates(&mut self, gates: PromotionGates) -> Shared<PromotionGates> {
        share(&mut self.gates, Shared::new(gates), same_gates)
    }

    fn change_freezes(&mut self, freezes: &[ChangeFreeze]) -> Shared<Vec<ChangeFreeze>> {
        let found = self
            .change_freezes
            .iter()
            .find(|known| same_freezes(known, freezes));
        if let Some(known) = found {
            return known.clone();
        }
        share(
            &mut self.change_freezes,
            Shared::new(freezes.to_vec()),
            |a, b| same_freezes(a, b),
        )
    }

    /// `plan` shared with an equal plan seen before, else with its gates and
    /// freezes shared (a plan read back from the store holds its own
    /// copies): the same plan, held once.
    pub fn share(&mut self, plan: &mut Shared<RolloutPlan>) {
        if let Some(known) = self
            .plans
            .iter()
            .find(|known| known.ptr_eq(plan) || same_plan(known, plan))
        {
            *plan = known.clone();
            return;
        }
        let own = Shared::make_mut(plan);
        own.change_freezes = share(
            &mut self.change_freezes,
            own.change_freezes.clone(),
            |a, b| same_freezes(a, b),
        );
        for planned in &mut own.rings {
            planned.gates = share(&mut self.gates, planned.gates.clone(), same_gates);
        }
        if self.plans.len() < SHARES_KEPT {
            self.plans.push(plan.clone());
        }
    }
}

/// Everything a run needs to roll an intent out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// In rollout order.
    pub rings: Vec<PlannedRing>,
    /// Index into `rings` of the first ring that needs CAB approval when the
    /// policy asks for it; `None` when every planned ring is before the CAB ring.
    pub cab_ring_index: Option<usize>,
    /// `None` means no plan: a failing gate halts and alerts.
    pub rollback: Option<RollbackPlan>,
    /// The config's change freezes, already validated (shared by the plans
    /// [`PlanShares`] saw with the same freezes).
    pub change_freezes: Shared<Vec<ChangeFreeze>>,
    /// The intent's `target_scope.site_class`, carried to its ring events
    /// (time to compliance is reported per site class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_class: Option<String>,
}

impl RolloutPlan {
    /// Resolves the plan of `intent` under `config`, with the CAB `conditions`
    /// of its counted approvals (empty before approval).
    pub fn resolve(
        intent: &DeploymentIntent,
        config: &Config,
        conditions: &[ApprovalCondition],
    ) -> Result<RolloutPlan, PlanError> {
        Self::resolve_with(intent, config, conditions, &mut PlanShares::default())
    }

    /// [`resolve`](Self::resolve), shared with an equal plan of `shares`
    /// (else sharing its gates and freezes with theirs).
    pub fn resolve_sharing(
        intent: &DeploymentIntent,
        config: &Config,
        conditions: &[ApprovalCondition],
        shares: &mut PlanShares,
    ) -> Result<Shared<RolloutPlan>, PlanError> {
        let mut plan = Shared::new(Self::resolve_with(intent, config, conditions, shares)?);
        shares.share(&mut plan);
        Ok(plan)
    }

    fn resolve_with(
        intent: &DeploymentIntent,
        config: &Config,
        conditions: &[ApprovalCondition],
        shares: &mut PlanShares,
    ) -> Result<RolloutPlan, PlanError> {
        let intent_id = &intent.intent_id;
        if intent.target_scope.rings.is_empty() {
            return Err(PlanError::NoRings {
                intent_id: intent_id.clone(),
            });
        }
        let cab_config_index =
            config
                .ring_index(&config.cab.from_ring)
                .ok_or_else(|| PlanError::UnknownCabRing {
                    ring: config.cab.from_ring.clone(),
                })?;
        let mut ordered = Vec::new();
        for ring in &intent.target_scope.rings {
            let index = config
                .ring_index(ring)
                .ok_or_else(|| PlanError::UnknownRing {
                    intent_id: intent_id.clone(),
                    ring: ring.clone(),
                    known: config
                        .rings
                        .iter()
                        .map(|defined| defined.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if !ordered.iter().any(|(known, _)| *known == index) {
                ordered.push((index, ring.clone()));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        let gates = shares.gates(intent.promotion_gates.apply(&config.gates));
        // Exactly as many as planned: every run keeps its plan (a `Vec`
        // grown by pushes held room for 8 of the usual 5 rings, issue 17).
        let mut rings = Vec::with_capacity(ordered.len());
        for (config_index, ring) in &ordered {
            let window = intent.schedule.get(ring);
            let base_soak_hours = window
                .map(|window| window.duration_hours)
                .unwrap_or(config.rings[*config_index].soak_hours);
            if !(base_soak_hours.is_finite() && base_soak_hours >= 0.0) {
                return Err(PlanError::InvalidSoak {
                    intent_id: intent_id.clone(),
                    ring: ring.clone(),
                    hours: base_soak_hours,
                });
            }
            rings.push(PlannedRing {
                ring: ring.clone(),
                base_soak_hours,
                soak_hours: base_soak_hours,
                not_before: window.and_then(|window| window.start),
                gates: gates.clone(),
                cab_hold: None,
            });
        }
        if let Some(error) = freeze_errors(&config.change_freezes).into_iter().next() {
            return Err(error.into());
        }
        let cab_ring_index = ordered
            .iter()
            .position(|(config_index, _)| *config_index >= cab_config_index);
        let mut plan = RolloutPlan {
            rings,
            cab_ring_index,
            rollback: intent.rollback_plan.clone(),
            change_freezes: shares.change_freezes(&config.change_freezes),
            site_class: intent.target_scope.site_class.clone(),
        };
        plan.apply_conditions(conditions);
        Ok(plan)
    }

    /// Applies CAB conditions, replacing any applied before: soaks go back to
    /// their base and are raised again. Conditions on rings outside the plan
    /// change nothing.
    pub fn apply_conditions(&mut self, conditions: &[ApprovalCondition]) {
        for planned in &mut self.rings {
            planned.soak_hours = planned.base_soak_hours;
            planned.cab_hold = None;
        }
        for condition in conditions {
            let Some(ring) = &condition.hold_at_ring else {
                continue;
            };
            let Some(planned) = self.rings.iter_mut().find(|planned| &planned.ring == ring) else {
                continue;
            };
            match condition.min_soak_hours {
                Some(hours) if hours.is_finite() => {
                    planned.soak_hours = planned.soak_hours.max(hours);
                }
                _ => planned.cab_hold = Some(condition.description.as_str().into()),
            }
        }
    }

    /// Index of a ring in the plan.
    pub fn index_of(&self, ring: &str) -> Option<usize> {
        self.rings.iter().position(|planned| planned.ring == ring)
    }
}

impl Shared<RolloutPlan> {
    /// [`RolloutPlan::apply_conditions`] on this run's plan: a shared plan
    /// the conditions leave as it is stays shared (every evaluation applies
    /// the conditions again, and mostly they change nothing).
    pub fn set_conditions(&mut self, conditions: &[ApprovalCondition]) {
        let mut changed = RolloutPlan::clone(self);
        changed.apply_conditions(conditions);
        if !same_plan(&changed, self) {
            *self = Shared::new(changed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::testing::{config, intent};

    fn condition(ring: &str, hours: Option<f64>) -> ApprovalCondition {
        ApprovalCondition {
            description: format!("hold at {ring}"),
            hold_at_ring: Some(ring.into()),
            min_soak_hours: hours,
        }
    }

    #[test]
    fn resolves_in_config_order_with_defaults_and_overrides() {
        let mut intent = intent(&["ring-2-pilot", "ring-0-lab", "ring-1-canary"]);
        intent.promotion_gates.success_rate_threshold = Some(0.99);
        intent.schedule.insert(
            "ring-1-canary".into(),
            crate::model::RingWindow {
                start: None,
                duration_hours: 12.0,
            },
        );
        let plan = RolloutPlan::resolve(&intent, &config(), &[]).unwrap();
        let rings: Vec<&str> = plan.rings.iter().map(|r| r.ring.as_str()).collect();
        assert_eq!(rings, ["ring-0-lab", "ring-1-canary", "ring-2-pilot"]);
        assert_eq!(plan.rings[0].soak_hours, 4.0);
        assert_eq!(plan.rings[1].soak_hours, 12.0);
        assert_eq!(plan.rings[2].gates.success_rate_threshold, 0.99);
        assert_eq!(plan.rings[2].gates.min_reporting_devices, 3);
        assert_eq!(plan.cab_ring_index, Some(2));
    }

    #[test]
    fn cab_conditions_extend_soak_or_hold() {
        let intent = intent(&["ring-0-lab", "ring-1-canary", "ring-2-pilot"]);
        let conditions = [
            condition("ring-2-pilot", Some(168.0)),
            condition("ring-1-canary", Some(1.0)), // shorter than the base: no change
            condition("ring-0-lab", None),
            condition("ring-9-moon", Some(500.0)),
        ];
        let mut plan = RolloutPlan::resolve(&intent, &config(), &conditions).unwrap();
        assert_eq!(plan.rings[2].soak_hours, 168.0);
        assert_eq!(plan.rings[1].soak_hours, 24.0);
        assert_eq!(
            plan.rings[0].cab_hold.as_deref(),
            Some("hold at ring-0-lab")
        );
        plan.apply_conditions(&[]);
        assert_eq!(plan.rings[2].soak_hours, 48.0);
        assert_eq!(plan.rings[0].cab_hold, None);
    }

    #[test]
    fn errors_name_the_thing() {
        let config = config();
        let error = RolloutPlan::resolve(&intent(&["ring-7"]), &config, &[]).unwrap_err();
        assert!(error.to_string().contains("ring \"ring-7\" is not defined"));
        let error = RolloutPlan::resolve(&intent(&[]), &config, &[]).unwrap_err();
        assert!(matches!(error, PlanError::NoRings { .. }));
        let mut frozen = config.clone();
        frozen.change_freezes[0].timezone = "Nowhere/Land".into();
        let error = RolloutPlan::resolve(&intent(&["ring-0-lab"]), &frozen, &[]).unwrap_err();
        assert!(matches!(
            error,
            PlanError::Freeze(FreezeError::UnknownTimezone { .. })
        ));
    }

    /// Plans of one pass share their gates and freezes (issue 17) and
    /// serialize as plans resolved alone; only bit-for-bit equal values
    /// are shared.
    #[test]
    fn plans_share_what_they_repeat_and_serialize_as_before() {
        let config = config();
        let rings = ["ring-0-lab", "ring-1-canary", "ring-2-pilot"];
        let mut shares = PlanShares::default();
        let first = RolloutPlan::resolve_sharing(&intent(&rings), &config, &[], &mut shares);
        let second = RolloutPlan::resolve_sharing(&intent(&rings), &config, &[], &mut shares);
        let (first, second) = (first.unwrap(), second.unwrap());
        let alone = RolloutPlan::resolve(&intent(&rings), &config, &[]).unwrap();
        assert!(first.rings[0].gates.ptr_eq(&first.rings[2].gates));
        assert!(first.rings[0].gates.ptr_eq(&second.rings[1].gates));
        assert!(first.change_freezes.ptr_eq(&second.change_freezes));
        assert!(!alone.change_freezes.ptr_eq(&first.change_freezes));
        let text = serde_json::to_string(&alone).unwrap();
        assert_eq!(serde_json::to_string(&first).unwrap(), text);
        assert_eq!(serde_json::to_string(&second).unwrap(), text);
        // The same plan twice is one plan.
        assert!(first.ptr_eq(&second));
        // Read back, it holds its own copies until shared again.
        let mut read: Shared<RolloutPlan> = serde_json::from_str(&text).unwrap();
        assert_eq!(read, first);
        assert!(!read.rings[0].gates.ptr_eq(&read.rings[1].gates));
        shares.share(&mut read);
        assert!(read.ptr_eq(&first));
        assert!(read.rings[0].gates.ptr_eq(&first.rings[0].gates));
        assert!(read.change_freezes.ptr_eq(&first.change_freezes));
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
        // Equal as numbers, not as text: not shared.
        let mut negative = intent(&rings);
        negative.promotion_gates.min_reporting_fraction = Some(-0.0);
        let mut positive = intent(&rings);
        positive.promotion_gates.min_reporting_fraction = Some(0.0);
        let negative = RolloutPlan::resolve_sharing(&negative, &config, &[], &mut shares).unwrap();
        let positive = RolloutPlan::resolve_sharing(&positive, &config, &[], &mut shares).unwrap();
        assert!(!negative.rings[0].gates.ptr_eq(&positive.rings[0].gates));
        assert!(!negative.ptr_eq(&positive));
        assert!(serde_json::to_string(&negative).unwrap().contains("-0.0"));
        assert!(!serde_json::to_string(&positive).unwrap().contains("-0.0"));
    }

    #[test]
    fn only_rings_below_the_cab_ring_means_no_cab_index() {
        let plan = RolloutPlan::resolve(&intent(&["ring-0-lab"]), &config(), &[]).unwrap();
        assert_eq!(plan.cab_ring_index, None);
    }
}
