//! `devices`: the devices an app touched, held compactly (issue 17: at
//! 10,000 intents the sim fleet holds hundreds of thousands of them).
//!
//! A device is keyed by its id, `{group}/device-{index:05}`, held as (the
//! group's [`TextId`], the index) rather than as text; its texts live once
//! in the table's [`Texts`]. The devices are one vector in the order of
//! their ids' text — the order the map keyed by id text they replace
//! iterated in, and the order the state file lists them in: `g-2/…` before
//! `g/…` (`-` sorts before `/`), and `…-10000`, `…-100000`, `…-10001` (an
//! index above 99,999 is wider). Everything that walks the devices (status
//! counts, remediations, drift that changes "up to N devices", the state
//! file) walks them in that order.
//!
//! The state file holds the table as before: a JSON object from device id
//! to `{"group", "baseline_version", "attempts"}`, written and read by
//! [`DeviceTable`]'s own `Serialize` and `Deserialize`.

use super::device::{Action, Attempt, Attempts, Device, TextId, Texts};
use super::shared::{Shared, SharedTexts};
use chrono::{DateTime, Utc};
use serde::de::{MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;

/// Between a device's group and its number in its id.
const SEPARATOR: &str = "/device-";
/// The `index` of a key whose id is not `{group}/device-{index:05}` (never
/// made by the sim, but a state file could hold one): the whole id is its
/// text. Indexes run below a group's `u32` device count, so never reach it.
const WHOLE_ID: u32 = u32::MAX;

/// A device's id: `{prefix}{SEPARATOR}{index:05}`, or the text `prefix`
/// alone when `index` is [`WHOLE_ID`]. Each id has one key: a key is made
/// of an id by [`DeviceTable::key_of`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKey {
    prefix: TextId,
    index: u32,
}

/// The decimal digits of a device index, at least five of them.
struct Digits {
    bytes: [u8; 10],
    start: usize,
}

