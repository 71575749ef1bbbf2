//! `seconds`: `Duration`s in JSON as (possibly fractional) seconds, the way planes
//! send `Retry-After` and the way a human writes a delay in a config file.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

fn from_seconds<E: serde::de::Error>(seconds: f64) -> Result<Duration, E> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| E::custom(format!("{seconds} is not a valid number of seconds")))
}

/// `Option<Duration>` as `null` or a number of seconds.
pub mod optional {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value
            .map(|duration| duration.as_secs_f64())
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(deserializer)?
            .map(from_seconds)
            .transpose()
    }
}

/// `(Duration, Duration)` as `[min_seconds, max_seconds]`.
pub mod pair {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &(Duration, Duration),
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        [value.0.as_secs_f64(), value.1.as_secs_f64()].serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<(Duration, Duration), D::Error> {
        let [minimum, maximum] = <[f64; 2]>::deserialize(deserializer)?;
        Ok((from_seconds(minimum)?, from_seconds(maximum)?))
    }
}

/// `Duration` as a number of seconds.
pub mod single {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        value.as_secs_f64().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        from_seconds(f64::deserialize(deserializer)?)
    }
}
