//! `kit`: what every HTTP simulator shares, written once: the faults a test
//! queues and how they are played (throttling with `Retry-After`, server
//! error storms, rejections, answers held until shutdown, answers lost after
//! the request was applied), the request count, the bearer token, the screen
//! against the vendor's API description, the query of a next-page link, and
//! serving on a listener until a shutdown signal.
//!
//! A simulator keeps what is its plane's own: its paths and bodies, its error
//! shapes (through [`Answers`]), which requests can lose their answer (its
//! `LostRequest`), how it pages, and how it authenticates beyond a bearer
//! token (Landscape's signatures, Jamf's connection cap).

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A failure of the next request(s), as a test or a user asks for it. `L`
/// names the plane's requests whose answer can be lost (its `LostRequest`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault<L> {
    /// HTTP 429 in the plane's words, with `Retry-After` when given.
    Throttle { retry_after: Option<Duration> },
    /// The next `count` requests answer `status` (500, 502, 503, 504).
    ServerErrors { status: u16, count: u32 },
    /// The next request is answered only at shutdown (after any client timeout).
    Slow,
    /// The next request answers `status` with the plane's error body.
    Reject { status: u16 },
    /// The next request of that kind is applied, then answered only at shutdown.
    LoseAnswer(L),
}

/// The faults waiting for the next requests, and how many requests came.
#[derive(Debug)]
pub struct Faults<L> {
    queued: VecDeque<Fault<L>>,
    lost: VecDeque<L>,
    requests: u64,
}

impl<L> Default for Faults<L> {
    fn default() -> Faults<L> {
        Faults {
            queued: VecDeque::new(),
            lost: VecDeque::new(),
            requests: 0,
        }
    }
}

/// What the kit decided for one request: a fault to play instead of it, or
/// whether its answer is lost once it was applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawn<L> {
    pub fault: Option<Fault<L>>,
    pub lose: bool,
}

impl<L: Copy> Faults<L> {
    /// Queues a fault for the next request(s), or a lost answer for the next
    /// request of its kind.
    pub fn inject(&mut self, fault: Fault<L>) {
        match fault {
            Fault::LoseAnswer(kind) => self.lost.push_back(kind),
            other => self.queued.push_back(other),
        }
    }

    /// Counts one request and draws what happens to it: the next queued fault
    /// (a storm of server errors is played one request at a time); when there
    /// is none, whether the next lost answer is this request's (`is_this`
    /// says whether a lost request names it).
    pub fn draw(&mut self, is_this: impl FnOnce(&L) -> bool) -> Drawn<L> {
        self.requests += 1;
        let fault = match self.queued.front_mut() {
            Some(Fault::ServerErrors { status, count }) if *count > 1 => {
                *count -= 1;
                Some(Fault::ServerErrors {
                    status: *status,
                    count: 1,
                })
            }
            Some(_) => self.queued.pop_front(),
            None => None,
        };
        let lose = fault.is_none() && self.lost.front().is_some_and(is_this);
        if lose {
            self.lost.pop_front();
        }
        Drawn { fault, lose }
    }

    /// Requests drawn so far (those that reached the fault layer).
    pub fn requests(&self) -> u64 {
        self.requests
    }
}

/// How a plane words the answers the kit gives on its behalf.
pub trait Answers {
    /// A 429 (the kit adds `Retry-After`).
    fn throttled(&self, retry_after: Option<Duration>) -> Response;
    /// A server error of a storm.
    fn server_error(&self, status: StatusCode) -> Response;
    /// A request refused by an injected fault.
    fn rejected(&self, status: StatusCode) -> Response;
    /// The answer of a held request, given only when the simulator stops.
    fn shutting_down(&self) -> Response;
}

/// Flips to true at shutdown: held (slow or lost) answers are then released
/// so that the server can drain. Clones share it.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown(watch::Sender::new(false))
    }
}

impl Shutdown {
    /// Waits until the simulator shuts down (how a held answer never comes).
    pub async fn held(&self) {
        let mut receiver = self.0.subscribe();
        // An error means the sender is gone: the simulator is gone too.
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }

    fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Plays a drawn fault in the plane's words.
pub async fn play<L>(fault: Fault<L>, answers: &impl Answers, shutdown: &Shutdown) -> Response {
    match fault {
        Fault::Throttle { retry_after } => {
            let mut response = answers.throttled(retry_after);
            if let Some(delay) = retry_after
                && let Ok(value) = HeaderValue::from_str(&format!("{}", delay.as_secs_f64()))
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Fault::ServerErrors { status, .. } => answers
            .server_error(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)),
        Fault::Reject { status } => {
            answers.rejected(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        }
        Fault::Slow | Fault::LoseAnswer(_) => {
            shutdown.held().await;
            answers.shutting_down()
        }
    }
}

/// The answer of a request that was applied: held until shutdown when it is
/// to be lost and succeeded, as it is otherwise.
pub async fn lose_if_drawn(
    lose: bool,
    response: Response,
    answers: &impl Answers,
    shutdown: &Shutdown,
) -> Response {
    if lose && response.status().is_success() {
        tracing::debug!("simulator applied a request and loses its answer");
        shutdown.held().await;
        return answers.shutting_down();
    }
    response
}

/// The bearer tokens a simulator issued, whether its client's credentials
/// were revoked, and how many token requests came.
#[derive(Debug, Default)]
pub struct Tokens {
    /// Issued tokens; false once expired.
    issued: HashMap<String, bool>,
    revoked: bool,
    requests: u64,
}

impl Tokens {
    /// Counts a request to the token endpoint.
    pub fn count_request(&mut self) {
        self.requests += 1;
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn issue(&mut self, token: &str) {
        self.issued.insert(token.to_string(), true);
    }

    /// Whether `token` was issued and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        self.issued.get(token) == Some(&true)
    }

    /// Every token issued so far expires now.
    pub fn expire_all(&mut self) {
        for valid in self.issued.values_mut() {
            *valid = false;
        }
    }

    /// From now on the client's credentials are refused.
    pub fn revoke_credentials(&mut self) {
        self.revoked = true;
    }

    pub fn credentials_revoked(&self) -> bool {
        self.revoked
    }

    /// Every token issued so far, expired or not.
    pub fn issued(&self) -> impl Iterator<Item = &String> {
        self.issued.keys()
    }
}

/// The bearer token of a request, if it carries one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
}

/// What the vendor's own service refuses (see `planes::apispec`), refused
/// through `refuse(status, code, message)` in the plane's words; the request
/// (its body read back in) when it passes.
pub async fn screen(
    description: &crate::planes::apispec::Description,
    request: Request,
    refuse: impl FnOnce(StatusCode, &'static str, &str) -> Response,
) -> Result<Request, Response> {
    crate::planes::apispec::screen(description, request)
        .await
        .map_err(|violation| {
            let status = StatusCode::from_u16(violation.refused_with.unwrap_or(400))
                .unwrap_or(StatusCode::BAD_REQUEST);
            refuse(status, violation.code, &violation.message)
        })
}

/// The query of a link to another page: the request's parameters except
/// `param` (compared decoded), then `param=value`.
pub fn query_with(raw_query: Option<&str>, param: &str, value: &str) -> String {
    let kept: Vec<&str> = raw_query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            crate::planes::http::percent_decode(pair.split('=').next().unwrap_or_default()) != param
        })
        .collect();
    let mut query = kept.join("&");
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(&format!("{param}={value}"));
    query
}

/// An absolute link on the host the request named (`127.0.0.1` if none).
pub fn absolute_link(headers: &HeaderMap, path: &str, query: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}{path}?{query}")
}

/// Serves `router` on `listener` until `signal` completes; held answers are
/// then released (`shutdown`) so that the server can drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            signal.await;
            shutdown.stop();
        })
        .await
}

/// Binds `127.0.0.1:0`, serves `router` in a background task until the
/// caller's runtime ends, and answers the address.
pub async fn start(
    router: Router,
    shutdown: Shutdown,
    plane: &'static str,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = serve(listener, router, shutdown, std::future::pending()).await {
            tracing::warn!(%error, plane, "simulator stopped");
        }
    });
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::{Drawn, Fault, Faults};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Lost {
        Create,
        Assign,
    }

    #[test]
    fn a_storm_is_played_one_request_at_a_time_then_requests_pass() {
        let mut faults = Faults::<Lost>::default();
        faults.inject(Fault::ServerErrors {
            status: 503,
            count: 2,
        });
        faults.inject(Fault::Slow);
        let one = Some(Fault::ServerErrors {
            status: 503,
            count: 1,
        });
        assert_eq!(faults.draw(|_| true).fault, one);
        assert_eq!(faults.draw(|_| true).fault, one);
        assert_eq!(faults.draw(|_| true).fault, Some(Fault::Slow));
        assert_eq!(
            faults.draw(|_| true),
            Drawn {
                fault: None,
                lose: false
            }
        );
        assert_eq!(faults.requests(), 4);
    }

    #[test]
    fn a_lost_answer_waits_for_its_own_request_and_for_no_fault() {
        let mut faults = Faults::<Lost>::default();
        faults.inject(Fault::LoseAnswer(Lost::Assign));
        faults.inject(Fault::Reject { status: 409 });
        // A fault is played first; the lost answer stays queued.
        let drawn = faults.draw(|lost| *lost == Lost::Assign);
        assert_eq!(drawn.fault, Some(Fault::Reject { status: 409 }));
        assert!(!drawn.lose);
        // Another kind of request does not take it.
        assert!(!faults.draw(|lost| *lost == Lost::Create).lose);
        assert!(faults.draw(|lost| *lost == Lost::Assign).lose);
        assert!(!faults.draw(|lost| *lost == Lost::Assign).lose);
    }
}
