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

/// [`ToWorker`] as the worker reads it: the same message, with the values
/// of a batch read straight into the regorus values its input documents
/// hold ([`InputValue`]), not into JSON first.
#[derive(Debug, Deserialize)]
pub(crate) enum ToWorkerRead {
    Compile {
        files: Vec<(String, String)>,
        parse_time_limit: Duration,
    },
    Answer {
        request: Request,
        deadline: Duration,
    },
    Batch {
        define: Vec<(u64, InputValue)>,
        forget: Vec<u64>,
        items: Vec<BatchItemRead>,
    },
}

/// A [`BatchItem`] as the worker reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchItemRead {
    pub fields: Vec<(String, FieldRead)>,
    pub time_limit: Duration,
    pub deadline: Duration,
}

/// A [`Field`] as the worker reads it.
#[derive(Debug, Deserialize)]
pub(crate) enum FieldRead {
    Inline(InputValue),
    Shared(u64),
}

/// A JSON value read as the regorus value `PolicyEngine::input_value`
/// makes of the same JSON read into `serde_json::Value` (numbers as
/// serde_json keeps them: unsigned, then signed, then float; objects with
/// string keys, the last of a repeated key kept).
#[derive(Debug)]
pub(crate) struct InputValue(pub regorus::Value);

impl<'de> Deserialize<'de> for InputValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(InputVisitor).map(InputValue)
    }
}

struct InputVisitor;

impl<'de> serde::de::Visitor<'de> for InputVisitor {
    type Value = regorus::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Null)
    }

    fn visit_none<E>(self) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<regorus::Value, D::Error> {
        deserializer.deserialize_any(InputVisitor)
    }

    fn visit_bool<E>(self, flag: bool) -> Result<regorus::Value, E> {
        Ok(regorus::Value::Bool(flag))
    }

    fn visit_u64<E>(self, number: u64) -> Result<regorus::Value, E> {
        Ok(regorus::Value::from(number))
    }

    fn visit_i64<E>(self, number: i64) -> Result<regorus::Value, E> {
        // serde_json keeps a non-negative integer as unsigned.
        Ok(match u64::try_from(number) {
            Ok(unsigned) => regorus::Value::from(unsigned),
            Err(_) => regorus::Value::from(number),
        })
    }

    fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<regorus::Value, E> {
        // JSON has no other floats; serde_json::Value refuses them too.
        if !number.is_finite() {
            return Err(E::custom("a JSON number is finite"));
        }
        Ok(regorus::Value::from(number))
    }

    fn visit_str<E>(self, text: &str) -> Result<regorus::Value, E> {
        Ok(regorus::Value::String(text.into()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut items: A,
    ) -> Result<regorus::Value, A::Error> {
        let mut values = Vec::with_capacity(items.size_hint().unwrap_or(0).min(4096));
        while let Some(InputValue(value)) = items.next_element()? {
            values.push(value);
        }
        Ok(regorus::Value::from(values))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut entries: A,
    ) -> Result<regorus::Value, A::Error> {
        let mut map = std::collections::BTreeMap::new();
        while let Some((key, InputValue(value))) = entries.next_entry::<String, InputValue>()? {
            map.insert(regorus::Value::String(key.as_str().into()), value);
        }
        Ok(regorus::Value::from(map))
    }
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

    /// The worker's direct reading gives the value of reading JSON first.
    #[test]
    fn input_values_read_as_json_then_converted() {
        let texts = [
            r#"{"a": 1, "b": -2, "c": 2.5, "d": 24.0, "e": 18446744073709551615, "f": -9223372036854775808}"#,
            r#"{"g": 1e400, "h": 123456789012345678901234567890, "i": -0, "j": 0.0, "k": -0.0}"#,
            r#"{"x": [true, false, null, {}, []], "y": {"z": "\u00e9\n\"", "y": 1}, "y2": {"k": 1, "k": 2}}"#,
            r#"{"$serde_json::private::Number": "12"}"#,
            r#"[1, "two", {"three": [3]}]"#,
            r#""text""#,
        ];
        for text in texts {
            let json: Result<Json, _> = serde_json::from_str(text);
            let read: Result<InputValue, _> = serde_json::from_str(text);
            match (json, read) {
                (Ok(json), Ok(read)) => assert_eq!(
                    read.0,
                    crate::policy::PolicyEngine::input_value(&json),
                    "{text}"
                ),
                (Err(_), Err(_)) => {}
                (json, read) => panic!("{text}: {json:?} vs {read:?}"),
            }
        }
    }

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
