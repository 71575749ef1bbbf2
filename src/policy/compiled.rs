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
