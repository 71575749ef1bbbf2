//! A synchronous HTTP exchange for the object store, callable from any
//! context: plain threads, the daemon's async tasks, or the CLI.
//!
//! One worker thread owns a current-thread tokio runtime and one `reqwest`
//! client (so connections are reused); callers hand it a request over a
//! channel and wait for the answer. The runtime lives and dies on the
//! worker, so dropping the store inside an async context is fine (a tokio
//! runtime may not be dropped there), and a caller never needs a runtime of
//! its own.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

/// One request: method, presigned URL, headers (all of them signed), body.
pub(super) struct Request {
    pub method: reqwest::Method,
    pub url: url::Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The answer: status, the headers the store code reads, body.
pub(super) struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

type Job = (Request, mpsc::Sender<Result<Response, String>>);

/// The worker's end of the channel; dropping it stops the worker.
pub(super) struct HttpWorker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// Connect, and whole-request, time limits: an unreachable store must fail
/// (and block publishing) promptly, never hang the daemon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpWorker {
    pub fn start() -> Result<HttpWorker, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Keep redirects off: a presigned URL is for one host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ringmaster-object-store".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        for (_, reply) in receiver {
                            let _ = reply.send(Err(format!("no async runtime: {error}")));
                        }
                        return;
                    }
                };
                for (request, reply) in receiver {
                    let answer = runtime.block_on(exchange(&client, request));
                    let _ = reply.send(answer);
                }
            })
            .map_err(|error| format!("cannot start the object store thread: {error}"))?;
        Ok(HttpWorker {
            jobs: Mutex::new(sender),
        })
    }

    /// Sends `request` and waits for the answer; `Err` is a transport
    /// failure (connection refused, timeout, reset), with no URL in it (a
    /// presigned URL carries a signature).
    pub fn send(&self, request: Request) -> Result<Response, String> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send((request, reply))
            .map_err(|_| "the object store thread has stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the object store thread has stopped".to_string())?
    }
}

async fn exchange(client: &reqwest::Client, request: Request) -> Result<Response, String> {
    let is_put = request.method == reqwest::Method::PUT;
    let mut builder = client.request(request.method, request.url);
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    // reqwest leaves Content-Length out for an empty body; S3 wants it on
    // every PUT (411 Length Required otherwise).
    if request.body.is_empty() && is_put {
        builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
    }
    let response = builder
        .body(request.body)
        .send()
        .await
        .map_err(|error| describe(&error))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|error| describe(&error))?
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A transport error without its URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut reason = kind.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}
