//! The conformance checks, one generic `async fn` per check, each starting its
//! own simulator through the plane's [`Harness`](super::Harness). Grouped by the
//! part of `docs/connectors.md` they enforce.

mod faults;
mod idempotency;
mod remediation;
mod scale;
mod secrets;
mod status;

// Each test binary expands its own selection of checks.
#[allow(unused_imports)]
pub use faults::*;
#[allow(unused_imports)]
pub use idempotency::*;
#[allow(unused_imports)]
pub use remediation::*;
#[allow(unused_imports)]
pub use scale::*;
#[allow(unused_imports)]
pub use secrets::*;
#[allow(unused_imports)]
pub use status::*;

use ringmaster::planes::{ConnectorError, ErrorClass, ErrorCode};

/// Asserts an error's class and code, naming the operation on failure.
pub fn assert_error(error: &ConnectorError, class: ErrorClass, code: ErrorCode, operation: &str) {
    assert_eq!(
        (error.class, error.code),
        (class, code),
        "{operation}: unexpected error {error}"
    );
}
