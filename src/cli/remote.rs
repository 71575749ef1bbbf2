//! `status`, `hold`, `resume`, `rollback` and `events` with `--server URL`:
//! the same commands as clients of the control plane's `/api/v1`,
//! authenticated with a bearer token (`--token-file` or
//! `$RINGMASTER_TOKEN`) or a client certificate (`--client-cert`,
//! `--client-key`). Without `--server` they read and write the local state
//! directory, where whoever can write it is an admin.

use super::Format;
use crate::api::v1::view::IntentView;
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Environment variable holding an API bearer token.
pub const TOKEN_VARIABLE: &str = "RINGMASTER_TOKEN";

/// Where the API is and how to authenticate to it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Use the control plane's API at this URL (e.g.
    /// https://ringmaster.contoso.com:8443) instead of a local state directory.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// File holding an OIDC bearer token for the API [or $RINGMASTER_TOKEN].
    #[arg(long, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate to trust for the server (besides the system's roots).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_ca: Option<PathBuf>,
    /// PEM client certificate (mutual TLS), with --client-key.
    #[arg(long, value_name = "FILE", requires_all = ["server", "client_key"])]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// An authenticated API client.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let Some(server) = &args.server else {
            bail!("--server is needed");
        };
        let base = server.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base).with_context(|| format!("--server {base:?}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--server {base:?}: use an http(s) URL");
        }
        let token = match &args.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("read --token-file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var(TOKEN_VARIABLE)
                .ok()
                .map(|token| token.trim().to_owned()),
        }
        .filter(|token| !token.is_empty());
        if token.is_none() && args.client_cert.is_none() {
            bail!(
                "no credentials for {base}: pass --token-file FILE (or set ${TOKEN_VARIABLE}), or --client-cert and --client-key"
            );
        }
        if token.is_some() && url.scheme() == "http" && !loopback(&url) {
            bail!("refusing to send a bearer token over plain http to {base}: use https");
        }
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("ringmaster-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &args.server_ca {
            let pem = std::fs::read(path)
                .with_context(|| format!("read --server-ca {}", path.display()))?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("--server-ca {}", path.display()))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            let mut pem = std::fs::read(cert)
                .with_context(|| format!("read --client-cert {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key)
                    .with_context(|| format!("read --client-key {}", key.display()))?,
            );
            builder = builder.identity(
                reqwest::Identity::from_pem(&pem).context("--client-cert / --client-key")?,
            );
        }
        Ok(Client {
            base,
            token,
            http: builder.build()?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.runtime.block_on(async {
            let response = request.send().await.context("the API did not answer")?;
            let status = response.status();
            let request_id = response
                .headers()
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            let bytes = response.bytes().await?;
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(
                |_| json!({"reason": String::from_utf8_lossy(&bytes).chars().take(500).collect::<String>()}),
            );
            if !status.is_success() {
                bail!(
                    "the API refused ({status}, request {request_id}): {}",
                    body["reason"].as_str().unwrap_or("no reason given")
                );
            }
            Ok(body)
        })
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
    }

    /// Every item of a paged list (`items`, `next_cursor`).
    pub fn all(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = query.to_vec();
            query.push(("limit", "1000".into()));
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.clone()));
            }
            let page = self.get(path, &query)?;
            if let Some(Value::Array(page_items)) = page.get("items") {
                items.extend(page_items.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(next) if Some(next) != cursor.as_deref() => cursor = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
    }
}

fn loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// `status --server`: the intents the caller may read, as local `status` prints them.
pub(super) fn status(args: &ServerArgs, format: Format) -> anyhow::Result<ExitCode> {
    let client = Client::new(args)?;
    let intents: Vec<IntentView> = client
        .all("/api/v1/intents", &[])?
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .context("the API's intents")?;
    super::status::print_status(&intents, format)?;
    Ok(ExitCode::SUCCESS)
}

/// `hold|resume|rollback --server`.
pub(super) fn operator(
    args: &ServerArgs,
    intent: &str,
    action: &str,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason must say why (it goes into the audit trail)");
    }
    let client = Client::new(args)?;
    let path = format!(
        "/api/v1/intents/{}/{action}",
        url_segment(intent).context("the intent id")?
    );
    let answer = client.post(&path, &json!({"reason": reason}))?;
    println!(
        "{} (correlation id {})",
        answer["detail"].as_str().unwrap_or("queued"),
        answer["correlation_id"].as_str().unwrap_or("-")
    );
    Ok(ExitCode::SUCCESS)
}

/// `events --server`: the events the caller may read.
pub(super) fn events(
    args: &ServerArgs,
    intent: Option<String>,
    correlation_id: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(args)?;
    let mut query = Vec::new();
    if let Some(intent) = intent {
        query.push(("intent", intent));
    }
    if let Some(id) = correlation_id {
        query.push(("correlation_id", id));
    }
    let events = client.all("/api/v1/events", &query)?;
    match format {
        Format::Json | Format::Github => println!("{}", serde_json::to_string_pretty(&events)?),
        Format::Human => print!("{}", super::daemon::events_table(&events)),
    }
    Ok(ExitCode::SUCCESS)
}

/// An intent id as one URL path segment (ids are `[a-z0-9.-]`; anything
/// else is refused rather than sent).
fn url_segment(id: &str) -> anyhow::Result<&str> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'))
        || id == "."
        || id == ".."
    {
        bail!("{id:?} is not an intent id");
    }
    Ok(id)
}
