//! Where tenant rules run: in this process, or in a guarded worker.
//!
//! The scan in `super::limits` refuses what can be seen in the text. What
//! only shows at evaluation — a value doubled forty times, a comparison of
//! two such values, a big integer squared in a loop, a builtin that makes
//! gigabytes from a short string — cannot be stopped from inside the
//! process: regorus checks its time limit between steps, and one step can
//! allocate without bound or run for hours. So a program that judges
//! untrusted repositories installs a [`TenantIsolation`] once at start
//! (`ringmaster` does: `crate::sandbox`, a worker process with a memory
//! limit and a deadline), and every [`super::PolicyEngine`] with tenant
//! files then parses and evaluates those files there. The built-in rules,
//! which are ours, still run in this process.
//!
//! Without an installed isolation (a library user, a unit test, a
//! benchmark) tenant files are parsed and evaluated in process: the limits
//! scan and the evaluation time limit still apply.

use super::PolicyError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One tenant package as the engine reads it: its path components and, per
/// output set (in `ReasonKind::ALL` order), the rule path to read or `None`
/// when no file can define that set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackageSets {
    pub components: Vec<String>,
    pub set_paths: [Option<String>; 4],
}

/// A question for the engine that holds the tenant files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The output sets of every tenant package for this input, in package
    /// order (four per package). Answered `None` when a tenant rule fails
    /// for another reason than a limit (the caller then asks for the
    /// reference evaluation, whose error is the one to report).
    TenantOutputs { input: Json, time_limit: Duration },
    /// The reference evaluation: every output of the bundle (built-ins,
    /// then tenant sets) on the interpreter.
    Interpreted { input: Json, time_limit: Duration },
}

/// The answer to a [`Request`]: the outputs asked for, each `None` when its
/// rule is undefined; the whole answer `None` for a failed
/// [`Request::TenantOutputs`].
pub type Answer = Option<Vec<Option<Json>>>;

/// One [`Request::TenantOutputs`] of a batch ([`IsolatedTenant::answer_batch`]).
#[derive(Debug, Clone)]
pub struct TenantInput<'a> {
    /// The input document's top-level fields: name, value, and an id when
    /// the value is one many inputs share (equal ids, equal values), which
    /// an isolation may then send once instead of with every input.
    pub fields: Vec<(&'a str, &'a Json, Option<u64>)>,
    pub time_limit: Duration,
}

impl TenantInput<'_> {
    /// The input document: a JSON object of the fields.
    pub fn document(&self) -> Json {
        Json::Object(
            self.fields
                .iter()
                .map(|(name, value, _)| ((*name).to_owned(), (*value).clone()))
                .collect(),
        )
    }
}

/// Tenant files compiled somewhere else, ready for requests. Cloned engines
/// share one; it is used from several threads at once.
pub trait IsolatedTenant: Send + Sync {
    /// The packages the files define, sorted.
    fn packages(&self) -> &[PackageSets];
    /// Answers one request within its time limit (plus the isolation's own
    /// margin); a value too large or a step too long is an error, never a
    /// hang or a crash of this process.
    fn answer(&self, request: &Request) -> Result<Answer, PolicyError>;
    /// Answers many [`Request::TenantOutputs`], one result per input, in
    /// order, each exactly what [`IsolatedTenant::answer`] gives for it
    /// when asked one after the other: each within its own time limit, a
    /// failure that one evaluation's alone.
    fn answer_batch(&self, inputs: &[TenantInput<'_>]) -> Vec<Result<Answer, PolicyError>> {
        inputs
            .iter()
            .map(|item| {
                self.answer(&Request::TenantOutputs {
                    input: item.document(),
                    time_limit: item.time_limit,
                })
            })
            .collect()
    }
}

/// A way to compile tenant files somewhere else.
pub trait TenantIsolation: Send + Sync {
    /// Compiles the built-in bundle plus these tenant files (already within
    /// the limits scan). Errors are the ones [`super::PolicyEngine::new`]
    /// returns, each naming its file and line.
    fn compile(
        &self,
        tenant_policies: &[(String, String)],
    ) -> Result<Arc<dyn IsolatedTenant>, Vec<PolicyError>>;
}

static INSTALLED: OnceLock<Arc<dyn TenantIsolation>> = OnceLock::new();

/// Installs the isolation every later engine with tenant files uses. Once
/// per process; returns `false` (and changes nothing) when one is installed.
pub fn install(isolation: Arc<dyn TenantIsolation>) -> bool {
    INSTALLED.set(isolation).is_ok()
}

/// The installed isolation, if any.
pub fn installed() -> Option<&'static Arc<dyn TenantIsolation>> {
    INSTALLED.get()
}
