//! `pacing`: gate checks paced to what a plane's call budget can serve, and
//! shared fairly between rollouts (issue 17). Pure: the clock is passed in.
//!
//! Without it, every active rollout asks for its gate status at every tick;
//! when the plane's budget cannot serve them all, the ones asked first in a
//! step take the budget and the rest are refused — step after step, the same
//! ones. With it, the pacing works from what the rollouts cost **now**:
//!
//! - **live demand**: every rollout that asks for a gate check is known with
//!   the ring it is in and what a check of it costs — the requests its last
//!   answered check in that ring spent (learned), or, before one, an
//!   estimate from the devices of the rings it has started
//!   (`plan::ring_gate_calls`). A rollout that stops asking (finished,
//!   halted) leaves the demand after one step. The demand is the requests
//!   one check of every active rollout costs; it is never the intents'
//!   largest rings (that is `plan`'s worst case, said in advance);
//! - **serve the schedule when the budget can**: when the demand fits the
//!   requests per hour the budget leaves gate status at the wanted interval,
//!   every rollout is due at every step, exactly as without pacing;
//! - **share it fairly when it cannot**: each step gets the budget's share
//!   for the time since the previous step (an allowance, in requests; a
//!   step that spent more than its share leaves the debt to the next, a
//!   step that spent less keeps nothing), and the allowance goes to the
//!   rollouts waiting longest (never checked first of all, then by the
//!   oldest answer), each at its own cost, in that order, until it is spent.
//!   A rollout held back in one step is among the first in the next, so no
//!   rollout waits much longer than the effective interval and none is
//!   starved; a check the allowance cannot cover waits, the one after it is
//!   not served first.
//!
//! The effective interval ([`PlanePacing::live`]) is the wanted one times the
//! steps a check of every active rollout takes at the budget's rate: the
//! longest a rollout waits between two checks at the current demand.

use super::GateInterval;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The weight of the newest check in the moving average of requests per check.
const COST_WEIGHT: f64 = 0.2;

/// What the pacing knows of one active rollout.
///
/// One map entry per rollout holds all of it, the step's grant and whether
/// the step considered it included, and its ring names are shared with
/// every other rollout in the same ring (issue 17: at 10,000 rollouts the
/// rollouts' map, a map of the step's grants and a set of the rollouts
/// considered each held their own copy of every id, and every rollout its
/// own copies of its ring's name).
#[derive(Debug, Clone)]
struct Rollout {
    /// The ring its gate check is for, as last asked.
    ring: Arc<str>,
    /// Estimated requests of a check in that ring, if known.
    estimate: Option<f64>,
    /// The ring and the requests its last answered check there spent.
    measured: Option<(Arc<str>, f64)>,
    /// When its gate status was last answered.
    answered: Option<DateTime<Utc>>,
    /// Since when it waits for an answer: its first ask after the last one.
    waiting_since: Option<DateTime<Utc>>,
    /// The step it last asked in.
    asked: DateTime<Utc>,
    /// Granted a check this step, with the requests charged.
    granted: Option<f64>,
    /// The step's grant considered it (a rollout that asks first after it
    /// is new, and never checked: served from what is left).
    considered: bool,
}

impl Rollout {
    fn new(ring: Arc<str>, now: DateTime<Utc>) -> Rollout {
        Rollout {
            ring,
            estimate: None,
            measured: None,
            answered: None,
            waiting_since: None,
            asked: now,
            granted: None,
            considered: false,
        }
    }

    /// What a check of it costs now: what its last check in the same ring
    /// spent; in a later ring, at least the estimate of that ring; never
    /// checked, the estimate (or `plane_cost`, the plane's average, or 1).
    fn cost(&self, plane_cost: Option<f64>) -> f64 {
        match (&self.measured, self.estimate) {
            (Some((ring, spent)), _) if *ring == self.ring => *spent,
            (Some((_, spent)), Some(estimate)) => spent.max(estimate),
            (Some((_, spent)), None) => *spent,
            (None, Some(estimate)) => estimate,
            (None, None) => plane_cost.unwrap_or(1.0),
        }
    }
}

