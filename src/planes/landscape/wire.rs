//! `wire`: the shapes of the legacy API as the connector reads and writes
//! them: activities (parent `ActivityGroup`s and per-computer
//! `ChangePackagesRequest` children, ids that may be the string `"None"`),
//! `activity_status` values, computer queries, package specs, and the names
//! the connector accepts as tags, packages and versions.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The child activity type of a package change.
pub const CHANGE_PACKAGES_REQUEST: &str = "ChangePackagesRequest";

/// One entry of an activity's `changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub package: String,
    /// `install` or `remove`.
    pub kind: String,
    pub version: Option<String>,
}

/// An activity as `GetActivities` (or `InstallPackages`) answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub computer_id: Option<i64>,
    pub kind: String,
    pub status: String,
    pub result_code: Option<i64>,
    pub creation_time: Option<String>,
    pub completion_time: Option<DateTime<Utc>>,
    pub changes: Vec<Change>,
}

/// An id that may be a number, a numeric string, `"None"` or null.
pub fn id_of(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

pub fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn time_of(value: &Value, field: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(value, field))
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

pub fn activity_of(value: &Value) -> Option<Activity> {
    let changes = value
        .get("changes")
        .and_then(Value::as_array)
        .map(|changes| {
            changes
                .iter()
                .map(|change| Change {
                    package: text(change, "package").to_string(),
                    kind: text(change, "type").to_string(),
                    version: change
                        .get("version")
                        .and_then(Value::as_str)
                        .filter(|version| !version.is_empty() && *version != "None")
                        .map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Activity {
        id: id_of(value.get("id"))?,
        parent_id: id_of(value.get("parent_id")),
        computer_id: id_of(value.get("computer_id")),
        kind: text(value, "type").to_string(),
        status: text(value, "activity_status").to_string(),
        result_code: id_of(value.get("result_code")),
        creation_time: value
            .get("creation_time")
            .and_then(Value::as_str)
            .map(str::to_string),
        completion_time: time_of(value, "completion_time"),
        changes,
    })
}

/// What a computer's child activity says about the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Pending,
}

/// `activity_status` → outcome: `succeeded`; `failed`, `canceled`; the rest
/// (`undelivered`, `unapproved`, `delivered`, `scheduled`, unknown) pending.
pub fn outcome_of(status: &str) -> Outcome {
    match status {
        "succeeded" => Outcome::Succeeded,
        "failed" | "canceled" => Outcome::Failed,
        _ => Outcome::Pending,
    }
}

/// A short, stable failure key: `canceled`, or the result code.
pub fn failure_reason(activity: &Activity) -> String {
    match (activity.status.as_str(), activity.result_code) {
        ("canceled", _) => "canceled".to_string(),
        (_, Some(code)) => format!("result_code_{code}"),
        _ => "failed".to_string(),
    }
}

/// `tag:<group> NOT tag:<excluded> ...`: a ring group's computers.
pub fn group_query(group: &str, exclusions: &[String]) -> String {
    let mut query = format!("tag:{group}");
    for excluded in exclusions.iter().filter(|excluded| *excluded != group) {
        query.push_str(&format!(" NOT tag:{excluded}"));
    }
    query
}

/// `id:1 OR id:2 ...`.
pub fn ids_query(ids: &[i64]) -> String {
    ids.iter()
        .map(|id| format!("id:{id}"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `name=version`, APT's way of asking for one version (reference 4.5: the
/// legacy API pins a version only by naming it).
pub fn package_spec(package: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{package}={version}"),
        None => package.to_string(),
    }
}

/// A tag as the query language can name it.
pub fn is_tag(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && text.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.')
        })
}

/// A Debian package name: lower case, digits, `+ - .`, two characters or more.
pub fn is_package_name(text: &str) -> bool {
    text.len() >= 2
        && text
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && text.chars().all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || matches!(character, '+' | '-' | '.')
        })
}

/// A Debian version: starts with a digit; letters, digits, `. + ~ : -`.
pub fn is_version(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|first| first.is_ascii_digit())
        && text.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '.' | '+' | '~' | ':' | '-')
        })
}
