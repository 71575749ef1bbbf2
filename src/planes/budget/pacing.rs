//! `pacing`: gate checks paced to what a plane's call budget can serve, and
//! shared fairly between rollouts (issue 17). Pure: the clock is passed in.
//!
//! Without it, every active rollout asks for its gate status at every tick;
//! when the plane's budget cannot serve them all, the ones asked first in a
//! step take the budget and the rest are refused — step after step, the same
//! ones (the fleet bench measured a rollout waiting 3,540 s for a 1-minute
//! gate). With it:
//!
//! - **pacing**: a plane's gate checks come every *effective* interval, not
//!   every tick: `max(wanted, active rollouts × requests per check ÷ the
//!   requests per second the budget leaves gate status)`. The requests per
//!   check are learned from what the checks spent (a moving average), so the
//!   interval follows the plane's real cost;
//! - **fairness**: a rollout whose last check is younger than the effective
//!   interval is not asked again yet, and the rollouts that are due are asked
//!   longest-waiting first (never checked first of all), so a rollout the
//!   budget held back in one step is among the first in the next, and no
//!   rollout waits much longer than the effective interval.
//!
//! When the budget serves the schedule (effective = wanted), every rollout is
//! due at every tick, exactly as without pacing.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// The weight of the newest check in the moving average of requests per check.
const COST_WEIGHT: f64 = 0.2;

/// One plane's gate-check pacing.
#[derive(Debug, Clone)]
pub struct PlanePacing {
    /// The interval the schedule asks for (the daemon's poll, a gate's).
    wanted: Duration,
    /// Requests per hour the budget leaves gate status (its class share).
    available_per_hour: f64,
    /// Requests one gate check costs, on average (`None` before the first).
    cost: Option<f64>,
    /// The interval planned from the intents (`plan::gate_check_every`),
    /// when the daemon knows it: never paced faster than that.
    planned: Option<Duration>,
    /// When each rollout's gate status was last answered.
    last: BTreeMap<String, DateTime<Utc>>,
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
            planned: None,
            last: BTreeMap::new(),
            longest_wait: Duration::ZERO,
            answered: 0,
        }
    }

    /// The interval planned from the intents (the daemon's step computes it).
    pub fn set_planned(&mut self, planned: Duration) {
        self.planned = Some(planned);
    }

    /// Rollouts whose gate status was answered so far (and not forgotten).
    pub fn known(&self) -> usize {
        self.last.len()
    }

    /// The schedule's interval, when it changes (a new poll interval).
    pub fn set_wanted(&mut self, wanted: Duration) {
        self.wanted = wanted;
    }

    /// Requests one gate check costs, on average so far.
    pub fn cost(&self) -> Option<f64> {
        self.cost
    }

    /// The interval the budget can serve for `active` rollouts.
    pub fn effective(&self, active: usize) -> Duration {
        let floor = self.wanted.max(self.planned.unwrap_or_default());
        let Some(cost) = self.cost else {
            return floor;
        };
        let seconds = active as f64 * cost * 3_600.0 / self.available_per_hour;
        floor.max(Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// Whether `rollout`'s gate check may be asked at `now`, with `active`
    /// rollouts on the plane.
    pub fn due(&self, rollout: &str, active: usize, now: DateTime<Utc>) -> bool {
        let effective = self.effective(active);
        if effective <= self.wanted {
            return true;
        }
        match self.last.get(rollout) {
            None => true,
            Some(last) => {
                now - *last
                    >= chrono::Duration::from_std(effective).unwrap_or(chrono::Duration::MAX)
            }
        }
    }

    /// `rollouts` in the order their gate checks should be asked: those due
    /// at `now` only, longest-waiting first (never checked first of all,
    /// then by the oldest answer; ties by id, so the order is stable).
    pub fn fair_order<'a>(
        &self,
        rollouts: impl IntoIterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) -> Vec<&'a str> {
        let rollouts: Vec<&str> = rollouts.into_iter().collect();
        let active = rollouts.len();
        let mut due: Vec<&str> = rollouts
            .into_iter()
            .filter(|rollout| self.due(rollout, active, now))
            .collect();
        due.sort_by_key(|rollout| (self.last.get(*rollout).copied(), *rollout));
        due
    }

    /// `rollout`'s gate status was answered at `now`, costing `requests`.
    pub fn checked(&mut self, rollout: &str, now: DateTime<Utc>, requests: u64) {
        if let Some(before) = self.last.insert(rollout.to_string(), now) {
            let wait = (now - before).to_std().unwrap_or_default();
            self.longest_wait = self.longest_wait.max(wait);
        }
        self.answered += 1;
        let requests = requests as f64;
        self.cost = Some(match self.cost {
            None => requests,
            Some(cost) => cost + COST_WEIGHT * (requests - cost),
        });
    }

    /// When `rollout`'s gate status was last answered.
    pub fn last_checked(&self, rollout: &str) -> Option<DateTime<Utc>> {
        self.last.get(rollout).copied()
    }

    /// Forgets a rollout that is no longer active.
    /// The longest time between two answered gate checks of one rollout.
    pub fn longest_wait(&self) -> Duration {
        self.longest_wait
    }

    /// Gate checks answered so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// The interval the schedule asks for.
    pub fn wanted(&self) -> Duration {
        self.wanted
    }

    pub fn forget(&mut self, rollout: &str) {
        self.last.remove(rollout);
    }
}

