//! Where the WORM copy goes and how long it is kept: the
//! `evidence_object_store:` section of the daemon config, and the same
//! settings for `verify --object-store` and the benchmarks.
//!
//! ```yaml
//! evidence_object_store:
//!   url: https://s3.eu-central-1.amazonaws.com   # endpoint (MinIO: http://minio:9000)
//!   bucket: contoso-evidence                     # created with Object Lock enabled
//!   region: eu-central-1
//!   mode: compliance                             # or governance
//!   retention_days: 2557                         # 7 years
//!   credentials_file: /etc/ringmaster/s3.credentials   # else AWS_* environment
//!   prefix: ""                                   # optional key prefix, e.g. "tenant-a/"
//!   path_style: true                             # default; false: virtual-hosted buckets
//! ```

use super::credentials::StoreCredentials;
use super::{LockMode, Retention};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::path::PathBuf;

/// Which kind of store (one today; Azure Blob immutability would be the next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    #[default]
    S3,
}

/// The settings as written, every field optional until validated.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjectStoreConfig {
    #[serde(rename = "type", default)]
    pub kind: ObjectStoreKind,
    /// The endpoint, `https://s3.REGION.amazonaws.com` or a local server.
    pub url: Option<String>,
    pub bucket: Option<String>,
    /// [default: us-east-1]
    pub region: Option<String>,
    /// Lock mode of every object [default: compliance].
    pub mode: Option<LockMode>,
    /// How long each record is kept from its creation, in days.
    pub retention_days: Option<u32>,
    /// An AWS shared-credentials file; without it, `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` from the environment.
    pub credentials_file: Option<PathBuf>,
    /// The profile to read from `credentials_file` [default: default].
    pub credentials_profile: Option<String>,
    /// Prefix of every key, so tenants can share a bucket [default: none].
    pub prefix: Option<String>,
    /// Path-style URLs (`URL/BUCKET/KEY`) [default: true]; false for
    /// virtual-hosted style (`BUCKET.HOST/KEY`).
    pub path_style: Option<bool>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    pub kind: ObjectStoreKind,
    pub url: String,
    pub bucket: String,
    pub region: String,
    pub mode: LockMode,
    pub retention_days: u32,
    pub credentials: StoreCredentials,
    /// Empty, or ending in `/`.
    pub prefix: String,
    pub path_style: bool,
}

impl ObjectStoreConfig {
    /// The lock a record created at `created_at` must carry.
    pub fn required_retention(&self, created_at: DateTime<Utc>) -> Retention {
        retention_from(self.mode, self.retention_days, created_at)
    }
}

/// `mode` until `from` + `days`, in whole seconds (rounded up).
pub fn retention_from(mode: LockMode, days: u32, from: DateTime<Utc>) -> Retention {
    let until = from + Duration::days(i64::from(days));
    let whole = DateTime::from_timestamp(
        until.timestamp() + i64::from(until.timestamp_subsec_nanos() > 0),
        0,
    )
    .unwrap_or(until);
    Retention {
        mode,
        retain_until: whole,
    }
}

impl RawObjectStoreConfig {
    /// Fields of `over` win.
    pub fn layered(self, over: RawObjectStoreConfig) -> RawObjectStoreConfig {
        RawObjectStoreConfig {
            kind: over.kind,
            url: over.url.or(self.url),
            bucket: over.bucket.or(self.bucket),
            region: over.region.or(self.region),
            mode: over.mode.or(self.mode),
            retention_days: over.retention_days.or(self.retention_days),
            credentials_file: over.credentials_file.or(self.credentials_file),
            credentials_profile: over.credentials_profile.or(self.credentials_profile),
            prefix: over.prefix.or(self.prefix),
            path_style: over.path_style.or(self.path_style),
        }
    }

    /// Checks every setting and loads the credentials; each problem names
    /// its setting (`evidence_object_store.bucket: ...`).
    /// `environment` gives the `AWS_*` variables (see
    /// [`StoreCredentials::from_environment`]), used when no
    /// `credentials_file` is set.
    pub fn validate(
        self,
        environment: impl Fn(&str) -> Option<String>,
    ) -> Result<ObjectStoreConfig, String> {
        self.validate_with(StoreCredentials::from_environment(environment))
    }

