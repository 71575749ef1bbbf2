//! The built-in bundle compiled once for regorus's RVM (Rego virtual machine).
//!
//! The built-in rules are the same for every tenant, so they are compiled
//! once per process into one RVM program whose single entry point,
//! [`ENTRY_POINT`], gathers the six built-in outputs in [`super::BUILTIN_OUTPUTS`]
//! order, each as `[value | value := data.ringmaster.builtin.<rule>]` (the
//! same shape as the interpreter's query). One run computes every shared
//! helper once; running one entry point per output would recompute them,
//! because the RVM clears its rule cache between entry points.
//!
//! The RVM is only ever given the built-in rules, never tenant rules: it does
//! not share the interpreter's strictness (a builtin error or a conflict
//! between rule values makes a rule body fail instead of failing the
//! evaluation, recursion overflows the stack, and `[x | x := <undefined>]`
//! yields `["<undefined>"]`). The built-in rules avoid those constructs, are
//! only run on inputs of the documented shape (`super::shape`), and are
//! checked against the interpreter by the parity tests.
//!
//! Each thread keeps its own virtual machine and reuses it: building one and
//! loading the program costs about a quarter of an evaluation.

use super::{BUILTIN_OUTPUTS, BUILTIN_PACKAGE, BUILTIN_POLICIES};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{CompiledPolicy, Value};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

/// Package of the rule that gathers the outputs, in an engine that holds
/// only the built-in files and this rule.
const OUTPUTS_PACKAGE: &str = "ringmaster.outputs";

/// The gathering rule, the RVM program's only entry point.
const ENTRY_POINT: &str = "data.ringmaster.outputs.builtin";

thread_local! {
    /// This thread's machine for the built-in program, built on first use.
    static MACHINE: RefCell<Option<RegoVM>> = const { RefCell::new(None) };
}

/// What one run of the built-in program can end in, besides its outputs.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The run exceeded its time limit.
    TimeLimitExceeded,
    /// Anything else; the caller falls back to the interpreter, whose answer
    /// (or error) is the reference.
    Other,
}

/// The compiled built-in program.
pub(crate) struct BuiltinProgram {
    policy: CompiledPolicy,
    program: Arc<Program>,
}

impl std::fmt::Debug for BuiltinProgram {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BuiltinProgram")
            .field("instructions", &self.program.instructions.len())
            .finish_non_exhaustive()
    }
}

/// The process-wide built-in program, compiled on first use; `None` when the
/// RVM cannot compile the bundle (evaluation then stays on the interpreter;
/// a unit test keeps that from happening unnoticed).
pub(crate) fn builtin_program() -> Option<&'static BuiltinProgram> {
    static PROGRAM: OnceLock<Option<BuiltinProgram>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| BuiltinProgram::compile().ok())
        .as_ref()
}

/// The module holding the gathering rule.
fn outputs_module() -> String {
    let outputs = BUILTIN_OUTPUTS
        .iter()
        .map(|rule| format!("\t[value | value := data.{BUILTIN_PACKAGE}.{rule}],\n"))
        .collect::<String>();
    format!("package {OUTPUTS_PACKAGE}\n\nbuiltin := [\n{outputs}]\n")
}

impl BuiltinProgram {
    fn compile() -> anyhow::Result<BuiltinProgram> {
        let mut engine = regorus::Engine::new();
        for (path, source) in BUILTIN_POLICIES {
            engine.add_policy(path.to_string(), source.to_string())?;
        }
        engine.add_policy("<ringmaster>/outputs.rego".to_string(), outputs_module())?;
        let policy = engine.compile_with_entrypoint(&ENTRY_POINT.into())?;
        let program = Compiler::compile_from_policy(&policy, &[ENTRY_POINT])?;
        Ok(BuiltinProgram { policy, program })
    }

    fn new_machine(&self) -> RegoVM {
        let mut machine = RegoVM::new_with_policy(self.policy.clone());
        machine.load_program(self.program.clone());
        // Errors must not turn into undefined values where the RVM lets them
        // propagate (comparisons of different types, builtin calls).
        machine.set_strict_builtin_errors(true);
        // The time limit bounds a run; the default instruction budget (25,000)
        // is too small for inputs with many approvals or CVEs.
        machine.set_max_instructions(usize::MAX);
        machine
    }

