//! `controls`: what a test (or a user of the standalone simulator) does to the
//! account behind the connector's back: tagged computers, faults, tokens,
//! computers checking in, activities and package changes ringmaster did not
//! make, and drift of installed versions. The simulator knows nothing of
//! correlation ids: everything here is keyed by tag, package and version.

use super::LandscapeSimulator;
use super::state::{SimulatorFault, is_final};
use chrono::{DateTime, Utc};
use serde_json::Value;

impl LandscapeSimulator {
    /// `computer_count` new computers carrying `tag`.
    pub fn add_tag(&self, tag: &str, computer_count: u32) {
        let mut state = self.lock();
        for _ in 0..computer_count {
            state.add_computer(tag);
        }
    }

    /// The ids of the computers carrying `tag`.
    pub fn computers_tagged(&self, tag: &str) -> Vec<i64> {
        let state = self.lock();
        state
            .computers
            .values()
            .filter(|computer| computer.tags.contains(tag))
            .map(|computer| computer.id)
            .collect()
    }

    pub fn inject(&self, fault: SimulatorFault) {
        self.lock().faults.inject(fault);
    }

    /// Every JWT issued so far stops working.
    pub fn expire_tokens(&self) {
        self.lock().tokens.expire_all();
    }

    /// From now on the access key, the password and every token are refused.
    pub fn revoke_credentials(&self) {
        self.lock().tokens.revoke_credentials();
    }

    /// Legacy API requests answered so far (logins excluded).
    pub fn api_requests(&self) -> u64 {
        self.lock().faults.requests()
    }

    /// `POST /api/v2/login` requests answered so far.
    pub fn token_requests(&self) -> u64 {
        self.lock().tokens.requests()
    }

    /// The secret key, the password and every token issued.
    pub fn credentials(&self) -> Vec<String> {
        let state = self.lock();
        let mut credentials = vec![
            state.secret_key.expose().to_string(),
            state.password.expose().to_string(),
        ];
        credentials.extend(state.tokens.issued().cloned());
        credentials
    }

    /// An activity as `GetActivities` shows it.
    pub fn activity(&self, id: i64) -> Option<Value> {
        let state = self.lock();
        state
            .activities
            .get(&id)
            .map(|activity| state.activity_json(activity))
    }