/// One plane's gate-check pacing.
#[derive(Debug, Clone)]
pub struct PlanePacing {
    /// The interval the schedule asks for (the daemon's poll, a gate's).
    wanted: Duration,
    /// Requests per hour the budget leaves gate status (its class share, at
    /// the rate the budget admits now).
    available_per_hour: f64,
    /// Requests one gate check costs on this plane, on average (`None`
    /// before the first answer): the estimate of a rollout nothing else is
    /// known of.
    cost: Option<f64>,
    rollouts: BTreeMap<Box<str>, Rollout>,
    /// The names of the rings rollouts ask for, one copy each.
    rings: BTreeSet<Arc<str>>,
    /// The current step's clock and the previous step's.
    step: Option<DateTime<Utc>>,
    previous_step: Option<DateTime<Utc>>,
    /// Whether this step paces (the demand exceeds what the budget serves
    /// at the wanted interval).
    pacing: bool,
    /// Requests this step may still grant (negative: owed by an earlier one).
    allowance: f64,
    /// The most the next step's burst may spend: what the budget's window
    /// admits for status at its start (`None`: no limit beyond the rate).
    burst: Option<f64>,
    /// The demand as the step knows it: at its start, plus each rollout new
    /// in it (so a step's asks cost O(1) each, not a pass over all).
    step_demand: f64,
    /// The rollouts granted a check this step (each holds what it was
    /// charged).
    granted: usize,
    /// Rollouts forgotten in this step after its grant considered them:
    /// asking again in the step, they are not new.
    forgotten: BTreeSet<Box<str>>,
    /// The longest time between two answered checks of one rollout, and
    /// the checks answered (what the fleet benchmark reports).
    longest_wait: Duration,
    answered: u64,
}

impl PlanePacing {
    pub fn new(wanted: Duration, available_per_hour: f64) -> PlanePacing {
        PlanePacing {
            wanted,
            available_per_hour: available_per_hour.max(1.0),
            cost: None,
            rollouts: BTreeMap::new(),
            rings: BTreeSet::new(),
            step: None,
            previous_step: None,
            pacing: false,
            allowance: 0.0,
            burst: None,
            step_demand: 0.0,
            granted: 0,
            forgotten: BTreeSet::new(),
            longest_wait: Duration::ZERO,
            answered: 0,
        }
    }

    /// The schedule's interval, when it changes (a new poll interval).
    pub fn set_wanted(&mut self, wanted: Duration) {
        self.wanted = wanted;
    }

    /// Requests per hour the budget leaves gate status now (the daemon sets
    /// it each step from the connector's budget, after adaptive back-off).
    pub fn set_available(&mut self, per_hour: f64) {
        self.available_per_hour = per_hour.max(1.0);
    }

    /// The most the next step's checks may spend at once: what the budget's
    /// window admits for status at its start (the daemon sets it each step).
    pub fn set_burst(&mut self, burst: Option<f64>) {
        self.burst = burst;
    }

    /// Requests per hour the budget leaves gate status.
    pub fn available_per_hour(&self) -> f64 {
        self.available_per_hour
    }

    /// The interval the schedule asks for.
    pub fn wanted(&self) -> Duration {
        self.wanted
    }

    /// Requests one gate check costs on this plane, on average so far.
    pub fn cost(&self) -> Option<f64> {
        self.cost
    }

    /// Rollouts asking for gate checks now (asked in this step or the last).
    pub fn active(&self) -> usize {
        self.rollouts.len()
    }

    /// What a check of `rollout` costs now ([`Rollout::cost`]).
    fn cost_of(&self, rollout: &Rollout) -> f64 {
        rollout.cost(self.cost)
    }

    /// Adds `rollout`, in `ring`, unless it is known.
    fn add(&mut self, rollout: &str, ring: &Arc<str>, now: DateTime<Utc>) {
        if self.rollouts.contains_key(rollout) {
            return;
        }
        let mut entry = Rollout::new(ring.clone(), now);
        // Forgotten after the step's grant considered it: not new.
        entry.considered = self.forgotten.remove(rollout);
        self.rollouts.insert(rollout.into(), entry);
    }

    /// The shared name of `ring`.
    fn ring(&mut self, ring: &str) -> Arc<str> {
        if let Some(shared) = self.rings.get(ring) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(ring);
        self.rings.insert(shared.clone());
        shared
    }

