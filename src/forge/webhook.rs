//! Webhook deliveries: which ones ringmaster acts on, read into small hints.
//!
//! A delivery is only ever a hint that something changed: the daemon re-reads
//! the pull request, its reviews or the branch from GitHub and Git before it
//! acts, because GitHub never redelivers a failed delivery and a replayed one
//! may be stale. So a hint keeps only what says *what* to re-read. Payload
//! types read just those fields and ignore everything else GitHub sends.
//!
//! Handled: `ping`; `pull_request` opened, synchronize, reopened,
//! ready_for_review and closed; `pull_request_review` submitted, edited and
//! dismissed; `push`. Every other event or action is acknowledged and dropped.

use serde::{Deserialize, Serialize};

/// The header naming the event (`pull_request`, `push`, ...).
pub const EVENT_HEADER: &str = "x-github-event";
/// The header with the delivery's unique id (a GUID), the deduplication key.
pub const DELIVERY_HEADER: &str = "x-github-delivery";

/// What a delivery asks ringmaster to look at again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WebhookHint {
    /// GitHub checking the hook works.
    Ping,
    /// A pull request was opened, updated, reopened, marked ready or closed.
    PullRequest {
        /// `owner/name`.
        repository: String,
        number: u64,
        action: String,
        head_sha: String,
        base_ref: String,
        merged: bool,
    },
    /// A review was submitted, edited or dismissed.
    PullRequestReview {
        repository: String,
        number: u64,
        action: String,
        review_id: u64,
        reviewer: String,
    },
    /// A ref was pushed.
    Push {
        repository: String,
        /// The full ref name, `refs/heads/main`.
        reference: String,
        after: String,
    },
}

impl WebhookHint {
    /// The repository the delivery is about (`owner/name`), if it names one.
    pub fn repository(&self) -> Option<&str> {
        match self {
            WebhookHint::Ping => None,
            WebhookHint::PullRequest { repository, .. }
            | WebhookHint::PullRequestReview { repository, .. }
            | WebhookHint::Push { repository, .. } => Some(repository),
        }
    }
}

/// What to do with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Act on it (after re-reading state).
    Handle(WebhookHint),
    /// Acknowledge and drop: an event or action ringmaster does not handle.
    Ignore { reason: String },
}

/// A delivery of a handled event that is not what GitHub sends.
#[derive(Debug, thiserror::Error)]
#[error("{event} delivery is not valid JSON of the expected shape: {source}")]
pub struct WebhookError {
    pub event: String,
    pub source: serde_json::Error,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct GitRef {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

#[derive(Deserialize)]
struct PullRequestSummary {
    number: u64,
    head: GitRef,
    base: GitRef,
    #[serde(default)]
    merged: Option<bool>,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    pull_request: PullRequestSummary,
    repository: Repository,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct ReviewSummary {
    id: u64,
    /// `null` for a review by a deleted account (GitHub's description marks
    /// the webhook review's `user` nullable).
    user: Option<User>,
}

#[derive(Deserialize)]
struct PullRequestNumber {
    number: u64,
}

#[derive(Deserialize)]
struct ReviewPayload {
    action: String,
    review: ReviewSummary,
    pull_request: PullRequestNumber,
    repository: Repository,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    reference: String,
    after: String,
    repository: Repository,
}

#[derive(Deserialize)]
struct ActionOnly {
    #[serde(default)]
    action: Option<String>,
}

const PULL_REQUEST_ACTIONS: [&str; 5] = [
    "opened",
    "synchronize",
    "reopened",
    "ready_for_review",
    "closed",
];
const REVIEW_ACTIONS: [&str; 3] = ["submitted", "edited", "dismissed"];

/// Reads a (signature-verified) delivery of `event` into what to do with it.
pub fn classify(event: &str, body: &[u8]) -> Result<Classified, WebhookError> {
    let invalid = |source| WebhookError {
        event: event.to_owned(),
        source,
    };
    let unhandled_action = |actions: &[&str]| -> Result<Option<Classified>, WebhookError> {
        let action = serde_json::from_slice::<ActionOnly>(body)
            .map_err(invalid)?
            .action
            .unwrap_or_default();
        Ok(
            (!actions.contains(&action.as_str())).then(|| Classified::Ignore {
                reason: format!("{event} action \"{action}\" is not handled"),
            }),
        )
    };
    let hint = match event {
        "ping" => WebhookHint::Ping,
        "pull_request" => {
            if let Some(ignored) = unhandled_action(&PULL_REQUEST_ACTIONS)? {
                return Ok(ignored);
            }
            let payload: PullRequestPayload = serde_json::from_slice(body).map_err(invalid)?;
            WebhookHint::PullRequest {
                repository: payload.repository.full_name,
                number: payload.pull_request.number,
                action: payload.action,
                head_sha: payload.pull_request.head.sha,
                base_ref: payload.pull_request.base.name,
                merged: payload.pull_request.merged.unwrap_or(false),
            }
        }
        "pull_request_review" => {
            if let Some(ignored) = unhandled_action(&REVIEW_ACTIONS)? {
                return Ok(ignored);
            }
            let payload: ReviewPayload = serde_json::from_slice(body).map_err(invalid)?;
            WebhookHint::PullRequestReview {
                repository: payload.repository.full_name,
                number: payload.pull_request.number,
                action: payload.action,
                review_id: payload.review.id,
                reviewer: payload
                    .review
                    .user
                    .map_or_else(|| "ghost".to_string(), |user| user.login),
            }
        }
        "push" => {
            let payload: PushPayload = serde_json::from_slice(body).map_err(invalid)?;
            WebhookHint::Push {
                repository: payload.repository.full_name,
                reference: payload.reference,
                after: payload.after,
            }
        }
        other => {
            return Ok(Classified::Ignore {
                reason: format!("event \"{other}\" is not handled"),
            });
        }
    };
    Ok(Classified::Handle(hint))
}
