//! Git credentials against a real authenticated Git server.
//!
//! [`GitServer`] is the real `git http-backend` (smart HTTP, fetch and push)
//! behind Basic auth on 127.0.0.1 (`tests/git_http`). The daemon's fetch of the governed repository and
//! its push of the evidence branch must get through with the configured
//! token, be refused without it, say which remote refused which
//! credential, and never show the token anywhere.
//!
//! SSH: a real `sshd` on 127.0.0.1 serves Git to one authorised key; the
//! host key is checked against `known_hosts` (unknown host and another key
//! refused) before the client key is offered. The host-key check's matching
//! rules are also tested alone with keys made by `ssh-keygen` and real
//! `known_hosts` files (plain, `[host]:port`, hashed with `ssh-keygen -H`,
//! `@revoked`).

mod forge_support;
mod git_http;
#[allow(dead_code)]
#[path = "evidence/harness.rs"]
mod harness;
mod support;

use base64::Engine as _;
use git_http::{GitServer, TOKEN, WRONG};
use harness::{BRANCH, Governed, git};
use ringmaster::evidence::EvidenceBranch;
use ringmaster::source::credentials::{
    GitAuth, GitCredentials, GitSecret, SecretSource, SshAuth, TOKEN_USERNAME, check_host_key,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{TestRepo, ringmaster, stderr, stdout};
use tempfile::TempDir;

fn token_from(value: &str) -> GitCredentials {
    GitCredentials::new(GitAuth::Token {
        username: TOKEN_USERNAME.into(),
        token: SecretSource::Value {
            secret: GitSecret::new(value),
            origin: "RINGMASTER_GIT_TOKEN".into(),
        },
    })
}

fn token_file(dir: &Path, value: &str) -> (PathBuf, GitCredentials) {
    let path = dir.join("git-token");
    std::fs::write(&path, format!("{value}\n")).expect("token file");
    let credentials = GitCredentials::new(GitAuth::Token {
        username: TOKEN_USERNAME.into(),
        token: SecretSource::File(path.clone()),
    });
    (path, credentials)
}

fn mirror_head(mirror: &git2::Repository) -> Option<String> {
    mirror
        .find_reference("refs/heads/main")
        .ok()
        .and_then(|reference| reference.target())
        .map(|oid| oid.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_https_remote_is_fetched_with_a_token_and_refused_without() {
    let server = GitServer::start().await;
    let governed = Governed::new();
    let url = server.repository("tenant.git", Some(governed.path()));
    let expected = git(governed.path(), &["rev-parse", "main"]);
    let state = TempDir::new().expect("state");
    let mirror = ringmaster::source::remote::open_mirror(&url, &state.path().join("m.git"), "main")
        .expect("mirror");

    // No credentials: the server's 401 becomes an error naming the remote
    // and what to configure.
    let error = ringmaster::source::remote::fetch(&mirror, &GitCredentials::default())
        .expect_err("refused without credentials")
        .to_string();
    assert!(error.contains(&url), "names the remote: {error}");
    assert!(
        error.contains("none are configured") && error.contains("token_file"),
        "names the missing credential: {error}"
    );
    assert_eq!(mirror_head(&mirror), None, "nothing was fetched");
    assert!(!server.seen().is_empty(), "the server was asked");
    assert!(server.seen().iter().all(|seen| !seen.authorised));

    // A wrong token from a file: refused once, not retried in a loop; the
    // error names the file, never its content.
    let keys = TempDir::new().expect("keys");
    let (path, wrong) = token_file(keys.path(), WRONG);
    let before = server.seen().len();
    let error = ringmaster::source::remote::fetch(&mirror, &wrong)
        .expect_err("refused with a wrong token")
        .to_string();
    let asked = server.seen().len() - before;
    assert!(asked <= 3, "{asked} requests for one refused fetch");
    assert!(error.contains("refused the token"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(!error.contains(WRONG), "the token leaked: {error}");
    assert_eq!(mirror_head(&mirror), None);

    // The right token, written to the same file (read again at every
    // attempt: a rotated token needs no restart).
    std::fs::write(&path, format!("{TOKEN}\n")).expect("rotate");
    let before = server.seen().len();
    ringmaster::source::remote::fetch(&mirror, &wrong).expect("fetched with the token");
    assert_eq!(mirror_head(&mirror), Some(expected));
    let seen = server.seen()[before..].to_vec();
    assert!(
        seen.iter()
            .any(|seen| seen.authorised && seen.path.ends_with("git-upload-pack")),
        "the pack was fetched with the credentials: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_is_pushed_to_a_private_https_remote_with_a_token_only() {
    let server = GitServer::start().await;
    let url = server.repository("evidence.git", None);
    let governed = Governed::new();
    governed.append(2);

    let error = governed
        .branch()
        .push(&url)
        .expect_err("refused without credentials")
        .to_string();
    assert!(error.contains(&url), "names the remote: {error}");
    assert!(error.contains("none are configured"), "{error}");

    let error = EvidenceBranch::open(governed.path(), BRANCH)
        .expect("branch")
        .with_remote_credentials(token_from(WRONG))
        .push(&url)
        .expect_err("refused with a wrong token")
        .to_string();
    assert!(
        error.contains("refused the token from RINGMASTER_GIT_TOKEN"),
        "{error}"
    );
    assert!(!error.contains(WRONG), "the token leaked: {error}");
    let remote_refs = git(&server.path("evidence.git"), &["for-each-ref"]);
    assert!(remote_refs.is_empty(), "nothing arrived: {remote_refs}");

    let branch = EvidenceBranch::open(governed.path(), BRANCH)
        .expect("branch")
        .with_remote_credentials(token_from(TOKEN));
    let pushed = branch.push(&url).expect("pushed with the token");
    assert_eq!(
        git(&server.path("evidence.git"), &["rev-parse", BRANCH]),
        pushed.commit
    );
    assert!(
        !format!("{pushed:?}").contains(TOKEN),
        "the report holds no token"
    );
    assert!(
        server
            .seen()
            .iter()
            .any(|seen| seen.authorised && seen.path.ends_with("git-receive-pack"))
    );
    // A fetch of the evidence remote takes the same credentials.
    branch.fetch(&url).expect("fetched with the token");
}

/// `serve --once` on a private HTTPS remote: the token from a file (or the
/// environment) gets the fetch through, a wrong one fails with a message
/// naming the remote and the file, and no output shows the token.
#[tokio::test(flavor = "multi_thread")]
async fn serve_fetches_a_private_remote_with_the_configured_token_and_never_prints_it() {
    let server = GitServer::start().await;
    let tenant = TestRepo::sample();
    let url = server.repository("tenant.git", Some(&tenant.path));
    let keys = TempDir::new().expect("keys");
    let paths = ringmaster::evidence::generate_keypair(keys.path(), None, false).expect("keygen");
    let key = paths.secret_key.to_str().expect("utf-8").to_owned();
    let (token_path, _) = token_file(keys.path(), WRONG);
    let state = TempDir::new().expect("state");
    let state_path = state.path().to_str().expect("utf-8").to_owned();
    let token_arg = token_path.to_str().expect("utf-8").to_owned();
    let planes = support::sim_planes_config(keys.path());
    let planes = planes.to_str().expect("utf-8").to_owned();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--repo",
            &url,
            "--state",
            &state_path,
            "--key",
            &key,
            "--config",
            &planes,
            "--once",
        ];
        args.extend_from_slice(extra);
        ringmaster(&args, state.path())
    };

    let output = serve(&["--git-token-file", &token_arg]);
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!output.status.success(), "a refused fetch fails: {printed}");
    assert!(printed.contains(&url), "names the remote: {printed}");
    assert!(
        printed.contains(&token_arg),
        "names the token file: {printed}"
    );
    assert!(!printed.contains(WRONG), "the token leaked: {printed}");

    // A token in the URL is refused before anything is sent.
    let in_url = url.replace("http://", &format!("http://{TOKEN_USERNAME}:{TOKEN}@"));
    let before = server.seen().len();
    let output = ringmaster(
        &[
            "serve",
            "--repo",
            &in_url,
            "--state",
            &state_path,
            "--key",
            &key,
            "--once",
        ],
        state.path(),
    );
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!output.status.success());
    assert!(printed.contains("never go in URLs"), "{printed}");
    assert!(!printed.contains(TOKEN), "the token leaked: {printed}");
    assert_eq!(server.seen().len(), before, "nothing was sent");

    std::fs::write(&token_path, TOKEN).expect("fix the token");
    let output = serve(&["--git-token-file", &token_arg]);
    let printed = format!("{}{}", stdout(&output), stderr(&output));
    assert!(output.status.success(), "{printed}");
    assert!(!printed.contains(TOKEN), "the token leaked: {printed}");
    let mirror = git2::Repository::open_bare(state.path().join("mirror.git")).expect("mirror");
    assert_eq!(
        mirror_head(&mirror),
        Some(tenant.git(&["rev-parse", "main"])),
        "the tenant was fetched"
    );
}

// ---------------------------------------------------------------- SSH ---

/// A key pair made by `ssh-keygen`: the public key's wire encoding (what an
/// SSH server presents as its host key) and its `known_hosts` text.
struct HostKey {
    wire: Vec<u8>,
    public_line: String,
}

fn ssh_keygen(dir: &Path, name: &str, kind: &str) -> HostKey {
    let path = dir.join(name);
    let output = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen must be installed (openssh-client; scripts/test.sh installs it)");
    assert!(output.status.success(), "{output:?}");
    let public_line = std::fs::read_to_string(path.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", path.display())))
        .expect("public key");
    let blob = public_line
        .split_whitespace()
        .nth(1)
        .expect("key blob")
        .to_owned();
    HostKey {
        wire: base64::engine::general_purpose::STANDARD
            .decode(blob)
            .expect("base64"),
        public_line: public_line.trim().to_owned(),
    }
}

fn ssh_auth(known_hosts: &Path, accept_unknown_hosts: bool) -> SshAuth {
    SshAuth {
        username: None,
        key_file: known_hosts.with_file_name("client"),
        passphrase: None,
        known_hosts_file: known_hosts.to_path_buf(),
        accept_unknown_hosts,
    }
}

/// [`check_host_key`], its verdict only.
fn host_key(ssh: &SshAuth, host: &str, port: Option<u16>, key: &[u8]) -> Result<(), String> {
    check_host_key(ssh, host, port, key).map(|_| ())
}

#[test]
fn ssh_host_keys_are_checked_against_known_hosts() {
    let dir = TempDir::new().expect("dir");
    let server = ssh_keygen(dir.path(), "server", "ed25519");
    let impostor = ssh_keygen(dir.path(), "impostor", "ed25519");
    let rsa = ssh_keygen(dir.path(), "rsa", "rsa");
    let known_hosts = dir.path().join("known_hosts");
    let key_of = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    std::fs::write(
        &known_hosts,
        format!(
            "# the Git server\ngit.example.com {}\n[127.0.0.1]:2222 {}\n",
            key_of(&server.public_line),
            key_of(&rsa.public_line)
        ),
    )
    .expect("known_hosts");
    let strict = ssh_auth(&known_hosts, false);

    // Listed with this key: accepted.
    assert!(host_key(&strict, "git.example.com", None, &server.wire).is_ok());
    assert!(host_key(&strict, "git.example.com", Some(22), &server.wire).is_ok());
    assert!(host_key(&strict, "127.0.0.1", Some(2222), &rsa.wire).is_ok());

    // Listed with another key: refused, even when unknown hosts are accepted.
    for auth in [&strict, &ssh_auth(&known_hosts, true)] {
        let error =
            host_key(auth, "git.example.com", None, &impostor.wire).expect_err("another key");
        assert!(error.contains("does not match"), "{error}");
        assert!(error.contains("SHA256:"), "shows the fingerprint: {error}");
    }
    // The port is part of the name: the same host on another port is unknown.
    let error = host_key(&strict, "127.0.0.1", Some(2223), &rsa.wire).expect_err("unknown port");
    assert!(error.contains("is not in"), "{error}");
    assert!(error.contains("ssh-keyscan -p 2223 127.0.0.1"), "{error}");

    // Unknown host: refused unless explicitly accepted.
    let error =
        host_key(&strict, "git.evil.example", None, &server.wire).expect_err("unknown host");
    assert!(error.contains("git.evil.example"), "{error}");
    assert!(
        host_key(
            &ssh_auth(&known_hosts, true),
            "git.evil.example",
            None,
            &server.wire
        )
        .is_ok()
    );

    // Hashed with ssh-keygen -H: still matched, and only for its host.
    let status = Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&known_hosts)
        .output()
        .expect("ssh-keygen -H");
    assert!(status.status.success(), "{status:?}");
    let hashed = std::fs::read_to_string(&known_hosts).expect("hashed");
    assert!(!hashed.contains("git.example.com"), "{hashed}");
    assert!(host_key(&strict, "git.example.com", None, &server.wire).is_ok());
    assert!(host_key(&strict, "127.0.0.1", Some(2222), &rsa.wire).is_ok());
    assert!(host_key(&strict, "git.example.com", None, &impostor.wire).is_err());
    assert!(host_key(&strict, "gitlab.example.com", None, &server.wire).is_err());

    // A revoked key is refused wherever else it is listed.
    std::fs::write(
        &known_hosts,
        format!(
            "git.example.com {}\n@revoked * {}\n",
            key_of(&server.public_line),
            key_of(&server.public_line)
        ),
    )
    .expect("known_hosts");
    let error = host_key(&strict, "git.example.com", None, &server.wire).expect_err("revoked");
    assert!(error.contains("@revoked"), "{error}");

    // A missing known_hosts file refuses every host, naming the file.
    let missing = ssh_auth(&dir.path().join("no_known_hosts"), true);
    let error = host_key(&missing, "git.example.com", None, &server.wire).expect_err("no file");
    assert!(error.contains("no_known_hosts"), "{error}");
}

// ------------------------------------------------------ SSH, end to end ---

/// A real OpenSSH server on 127.0.0.1 (`/usr/sbin/sshd`, package
/// openssh-server), serving Git over SSH to one authorised key, as this
/// user. Killed when dropped.
struct SshServer {
    dir: TempDir,
    port: u16,
    child: std::process::Child,
    host_key: HostKey,
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SshServer {
    fn start(authorised: &HostKey) -> SshServer {
        let dir = TempDir::new().expect("sshd dir");
        let host_key = ssh_keygen(dir.path(), "ssh_host_ed25519_key", "ed25519");
        let authorised_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorised_keys, format!("{}\n", authorised.public_line))
            .expect("authorized_keys");
        std::fs::create_dir_all("/run/sshd").ok();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("address")
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 StrictModes no\nUsePAM no\nPidFile {}\nSetEnv PATH=/usr/local/bin:/usr/bin:/bin\n",
                dir.path().join("ssh_host_ed25519_key").display(),
                authorised_keys.display(),
                dir.path().join("sshd.pid").display(),
            ),
        )
        .expect("sshd_config");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "/usr/sbin/sshd must be installed (openssh-server; scripts/test.sh installs it)",
            );
        // Ready when it accepts connections (it exits at once on a bad config).
        let mut server = SshServer {
            dir,
            port,
            child,
            host_key,
        };
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = server.child.try_wait().expect("sshd") {
                panic!("sshd exited: {status}");
            }
            std::thread::yield_now();
        }
        server
    }

    fn url(&self, path: &Path) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, path.display())
    }

    fn known_hosts(&self, name: &str, key: &HostKey) -> PathBuf {
        let path = self.dir.path().join(name);
        let entry: Vec<&str> = key.public_line.split_whitespace().take(2).collect();
        std::fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, entry.join(" ")),
        )
        .expect("known_hosts");
        path
    }
}

