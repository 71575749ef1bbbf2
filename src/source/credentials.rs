//! Credentials for the Git remotes: the governed repository's fetch and the
//! evidence branch's push, through git2's callbacks.
//!
//! - **HTTPS with a token**: Basic auth (`x-access-token` and the token, as
//!   GitHub, GitLab and Gitea take it), the token read from its file at every
//!   attempt (so a rotated token is picked up without a restart) or given
//!   once through the environment.
//! - **HTTPS with a GitHub App installation token**: minted by the forge's
//!   client before each fetch or push (it caches and renews them) and handed
//!   in with [`GitCredentials::set_app_token`].
//! - **SSH with a key file**, the server's host key checked against a
//!   configured `known_hosts` file: an unknown host is refused unless the
//!   configuration explicitly accepts unknown hosts; a host whose key does
//!   not match (or is `@revoked`) is always refused.
//!
//! **Architecture invariant:** a secret never reaches a URL, a log line or an
//! error. Configured URLs may not carry credentials
//! ([`url_carries_credentials`]); messages name the token's file, never its
//! content; credentials are only given to the host of the remote they were
//! configured for (a redirect elsewhere gets nothing); and a remote that
//! refuses them is not asked again within the same call (libgit2 would call
//! back forever).

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use hmac::{KeyInit, Mac};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A token or passphrase; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct GitSecret(String);

impl GitSecret {
    pub fn new(value: impl Into<String>) -> GitSecret {
        GitSecret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GitSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, read again at every attempt (trailing newline removed).
    File(PathBuf),
    /// A value given once (an environment variable).
    Value {
        secret: GitSecret,
        /// Where it came from, for messages (`RINGMASTER_GIT_TOKEN`).
        origin: String,
    },
}

impl SecretSource {
    /// The secret now. The error names the file, never the content.
    pub fn read(&self) -> Result<GitSecret, String> {
        match self {
            SecretSource::Value { secret, origin } => {
                if secret.expose().is_empty() {
                    return Err(format!("{origin} is empty"));
                }
                Ok(secret.clone())
            }
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                let secret = text.trim_end_matches(['\n', '\r']).trim();
                if secret.is_empty() {
                    return Err(format!("{} is empty", path.display()));
                }
                if secret.contains(['\n', '\r']) {
                    return Err(format!(
                        "{} holds more than one line; it must hold the secret only",
                        path.display()
                    ));
                }
                Ok(GitSecret::new(secret))
            }
        }
    }

    /// Where it comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => path.display().to_string(),
            SecretSource::Value { origin, .. } => origin.clone(),
        }
    }
}

/// SSH: a key file and the host keys it may talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAuth {
    /// The user to log in as when the URL names none [default: `git`].
    pub username: Option<String>,
    /// The private key (OpenSSH or PEM format), read at every attempt.
    pub key_file: PathBuf,
    /// The key's passphrase, if it has one.
    pub passphrase: Option<SecretSource>,
    /// The OpenSSH `known_hosts` file the server's host key must be in.
    pub known_hosts_file: PathBuf,
    /// Accept a host that `known_hosts` does not list at all (logged). A
    /// host listed with another key is refused regardless.
    pub accept_unknown_hosts: bool,
}

/// How the daemon authenticates to its Git remotes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GitAuth {
    /// None: a remote that asks for credentials gets a clear error.
    #[default]
    None,
    /// HTTPS, Basic auth with `username` and a token.
    Token {
        username: String,
        token: SecretSource,
    },
    /// HTTPS with the GitHub App's installation token (`x-access-token`).
    GitHubApp,
    Ssh(SshAuth),
}

/// The username GitHub (and GitLab, Gitea) take with a token.
pub const TOKEN_USERNAME: &str = "x-access-token";

impl GitAuth {
    /// One line for logs and `status`: the method and where the secret is.
    pub fn describe(&self) -> String {
        match self {
            GitAuth::None => "no credentials".into(),
            GitAuth::Token { username, token } => {
                format!("HTTPS token for {username} from {}", token.describe())
            }
            GitAuth::GitHubApp => "HTTPS with the GitHub App's installation token".into(),
            GitAuth::Ssh(ssh) => format!(
                "SSH key {} (host keys from {})",
                ssh.key_file.display(),
                ssh.known_hosts_file.display()
            ),
        }
    }
}

