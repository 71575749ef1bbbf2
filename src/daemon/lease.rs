//! `lease`: this replica's hold on the lead of a shared (PostgreSQL) store,
//! as the replica itself must judge it between two database calls.
//!
//! The database fences every write of a deposed leader (a newer epoch
//! exists: `StoreError::Fenced`), but a plane call is not a database write,
//! and a replica can be stalled (SIGSTOP, a VM paused, a long GC-like
//! hiccup) between the journal write that allowed a call and the call
//! itself. So the replica also keeps its own view of the lease on the
//! **monotonic** clock (which keeps counting while the process is stopped
//! and never jumps with the wall clock): the instant it last took or
//! renewed the lease, measured *before* asking the database. Past
//! `renewed + lease` it does not act, whatever it believes — before every
//! plane call and every evidence append ([`Lease::keep`]) — until the loop
//! has asked the database again.
//!
//! The loop renews at a third of the lease ([`Lease::renew_in`]), whatever
//! the poll interval; the performer renews too when a long pass reaches a
//! third of the lease, so a long step never outlives its lease.

use crate::store::{LeadershipOutcome, Store};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a replica's lead lasts without renewal by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// This replica's lease on a shared store.
#[derive(Debug, Clone)]
pub struct Lease {
    /// This replica's name in the leadership row (`hostname:pid`).
    replica: String,
    /// How long the lease lasts from each renewal.
    duration: Duration,
    /// When the lease was last taken or renewed (monotonic, measured before
    /// the database call) and under which epoch, shared with the renewal
    /// thread ([`Lease::spawn_renewal`]); no instant: not leading.
    held: Arc<Mutex<Held>>,
    /// As a standby: when the leader's lease runs out (its wall-clock
    /// expiry), so the standby looks again right then.
    leader_expires_at: Option<DateTime<Utc>>,
    /// Whether the last answer of the database made this replica the leader.
    leading: bool,
    /// This replica led, and [`Lease::keep`] learned from the database
    /// that another replica leads now; the loop has not said so yet
    /// ([`Lease::take_stood_down`]).
    stood_down: bool,
}

/// The lease as both the loop and the renewal thread see it.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    epoch: Option<u64>,
    renewed: Option<Instant>,
}

/// Why this replica must not act now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseLost {
    #[error(
        "this replica's lease lapsed {late:?} ago without renewal (stalled?); it acts again only after the database confirms its lead"
    )]
    Lapsed { late: Duration },
    #[error("another replica leads now (epoch {epoch}, {holder}); this replica stands by")]
    Deposed { holder: String, epoch: u64 },
    #[error("the lease could not be renewed: {0}")]
    Renewal(String),
    #[error("this replica does not lead")]
    NotLeading,
}

impl Lease {
    pub fn new(replica: String, duration: Duration) -> Lease {
        Lease {
            replica,
            duration,
            held: Arc::default(),
            leader_expires_at: None,
            leading: false,
            stood_down: false,
        }
    }

    /// Whether the database's last answer made this replica the leader
    /// (its lease may have lapsed since: see [`Lease::holds`]).
    pub fn leading(&self) -> bool {
        self.leading
    }

    /// Whether this replica was deposed in [`Lease::keep`] since the last
    /// call (the loop's [`Lease::lead`] then answers "standby" with
    /// [`Lease::leading`] already false, and the replica must still say
    /// that it stands by).
    pub fn take_stood_down(&mut self) -> bool {
        std::mem::take(&mut self.stood_down)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn set_duration(&mut self, duration: Duration) {
        self.duration = duration;
    }

    /// The lease as the database counts it.
    pub fn chrono_duration(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.duration).unwrap_or(chrono::Duration::seconds(15))
    }

    /// Asks the database (take, renew, or learn who leads), `asked_at`
    /// being the monotonic instant taken just before the call.
    pub fn lead(
        &mut self,
        store: &mut Store,
        now: DateTime<Utc>,
        asked_at: Instant,
    ) -> Result<LeadershipOutcome, crate::store::StoreError> {
        let duration = self.chrono_duration();
        store.bound_idle_transactions(self.duration)?;
        match store.try_lead(&self.replica, duration, now) {
            Ok(outcome) => {
                self.observe(&outcome, asked_at);
                Ok(outcome)
            }
            Err(error) => {
                // Not confirmed: act no more until it is.
                self.set_renewed(None, None);
                Err(error)
            }
        }
    }