    /// Requests one gate check of every active rollout costs now.
    pub fn demand(&self) -> f64 {
        self.rollouts
            .values()
            .map(|rollout| self.cost_of(rollout))
            .sum()
    }

    /// The plane's gate-check interval at the live demand, against the
    /// budget's rate now: what the status page and the metric show.
    pub fn live(&self, plane: &str) -> GateInterval {
        GateInterval::from_rates(
            plane,
            self.wanted,
            self.demand().ceil() as u64,
            self.available_per_hour.floor() as u64,
        )
    }

    /// The effective gate-check interval at the live demand.
    pub fn effective(&self) -> Duration {
        Duration::from_secs(self.live("").effective_seconds)
    }

    /// Whether the current step paces (its budget cannot serve the demand
    /// at the wanted interval).
    pub fn pacing(&self) -> bool {
        self.pacing
    }

    /// A new step at `now` (nothing when the step is already begun): forgets
    /// the rollouts that did not ask in the previous step, and, when the
    /// budget cannot serve a check of every active rollout at the wanted
    /// interval, grants this step's share of the budget to the rollouts
    /// waiting longest.
    pub fn begin_step(&mut self, now: DateTime<Utc>) {
        if self.step == Some(now) {
            return;
        }
        self.previous_step = self.step;
        self.step = Some(now);
        if let Some(previous) = self.previous_step {
            self.rollouts.retain(|_, rollout| rollout.asked >= previous);
        }
        // The step's grant considers every rollout known now.
        for rollout in self.rollouts.values_mut() {
            rollout.granted = None;
            rollout.considered = true;
        }
        self.granted = 0;
        self.forgotten.clear();
        let wanted = self.wanted.as_secs_f64().max(1.0);
        let tick = self.previous_step.map_or(wanted, |previous| {
            ((now - previous).num_milliseconds() as f64 / 1_000.0).clamp(0.0, wanted)
        });
        // A paced step that spent more than its share leaves the debt.
        let debt = if self.pacing {
            self.allowance.min(0.0)
        } else {
            0.0
        };
        self.allowance = debt + self.available_per_hour * tick / 3_600.0;
        if let Some(burst) = self.burst {
            self.allowance = self.allowance.min(burst);
        }
        self.step_demand = self.demand();
        self.pacing = self.over_budget();
        if !self.pacing {
            return;
        }
        // Never answered first (the longest asking first), then the oldest
        // answer; ties by id, so the order is stable.
        let mut order: Vec<(bool, Option<DateTime<Utc>>, &str, &mut Rollout)> = self
            .rollouts
            .iter_mut()
            .map(|(id, rollout)| {
                let since = rollout.answered.or(rollout.waiting_since);
                (rollout.answered.is_some(), since, &**id, rollout)
            })
            .collect();
        order.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let half = chrono::Duration::milliseconds((wanted * 500.0) as i64);
        let mut granted = 0;
        let mut allowance = self.allowance;
        for (answered, since, _, rollout) in order {
            if allowance <= 0.0 {
                break;
            }
            if answered && since.is_some_and(|since| now - since < half) {
                break; // everyone after it was answered as recently
            }
            let cost = rollout.cost(self.cost);
            // The first in line is served even when its check costs more than
            // the step's share (the next steps pay the debt); after it, a
            // check that does not fit waits, and so does everyone behind it.
            if cost > allowance && granted > 0 {
                break;
            }
            allowance -= cost;
            rollout.granted = Some(cost);
            granted += 1;
        }
        self.allowance = allowance;
        self.granted = granted;
    }

    /// Whether the step's demand needs more than the budget serves at the
    /// wanted interval (or than the step's burst may spend).
    fn over_budget(&self) -> bool {
        let wanted = self.wanted.as_secs_f64().max(1.0);
        let demand = self.step_demand;
        demand * 3_600.0 / wanted > self.available_per_hour
            || self.burst.is_some_and(|burst| demand > burst)
    }