    /// [`Self::validate`] with the environment's credentials already read.
    pub fn validate_with(
        self,
        environment_credentials: Option<StoreCredentials>,
    ) -> Result<ObjectStoreConfig, String> {
        let invalid =
            |setting: &str, message: &str| format!("evidence_object_store.{setting}: {message}");
        let url = self
            .url
            .ok_or_else(|| invalid("url", "is required (the S3 endpoint)"))?;
        let parsed = url::Url::parse(&url)
            .map_err(|error| invalid("url", &format!("{url:?} is not a URL: {error}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid("url", &format!("{url:?} is not an http(s) URL")));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "url",
                "must not carry credentials; use credentials_file or the AWS_* environment",
            ));
        }
        let bucket = self
            .bucket
            .ok_or_else(|| invalid("bucket", "is required"))?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(invalid(
                "bucket",
                &format!("{bucket:?} is not an S3 bucket name (3-63 of a-z 0-9 . -)"),
            ));
        }
        let retention_days = self.retention_days.ok_or_else(|| {
            invalid(
                "retention_days",
                "is required (how long each record is kept, e.g. 2557 for 7 years)",
            )
        })?;
        if retention_days == 0 || retention_days > 36_500 {
            return Err(invalid("retention_days", "must be between 1 and 36500"));
        }
        let mut prefix = self.prefix.unwrap_or_default();
        if prefix.starts_with('/') || prefix.split('/').any(|part| part == "..") {
            return Err(invalid("prefix", "must be relative, without `..`"));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let credentials = match &self.credentials_file {
            Some(path) => StoreCredentials::from_file(
                path,
                self.credentials_profile.as_deref().unwrap_or("default"),
            )
            .map_err(|error| invalid("credentials_file", &error))?,
            None => environment_credentials.ok_or_else(|| {
                invalid(
                    "credentials_file",
                    "not set, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not in the environment",
                )
            })?,
        };
        Ok(ObjectStoreConfig {
            kind: self.kind,
            url: url.trim_end_matches('/').to_owned(),
            bucket,
            region: self.region.unwrap_or_else(|| "us-east-1".into()),
            mode: self.mode.unwrap_or(LockMode::Compliance),
            retention_days,
            credentials,
            prefix,
            path_style: self.path_style.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawObjectStoreConfig {
        RawObjectStoreConfig {
            url: Some("http://127.0.0.1:9000".into()),
            bucket: Some("evidence-bucket".into()),
            retention_days: Some(2557),
            ..RawObjectStoreConfig::default()
        }
    }

    fn environment(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some("AKID".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("very-secret".into()),
            _ => None,
        }
    }

    #[test]
    fn defaults_are_compliance_mode_path_style_and_us_east_1() {
        let config = raw().validate(environment).unwrap();
        assert_eq!(config.mode, LockMode::Compliance);
        assert!(config.path_style);
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.prefix, "");
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn every_bad_setting_is_named() {
        let check = |raw: RawObjectStoreConfig, expected: &str| {
            let error = raw.validate(environment).unwrap_err();
            assert!(
                error.contains(expected),
                "{error} should mention {expected}"
            );
        };
        check(
            RawObjectStoreConfig { url: None, ..raw() },
            "evidence_object_store.url",
        );
        check(
            RawObjectStoreConfig {
                url: Some("ftp://x".into()),
                ..raw()
            },
            "not an http(s) URL",
        );
        check(
            RawObjectStoreConfig {
                url: Some("http://key:secret@host".into()),
                ..raw()
            },
            "must not carry credentials",
        );
        check(
            RawObjectStoreConfig {
                bucket: Some("Bad_Bucket".into()),
                ..raw()
            },
            "evidence_object_store.bucket",
        );
        check(
            RawObjectStoreConfig {
                retention_days: Some(0),
                ..raw()
            },
            "retention_days",
        );
        check(
            RawObjectStoreConfig {
                prefix: Some("../x".into()),
                ..raw()
            },
            "prefix",
        );
        let error = raw().validate(|_| None).unwrap_err();
        assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
    }

    #[test]
    fn required_retention_rounds_up_to_whole_seconds() {
        let created = DateTime::parse_from_rfc3339("2026-03-01T10:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let retention = retention_from(LockMode::Compliance, 1, created);
        assert_eq!(
            retention.retain_until.to_rfc3339(),
            "2026-03-02T10:00:01+00:00"
        );
    }
}
