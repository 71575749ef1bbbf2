//! Running the PR check against GitHub and publishing its result; reading
//! how a merged commit got onto the tracked branch.
//!
//! [`Forge`] is the connection to one repository plus what ringmaster
//! remembers between events: its comment on each PR (so the comment is
//! created once and then edited in place, and not edited when nothing
//! changed), the last status it posted (so an unchanged verdict is not
//! posted again), and the version of each open PR it last judged (so the
//! poll re-checks only what changed). Losing that memory (a restart) costs
//! a few API calls, never correctness: the comment is found again by its
//! marker.
//!
//! API calls per PR event: the pull request, its reviews, then the comment
//! (one list on first sight, then one create or edit when the text changed)
//! and the status or check run (when the verdict changed) — four at most,
//! two when nothing changed.

use super::carried::{CarriedApproval, CarriedIndex};
use super::check::{self, CheckState};
use super::client::GitHubClient;
use super::comment::{self, MARKER};
use super::incremental::{CheckRequest, PrCheckCache};
use super::merge::{MergeFacts, MergedPullRequest};
use super::provenance::RecordProvenance;
use super::review::{self, Standing};
use super::wire::PullRequest;
use super::{CHECK_NAME, ForgeError, fetch};
use crate::evaluation::{NoRuntime, RuntimeFacts};
use crate::evidence::sha256_hex;
use crate::source::GovernedRepo;
use crate::source::history::{self, Introduced};
use chrono::{DateTime, Utc};
use git2::Oid;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

/// The comment ringmaster keeps on a PR.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownComment {
    id: u64,
    url: Option<String>,
    body_sha256: String,
}

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub number: u64,
    pub head_sha: String,
    /// `None` when the PR was not judged (closed, or into another branch).
    pub state: Option<CheckState>,
    pub summary: String,
    pub comment_id: Option<u64>,
    /// GitHub API requests this check sent.
    pub api_calls: u64,
}

/// The connection to one GitHub repository and what ringmaster remembers of it.
pub struct Forge {
    pub client: Arc<GitHubClient>,
    /// Only pull requests into this branch are judged.
    pub tracked_branch: String,
    /// Fetch the tracked branch from `origin` before judging (remote mode).
    pub fetch_base: bool,
    /// What fetches from `origin` authenticate with (the daemon's).
    pub git_credentials: crate::source::credentials::GitCredentials,
    comments: HashMap<u64, KnownComment>,
    posted: HashMap<u64, (String, CheckState, String)>,
    judged_versions: HashMap<u64, String>,
    /// Review approvals recorded in the evidence, per intent.
    carried: std::sync::Mutex<CarriedIndex>,
    /// What vouches for each record blob (a record's provenance never changes).
    provenance: std::sync::Mutex<HashMap<Oid, RecordProvenance>>,
    /// The daemon's runtime facts (in-flight changes, rolled-back versions),
    /// refreshed by the daemon before it checks; none outside a daemon.
    runtime: Option<Arc<dyn RuntimeFacts + Send + Sync>>,
    /// The base snapshots PR checks are judged against, by commit
    /// (`forge::incremental`): a PR changing one intent re-judges only
    /// what it can move.
    pub pr_checks: PrCheckCache,
}

/// Runs sync work (git, evaluation) without stalling the other tasks of a
/// multi-threaded runtime.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// What makes a PR worth judging again: its head, its last update (a
/// review updates it) and the base branch's tip (the rules).
fn version_of(pull_request: &PullRequest, base_tip: &str) -> String {
    format!(
        "{} {} {base_tip}",
        pull_request.head.sha,
        pull_request
            .updated_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    )
}

impl Forge {
    pub fn new(
        client: Arc<GitHubClient>,
        tracked_branch: impl Into<String>,
        fetch_base: bool,
    ) -> Forge {
        Forge {
            client,
            tracked_branch: tracked_branch.into(),
            fetch_base,
            git_credentials: Default::default(),
            comments: HashMap::new(),
            posted: HashMap::new(),
            judged_versions: HashMap::new(),
            carried: std::sync::Mutex::new(CarriedIndex::default()),
            provenance: std::sync::Mutex::new(HashMap::new()),
            runtime: None,
            pr_checks: PrCheckCache::new(),
        }
    }

    /// What the daemon's store knows, for the checks that follow.
    pub fn set_runtime(&mut self, runtime: Arc<dyn RuntimeFacts + Send + Sync>) {
        self.runtime = Some(runtime);
    }

