//! Serde for [`Decision`] in runs and events: its wire form (`ALLOW`, `DENY`,
//! `REQUIRE_APPROVAL`, `REQUIRE_EXCEPTION`), both ways. The policy module only
//! serialises decisions; runs are stored and read back, so they need both.

use crate::policy::Decision;
use serde::{Deserialize, Deserializer, Serializer, de::Error};

const ALL: [Decision; 4] = [
    Decision::Allow,
    Decision::Deny,
    Decision::RequireApproval,
    Decision::RequireException,
];

fn parse(text: &str) -> Option<Decision> {
    ALL.into_iter().find(|decision| decision.as_str() == text)
}

pub fn serialize<S: Serializer>(decision: &Decision, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(decision.as_str())
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decision, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).ok_or_else(|| D::Error::custom(format!("unknown policy decision {text:?}")))
}

/// The same for `Option<Decision>` (`null` when not evaluated yet).
pub mod optional {
    use super::*;

    pub fn serialize<S: Serializer>(
        decision: &Option<Decision>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match decision {
            Some(decision) => serializer.serialize_some(decision.as_str()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decision>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unknown policy decision {text:?}"))),
            None => Ok(None),
        }
    }
}
