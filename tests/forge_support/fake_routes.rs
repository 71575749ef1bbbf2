//! The fake GitHub's request handling: authentication as GitHub does it
//! (token, or App JWT → installation token), scripted rate limits, the
//! endpoints with GitHub's validation rules, and rate-limit headers.

use super::fake_github::{FakeAuth, GitHubState, RecordedRequest, Scripted, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

fn github_error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_owned)
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn page(items: Vec<Value>, query: &str) -> Value {
    let per_page: usize = query_value(query, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let page: usize = query_value(query, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Value::Array(
        items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect(),
    )
}

fn verify_app_jwt(token: &str, app_id: u64, public_key_pem: &str) -> Result<(), String> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    // GitHub takes the App id as a number in `iss`; jsonwebtoken only knows string issuers.
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    let iss_matches = claims["iss"] == json!(app_id) || claims["iss"] == json!(app_id.to_string());
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if !iss_matches {
        return Err(format!("iss {} is not the App id", claims["iss"]));
    }
    if lifetime > 600 + 60 {
        return Err("GitHub App JWTs may live at most ten minutes".into());
    }
    Ok(())
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let (status, value, spent) = {
        let mut state = shared.state.lock().unwrap();
        state.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
        });
        state.remaining -= 1;
        if state.outage {
            let (s, v) = github_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
            drop(state);
            shared.version.send_modify(|v| *v += 1);
            return (s, axum::Json(v)).into_response();
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        respond(&shared, &mut state, &method, &path, &query, &headers, &body)
    };
    shared.version.send_modify(|v| *v += 1);
    let mut response = (status, axum::Json(value)).into_response();
    let normal_remaining = shared.state.lock().unwrap().remaining;
    let (remaining, reset_in, retry_after) = match spent {
        None => (normal_remaining, 3600, None),
        Some((-1, retry_after)) => (normal_remaining, 3600, Some(retry_after)),
        Some((remaining, reset_in)) => (remaining, reset_in, None),
    };
    let mut set = |name: &'static str, value: String| {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("x-ratelimit-limit", "5000".into());
    set("x-ratelimit-remaining", remaining.to_string());
    set(
        "x-ratelimit-reset",
        (Utc::now() + Duration::seconds(reset_in))
            .timestamp()
            .to_string(),
    );
    set("x-ratelimit-resource", "core".into());
    if let Some(seconds) = retry_after {
        set("retry-after", seconds.to_string());
    }
    response
}

