//! What the judge and a policy worker say to each other: one JSON document
//! per line, in order, on the worker's standard input and output.
//!
//! ```text
//! judge → worker   Compile { files }          worker → judge   Parsing(path)…  then Compiled(packages) | Refused(errors)
//! judge → worker   Answer(request)            worker → judge   Answered(answer) | Failed(error)
//! ```
//!
//! The judge closes the worker's input when it is done; the worker exits.

use crate::policy::PolicyError;
use crate::policy::isolation::{Answer, PackageSets, Request};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A message to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Compile the built-in bundle and these tenant files `(path, source)`;
    /// the first message, once. `parse_time_limit` is for the worker's
    /// watchdog.
    Compile {
        files: Vec<(String, String)>,
        parse_time_limit: Duration,
    },
    /// Answer one request; `deadline` (from now) is for the watchdog.
    Answer {
        request: Request,
        deadline: Duration,
    },
}

/// A message from the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// About to parse this tenant file: a parse that runs out of time is
    /// reported against the last file named.
    Parsing(String),
    /// The bundle compiled; its tenant packages.
    Compiled(Vec<PackageSets>),
    /// The bundle did not compile; every error, each naming its file.
    Refused(Vec<PolicyError>),
    /// The answer to the last request.
    Answered(Answer),
    /// The last request failed (a time limit, a broken rule, a panic).
    Failed(PolicyError),
}
