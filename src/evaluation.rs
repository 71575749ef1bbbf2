//! The check pipeline for a snapshot: links → risk → policy input → decision.
//!
//! Pure: the clock comes in as a value (`now`), and runtime facts from the
//! state store through [`RuntimeFacts`]. Entry points do not call this
//! directly: they go through [`crate::judge`], which loads the revision,
//! swaps in the rules in force and applies the proof of who decided first.

use crate::diagnostic::Diagnostic;
use crate::model::{
    ApprovalRecord, DeploymentIntent, Exception, Located, Role, Snapshot, TargetScope,
};
use crate::policy::{
    Decision, InputField, PolicyEngine, PolicyError, PolicyInput, PolicyOutcome, Reason,
    ReasonKind, SharedField,
};
use crate::risk::{self, RiskAssessment};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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
    // With the tenant rules in guarded workers, a judging thread waits for
    // its worker's answers after each chunk; a second thread per core runs
    // the built-in rules of its own part meanwhile.
    let lanes = if engine.is_isolated() { 2 } else { 1 };
    let workers = (lanes
        * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1))
    .min(intents.len().max(1));
    let chunk = intents.len().div_ceil(workers).max(1);
    let results: Vec<(IntentEvaluation, Option<Diagnostic>)> = if workers == 1 {
        let cache = InputCache::default();
        intents
            .chunks(JUDGED_TOGETHER)
            .flat_map(|chunk| context.judge_chunk(chunk, engine, runtime, &cache))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = intents
                .chunks(chunk)
                .map(|part| {
                    let engine = engine.clone();
                    let context = &context;
                    scope.spawn(move || {
                        let cache = InputCache::default();
                        part.chunks(JUDGED_TOGETHER)
                            .flat_map(|chunk| context.judge_chunk(chunk, &engine, runtime, &cache))
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

/// Intents whose policy inputs are evaluated together
/// ([`PolicyEngine::evaluate_many`]: one message to the tenant-policy
/// worker for all of them instead of one each).
const JUDGED_TOGETHER: usize = 32;

/// Per-snapshot facts computed once and shared by every intent's evaluation.
struct Context<'a> {
    snapshot: &'a Snapshot,
    base: Option<&'a Snapshot>,
    now_text: String,
    /// The config, the one field every input has alike.
    config_field: Option<Arc<SharedField>>,
    /// Intents grouped by (application, boundary, business unit), for conflicts.
    segments: BTreeMap<(&'a str, &'a str, &'a str), Vec<&'a DeploymentIntent>>,
    /// Per intent that declares `supersedes`: why it may not (`None`: it may).
    supersedes: BTreeMap<&'a str, Option<String>>,
    /// Approval records by the intent they approve, in the snapshot's order.
    approvals_of_intent: HashMap<&'a str, Vec<&'a Located<ApprovalRecord>>>,
    /// CAB scope approvals by application, in the snapshot's order.
    scope_approvals_of_application: HashMap<&'a str, Vec<&'a Located<ApprovalRecord>>>,
    /// Exceptions by artifact id, in the snapshot's order.
    exceptions_of_artifact: HashMap<&'a str, Vec<&'a Located<Exception>>>,
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

/// The `version` field of a policy input: the version's JSON without its
/// `artifacts` (the deployed one is the `artifact` field; the others are
/// noise here). Serialised without them rather than serialised and then
/// removed: the artifacts are most of a version.
fn version_json(version: &crate::model::ApplicationVersion) -> Value {
    // Every field named, so a new one cannot be left out unnoticed.
    let crate::model::ApplicationVersion {
        application_id,
        version,
        release_notes,
        os_matrix,
        dependencies,
        artifacts: _,
    } = version;
    let mut json = to_json(&crate::model::ApplicationVersion {
        application_id: application_id.clone(),
        version: version.clone(),
        release_notes: release_notes.clone(),
        os_matrix: os_matrix.clone(),
        dependencies: dependencies.clone(),
        artifacts: Vec::new(),
    });
    if let Value::Object(map) = &mut json {
        map.remove("artifacts");
    }
    json
}

/// A JSON object of these fields, the values moved in (the `json!` macro
/// would serialise each value again).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

/// The objects many policy inputs share, each made into a [`SharedField`]
/// once and given to each input by reference count while it is among the
/// last few used (intents are judged in id order, so those of one
/// application mostly come together). One per thread; bounded, so it holds
/// a few objects, never a copy of the snapshot. Keyed by the object's
/// address in the snapshot, which outlives the cache.
#[derive(Default)]
pub(crate) struct InputCache {
    applications: RefCell<Recent<Arc<SharedField>>>,
    versions: RefCell<Recent<Arc<SharedField>>>,
    artifacts: RefCell<Recent<Arc<SharedField>>>,
    principals: RefCell<Recent<Arc<SharedField>>>,
    scope_digests: RefCell<Recent<Value>>,
}

/// Objects' shared form by address, most recent last.
type Recent<T> = Vec<(usize, T)>;

/// Objects of one kind an [`InputCache`] keeps.
const RECENT_OBJECTS: usize = 8;

impl InputCache {
    /// What `make` makes of `object`, made unless it is recent.
    fn get<O, T: Clone>(
        &self,
        recent: &RefCell<Recent<T>>,
        object: &O,
        make: impl FnOnce() -> T,
    ) -> T {
        let key = std::ptr::from_ref(object) as usize;
        let mut recent = recent.borrow_mut();
        if let Some(found) = recent.iter().rev().find(|(address, _)| *address == key) {
            return found.1.clone();
        }
        let value = make();
        if recent.len() >= RECENT_OBJECTS {
            recent.remove(0);
        }
        recent.push((key, value.clone()));
        value
    }
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
        let mut approvals_of_intent: HashMap<&str, Vec<_>> = HashMap::new();
        let mut scope_approvals_of_application: HashMap<&str, Vec<_>> = HashMap::new();
        for approval in snapshot.approvals.values() {
            approvals_of_intent
                .entry(approval.deployment_intent_id.as_str())
                .or_default()
                .push(approval);
            if let Some(scope) = &approval.application_scope {
                scope_approvals_of_application
                    .entry(scope.application_id.as_str())
                    .or_default()
                    .push(approval);
            }
        }
        let mut exceptions_of_artifact: HashMap<&str, Vec<_>> = HashMap::new();
        for exception in snapshot.exceptions.values() {
            exceptions_of_artifact
                .entry(exception.artifact_id.as_str())
                .or_default()
                .push(exception);
        }
        Context {
            snapshot,
            base,
            supersedes,
            approvals_of_intent,
            scope_approvals_of_application,
            exceptions_of_artifact,
            now_text: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            config_field: snapshot
                .config
                .as_ref()
                .map(|c| Arc::new(SharedField::new("config", to_json(&c.value)))),
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
                (!shared.is_empty()).then(|| {
                    object([
                        ("intent_id", Value::from(other.intent_id.as_str())),
                        (
                            "rings",
                            Value::Array(
                                shared
                                    .into_iter()
                                    .map(|ring| Value::from(ring.as_str()))
                                    .collect(),
                            ),
                        ),
                    ])
                })
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
        cache: &InputCache,
    ) -> Option<Value> {
        self.input_fields(intent, risk, runtime, cache)
            .map(|input| input.document())
    }

    /// [`Context::input`] as its fields: what many intents share (the
    /// config, their application, version, artifact, publisher) is made
    /// once (per `cache`, the config per context) and shared, not copied;
    /// the document is the same.
    fn input_fields(
        &self,
        intent: &DeploymentIntent,
        risk: &RiskAssessment,
        runtime: &dyn RuntimeFacts,
        cache: &InputCache,
    ) -> Option<PolicyInput> {
        let snapshot = self.snapshot;
        let config = snapshot.config.as_ref()?;
        let config_field = self.config_field.as_ref()?;
        let application = snapshot.applications.get(&intent.application_id)?;
        let version = snapshot
            .versions
            .get(&(intent.application_id.clone(), intent.version.clone()))?;
        let artifact = version
            .artifacts
            .iter()
            .find(|artifact| artifact.sha256 == intent.artifact_hash)?;
        let principal = |id: &str| {
            snapshot.principals.get(id).map(|p| {
                cache.get(&cache.principals, &p.value, || {
                    Arc::new(SharedField::new("publisher", to_json(&p.value)))
                })
            })
        };
        let principal_json = |id: &str| {
            principal(id)
                .map(|shared| shared.json().clone())
                .unwrap_or(Value::Null)
        };
        let rings: Vec<Value> = intent
            .target_scope
            .rings
            .iter()
            .filter_map(|ring| {
                config.ring_index(ring).map(|index| {
                    object([
                        ("id", Value::from(ring.as_str())),
                        ("index", Value::from(index)),
                    ])
                })
            })
            .collect();
        let record = |record: Value, approver: &str| {
            object([("record", record), ("approver", principal_json(approver))])
        };
        let approvals: Vec<Value> = self
            .approvals_of_intent
            .get(intent.intent_id.as_str())
            .into_iter()
            .flatten()
            .map(|a| record(to_json(&a.value), &a.decided_by))
            .collect();
        // Approvals of a change of this application's allowed_scope: only
        // they count for `scope.application_scope_changed`.
        let scope_approvals: Vec<Value> = self
            .scope_approvals_of_application
            .get(intent.application_id.as_str())
            .into_iter()
            .flatten()
            .map(|a| record(to_json(&a.value), &a.decided_by))
            .collect();
        let exceptions: Vec<Value> = self
            .exceptions_of_artifact
            .get(artifact.id.as_str())
            .into_iter()
            .flatten()
            .map(|e| record(to_json(&e.value), &e.approved_by))
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
            .map(|(intent_id, ring)| {
                object([
                    ("intent_id", Value::from(intent_id)),
                    ("ring", Value::from(ring)),
                ])
            })
            .collect();
        let previous_application = self
            .base
            .and_then(|base| base.applications.get(&intent.application_id))
            .map(|a| to_json(&a.value))
            .unwrap_or(Value::Null);
        let version_field = cache.get(&cache.versions, &version.value, || {
            Arc::new(SharedField::new("version", version_json(&version.value)))
        });
        let scope_digest = cache.get(&cache.scope_digests, &application.value, || {
            Value::from(crate::model::digest::scope_sha256(
                &application.id,
                &application.allowed_scope,
            ))
        });
        let mut input = PolicyInput::new();
        let mut own = |name, value| input.field(name, InputField::Own(value));
        own("now", Value::from(self.now_text.as_str()));
        own("intent", to_json(intent));
        own(
            "intent_sha256",
            Value::from(crate::model::digest::intent_sha256(snapshot, intent)),
        );
        own("rings", Value::Array(rings));
        own(
            "cab_ring_index",
            Value::from(
                config
                    .ring_index(&config.cab.from_ring)
                    .unwrap_or(usize::MAX),
            ),
        );
        own("risk", to_json(risk));
        own("approvals", Value::Array(approvals));
        own("exceptions", Value::Array(exceptions));
        own("conflicts", Value::Array(self.conflicts(intent)));
        own("active_changes", Value::Array(active_changes));
        own(
            "rolled_back_versions",
            Value::from(runtime.rolled_back_versions(intent)),
        );
        own("previous_application", previous_application);
        own("scope_approvals", Value::Array(scope_approvals));
        own("application_scope_sha256", scope_digest);
        let application_field = cache.get(&cache.applications, &application.value, || {
            Arc::new(SharedField::new("application", to_json(&application.value)))
        });
        let artifact_field = cache.get(&cache.artifacts, artifact, || {
            Arc::new(SharedField::new("artifact", to_json(artifact)))
        });
        input.field("application", InputField::Shared(application_field));
        input.field("version", InputField::Shared(version_field));
        input.field("artifact", InputField::Shared(artifact_field));
        input.field(
            "publisher",
            match principal(&intent.requested_by) {
                Some(shared) => InputField::Shared(shared),
                None => InputField::Own(Value::Null),
            },
        );
        input.field("config", InputField::Shared(config_field.clone()));
        Some(input)
    }

    /// Judges `intents`, in order: each as on its own, the policy inputs of
    /// all of them evaluated together.
    fn judge_chunk(
        &self,
        intents: &[&Located<DeploymentIntent>],
        engine: &PolicyEngine,
        runtime: &dyn RuntimeFacts,
        cache: &InputCache,
    ) -> Vec<(IntentEvaluation, Option<Diagnostic>)> {
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
        /// One intent before its policy evaluation.
        enum Pending {
            Decided(Option<RiskAssessment>, PolicyOutcome),
            Input(RiskAssessment, PolicyInput),
        }
        let pending: Vec<Pending> = intents
            .iter()
            .map(|intent| match risk::assess(self.snapshot, intent) {
                Err(error) => Pending::Decided(
                    None,
                    unresolved(
                        format!(
                            "{}: {error}; fix the errors reported for {}",
                            intent.intent_id, intent.file
                        ),
                        "model.unresolved",
                    ),
                ),
                Ok(risk) => match self.input_fields(intent, &risk, runtime, cache) {
                    None => Pending::Decided(
                        Some(risk),
                        unresolved(
                            format!(
                                "{} does not resolve; fix the errors reported for {}",
                                intent.intent_id, intent.file
                            ),
                            "model.unresolved",
                        ),
                    ),
                    Some(input) => Pending::Input(risk, input),
                },
            })
            .collect();
        let inputs: Vec<&PolicyInput> = pending
            .iter()
            .filter_map(|pending| match pending {
                Pending::Input(_, input) => Some(input),
                Pending::Decided(..) => None,
            })
            .collect();
        let mut evaluated = engine.evaluate_inputs(&inputs).into_iter();
        drop(inputs);
        intents
            .iter()
            .zip(pending)
            .map(|(intent, pending)| {
                let (risk, outcome, diagnostic) = match pending {
                    Pending::Decided(risk, outcome) => (risk, outcome, None),
                    Pending::Input(risk, _) => match evaluated.next().unwrap_or_else(|| {
                        Err(PolicyError::Evaluation {
                            message: "the policy engine gave no outcome for this input".into(),
                        })
                    }) {
                        Ok(outcome) => (Some(risk), outcome, None),
                        Err(error) => (
                            Some(risk),
                            unresolved(
                                format!("policy evaluation failed: {error}"),
                                "policy.error",
                            ),
                            Some(intent.error("", format!("policy evaluation failed: {error}"))),
                        ),
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
            })
            .collect()
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
    context.input(intent, &risk, runtime, &InputCache::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version field is the version's JSON less its artifacts, for
    /// every version of the synthetic repository (with and without
    /// release notes and dependencies).
    #[test]
    fn version_field_is_the_version_without_its_artifacts() {
        let entries: Vec<crate::model::Entry> = crate::synthetic::files(40)
            .into_iter()
            .map(|(path, text)| crate::model::Entry::file(path, text.into_bytes()))
            .collect();
        let (snapshot, _) = crate::model::load(&entries);
        assert!(!snapshot.versions.is_empty());
        for version in snapshot.versions.values() {
            let mut variants = vec![version.value.clone()];
            let mut other = version.value.clone();
            other.release_notes = Some("notes \"quoted\"".into());
            other.dependencies.clear();
            variants.push(other);
            for variant in variants {
                let mut expected = to_json(&variant);
                expected
                    .as_object_mut()
                    .expect("a version is an object")
                    .remove("artifacts");
                assert_eq!(version_json(&variant), expected);
                assert_eq!(
                    serde_json::to_string(&version_json(&variant)).expect("JSON"),
                    serde_json::to_string(&expected).expect("JSON")
                );
            }
        }
    }
}
