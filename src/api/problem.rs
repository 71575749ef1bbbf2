//! One error type for every `/api/v1` answer that is not a success: a
//! status, a short machine code and a reason for people, with the request id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiProblem {
    pub status: StatusCode,
    /// `unauthenticated`, `forbidden`, `not_found`, `bad_request`,
    /// `rate_limited`, `unavailable`, `internal`.
    pub error: &'static str,
    pub reason: String,
    /// Seconds, for `429`.
    pub retry_after: Option<u64>,
}

/// The JSON body of a problem.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// A machine code: unauthenticated, forbidden, not_found, bad_request,
    /// conflict, rate_limited, unavailable, internal.
    pub error: String,
    /// Why, for people.
    pub reason: String,
}

impl ApiProblem {
    fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> ApiProblem {
        ApiProblem {
            status,
            error,
            reason: reason.into(),
            retry_after: None,
        }
    }
    pub fn unauthenticated(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::UNAUTHORIZED, "unauthenticated", reason)
    }
    pub fn forbidden(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::FORBIDDEN, "forbidden", reason)
    }
    pub fn not_found(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::NOT_FOUND, "not_found", reason)
    }
    pub fn bad_request(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }
    pub fn conflict(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::CONFLICT, "conflict", reason)
    }
    pub fn unavailable(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
    }
    pub fn internal(reason: impl Into<String>) -> ApiProblem {
        ApiProblem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", reason)
    }
    pub fn rate_limited(reason: impl Into<String>, retry_after: u64) -> ApiProblem {
        ApiProblem {
            retry_after: Some(retry_after.max(1)),
            ..ApiProblem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", reason)
        }
    }
}

impl From<crate::store::StoreError> for ApiProblem {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "state store failed");
        ApiProblem::internal(format!("state store: {error}"))
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            error: self.error.to_owned(),
            reason: self.reason.clone(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let description: String = self
                .reason
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
                .take(200)
                .collect();
            if let Ok(value) = HeaderValue::from_str(&format!(
                "Bearer error=\"invalid_token\", error_description=\"{description}\""
            )) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}