impl Digits {
    fn of(mut index: u32) -> Digits {
        let mut bytes = [b'0'; 10];
        let mut start = bytes.len();
        loop {
            start -= 1;
            bytes[start] = b'0' + (index % 10) as u8;
            index /= 10;
            if index == 0 {
                break;
            }
        }
        Digits {
            bytes,
            start: start.min(bytes.len() - 5),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

impl DeviceKey {
    /// Whether this is device `index < count` of the group `group`.
    pub fn is_of_group(self, group: TextId, count: u32) -> bool {
        self.prefix == group && self.index != WHOLE_ID && self.index < count
    }

    /// Writes the id's text into `id` (cleared first).
    pub fn write_id(self, texts: &Texts, id: &mut String) {
        id.clear();
        id.push_str(texts.get(self.prefix));
        if self.index != WHOLE_ID {
            id.push_str(SEPARATOR);
            id.extend(
                Digits::of(self.index)
                    .as_bytes()
                    .iter()
                    .map(|&digit| char::from(digit)),
            );
        }
    }

    /// Orders keys as their ids' text.
    fn compare(self, other: DeviceKey, texts: &Texts) -> Ordering {
        let (digits, other_digits) = (Digits::of(self.index), Digits::of(other.index));
        if self.prefix == other.prefix && self.index != WHOLE_ID && other.index != WHOLE_ID {
            return digits.as_bytes().cmp(other_digits.as_bytes());
        }
        self.id_bytes(texts, &digits)
            .cmp(other.id_bytes(texts, &other_digits))
    }

    fn id_bytes<'a>(self, texts: &'a Texts, digits: &'a Digits) -> impl Iterator<Item = u8> + 'a {
        let (separator, digits): (&[u8], &[u8]) = match self.index {
            WHOLE_ID => (&[], &[]),
            _ => (SEPARATOR.as_bytes(), digits.as_bytes()),
        };
        texts
            .get(self.prefix)
            .bytes()
            .chain(separator.iter().copied())
            .chain(digits.iter().copied())
    }
}

/// `(group, index)` when `id` is `{group}/device-{index:05}` exactly.
fn parse_id(id: &str) -> Option<(&str, u32)> {
    let (group, digits) = id.rsplit_once(SEPARATOR)?;
    let index: u32 = digits.parse().ok()?;
    (index != WHOLE_ID && Digits::of(index).as_bytes() == digits.as_bytes())
        .then_some((group, index))
}

/// The devices of one app, by id, in the order of the ids' text.
#[derive(Debug, Clone, Default)]
pub struct DeviceTable {
    texts: Texts,
    /// Sorted by [`DeviceKey::compare`], each key once.
    entries: Vec<(DeviceKey, Device)>,
}

impl DeviceTable {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn texts(&self) -> &Texts {
        &self.texts
    }

    /// The id of `text` among the app's texts, if a device holds it.
    pub fn find(&self, text: &str) -> Option<TextId> {
        self.texts.find(text)
    }

    /// The id of `text`, added to the app's texts when it is new.
    pub fn intern(&mut self, text: &Shared) -> TextId {
        self.texts.intern_shared(text)
    }

    /// Makes texts read from a state file the fleet's shared ones.
    pub fn share_texts(&mut self, shared: &mut SharedTexts) {
        self.texts.share_texts(shared);
    }

    #[cfg(test)]
    pub fn contains_key(&self, id: &str) -> bool {
        let key = match parse_id(id) {
            Some((group, index)) => self.find(group).map(|prefix| DeviceKey { prefix, index }),
            None => self.find(id).map(|prefix| DeviceKey {
                prefix,
                index: WHOLE_ID,
            }),
        };
        key.is_some_and(|key| {
            self.entries
                .binary_search_by(|(entry, _)| entry.compare(key, &self.texts))
                .is_ok()
        })
    }

    /// The devices, in order.
    pub fn devices(&self) -> impl Iterator<Item = &Device> + '_ {
        self.entries.iter().map(|(_, device)| device)
    }

    /// The devices, in order, to change.
    pub fn devices_mut(&mut self) -> impl Iterator<Item = &mut Device> + '_ {
        self.entries.iter_mut().map(|(_, device)| device)
    }

    /// The texts, and the devices with their keys in order, to change (a
    /// device's id is written from its key and the texts).
    pub fn entries_mut(&mut self) -> (&Texts, &mut [(DeviceKey, Device)]) {
        (&self.texts, &mut self.entries)
    }

    /// Makes sure devices `0..count` of `group` exist, new ones with
    /// `baseline_version`; answers the group's text id. Devices that
    /// existed keep their history.
    pub fn add_group(
        &mut self,
        group: &Shared,
        count: u32,
        baseline_version: Option<&Shared>,
    ) -> TextId {
        let prefix = self.texts.intern_shared(group);
        let baseline_version = baseline_version.map(|version| self.texts.intern_shared(version));
        let mut present = vec![false; count as usize];
        for (key, _) in &self.entries {
            if key.is_of_group(prefix, count) {
                present[key.index as usize] = true;
            }
        }
        let mut added: Vec<(DeviceKey, Device)> = (0..count)
            .filter(|index| !present[*index as usize])
            .map(|index| {
                (
                    DeviceKey { prefix, index },
                    Device::new(prefix, baseline_version),
                )
            })
            .collect();
        if added.is_empty() {
            return prefix;
        }
        let texts = &self.texts;
        added.sort_by(|(first, _), (second, _)| first.compare(*second, texts));
        let existing = std::mem::take(&mut self.entries);
        let mut merged = Vec::with_capacity(existing.len() + added.len());
        let mut existing = existing.into_iter().peekable();
        let mut added = added.into_iter().peekable();
        loop {
            let take_existing = match (existing.peek(), added.peek()) {
                (Some((old, _)), Some((new, _))) => old.compare(*new, texts) == Ordering::Less,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = match take_existing {
                true => existing.next(),
                false => added.next(),
            };
            merged.extend(next);
        }
        self.entries = merged;
        prefix
    }

    /// The key of `id`, its texts added.
    fn key_of(&mut self, id: &str) -> DeviceKey {
        match parse_id(id) {
            Some((group, index)) => DeviceKey {
                prefix: self.texts.intern(group),
                index,
            },
            None => DeviceKey {
                prefix: self.texts.intern(id),
                index: WHOLE_ID,
            },
        }
    }
}

/// Equal when they hold the same devices under the same ids, whatever
/// order their texts were added in.
impl PartialEq for DeviceTable {
    fn eq(&self, other: &DeviceTable) -> bool {
        let same_text =
            |first: TextId, second: TextId| self.texts.get(first) == other.texts.get(second);
        let same_optional = |first: Option<TextId>, second: Option<TextId>| match (first, second) {
            (Some(first), Some(second)) => same_text(first, second),
            (first, second) => first.is_none() && second.is_none(),
        };
        let same_attempt = |first: &Attempt, second: &Attempt| {
            first.started_at == second.started_at
                && first.completes_at == second.completes_at
                && same_optional(first.failure, second.failure)
                && match (first.action, second.action) {
                    (Action::Install(first), Action::Install(second)) => same_text(first, second),
                    (first, second) => first == Action::Remove && second == Action::Remove,
                }
        };
        self.entries.len() == other.entries.len()
            && self.entries.iter().zip(&other.entries).all(
                |((key, device), (other_key, other_device))| {
                    key.index == other_key.index
                        && same_text(key.prefix, other_key.prefix)
                        && same_text(device.group, other_device.group)
                        && same_optional(device.baseline_version, other_device.baseline_version)
                        && device.attempts.len() == other_device.attempts.len()
                        && device
                            .attempts
                            .iter()
                            .zip(other_device.attempts.iter())
                            .all(|(first, second)| same_attempt(first, second))
                },
            )
    }
}

/// A device as the state file holds it.
#[derive(Serialize)]
struct DeviceText<'a> {
    group: &'a str,
    /// What the device ran before this deployment touched it (the superseded version).
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_version: Option<&'a str>,
    attempts: AttemptsText<'a>,
}

struct AttemptsText<'a> {
    texts: &'a Texts,
    attempts: &'a Attempts,
}

