//! Read-only aggregates for `/metrics` and the status page: counts grouped
//! by the few low-cardinality columns the metrics carry as labels
//! (application, ring, plane, business unit, outcome), computed by SQLite so
//! a scrape reads rows per label set, never per event.
//!
//! Counters derived here are monotonic across restarts: the event log only
//! grows (see `events`), so a count over it never goes down.

use super::db::{Row, params};
use super::time::{parse_optional_timestamp, parse_timestamp};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};

/// One group of events: how many events of `event_type` share these labels.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCount {
    pub event_type: String,
    /// The intent's application (empty for events of no intent).
    pub application_id: String,
    pub ring: String,
    pub plane: String,
    pub outcome: String,
    /// The event's own class, read from its details: a gate's verdict, a
    /// drift's type, a remediation's result, a blocked publish's kind.
    pub class: String,
    pub count: u64,
}

/// One time-to-compliance observation: a ring that completed.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceObservation {
    pub ring: String,
    /// The intent's `target_scope.site_class` (empty when it names none).
    pub site_class: String,
    pub hours: f64,
}

/// Intents grouped by the phase of their rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutStateCount {
    /// The run's phase (the `state` column for an intent with no run).
    pub phase: String,
    /// What an `awaiting_approval` phase waits for.
    pub requirement: Option<String>,
    pub count: u64,
}

/// One ring of the latest rollout of an application and business unit, as
/// the plane last reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRing {
    pub application_id: String,
    pub business_unit: String,
    /// The plane the intent's events name last (empty before any).
    pub plane: String,
    pub ring: String,
    pub targeted: u64,
    pub installed: u64,
    pub failed: u64,
    pub pending: u64,
}

/// The rollouts, as `/metrics` counts them: read with SQLite's JSON
/// functions, so a scrape never deserialises every intent's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutRows {
    pub states: Vec<RolloutStateCount>,
    pub rings: Vec<LatestRing>,
}

/// Rows of the idempotency journal, grouped.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneActionCount {
    pub plane: String,
    pub action: String,
    pub state: String,
    pub count: u64,
    /// Attempts summed over the group (a retry counts each try).
    pub attempts: u64,
}

/// The event log's aggregates over a range of sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct EventTally {
    /// The log's head when read: the last sequence number counted.
    pub upto: u64,
    pub events: Vec<EventCount>,
    pub compliance: Vec<ComplianceObservation>,
}

/// Everything the telemetry reads in one go.
#[derive(Debug, Clone, Default)]
pub struct TelemetryRows {
    pub events: Vec<EventCount>,
    pub compliance: Vec<ComplianceObservation>,
    pub plane_actions: Vec<PlaneActionCount>,
    /// Processed commits by outcome (`ok`, `invalid`).
    pub commits: Vec<(String, u64)>,
    pub last_processed_at: Option<DateTime<Utc>>,
    /// Webhook deliveries: (processed, count).
    pub webhook_deliveries: Vec<(bool, u64)>,
    /// The first time each intent was found waiting for an approval.
    pub awaiting_since: Vec<(String, DateTime<Utc>)>,
    pub event_log_length: u64,
}

const EVENT_COUNTS: &str = "
SELECT e.event_type,
       coalesce(i.application_id, ''),
       coalesce(e.ring, ''),
       coalesce(e.execution_plane, ''),
       e.outcome,
       coalesce(CASE
         WHEN e.correlation_id = 'evidence:push' THEN 'evidence_push_failed'
         WHEN e.event_type IN ('gate_evaluated', 'ring_completed')
           THEN json_extract(e.details, '$.gate.verdict')
         WHEN e.event_type = 'drift_detected' THEN json_extract(e.details, '$.drift_type')
         WHEN e.event_type = 'remediation_result'
           THEN json_extract(e.details, '$.remediation_result')
         WHEN e.event_type IN ('publish_blocked', 'rollback_executed', 'policy_evaluated')
           THEN json_extract(e.details, '$.kind')
       END, ''),
       count(*)
