//! A real authenticated Git server for tests: `git http-backend` (smart
//! HTTP, fetch and push) behind a small HTTP server on 127.0.0.1:0 that
//! demands Basic auth with one token — without it every request is answered
//! 401, as GitHub answers a private repository — and that can be taken down
//! (every request answered 503) to test outages. It records every request.

#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use ringmaster::source::credentials::TOKEN_USERNAME;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt as _;

pub const TOKEN: &str = "ghs_s3cr3t-installation-token";
pub const WRONG: &str = "ghp_wr0ng-token-value";

/// One request the server received: its path and whether it carried the
/// right credentials.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorised: bool,
}

struct ServerState {
    root: PathBuf,
    /// The `Authorization` values accepted: the fixed token's, and any
    /// token added with [`GitServer::accept_token`].
    expected: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
    down: AtomicBool,
}

/// `git http-backend` behind Basic auth on 127.0.0.1:0.
pub struct GitServer {
    root: TempDir,
    pub base: String,
    state: Arc<ServerState>,
}

impl GitServer {
    pub async fn start() -> GitServer {
        let root = TempDir::new().expect("root");
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_USERNAME}:{TOKEN}"));
        let state = Arc::new(ServerState {
            root: root.path().to_path_buf(),
            expected: Mutex::new(vec![format!("Basic {credentials}")]),
            seen: Mutex::new(Vec::new()),
            down: AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .fallback(serve_git)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        GitServer {
            root,
            base: format!("http://{address}"),
            state,
        }
    }

    /// A bare repository `name` served at `{base}/{name}`, cloned from
    /// `source` (or empty).
    pub fn repository(&self, name: &str, source: Option<&Path>) -> String {
        let path = self.root.path().join(name);
        let status = match source {
            Some(source) => Command::new("git")
                .args(["clone", "-q", "--bare"])
                .arg(source)
                .arg(&path)
                .status(),
            None => Command::new("git")
                .args(["init", "-q", "--bare"])
                .arg(&path)
                .status(),
        };
        assert!(status.expect("git").success());
        format!("{}/{name}", self.base)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests received so far whose path starts with `/{repository}`.
    pub fn requests_to(&self, repository: &str) -> usize {
        let prefix = format!("/{repository}");
        self.seen()
            .iter()
            .filter(|seen| seen.path.starts_with(&prefix))
            .count()
    }

    /// Accepts `token` too (with the token user name), as GitHub's Git
    /// server accepts an installation token its API issued.
    pub fn accept_token(&self, token: &str) {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_USERNAME}:{token}"));
        self.state
            .expected
            .lock()
            .unwrap()
            .push(format!("Basic {credentials}"));
    }

    /// Takes the server down (every request answered 503) or back up.
    pub fn set_outage(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

fn unauthorised() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
        .body(Body::from("authentication required\n"))
        .expect("response")
}

/// The CGI gateway to `git http-backend`, after the credentials check.
async fn serve_git(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let authorised = header_text("authorization")
        .is_some_and(|value| state.expected.lock().unwrap().contains(&value));
    state.seen.lock().unwrap().push(Seen {
        path: parts.uri.path().to_owned(),
        authorised,
    });
    if state.down.load(Ordering::SeqCst) {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Body::from("down for maintenance\n"))
            .expect("response");
    }
    if !authorised {
        return unauthorised();
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", TOKEN_USERNAME)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(kind) = header_text("content-type") {
        command.env("CONTENT_TYPE", kind);
    }
    if let Some(encoding) = header_text("content-encoding") {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = header_text("git-protocol") {
        command.env("GIT_PROTOCOL", protocol);
    }
    let mut child = command.spawn().expect("git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.expect("http-backend output");
    let _ = writer.await;
    let text = output.stdout;
    let split = text
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| (at, at + 4))
        .or_else(|| {
            text.windows(2)
                .position(|window| window == b"\n\n")
                .map(|at| (at, at + 2))
        })
        .unwrap_or_else(|| {
            panic!(
                "http-backend answered no headers: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&text[..split.0]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response
        .body(Body::from(text[split.1..].to_vec()))
        .expect("response")
}
