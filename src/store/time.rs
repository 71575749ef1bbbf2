//! How the store writes and reads timestamps.
//!
//! Every timestamp is RFC 3339 in UTC with exactly six fractional digits and a `Z`
//! (`2026-01-04T10:00:00.000000Z`). The fixed width makes text comparison in SQL
//! (`next_attempt_at <= ?`) agree with time order, and the text is what the event
//! hash covers, so it must never depend on how a caller formatted its clock.
//! Sub-microsecond precision is dropped.

use super::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Formats `instant` the one way the store stores time.
pub(super) fn format_timestamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored timestamp; `table` and `column` name it in the error.
pub(super) fn parse_timestamp(
    text: &str,
    table: &'static str,
    column: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| StoreError::InvalidStoredValue {
            table,
            column,
            value: text.to_string(),
        })
}

/// Parses an optional stored timestamp.
pub(super) fn parse_optional_timestamp(
    text: Option<String>,
    table: &'static str,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|text| parse_timestamp(&text, table, column))
        .transpose()
}

/// Serde: writes a timestamp exactly as the store stores it, so JSON output
/// (`ringmaster events`) carries the same text the event hash covers.
pub(super) fn serialize_timestamp<S: Serializer>(
    instant: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(*instant))
}

/// Serde: as [`serialize_timestamp`], for an optional timestamp.
pub(super) fn serialize_optional_timestamp<S: Serializer>(
    instant: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match instant {
        Some(instant) => serializer.serialize_str(&format_timestamp(*instant)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_fixed_width_and_round_trip() {
        let instant = Utc.with_ymd_and_hms(2026, 1, 4, 10, 0, 0).unwrap();
        let text = format_timestamp(instant);
        assert_eq!(text, "2026-01-04T10:00:00.000000Z");
        assert_eq!(parse_timestamp(&text, "t", "c").unwrap(), instant);
    }

    #[test]
    fn sub_microsecond_precision_is_dropped() {
        let instant = Utc.timestamp_opt(1_767_520_800, 123_456_789).unwrap();
        assert_eq!(format_timestamp(instant), "2026-01-04T10:00:00.123456Z");
    }

    #[test]
    fn unreadable_timestamp_names_table_and_column() {
        let error = parse_timestamp("yesterday", "events", "timestamp").unwrap_err();
        assert!(error.to_string().contains("events.timestamp"));
    }
}