FROM events e LEFT JOIN intents i ON i.intent_id = e.intent_id
WHERE e.seq > ?1 AND e.seq <= ?2 AND e.event_type IN ('commit_processed', 'evidence_committed', 'ring_started',
  'ring_completed', 'gate_evaluated', 'rollback_executed', 'drift_detected',
  'remediation_result', 'cab_approved', 'publish_blocked', 'incident_opened')
GROUP BY 1, 2, 3, 4, 5, 6";

impl Store {
    /// The aggregates behind `/metrics` (see the module doc).
    pub fn telemetry_rows(&self) -> Result<TelemetryRows, StoreError> {
        let tally = self.event_tally(0)?;
        let mut rows = self.telemetry_rows_but_events()?;
        rows.events = tally.events;
        rows.compliance = tally.compliance;
        Ok(rows)
    }

    /// The aggregates of the events after `after` (a sequence number), up
    /// to the log's head when read: counts add up across calls, since the
    /// log only grows (what `/metrics` keeps between scrapes).
    pub fn event_tally(&self, after: u64) -> Result<EventTally, StoreError> {
        let connection = &self.connection;
        let upto = connection
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM events",
                params![],
                |row| row.get::<_, i64>(0),
            )?
            .max(0) as u64;
        let mut tally = EventTally {
            upto,
            ..EventTally::default()
        };
        if upto <= after {
            // Nothing new (or a log shorter than `after`: the caller's
            // tally is of another store and starts again).
            return Ok(tally);
        }
        let range = params![after as i64, upto as i64];
        let mut statement = connection.prepare_cached(EVENT_COUNTS)?;
        let mut query = statement.query(range)?;
        while let Some(row) = query.next()? {
            tally.events.push(EventCount {
                event_type: row.get(0)?,
                application_id: row.get(1)?,
                ring: row.get(2)?,
                plane: row.get(3)?,
                outcome: row.get(4)?,
                class: row.get(5)?,
                count: row.get::<_, i64>(6)?.max(0) as u64,
            });
        }
        let mut statement = connection.prepare_cached(
            "SELECT coalesce(ring, ''),
                    CASE WHEN json_type(details, '$.site_class') = 'text'
                      THEN json_extract(details, '$.site_class') ELSE '' END,
                    json_extract(details, '$.gate.time_to_compliance_hours')
             FROM events WHERE seq > ?1 AND seq <= ?2 AND event_type = 'ring_completed'
               AND json_type(details, '$.gate.time_to_compliance_hours') IN ('real', 'integer')",
        )?;
        let mut query = statement.query(range)?;
        while let Some(row) = query.next()? {
            tally.compliance.push(ComplianceObservation {
                ring: row.get(0)?,
                site_class: row.get(1)?,
                hours: row.get(2)?,
            });
        }
        Ok(tally)
    }

    /// [`Store::telemetry_rows`] without `events` and `compliance` (see
    /// [`Store::event_tally`]).
    pub fn telemetry_rows_but_events(&self) -> Result<TelemetryRows, StoreError> {
        let connection = &self.connection;
        let mut rows = TelemetryRows::default();
        let mut statement = connection.prepare_cached(
            // A later run's actions carry `@run-N`: grouped with the first's,
            // so the operation label stays a closed set.
            "SELECT plane,
                    CASE WHEN instr(action, '@run-') > 0
                      THEN substr(action, 1, instr(action, '@run-') - 1) ELSE action END,
                    state, count(*), CAST(sum(attempts) AS BIGINT) FROM idempotency
             GROUP BY 1, 2, 3",
        )?;
        let mut query = statement.query(params![])?;
        while let Some(row) = query.next()? {
            rows.plane_actions.push(PlaneActionCount {
                plane: row.get(0)?,
                action: row.get(1)?,
                state: row.get(2)?,
                count: row.get::<_, i64>(3)?.max(0) as u64,
                attempts: row.get::<_, Option<i64>>(4)?.unwrap_or(0).max(0) as u64,
            });
        }
        let mut statement = connection
            .prepare_cached("SELECT outcome, count(*) FROM processed_commits GROUP BY 1")?;
        let mut query = statement.query(params![])?;
        while let Some(row) = query.next()? {
            rows.commits
                .push((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64));
        }
        let last: Option<String> = connection.query_row(
            "SELECT max(processed_at) FROM processed_commits",
            params![],
            |row| row.get(0),
        )?;
        rows.last_processed_at =
            parse_optional_timestamp(last, "processed_commits", "processed_at")?;
        let mut statement = connection
            .prepare_cached("SELECT processed, count(*) FROM webhook_deliveries GROUP BY 1")?;
        let mut query = statement.query(params![])?;
        while let Some(row) = query.next()? {
            rows.webhook_deliveries.push((
                row.get::<_, i64>(0)? == 1,
                row.get::<_, i64>(1)?.max(0) as u64,
            ));
        }
        let mut statement = connection.prepare_cached(
            "SELECT e.intent_id, min(e.timestamp) FROM events e
             JOIN intents i ON i.intent_id = e.intent_id AND i.state = ?1
             WHERE e.event_type = 'publish_blocked'
               AND json_extract(e.details, '$.kind') = 'awaiting_approval'
             GROUP BY 1",
        )?;
        let mut query = statement.query(params!["awaiting_approval"])?;
        while let Some(row) = query.next()? {
            let since: String = row.get(1)?;
            rows.awaiting_since
                .push((row.get(0)?, parse_timestamp(&since, "events", "timestamp")?));
        }
        rows.event_log_length = connection
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM events",
                params![],
                |row| row.get::<_, i64>(0),
            )?
            .max(0) as u64;
        Ok(rows)
    }
}

