//! Contract tests: every request a connector sends in the conformance suite,
//! and every answer its simulator gives, checked against the vendor's own
//! API description (`ringmaster::planes::apispec`, fixtures under
//! `tests/fixtures/specs/`).
//!
//! A [`Recorder`] is a real HTTP proxy on `127.0.0.1:0` between the
//! connector and the simulator: the harness points the connector at it, it
//! forwards every request unchanged (the `Host` header too, so paging links
//! come back through it) and records the exchange. When the harness is
//! dropped at the end of a check, the recorder fails the check if any
//! request is not an operation of the description, names an undeclared
//! property, filter or parameter, is deprecated, or if any answer does not
//! fit the declared responses. Paths no vendor description covers (a token
//! endpoint, blob storage) are named with the reason when the recorder is
//! made.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ringmaster::planes::apispec::{self, Description};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// One request and, when it came, its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub status: Option<u16>,
    pub response_content_type: Option<String>,
    pub response_body: Vec<u8>,
}

/// Paths outside every vendor description, and why.
#[derive(Debug, Clone, Copy)]
pub struct Unchecked {
    /// Matches a path that contains it.
    pub contains: &'static str,
    pub reason: &'static str,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

/// The proxy and what it saw.
pub struct Recorder {
    address: SocketAddr,
    /// A path prefix the service is mounted under (`/api/v3` on GitHub
    /// Enterprise Server), removed before a path is checked.
    mount: String,
    /// Whether answers are checked too (they are for the planes' simulators;
    /// the forge tests' fake GitHub answers only the fields ringmaster reads).
    answers: bool,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    descriptions: Vec<&'static Description>,
    unchecked: Vec<Unchecked>,
}

/// What checking the recorded exchanges found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Operation ids checked, per description name.
    pub operations: BTreeSet<(String, String)>,
    /// Requests outside every description, with the reason.
    pub unchecked: BTreeSet<String>,
    pub violations: Vec<String>,
}

impl Recorder {
    /// Starts the proxy in front of `upstream` (the simulator's address).
    pub async fn start(
        upstream: SocketAddr,
        descriptions: Vec<&'static Description>,
        unchecked: &[Unchecked],
    ) -> Recorder {
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let proxy = Proxy {
            upstream: format!("http://{upstream}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            exchanges: Arc::clone(&exchanges),
        };
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the recorder");
        let address = listener.local_addr().expect("recorder address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder {
            address,
            mount: String::new(),
            answers: true,
            exchanges,
            descriptions,
            unchecked: unchecked.to_vec(),
        }
    }

    /// Checks paths below `mount` as the description's own.
    pub fn mounted_at(mut self, mount: &str) -> Recorder {
        self.mount = mount.trim_end_matches('/').to_string();
        self
    }

    /// Checks the requests only.
    pub fn requests_only(mut self) -> Recorder {
        self.answers = false;
        self
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every recorded exchange checked against the descriptions.
    pub fn findings(&self) -> Findings {
        let mut findings = Findings::default();
        for mut exchange in self.exchanges() {
            if !self.mount.is_empty()
                && let Some(rest) = exchange.path.strip_prefix(&self.mount)
            {
                exchange.path = rest.to_string();
            }
            let request = apispec::Request {
                method: &exchange.method,
                path: &exchange.path,
                query: exchange.query.as_deref(),
                content_type: exchange.content_type.as_deref(),
                body: &exchange.body,
            };
            let Some(description) = self
                .descriptions
                .iter()
                .find(|description| description.covers(&exchange.path))
            else {
                match self
                    .unchecked
                    .iter()
                    .find(|rule| exchange.path.contains(rule.contains))
                {
                    Some(rule) => {
                        findings.unchecked.insert(format!(
                            "{} {}: {}",
                            exchange.method, rule.contains, rule.reason
                        ));
                    }
                    None => findings.violations.push(format!(
                        "{} {}: no vendor description covers this path",
                        exchange.method, exchange.path
                    )),
                }
                continue;
            };
            let what = format!(
                "{} {}{}",
                exchange.method,
                exchange.path,
                exchange
                    .query
                    .as_deref()
                    .map(|query| format!("?{query}"))
                    .unwrap_or_default()
            );
            match description.check_request(&request) {
                Err(violation) => findings.violations.push(format!(
                    "request {what} against {}: {violation}",
                    description.name
                )),
                Ok(operation) => {
                    if let Some(status) = exchange.status.filter(|_| self.answers)
                        && let Err(violation) = description.check_response(
                            &operation,
                            status,
                            exchange.response_content_type.as_deref(),
                            &exchange.response_body,
                        )
                    {
                        findings.violations.push(format!(
                            "answer to {what} against {}: {violation}",
                            description.name
                        ));
                    }
                    findings
                        .operations
                        .insert((description.name.to_string(), operation.id));
                }
            }
        }
        findings
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let findings = self.findings();
        if std::env::var_os("RINGMASTER_CONTRACT_REPORT").is_some() {
            for (description, operation) in &findings.operations {
                eprintln!("contract checked: {description} {operation}");
            }
            for unchecked in &findings.unchecked {
                eprintln!("contract unchecked: {unchecked}");
            }
        }
        assert!(
            findings.violations.is_empty(),
            "requests or answers the vendor's API description does not allow:\n  {}",
            findings.violations.join("\n  ")
        );
    }
}

fn text_header(headers: &axum::http::HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let index = {
        let mut exchanges = proxy
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        exchanges.push(Exchange {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: text_header(&parts.headers, header::CONTENT_TYPE),
            body: body.to_vec(),
            status: None,
            response_content_type: None,
            response_body: Vec::new(),
        });
        exchanges.len() - 1
    };
    let target = format!(
        "{}{}{}",
        proxy.upstream,
        path,
        query
            .as_deref()
            .map(|query| format!("?{query}"))
            .unwrap_or_default()
    );
    let mut upstream = proxy
        .client
        .request(parts.method.clone(), &target)
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONNECTION {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(_) => return (StatusCode::BAD_GATEWAY, "recorder: upstream failed").into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    {
        let mut exchanges = proxy
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(exchange) = exchanges.get_mut(index) {
            exchange.status = Some(status.as_u16());
            exchange.response_content_type = text_header(&headers, header::CONTENT_TYPE);
            exchange.response_body = bytes.to_vec();
        }
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
            && name != header::CONNECTION
        {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}