/// The credentials every fetch and push of the daemon uses; a cheap clone
/// shares them (the installation token is set once for all).
#[derive(Clone, Default)]
pub struct GitCredentials {
    auth: Arc<GitAuth>,
    /// The GitHub App's current installation token, or why there is none.
    app_token: Arc<Mutex<Option<Result<GitSecret, String>>>>,
    /// Why the last host-key check refused the server: libgit2 replaces the
    /// callback's message with "invalid or unknown remote ssh hostkey", so
    /// [`GitCredentials::explain`] puts it back.
    host_key_refusal: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for GitCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("GitCredentials")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl GitCredentials {
    pub fn new(auth: GitAuth) -> GitCredentials {
        GitCredentials {
            auth: Arc::new(auth),
            app_token: Arc::default(),
            host_key_refusal: Arc::default(),
        }
    }

    pub fn auth(&self) -> &GitAuth {
        &self.auth
    }

    /// Whether a GitHub App installation token must be set before a call.
    pub fn uses_github_app(&self) -> bool {
        matches!(*self.auth, GitAuth::GitHubApp)
    }

    /// The installation token for the next calls, or why it could not be
    /// minted (the calls then fail with that reason).
    pub fn set_app_token(&self, token: Result<GitSecret, String>) {
        *self.app_token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    /// `error` of a fetch or push made with [`GitCredentials::callbacks`],
    /// with the host-key check's own reason when it refused the server.
    pub fn explain(&self, error: git2::Error) -> git2::Error {
        let refusal = self
            .host_key_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match refusal {
            Some(reason) => git2::Error::new(error.code(), error.class(), reason),
            None => error,
        }
    }

    /// The callbacks of one fetch or push of the remote at `url` (the URL it
    /// is configured with): credentials for that host only, asked once, and
    /// the SSH host key checked.
    pub fn callbacks<'a>(&'a self, url: &str) -> RemoteCallbacks<'a> {
        let expected = RemoteHost::parse(url);
        let shown = redact_url(url);
        let mut callbacks = RemoteCallbacks::new();
        let mut asked: u32 = 0;
        let credential_expected = expected.clone();
        let credential_shown = shown.clone();
        callbacks.credentials(move |callback_url, username_from_url, allowed| {
            let fail = |message: String| Err(git2::Error::from_str(&message));
            if RemoteHost::parse(callback_url) != credential_expected {
                return fail(format!(
                    "refusing to send credentials to {} (the remote is {credential_shown})",
                    redact_url(callback_url)
                ));
            }
            // The user name libgit2 asks for first over SSH is not an attempt.
            if !allowed.contains(CredentialType::USERNAME) {
                asked += 1;
            }
            self.credential(
                &credential_shown,
                username_from_url,
                allowed,
                asked,
                callback_url,
            )
        });
        *self
            .host_key_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        if let GitAuth::Ssh(ssh) = &*self.auth {
            let port = expected.as_ref().and_then(|host| host.port);
            let refusal = self.host_key_refusal.clone();
            callbacks.certificate_check(move |certificate, hostname| {
                let Some(hostkey) = certificate.as_hostkey() else {
                    // TLS: OpenSSL's verification against the system's CAs stands.
                    return Ok(CertificateCheckStatus::CertificatePassthrough);
                };
                let Some(key) = hostkey.hostkey() else {
                    return Err(git2::Error::from_str(&format!(
                        "{hostname} sent no host key that can be checked"
                    )));
                };
                check_host_key(ssh, hostname, port, key).map_err(|reason| {
                    *refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
                    git2::Error::from_str(&reason)
                })
            });
        }
        callbacks
    }