    /// Re-reads pull request `number` and its reviews, judges it and
    /// publishes the verdict. Idempotent: judging the same state again
    /// changes nothing on GitHub.
    pub async fn check_pull_request(
        &mut self,
        repo: &GovernedRepo,
        number: u64,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome, ForgeError> {
        let before = self.client.calls();
        let pull_request = self.client.pull_request(number).await?;
        self.check_read(repo, pull_request, before, now).await
    }

    async fn check_read(
        &mut self,
        repo: &GovernedRepo,
        pull_request: PullRequest,
        calls_before: u64,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome, ForgeError> {
        let number = pull_request.number;
        let skipped = |summary: String, client: &GitHubClient| CheckOutcome {
            number,
            head_sha: pull_request.head.sha.clone(),
            state: None,
            summary,
            comment_id: None,
            api_calls: client.calls() - calls_before,
        };
        if !pull_request.is_open() {
            self.forget(number);
            return Ok(skipped("closed".into(), &self.client));
        }
        if pull_request.base.name != self.tracked_branch {
            return Ok(skipped(
                format!("targets {}, not the tracked branch", pull_request.base.name),
                &self.client,
            ));
        }
        let reviews = self.client.reviews(number).await?;
        let (verdict, base_tip) = blocking(|| -> Result<_, ForgeError> {
            let revisions = fetch::revisions(
                repo,
                number,
                &pull_request.head.sha,
                &self.tracked_branch,
                self.fetch_base,
                &self.git_credentials,
            )?;
            let base_sha = revisions.base.to_string();
            let history = history::change_history(repo, revisions.fork_point, revisions.head)?;
            let verdict = self.pr_checks.check(
                repo,
                revisions,
                &CheckRequest {
                    pull_request: &pull_request,
                    reviews: &reviews,
                    history: &history,
                    runtime: match &self.runtime {
                        Some(runtime) => runtime.as_ref(),
                        None => &NoRuntime,
                    },
                    now,
                },
            )?;
            Ok((verdict, base_sha))
        })?;
        let body = comment::render(&verdict);
        let comment = self.upsert_comment(number, &body).await?;
        let details_url = comment.url.clone().or(pull_request.html_url.clone());
        let posted = (
            verdict.head_sha.clone(),
            verdict.state,
            verdict.summary.clone(),
        );
        if self.posted.get(&number) != Some(&posted) {
            self.publish(
                &verdict.head_sha,
                verdict.state,
                &verdict.summary,
                &body,
                details_url.as_deref(),
            )
            .await?;
            self.posted.insert(number, posted);
        }
        self.judged_versions
            .insert(number, version_of(&pull_request, &base_tip));
        Ok(CheckOutcome {
            number,
            head_sha: verdict.head_sha,
            state: Some(verdict.state),
            summary: verdict.summary,
            comment_id: Some(comment.id),
            api_calls: self.client.calls() - calls_before,
        })
    }

    /// Posts the verdict as a check run (App) or a commit status (token).
    pub async fn publish(
        &self,
        sha: &str,
        state: CheckState,
        summary: &str,
        details: &str,
        details_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        if self.client.uses_check_runs() {
            let conclusion = match state {
                CheckState::Success => Some("success"),
                CheckState::Failure => Some("failure"),
                CheckState::Pending => None,
            };
            let details = check::truncate(details, 65_000);
            self.client
                .create_check_run(sha, CHECK_NAME, conclusion, summary, &details, details_url)
                .await
        } else {
            self.client
                .post_status(sha, state.as_str(), CHECK_NAME, summary, details_url)
                .await
        }
    }

    /// Creates the comment once, then edits it in place when its text changes.
    async fn upsert_comment(
        &mut self,
        number: u64,
        body: &str,
    ) -> Result<KnownComment, ForgeError> {
        let body_sha256 = sha256_hex(body.as_bytes());
        if let Some(known) = self.comments.get(&number).cloned() {
            if known.body_sha256 == body_sha256 {
                return Ok(known);
            }
            match self.client.update_comment(known.id, body).await {
                Ok(updated) => {
                    return Ok(self.remember(number, updated.id, updated.html_url, body_sha256));
                }
                // Deleted by someone: find or create it again.
                Err(ForgeError::Api { status: 404, .. }) => {
                    self.comments.remove(&number);
                }
                Err(error) => return Err(error),
            }
        }
        let existing = self
            .client
            .issue_comments(number)
            .await?
            .into_iter()
            .find(|c| c.body.as_deref().is_some_and(|b| b.starts_with(MARKER)));
        let comment = match existing {
            Some(found)
                if found.body.as_deref().map(|b| sha256_hex(b.as_bytes()))
                    == Some(body_sha256.clone()) =>
            {
                found
            }
            Some(found) => self.client.update_comment(found.id, body).await?,
            None => self.client.create_comment(number, body).await?,
        };
        Ok(self.remember(number, comment.id, comment.html_url, body_sha256))
    }

    fn remember(
        &mut self,
        number: u64,
        id: u64,
        url: Option<String>,
        body_sha256: String,
    ) -> KnownComment {
        let known = KnownComment {
            id,
            url,
            body_sha256,
        };
        self.comments.insert(number, known.clone());
        known
    }

    fn forget(&mut self, number: u64) {
        self.comments.remove(&number);
        self.posted.remove(&number);
        self.judged_versions.remove(&number);
    }

    /// The safety net: lists the open PRs into the tracked branch and judges
    /// every one whose head, update time or base tip moved since it was last
    /// judged. One list call when nothing changed.
    pub async fn poll_pull_requests(
        &mut self,
        repo: &GovernedRepo,
        now: DateTime<Utc>,
    ) -> Result<Vec<CheckOutcome>, ForgeError> {
        let open = self.client.open_pull_requests(&self.tracked_branch).await?;
        let open_numbers: Vec<u64> = open.iter().map(|pr| pr.number).collect();
        let stale: Vec<u64> = self
            .judged_versions
            .keys()
            .filter(|n| !open_numbers.contains(n))
            .copied()
            .collect();
        for number in stale {
            self.forget(number);
        }
        let base_tip = repo
            .repository
            .find_reference(&format!("refs/heads/{}", self.tracked_branch))
            .ok()
            .and_then(|r| r.target())
            .map(|oid| oid.to_string())
            .unwrap_or_default();
        let mut outcomes = Vec::new();
        for pull_request in open {
            let version = version_of(&pull_request, &base_tip);
            if self.judged_versions.get(&pull_request.number) == Some(&version) {
                continue;
            }
            let number = pull_request.number;
            let before = self.client.calls();
            match self.check_read(repo, pull_request, before, now).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(error @ ForgeError::RateLimited { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(number, %error, "could not check pull request; will retry")
                }
            }
        }
        Ok(outcomes)
    }

    /// How `commit` reached the tracked branch: the merged pull request whose
    /// merge commit it is, with its reviews; or no pull request.
    pub async fn merge_facts(&self, commit: &str) -> Result<MergeFacts, ForgeError> {
        let pulls = self.client.pull_requests_for_commit(commit).await?;
        let merged = pulls.into_iter().find(|pr| {
            pr.is_merged()
                && pr.merge_commit_sha.as_deref() == Some(commit)
                && pr.base.name == self.tracked_branch
        });
        let Some(pull_request) = merged else {
            return Ok(MergeFacts {
                repository: self.client.full_name(),
                pull_request: None,
                reviews: Vec::new(),
                carried: Vec::new(),
                provenance: BTreeMap::new(),
            });
        };
        let reviews = self.client.reviews(pull_request.number).await?;
        Ok(MergeFacts {
            repository: self.client.full_name(),
            pull_request: Some(MergedPullRequest {
                number: pull_request.number,
                url: pull_request.html_url.clone(),
                author: pull_request.author().to_owned(),
                head_sha: pull_request.head.sha.clone(),
                merge_commit_sha: commit.to_owned(),
                merged_at: pull_request.merged_at,
            }),
            reviews,
            carried: Vec::new(),
            provenance: BTreeMap::new(),
        })
    }

    /// What vouches for each approval and exception record of `commit`,
    /// keyed by path relative to the governed root (see [`super::provenance`]).
    /// Each record blob is traced once; each introducing commit costs two
    /// API calls (its pull request, its reviews), once.
    pub async fn record_provenance(
        &self,
        repo: &GovernedRepo,
        commit: Oid,
        root: Option<Oid>,
    ) -> Result<BTreeMap<String, RecordProvenance>, ForgeError> {
        let mut result = BTreeMap::new();
        for (relative, path, blob) in history::record_files(repo, commit)? {
            let known = self
                .provenance
                .lock()
                .expect("provenance lock")
                .get(&blob)
                .cloned();
            let found = match known {
                Some(found) => found,
                None => {
                    let found = match history::introduced(
                        &repo.repository,
                        commit,
                        &path,
                        Some(blob),
                        root,
                    )? {
                        Introduced::Root => RecordProvenance::Bootstrap,
                        Introduced::At {
                            commit: introducing,
                            writers,
                        } => {
                            let sha = introducing.to_string();
                            let signatures = writers
                                .into_iter()
                                .map(|writer| history::commit_signature(&repo.repository, writer))
                                .collect();
                            let facts = self.merge_facts(&sha).await?;
                            match facts.pull_request {
                                Some(pull_request) => RecordProvenance::PullRequest {
                                    number: pull_request.number,
                                    approving_logins: review::standings(
                                        &facts.reviews,
                                        &pull_request.head_sha,
                                        &pull_request.author,
                                    )
                                    .into_iter()
                                    .filter(|s| s.standing == Standing::Approving)
                                    .map(|s| s.login)
                                    .collect(),
                                    signatures,
                                },
                                None => RecordProvenance::DirectPush {
                                    commit: sha,
                                    signatures,
                                },
                            }
                        }
                    };
                    self.provenance
                        .lock()
                        .expect("provenance lock")
                        .insert(blob, found.clone());
                    found
                }
            };
            result.insert(relative, found);
        }
        Ok(result)
    }

    /// The review approvals the evidence branch records as counted, for
    /// intents to keep while unchanged (see [`super::carried`]).
    pub fn carried_approvals(
        &self,
        repository: &git2::Repository,
        evidence_branch: &str,
    ) -> Result<Vec<CarriedApproval>, ForgeError> {
        let mut index = self.carried.lock().expect("carried index lock");
        index.refresh(repository, evidence_branch)?;
        Ok(index.approvals())
    }
}