    /// Takes note of what the database answered.
    pub fn observe(&mut self, outcome: &LeadershipOutcome, asked_at: Instant) {
        self.leading = outcome.is_leader();
        if outcome.is_leader() {
            self.set_renewed(Some(outcome.leadership().epoch), Some(asked_at));
            self.leader_expires_at = None;
        } else {
            self.set_renewed(None, None);
            self.leader_expires_at = Some(outcome.leadership().lease_expires_at);
        }
    }

    fn held(&self) -> Held {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_renewed(&self, epoch: Option<u64>, renewed: Option<Instant>) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Held { epoch, renewed };
    }

    /// Renews the lease every third of it on a connection of its own, in a
    /// thread, for as long as this replica leads — so a pass longer than
    /// the lease (a large commit judged) keeps it, while a stopped or
    /// killed process, whose threads all stop, loses it. The thread only
    /// ever extends the lease of the epoch the loop took (never takes the
    /// lead itself); when that fails the replica stops acting at once.
    /// Ends when `stop` is set.
    pub fn spawn_renewal(
        &self,
        location: crate::store::StoreLocation,
        clock: super::Clock,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let held = self.held.clone();
        let replica = self.replica.clone();
        let duration = self.duration;
        let lease = self.chrono_duration();
        std::thread::Builder::new()
            .name("lease-renewal".into())
            .spawn(move || {
                let mut store: Option<Store> = None;
                while !stop.load(Ordering::SeqCst) {
                    // The renewal timer: a third of the lease.
                    std::thread::park_timeout(duration / 3);
                    let current = *held.lock().unwrap_or_else(PoisonError::into_inner);
                    let (Some(epoch), Some(_)) = (current.epoch, current.renewed) else {
                        continue;
                    };
                    if store.is_none() {
                        store = Store::open_location(&location)
                            .ok()
                            .filter(|store| store.bound_idle_transactions(duration).is_ok());
                    }
                    let Some(connection) = store.as_mut() else {
                        continue;
                    };
                    let asked_at = Instant::now();
                    let renewed = connection.renew_lead(&replica, epoch, lease, clock());
                    let mut state = held.lock().unwrap_or_else(PoisonError::into_inner);
                    if state.epoch != Some(epoch) {
                        continue;
                    }
                    match renewed {
                        Ok(true) => state.renewed = Some(asked_at),
                        Ok(false) => {
                            tracing::error!(epoch, "the lease was lost: another replica leads");
                            *state = Held::default();
                        }
                        Err(error) => {
                            tracing::warn!(%error, "the lease could not be renewed");
                            store = None;
                        }
                    }
                }
            })
    }

    /// Whether this replica may act at `at` (monotonic).
    pub fn holds(&self, at: Instant) -> bool {
        self.held()
            .renewed
            .is_some_and(|renewed| at < renewed + self.duration)
    }

    /// How long until the next renewal (leader) or the next look at the
    /// leadership row (standby) is due, from `at`.
    pub fn renew_in(&self, at: Instant, now: DateTime<Utc>) -> Duration {
        let third = self.duration / 3;
        match self.held().renewed {
            Some(renewed) => (renewed + third).saturating_duration_since(at),
            None => {
                // A standby looks at least every third of the lease, and
                // right when the leader's lease runs out.
                let expiry = self
                    .leader_expires_at
                    .and_then(|expires| (expires - now).to_std().ok())
                    .map(|wait| wait + Duration::from_millis(20));
                expiry.map_or(third, |wait| wait.min(third))
            }
        }
    }