    /// The credential for one call of libgit2's callback (`asked`: how many
    /// times it was asked in this call).
    fn credential(
        &self,
        remote: &str,
        username_from_url: Option<&str>,
        allowed: CredentialType,
        asked: u32,
        callback_url: &str,
    ) -> Result<Cred, git2::Error> {
        let fail = |message: String| Err(git2::Error::from_str(&message));
        match &*self.auth {
            GitAuth::None => fail(format!(
                "{remote} asks for credentials and none are configured: set git_credentials \
                 (token_file, github_app or ssh_key_file) in the daemon config"
            )),
            GitAuth::Token { username, token } => {
                if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return fail(format!(
                        "{remote} does not take a token; configure the credentials its URL needs"
                    ));
                }
                if asked > 1 {
                    return fail(format!(
                        "{remote} refused the token from {} (authentication failed): check or replace it; \
                         the file is read again at the next attempt",
                        token.describe()
                    ));
                }
                let secret = token
                    .read()
                    .map_err(|e| git2::Error::from_str(&format!("git token for {remote}: {e}")))?;
                Cred::userpass_plaintext(username, secret.expose())
            }
            GitAuth::GitHubApp => {
                if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return fail(format!(
                        "{remote} does not take a token: a GitHub App token works over HTTPS only"
                    ));
                }
                if asked > 1 {
                    return fail(format!(
                        "{remote} refused the GitHub App's installation token (authentication failed): \
                         check that the App is installed on the repository with contents access"
                    ));
                }
                let token = self
                    .app_token
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match token {
                    Some(Ok(secret)) => Cred::userpass_plaintext(TOKEN_USERNAME, secret.expose()),
                    Some(Err(reason)) => fail(format!(
                        "no GitHub App installation token for {remote}: {reason}"
                    )),
                    None => fail(format!(
                        "no GitHub App installation token for {remote} yet: the forge mints it \
                         (github_app_id, github_installation_id, github_app_key_file)"
                    )),
                }
            }
            GitAuth::Ssh(ssh) => {
                let username = username_from_url
                    .map(str::to_owned)
                    .or_else(|| ssh.username.clone())
                    .unwrap_or_else(|| "git".into());
                if allowed.contains(CredentialType::USERNAME) {
                    return Cred::username(&username);
                }
                if !allowed.contains(CredentialType::SSH_KEY) {
                    return fail(format!(
                        "{remote} does not take an SSH key ({})",
                        redact_url(callback_url)
                    ));
                }
                if asked > 1 {
                    return fail(format!(
                        "{remote} refused the SSH key {} for user {username} (authentication failed)",
                        ssh.key_file.display()
                    ));
                }
                let passphrase =
                    match &ssh.passphrase {
                        Some(source) => Some(source.read().map_err(|e| {
                            git2::Error::from_str(&format!("SSH key passphrase: {e}"))
                        })?),
                        None => None,
                    };
                if !ssh.key_file.is_file() {
                    return fail(format!(
                        "SSH key {} does not exist or is not a file",
                        ssh.key_file.display()
                    ));
                }
                Cred::ssh_key(
                    &username,
                    None,
                    &ssh.key_file,
                    passphrase.as_ref().map(GitSecret::expose),
                )
            }
        }
    }
}

/// A remote's scheme, host and port, for "is this the same server".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHost {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl RemoteHost {
    /// `scheme://[user[:password]@]host[:port]/path` or scp-like
    /// `[user@]host:path` (SSH). `None` for a local path or `file://`.
    pub fn parse(url: &str) -> Option<RemoteHost> {
        if let Some((scheme, rest)) = url.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if scheme == "file" {
                return None;
            }
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let authority = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            let (host, port) = split_host_port(authority);
            return Some(RemoteHost {
                scheme,
                host: host.to_ascii_lowercase(),
                port,
            });
        }
        // scp-like: a colon before any slash, and not a Windows drive.
        let colon = url.find(':')?;
        if url[..colon].contains('/') || colon < 2 {
            return None;
        }
        let authority = &url[..colon];
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        Some(RemoteHost {
            scheme: "ssh".into(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port: None,
        })
    }

    /// Whether the host is this machine (plain HTTP is allowed there only).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback())
    }
}

fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // [IPv6]:port
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
            (host, port.parse().ok())
        }
        _ => (authority, None),
    }
}

/// Whether a URL carries a password or token in it (`https://user:secret@…`,
/// or any user part of an HTTP(S) URL, where a token is often put as the
/// user). SSH URLs may name their user (`git@host:path`).
pub fn url_carries_credentials(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return false;
    };
    let scheme = scheme.to_ascii_lowercase();
    scheme == "http" || scheme == "https" || userinfo.contains(':')
}

/// The URL without what its user part might hold: `https://***@host/path`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_owned(),
    }
}