    /// Every child activity not final yet reports at `at`: installs succeed,
    /// or fail for the share `1 - success_rate` (drawn from the activity and
    /// computer ids, so a fleet is the same every time); removals succeed.
    /// Answers how many changed.
    pub fn check_in(&self, at: DateTime<Utc>, success_rate: f64) -> usize {
        let mut state = self.lock();
        let open: Vec<(i64, bool)> = state
            .activities
            .values()
            .filter(|activity| activity.parent_id.is_some() && !is_final(&activity.status))
            .map(|activity| {
                let removal = activity
                    .changes
                    .iter()
                    .all(|change| change.kind == "remove");
                let draw = uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    format!(
                        "{}/{}",
                        activity.parent_id.unwrap_or_default(),
                        activity.computer_id.unwrap_or_default()
                    )
                    .as_bytes(),
                );
                let fraction = (draw.as_u128() % 10_000) as f64 / 10_000.0;
                (activity.id, removal || fraction < success_rate)
            })
            .collect();
        for (id, succeeded) in &open {
            state.complete(*id, *succeeded, at);
        }
        open.len()
    }

    /// The first `installed` open child activities installing `package` (in
    /// id order) succeed at `at`, the next `failed` fail; the rest stay open.
    pub fn report(&self, package: &str, installed: u32, failed: u32, at: DateTime<Utc>) {
        let mut state = self.lock();
        let open: Vec<i64> = state
            .activities
            .values()
            .filter(|activity| activity.parent_id.is_some() && !is_final(&activity.status))
            .filter(|activity| {
                activity
                    .changes
                    .iter()
                    .any(|change| change.kind == "install" && change.package == package)
            })
            .map(|activity| activity.id)
            .collect();
        let total = usize::try_from(installed + failed).unwrap_or(usize::MAX);
        for (index, id) in open.into_iter().take(total).enumerate() {
            let succeeded = index < usize::try_from(installed).unwrap_or(usize::MAX);
            state.complete(id, succeeded, at);
        }
    }

    /// Parent activities installing `package` at `version`, ever.
    pub fn install_activities(&self, package: &str, version: &str) -> usize {
        self.lock().install_parents(package, version).len()
    }

    /// Parent activities installing `package` at `version` that still hold:
    /// a child not cancelled, on a computer with no later removal of the
    /// package. A duplicate install shows here.
    pub fn live_install_activities(&self, package: &str, version: &str) -> usize {
        let state = self.lock();
        state
            .install_parents(package, version)
            .into_iter()
            .filter(|parent| state.is_live(parent, package))
            .count()
    }

    /// Child activities installing `package` at `version` that no computer
    /// has acted on yet (not succeeded, failed or cancelled): what would
    /// still install.
    pub fn undelivered_installs(&self, package: &str, version: &str) -> usize {
        let state = self.lock();
        state
            .install_parents(package, version)
            .into_iter()
            .map(|parent| {
                state
                    .children_of(parent.id)
                    .filter(|child| !super::state::is_final(&child.status))
                    .count()
            })
            .sum()
    }

    /// Computers that report `package` installed (at `version`, when given).
    pub fn computers_with_package(&self, package: &str, version: Option<&str>) -> usize {
        let state = self.lock();
        state
            .computers
            .values()
            .filter(|computer| {
                computer
                    .packages
                    .get(package)
                    .is_some_and(|found| version.is_none_or(|wanted| found == wanted))
            })
            .count()
    }

    /// A package change someone made outside ringmaster on the computers
    /// `query` selects (`remove` for `RemovePackages`). Answers the parent id.
    pub fn run_package_change(
        &self,
        query: &str,
        package: &str,
        version: Option<&str>,
        remove: bool,
    ) -> Result<i64, String> {
        let mut state = self.lock();
        let spec = match version {
            Some(version) => format!("{package}={version}"),
            None => package.to_string(),
        };
        let kind = if remove { "remove" } else { "install" };
        state.create_change(kind, query, &[spec], "someone@example.com", Utc::now())
    }

    /// The first `count` computers running `package` now report `to_version`
    /// (someone downgraded them by hand). Answers how many changed.
    pub fn revert_version(&self, package: &str, to_version: &str, count: u32) -> usize {
        let mut state = self.lock();
        let mut changed = 0;
        for computer in state.computers.values_mut() {
            if changed >= usize::try_from(count).unwrap_or(usize::MAX) {
                break;
            }
            if let Some(version) = computer.packages.get_mut(package) {
                *version = to_version.to_string();
                changed += 1;
            }
        }
        changed
    }

    /// The computers carrying `tag` no longer report `package` (removed by
    /// hand, no activity). Answers how many had it.
    pub fn remove_package_from(&self, tag: &str, package: &str) -> usize {
        let mut state = self.lock();
        state
            .computers
            .values_mut()
            .filter(|computer| computer.tags.contains(tag))
            .filter_map(|computer| computer.packages.remove(package))
            .count()
    }

    /// `count` finished package changes of other packages, so activity lists
    /// span pages.
    pub fn add_unrelated_activities(&self, count: usize) {
        let mut state = self.lock();
        let Some(computer) = state.computers.keys().next().copied() else {
            return;
        };
        for index in 0..count {
            let spec = format!("unrelated-tool-{index}=1.{index}");
            let query = format!("id:{computer}");
            if let Ok(parent) =
                state.create_change("install", &query, &[spec], "other@example.com", Utc::now())
            {
                let children: Vec<i64> = state.children_of(parent).map(|child| child.id).collect();
                for child in children {
                    state.complete(child, true, Utc::now());
                }
            }
        }
    }
}
