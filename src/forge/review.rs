//! Where each reviewer stands on a pull request's current head.
//!
//! GitHub keeps every review; what counts is each reviewer's latest decisive
//! one (`APPROVED`, `CHANGES_REQUESTED`, or an approval later `DISMISSED`).
//! A comment-only review changes nothing. An approval counts only on the
//! exact head commit: a new push makes it stale. The pull request's author
//! never approves their own change. Pure: reviews in, standings out.

use super::wire::Review;
use serde::Serialize;

/// One reviewer's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Approved the current head: a candidate CAB approval.
    Approving,
    /// Approved an earlier commit; a push since made it stale.
    Stale,
    /// Asked for changes after (or instead of) approving.
    ChangesRequested,
    /// The approval was dismissed.
    Dismissed,
    /// The pull request's author cannot approve their own change.
    Author,
}

impl Standing {
    /// Why a review does not count, for the PR comment.
    pub fn explanation(self) -> &'static str {
        match self {
            Standing::Approving => "approves the current head",
            Standing::Stale => {
                "approved an earlier commit; a new push made it stale, approve again"
            }
            Standing::ChangesRequested => "requested changes, which withdraws an earlier approval",
            Standing::Dismissed => "the approval was dismissed",
            Standing::Author => "is the pull request's author and cannot approve it",
        }
    }
}

/// A reviewer's latest decisive review and what it means now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewStanding {
    pub login: String,
    pub standing: Standing,
    pub review: Review,
}

fn decisive(state: &str) -> bool {
    ["APPROVED", "CHANGES_REQUESTED", "DISMISSED"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(state))
}

/// Each reviewer's standing, ordered by login. Reviewers who only commented
/// are left out.
pub fn standings(reviews: &[Review], head_sha: &str, author: &str) -> Vec<ReviewStanding> {
    let mut ordered: Vec<&Review> = reviews.iter().filter(|r| decisive(&r.state)).collect();
    // Oldest first; GitHub's ids grow with time, so they break ties.
    ordered.sort_by_key(|r| (r.submitted_at, r.id));
    let mut latest: std::collections::BTreeMap<String, &Review> = Default::default();
    for review in ordered {
        latest.insert(review.login().to_ascii_lowercase(), review);
    }
    latest
        .into_values()
        .map(|review| {
            let state = review.state.to_ascii_uppercase();
            let standing = if review.login().eq_ignore_ascii_case(author) {
                Standing::Author
            } else if state == "CHANGES_REQUESTED" {
                Standing::ChangesRequested
            } else if state == "DISMISSED" {
                Standing::Dismissed
            } else if review.commit_id.as_deref() == Some(head_sha) {
                Standing::Approving
            } else {
                Standing::Stale
            };
            ReviewStanding {
                login: review.login().to_owned(),
                standing,
                review: review.clone(),
            }
        })
        .collect()
}

/// The standings that approve the current head.
pub fn approving(standings: &[ReviewStanding]) -> impl Iterator<Item = &ReviewStanding> {
    standings
        .iter()
        .filter(|s| s.standing == Standing::Approving)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::wire::User;
    use chrono::{TimeZone, Utc};

    fn review(id: u64, login: &str, state: &str, commit: &str, minute: u32) -> Review {
        Review {
            id,
            user: Some(User {
                login: login.into(),
            }),
            state: state.into(),
            commit_id: Some(commit.into()),
            submitted_at: Some(Utc.with_ymd_and_hms(2026, 11, 28, 12, minute, 0).unwrap()),
            html_url: None,
        }
    }

    fn check(reviews: &[Review], expected: &[(&str, Standing)]) {
        let got: Vec<(String, Standing)> = standings(reviews, "head", "author")
            .into_iter()
            .map(|s| (s.login, s.standing))
            .collect();
        let expected: Vec<(String, Standing)> =
            expected.iter().map(|(l, s)| (l.to_string(), *s)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn standings_table() {
        use Standing::*;
        check(
            &[review(1, "carol", "APPROVED", "head", 1)],
            &[("carol", Approving)],
        );
        check(
            &[review(1, "carol", "approved", "head", 1)],
            &[("carol", Approving)],
        );
        check(
            &[review(1, "carol", "APPROVED", "old", 1)],
            &[("carol", Stale)],
        );
        check(
            &[
                review(1, "carol", "APPROVED", "old", 1),
                review(2, "carol", "APPROVED", "head", 2),
            ],
            &[("carol", Approving)],
        );
        check(
            &[
                review(1, "carol", "APPROVED", "head", 1),
                review(2, "carol", "CHANGES_REQUESTED", "head", 2),
            ],
            &[("carol", ChangesRequested)],
        );
        check(
            &[
                review(1, "carol", "CHANGES_REQUESTED", "head", 1),
                review(2, "carol", "APPROVED", "head", 2),
            ],
            &[("carol", Approving)],
        );
        check(
            &[
                review(1, "carol", "APPROVED", "head", 1),
                review(2, "carol", "COMMENTED", "head", 2),
            ],
            &[("carol", Approving)],
        );
        check(
            &[review(1, "carol", "DISMISSED", "head", 1)],
            &[("carol", Dismissed)],
        );
        check(
            &[review(1, "Author", "APPROVED", "head", 1)],
            &[("Author", Author)],
        );
        check(&[review(1, "dave", "COMMENTED", "head", 1)], &[]);
        check(&[review(1, "dave", "PENDING", "head", 1)], &[]);
        check(
            &[
                review(2, "dave", "APPROVED", "head", 1),
                review(1, "carol", "APPROVED", "old", 1),
            ],
            &[("carol", Stale), ("dave", Approving)],
        );
    }
}