/// Checks the server's host key (`key`: its SSH wire encoding) against the
/// known_hosts file. `Ok` when listed with this key, or unknown and unknown
/// hosts are accepted; the error says why not, with the key's fingerprint
/// and the command that lists it.
pub fn check_host_key(
    ssh: &SshAuth,
    hostname: &str,
    port: Option<u16>,
    key: &[u8],
) -> Result<CertificateCheckStatus, String> {
    let presented = ssh_key::PublicKey::from_bytes(key)
        .map_err(|error| format!("{hostname} sent a host key that cannot be read: {error}"))?;
    let fingerprint = presented.fingerprint(ssh_key::HashAlg::Sha256);
    let text = std::fs::read_to_string(&ssh.known_hosts_file).map_err(|error| {
        format!(
            "cannot read known_hosts file {}: {error}",
            ssh.known_hosts_file.display()
        )
    })?;
    let names = host_names(hostname, port);
    let mut listed_with_other_key = false;
    let mut listed = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let entry: ssh_key::known_hosts::Entry = match trimmed.parse() {
            Ok(entry) => entry,
            Err(error) => {
                tracing::warn!(file = %ssh.known_hosts_file.display(), line = index + 1, %error, "known_hosts line skipped (cannot be read)");
                continue;
            }
        };
        if !entry_matches(entry.host_patterns(), &names) {
            continue;
        }
        let same_key = entry.public_key().key_data() == presented.key_data();
        match entry.marker() {
            Some(ssh_key::known_hosts::Marker::Revoked) if same_key => {
                return Err(format!(
                    "the host key of {hostname} ({fingerprint}) is marked @revoked in {}: refused",
                    ssh.known_hosts_file.display()
                ));
            }
            Some(_) => continue,
            // Not returned yet: a `@revoked` line further down still wins.
            None if same_key => listed = true,
            None => listed_with_other_key = true,
        }
    }
    if listed {
        return Ok(CertificateCheckStatus::CertificateOk);
    }
    let shown = names.last().cloned().unwrap_or_else(|| hostname.to_owned());
    if listed_with_other_key {
        return Err(format!(
            "the host key of {shown} ({fingerprint}) does not match the one in {}: refused \
             (the server's key changed, or someone is in between); if the change is expected, \
             replace the line (ssh-keyscan{} {hostname})",
            ssh.known_hosts_file.display(),
            port.filter(|p| *p != 22)
                .map(|p| format!(" -p {p}"))
                .unwrap_or_default()
        ));
    }
    if ssh.accept_unknown_hosts {
        tracing::warn!(host = %shown, %fingerprint, file = %ssh.known_hosts_file.display(), "unknown SSH host key accepted (ssh_accept_unknown_host_keys)");
        return Ok(CertificateCheckStatus::CertificateOk);
    }
    Err(format!(
        "the host key of {shown} ({fingerprint}) is not in {}: refused; add it after checking \
         the fingerprint (ssh-keyscan{} {hostname} >> {})",
        ssh.known_hosts_file.display(),
        port.filter(|p| *p != 22)
            .map(|p| format!(" -p {p}"))
            .unwrap_or_default(),
        ssh.known_hosts_file.display()
    ))
}

/// The names a host is listed under: `host`, or `[host]:port` off port 22.
fn host_names(hostname: &str, port: Option<u16>) -> Vec<String> {
    let host = hostname.to_ascii_lowercase();
    match port {
        Some(port) if port != 22 => vec![format!("[{host}]:{port}")],
        _ => vec![host],
    }
}

/// Whether an entry's patterns (or hashed name) cover one of `names`:
/// OpenSSH's rules — `*` and `?` wildcards, `!` negates and wins.
fn entry_matches(patterns: &ssh_key::known_hosts::HostPatterns, names: &[String]) -> bool {
    use ssh_key::known_hosts::HostPatterns;
    match patterns {
        HostPatterns::HashedName { salt, hash } => names.iter().any(|name| {
            let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }),
        HostPatterns::Patterns(list) => names.iter().any(|name| {
            let mut matched = false;
            for pattern in list {
                let pattern = pattern.to_ascii_lowercase();
                match pattern.strip_prefix('!') {
                    Some(negated) if wildcard_match(negated, name) => return false,
                    Some(_) => {}
                    None => matched |= wildcard_match(&pattern, name),
                }
            }
            matched
        }),
    }
}

/// `*` any run of characters, `?` one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(position) = star {
            p = position + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

