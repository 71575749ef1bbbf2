//! Policy: the Rego bundle that decides whether a deployment intent may go.
//!
//! The built-in rules (`policies/*.rego`, package `ringmaster.builtin`) are
//! embedded in the binary; a governed repository may add its own rules in
//! `ringmaster.tenant` or below, which can only add findings, never remove
//! built-in ones. One [`PolicyEngine`] is built per bundle (built-ins plus one
//! revision's tenant files) and evaluated once per intent with an input
//! document described in `docs/policy-input.md`.
//!
//! The module is pure: no I/O, no clock (the input carries `now`; the
//! monotonic clock is read only to share one evaluation's time limit between
//! its two stages). Every evaluation has a time limit so a slow tenant rule
//! cannot stall the daemon.
//! Builtin functions fail strictly (an error, not an undefined value), so a
//! rule never silently vanishes: any [`PolicyError`] means "no decision" and
//! callers must fail closed.
//!
//! Two ways to evaluate, with the same decisions:
//!
//! - [`PolicyEngine::evaluate`] runs the built-in rules on regorus's RVM,
//!   compiled once per process (`compiled`), on an input converted with
//!   reuse of the fields that repeat between intents (`input`), and the
//!   tenant packages on the interpreter, one `eval_rule` per set a tenant
//!   file defines. Tenant rules never run on the RVM: it is laxer than the
//!   interpreter (errors and conflicting values make a rule body quietly
//!   fail, recursion overflows the stack), and a tenant rule must fail
//!   closed. Inputs that do not have the documented shape (`shape`), and any
//!   RVM or tenant failure other than the time limit, go to the reference
//!   path, which then decides or reports the error.
//! - [`PolicyEngine::evaluate_interpreted`], the reference: everything on the
//!   interpreter, with one query reading every output rule. The parity tests
//!   check that both paths give identical outcomes.

mod bundle;
mod compiled;
mod error;
mod input;
pub mod isolation;
pub mod limits;
mod outcome;
mod shape;

pub use bundle::{BUILTIN_PACKAGE, BUILTIN_POLICIES, TENANT_PACKAGE};
pub use error::PolicyError;
pub use input::{InputField, PolicyInput, SharedField};
pub use outcome::{Decision, PolicyOutcome, Reason, ReasonKind};

use crate::diagnostic::Position;
use bundle::{is_tenant_package, package_statement_line};
use error::LocatedError;
use isolation::{IsolatedTenant, PackageSets};
use regorus::utils::limits::{ExecutionTimerConfig, LimitError};
use serde_json::Value as Json;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one evaluation may run unless [`PolicyEngine::with_time_limit`] says otherwise:
/// a backstop against runaway tenant rules, wide enough that a loaded machine
/// running a debug build never trips it on a normal rule.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(1);

/// Work units between two clock reads of the regorus execution timer.
const TIMER_CHECK_INTERVAL: u32 = 32;

/// Rule evaluated once at build time to make regorus analyse every module.
const READINESS_RULE: &str = "data.ringmaster.builtin.bundle_loaded";

/// The built-in rules read after each evaluation, in this order: the four
/// output sets (in [`ReasonKind::ALL`] order), then the approval counts.
const BUILTIN_OUTPUTS: [&str; 6] = [
    "deny",
    "require_exception",
    "require_approval",
    "notes",
    "approvals_required",
    "counted_approvals",
];

/// Which machinery [`PolicyEngine::evaluate`] uses for an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluationPath {
    /// Built-in rules on the compiled RVM program, tenant packages on the
    /// interpreter. An unexpected RVM failure still falls back to the
    /// interpreter.
    Compiled,
    /// Everything on the interpreter, as [`PolicyEngine::evaluate_interpreted`]:
    /// the input does not have the documented shape, or the RVM could not
    /// compile the built-in bundle.
    Interpreted,
}

