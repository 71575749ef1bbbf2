//! The check pipeline for a snapshot: links → risk → policy input → decision.
//!
//! Pure: the clock comes in as a value (`now`), and runtime facts from the
//! state store through [`RuntimeFacts`]. Entry points do not call this
//! directly: they go through [`crate::judge`], which loads the revision,
//! swaps in the rules in force and applies the proof of who decided first.

use crate::diagnostic::Diagnostic;
use crate::model::{DeploymentIntent, Located, Role, Snapshot, TargetScope};
use crate::policy::{Decision, PolicyEngine, PolicyOutcome, Reason, ReasonKind};
use crate::risk::{self, RiskAssessment};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Facts only the running daemon knows. Static validation uses [`NoRuntime`].
pub trait RuntimeFacts: Sync {
    /// Other in-flight changes of this intent's app and segment: (intent id, ring).
    fn active_changes(&self, intent: &DeploymentIntent) -> Vec<(String, String)>;
    /// Versions of this intent's app that were rolled back and not superseded.
    fn rolled_back_versions(&self, intent: &DeploymentIntent) -> Vec<String>;
    /// Where an intent the revision no longer has (its file was removed)
    /// still runs: its application and target, as the daemon knows them.
    fn known_intent(&self, _intent_id: &str) -> Option<(String, TargetScope)> {
        None
    }
}

/// No runtime: nothing is in flight, nothing was rolled back.
pub struct NoRuntime;

impl RuntimeFacts for NoRuntime {
    fn active_changes(&self, _: &DeploymentIntent) -> Vec<(String, String)> {
        Vec::new()
    }
    fn rolled_back_versions(&self, _: &DeploymentIntent) -> Vec<String> {
        Vec::new()
    }
}

/// The verdict on one intent.
#[derive(Debug, Clone, Serialize)]
pub struct IntentEvaluation {
    pub intent_id: String,
    pub file: String,
    pub risk: Option<RiskAssessment>,
    pub outcome: PolicyOutcome,
    /// The intent this one may end (`supersedes`), once the supersede
    /// passed [`supersede_refusal`] and the intent itself is not DENY;
    /// `None` when it supersedes nothing or may not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

impl IntentEvaluation {
    pub fn decision(&self) -> Decision {
        self.outcome.decision
    }
}

/// Everything `validate` reports about one revision.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub diagnostics: Vec<Diagnostic>,
    pub intents: Vec<IntentEvaluation>,
}

impl Evaluation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

impl Snapshot {
    /// This snapshot judged by `base`'s rules: config, principals and policies
    /// come from the base revision, so a change can never relax what judges it.
    pub fn judged_by(&self, base: &Snapshot) -> Snapshot {
        Snapshot {
            config: base.config.clone(),
            principals: base.principals.clone(),
            policies: base.policies.clone(),
            ..self.clone()
        }
    }
}

/// Builds the policy engine for a snapshot's tenant policies. Broken tenant
/// files become diagnostics and the built-ins still judge (never fewer rules).
pub fn engine_for(snapshot: &Snapshot) -> (PolicyEngine, Vec<Diagnostic>) {
    let tenant: Vec<(String, String)> = snapshot
        .policies
        .iter()
        .map(|p| (p.path.clone(), p.source.clone()))
        .collect();
    match PolicyEngine::new(&tenant) {
        Ok(engine) => (engine, Vec::new()),
        Err(errors) => {
            let diagnostics = errors
                .iter()
                .map(|error| {
                    error
                        .to_diagnostic()
                        .unwrap_or_else(|| Diagnostic::error("policies", error.to_string()))
                })
                .collect();
            let engine = PolicyEngine::new(&[]).expect("the built-in bundle compiles");
            (engine, diagnostics)
        }
    }
}

/// Judges every intent of a loaded snapshot. Intents are evaluated in parallel
/// on all cores; the result is ordered by intent id.
pub fn evaluate(
    snapshot: &Snapshot,
    engine: &PolicyEngine,
    base: Option<&Snapshot>,
    now: DateTime<Utc>,
    runtime: &dyn RuntimeFacts,
) -> Evaluation {
    let judged = evaluate_intents(snapshot, engine, base, now, runtime, None);
    let mut diagnostics = Vec::new();
    let mut intents = Vec::with_capacity(judged.len());
    for (evaluation, mut found) in judged {
        diagnostics.append(&mut found);
        intents.push(evaluation);
    }
    Evaluation {
        diagnostics,
        intents,
    }
}