/// The response; the third value overrides the rate-limit headers:
/// `(remaining, reset_in)`, or `(-1, retry_after)` for a secondary limit.
fn respond(
    shared: &Shared,
    state: &mut GitHubState,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (StatusCode, Value, Option<(i64, i64)>) {
    let Some(local) = path.strip_prefix(&shared.prefix) else {
        let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
        return (s, v, None);
    };
    let segments: Vec<&str> = local.trim_matches('/').split('/').collect();
    let token = bearer(headers);
    // Authentication first, as GitHub does.
    match (&shared.auth, segments.as_slice()) {
        (
            FakeAuth::App {
                app_id,
                installation_id,
                public_key_pem,
                token_lifetime,
            },
            ["app", "installations", id, "access_tokens"],
        ) => {
            if *method != Method::POST || id.parse::<u64>().ok() != Some(*installation_id) {
                let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
                return (s, v, None);
            }
            if let Err(error) = token
                .as_deref()
                .ok_or("no JWT".to_owned())
                .and_then(|t| verify_app_jwt(t, *app_id, public_key_pem))
            {
                let (s, v) = github_error(
                    StatusCode::UNAUTHORIZED,
                    &format!("A JSON web token could not be decoded: {error}"),
                );
                return (s, v, None);
            }
            state.next_id += 1;
            let issued = format!("ghs_fake{}", state.next_id);
            let expires_at = Utc::now() + *token_lifetime;
            state.issued_tokens.push((issued.clone(), expires_at));
            return (
                StatusCode::CREATED,
                json!({
                    "token": issued,
                    "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "permissions": {"checks": "write", "pull_requests": "write", "contents": "read", "statuses": "write"},
                    "repository_selection": "selected",
                }),
                None,
            );
        }
        (FakeAuth::App { .. }, _) => {
            let now = Utc::now();
            let valid = state
                .issued_tokens
                .iter()
                .any(|(t, expires)| Some(t) == token.as_ref() && *expires > now);
            if !valid {
                let (s, v) = github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
                return (s, v, None);
            }
        }
        (FakeAuth::Token(expected), _) => {
            if token.as_ref() != Some(expected) {
                let (s, v) = github_error(StatusCode::UNAUTHORIZED, "Bad credentials");
                return (s, v, None);
            }
        }
    }
    let mut spent = None;
    if let Some(scripted) = state.scripted.pop_front() {
        match scripted {
            Scripted::SecondaryLimit { retry_after } => {
                let (s, v) = github_error(
                    StatusCode::FORBIDDEN,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                );
                return (s, v, Some((-1, retry_after as i64)));
            }
            Scripted::PrimaryLimit { reset_in_seconds } => {
                let (s, v) = github_error(
                    StatusCode::FORBIDDEN,
                    "API rate limit exceeded for installation ID 1.",
                );
                return (s, v, Some((0, reset_in_seconds)));
            }
            Scripted::QuotaSpent { reset_in_seconds } => spent = Some((0, reset_in_seconds)),
        }
    }
    let [repos, owner, name, rest @ ..] = segments.as_slice() else {
        let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
        return (s, v, spent);
    };
    if *repos != "repos" || *owner != shared.owner || *name != shared.repository {
        let (s, v) = github_error(StatusCode::NOT_FOUND, "Not Found");
        return (s, v, spent);
    }
    let number = |text: &str| text.parse::<u64>().ok();
    let (status, value) = match (method.clone(), rest) {
        (Method::GET, ["pulls"]) => {
            let wanted_state = query_value(query, "state").unwrap_or("open");
            let base = query_value(query, "base");
            let items = state
                .pulls
                .values()
                .filter(|p| wanted_state == "all" || p["state"] == wanted_state)
                .filter(|p| base.is_none_or(|b| p["base"]["ref"] == b))
                .cloned()
                .collect();
            (StatusCode::OK, page(items, query))
        }
        (Method::GET, ["pulls", n]) => match number(n).and_then(|n| state.pulls.get(&n)) {
            Some(pull) => (StatusCode::OK, pull.clone()),
            None => github_error(StatusCode::NOT_FOUND, "Not Found"),
        },
        (Method::GET, ["pulls", n, "reviews"]) => {
            let items = number(n)
                .and_then(|n| state.reviews.get(&n))
                .cloned()
                .unwrap_or_default();
            (StatusCode::OK, page(items, query))
        }
        (Method::GET, ["commits", sha, "pulls"]) => {
            let items: Vec<Value> = state
                .pulls
                .values()
                .filter(|p| p["merge_commit_sha"] == *sha || p["head"]["sha"] == *sha)
                .cloned()
                .collect();
            (StatusCode::OK, Value::Array(items))
        }
        (Method::POST, ["statuses", sha]) => {
            let valid_state = ["error", "failure", "pending", "success"]
                .iter()
                .any(|s| body["state"] == *s);
            let description_ok = body["description"]
                .as_str()
                .is_none_or(|d| d.chars().count() <= 140);
            if !valid_state || !description_ok {
                github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
            } else {
                state.next_id += 1;
                let status = json!({
                    "id": state.next_id,
                    "state": body["state"],
                    "description": body["description"],
                    "target_url": body["target_url"],
                    "context": body.get("context").cloned().unwrap_or(json!("default")),
                    "created_at": "2026-11-30T12:00:00Z",
                });
                state.statuses.push((sha.to_string(), status.clone()));
                (StatusCode::CREATED, status)
            }
        }
        (Method::POST, ["check-runs"]) => {
            let conclusion_needs_completed =
                body.get("conclusion").is_some() && body["status"] != "completed";
            let summary_too_long = body["output"]["summary"]
                .as_str()
                .is_some_and(|s| s.chars().count() > 65_535);
            if body["name"].as_str().is_none()
                || body["head_sha"].as_str().is_none()
                || conclusion_needs_completed
                || summary_too_long
            {
                github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed")
            } else {
                state.next_id += 1;
                let mut run = body.clone();
                run["id"] = json!(state.next_id);
                if run.get("status").is_none() {
                    run["status"] = json!("queued");
                }
                state.check_runs.push(run.clone());
                (StatusCode::CREATED, run)
            }
        }
        (Method::GET, ["issues", n, "comments"]) => {
            let n = number(n).unwrap_or(0);
            let items = state
                .comments
                .iter()
                .filter(|(i, _)| *i == n)
                .map(|(_, c)| c.clone())
                .collect();
            (StatusCode::OK, page(items, query))
        }
        (Method::POST, ["issues", n, "comments"]) => match (number(n), body["body"].as_str()) {
            (Some(n), Some(text)) if text.chars().count() <= 65_536 => {
                state.next_id += 1;
                let comment = json!({
                    "id": state.next_id,
                    "body": text,
                    "user": {"login": "ringmaster[bot]", "type": "Bot"},
                    "html_url": format!("https://github.com/{}/{}/pull/{n}#issuecomment-{}", shared.owner, shared.repository, state.next_id),
                    "created_at": "2026-11-30T12:00:00Z",
                    "updated_at": "2026-11-30T12:00:00Z",
                    "edits": 0,
                });
                state.comments.push((n, comment.clone()));
                (StatusCode::CREATED, comment)
            }
            _ => github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
        },
        (Method::PATCH, ["issues", "comments", id]) => {
            let id = number(id).unwrap_or(0);
            match (
                state.comments.iter_mut().find(|(_, c)| c["id"] == id),
                body["body"].as_str(),
            ) {
                (Some((_, comment)), Some(text)) => {
                    comment["body"] = json!(text);
                    comment["edits"] = json!(comment["edits"].as_u64().unwrap_or(0) + 1);
                    (StatusCode::OK, comment.clone())
                }
                (None, _) => github_error(StatusCode::NOT_FOUND, "Not Found"),
                (_, None) => github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed"),
            }
        }
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    };
    (status, value, spent)
}