/// A compiled policy bundle, ready to evaluate intents.
///
/// Cloning is a few reference-count increments; clones share the compiled
/// bundle and can be used from several threads at once.
#[derive(Clone)]
pub struct PolicyEngine {
    /// Parsed, analysed and prepared; cloned (cheaply) for each evaluation
    /// because regorus evaluates through `&mut self`. Holds the tenant files
    /// too unless they are `isolated`.
    prepared: Arc<regorus::Engine>,
    /// Tenant packages in sorted order, whose output sets are read after each evaluation.
    tenant_packages: Arc<[PackageSets]>,
    /// One query reading every output rule by its full path (see [`output_query`]).
    output_query: Arc<str>,
    time_limit: Duration,
    /// The tenant files compiled in the installed [`isolation`], which then
    /// answers every question about them.
    isolated: Option<Arc<dyn IsolatedTenant>>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PolicyEngine")
            .field("tenant_packages", &self.tenant_packages)
            .field("time_limit", &self.time_limit)
            .field("isolated", &self.isolated.is_some())
            .finish_non_exhaustive()
    }
}

/// An input document as [`PolicyEngine`] is given it: the JSON itself, or
/// its fields ([`PolicyInput`]).
#[derive(Clone, Copy)]
enum Doc<'a> {
    Json(&'a Json),
    Parts(&'a PolicyInput),
}

impl<'a> Doc<'a> {
    /// The JSON document (made from the fields of a [`PolicyInput`]: only
    /// the reference path and single requests need it).
    fn document(self) -> std::borrow::Cow<'a, Json> {
        match self {
            Doc::Json(json) => std::borrow::Cow::Borrowed(json),
            Doc::Parts(parts) => std::borrow::Cow::Owned(parts.document()),
        }
    }

    fn prepare(self) -> input::PreparedInput {
        match self {
            Doc::Json(json) => input::prepare(json),
            Doc::Parts(parts) => input::prepare_parts(parts),
        }
    }

    /// The top-level fields with the ids [`Doc::prepare`] gave them.
    fn fields(self, shared: &[Option<u64>]) -> Vec<(&'a str, &'a Json, Option<u64>)> {
        let id = |index: usize| shared.get(index).copied().flatten();
        match self {
            Doc::Json(json) => match json.as_object() {
                Some(fields) => fields
                    .iter()
                    .enumerate()
                    .map(|(index, (name, value))| (name.as_str(), value, id(index)))
                    .collect(),
                None => Vec::new(),
            },
            Doc::Parts(parts) => parts
                .fields()
                .enumerate()
                .map(|(index, (name, value))| (name, value, id(index)))
                .collect(),
        }
    }
}

fn package_name(package: &PackageSets) -> String {
    package.components.join(".")
}

impl PolicyEngine {
    /// Compiles the built-in bundle plus the tenant's policy files, given as
    /// `(path, source)`. Returns every problem at once: files over the
    /// [`limits`], tenant files outside `ringmaster.tenant`, syntax errors
    /// and compile errors, each naming the file and line.
    ///
    /// Tenant files are checked against the limits first, before any parser
    /// sees them; then, when an [`isolation`] is installed, compiled and
    /// evaluated there.
    pub fn new(tenant_policies: &[(String, String)]) -> Result<PolicyEngine, Vec<PolicyError>> {
        if tenant_policies.is_empty() {
            return PolicyEngine::in_process(&[], &mut |_| {});
        }
        let refused = limits::scan_bundle(tenant_policies);
        if !refused.is_empty() {
            return Err(refused);
        }
        match isolation::installed() {
            None => PolicyEngine::in_process(tenant_policies, &mut |_| {}),
            Some(isolation) => {
                let isolated = isolation.compile(tenant_policies)?;
                let mut engine = PolicyEngine::in_process(&[], &mut |_| {})?;
                engine.tenant_packages = isolated.packages().to_vec().into();
                engine.output_query = output_query(&engine.tenant_packages).into();
                engine.isolated = Some(isolated);
                Ok(engine)
            }
        }
    }