/// Intents by their `state` column (the run's phase name once it has a
/// run: see `daemon::rollout`), without reading their stored state.
const ROLLOUT_STATES: &str = "SELECT state, count(*) FROM intents GROUP BY 1";

/// What the waiting ones wait for: only their stored state is parsed.
const AWAITING_REQUIREMENTS: &str = "
SELECT json_extract(state_json, '$.run.phase.requirement'), count(*)
FROM intents WHERE state = 'awaiting_approval' GROUP BY 1";

/// What a scrape reads of an intent's stored state: its rings' figures and
/// the plane it was last saved with, nothing else (serde skips the rest).
#[derive(serde::Deserialize)]
struct StoredState {
    #[serde(default)]
    run: Option<StoredRun>,
    #[serde(default)]
    plane: Option<StoredPlane>,
}

#[derive(serde::Deserialize)]
struct StoredRun {
    #[serde(default)]
    rings: Vec<StoredRing>,
}

#[derive(serde::Deserialize)]
struct StoredRing {
    ring: String,
    #[serde(default)]
    observed: Option<StoredCounts>,
}

#[derive(serde::Deserialize)]
struct StoredCounts {
    #[serde(default)]
    targeted: u64,
    #[serde(default)]
    installed: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    pending: u64,
}

#[derive(serde::Deserialize)]
struct StoredPlane {
    plane: String,
}

fn count_of(row: &Row<'_>, index: usize) -> Result<u64, StoreError> {
    Ok(row.get::<_, Option<i64>>(index)?.unwrap_or(0).max(0) as u64)
}