/// The configured URL of a remote of `repository`, by name or as given.
pub fn remote_url(repository: &git2::Repository, remote: &str) -> String {
    repository
        .find_remote(remote)
        .ok()
        .and_then(|found| found.url().ok().map(str::to_owned))
        .unwrap_or_else(|| remote.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_parsed_from_every_url_form() {
        let check = |url: &str, expected: Option<(&str, &str, Option<u16>)>| {
            let parsed = RemoteHost::parse(url);
            let expected = expected.map(|(scheme, host, port)| RemoteHost {
                scheme: scheme.into(),
                host: host.into(),
                port,
            });
            assert_eq!(parsed, expected, "{url}");
        };
        check(
            "https://github.com/contoso/t.git",
            Some(("https", "github.com", None)),
        );
        check(
            "HTTPS://user:pw@GitHub.com:8443/t",
            Some(("https", "github.com", Some(8443))),
        );
        check(
            "http://127.0.0.1:9418/t.git",
            Some(("http", "127.0.0.1", Some(9418))),
        );
        check(
            "ssh://git@[::1]:2222/srv/t.git",
            Some(("ssh", "::1", Some(2222))),
        );
        check(
            "git@github.com:contoso/t.git",
            Some(("ssh", "github.com", None)),
        );
        check("file:///srv/t.git", None);
        check("/srv/t.git", None);
        check("./t:odd", None);
        check("C:/repos/t", None);
    }

    #[test]
    fn credentials_in_urls_are_found_and_redacted() {
        assert!(url_carries_credentials("https://ghp_secret@github.com/t"));
        assert!(url_carries_credentials("https://u:ghp_secret@github.com/t"));
        assert!(url_carries_credentials("ssh://git:pw@host/t"));
        assert!(!url_carries_credentials("ssh://git@host/t"));
        assert!(!url_carries_credentials("git@github.com:contoso/t.git"));
        assert!(!url_carries_credentials("https://github.com/a@b"));
        assert_eq!(
            redact_url("https://u:ghp_secret@github.com/t"),
            "https://***@github.com/t"
        );
        assert_eq!(
            redact_url("https://github.com/t@x"),
            "https://github.com/t@x"
        );
    }

    #[test]
    fn host_patterns_follow_openssh() {
        let check = |patterns: &str, name: &str, expected: bool| {
            let parsed: ssh_key::known_hosts::HostPatterns = patterns.parse().unwrap();
            assert_eq!(
                entry_matches(&parsed, &[name.to_owned()]),
                expected,
                "{patterns} vs {name}"
            );
        };
        check("github.com", "github.com", true);
        check("GitHub.com,gh", "github.com", true);
        check("*.example.com", "git.example.com", true);
        check("*.example.com,!evil.example.com", "evil.example.com", false);
        check("git?.example.com", "git1.example.com", true);
        check("git?.example.com", "git12.example.com", false);
        check("[127.0.0.1]:2222", "[127.0.0.1]:2222", true);
        check("127.0.0.1", "[127.0.0.1]:2222", false);
        // `ssh-keygen -H` for "github.com" with a known salt.
        let salt = b"0123456789abcdefghij";
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"github.com");
        let hash = mac.finalize().into_bytes();
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let hashed = format!("|1|{}|{}", engine.encode(salt), engine.encode(hash));
        check(&hashed, "github.com", true);
        check(&hashed, "gitlab.com", false);
    }

    #[test]
    fn secrets_print_as_stars_and_files_are_read_at_every_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let source = SecretSource::File(path.clone());
        let error = source.read().unwrap_err();
        assert!(error.contains("token"), "{error}");
        std::fs::write(&path, "ghp_first\n").unwrap();
        assert_eq!(source.read().unwrap().expose(), "ghp_first");
        std::fs::write(&path, "ghp_second").unwrap();
        assert_eq!(source.read().unwrap().expose(), "ghp_second");
        std::fs::write(&path, "\n").unwrap();
        assert!(source.read().unwrap_err().contains("empty"));
        let auth = GitAuth::Token {
            username: TOKEN_USERNAME.into(),
            token: SecretSource::Value {
                secret: GitSecret::new("ghp_hunter2"),
                origin: "RINGMASTER_GIT_TOKEN".into(),
            },
        };
        let printed = format!(
            "{auth:?} {:?} {}",
            GitCredentials::new(auth.clone()),
            auth.describe()
        );
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
