//! A snapshot: every governed object of one revision, typed and located.

use super::kinds::*;
use super::yaml::Document;
use crate::diagnostic::{Diagnostic, Position};
use std::borrow::Borrow;
use std::collections::{BTreeMap, btree_map};
use std::ops::RangeBounds;
use std::sync::Arc;

/// A typed object and the file it came from, so findings can point at it.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub file: String,
    document: Arc<Document>,
}

impl<T> Located<T> {
    pub fn new(value: T, file: String, document: Arc<Document>) -> Self {
        Located {
            value,
            file,
            document,
        }
    }

    /// Line and column of the value at `pointer` (or its nearest ancestor).
    pub fn position(&self, pointer: &str) -> Position {
        self.document.position(pointer)
    }

    /// An error diagnostic pointing at `pointer` inside this object's file.
    pub fn error(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&self.file, message)
            .at(self.position(pointer))
            .pointer(pointer)
    }

    /// A warning diagnostic pointing at `pointer` inside this object's file.
    pub fn warning(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(&self.file, message)
            .at(self.position(pointer))
            .pointer(pointer)
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A tenant Rego file from `policies/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    pub path: String,
    pub source: String,
}

/// Every governed object of one revision. Maps are keyed by id, so iteration
/// order (and thus every report) is stable.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub config: Option<Located<Config>>,
    pub principals: Objects<String, Principal>,
    pub applications: Objects<String, Application>,
    /// Keyed by (application id, version).
    pub versions: Objects<(String, String), ApplicationVersion>,
    pub entitlements: Objects<String, EntitlementRule>,
    pub intents: Objects<String, DeploymentIntent>,
    pub approvals: Objects<String, ApprovalRecord>,
    pub exceptions: Objects<String, Exception>,
    pub policies: Vec<PolicyFile>,
}

/// A snapshot's objects of one kind by key, in key order: a `BTreeMap`
/// whose objects are shared. Cloning a map (a working copy of a revision)
/// copies only the keys and a pointer per object, and two revisions can
/// hold the very same object for a file they both have
/// (`forge::incremental` shares them between the revisions it caches).
/// Reading is a `BTreeMap`'s; changing an object that is shared copies it
/// first ([`Objects::get_mut`]), so no other holder ever sees the change.
pub struct Objects<K, T> {
    map: BTreeMap<K, Arc<Located<T>>>,
}

/// The object out of its shared pointer.
fn object<T>(shared: &Arc<Located<T>>) -> &Located<T> {
    shared
}

impl<K, T> Default for Objects<K, T> {
    fn default() -> Self {
        Objects {
            map: BTreeMap::new(),
        }
    }
}

impl<K: Clone, T> Clone for Objects<K, T> {
    fn clone(&self) -> Self {
        Objects {
            map: self.map.clone(),
        }
    }
}

impl<K: std::fmt::Debug, T: std::fmt::Debug> std::fmt::Debug for Objects<K, T> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_map()
            .entries(self.map.iter().map(|(k, v)| (k, object(v))))
            .finish()
    }
}

impl<K: Ord, T> Objects<K, T> {
    pub fn new() -> Self {
        Objects::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&Located<T>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.get(key).map(object)
    }

    /// The shared object at `key`.
    pub fn get_shared<Q>(&self, key: &Q) -> Option<&Arc<Located<T>>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.get(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.contains_key(key)
    }

    pub fn keys(&self) -> btree_map::Keys<'_, K, Arc<Located<T>>> {
        self.map.keys()
    }

    pub fn values(
        &self,
    ) -> impl DoubleEndedIterator<Item = &Located<T>> + ExactSizeIterator + Clone + '_ {
        self.map.values().map(object)
    }

    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&K, &Located<T>)> + ExactSizeIterator + Clone + '_ {
        self.map.iter().map(|(k, v)| (k, object(v)))
    }

    /// Every key with its shared object.
    pub fn iter_shared(&self) -> btree_map::Iter<'_, K, Arc<Located<T>>> {
        self.map.iter()
    }

    /// Every key with its shared object, to replace objects with equal
    /// ones another holder shares.
    pub fn iter_shared_mut(&mut self) -> btree_map::IterMut<'_, K, Arc<Located<T>>> {
        self.map.iter_mut()
    }

    /// Every key with its shared object, taken.
    pub fn into_shared(self) -> btree_map::IntoIter<K, Arc<Located<T>>> {
        self.map.into_iter()
    }

    pub fn range<Q, R>(&self, range: R) -> impl DoubleEndedIterator<Item = (&K, &Located<T>)> + '_
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        self.map.range(range).map(|(k, v)| (k, object(v)))
    }

    pub fn first_key_value(&self) -> Option<(&K, &Located<T>)> {
        self.map.first_key_value().map(|(k, v)| (k, object(v)))
    }

    pub fn last_key_value(&self) -> Option<(&K, &Located<T>)> {
        self.map.last_key_value().map(|(k, v)| (k, object(v)))
    }

    /// Inserts an object (or an already shared one), returning the one
    /// it replaces.
    pub fn insert(&mut self, key: K, value: impl Into<Arc<Located<T>>>) -> Option<Arc<Located<T>>> {
        self.map.insert(key, value.into())
    }

    /// Removes the object at `key`, returning it shared.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<Arc<Located<T>>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.remove(key)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &Located<T>) -> bool) {
        self.map.retain(|k, v| keep(k, v));
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

impl<K: Ord, T: Clone> Objects<K, T> {
    /// The object at `key` to change: copied first when it is shared.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut Located<T>>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.get_mut(key).map(Arc::make_mut)
    }

    /// Every object to change: each copied first when it is shared.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Located<T>> + '_ {
        self.map.values_mut().map(Arc::make_mut)
    }
}

impl<K, Q, T> std::ops::Index<&Q> for Objects<K, T>
where
    K: Ord + Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = Located<T>;
    fn index(&self, key: &Q) -> &Located<T> {
        self.get(key).expect("no object for this key")
    }
}

impl<'a, K, T> IntoIterator for &'a Objects<K, T> {
    type Item = (&'a K, &'a Located<T>);
    type IntoIter = std::iter::Map<
        btree_map::Iter<'a, K, Arc<Located<T>>>,
        fn((&'a K, &'a Arc<Located<T>>)) -> (&'a K, &'a Located<T>),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter().map(|(k, v)| (k, &**v))
    }
}

impl<K, T: Clone> IntoIterator for Objects<K, T> {
    type Item = (K, Located<T>);
    type IntoIter = std::iter::Map<
        btree_map::IntoIter<K, Arc<Located<T>>>,
        fn((K, Arc<Located<T>>)) -> (K, Located<T>),
    >;
    /// Every object, owned (copied only when another holder shares it).
    fn into_iter(self) -> Self::IntoIter {
        self.map
            .into_iter()
            .map(|(k, v)| (k, Arc::unwrap_or_clone(v)))
    }
}

impl<K: Ord, T, V: Into<Arc<Located<T>>>> FromIterator<(K, V)> for Objects<K, T> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        Objects {
            map: items.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    }
}

impl<K: Ord, T, V: Into<Arc<Located<T>>>> Extend<(K, V)> for Objects<K, T> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, items: I) {
        self.map
            .extend(items.into_iter().map(|(k, v)| (k, v.into())));
    }
}

impl Snapshot {
    /// The artifact an intent deploys: the one in its version whose hash matches.
    pub fn artifact_of(&self, intent: &DeploymentIntent) -> Option<&Artifact> {
        self.versions
            .get(&(intent.application_id.clone(), intent.version.clone()))?
            .artifacts
            .iter()
            .find(|artifact| artifact.sha256 == intent.artifact_hash)
    }

    /// The entitlement serving (plane, ring, segment), if any.
    pub fn entitlement_for(
        &self,
        plane: Plane,
        ring: &str,
        acquisition_boundary: &str,
        business_unit: &str,
    ) -> Option<&Located<EntitlementRule>> {
        self.entitlements.values().find(|rule| {
            rule.plane == plane
                && rule.ring == ring
                && rule.scope.acquisition_boundary == acquisition_boundary
                && rule.scope.business_unit == business_unit
        })
    }

    /// The principal whose forge login is `login` (case-insensitive, as GitHub is).
    pub fn principal_by_login(&self, login: &str) -> Option<&Located<Principal>> {
        self.principals.values().find(|principal| {
            principal
                .forge_login
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(login))
        })
    }

    /// Versions of an application, ascending by semver (the schema enforces semver).
    pub fn versions_of(&self, application_id: &str) -> Vec<&Located<ApplicationVersion>> {
        let mut versions: Vec<_> = self
            .versions
            .range((application_id.to_owned(), String::new())..)
            .take_while(|((app, _), _)| app == application_id)
            .map(|(_, version)| version)
            .collect();
        versions.sort_by_key(|v| semver::Version::parse(&v.version).ok());
        versions
    }
}