    /// Compiles the bundle in this process, without the limits scan (the
    /// caller did it). `parsing` is told each tenant file before it is
    /// parsed, so whoever waits for this knows which file a slow parse is in.
    /// What the guarded worker runs; everything else calls [`PolicyEngine::new`].
    pub fn in_process(
        tenant_policies: &[(String, String)],
        parsing: &mut dyn FnMut(&str),
    ) -> Result<PolicyEngine, Vec<PolicyError>> {
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(timer_config(DEFAULT_TIME_LIMIT));
        let mut errors = Vec::new();

        for (path, source) in BUILTIN_POLICIES {
            if let Err(error) = engine.add_policy(path.to_string(), source.to_string()) {
                errors.push(syntax_error(path, &error));
            }
        }

        let mut tenant_files = Vec::new();
        for (path, source) in tenant_policies {
            parsing(path);
            if let Err(error) = engine.add_policy(path.clone(), source.clone()) {
                errors.push(syntax_error(path, &error));
                continue;
            }
            match last_package_components(&engine) {
                Some(components) if is_tenant_package(&components) => {
                    tenant_files.push((path.as_str(), components));
                }
                Some(components) => errors.push(PolicyError::TenantPackageRefused {
                    file: path.clone(),
                    line: package_statement_line(source),
                    package: components.join("."),
                }),
                None => errors.push(PolicyError::Compile {
                    file: path.clone(),
                    position: Position::default(),
                    message: "regorus could not report this file's package".to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let tenant_packages = tenant_packages(&engine, &tenant_files);

        // Analysis and preparation happen on first evaluation; do it now, on a
        // rule that reads nothing, so what regorus checks before evaluating
        // (statement scheduling, imports) fails the build. regorus resolves
        // function names and detects recursion lazily: those surface as
        // `PolicyError::Evaluation` (naming file:line) when the rule body runs.
        if let Err(error) = engine.eval_rule(READINESS_RULE.to_string()) {
            let located = LocatedError::parse(&error.to_string());
            return Err(vec![PolicyError::Compile {
                file: located.file.unwrap_or_else(|| "<bundle>".to_string()),
                position: located.position,
                message: located.message,
            }]);
        }

        Ok(PolicyEngine {
            prepared: Arc::new(engine),
            output_query: output_query(&tenant_packages).into(),
            tenant_packages: tenant_packages.into(),
            time_limit: DEFAULT_TIME_LIMIT,
            isolated: None,
        })
    }

    /// The same bundle with another per-evaluation time limit.
    pub fn with_time_limit(mut self, time_limit: Duration) -> PolicyEngine {
        self.time_limit = time_limit;
        self
    }

    /// The per-evaluation time limit.
    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }

    /// Whether the tenant files are compiled and evaluated in an installed
    /// [`isolation`] rather than in this process.
    pub fn is_isolated(&self) -> bool {
        self.isolated.is_some()
    }

    /// Dotted names of the tenant packages in this bundle, sorted.
    pub fn tenant_package_names(&self) -> Vec<String> {
        self.tenant_packages.iter().map(package_name).collect()
    }

    /// The tenant packages and the sets read from each, as an isolation
    /// reports them back to the engine that asked for the compilation.
    pub fn package_sets(&self) -> Vec<PackageSets> {
        self.tenant_packages.to_vec()
    }

    /// Evaluates the bundle on one input document (see `docs/policy-input.md`)
    /// and aggregates the findings of every package into one decision.
    ///
    /// The built-in rules run on the RVM and the tenant packages on the
    /// interpreter (see [`EvaluationPath`]), in the installed [`isolation`]
    /// if there is one; the decision is the one
    /// [`PolicyEngine::evaluate_interpreted`] gives. The time limit covers both.
    /// Its duration is recorded (`ringmaster_policy_evaluation_seconds`).
    pub fn evaluate(&self, input: &Json) -> Result<PolicyOutcome, PolicyError> {
        let started = Instant::now();
        let outcome = self.evaluate_once(Doc::Json(input), started);
        crate::metrics::runtime::policy_evaluated(started.elapsed(), outcome.is_ok());
        outcome
    }

    fn evaluate_once(
        &self,
        input: Doc<'_>,
        started: Instant,
    ) -> Result<PolicyOutcome, PolicyError> {
        let Some(program) = compiled::builtin_program() else {
            return self.evaluate_interpreted(&input.document());
        };
        let input::PreparedInput {
            value, conforms, ..
        } = input.prepare();
        if !conforms {
            return self.evaluate_interpreted(&input.document());
        }
        let builtin = match program.run(&value, timer_config(self.time_limit)) {
            Ok(outputs) => outputs,
            Err(compiled::RunError::TimeLimitExceeded) => {
                return Err(PolicyError::TimeLimitExceeded {
                    limit: self.time_limit,
                });
            }
            // Not expected on a conforming input; the interpreter decides.
            Err(compiled::RunError::Other) => return self.evaluate_interpreted(&input.document()),
        };
        let mut outputs = builtin
            .iter()
            .map(|value| value.as_ref().map(to_json).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        if !self.tenant_packages.is_empty() {
            let tenant = match &self.isolated {
                Some(isolated) => isolated.answer(&isolation::Request::TenantOutputs {
                    input: input.document().into_owned(),
                    time_limit: self.remaining(started)?,
                })?,
                None => self.tenant_outputs(value, started)?,
            };
            match tenant {
                Some(tenant) => outputs.extend(tenant),
                // A broken tenant rule: the reference path reports it.
                None => return self.evaluate_interpreted(&input.document()),
            }
        }
        self.outcome(outputs)
    }

    /// [`PolicyEngine::evaluate`] of each input, in order: the same outcome
    /// or error for each as when evaluated one by one. With an installed
    /// [`isolation`], the tenant packages of every input whose built-in
    /// rules ran are asked in one batch ([`IsolatedTenant::answer_batch`]),
    /// each under what is left of its own time limit.
    pub fn evaluate_many(&self, inputs: &[&Json]) -> Vec<Result<PolicyOutcome, PolicyError>> {
        let inputs: Vec<Doc<'_>> = inputs.iter().map(|input| Doc::Json(input)).collect();
        self.evaluate_docs(&inputs)
    }

    /// [`PolicyEngine::evaluate_many`] of inputs given as their fields:
    /// the outcome or error of each is the one [`PolicyEngine::evaluate`]
    /// gives for its [`PolicyInput::document`]; the fields many inputs
    /// share are converted and checked once, not once per input.
    pub fn evaluate_inputs(
        &self,
        inputs: &[&PolicyInput],
    ) -> Vec<Result<PolicyOutcome, PolicyError>> {
        let inputs: Vec<Doc<'_>> = inputs.iter().map(|input| Doc::Parts(input)).collect();
        self.evaluate_docs(&inputs)
    }

    fn evaluate_docs(&self, inputs: &[Doc<'_>]) -> Vec<Result<PolicyOutcome, PolicyError>> {
        let evaluate_each = || {
            inputs
                .iter()
                .map(|input| {
                    let started = Instant::now();
                    let outcome = self.evaluate_once(*input, started);
                    crate::metrics::runtime::policy_evaluated(started.elapsed(), outcome.is_ok());
                    outcome
                })
                .collect()
        };
        let (Some(isolated), Some(program)) = (&self.isolated, compiled::builtin_program()) else {
            return evaluate_each();
        };
        if self.tenant_packages.is_empty() {
            return evaluate_each();
        }
        /// Where one input's evaluation stands after the built-in rules.
        enum Stage {
            Done(Result<PolicyOutcome, PolicyError>, Duration),
            Tenant {
                outputs: Vec<Option<Json>>,
                shared: Vec<Option<u64>>,
                time_limit: Duration,
                elapsed: Duration,
            },
        }
        let stages: Vec<Stage> = inputs
            .iter()
            .map(|input| {
                let started = Instant::now();
                let input::PreparedInput {
                    value,
                    conforms,
                    shared,
                } = input.prepare();
                let done = |outcome| Stage::Done(outcome, started.elapsed());
                if !conforms {
                    return done(self.evaluate_interpreted(&input.document()));
                }
                let builtin = match program.run(&value, timer_config(self.time_limit)) {
                    Ok(outputs) => outputs,
                    Err(compiled::RunError::TimeLimitExceeded) => {
                        return done(Err(PolicyError::TimeLimitExceeded {
                            limit: self.time_limit,
                        }));
                    }
                    Err(compiled::RunError::Other) => {
                        return done(self.evaluate_interpreted(&input.document()));
                    }
                };
                let outputs = match builtin
                    .iter()
                    .map(|value| value.as_ref().map(to_json).transpose())
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(outputs) => outputs,
                    Err(error) => return done(Err(error)),
                };
                match self.remaining(started) {
                    Ok(time_limit) => Stage::Tenant {
                        outputs,
                        shared,
                        time_limit,
                        elapsed: started.elapsed(),
                    },
                    Err(error) => done(Err(error)),
                }
            })
            .collect();
        let asked: Vec<isolation::TenantInput<'_>> = stages
            .iter()
            .zip(inputs)
            .filter_map(|(stage, input)| match stage {
                Stage::Tenant {
                    shared, time_limit, ..
                } => Some(isolation::TenantInput {
                    fields: input.fields(shared),
                    time_limit: *time_limit,
                }),
                Stage::Done(..) => None,
            })
            .collect();
        let batch_started = Instant::now();
        let mut answers = if asked.is_empty() {
            Vec::new()
        } else {
            isolated.answer_batch(&asked)
        }
        .into_iter();
        // The batch's time, shared out among its evaluations for the metric.
        let share = batch_started
            .elapsed()
            .checked_div(u32::try_from(asked.len().max(1)).unwrap_or(u32::MAX))
            .unwrap_or_default();
        stages
            .into_iter()
            .zip(inputs)
            .map(|(stage, input)| {
                let (outcome, elapsed) = match stage {
                    Stage::Done(outcome, elapsed) => (outcome, elapsed),
                    Stage::Tenant {
                        mut outputs,
                        elapsed,
                        ..
                    } => {
                        let answer = answers.next().unwrap_or_else(|| {
                            Err(PolicyError::WorkerFailed {
                                message: "the isolation gave fewer answers than it was asked for"
                                    .into(),
                            })
                        });
                        let outcome = match answer {
                            Ok(Some(tenant)) => {
                                outputs.extend(tenant);
                                self.outcome(outputs)
                            }
                            // A broken tenant rule: the reference path reports it.
                            Ok(None) => self.evaluate_interpreted(&input.document()),
                            Err(error) => Err(error),
                        };
                        (outcome, elapsed + share)
                    }
                };
                crate::metrics::runtime::policy_evaluated(elapsed, outcome.is_ok());
                outcome
            })
            .collect()
    }

    /// The output sets of the tenant packages for an input given as a
    /// regorus value, within `time_limit`: what the guarded worker answers
    /// for each item of a batch (see [`PolicyEngine::answer`]).
    pub fn answer_tenant_value(
        &self,
        input: regorus::Value,
        time_limit: Duration,
    ) -> Result<isolation::Answer, PolicyError> {
        let engine = self.clone().with_time_limit(time_limit);
        engine.tenant_outputs(input, Instant::now())
    }

    /// A JSON value as the regorus value an input document holds.
    pub fn input_value(json: &Json) -> regorus::Value {
        input::convert(json)
    }

    /// Which machinery [`PolicyEngine::evaluate`] uses for `input`.
    pub fn evaluation_path(&self, input: &Json) -> EvaluationPath {
        match compiled::builtin_program() {
            Some(_) if shape::conforms(input) => EvaluationPath::Compiled,
            _ => EvaluationPath::Interpreted,
        }
    }

    /// The reference evaluation: the whole bundle on the interpreter, one
    /// query reading every output rule. [`PolicyEngine::evaluate`] gives the
    /// same outcomes faster; this path is its fallback, and what the parity
    /// tests and the benchmark compare it with.
    pub fn evaluate_interpreted(&self, input: &Json) -> Result<PolicyOutcome, PolicyError> {
        let outputs = match &self.isolated {
            Some(isolated) => isolated
                .answer(&isolation::Request::Interpreted {
                    input: input.clone(),
                    time_limit: self.time_limit,
                })?
                .ok_or_else(|| PolicyError::WorkerFailed {
                    message: "the worker gave no outputs for the reference evaluation".into(),
                })?,
            None => self.interpreted_outputs(input, self.time_limit)?,
        };
        self.outcome(outputs)
    }

    /// Answers a request about this engine's own tenant files: what the
    /// guarded worker does with each request it reads.
    pub fn answer(&self, request: &isolation::Request) -> Result<isolation::Answer, PolicyError> {
        match request {
            isolation::Request::TenantOutputs { input, time_limit } => {
                let engine = self.clone().with_time_limit(*time_limit);
                let prepared = input::prepare(input);
                engine.tenant_outputs(prepared.value, Instant::now())
            }
            isolation::Request::Interpreted { input, time_limit } => {
                self.interpreted_outputs(input, *time_limit).map(Some)
            }
        }
    }

    /// What is left of the time limit since `started`; an error when nothing is.
    fn remaining(&self, started: Instant) -> Result<Duration, PolicyError> {
        let remaining = self.time_limit.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            Err(PolicyError::TimeLimitExceeded {
                limit: self.time_limit,
            })
        } else {
            Ok(remaining)
        }
    }

    /// Every output rule on the interpreter, in [`output_query`] order.
    fn interpreted_outputs(
        &self,
        input: &Json,
        time_limit: Duration,
    ) -> Result<Vec<Option<Json>>, PolicyError> {
        let mut engine = regorus::Engine::clone(&self.prepared);
        engine.set_execution_timer_config(timer_config(time_limit));
        engine.set_input(regorus::Value::from(input.clone()));
        let results = engine
            .eval_query(self.output_query.to_string(), false)
            .map_err(|error| self.evaluation_error(&error))?;
        let expressions = results
            .result
            .first()
            .map(|result| result.expressions.as_slice())
            .unwrap_or_default();
        expressions
            .iter()
            .map(|expression| {
                // Each expression is `[value | value := <rule>]`: empty when the
                // rule is undefined (a tenant package that omits a set).
                match expression.value.as_array() {
                    Ok(values) if values.len() <= 1 => values.first().map(to_json).transpose(),
                    _ => Err(PolicyError::Evaluation {
                        message: format!(
                            "unexpected policy query result {}",
                            to_json(&expression.value)?
                        ),
                    }),
                }
            })
            .collect()
    }

    /// The four sets of each tenant package, in `tenant_packages` order, each
    /// read by its own `eval_rule` (much cheaper than parsing and scheduling
    /// a query on every evaluation), within what is left of the time limit
    /// since `started`.
    ///
    /// `Ok(None)` when the interpreter fails for another reason than the
    /// time limit (an unknown function, recursion, conflicting values): the
    /// caller then evaluates on the reference path, so the error is exactly
    /// the one it reports.
    fn tenant_outputs(
        &self,
        input: regorus::Value,
        started: Instant,
    ) -> Result<Option<Vec<Option<Json>>>, PolicyError> {
        let mut engine = regorus::Engine::clone(&self.prepared);
        engine.set_input(input);
        let mut outputs = Vec::with_capacity(self.tenant_packages.len() * ReasonKind::ALL.len());
        for path in self
            .tenant_packages
            .iter()
            .flat_map(|package| &package.set_paths)
        {
            let Some(path) = path else {
                outputs.push(None);
                continue;
            };
            engine.set_execution_timer_config(timer_config(self.remaining(started)?));
            match engine.eval_rule(path.clone()) {
                Ok(regorus::Value::Undefined) => outputs.push(None),
                Ok(value) => outputs.push(Some(to_json(&value)?)),
                Err(error) => {
                    return match self.evaluation_error(&error) {
                        PolicyError::TimeLimitExceeded { limit } => {
                            Err(PolicyError::TimeLimitExceeded { limit })
                        }
                        _ => Ok(None),
                    };
                }
            }
        }
        Ok(Some(outputs))
    }

    /// Turns the output rules' values (built-ins in [`BUILTIN_OUTPUTS`] order,
    /// then each tenant package's four sets; `None` when undefined) into the outcome.
    fn outcome(&self, outputs: Vec<Option<Json>>) -> Result<PolicyOutcome, PolicyError> {
        let expected = BUILTIN_OUTPUTS.len() + self.tenant_packages.len() * ReasonKind::ALL.len();
        if outputs.len() != expected {
            return Err(PolicyError::Evaluation {
                message: format!(
                    "the policy query returned {} values, expected {expected}",
                    outputs.len()
                ),
            });
        }

        let (builtin_outputs, tenant_outputs) = outputs.split_at(BUILTIN_OUTPUTS.len());
        let mut findings = Vec::new();
        for (kind, set) in ReasonKind::ALL.iter().zip(builtin_outputs) {
            findings.extend(set_findings(
                set.as_ref(),
                *kind,
                BUILTIN_PACKAGE,
                "builtin",
            )?);
        }
        let tenant_sets = tenant_outputs.chunks(ReasonKind::ALL.len());
        for (package, sets) in self.tenant_packages.iter().zip(tenant_sets) {
            let name = package_name(package);
            for (kind, set) in ReasonKind::ALL.iter().zip(sets) {
                findings.extend(set_findings(set.as_ref(), *kind, &name, &name)?);
            }
        }

        Ok(PolicyOutcome::from_findings(
            findings,
            approvals_required(builtin_outputs[4].as_ref())?,
            counted_approvals(builtin_outputs[5].as_ref())?,
        ))
    }

    fn evaluation_error(&self, error: &anyhow::Error) -> PolicyError {
        let timed_out = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<LimitError>(),
                Some(LimitError::TimeLimitExceeded { .. })
            )
        }) || error.to_string().contains("exceeded time limit");
        if timed_out {
            PolicyError::TimeLimitExceeded {
                limit: self.time_limit,
            }
        } else {
            let located = LocatedError::parse(&error.to_string());
            let message = match located.file {
                Some(file) => format!(
                    "{file}:{}:{}: {}",
                    located.position.line, located.position.column, located.message
                ),
                None => located.message,
            };
            PolicyError::Evaluation { message }
        }
    }
}