    /// Before acting (a plane call, an evidence append): refuses when the
    /// lease lapsed, and renews it when a third of it has passed.
    pub fn keep(&mut self, store: &mut Store, now: DateTime<Utc>) -> Result<(), LeaseLost> {
        let at = Instant::now();
        let Some(renewed) = self.held().renewed else {
            return Err(LeaseLost::NotLeading);
        };
        if !self.holds(at) {
            let late = at.saturating_duration_since(renewed + self.duration);
            self.set_renewed(None, None);
            return Err(LeaseLost::Lapsed { late });
        }
        if at < renewed + self.duration / 3 {
            return Ok(());
        }
        match self.lead(store, now, at) {
            Ok(LeadershipOutcome::Renewed(_)) => Ok(()),
            // Re-acquired under a new epoch: another replica led between;
            // what this pass believes is stale.
            Ok(outcome @ (LeadershipOutcome::Acquired(_) | LeadershipOutcome::Standby(_))) => {
                self.stood_down = !outcome.is_leader();
                let leadership = outcome.leadership().clone();
                self.set_renewed(None, None);
                Err(LeaseLost::Deposed {
                    holder: leadership.holder,
                    epoch: leadership.epoch,
                })
            }
            Err(error) => Err(LeaseLost::Renewal(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_until_its_duration_has_passed_since_the_renewal() {
        let lease = Lease::new("a:1".into(), Duration::from_secs(3));
        let start = Instant::now();
        assert!(!lease.holds(start), "nothing taken yet");
        lease.set_renewed(Some(1), Some(start));
        assert!(lease.holds(start + Duration::from_millis(2_999)));
        assert!(!lease.holds(start + Duration::from_secs(3)));
        assert_eq!(
            lease.renew_in(start, Utc::now()),
            Duration::from_secs(1),
            "renewed at a third of the lease"
        );
        assert_eq!(
            lease.renew_in(start + Duration::from_secs(2), Utc::now()),
            Duration::ZERO
        );
    }

    #[test]
    fn a_standby_looks_again_when_the_leaders_lease_runs_out_or_at_a_third() {
        let mut lease = Lease::new("b:2".into(), Duration::from_secs(15));
        let now = Utc::now();
        lease.leader_expires_at = Some(now + chrono::Duration::seconds(2));
        assert_eq!(
            lease.renew_in(Instant::now(), now),
            Duration::from_millis(2_020)
        );
        lease.leader_expires_at = Some(now + chrono::Duration::seconds(60));
        assert_eq!(lease.renew_in(Instant::now(), now), Duration::from_secs(5));
        lease.leader_expires_at = None;
        assert_eq!(lease.renew_in(Instant::now(), now), Duration::from_secs(5));
    }

    /// A leader deposed while acting (`keep` asks the database and learns
    /// another replica leads) has `leading` false by the time the loop asks
    /// again; `take_stood_down` still tells the loop, once, so the replica
    /// says that it stands by.
    #[test]
    fn a_leader_deposed_in_keep_is_told_once_that_it_stood_down() {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&directory.path().join("state.db")).expect("store");
        let duration = Duration::from_secs(15);
        let mut a = Lease::new("a:1".into(), duration);
        let mut b = Lease::new("b:2".into(), duration);
        let start = Utc::now();
        let outcome = a.lead(&mut store, start, Instant::now()).expect("a asks");
        assert!(outcome.is_leader() && a.leading());
        // a's lease runs out in the database; b takes the lead.
        let later = start + chrono::Duration::seconds(20);
        let outcome = b.lead(&mut store, later, Instant::now()).expect("b asks");
        assert!(outcome.is_leader(), "b leads once a's lease ran out");
        // a still holds locally (renewed a third of a lease ago), so keep asks.
        a.set_renewed(Some(1), Some(Instant::now() - duration / 2));
        assert!(!a.take_stood_down(), "nothing to tell before keep");
        match a.keep(&mut store, later) {
            Err(LeaseLost::Deposed { holder, .. }) => assert_eq!(holder, "b:2"),
            other => panic!("expected deposed, got {other:?}"),
        }
        assert!(!a.leading(), "the database's answer: a stands by");
        assert!(a.take_stood_down(), "the loop is told");
        assert!(!a.take_stood_down(), "once");
    }
}