    /// Whether `rollout`'s gate check of `ring` may be asked at `now`; it
    /// asks, so it counts in the live demand, at `estimate` requests a check
    /// until one is answered in that ring. Begins the step if needed.
    pub fn due(
        &mut self,
        rollout: &str,
        ring: &str,
        estimate: Option<u64>,
        now: DateTime<Utc>,
    ) -> bool {
        self.begin_step(now);
        let known = self
            .rollouts
            .get(rollout)
            .is_some_and(|entry| *entry.ring == *ring);
        let shared = if known { None } else { Some(self.ring(ring)) };
        let plane_cost = self.cost;
        if let Some(shared) = &shared {
            self.add(rollout, shared, now);
        }
        let entry = self.rollouts.get_mut(rollout).expect("known or added");
        if let Some(shared) = shared {
            entry.ring = shared;
        }
        entry.estimate = estimate.map(|calls| calls as f64);
        entry.asked = now;
        entry.waiting_since.get_or_insert(now);
        let new = !std::mem::replace(&mut entry.considered, true);
        let cost = entry.cost(plane_cost);
        let granted = entry.granted.is_some();
        if new {
            self.step_demand += cost;
        }
        if granted {
            return true;
        }
        if !self.pacing && new && self.over_budget() {
            // A rollout new in this step tips the demand over the budget:
            // the step paces from here, with what is left of its share.
            self.pacing = true;
        }
        // A rollout new in this step was never checked: it is served if what
        // is left of the step's share covers it, or, first in the step, if
        // anything is left (the next steps pay the debt).
        let first = self.granted == 0 && self.allowance > 0.0;
        if self.pacing && (!new || (self.allowance < cost && !first)) {
            return false; // waits for a later step's share
        }
        self.allowance -= cost;
        if let Some(entry) = self.rollouts.get_mut(rollout) {
            entry.granted = Some(cost);
        }
        self.granted += 1;
        true
    }

    /// `rollout`'s gate status was answered at `now`, costing `requests`.
    pub fn checked(&mut self, rollout: &str, now: DateTime<Utc>, requests: u64) {
        let requests = requests as f64;
        if !self.rollouts.contains_key(rollout) {
            let ring = self.ring("");
            self.add(rollout, &ring, now);
        }
        let entry = self.rollouts.get_mut(rollout).expect("known or added");
        if let Some(charged) = entry.granted.as_mut() {
            // What the estimate charged and the check did not spend is left
            // for the step's later checks (or owed, when it spent more).
            self.allowance += *charged - requests;
            *charged = requests;
        }
        if let Some(before) = entry.answered.replace(now) {
            let wait = (now - before).to_std().unwrap_or_default();
            self.longest_wait = self.longest_wait.max(wait);
        }
        entry.waiting_since = None;
        entry.measured = Some((entry.ring.clone(), requests));
        self.answered += 1;
        self.cost = Some(match self.cost {
            None => requests,
            Some(cost) => cost + COST_WEIGHT * (requests - cost),
        });
    }

    /// When `rollout`'s gate status was last answered.
    pub fn last_checked(&self, rollout: &str) -> Option<DateTime<Utc>> {
        self.rollouts
            .get(rollout)
            .and_then(|rollout| rollout.answered)
    }

    /// The longest time between two answered gate checks of one rollout.
    pub fn longest_wait(&self) -> Duration {
        self.longest_wait
    }

    /// The longest gate-check delay at `now`: [`Self::longest_wait`], or
    /// longer when an active rollout has waited longer since its last answer
    /// (or, never answered, since it first asked).
    pub fn longest_delay(&self, now: DateTime<Utc>) -> Duration {
        self.rollouts
            .values()
            .filter(|rollout| rollout.waiting_since.is_some())
            .filter_map(|rollout| rollout.answered.or(rollout.waiting_since))
            .filter_map(|since| (now - since).to_std().ok())
            .fold(self.longest_wait, Duration::max)
    }

    /// Gate checks answered so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Forgets a rollout that is no longer active.
    pub fn forget(&mut self, rollout: &str) {
        if let Some(entry) = self.rollouts.remove(rollout) {
            if entry.granted.is_some() {
                self.granted -= 1;
            }
            if entry.considered {
                self.forgotten.insert(rollout.into());
            }
        }
    }
}