impl Store {
    /// The rollouts by state and the rings of the latest rollout (by
    /// `updated_at`, then intent id) of each application and business unit
    /// that has a run. Only those latest intents' states are parsed: a
    /// scrape of ten thousand intents reads a few hundred.
    pub fn rollout_rows(&self) -> Result<RolloutRows, StoreError> {
        let mut rows = RolloutRows::default();
        let mut statement = self.connection.prepare_cached(ROLLOUT_STATES)?;
        let mut query = statement.query(params![])?;
        while let Some(row) = query.next()? {
            let phase: String = row.get(0)?;
            if phase != "awaiting_approval" {
                rows.states.push(RolloutStateCount {
                    phase,
                    requirement: None,
                    count: count_of(row, 1)?,
                });
            }
        }
        let mut statement = self.connection.prepare_cached(AWAITING_REQUIREMENTS)?;
        let mut query = statement.query(params![])?;
        while let Some(row) = query.next()? {
            rows.states.push(RolloutStateCount {
                phase: "awaiting_approval".to_owned(),
                requirement: row.get(0)?,
                count: count_of(row, 1)?,
            });
        }
        // (application, business unit) -> intents, newest first.
        let mut statement = self.connection.prepare_cached(
            "SELECT application_id, business_unit, intent_id FROM intents
             ORDER BY application_id, business_unit, updated_at DESC, intent_id DESC",
        )?;
        let mut query = statement.query(params![])?;
        let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
        while let Some(row) = query.next()? {
            let (application, unit): (String, String) = (row.get(0)?, row.get(1)?);
            match groups.last_mut() {
                Some((a, u, intents)) if *a == application && *u == unit => {
                    intents.push(row.get(2)?)
                }
                _ => groups.push((application, unit, vec![row.get(2)?])),
            }
        }
        let mut state = self
            .connection
            .prepare_cached("SELECT state_json FROM intents WHERE intent_id = ?1")?;
        let mut plane_of = self.connection.prepare_cached(
            "SELECT execution_plane FROM events
             WHERE intent_id = ?1 AND execution_plane IS NOT NULL
             ORDER BY seq DESC LIMIT 1",
        )?;
        for (application, unit, intents) in groups {
            for intent_id in intents {
                let text: String = state.query_row(params![intent_id], |row| row.get(0))?;
                // A state this version cannot read counts as no run.
                let Ok(stored) = serde_json::from_str::<StoredState>(&text) else {
                    continue;
                };
                let Some(run) = stored.run else { continue };
                let plane = match stored.plane {
                    Some(plane) => plane.plane,
                    None => plane_of
                        .query_row(params![intent_id], |row| row.get(0))
                        .optional()?
                        .unwrap_or_default(),
                };
                for ring in run.rings {
                    let Some(observed) = ring.observed else {
                        continue;
                    };
                    rows.rings.push(LatestRing {
                        application_id: application.clone(),
                        business_unit: unit.clone(),
                        plane: plane.clone(),
                        ring: ring.ring,
                        targeted: observed.targeted,
                        installed: observed.installed,
                        failed: observed.failed,
                        pending: observed.pending,
                    });
                }
                break;
            }
        }
        Ok(rows)
    }
}

/// One recent event, for the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentEvent {
    pub seq: u64,
    pub intent_id: String,
    pub timestamp: DateTime<Utc>,
    pub plane: String,
    pub ring: String,
    pub outcome: String,
    pub details: serde_json::Value,
}