#[derive(Serialize)]
struct AttemptText<'a> {
    started_at: &'a DateTime<Utc>,
    completes_at: &'a DateTime<Utc>,
    action: ActionText<'a>,
    /// `None` when the attempt succeeds; the failure reason otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ActionText<'a> {
    Install { version: &'a str },
    Remove,
}

impl Serialize for AttemptsText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sequence = serializer.serialize_seq(Some(self.attempts.len()))?;
        for attempt in self.attempts.iter() {
            sequence.serialize_element(&AttemptText {
                started_at: &attempt.started_at,
                completes_at: &attempt.completes_at,
                action: match attempt.action {
                    Action::Install(version) => ActionText::Install {
                        version: self.texts.get(version),
                    },
                    Action::Remove => ActionText::Remove,
                },
                failure: attempt.failure.map(|reason| self.texts.get(reason)),
            })?;
        }
        sequence.end()
    }
}

/// As the map from device id text to device it replaces: `{"<id>": {...}, ...}`.
impl Serialize for DeviceTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        let mut id = String::new();
        for (key, device) in &self.entries {
            key.write_id(&self.texts, &mut id);
            map.serialize_entry(
                id.as_str(),
                &DeviceText {
                    group: self.texts.get(device.group),
                    baseline_version: device.baseline_version.map(|id| self.texts.get(id)),
                    attempts: AttemptsText {
                        texts: &self.texts,
                        attempts: &device.attempts,
                    },
                },
            )?;
        }
        map.end()
    }
}

/// A device as the state file holds it, read.
#[derive(Deserialize)]
struct DeviceRead {
    group: String,
    #[serde(default)]
    baseline_version: Option<String>,
    #[serde(default)]
    attempts: Vec<AttemptRead>,
}

#[derive(Deserialize)]
struct AttemptRead {
    started_at: DateTime<Utc>,
    completes_at: DateTime<Utc>,
    action: ActionRead,
    #[serde(default)]
    failure: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ActionRead {
    Install { version: String },
    Remove,
}

impl DeviceRead {
    fn into_device(self, texts: &mut Texts) -> Device {
        let mut device = Device::new(
            texts.intern(&self.group),
            self.baseline_version.map(|version| texts.intern(&version)),
        );
        for attempt in self.attempts {
            device.attempts.push(Attempt {
                started_at: attempt.started_at,
                completes_at: attempt.completes_at,
                action: match attempt.action {
                    ActionRead::Install { version } => Action::Install(texts.intern(&version)),
                    ActionRead::Remove => Action::Remove,
                },
                failure: attempt.failure.map(|reason| texts.intern(&reason)),
            });
        }
        device
    }
}

struct TableVisitor;

impl<'de> Visitor<'de> for TableVisitor {
    type Value = DeviceTable;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a map from device id to device")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeviceTable, A::Error> {
        let mut table = DeviceTable::default();
        while let Some((id, device)) = map.next_entry::<String, DeviceRead>()? {
            let key = table.key_of(&id);
            let device = device.into_device(&mut table.texts);
            table.entries.push((key, device));
        }
        // Written in order; sorted all the same, and of a key written twice
        // the last device is kept, as the map did.
        let texts = &table.texts;
        table
            .entries
            .sort_by(|(first, _), (second, _)| first.compare(*second, texts));
        table.entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        table.entries.shrink_to_fit();
        Ok(table)
    }
}

