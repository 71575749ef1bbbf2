//! What the judge and a policy worker say to each other: one JSON document
//! per line, in order, on the worker's standard input and output.
//!
//! ```text
//! judge → worker   Compile { files }          worker → judge   Parsing(path)…  then Compiled(packages) | Refused(errors)
//! judge → worker   Answer(request)            worker → judge   Answered(answer) | Failed(error)
//! judge → worker   Batch { define, forget, items }
//!                                             worker → judge   Answered | Failed, one line per item, in order
//! ```
//!
//! A batch carries many tenant evaluations in one message. Each item is one
//! evaluation's input as its top-level fields, each given inline or as the
//! id of a value the judge defined earlier on this worker (`define`: the
//! config, an application, a publisher — what many inputs repeat is sent
//! once, not once per intent); `forget` lists ids the worker may drop, so
//! what it keeps stays bounded. The worker rebuilds each input document
//! exactly (a shared value is the same regorus value, reference-counted),
//! evaluates the items one by one, each under its own time limit, and
//! writes and flushes each answer as soon as it has it: the judge keeps a
//! deadline per item, counted from the previous answer, as for single
//! requests.
//!
//! The judge closes the worker's input when it is done; the worker exits.

use crate::policy::PolicyError;
use crate::policy::isolation::{Answer, PackageSets, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
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
    /// Answer each item's [`Request::TenantOutputs`], one line per item.
    Batch {
        /// Shared values this worker has not been given yet: `(id, value)`.
        define: Vec<(u64, Json)>,
        /// Ids of shared values no later item refers to.
        forget: Vec<u64>,
        items: Vec<BatchItem>,
    },
}

/// One tenant evaluation of a [`ToWorker::Batch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The input document's top-level fields, in order.
    pub fields: Vec<(String, Field)>,
    /// The evaluation's time limit.
    pub time_limit: Duration,
    /// When the watchdog gives up on this item (from its start).
    pub deadline: Duration,
}

/// A top-level field of a batched input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Field {
    /// The value itself.
    Inline(Json),
    /// A value defined earlier on this worker.
    Shared(u64),
}

/// What the judge writes for a [`ToWorker::Batch`]: the same JSON, built
/// from borrowed values so no input is copied to be sent.
#[derive(Serialize)]
pub(crate) enum BatchRef<'a> {
    Batch {
        define: Vec<(u64, &'a Json)>,
        forget: Vec<u64>,
        items: Vec<BatchItemRef<'a>>,
    },
}

/// A [`BatchItem`] of borrowed fields.
#[derive(Serialize)]
pub(crate) struct BatchItemRef<'a> {
    pub fields: Vec<(&'a str, FieldRef<'a>)>,
    pub time_limit: Duration,
    pub deadline: Duration,
}

/// A [`Field`] borrowed.
#[derive(Serialize)]
pub(crate) enum FieldRef<'a> {
    Inline(&'a Json),
    Shared(u64),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the judge writes from borrowed values is what the worker reads.
    #[test]
    fn a_borrowed_batch_reads_back_as_a_batch() {
        let config = json!({"rings": [{"id": "pilot"}], "soak": 2.5});
        let intent = json!({"id": "x", "n": -1});
        let written = serde_json::to_string(&BatchRef::Batch {
            define: vec![(7, &config)],
            forget: vec![3, 4],
            items: vec![BatchItemRef {
                fields: vec![
                    ("config", FieldRef::Shared(7)),
                    ("intent", FieldRef::Inline(&intent)),
                ],
                time_limit: Duration::from_millis(900),
                deadline: Duration::from_millis(2900),
            }],
        })
        .unwrap();
        let read: ToWorker = serde_json::from_str(&written).unwrap();
        assert_eq!(
            read,
            ToWorker::Batch {
                define: vec![(7, config)],
                forget: vec![3, 4],
                items: vec![BatchItem {
                    fields: vec![
                        ("config".into(), Field::Shared(7)),
                        ("intent".into(), Field::Inline(intent)),
                    ],
                    time_limit: Duration::from_millis(900),
                    deadline: Duration::from_millis(2900),
                }],
            }
        );
    }
}