/// [`evaluate`], intent by intent: each intent's verdict with the
/// diagnostics its evaluation adds (a policy error, a `supersedes`
/// warning), in intent id order; with `only`, just the intents it names,
/// each judged exactly as in a full evaluation of `snapshot` (the
/// incremental PR check, `forge::incremental`, re-judges only those).
pub fn evaluate_intents(
    snapshot: &Snapshot,
    engine: &PolicyEngine,
    base: Option<&Snapshot>,
    now: DateTime<Utc>,
    runtime: &dyn RuntimeFacts,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Vec<(IntentEvaluation, Vec<Diagnostic>)> {
    let context = Context::new(snapshot, base, now, runtime, only);
    let intents: Vec<&Located<DeploymentIntent>> = match only {
        None => snapshot.intents.values().collect(),
        Some(only) => only
            .iter()
            .filter_map(|id| snapshot.intents.get(id))
            .collect(),
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(intents.len().max(1));
    let chunk = intents.len().div_ceil(workers).max(1);
    let results: Vec<(IntentEvaluation, Option<Diagnostic>)> = if workers == 1 {
        intents
            .iter()
            .map(|intent| context.judge(intent, engine, runtime))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = intents
                .chunks(chunk)
                .map(|part| {
                    let engine = engine.clone();
                    let context = &context;
                    scope.spawn(move || {
                        part.iter()
                            .map(|intent| context.judge(intent, &engine, runtime))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|handle| handle.join().expect("evaluation worker panicked"))
                .collect()
        })
    };
    let mut judged = Vec::with_capacity(results.len());
    for (mut evaluation, diagnostic) in results {
        let mut diagnostics: Vec<Diagnostic> = diagnostic.into_iter().collect();
        if let Some(intent) = snapshot.intents.get(&evaluation.intent_id)
            && let Some(superseded) = &intent.supersedes
        {
            let refusal = context
                .supersedes
                .get(intent.intent_id.as_str())
                .cloned()
                .flatten()
                .or_else(|| {
                    (evaluation.decision() == Decision::Deny)
                        .then(|| format!("intent {} is itself denied (DENY)", intent.intent_id))
                });
            match refusal {
                None => evaluation.supersedes = Some(superseded.clone()),
                Some(reason) => diagnostics.push(intent.warning(
                    "/supersedes",
                    format!(
                        "supersedes \"{superseded}\" has no effect: {reason}; that intent's rollout is left as it is"
                    ),
                )),
            }
        }
        judged.push((evaluation, diagnostics));
    }
    judged
}

/// Per-snapshot facts computed once and shared by every intent's evaluation.
struct Context<'a> {
    snapshot: &'a Snapshot,
    base: Option<&'a Snapshot>,
    now_text: String,
    config_json: Value,
    /// Intents grouped by (application, boundary, business unit), for conflicts.
    segments: BTreeMap<(&'a str, &'a str, &'a str), Vec<&'a DeploymentIntent>>,
    /// Per intent that declares `supersedes`: why it may not (`None`: it may).
    supersedes: BTreeMap<&'a str, Option<String>>,
}

/// Why `intent` may not supersede the intent it names, or `None` when it
/// may: only an intent of the same application, whose target lies inside
/// the requester's publisher scope (so one team never ends another team's
/// rollout). Whether the superseding intent is itself DENY is checked after
/// it is judged.
pub fn supersede_refusal(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    runtime: &dyn RuntimeFacts,
) -> Option<String> {
    let superseded = intent.supersedes.as_deref()?;
    if superseded == intent.intent_id {
        return Some("an intent cannot supersede itself".into());
    }
    let (application, target) = match snapshot.intents.get(superseded) {
        Some(other) => (other.application_id.clone(), other.target_scope.clone()),
        None => match runtime.known_intent(superseded) {
            Some(known) => known,
            None => return Some(format!("\"{superseded}\" is not a known intent")),
        },
    };
    if application != intent.application_id {
        return Some(format!(
            "{superseded} deploys application {application}, not {}; an intent supersedes only intents of its own application",
            intent.application_id
        ));
    }
    let Some(publisher) = snapshot.principals.get(&intent.requested_by) else {
        return Some(format!(
            "requester {} is not a principal",
            intent.requested_by
        ));
    };
    if !publisher.has_role(Role::Publisher) {
        return Some(format!("requester {} is not a publisher", publisher.id));
    }
    if !crate::model::scope::covers(&publisher.scope, &target) {
        return Some(format!(
            "{superseded} targets {}/{}, outside requester {}'s publisher scope",
            target.acquisition_boundary, target.business_unit, publisher.id
        ));
    }
    None
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("model types serialise to JSON")
}

impl<'a> Context<'a> {
    fn new(
        snapshot: &'a Snapshot,
        base: Option<&'a Snapshot>,
        now: DateTime<Utc>,
        runtime: &dyn RuntimeFacts,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> Self {
        // With `only`, the segments of those intents alone: an intent's
        // conflicts are in its own segment (judging one intent of 10,000
        // does not group all of them).
        let applications: Option<std::collections::HashSet<&str>> = only.map(|only| {
            only.iter()
                .filter_map(|id| snapshot.intents.get(id))
                .map(|intent| intent.application_id.as_str())
                .collect()
        });
        let mut segments: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for intent in snapshot.intents.values() {
            if applications
                .as_ref()
                .is_some_and(|wanted| !wanted.contains(intent.application_id.as_str()))
            {
                continue;
            }
            segments
                .entry((
                    intent.application_id.as_str(),
                    intent.target_scope.acquisition_boundary.as_str(),
                    intent.target_scope.business_unit.as_str(),
                ))
                .or_default()
                .push(&intent.value);
        }
        let supersedes = snapshot
            .intents
            .values()
            .filter(|intent| intent.supersedes.is_some())
            .map(|intent| {
                (
                    intent.intent_id.as_str(),
                    supersede_refusal(snapshot, intent, runtime),
                )
            })
            .collect();
        Context {
            snapshot,
            base,
            supersedes,
            now_text: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            config_json: snapshot
                .config
                .as_ref()
                .map(|c| to_json(&c.value))
                .unwrap_or(Value::Null),
            segments,
        }
    }

    /// Whether the intent's requester is a publisher whose scope covers its
    /// target (otherwise `scope.*` rules deny it).
    fn may_publish(&self, intent: &DeploymentIntent) -> bool {
        self.snapshot
            .principals
            .get(&intent.requested_by)
            .is_some_and(|p| {
                p.has_role(Role::Publisher)
                    && crate::model::scope::covers(&p.scope, &intent.target_scope)
            })
    }

    /// Whether `intent` validly supersedes `other` (see [`supersede_refusal`]).
    fn supersedes(&self, intent: &DeploymentIntent, other: &DeploymentIntent) -> bool {
        intent.supersedes.as_deref() == Some(other.intent_id.as_str())
            && matches!(self.supersedes.get(intent.intent_id.as_str()), Some(None))
    }

    /// Other intents of the same app and segment whose rings overlap, where
    /// neither validly supersedes the other.
    fn conflicts(&self, intent: &DeploymentIntent) -> Vec<Value> {
        let key = (
            intent.application_id.as_str(),
            intent.target_scope.acquisition_boundary.as_str(),
            intent.target_scope.business_unit.as_str(),
        );
        let Some(others) = self.segments.get(&key) else {
            return Vec::new();
        };
        others
            .iter()
            .filter(|other| other.intent_id != intent.intent_id)
            .filter(|other| !self.supersedes(other, intent) && !self.supersedes(intent, other))
            // An intent its requester may not publish is DENY on its own and
            // competes with nobody: it cannot block another team's rollout.
            .filter(|other| self.may_publish(other))
            .filter_map(|other| {
                let shared: Vec<&String> = other
                    .target_scope
                    .rings
                    .iter()
                    .filter(|ring| intent.target_scope.rings.contains(ring))
                    .collect();
                (!shared.is_empty()).then(|| json!({"intent_id": other.intent_id, "rings": shared}))
            })
            .collect()
    }

    /// The policy input document (see `docs/policy-input.md`), or `None` when
    /// the intent's references do not resolve (links reported those).
    pub fn input(
        &self,
        intent: &DeploymentIntent,
        risk: &RiskAssessment,
        runtime: &dyn RuntimeFacts,
    ) -> Option<Value> {
        let snapshot = self.snapshot;
        let config = snapshot.config.as_ref()?;
        let application = snapshot.applications.get(&intent.application_id)?;
        let version = snapshot
            .versions
            .get(&(intent.application_id.clone(), intent.version.clone()))?;
        let artifact = snapshot.artifact_of(intent)?;
        let principal_json = |id: &str| {
            snapshot
                .principals
                .get(id)
                .map(|p| to_json(&p.value))
                .unwrap_or(Value::Null)
        };
        let rings: Vec<Value> = intent
            .target_scope
            .rings
            .iter()
            .filter_map(|ring| {
                config
                    .ring_index(ring)
                    .map(|index| json!({"id": ring, "index": index}))
            })
            .collect();
        let approvals: Vec<Value> = snapshot
            .approvals
            .values()
            .filter(|a| a.deployment_intent_id == intent.intent_id)
            .map(
                |a| json!({"record": to_json(&a.value), "approver": principal_json(&a.decided_by)}),
            )
            .collect();
        // Approvals of a change of this application's allowed_scope: only
        // they count for `scope.application_scope_changed`.
        let scope_approvals: Vec<Value> = snapshot
            .approvals
            .values()
            .filter(|a| {
                a.application_scope
                    .as_ref()
                    .is_some_and(|scope| scope.application_id == intent.application_id)
            })
            .map(
                |a| json!({"record": to_json(&a.value), "approver": principal_json(&a.decided_by)}),
            )
            .collect();
        let exceptions: Vec<Value> = snapshot
            .exceptions
            .values()
            .filter(|e| e.artifact_id == artifact.id)
            .map(|e| json!({"record": to_json(&e.value), "approver": principal_json(&e.approved_by)}))
            .collect();
        // The run this intent validly supersedes is ending: it is not a
        // change that competes with this one.
        let superseded = intent
            .supersedes
            .as_deref()
            .filter(|_| matches!(self.supersedes.get(intent.intent_id.as_str()), Some(None)));
        let active_changes: Vec<Value> = runtime
            .active_changes(intent)
            .into_iter()
            .filter(|(intent_id, _)| Some(intent_id.as_str()) != superseded)
            .map(|(intent_id, ring)| json!({"intent_id": intent_id, "ring": ring}))
            .collect();
        let previous_application = self
            .base
            .and_then(|base| base.applications.get(&intent.application_id))
            .map(|a| to_json(&a.value))
            .unwrap_or(Value::Null);
        let mut version_json = to_json(&version.value);
        if let Value::Object(map) = &mut version_json {
            // The deployed artifact is `artifact`; the others are noise here.
            map.remove("artifacts");
        }
        Some(json!({
            "now": self.now_text,
            "intent": to_json(intent),
            "intent_sha256": crate::model::digest::intent_sha256(snapshot, intent),
            "application": to_json(&application.value),
            "version": version_json,
            "artifact": to_json(artifact),
            "publisher": principal_json(&intent.requested_by),
            "config": self.config_json,
            "rings": rings,
            "cab_ring_index": config.ring_index(&config.cab.from_ring).unwrap_or(usize::MAX),
            "risk": to_json(risk),
            "approvals": approvals,
            "exceptions": exceptions,
            "conflicts": self.conflicts(intent),
            "active_changes": active_changes,
            "rolled_back_versions": runtime.rolled_back_versions(intent),
            "previous_application": previous_application,
            "scope_approvals": scope_approvals,
            "application_scope_sha256": crate::model::digest::scope_sha256(
                &application.id,
                &application.allowed_scope,
            ),
        }))
    }

    fn judge(
        &self,
        intent: &Located<DeploymentIntent>,
        engine: &PolicyEngine,
        runtime: &dyn RuntimeFacts,
    ) -> (IntentEvaluation, Option<Diagnostic>) {
        let unresolved = |message: String, rule: &str| {
            PolicyOutcome::from_findings(
                vec![Reason {
                    rule: rule.to_owned(),
                    kind: ReasonKind::Deny,
                    message,
                    source: "builtin".to_owned(),
                    waits_on: None,
                }],
                0,
                Vec::new(),
            )
        };
        let risk = risk::assess(self.snapshot, intent);
        let (risk, outcome, diagnostic) = match risk {
            Err(error) => (
                None,
                unresolved(
                    format!(
                        "{}: {error}; fix the errors reported for {}",
                        intent.intent_id, intent.file
                    ),
                    "model.unresolved",
                ),
                None,
            ),
            Ok(risk) => match self.input(intent, &risk, runtime) {
                None => (
                    Some(risk),
                    unresolved(
                        format!(
                            "{} does not resolve; fix the errors reported for {}",
                            intent.intent_id, intent.file
                        ),
                        "model.unresolved",
                    ),
                    None,
                ),
                Some(input) => match engine.evaluate(&input) {
                    Ok(outcome) => (Some(risk), outcome, None),
                    Err(error) => (
                        Some(risk),
                        unresolved(format!("policy evaluation failed: {error}"), "policy.error"),
                        Some(intent.error("", format!("policy evaluation failed: {error}"))),
                    ),
                },
            },
        };
        (
            IntentEvaluation {
                intent_id: intent.intent_id.clone(),
                file: intent.file.clone(),
                risk,
                outcome,
                supersedes: None,
            },
            diagnostic,
        )
    }
}

/// The policy input for one intent, for `plan --input` and the evidence pack.
pub fn policy_input(
    snapshot: &Snapshot,
    intent: &DeploymentIntent,
    base: Option<&Snapshot>,
    now: DateTime<Utc>,
    runtime: &dyn RuntimeFacts,
) -> Option<Value> {
    let context = Context::new(snapshot, base, now, runtime, None);
    let risk = risk::assess(snapshot, intent).ok()?;
    context.input(intent, &risk, runtime)
}