/// Every plane's pacing, by plane name.
#[derive(Debug, Clone, Default)]
pub struct GatePacing {
    planes: BTreeMap<String, PlanePacing>,
}

impl GatePacing {
    /// The pacing of `plane`, made with `wanted` and `available_per_hour`
    /// the first time (and its wanted interval kept up to date after).
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

    #[test]
    fn a_budget_that_serves_the_schedule_leaves_every_rollout_due_every_tick() {
        // 3,600 requests/h for gate status, 10 rollouts of 5 requests each
        // a minute = 3,000/h: served.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 3_600.0);
        for rollout in ["a", "b"] {
            pacing.checked(rollout, at(0), 5);
        }
        assert_eq!(pacing.effective(10), Duration::from_secs(60));
        assert!(
            pacing.due("a", 10, at(1)),
            "no pacing when the budget serves"
        );
    }

    #[test]
    fn a_budget_that_cannot_serve_spaces_each_rollout_by_the_effective_interval() {
        // 400 rollouts × 10 requests a minute = 240,000/h; 60,000 available:
        // every 4 minutes.
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 60_000.0);
        pacing.checked("a", at(0), 10);
        assert_eq!(pacing.effective(400), Duration::from_secs(240));
        assert!(!pacing.due("a", 400, at(239)));
        assert!(pacing.due("a", 400, at(240)));
        assert!(pacing.due("never", 400, at(1)), "never checked: due");
    }

    #[test]
    fn the_longest_waiting_come_first_so_none_is_starved() {
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 60.0);
        pacing.checked("c", at(0), 10);
        pacing.checked("a", at(100), 10);
        pacing.checked("b", at(50), 10);
        // 4 rollouts × 10 requests at 60/h: every 40 min.
        let order = pacing.fair_order(["a", "b", "c", "d"], at(2_500));
        assert_eq!(order, vec!["d", "c", "b", "a"]);
        let order = pacing.fair_order(["a", "b", "c", "d"], at(2_430));
        assert_eq!(order, vec!["d", "c"], "b and a are not due yet");
    }

    #[test]
    fn the_planned_interval_is_a_floor() {
        let mut pacing = PlanePacing::new(Duration::from_secs(60), 1_000_000.0);
        pacing.set_planned(Duration::from_secs(600));
        pacing.checked("a", at(0), 1);
        assert_eq!(pacing.effective(1), Duration::from_secs(600));
        assert!(!pacing.due("a", 1, at(599)));
        assert!(pacing.due("a", 1, at(600)));
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
    }
}
