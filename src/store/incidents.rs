//! `incidents`: open and resolved incidents reported by the incident sources
//! (an Alertmanager webhook receiver, a signed generic webhook), read by the
//! promotion gates.
//!
//! One row per incident, keyed by its source and the source's own id
//! (`alertmanager` + the alert's fingerprint, `webhook` + the sender's incident
//! id), so a re-delivered or repeated report updates the row instead of adding
//! one: reports are deduplicated by construction. An incident names the
//! application it is about, and optionally a ring and a business unit; a gate
//! counts every open incident whose application is the rollout's and whose
//! ring and business unit, when given, are the rollout's too
//! ([`Store::open_incidents_matching`]).
//!
//! The intake (authentication, parsing each source's payload into an
//! [`IncidentReport`]) lives with the API; this file is only the table and the
//! two operations the rest of ringmaster needs: record a report, and ask
//! which incidents are open for a rollout at a time.

use super::db::{Row, TransactionBehavior, params};
use super::time::{format_timestamp, parse_optional_timestamp, parse_timestamp};
use super::{OptionalStoreExtension, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether an incident still counts against rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Resolved => "resolved",
        }
    }

    fn parse(text: &str) -> Result<IncidentStatus, StoreError> {
        match text {
            "open" => Ok(IncidentStatus::Open),
            "resolved" => Ok(IncidentStatus::Resolved),
            other => Err(StoreError::InvalidStoredValue {
                table: "incidents",
                column: "status",
                value: other.to_string(),
            }),
        }
    }
}

/// One report from an incident source: opens, updates or resolves the
/// incident `(source, external_id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentReport {
    /// Which intake received it: `alertmanager`, `webhook`, ...
    pub source: String,
    /// The source's own id of the incident (Alertmanager: the alert's
    /// fingerprint); the deduplication key within the source.
    pub external_id: String,
    /// The application the incident is about (required: an incident that
    /// names no application cannot be matched to a rollout).
    pub application_id: String,
    /// The ring it was seen in; `None`: every ring of the application.
    pub ring: Option<String>,
    /// The business unit it was seen in; `None`: every business unit.
    pub business_unit: Option<String>,
    /// The source's severity (`critical`, `warning`, `sev2`, ...), as sent.
    pub severity: String,
    /// One line for people.
    pub summary: String,
    pub status: IncidentStatus,
    /// When the source says it started (Alertmanager `startsAt`), else when
    /// it was received.
    pub started_at: DateTime<Utc>,
    /// The report as received (or the parts worth keeping), for the record.
    pub details: Value,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub incident_id: u64,
    pub source: String,
    pub external_id: String,
    pub application_id: String,
    pub ring: Option<String>,
    pub business_unit: Option<String>,
    pub severity: String,
    pub summary: String,
    pub status: IncidentStatus,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub details: Value,
}

/// What recording a report changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentChange {
    /// A new incident (open or, oddly, already resolved).
    Created,
    /// A known open incident resolved.
    Resolved,
    /// A resolved incident fired again.
    Reopened,
    /// Same status as before: a duplicate or a repeat (fields refreshed).
    Unchanged,
}

const COLUMNS: &str = "incident_id, source, external_id, application_id, ring, business_unit, \
     severity, summary, status, started_at, resolved_at, updated_at, details";

impl Store {
    /// Records a report: inserts the incident, or updates the one with the
    /// same `(source, external_id)`. Idempotent: the same report twice changes
    /// nothing the second time (the answer says [`IncidentChange::Unchanged`]).
    pub fn record_incident(
        &mut self,
        report: &IncidentReport,
        now: DateTime<Utc>,
    ) -> Result<IncidentChange, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<String> = transaction
            .query_row(
                "SELECT status FROM incidents WHERE source = ?1 AND external_id = ?2",
                params![report.source, report.external_id],
                |row| row.get(0),
            )
            .optional()?;
        let resolved_at = match report.status {
            IncidentStatus::Open => None,
            IncidentStatus::Resolved => Some(format_timestamp(now)),
        };
        let details = serde_json::to_string(&report.details)?;
        let change = match existing.as_deref().map(IncidentStatus::parse).transpose()? {
            None => {
                transaction.execute(
                    "INSERT INTO incidents (source, external_id, application_id, ring,
                         business_unit, severity, summary, status, started_at, resolved_at,
                         updated_at, details)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        report.source,
                        report.external_id,
                        report.application_id,
                        report.ring,
                        report.business_unit,
                        report.severity,
                        report.summary,
                        report.status.as_str(),
                        format_timestamp(report.started_at),
                        resolved_at,
                        format_timestamp(now),
                        details,
                    ],
                )?;
                IncidentChange::Created
            }
            Some(previous) => {
                // A resolved incident keeps its first resolution time; one that
                // fires again is open with no resolution time.
                transaction.execute(
                    "UPDATE incidents SET application_id = ?3, ring = ?4, business_unit = ?5,
                         severity = ?6, summary = ?7, status = ?8,
                         resolved_at = CASE WHEN ?8 = 'open' THEN NULL
                                            ELSE coalesce(resolved_at, ?9) END,
                         updated_at = ?10, details = ?11
                     WHERE source = ?1 AND external_id = ?2",
                    params![
                        report.source,
                        report.external_id,
                        report.application_id,
                        report.ring,
                        report.business_unit,
                        report.severity,
                        report.summary,
                        report.status.as_str(),
                        resolved_at,
                        format_timestamp(now),
                        details,
                    ],
                )?;
                match (previous, report.status) {
                    (IncidentStatus::Open, IncidentStatus::Resolved) => IncidentChange::Resolved,
                    (IncidentStatus::Resolved, IncidentStatus::Open) => IncidentChange::Reopened,
                    _ => IncidentChange::Unchanged,
                }
            }
        };
        transaction.commit()?;
        Ok(change)
    }

    /// The incidents open at `now` that count against a rollout of
    /// `application_id` in `ring` for `business_unit`: same application, and
    /// ring and business unit either the rollout's or not given. Oldest first.
    pub fn open_incidents_matching(
        &self,
        application_id: &str,
        ring: &str,
        business_unit: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {COLUMNS} FROM incidents
             WHERE status = 'open' AND application_id = ?1
               AND (ring IS NULL OR ring = ?2)
               AND (business_unit IS NULL OR business_unit = ?3)
               AND started_at <= ?4
             ORDER BY started_at, incident_id"
        ))?;
        let rows = statement.query_and_then(
            params![application_id, ring, business_unit, format_timestamp(now)],
            read_incident,
        )?;
        rows.collect()
    }

    /// The incident `(source, external_id)`, if known: one indexed lookup
    /// (the pair is the table's unique key), for the intake's checks.
    pub fn incident(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<Incident>, StoreError> {
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents WHERE source = ?1 AND external_id = ?2"
        ))?;
        let mut rows = statement.query_and_then(params![source, external_id], read_incident)?;
        rows.next().transpose()
    }

    /// Every incident, newest first (for `status` and the API).
    pub fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {COLUMNS} FROM incidents ORDER BY incident_id DESC"
        ))?;
        let rows = statement.query_and_then(params![], read_incident)?;
        rows.collect()
    }
}