fn ssh(key_file: &Path, known_hosts: &Path) -> GitCredentials {
    GitCredentials::new(GitAuth::Ssh(SshAuth {
        username: None,
        key_file: key_file.to_path_buf(),
        passphrase: None,
        known_hosts_file: known_hosts.to_path_buf(),
        accept_unknown_hosts: false,
    }))
}

#[test]
fn git_over_ssh_checks_the_host_key_and_authenticates_with_the_key() {
    let keys = TempDir::new().expect("keys");
    let client = ssh_keygen(keys.path(), "client", "ed25519");
    let stranger = ssh_keygen(keys.path(), "stranger", "ed25519");
    let server = SshServer::start(&client);
    let governed = Governed::new();
    let bare = server.dir.path().join("tenant.git");
    let status = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(governed.path())
        .arg(&bare)
        .status();
    assert!(status.expect("git").success());
    let url = server.url(&bare);
    let state = TempDir::new().expect("state");
    let mirror = ringmaster::source::remote::open_mirror(&url, &state.path().join("m.git"), "main")
        .expect("mirror");
    let client_key = keys.path().join("client");
    let known = server.known_hosts("known_hosts", &server.host_key);

    // The host's key is not listed: refused before authenticating.
    let empty = keys.path().join("known_hosts_empty");
    std::fs::write(&empty, "").expect("empty");
    let error = ringmaster::source::remote::fetch(&mirror, &ssh(&client_key, &empty))
        .expect_err("unknown host")
        .to_string();
    assert!(error.contains("is not in"), "{error}");
    assert!(error.contains("SHA256:"), "{error}");
    assert_eq!(mirror_head(&mirror), None);

    // Listed with another key: refused.
    let impostor = server.known_hosts("known_hosts_impostor", &stranger);
    let error = ringmaster::source::remote::fetch(&mirror, &ssh(&client_key, &impostor))
        .expect_err("another host key")
        .to_string();
    assert!(error.contains("does not match"), "{error}");

    // The right host, a key the server does not take: refused, named.
    let stranger_key = keys.path().join("stranger");
    let error = ringmaster::source::remote::fetch(&mirror, &ssh(&stranger_key, &known))
        .expect_err("key not authorised")
        .to_string();
    assert!(
        error.contains(&stranger_key.display().to_string()),
        "{error}"
    );

    // The right host and key: fetched.
    ringmaster::source::remote::fetch(&mirror, &ssh(&client_key, &known))
        .expect("fetched over SSH");
    assert_eq!(
        mirror_head(&mirror),
        Some(git(governed.path(), &["rev-parse", "main"]))
    );

    // The evidence branch is pushed over SSH the same way.
    let evidence = server.dir.path().join("evidence.git");
    let status = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&evidence)
        .status();
    assert!(status.expect("git").success());
    governed.append(1);
    let pushed = EvidenceBranch::open(governed.path(), BRANCH)
        .expect("branch")
        .with_remote_credentials(ssh(&client_key, &known))
        .push(&server.url(&evidence))
        .expect("pushed over SSH");
    assert_eq!(git(&evidence, &["rev-parse", BRANCH]), pushed.commit);
}

