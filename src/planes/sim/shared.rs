//! `shared`: the texts the fleet's records repeat, held once (issue 17: at
//! 10,000 apps every app repeats its ring's name, its groups' ids and its
//! versions, in its rings, its assignments and its devices' texts).
//!
//! A [`Shared`] is a text behind a reference count: cloning one copies a
//! pointer. The fleet's [`SharedTexts`] hands out one `Shared` per distinct
//! text it was asked for (group ids, ring names, versions: few per plane);
//! texts of one app alone (its id, shared by its assignments) are made
//! `Shared` without it. A `Shared` is written and read as the string it
//! holds, so the state file does not see it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A text held once and shared by the records that repeat it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared(Arc<str>);

impl Shared {
    /// A text of its own, shared by nothing yet (clones share it).
    pub fn new(text: &str) -> Shared {
        Shared(Arc::from(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this very text, not only an equal one.
    #[cfg(test)]
    pub fn is(&self, other: &Shared) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for Shared {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, formatter)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, formatter)
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shared {
    /// A text of its own; [`SharedTexts::share`] makes it shared again.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shared, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Shared::new(&text))
    }
}

/// The fleet's shared texts: one [`Shared`] per distinct text asked for.
/// Not part of the fleet's value (every fleet's tables are equal); it only
/// decides which records share a text.
#[derive(Clone, Default)]
pub struct SharedTexts(HashSet<Shared>);

impl SharedTexts {
    /// The fleet's `Shared` of `text`, added when it is new.
    pub fn share(&mut self, text: &str) -> Shared {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared = Shared::new(text);
        self.0.insert(shared.clone());
        shared
    }

    /// `text` made the fleet's `Shared` of it (a text read from a state
    /// file is one of its own).
    pub fn reshare(&mut self, text: &mut Shared) {
        match self.0.get(text.as_str()) {
            Some(shared) => *text = shared.clone(),
            None => {
                self.0.insert(text.clone());
            }
        }
    }
}

impl PartialEq for SharedTexts {
    fn eq(&self, _: &SharedTexts) -> bool {
        true
    }
}

impl fmt::Debug for SharedTexts {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SharedTexts({} texts)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_asked_twice_is_held_once() {
        let mut texts = SharedTexts::default();
        let first = texts.share("ring-0-lab");
        let second = texts.share("ring-0-lab");
        assert!(Arc::ptr_eq(&first.0, &second.0));
        let other = texts.share("ring-1-canary");
        assert!(!Arc::ptr_eq(&first.0, &other.0));
        let mut read = Shared::new("ring-0-lab");
        assert!(!Arc::ptr_eq(&first.0, &read.0));
        texts.reshare(&mut read);
        assert!(Arc::ptr_eq(&first.0, &read.0));
    }

    #[test]
    fn a_shared_text_is_written_and_read_as_its_string() {
        let shared = Shared::new("a \"quoted\" text");
        let text = serde_json::to_string(&shared).unwrap();
        assert_eq!(text, serde_json::to_string("a \"quoted\" text").unwrap());
        let read: Shared = serde_json::from_str(&text).unwrap();
        assert_eq!(read, shared);
        assert_eq!(
            format!("{shared} {shared:?}"),
            r#"a "quoted" text "a \"quoted\" text""#
        );
    }
}