    /// Runs the built-in rules on `input` and returns the six outputs in
    /// [`BUILTIN_OUTPUTS`] order, each `None` when the rule is undefined.
    pub(crate) fn run(
        &self,
        input: &Value,
        timer: ExecutionTimerConfig,
    ) -> Result<Vec<Option<Value>>, RunError> {
        // Taken out while it runs, so the slot is never borrowed across the run.
        let mut machine = MACHINE
            .with(|slot| slot.borrow_mut().take())
            .unwrap_or_else(|| self.new_machine());
        machine.set_execution_timer_config(Some(timer));
        machine.set_input(input.clone());
        let result = machine.execute_entry_point_by_name(ENTRY_POINT);
        // Do not keep the input alive in an idle machine.
        machine.set_input(Value::Null);
        MACHINE.with(|slot| *slot.borrow_mut() = Some(machine));

        let value = result.map_err(|error| match error {
            VmError::TimeLimitExceeded { .. } => RunError::TimeLimitExceeded,
            _ => RunError::Other,
        })?;
        unwrap_outputs(&value).ok_or(RunError::Other)
    }
}

/// `[[v], [], ...]` → `[Some(v), None, ...]`; `None` unless it has that shape.
fn unwrap_outputs(value: &Value) -> Option<Vec<Option<Value>>> {
    let outputs = value.as_array().ok()?;
    if outputs.len() != BUILTIN_OUTPUTS.len() {
        return None;
    }
    outputs
        .iter()
        .map(|wrapped| match wrapped.as_array() {
            Ok(values) if values.len() <= 1 => Some(values.first().cloned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_bundle_compiles_for_the_rvm() {
        let program = builtin_program().expect("the RVM compiles the built-in bundle");
        assert!(!program.program.instructions.is_empty());
    }

    /// A small deterministic generator (64-bit LCG), so a failure repeats.
    struct Choices(u64);

    impl Choices {
        fn below(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from((self.0 >> 33) % bound as u64).unwrap_or(0)
        }

        fn pick<T: Clone>(&mut self, options: &[T]) -> T {
            options[self.below(options.len())].clone()
        }

        /// Some of `values`, in a shuffled order, maybe with a repeat.
        fn some_of(&mut self, values: &[&str]) -> Vec<String> {
            let mut chosen: Vec<String> = values
                .iter()
                .filter(|_| self.below(2) == 0)
                .map(|value| (*value).to_string())
                .collect();
            if !chosen.is_empty() && self.below(4) == 0 {
                let repeat = chosen[self.below(chosen.len())].clone();
                chosen.push(repeat);
            }
            for index in (1..chosen.len()).rev() {
                chosen.swap(index, self.below(index + 1));
            }
            chosen
        }

        /// An object's `sites`: absent, null, or some sites.
        fn sites(&mut self, object: &mut serde_json::Map<String, serde_json::Value>, null: bool) {
            match self.below(4) {
                0 => {}
                1 if null => {
                    object.insert("sites".into(), serde_json::Value::Null);
                }
                _ => {
                    let sites = self.some_of(&["site-1", "site-2", "site-3", "*"]);
                    object.insert("sites".into(), serde_json::json!(sites));
                }
            }
        }

        fn scope(&mut self) -> serde_json::Value {
            let mut scope = serde_json::Map::new();
            scope.insert(
                "acquisition_boundaries".into(),
                serde_json::json!(self.some_of(&["acq-001", "acq-002", "*"])),
            );
            scope.insert(
                "business_units".into(),
                serde_json::json!(self.some_of(&["bu-hr", "bu-it", "*"])),
            );
            self.sites(&mut scope, true);
            serde_json::Value::Object(scope)
        }
    }

    /// `shape`'s minimal documented input with this intent (and its
    /// digest) and this application scope, and no publisher.
    fn documented_input(
        intent: serde_json::Value,
        allowed_scope: serde_json::Value,
    ) -> serde_json::Value {
        let mut input = super::super::shape::tests::minimal();
        input["intent"] = intent;
        input["intent_sha256"] = serde_json::json!("sha256:00");
        input["application"]["allowed_scope"] = allowed_scope;
        input
            .as_object_mut()
            .expect("an object")
            .remove("publisher");
        input
    }

    /// An input of the documented shape whose scope fields vary.
    fn scope_input(choices: &mut Choices) -> serde_json::Value {
        use serde_json::json;
        let mut target = serde_json::Map::new();
        target.insert(
            "acquisition_boundary".into(),
            json!(choices.pick(&["acq-001", "acq-002", "acq-003", "*"])),
        );
        target.insert(
            "business_unit".into(),
            json!(choices.pick(&["bu-hr", "bu-it", "bu-ops"])),
        );
        choices.sites(&mut target, false);
        let mut intent = json!({
            "intent_id": "app-hr",
            "requested_by": "alice",
            "version": "1.0.0",
            "target_scope": target,
            "rollback_plan": {"strategy": "halt"},
        });
        let publisher_scope = choices.scope();
        match choices.below(4) {
            0 => {}
            1 => intent["publisher_scope"] = json!(null),
            2 => intent["publisher_scope"] = choices.scope(),
            _ => {
                // The principal's scope in another order, with repeats.
                let mut same = publisher_scope.clone();
                for key in ["acquisition_boundaries", "business_units"] {
                    if let Some(values) = same[key].as_array_mut() {
                        values.reverse();
                        if let Some(first) = values.first().cloned() {
                            values.push(first);
                        }
                    }
                }
                intent["publisher_scope"] = same;
            }
        }
        let mut input = documented_input(intent, choices.scope());
        match choices.below(6) {
            0 => {}
            1 => input["publisher"] = json!(null),
            _ => {
                let roles = choices.some_of(&["publisher", "cab-approver"]);
                input["publisher"] =
                    json!({"id": "alice", "roles": roles, "scope": publisher_scope});
            }
        }
        input
    }

    /// The helper-based scope rules `policies/scope.rego` replaced, kept
    /// only as this test's reference.
    const SCOPE_BEFORE: &str = include_str!("testdata/scope_before_2026_12_06.rego");

    /// The interpreter's `deny` set of the built-in files, with
    /// `policies/scope.rego` replaced by `scope` when given.
    fn interpreted_denies(input: &serde_json::Value, scope: Option<&str>) -> regorus::Value {
        let mut engine = regorus::Engine::new();
        for (path, source) in BUILTIN_POLICIES {
            let source = match scope {
                Some(scope) if *path == "policies/scope.rego" => scope,
                _ => source,
            };
            engine
                .add_policy(path.to_string(), source.to_string())
                .expect("the built-in files parse");
        }
        engine.set_input(super::super::input::convert(input));
        engine
            .eval_rule(format!("data.{BUILTIN_PACKAGE}.deny"))
            .expect("deny evaluates")
    }

    /// `policies/scope.rego` on the RVM and on the interpreter against the
    /// helper-based rules it replaced (on the interpreter, the reference),
    /// on many inputs of the documented shape: the same outcome on both
    /// paths, the same deny findings as the reference, and every scope rule
    /// fires on some.
    ///
    /// The RVM running the helper-based rules fails this on about a quarter
    /// of these inputs: where a Scope's sites hold "*" (so `site_limit` is
    /// undefined) and the target lists sites, it found every target site
    /// "outside" that Scope, a DENY the interpreter does not give
    /// (`sites_outside`'s comprehension did not fail on the undefined
    /// `limit`).
    #[test]
    fn the_scope_rules_give_the_reference_findings() {
        let engine = crate::policy::PolicyEngine::new(&[]).expect("built-in bundle compiles");
        let program = builtin_program().expect("the RVM compiles the built-in bundle");
        let run = |input: &serde_json::Value| {
            let mut machine = program.new_machine();
            machine.set_input(super::super::input::convert(input));
            machine
                .execute_entry_point_by_name(ENTRY_POINT)
                .map(|value| unwrap_outputs(&value))
                .map_err(|error| error.to_string())
        };
        assert_ne!(
            SCOPE_BEFORE,
            BUILTIN_POLICIES
                .iter()
                .find(|(path, _)| *path == "policies/scope.rego")
                .expect("the bundle has the scope rules")
                .1
        );
        let mut choices = Choices(17);
        let mut fired = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let input = scope_input(&mut choices);
            assert!(super::super::shape::conforms(&input), "{input:#}");
            let outcome = engine.evaluate(&input).expect("evaluation succeeds");
            assert_eq!(
                Ok(&outcome),
                engine.evaluate_interpreted(&input).as_ref(),
                "{input:#}"
            );
            let outputs = run(&input);
            assert!(matches!(outputs, Ok(Some(_))), "{input:#}: {outputs:?}");
            assert_eq!(
                interpreted_denies(&input, None),
                interpreted_denies(&input, Some(SCOPE_BEFORE)),
                "{input:#}"
            );
            fired.extend(outcome.reasons.iter().map(|reason| reason.rule.clone()));
        }
        for rule in [
            "scope.publisher_unknown",
            "scope.cross_boundary",
            "scope.outside_publisher",
            "scope.outside_application",
            "scope.publisher_scope_mismatch",
        ] {
            assert!(fired.contains(rule), "{rule} never fired: {fired:?}");
        }
    }

    /// `sites_outside` in `common.rego` (tenant rules may call it) gives,
    /// on the interpreter, the target sites a limiting Scope does not list:
    /// none when the Scope's sites are absent, null or hold "*".
    #[test]
    fn sites_outside_is_the_target_sites_a_limiting_scope_does_not_list() {
        let mut engine = regorus::Engine::new();
        for (path, source) in BUILTIN_POLICIES {
            engine
                .add_policy(path.to_string(), source.to_string())
                .expect("the built-in files parse");
        }
        let mut choices = Choices(29);
        for _ in 0..300 {
            let scope = choices.scope();
            let mut target = serde_json::Map::new();
            choices.sites(&mut target, false);
            engine.set_input(super::super::input::convert(&serde_json::json!({
                "scope": scope, "target": target,
            })));
            let results = engine
                .eval_query(
                    format!("data.{BUILTIN_PACKAGE}.sites_outside(input.scope, input.target)"),
                    false,
                )
                .expect("sites_outside evaluates");
            let value = &results.result[0].expressions[0].value;
            let found: std::collections::BTreeSet<String> = value
                .as_set()
                .expect("sites_outside is a set")
                .iter()
                .map(|site| site.as_string().expect("a site").to_string())
                .collect();
            let limit: Option<Vec<&str>> = scope["sites"]
                .as_array()
                .map(|sites| sites.iter().filter_map(|site| site.as_str()).collect())
                .filter(|sites: &Vec<&str>| !sites.contains(&"*"));
            let expected: std::collections::BTreeSet<String> = match limit {
                None => Default::default(),
                Some(limit) => target
                    .get("sites")
                    .and_then(|sites| sites.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|site| site.as_str())
                    .filter(|site| !limit.contains(site))
                    .map(str::to_owned)
                    .collect(),
            };
            assert_eq!(found, expected, "scope {scope}, target {target:?}");
        }
    }

    /// A Scope whose sites hold "*" covers every site a target lists: no
    /// `scope.outside_*` finding on either path (the RVM running
    /// helper-based scope rules denied each listed site here).
    #[test]
    fn wildcard_sites_cover_listed_target_sites_on_the_compiled_path() {
        use serde_json::json;
        let engine = crate::policy::PolicyEngine::new(&[]).expect("built-in bundle compiles");
        let scope = json!({"acquisition_boundaries": ["acq-001"], "business_units": ["bu-hr"], "sites": ["*"]});
        let mut input = documented_input(
            json!({
                "intent_id": "i", "requested_by": "alice", "version": "1.0.0",
                "target_scope": {"acquisition_boundary": "acq-001", "business_unit": "bu-hr",
                                 "sites": ["site-1", "site-2"]},
                "rollback_plan": {"strategy": "halt"},
            }),
            scope.clone(),
        );
        input["publisher"] = json!({"id": "alice", "roles": ["publisher"], "scope": scope});
        assert_eq!(
            engine.evaluation_path(&input),
            crate::policy::EvaluationPath::Compiled
        );
        let outcome = engine.evaluate(&input).expect("evaluation succeeds");
        assert_eq!(
            outcome.decision,
            crate::policy::Decision::Allow,
            "{outcome:#?}"
        );
        assert_eq!(Ok(outcome), engine.evaluate_interpreted(&input));
    }

    #[test]
    fn outputs_module_reads_every_builtin_output_in_order() {
        let module = outputs_module();
        let positions: Vec<usize> = BUILTIN_OUTPUTS
            .iter()
            .map(|rule| {
                module
                    .find(&format!("data.{BUILTIN_PACKAGE}.{rule}]"))
                    .expect("rule is read")
            })
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