fn read_incident(row: &Row<'_>) -> Result<Incident, StoreError> {
    let details: String = row.get("details")?;
    Ok(Incident {
        incident_id: u64::try_from(row.get::<_, i64>("incident_id")?).unwrap_or(0),
        source: row.get("source")?,
        external_id: row.get("external_id")?,
        application_id: row.get("application_id")?,
        ring: row.get("ring")?,
        business_unit: row.get("business_unit")?,
        severity: row.get("severity")?,
        summary: row.get("summary")?,
        status: IncidentStatus::parse(&row.get::<_, String>("status")?)?,
        started_at: parse_timestamp(
            &row.get::<_, String>("started_at")?,
            "incidents",
            "started_at",
        )?,
        resolved_at: parse_optional_timestamp(row.get("resolved_at")?, "incidents", "resolved_at")?,
        updated_at: parse_timestamp(
            &row.get::<_, String>("updated_at")?,
            "incidents",
            "updated_at",
        )?,
        details: serde_json::from_str(&details).map_err(|_| StoreError::InvalidStoredValue {
            table: "incidents",
            column: "details",
            value: details.clone(),
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use serde_json::json;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0).unwrap()
    }

    fn report(
        id: &str,
        ring: Option<&str>,
        bu: Option<&str>,
        status: IncidentStatus,
    ) -> IncidentReport {
        IncidentReport {
            source: "webhook".into(),
            external_id: id.into(),
            application_id: "google-chrome".into(),
            ring: ring.map(str::to_owned),
            business_unit: bu.map(str::to_owned),
            severity: "critical".into(),
            summary: "browser crashes on start".into(),
            status,
            started_at: at(9),
            details: json!({"id": id}),
        }
    }

    fn matching(store: &Store, ring: &str, bu: &str, hour: u32) -> Vec<String> {
        store
            .open_incidents_matching("google-chrome", ring, bu, at(hour))
            .unwrap()
            .into_iter()
            .map(|incident| incident.external_id)
            .collect()
    }

    #[test]
    fn an_open_incident_matches_its_app_ring_and_business_unit() {
        let mut store = Store::open_in_memory().unwrap();
        let open = IncidentStatus::Open;
        store
            .record_incident(
                &report("a", Some("ring-1-canary"), Some("bu-finance"), open),
                at(9),
            )
            .unwrap();
        store
            .record_incident(&report("b", None, Some("bu-hr"), open), at(9))
            .unwrap();
        store
            .record_incident(&report("c", None, None, open), at(9))
            .unwrap();
        assert_eq!(
            matching(&store, "ring-1-canary", "bu-finance", 10),
            ["a", "c"]
        );
        assert_eq!(matching(&store, "ring-2-pilot", "bu-hr", 10), ["b", "c"]);
        // Not yet started at 8:00.
        assert!(matching(&store, "ring-1-canary", "bu-finance", 8).is_empty());
        assert!(
            store
                .open_incidents_matching("firefox", "ring-1-canary", "bu-finance", at(10))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reports_are_deduplicated_and_resolution_closes() {
        let mut store = Store::open_in_memory().unwrap();
        let first = report("a", None, None, IncidentStatus::Open);
        assert_eq!(
            store.record_incident(&first, at(9)).unwrap(),
            IncidentChange::Created
        );
        assert_eq!(
            store.record_incident(&first, at(9)).unwrap(),
            IncidentChange::Unchanged
        );
        assert_eq!(store.incidents().unwrap().len(), 1);
        let resolved = report("a", None, None, IncidentStatus::Resolved);
        assert_eq!(
            store.record_incident(&resolved, at(10)).unwrap(),
            IncidentChange::Resolved
        );
        assert!(matching(&store, "ring-1-canary", "bu-finance", 11).is_empty());
        assert_eq!(store.incidents().unwrap()[0].resolved_at, Some(at(10)));
        assert_eq!(
            store.record_incident(&first, at(12)).unwrap(),
            IncidentChange::Reopened
        );
        assert_eq!(matching(&store, "ring-1-canary", "bu-finance", 12), ["a"]);
        assert_eq!(store.incidents().unwrap()[0].resolved_at, None);
    }
}