/// The GitHub App path end to end: an RS256 JWT signed with the App's key
/// (made by `openssl`) is traded at a local token endpoint
/// (`POST /app/installations/{id}/access_tokens`, the JWT checked against the
/// App's public key) for an installation token, which then fetches the
/// private repository from the real `git http-backend` as `x-access-token`.
/// A JWT signed with another key gets no token; without a token the fetch
/// is refused with the reason; the token never shows in an error.
#[tokio::test(flavor = "multi_thread")]
async fn a_github_app_installation_token_from_a_signed_jwt_fetches_a_private_remote() {
    use forge_support::{FakeAuth, FakeGitHub, OWNER, REPOSITORY, app_key_pair, fixed_clock};
    use ringmaster::forge::{AppPrivateKey, GitHubAuth, GitHubClient, GitHubSettings};
    let keys = TempDir::new().expect("keys");
    let (private_key, public_key) = app_key_pair(keys.path());
    let github = FakeGitHub::start(
        OWNER,
        REPOSITORY,
        FakeAuth::App {
            app_id: 42,
            installation_id: 7,
            public_key_pem: public_key,
            token_lifetime: chrono::Duration::hours(1),
        },
    )
    .await;
    let client_with = |key: &str| {
        GitHubClient::new(
            &GitHubSettings {
                api_base_url: github.url.clone(),
                owner: OWNER.into(),
                repository: REPOSITORY.into(),
                auth: GitHubAuth::App {
                    app_id: 42,
                    installation_id: 7,
                    private_key: AppPrivateKey::new(key),
                },
            },
            fixed_clock(),
        )
        .expect("client")
    };
    let server = GitServer::start().await;
    let governed = Governed::new();
    let url = server.repository("tenant.git", Some(governed.path()));
    let expected = git(governed.path(), &["rev-parse", "main"]);
    let state = TempDir::new().expect("state");
    let mirror = ringmaster::source::remote::open_mirror(&url, &state.path().join("m.git"), "main")
        .expect("mirror");
    let credentials = GitCredentials::new(GitAuth::GitHubApp);

    // No token minted yet: refused, saying why.
    let error = ringmaster::source::remote::fetch(&mirror, &credentials)
        .expect_err("no token yet")
        .to_string();
    assert!(
        error.contains("no GitHub App installation token"),
        "{error}"
    );
    assert_eq!(mirror_head(&mirror), None);

    // A JWT signed with another key: the endpoint refuses it, no token.
    let other = TempDir::new().expect("other keys");
    let (wrong_key, _) = app_key_pair(other.path());
    client_with(&wrong_key)
        .installation_token()
        .await
        .expect_err("a JWT signed with the wrong key");
    assert_eq!(github.issued_tokens(), 0);

    // The App's key: the endpoint checks the JWT and issues a token.
    let token = client_with(&private_key)
        .installation_token()
        .await
        .expect("an installation token");
    assert_eq!(github.issued_tokens(), 1);
    let issued = github.last_issued_token().expect("issued");
    assert_eq!(token.expose(), issued);

    // GitHub's Git server takes the token its API issued; ours is told so.
    // Until then the token is refused, and the error does not show it.
    credentials.set_app_token(Ok(token));
    let error = ringmaster::source::remote::fetch(&mirror, &credentials)
        .expect_err("a token the server does not know")
        .to_string();
    assert!(error.contains("refused the GitHub App"), "{error}");
    assert!(!error.contains(&issued), "the token leaked: {error}");
    server.accept_token(&issued);
    let before = server.seen().len();
    ringmaster::source::remote::fetch(&mirror, &credentials).expect("fetched with the App token");
    assert_eq!(mirror_head(&mirror), Some(expected));
    let seen = server.seen()[before..].to_vec();
    assert!(
        seen.iter()
            .any(|seen| seen.authorised && seen.path.ends_with("git-upload-pack")),
        "the pack was fetched with the installation token: {seen:?}"
    );
}