/// The query that reads every output rule: `[value | value := data.<package>.<rule>]`
/// per rule, built-ins first (in [`BUILTIN_OUTPUTS`] order), then the four sets
/// of each tenant package.
///
/// Rules are read one by one, never as a whole package document
/// (`data.ringmaster.builtin`): regorus 0.14.1 evaluates a package whose
/// partial set is split across files incorrectly when asked for the whole
/// package (a `not other_rule` in a later file sees `other_rule` as undefined),
/// while a query for the rule itself is correct. The comprehension makes an
/// undefined rule (a set a tenant package does not define) an empty array
/// instead of an undefined query.
fn output_query(tenant_packages: &[PackageSets]) -> String {
    let builtin = BUILTIN_OUTPUTS
        .iter()
        .map(|rule| format!("data.{BUILTIN_PACKAGE}.{rule}"));
    let tenant = tenant_packages.iter().flat_map(|package| {
        ReasonKind::ALL
            .iter()
            .map(move |kind| format!("data.{}.{}", package_name(package), kind.set_name()))
    });
    builtin
        .chain(tenant)
        .map(|path| format!("[value | value := {path}]"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tenant packages of `files` (path, package components), sorted, each
/// with the rule paths of the output sets some file may define.
///
/// A set may be defined by a file of the package itself (`deny contains ..`)
/// or of a parent package (`b.deny contains ..` in `ringmaster.tenant.a`
/// defines `ringmaster.tenant.a.b.deny`), also through a rule at a prefix of
/// the path (`b := {..}`). So a set counts as possibly defined when a file of
/// the package or of a parent package declares anything under the first
/// component of the path below that file's package. Over-counting is safe:
/// reading an undefined set gives `None` as the reference query does, or an
/// error that sends the evaluation to the reference path.
fn tenant_packages(engine: &regorus::Engine, files: &[(&str, Vec<String>)]) -> Vec<PackageSets> {
    let mut packages: Vec<Vec<String>> = files
        .iter()
        .map(|(_, components)| components.clone())
        .collect();
    packages.sort();
    packages.dedup();
    packages
        .into_iter()
        .map(|components| {
            let name = components.join(".");
            let set_paths = ReasonKind::ALL.map(|kind| {
                let defined = files.iter().any(|(path, file_package)| {
                    let Some(below) = components.strip_prefix(file_package.as_slice()) else {
                        return false;
                    };
                    let root = below.first().map_or(kind.set_name(), String::as_str);
                    engine
                        .has_declared_rule_rooted_at(path, root)
                        .unwrap_or(true)
                });
                defined.then(|| format!("data.{name}.{}", kind.set_name()))
            });
            PackageSets {
                components,
                set_paths,
            }
        })
        .collect()
}

/// A regorus value as JSON.
fn to_json(value: &regorus::Value) -> Result<Json, PolicyError> {
    serde_json::to_value(value).map_err(|error| PolicyError::Evaluation {
        message: format!("the policy result is not JSON: {error}"),
    })
}

fn timer_config(limit: Duration) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit,
        check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
    }
}

fn syntax_error(path: &str, error: &anyhow::Error) -> PolicyError {
    let located = LocatedError::parse(&error.to_string());
    PolicyError::Syntax {
        file: located.file.unwrap_or_else(|| path.to_string()),
        position: located.position,
        message: located.message,
    }
}

/// Package components of the module added last.
fn last_package_components(engine: &regorus::Engine) -> Option<Vec<String>> {
    let packages = engine.get_policy_package_components().ok()?;
    packages.last().map(|package| package.components.clone())
}

/// One output set of one package, as reasons; an undefined set is empty.
fn set_findings(
    set: Option<&Json>,
    kind: ReasonKind,
    package: &str,
    source: &str,
) -> Result<Vec<Reason>, PolicyError> {
    let Some(set) = set else {
        return Ok(Vec::new());
    };
    let malformed = |element: &Json| PolicyError::MalformedOutput {
        package: package.to_string(),
        set: kind.set_name().to_string(),
        element: element.to_string(),
    };
    let elements = set.as_array().ok_or_else(|| malformed(set))?;
    elements
        .iter()
        .map(|element| {
            let field = |name: &str| element.get(name).and_then(Json::as_str);
            match (field("rule"), field("message")) {
                (Some(rule), Some(message)) => Ok(Reason {
                    rule: rule.to_string(),
                    kind,
                    message: message.to_string(),
                    source: source.to_string(),
                    waits_on: field("waits_on").map(str::to_owned),
                }),
                _ => Err(malformed(element)),
            }
        })
        .collect()
}

fn approvals_required(value: Option<&Json>) -> Result<u32, PolicyError> {
    let value = value.unwrap_or(&Json::Null);
    value
        .as_u64()
        .and_then(|count| u32::try_from(count).ok())
        .ok_or_else(|| PolicyError::Evaluation {
            message: format!(
                "{BUILTIN_PACKAGE}.approvals_required must be a non-negative integer, got {value}"
            ),
        })
}

fn counted_approvals(value: Option<&Json>) -> Result<Vec<String>, PolicyError> {
    let value = value.unwrap_or(&Json::Null);
    let invalid = || PolicyError::Evaluation {
        message: format!(
            "{BUILTIN_PACKAGE}.counted_approvals must be a set of strings, got {value}"
        ),
    };
    value
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|id| id.as_str().map(str::to_string).ok_or_else(invalid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn engine_is_send_and_sync() {
        assert_send_sync::<PolicyEngine>();
    }

    #[test]
    fn builtin_bundle_compiles_without_tenant_files() {
        let engine = PolicyEngine::new(&[]).expect("built-in bundle compiles");
        assert!(engine.tenant_package_names().is_empty());
        assert_eq!(engine.time_limit(), DEFAULT_TIME_LIMIT);
    }
}