/// Every plane's pacing, by plane name.
#[derive(Debug, Clone, Default)]
pub struct GatePacing {
    planes: BTreeMap<String, PlanePacing>,
}

impl GatePacing {
    /// The pacing of `plane`, made with `wanted` and `available_per_hour`
    /// the first time, and both kept up to date after.
    pub fn plane(
        &mut self,
        plane: &str,
        wanted: Duration,
        available_per_hour: f64,
    ) -> &mut PlanePacing {
        let pacing = self
            .planes
            .entry(plane.to_string())
            .or_insert_with(|| PlanePacing::new(wanted, available_per_hour));
        pacing.set_wanted(wanted);
        pacing.set_available(available_per_hour);
        pacing
    }

    pub fn get(&self, plane: &str) -> Option<&PlanePacing> {
        self.planes.get(plane)
    }

    pub fn get_mut(&mut self, plane: &str) -> Option<&mut PlanePacing> {
        self.planes.get_mut(plane)
    }

    /// Every plane's pacing, by plane name.
    pub fn planes(&self) -> impl Iterator<Item = (&str, &PlanePacing)> {
        self.planes
            .iter()
            .map(|(plane, pacing)| (plane.as_str(), pacing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn ids(count: usize) -> Vec<String> {
        (0..count).map(|index| format!("r{index:03}")).collect()
    }

    /// One step at `now`: every rollout asks (ring, estimate); those due are
    /// answered at `cost(rollout)` requests. Answers the rollouts checked.
    fn step(
        pacing: &mut PlanePacing,
        rollouts: &[String],
        ring: &str,
        estimate: u64,
        now: DateTime<Utc>,
        cost: impl Fn(&str) -> u64,
    ) -> Vec<String> {
        pacing.begin_step(now);
        let mut checked = Vec::new();
        for rollout in rollouts {
            if pacing.due(rollout, ring, Some(estimate), now) {
                pacing.checked(rollout, now, cost(rollout));
                checked.push(rollout.clone());
            }
        }
        checked
    }

    #[test]
    fn a_budget_that_serves_the_schedule_checks_every_rollout_every_step() {
        // 100 rollouts × 7 requests a minute = 42,000/h; 135,000 available.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 135_000.0);
        let rollouts = ids(100);
        for minute in 0..5 {
            let checked = step(&mut pacing, &rollouts, "ring-0", 7, at(minute * 60), |_| 7);
            assert_eq!(checked.len(), 100, "minute {minute}");
        }
        assert_eq!(pacing.effective(), Duration::from_secs(60));
        assert_eq!(pacing.longest_wait(), Duration::from_secs(60));
        assert!(!pacing.pacing());
    }

    #[test]
    fn the_interval_follows_the_rings_the_rollouts_are_in_now() {
        // The same 100 rollouts, in ring 0 (7 requests a check): every minute.
        // In the last ring (84 requests): 504,000/h needed, 135,000
        // available: every 4 minutes. No planned worst case slows ring 0.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 135_000.0);
        let rollouts = ids(100);
        step(&mut pacing, &rollouts, "ring-0", 7, at(0), |_| 7);
        assert_eq!(pacing.demand(), 700.0);
        assert_eq!(pacing.live("Intune").effective_seconds, 60);
        // They move on: the estimate of the new ring counts at once, before
        // any check in it is answered.
        pacing.begin_step(at(60));
        for rollout in &rollouts {
            pacing.due(rollout, "ring-4", Some(84), at(60));
        }
        assert_eq!(pacing.demand(), 8_400.0);
        let live = pacing.live("Intune");
        assert_eq!(live.effective_seconds, 240, "{live:?}");
        assert_eq!(
            live.sentence(),
            "Intune status every 4 min, not 1 min: 504,000 calls/h needed, 135,000 available"
        );
    }

    #[test]
    fn a_rollout_that_stops_asking_leaves_the_demand_after_one_step() {
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 135_000.0);
        let rollouts = ids(3);
        step(&mut pacing, &rollouts, "ring-0", 7, at(0), |_| 7);
        assert_eq!(pacing.active(), 3);
        // r002 finished: it asks no more.
        step(&mut pacing, &rollouts[..2], "ring-0", 7, at(60), |_| 7);
        step(&mut pacing, &rollouts[..2], "ring-0", 7, at(120), |_| 7);
        assert_eq!(pacing.active(), 2);
        assert_eq!(pacing.demand(), 14.0);
    }

    #[test]
    fn a_short_budget_is_shared_fairly_and_never_spent_faster_than_its_rate() {
        // 240 rollouts of 10 to 40 requests (6,000 a round); 36,000
        // requests an hour = 600 a minute: a round takes 10 minutes.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 36_000.0);
        let rollouts = ids(240);
        let cost = |rollout: &str| 10 + 10 * (rollout[1..].parse::<u64>().unwrap() % 4);
        let mut spent_by_minute = Vec::new();
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        let mut longest_gap = 0;
        for minute in 0..120 {
            let checked = step(&mut pacing, &rollouts, "ring-2", 25, at(minute * 60), cost);
            spent_by_minute.push(checked.iter().map(|r| cost(r)).sum::<u64>());
            for rollout in checked {
                if let Some(before) = last.insert(rollout, minute) {
                    longest_gap = longest_gap.max(minute - before);
                }
            }
        }
        assert_eq!(last.len(), 240, "every rollout was checked");
        assert!(pacing.pacing());
        let effective = pacing.effective().as_secs() as i64 / 60;
        assert_eq!(effective, 10, "6,000 a round at 600 a minute");
        // Fair: nobody waits more than a round and a step.
        assert!(
            longest_gap <= effective + 1,
            "longest gap {longest_gap} min"
        );
        // Never faster than the rate: any hour spends at most its share plus
        // one check (the first in line may borrow from the next step).
        for start in 0..=60 {
            let hour: u64 = spent_by_minute[start..start + 60].iter().sum();
            assert!(
                hour <= 36_000 + 40,
                "{hour} requests in the hour from minute {start}"
            );
        }
        // And the budget is used, not left idle: after the first round
        // (estimates learned), every hour spends at least 90 % of it.
        let hour: u64 = spent_by_minute[60..120].iter().sum();
        assert!(hour >= 32_400, "{hour} requests in the second hour");
    }

    #[test]
    fn the_longest_waiting_come_first() {
        // 4 rollouts × 10 requests at 600/h = 10 a minute: one a step.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 600.0);
        let rollouts: Vec<String> = ["c", "a", "d", "b"].map(String::from).to_vec();
        let mut order = Vec::new();
        for minute in 0..6 {
            let checked = step(
                &mut pacing,
                &rollouts,
                "ring-1",
                10,
                at(minute * 60),
                |_| 10,
            );
            assert_eq!(checked.len(), 1, "minute {minute}: {checked:?}");
            order.extend(checked);
        }
        // Minute 0: the first to ask, before the demand is over the budget;
        // then the never-checked by id; then the oldest answer first.
        assert_eq!(order, ["c", "a", "b", "d", "c", "a"]);
        assert_eq!(pacing.effective(), Duration::from_secs(240));
        assert_eq!(pacing.longest_wait(), Duration::from_secs(240));
    }

    #[test]
    fn a_check_dearer_than_a_steps_share_is_served_and_paid_for_by_the_next_steps() {
        // 120 requests an hour = 2 a minute; one rollout's check costs 10.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 120.0);
        let rollouts = ids(1);
        let mut checked_at = Vec::new();
        for minute in 0..21 {
            if !step(
                &mut pacing,
                &rollouts,
                "ring-4",
                10,
                at(minute * 60),
                |_| 10,
            )
            .is_empty()
            {
                checked_at.push(minute);
            }
        }
        assert_eq!(checked_at, vec![0, 5, 10, 15, 20], "every 5 minutes");
        assert_eq!(pacing.effective(), Duration::from_secs(300));
    }

    #[test]
    fn a_cheaper_answer_than_estimated_leaves_the_rest_to_a_new_rollout() {
        // 1,200/h = 20 a minute; two rollouts estimated at 15 each.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 1_200.0);
        pacing.due("a", "ring-1", Some(15), at(0));
        pacing.due("b", "ring-1", Some(15), at(0));
        pacing.begin_step(at(60));
        assert!(pacing.pacing());
        assert!(pacing.due("a", "ring-1", Some(15), at(60)));
        assert!(!pacing.due("b", "ring-1", Some(15), at(60)), "15 + 15 > 20");
        // "a" cost 2 (its reads were coalesced): 18 left for a new rollout.
        pacing.checked("a", at(60), 2);
        assert!(pacing.due("new", "ring-0", Some(12), at(60)));
        assert!(
            !pacing.due("b", "ring-1", Some(15), at(60)),
            "b waits its turn"
        );
    }

    #[test]
    fn the_cost_per_check_is_learned_as_a_moving_average() {
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 1_000.0);
        assert_eq!(pacing.cost(), None);
        pacing.checked("a", at(0), 10);
        pacing.checked("b", at(0), 20);
        assert_eq!(pacing.cost(), Some(12.0));
    }

    #[test]
    fn the_longest_wait_is_the_longest_gap_between_two_answers_of_one_rollout() {
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 3_600.0);
        pacing.checked("a", at(0), 3);
        pacing.checked("b", at(10), 3);
        assert_eq!(
            pacing.longest_wait(),
            Duration::ZERO,
            "a first answer is no wait"
        );
        pacing.checked("a", at(90), 3);
        pacing.checked("b", at(310), 3);
        pacing.checked("a", at(330), 3);
        assert_eq!(pacing.longest_wait(), Duration::from_secs(300));
        assert_eq!(pacing.answered(), 5);
        // A rollout waiting now counts in the longest delay.
        pacing.due("c", "ring-0", Some(3), at(340));
        assert_eq!(pacing.longest_delay(at(1_000)), Duration::from_secs(660));
    }