impl Store {
    /// The last `limit` events of `event_type`, newest first.
    pub fn recent_events(
        &self,
        event_type: &str,
        limit: usize,
    ) -> Result<Vec<RecentEvent>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT seq, coalesce(intent_id, ''), timestamp, coalesce(execution_plane, ''),
                    coalesce(ring, ''), outcome, details
             FROM events WHERE event_type = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut query = statement.query(params![event_type, limit as i64])?;
        let mut events = Vec::new();
        while let Some(row) = query.next()? {
            let timestamp: String = row.get(2)?;
            let details: String = row.get(6)?;
            events.push(RecentEvent {
                seq: row.get::<_, i64>(0)?.max(0) as u64,
                intent_id: row.get(1)?,
                timestamp: parse_timestamp(&timestamp, "events", "timestamp")?,
                plane: row.get(3)?,
                ring: row.get(4)?,
                outcome: row.get(5)?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::GENESIS_PREV_HASH;
    use serde_json::{Value, json};

    fn intent(store: &Store, id: &str, application: &str, unit: &str, at: &str, state: Value) {
        let column = state["run"]["phase"]["phase"]
            .as_str()
            .unwrap_or("pending")
            .to_owned();
        store
            .connection
            .execute(
                "INSERT INTO intents (intent_id, correlation_id, application_id,
                   acquisition_boundary, business_unit, version, content_sha256, state,
                   state_json, decision, risk_score, updated_at)
                 VALUES (?1, ?1, ?2, 'acq', ?3, '1', 'sha', ?6, ?4, 'ALLOW', 1, ?5)",
                params![id, application, unit, state.to_string(), at, column],
            )
            .expect("intent");
    }

    fn event(store: &Store, seq: i64, intent: &str, plane: Option<&str>) {
        let previous = if seq == 1 {
            GENESIS_PREV_HASH.to_owned()
        } else {
            format!("{:064x}", seq - 1)
        };
        store
            .connection
            .execute(
                "INSERT INTO events (seq, event_id, correlation_id, intent_id, event_type,
                   timestamp, actor, actor_role, execution_plane, ring, outcome, details,
                   prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?3, 'ring_started', '2026-12-01T00:00:00.000000Z',
                   'ringmaster', 'control-plane', ?4, NULL, 'success', '{}', ?5, ?6)",
                params![
                    seq,
                    format!("e{seq}"),
                    intent,
                    plane,
                    previous,
                    format!("{seq:064x}")
                ],
            )
            .expect("event");
    }

    fn run(phase: Value, installed: u32) -> Value {
        json!({"run": {"phase": phase, "rings": [
            {"ring": "ring-0-lab", "observed": {"targeted": 10, "installed": installed,
              "failed": 1, "pending": 10 - installed - 1}},
            {"ring": "ring-1-canary", "observed": null}
        ]}})
    }

    #[test]
    fn rollout_rows_count_phases_and_read_the_latest_rollout_of_each_application_and_unit() {
        let store = Store::open_in_memory().expect("store");
        let completed = json!({"phase": "completed"});
        let waiting = json!({"phase": "awaiting_approval", "ring": "ring-1-canary",
                             "requirement": "cab_approval"});
        // zoom in finance: an older and a newer rollout; the newer counts.
        intent(
            &store,
            "zoom-1",
            "zoom",
            "bu-finance",
            "2026-12-01T00:00:00.000000Z",
            run(completed.clone(), 2),
        );
        intent(
            &store,
            "zoom-2",
            "zoom",
            "bu-finance",
            "2026-12-02T00:00:00.000000Z",
            run(waiting, 7),
        );
        intent(
            &store,
            "zoom-3",
            "zoom",
            "bu-sales",
            "2026-12-01T00:00:00.000000Z",
            run(completed, 9),
        );
        // No run yet: counted by its state column, no rings.
        intent(
            &store,
            "chrome-1",
            "chrome",
            "bu-finance",
            "2026-12-03T00:00:00.000000Z",
            json!({}),
        );
        event(&store, 1, "zoom-2", Some("jamf"));
        event(&store, 2, "zoom-2", None);
        event(&store, 3, "zoom-3", Some("intune"));

        let rows = store.rollout_rows().expect("rows");
        let mut states: Vec<(String, Option<String>, u64)> = rows
            .states
            .iter()
            .map(|s| (s.phase.clone(), s.requirement.clone(), s.count))
            .collect();
        states.sort();
        assert_eq!(
            states,
            vec![
                ("awaiting_approval".into(), Some("cab_approval".into()), 1),
                ("completed".into(), None, 2),
                ("pending".into(), None, 1),
            ]
        );
        let mut rings = rows.rings.clone();
        rings.sort_by(|a, b| a.business_unit.cmp(&b.business_unit));
        assert_eq!(
            rings.len(),
            2,
            "one observed ring per latest rollout: {rings:?}"
        );
        assert_eq!(
            (
                rings[0].business_unit.as_str(),
                rings[0].plane.as_str(),
                rings[0].installed
            ),
            ("bu-finance", "jamf", 7)
        );
        assert_eq!(
            (
                rings[1].business_unit.as_str(),
                rings[1].plane.as_str(),
                rings[1].installed
            ),
            ("bu-sales", "intune", 9)
        );
        assert_eq!(
            (rings[0].targeted, rings[0].failed, rings[0].pending),
            (10, 1, 2)
        );
    }
}
