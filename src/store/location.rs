//! Where the store lives: `sqlite:PATH` (or a bare path) or a PostgreSQL
//! URL (`postgres://` / `postgresql://`). The password of a URL is never
//! shown: [`StoreLocation`]'s `Debug` and `Display` and every error redact it.

use super::StoreError;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable a store URL may come from.
pub const STORE_URL_ENV: &str = "RINGMASTER_STORE_URL";

/// How long connecting to PostgreSQL may take unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store's location.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (holding its password, if any).
    Postgres(String),
}

impl StoreLocation {
    /// Parses `sqlite:PATH`, `postgres://...` or `postgresql://...`.
    pub fn parse(text: &str) -> Result<StoreLocation, StoreError> {
        let text = text.trim();
        let invalid = |reason: &str| StoreError::InvalidLocation {
            location: redact_url(text),
            reason: reason.to_string(),
        };
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid("sqlite: needs a file path"));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let (rest, _) = super::postgres_tls::split_url(text)
                .map_err(|reason| invalid(&scrub(&reason, text)))?;
            rest.parse::<postgres::Config>()
                .map_err(|error| invalid(&scrub(&error.to_string(), text)))?;
            return Ok(StoreLocation::Postgres(text.to_string()));
        }
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        Err(invalid("the scheme must be sqlite: or postgres://"))
    }

    /// The location with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => redact_url(url),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "StoreLocation({})", self.redacted())
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.redacted())
    }
}

/// `text` with the password of a URL (userinfo or a `password=` query
/// parameter) replaced by `***`.
pub fn redact_url(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(password) = password_of(text) {
        out = out.replace(&password, "***");
    }
    out
}

/// The password a URL carries, as written (percent-encoded or not).
fn password_of(text: &str) -> Option<String> {
    let after_scheme = text.split_once("://").map(|(_, rest)| rest)?;
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        return Some(password.to_string());
    }
    let query = text.split_once('?').map(|(_, query)| query)?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "password")
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty())
}

/// Removes the password of `url` from an error message about it.
fn scrub(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(password) => message.replace(&password, "***"),
        None => message.to_string(),
    }
}

/// Connects to PostgreSQL, with TLS as the URL's `sslmode` and
/// `sslrootcert` say (`postgres_tls`: libpq's meaning).
pub(super) fn connect_postgres(url: &str) -> Result<postgres::Client, StoreError> {
    let redacted = redact_url(url);
    let connect_error = |detail: String| StoreError::PostgresConnect {
        url: redacted.clone(),
        detail: scrub(&detail, url),
    };
    let (rest, tls) = super::postgres_tls::split_url(url).map_err(connect_error)?;
    let mut config = rest
        .parse::<postgres::Config>()
        .map_err(|error| connect_error(error.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("ringmaster");
    }
    let only_unix_sockets = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|host| matches!(host, postgres::config::Host::Unix(_)));
    let negotiation = tls.negotiation(only_unix_sockets).map_err(connect_error)?;
    config.ssl_mode(negotiation.ssl_mode);
    let connected = super::db::blocking(|| match negotiation.connector {
        Some(connector) => config.connect(connector),
        None => config.connect(postgres::NoTls),
    });
    connected.map_err(|error| {
        let mut detail = match error.as_db_error() {
            Some(db_error) => db_error.message().to_string(),
            None => {
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
        };
        if let Some(hint) = super::postgres_tls::hint(&tls, &detail) {
            detail.push_str(&format!(" ({hint})"));
        }
        connect_error(detail)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_redacted_from_every_rendering() {
        let url = "postgres://ring:s3cr%40t@db.example:5432/ringmaster?sslmode=disable";
        let location = StoreLocation::parse(url).unwrap();
        for shown in [
            location.redacted(),
            format!("{location}"),
            format!("{location:?}"),
            redact_url(url),
        ] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("ring:***@db.example"), "{shown}");
        }
        let query = "postgresql://ring@db/rm?password=hunter2&application_name=x";
        assert!(!redact_url(query).contains("hunter2"));
        let error = StoreLocation::parse("postgres://u:topsecret@host:notaport/db").unwrap_err();
        assert!(!error.to_string().contains("topsecret"), "{error}");
    }

    #[test]
    fn sqlite_locations_and_unknown_schemes() {
        assert_eq!(
            StoreLocation::parse("sqlite:/var/lib/rm/state.db").unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/var/lib/rm/state.db"))
        );
        assert!(StoreLocation::parse("mysql://x").is_err());
        assert!(StoreLocation::parse("sqlite:").is_err());
    }
}