    /// A rollout forgotten in a step after the step's grant considered it
    /// is not new when it asks again in the step: it waits its turn like
    /// the others, not served from what is left of the share.
    #[test]
    fn a_rollout_forgotten_in_a_step_waits_its_turn_when_it_asks_again() {
        // 600/h = 10 a minute; two rollouts at 8 a check: 960/h, paced.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 600.0);
        assert!(pacing.due("a", "ring-1", Some(8), at(0)));
        assert!(!pacing.due("b", "ring-1", Some(8), at(0)));
        pacing.checked("a", at(45), 8);
        pacing.checked("b", at(45), 8);
        // Both answered 15 s ago: the step grants nobody, its 10 are left.
        pacing.begin_step(at(60));
        assert!(pacing.pacing());
        assert!(!pacing.due("a", "ring-1", Some(8), at(60)));
        pacing.forget("b");
        assert!(!pacing.due("b", "ring-1", Some(8), at(60)));
        // A rollout never seen is new: it is served from what is left.
        assert!(pacing.due("c", "ring-1", Some(8), at(60)));
        assert_eq!(pacing.active(), 3);
    }

    /// One entry per rollout, and one copy of each ring's name for all the
    /// rollouts in it (issue 17: 10,000 rollouts held their ids three
    /// times and their rings' names twice each).
    #[test]
    fn rollouts_in_one_ring_share_its_name() {
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 135_000.0);
        let rollouts = ids(50);
        for minute in 0..3 {
            step(&mut pacing, &rollouts, "ring-0", 7, at(minute * 60), |_| 7);
        }
        step(&mut pacing, &rollouts[..10], "ring-1", 9, at(180), |_| 9);
        assert_eq!(pacing.rings.len(), 2);
        let ring_0 = pacing.rings.get("ring-0").unwrap().clone();
        let ring_1 = pacing.rings.get("ring-1").unwrap().clone();
        for (index, rollout) in rollouts.iter().enumerate() {
            let entry = &pacing.rollouts[rollout.as_str()];
            let ring = if index < 10 { &ring_1 } else { &ring_0 };
            assert!(Arc::ptr_eq(&entry.ring, ring), "{rollout}");
            let (measured, _) = entry.measured.as_ref().unwrap();
            assert!(Arc::ptr_eq(measured, ring), "{rollout}");
            // Granted in this step: the ten that asked in it.
            assert_eq!(entry.granted, (index < 10).then_some(9.0));
        }
        assert_eq!(pacing.granted, 10);
    }
}
