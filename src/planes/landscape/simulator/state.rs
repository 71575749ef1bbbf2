//! `state`: what the simulated Landscape account holds (computers with tags
//! and installed packages, activities: parents and per-computer children),
//! the computer and activity query languages, and the faults waiting for the
//! next requests, behind one mutex.

use crate::planes::Secret;
use crate::planes::simulators::kit::{Fault, Faults, Tokens};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which request loses its answer after it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRequest {
    InstallPackages,
    RemovePackages,
    /// The next `InstallPackages` or `RemovePackages`, whichever comes first.
    AnyPackageChange,
}

impl LostRequest {
    pub fn matches(self, action: &str) -> bool {
        match self {
            LostRequest::InstallPackages => action == "InstallPackages",
            LostRequest::RemovePackages => action == "RemovePackages",
            LostRequest::AnyPackageChange => {
                matches!(action, "InstallPackages" | "RemovePackages")
            }
        }
    }
}

/// A failure of the next request(s) to the legacy API.
/// (Landscape documents no throttling, [U]; a proxy in front of it may
/// throttle. A rejection carries the legacy error body.)
pub type SimulatorFault = Fault<LostRequest>;

#[derive(Debug, Clone)]
pub struct SimComputer {
    pub id: i64,
    pub title: String,
    pub hostname: String,
    pub tags: BTreeSet<String>,
    /// Installed packages (name → version), as the last package report says.
    pub packages: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimChange {
    pub package: String,
    /// `install` or `remove`.
    pub kind: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SimActivity {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub computer_id: Option<i64>,
    /// `ActivityGroup` (parent) or `ChangePackagesRequest` (child).
    pub kind: String,
    pub summary: String,
    /// The child's status; a parent's is derived from its children.
    pub status: String,
    pub result_code: Option<i64>,
    pub result_text: Option<String>,
    pub creation_time: DateTime<Utc>,
    pub delivery_time: Option<DateTime<Utc>>,
    pub completion_time: Option<DateTime<Utc>>,
    pub modification_time: DateTime<Utc>,
    pub changes: Vec<SimChange>,
    pub creator: String,
}

/// Final `activity_status` values.
pub fn is_final(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled")
}

/// A parsed computer or activity query: alternatives joined by `OR`, each a
/// conjunction of terms, any of them negated by `NOT`.
#[derive(Debug, Clone)]
pub struct Query {
    alternatives: Vec<Vec<(bool, String)>>,
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, String> {
        let mut alternatives = Vec::new();
        let mut clause: Vec<(bool, String)> = Vec::new();
        let mut negate = false;
        for token in text.split_whitespace() {
            match token {
                "OR" if !negate && !clause.is_empty() => {
                    alternatives.push(std::mem::take(&mut clause));
                }
                "NOT" if !negate => negate = true,
                "OR" | "NOT" => return Err(format!("unexpected {token} in query {text:?}")),
                term if term.contains(':') => {
                    clause.push((negate, term.to_string()));
                    negate = false;
                }
                term => return Err(format!("unknown query term {term:?}")),
            }
        }
        if negate || (clause.is_empty() && !alternatives.is_empty()) {
            return Err(format!("query {text:?} ends with an operator"));
        }
        if !clause.is_empty() {
            alternatives.push(clause);
        }
        Ok(Query { alternatives })
    }

    /// Whether the query selects the item; an empty query selects everything.
    /// When every alternative requires a `key:value` term (not negated),
    /// the values: whatever the query selects has one of them, so a caller
    /// with an index by `key` looks only at those.
    pub fn required(&self, key: &str) -> Option<Vec<&str>> {
        let prefix = format!("{key}:");
        self.alternatives
            .iter()
            .map(|clause| {
                clause
                    .iter()
                    .find_map(|(negated, term)| term.strip_prefix(&prefix).filter(|_| !negated))
            })
            .collect::<Option<Vec<&str>>>()
            .filter(|values| !values.is_empty())
    }

    pub fn matches(
        &self,
        term_matches: &dyn Fn(&str) -> Result<bool, String>,
    ) -> Result<bool, String> {
        if self.alternatives.is_empty() {
            return Ok(true);
        }
        for clause in &self.alternatives {
            let mut all = true;
            for (negated, term) in clause {
                if term_matches(term)? == *negated {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

pub fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn none_or<T: Into<Value>>(value: Option<T>) -> Value {
    value.map_or_else(|| json!("None"), Into::into)
}

/// The whole simulated account.
pub struct LandscapeState {
    pub access_key: String,
    pub secret_key: Secret,
    pub email: String,
    pub password: Secret,
    pub account: String,
    /// JWTs issued by the login; false once expired.
    /// Issued bearer tokens, revoked credentials, token requests.
    pub tokens: Tokens,
    pub page_size: usize,
    pub timestamp_tolerance: chrono::Duration,
    pub computers: BTreeMap<i64, SimComputer>,
    pub activities: BTreeMap<i64, SimActivity>,
    /// Children of each parent activity, and computers by tag: a query
    /// naming a parent or a tag looks at those, not at every row.
    children: HashMap<i64, Vec<i64>>,
    by_tag: HashMap<String, BTreeSet<i64>>,
    /// The faults waiting for the next requests, and the request count.
    pub faults: Faults<LostRequest>,
    next_computer: i64,
    next_activity: i64,
}

impl LandscapeState {
    pub fn new(options: &super::SimulatorOptions) -> LandscapeState {
        LandscapeState {
            access_key: options.access_key.clone(),
            secret_key: options.secret_key.clone(),
            email: options.email.clone(),
            password: options.password.clone(),
            account: options.account.clone(),
            tokens: Tokens::default(),
            page_size: options.page_size.max(1),
            timestamp_tolerance: options.timestamp_tolerance,
            computers: BTreeMap::new(),
            activities: BTreeMap::new(),
            children: HashMap::new(),
            by_tag: HashMap::new(),
            faults: Faults::default(),
            next_computer: 0,
            next_activity: 100,
        }
    }

    pub fn add_computer(&mut self, tag: &str) -> i64 {
        self.next_computer += 1;
        let id = self.next_computer;
        let hostname = format!("{tag}-{id:04}");
        self.computers.insert(
            id,
            SimComputer {
                id,
                title: hostname.clone(),
                hostname,
                tags: BTreeSet::from([tag.to_string()]),
                packages: BTreeMap::new(),
            },
        );
        self.by_tag.entry(tag.to_string()).or_default().insert(id);
        id
    }

    fn next_activity_id(&mut self) -> i64 {
        self.next_activity += 1;
        self.next_activity
    }

    pub fn computer_term(computer: &SimComputer, term: &str) -> Result<bool, String> {
        let (key, value) = term.split_once(':').unwrap_or((term, ""));
        match key {
            "tag" => Ok(computer.tags.contains(value)),
            "id" => Ok(value.parse::<i64>().ok() == Some(computer.id)),
            "hostname" => Ok(computer.hostname == value),
            _ => Err(format!("unsupported computer query term {term:?}")),
        }
    }

    /// The computers a query selects, in id order.
    pub fn select_computers(&self, query: &str) -> Result<Vec<i64>, String> {
        let query = Query::parse(query)?;
        let candidates: Box<dyn Iterator<Item = &SimComputer>> = match query.required("tag") {
            Some(tags) => {
                let ids: BTreeSet<i64> = tags
                    .iter()
                    .filter_map(|tag| self.by_tag.get(*tag))
                    .flatten()
                    .copied()
                    .collect();
                Box::new(ids.into_iter().filter_map(|id| self.computers.get(&id)))
            }
            None => Box::new(self.computers.values()),
        };
        let mut selected = Vec::new();
        for computer in candidates {
            if query.matches(&|term| Self::computer_term(computer, term))? {
                selected.push(computer.id);
            }
        }
        Ok(selected)
    }

    fn activity_term(&self, activity: &SimActivity, term: &str) -> Result<bool, String> {
        let (key, value) = term.split_once(':').unwrap_or((term, ""));
        let number = || {
            value
                .parse::<i64>()
                .map_err(|_| format!("{key}: wants a number, got {value:?}"))
        };
        match key {
            "id" => Ok(activity.id == number()?),
            "parent-id" => Ok(activity.parent_id == Some(number()?)),
            "type" => Ok(activity.kind == value),
            "status" => Ok(self.status_of(activity) == value),
            "created-after" => {
                let after = DateTime::parse_from_rfc3339(value)
                    .map_err(|_| format!("created-after: wants a UTC time, got {value:?}"))?;
                Ok(activity.creation_time > after.with_timezone(&Utc))
            }
            "computer" => match activity.computer_id.and_then(|id| self.computers.get(&id)) {
                Some(computer) => Self::computer_term(computer, value),
                None => Ok(false),
            },
            _ => Err(format!("unsupported activity query term {term:?}")),
        }
    }

    /// The activities a query selects, in id order.
    pub fn select_activities(&self, query: &str) -> Result<Vec<i64>, String> {
        let query = Query::parse(query)?;
        let numbers = |values: Vec<&str>| -> BTreeSet<i64> {
            values
                .iter()
                .filter_map(|value| value.parse().ok())
                .collect()
        };
        let candidates: Box<dyn Iterator<Item = &SimActivity>> =
            match (query.required("parent-id"), query.required("id")) {
                (Some(parents), _) => Box::new(
                    numbers(parents)
                        .into_iter()
                        .flat_map(|parent| self.children_of(parent))
                        .map(|activity| (activity.id, activity))
                        .collect::<BTreeMap<i64, &SimActivity>>()
                        .into_values(),
                ),
                (None, Some(ids)) => Box::new(
                    numbers(ids)
                        .into_iter()
                        .filter_map(|id| self.activities.get(&id)),
                ),
                (None, None) => Box::new(self.activities.values()),
            };
        let mut selected = Vec::new();
        for activity in candidates {
            if query.matches(&|term| self.activity_term(activity, term))? {
                selected.push(activity.id);
            }
        }
        Ok(selected)
    }

    pub fn children_of(&self, parent_id: i64) -> impl Iterator<Item = &SimActivity> {
        self.children
            .get(&parent_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.activities.get(id))
    }

    /// A child's own status; a parent's from its children: undelivered while
    /// any is, then in progress, then failed, canceled, succeeded.
    pub fn status_of(&self, activity: &SimActivity) -> String {
        if activity.parent_id.is_some() || activity.kind != "ActivityGroup" {
            return activity.status.clone();
        }
        let statuses: Vec<String> = self
            .children_of(activity.id)
            .map(|child| child.status.clone())
            .collect();
        for wanted in [
            "undelivered",
            "unapproved",
            "scheduled",
            "delivered",
            "failed",
            "canceled",
        ] {
            if statuses.iter().any(|status| status == wanted) {
                return wanted.to_string();
            }
        }
        if statuses.is_empty() {
            activity.status.clone()
        } else {
            "succeeded".to_string()
        }
    }

    pub fn activity_json(&self, activity: &SimActivity) -> Value {
        let changes: Vec<Value> = activity
            .changes
            .iter()
            .map(|change| {
                json!({"package": change.package, "type": change.kind,
                       "version": change.version, "complemented": false})
            })
            .collect();
        json!({
            "id": activity.id,
            "type": activity.kind,
            "summary": activity.summary,
            "activity_status": self.status_of(activity),
            "creation_time": time_text(activity.creation_time),
            "delivery_time": activity.delivery_time.map(time_text),
            "completion_time": activity.completion_time.map(time_text),
            "modification_time": time_text(activity.modification_time),
            "creator": {"email": activity.creator, "id": 1, "name": "API user"},
            "computer_id": none_or(activity.computer_id),
            "parent_id": none_or(activity.parent_id),
            "deliver_delay_window": 0,
            "result_text": activity.result_text,
            "result_code": activity.result_code,
            "progress": 0,
            "changes": changes,
            "package_ids": [],
        })
    }

    /// A package change on the computers `query` selects: a parent activity
    /// and one undelivered child per computer. Answers the parent's id.
    pub fn create_change(
        &mut self,
        kind: &str,
        query: &str,
        specs: &[String],
        creator: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, String> {
        let computers = self.select_computers(query)?;
        let changes: Vec<SimChange> = specs
            .iter()
            .map(|spec| {
                let (package, version) = match spec.split_once('=') {
                    Some((package, version)) => (package, Some(version.to_string())),
                    None => (spec.as_str(), None),
                };
                SimChange {
                    package: package.to_string(),
                    kind: kind.to_string(),
                    version,
                }
            })
            .collect();
        let names: Vec<&str> = changes
            .iter()
            .map(|change| change.package.as_str())
            .collect();
        let verb = if kind == "remove" {
            "Remove"
        } else {
            "Install"
        };
        let summary = format!("{verb} packages {}", names.join(", "));
        let parent_id = self.next_activity_id();
        let base = SimActivity {
            id: parent_id,
            parent_id: None,
            computer_id: None,
            kind: "ActivityGroup".to_string(),
            summary: summary.clone(),
            status: "succeeded".to_string(),
            result_code: None,
            result_text: None,
            creation_time: now,
            delivery_time: None,
            completion_time: None,
            modification_time: now,
            changes: changes.clone(),
            creator: creator.to_string(),
        };
        self.activities.insert(parent_id, base.clone());
        for computer in computers {
            let id = self.next_activity_id();
            self.activities.insert(
                id,
                SimActivity {
                    id,
                    parent_id: Some(parent_id),
                    computer_id: Some(computer),
                    kind: "ChangePackagesRequest".to_string(),
                    status: "undelivered".to_string(),
                    ..base.clone()
                },
            );
            self.children.entry(parent_id).or_default().push(id);
        }
        Ok(parent_id)
    }

    /// Completes a child activity at `at`; a success changes the computer's
    /// installed packages.
    pub fn complete(&mut self, id: i64, succeeded: bool, at: DateTime<Utc>) {
        let Some(activity) = self.activities.get_mut(&id) else {
            return;
        };
        activity.status = if succeeded { "succeeded" } else { "failed" }.to_string();
        activity.delivery_time = Some(at);
        activity.completion_time = Some(at);
        activity.modification_time = at;
        if succeeded {
            activity.result_code = Some(0);
            activity.result_text = Some(String::new());
        } else {
            activity.result_code = Some(100);
            activity.result_text =
                Some("E: Sub-process /usr/bin/dpkg returned an error code (1)".to_string());
        }
        if !succeeded {
            return;
        }
        let changes = activity.changes.clone();
        let Some(computer) = activity
            .computer_id
            .and_then(|computer| self.computers.get_mut(&computer))
        else {
            return;
        };
        for change in changes {
            if change.kind == "remove" {
                computer.packages.remove(&change.package);
            } else {
                let version = change.version.unwrap_or_else(|| "1.0".to_string());
                computer.packages.insert(change.package, version);
            }
        }
    }

    /// Install parent activities of `package` at `version`.
    pub fn install_parents(&self, package: &str, version: &str) -> Vec<&SimActivity> {
        self.activities
            .values()
            .filter(|activity| activity.parent_id.is_none())
            .filter(|activity| {
                activity.changes.iter().any(|change| {
                    change.kind == "install"
                        && change.package == package
                        && change.version.as_deref() == Some(version)
                })
            })
            .collect()
    }

    /// Whether an install parent still holds: a child not cancelled on a
    /// computer with no later removal of the package.
    pub fn is_live(&self, parent: &SimActivity, package: &str) -> bool {
        self.children_of(parent.id).any(|child| {
            child.status != "canceled"
                && !self.activities.values().any(|later| {
                    later.parent_id.is_some()
                        && later.id > child.id
                        && later.computer_id == child.computer_id
                        && later.status != "canceled"
                        && later
                            .changes
                            .iter()
                            .any(|change| change.kind == "remove" && change.package == package)
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Query;

    fn selects(query: &str, tags: &[&str]) -> bool {
        Query::parse(query)
            .expect("query")
            .matches(&|term| {
                let tag = term.strip_prefix("tag:").ok_or("only tags here")?;
                Ok(tags.contains(&tag))
            })
            .expect("match")
    }

    #[test]
    fn the_query_language_has_and_not_and_or() {
        let table: [(&str, &[&str], bool); 7] = [
            ("tag:a", &["a"], true),
            ("tag:a", &["b"], false),
            ("tag:a NOT tag:k", &["a", "k"], false),
            ("tag:a NOT tag:k", &["a"], true),
            ("tag:a tag:b", &["a"], false),
            ("tag:a OR tag:b", &["b"], true),
            ("", &[], true),
        ];
        for (query, tags, expected) in table {
            assert_eq!(selects(query, tags), expected, "{query:?} on {tags:?}");
        }
        for malformed in [
            "tag:a OR",
            "NOT",
            "OR tag:a",
            "tag:a NOT NOT tag:b",
            "plain",
        ] {
            assert!(Query::parse(malformed).is_err(), "{malformed:?}");
        }
    }
}
