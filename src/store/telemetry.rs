//! Read-only aggregates for `/metrics` and the status page: counts grouped
//! by the few low-cardinality columns the metrics carry as labels
//! (application, ring, plane, business unit, outcome), computed by SQLite so
//! a scrape reads rows per label set, never per event.
//!
//! Counters derived here are monotonic across restarts: the event log only
//! grows (see `events`), so a count over it never goes down.

use super::time::{parse_optional_timestamp, parse_timestamp};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::params;

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
WHERE e.event_type IN ('commit_processed', 'evidence_committed', 'ring_started',
  'ring_completed', 'gate_evaluated', 'rollback_executed', 'drift_detected',
  'remediation_result', 'cab_approved', 'publish_blocked', 'incident_opened')
GROUP BY 1, 2, 3, 4, 5, 6";

impl Store {
    /// The aggregates behind `/metrics` (see the module doc).
    pub fn telemetry_rows(&self) -> Result<TelemetryRows, StoreError> {
        let connection = &self.connection;
        let mut rows = TelemetryRows::default();
        let mut statement = connection.prepare_cached(EVENT_COUNTS)?;
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            rows.events.push(EventCount {
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
             FROM events WHERE event_type = 'ring_completed'
               AND json_type(details, '$.gate.time_to_compliance_hours') IN ('real', 'integer')",
        )?;
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            rows.compliance.push(ComplianceObservation {
                ring: row.get(0)?,
                site_class: row.get(1)?,
                hours: row.get(2)?,
            });
        }
        let mut statement = connection.prepare_cached(
            // A later run's actions carry `@run-N`: grouped with the first's,
            // so the operation label stays a closed set.
            "SELECT plane,
                    CASE WHEN instr(action, '@run-') > 0
                      THEN substr(action, 1, instr(action, '@run-') - 1) ELSE action END,
                    state, count(*), sum(attempts) FROM idempotency
             GROUP BY 1, 2, 3",
        )?;
        let mut query = statement.query([])?;
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
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            rows.commits
                .push((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64));
        }
        let last: Option<String> = connection.query_row(
            "SELECT max(processed_at) FROM processed_commits",
            [],
            |row| row.get(0),
        )?;
        rows.last_processed_at =
            parse_optional_timestamp(last, "processed_commits", "processed_at")?;
        let mut statement = connection
            .prepare_cached("SELECT processed, count(*) FROM webhook_deliveries GROUP BY 1")?;
        let mut query = statement.query([])?;
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
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |row| {
                row.get::<_, i64>(0)
            })?
            .max(0) as u64;
        Ok(rows)
    }
}

const ROLLOUT_STATES: &str = "
SELECT coalesce(json_extract(state_json, '$.run.phase.phase'), state),
       json_extract(state_json, '$.run.phase.requirement'),
       count(*)
FROM intents GROUP BY 1, 2";

/// The rings of the latest rollout (by `updated_at`) of each application and
/// business unit that has a run, with the plane its events name last.
const LATEST_RINGS: &str = "
WITH latest AS (
  SELECT intent_id, application_id, business_unit, state_json FROM (
    SELECT intent_id, application_id, business_unit, state_json,
           row_number() OVER (PARTITION BY application_id, business_unit
                              ORDER BY updated_at DESC, intent_id DESC) AS position
    FROM intents WHERE json_type(state_json, '$.run.rings') = 'array')
  WHERE position = 1)
SELECT l.application_id, l.business_unit,
       coalesce((SELECT e.execution_plane FROM events e
                 WHERE e.intent_id = l.intent_id AND e.execution_plane IS NOT NULL
                 ORDER BY e.seq DESC LIMIT 1), ''),
       coalesce(json_extract(r.value, '$.ring'), ''),
       coalesce(json_extract(r.value, '$.observed.targeted'), 0),
       coalesce(json_extract(r.value, '$.observed.installed'), 0),
       coalesce(json_extract(r.value, '$.observed.failed'), 0),
       coalesce(json_extract(r.value, '$.observed.pending'), 0)
FROM latest l, json_each(l.state_json, '$.run.rings') r
WHERE json_type(r.value, '$.observed') = 'object'";

fn count_of(row: &rusqlite::Row<'_>, index: usize) -> Result<u64, rusqlite::Error> {
    Ok(row.get::<_, Option<i64>>(index)?.unwrap_or(0).max(0) as u64)
}

impl Store {
    /// The rollouts by state and the rings of the latest rollouts (see
    /// [`RolloutRows`]).
    pub fn rollout_rows(&self) -> Result<RolloutRows, StoreError> {
        let mut rows = RolloutRows::default();
        let mut statement = self.connection.prepare_cached(ROLLOUT_STATES)?;
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            rows.states.push(RolloutStateCount {
                phase: row.get(0)?,
                requirement: row.get(1)?,
                count: count_of(row, 2)?,
            });
        }
        let mut statement = self.connection.prepare_cached(LATEST_RINGS)?;
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            rows.rings.push(LatestRing {
                application_id: row.get(0)?,
                business_unit: row.get(1)?,
                plane: row.get(2)?,
                ring: row.get(3)?,
                targeted: count_of(row, 4)?,
                installed: count_of(row, 5)?,
                failed: count_of(row, 6)?,
                pending: count_of(row, 7)?,
            });
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
