//! Write-once ("WORM") object storage: where a copy of every evidence record
//! goes so that nobody with push rights on the repository can delete it.
//!
//! [`ImmutableStore`] is the small interface the evidence copy needs: put an
//! object only if the key is free, with a retention lock; read it back; read
//! its lock; list keys. [`s3::S3Store`] implements it for S3-compatible
//! buckets with Object Lock (AWS S3, MinIO, Ceph, moto). An Azure Blob
//! container with a version-level immutability policy fits the same
//! interface (`put_if_absent` is a conditional `Put Blob` with
//! `If-None-Match: *` and `x-ms-immutability-policy-until-date`, `retention`
//! reads the blob's immutability policy), so adding it is one more
//! implementation and one more [`ObjectStoreKind`].
//!
//! Architecture invariant: nothing here deletes or replaces an object. A key
//! that is taken is reported ([`PutOutcome::AlreadyPresent`]), never written
//! over; credentials never reach an error, a `Debug` print or a log line.

pub mod config;
mod credentials;
mod http;
pub mod s3;

pub use config::{ObjectStoreConfig, ObjectStoreKind, RawObjectStoreConfig};
pub use credentials::StoreCredentials;

use chrono::{DateTime, Utc};
use std::fmt;

/// The two Object Lock modes. Compliance cannot be shortened or removed by
/// anyone, not even the account's root user; governance can be by users
/// holding `s3:BypassGovernanceRetention`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The value S3 uses in headers and XML.
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// Parses S3's spelling (any case).
    pub fn from_s3(text: &str) -> Option<LockMode> {
        match text.to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        })
    }
}

/// A retention lock on one object version: it cannot be deleted or
/// overwritten before `retain_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    /// Whole seconds (S3 keeps seconds; a fraction would not round-trip).
    pub retain_until: DateTime<Utc>,
}

impl Retention {
    /// Whether this lock is at least as strong as `required`: the same or a
    /// stricter mode, until the same instant or later.
    pub fn covers(&self, required: &Retention) -> bool {
        self.mode >= required.mode && self.retain_until >= required.retain_until
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} until {}",
            self.mode,
            self.retain_until.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// An object's bytes with its lock (`None`: no lock).
pub type LockedObject = (Vec<u8>, Option<Retention>);

/// What a conditional put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The key was free; the object now exists with the requested lock.
    Created,
    /// The key was taken; nothing was written.
    AlreadyPresent,
}

/// The bucket's Object Lock settings, as the store reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLock {
    pub object_lock_enabled: bool,
    pub versioning_enabled: bool,
}

/// Why an object store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or answered with a server error: a
    /// retry later may succeed.
    #[error("object store {store} unavailable: {reason}")]
    Unavailable { store: String, reason: String },
    /// The store refused the request (4xx other than "not found" and
    /// "precondition failed").
    #[error("object store {store} refused {operation} {key}: HTTP {status} {code}: {message}")]
    Refused {
        store: String,
        operation: String,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The store's answer could not be understood.
    #[error("object store {store}: unexpected answer to {operation}: {reason}")]
    Protocol {
        store: String,
        operation: String,
        reason: String,
    },
}

impl StoreError {
    /// Whether a retry later may succeed (an outage rather than a refusal).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A write-once object store. Implementations keep every version they are
/// given; none of these methods deletes or overwrites anything.
pub trait ImmutableStore: Send + Sync {
    /// Names the store for messages (`s3 http://127.0.0.1:9000/evidence`);
    /// never includes credentials.
    fn describe(&self) -> String;

    /// The bucket's lock settings.
    fn bucket_lock(&self) -> Result<BucketLock, StoreError>;

    /// Writes `bytes` under `key` with `retention` if, and only if, no
    /// object exists under `key`.
    fn put_if_absent(
        &self,
        key: &str,
        bytes: &[u8],
        retention: &Retention,
    ) -> Result<PutOutcome, StoreError>;

    /// The current version's bytes, or `None` when there is no object.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// The current version's lock: `Ok(None)` when the object has none,
    /// `Err` when there is no object or the store cannot say.
    fn retention(&self, key: &str) -> Result<Option<Retention>, StoreError>;

    /// Makes the current version's lock `retention`. Stores only allow
    /// lengthening a compliance lock; this is used to raise a lock found
    /// shorter than required.
    fn extend_retention(&self, key: &str, retention: &Retention) -> Result<(), StoreError>;

    /// Every key under `prefix` (current versions, not deleted), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// The current version's bytes and lock in one go (`None`: no object).
    fn get_with_retention(&self, key: &str) -> Result<Option<LockedObject>, StoreError> {
        match self.get(key)? {
            Some(bytes) => Ok(Some((bytes, self.retention(key)?))),
            None => Ok(None),
        }
    }

    /// Whether a key exists (its current version is not a delete marker).
    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }
}

/// Opens the store a configuration names.
pub fn open(config: &ObjectStoreConfig) -> Result<Box<dyn ImmutableStore>, StoreError> {
    match config.kind {
        ObjectStoreKind::S3 => Ok(Box::new(s3::S3Store::new(config)?)),
    }
}