impl<'de> Deserialize<'de> for DeviceTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DeviceTable, D::Error> {
        deserializer.deserialize_map(TableVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_group(table: &mut DeviceTable, group: &str, count: u32, baseline: Option<&str>) {
        table.add_group(
            &Shared::new(group),
            count,
            baseline.map(Shared::new).as_ref(),
        );
    }

    fn ids(table: &DeviceTable) -> Vec<String> {
        let mut id = String::new();
        table
            .entries
            .iter()
            .map(|(key, _)| {
                key.write_id(&table.texts, &mut id);
                id.clone()
            })
            .collect()
    }

    /// Issue 17: a device with one attempt costs its table 56 bytes.
    #[test]
    fn a_device_entry_is_small() {
        assert_eq!(std::mem::size_of::<(DeviceKey, Device)>(), 56);
    }

    #[test]
    fn ids_are_parsed_only_when_written_back_the_same() {
        let cases = [
            ("g/device-00000", Some(("g", 0))),
            ("g/device-99999", Some(("g", 99_999))),
            ("g/device-100000", Some(("g", 100_000))),
            ("a/device-1/device-00002", Some(("a/device-1", 2))),
            ("/device-00003", Some(("", 3))),
            ("g/device-0001", None),
            ("g/device-000001", None),
            ("g/device-+0001", None),
            ("g/device-4294967295", None),
            ("g/device-", None),
            ("g", None),
        ];
        for (id, expected) in cases {
            assert_eq!(parse_id(id), expected, "{id}");
        }
    }

    /// Devices are kept in the order of their ids' text, however they were
    /// added, and written with the same ids.
    #[test]
    fn devices_are_in_the_order_of_their_ids_text() {
        let mut table = DeviceTable::default();
        add_group(&mut table, "g", 3, None);
        add_group(&mut table, "g-2", 2, Some("1.0"));
        add_group(&mut table, "g", 5, None);
        add_group(&mut table, "G", 1, None);
        add_group(&mut table, "g.x", 1, None);
        let mut expected = ids(&table);
        expected.sort();
        assert_eq!(ids(&table), expected);
        assert_eq!(
            expected,
            [
                "G/device-00000",
                "g-2/device-00000",
                "g-2/device-00001",
                "g.x/device-00000",
                "g/device-00000",
                "g/device-00001",
                "g/device-00002",
                "g/device-00003",
                "g/device-00004",
            ]
        );
        assert!(table.contains_key("g/device-00004"));
        assert!(!table.contains_key("g/device-00005"));
        assert!(!table.contains_key("h/device-00000"));
        // A group resized does not touch the devices it had.
        assert_eq!(table.len(), 9);
    }

    #[test]
    fn a_group_past_99999_devices_sorts_as_text() {
        let mut table = DeviceTable::default();
        add_group(&mut table, "g", 100_002, None);
        let ids = ids(&table);
        let mut sorted = ids.clone();
        sorted.sort();
        assert!(ids == sorted);
        let position = |id: &str| ids.iter().position(|known| known == id).unwrap();
        assert_eq!(position("g/device-100000"), position("g/device-10000") + 1);
        assert_eq!(position("g/device-10001"), position("g/device-100001") + 1);
    }

    /// Written and read as the map of id text to device it replaces, ids of
    /// any shape included; a key written twice keeps its last device.
    #[test]
    fn a_table_is_written_and_read_as_the_map_it_replaces() {
        let text = concat!(
            r#"{"odd id":{"group":"odd","attempts":[]},"#,
            r#""x/device-00001":{"group":"x","baseline_version":"1.0","attempts":["#,
            r#"{"started_at":"2026-01-05T09:00:00.123456789Z","completes_at":"2026-01-05T09:10:00.123456789Z","action":{"kind":"install","version":"2.0"},"failure":"a reason of its own"},"#,
            r#"{"started_at":"2026-01-05T09:11:00Z","completes_at":"2026-01-05T09:11:00Z","action":{"kind":"remove"}}]}}"#
        );
        let table: DeviceTable = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&table).unwrap(), text);
        assert_eq!(table.len(), 2);
        let twice =
            r#"{"x/device-00001":{"group":"x"},"a":{"group":"a"},"x/device-00001":{"group":"y"}}"#;
        let table: DeviceTable = serde_json::from_str(twice).unwrap();
        assert_eq!(
            serde_json::to_string(&table).unwrap(),
            r#"{"a":{"group":"a","attempts":[]},"x/device-00001":{"group":"y","attempts":[]}}"#
        );
        let empty: DeviceTable = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
    }
}
