//! Who is calling: authentication for `/api/v1` (and any router put behind
//! [`require_caller`]), as a middleware that leaves a [`Caller`] in the
//! request for handlers and for the authorisation in [`rbac`].
//!
//! In this order:
//! 1. an `Authorization: Bearer` token is validated by [`oidc`] (a header
//!    that is not a bearer token is `401`); without one, a client
//!    certificate verified in the TLS handshake ([`crate::api::tls`]) is
//!    used; with neither, `401`;
//! 2. the identity (the configured claim's value, or the certificate's
//!    names, [`certificate::names`]) is looked up in the principals of the
//!    rules in force ([`crate::api::governed`]): unknown or ambiguous is `403`;
//! 3. the roles are the principal's roles in the repository, the token's
//!    roles claim (`control-plane.<role>`), or only the roles both grant
//!    ([`RoleSource`]); the scope is always the principal's;
//! 4. the per-principal rate limit is taken ([`crate::api::protect`]).

pub mod certificate;
pub mod oidc;
pub mod rbac;

use super::context::ApiContext;
use super::governed::Lookup;
use super::origin::ApiOrigin;
use super::problem::ApiProblem;
use super::protect::RequestId;
use super::tls::ClientInfo;
use crate::model::{Role, Scope};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oidc::{OidcValidator, TokenRefusal};
use rbac::{Action, Holder, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Where a caller's roles come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// The principal's `roles` in `principals/` (reviewed in Git).
    #[default]
    Repository,
    /// The token's roles claim (Entra app roles); certificates have none,
    /// so with this setting a certificate caller holds no role.
    Token,
    /// Only roles granted both in `principals/` and in the token.
    Both,
}

/// How callers authenticate.
#[derive(Debug, Default)]
pub struct Authenticator {
    /// Bearer tokens of this issuer; `None`: no bearer tokens.
    pub oidc: Option<OidcValidator>,
    pub role_source: RoleSource,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Oidc,
    ClientCertificate,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Oidc => "oidc",
            AuthMethod::ClientCertificate => "client_certificate",
        }
    }
}

/// An authenticated caller: a principal of the rules in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub principal_id: String,
    pub method: AuthMethod,
    /// The claim value or certificate name that was matched.
    pub subject: String,
    pub roles: BTreeSet<Role>,
    pub scope: Scope,
    pub address: std::net::SocketAddr,
    pub user_agent: Option<String>,
    pub request_id: String,
}

impl Caller {
    pub fn holder(&self) -> Holder<'_> {
        Holder {
            principal_id: &self.principal_id,
            roles: &self.roles,
            scope: &self.scope,
        }
    }

    /// The role allowing `action` on `target`, or `403` with the reason.
    pub fn authorise(&self, action: Action, target: &Target) -> Result<Role, ApiProblem> {
        rbac::authorise(&self.holder(), action, target).map_err(|refusal| {
            tracing::info!(principal = %self.principal_id, action = action.as_str(), reason = %refusal, "refused");
            ApiProblem::forbidden(refusal.reason)
        })
    }

    /// Whether the caller may read what is in `segment`.
    pub fn may_read(&self, action: Action, segment: Option<&rbac::Segment>) -> bool {
        rbac::may_read(&self.holder(), action, segment)
    }

    /// What the events and evidence record about this caller's write.
    pub fn origin(&self, role: Role) -> ApiOrigin {
        ApiOrigin {
            principal: self.principal_id.clone(),
            authentication: self.method.as_str().to_owned(),
            subject: self.subject.clone(),
            role: rbac::scope_name(role).to_owned(),
            request_id: self.request_id.clone(),
            source_address: self.address.ip().to_string(),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiProblem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiProblem::unauthenticated("no credentials were checked"))
    }
}

fn refusal_problem(refusal: TokenRefusal) -> ApiProblem {
    match refusal {
        TokenRefusal::KeysUnavailable(_) => ApiProblem::unavailable(refusal.to_string()),
        other => ApiProblem::unauthenticated(other.to_string()),
    }
}

fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiProblem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiProblem::unauthenticated("the Authorization header is not text"))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(ApiProblem::unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// Authenticates the request (see the module doc) and leaves a [`Caller`]
/// in its extensions. Use with `axum::middleware::from_fn_with_state`.
pub async fn require_caller(
    State(context): State<Arc<ApiContext>>,
    ConnectInfo(client): ConnectInfo<ClientInfo>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&context, &client, request.headers(), request.extensions()).await {
        Ok(caller) => {
            if let Err(problem) = context.limits.take_principal(&caller.principal_id) {
                return problem.into_response();
            }
            tracing::debug!(principal = %caller.principal_id, method = caller.method.as_str(), "authenticated");
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(problem) => {
            tracing::info!(address = %client.address, reason = %problem.reason, status = %problem.status, "authentication refused");
            problem.into_response()
        }
    }
}

async fn authenticate(
    context: &Arc<ApiContext>,
    client: &ClientInfo,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<Caller, ApiProblem> {
    let request_id = extensions
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|text| text.chars().take(256).collect());
    // 1. credentials
    let (method, subjects, token_roles) = match bearer(headers)? {
        Some(token) => {
            let Some(validator) = &context.authenticator.oidc else {
                return Err(ApiProblem::unauthenticated(
                    "bearer tokens are not accepted here: no OIDC issuer is configured",
                ));
            };
            let verified = validator
                .validate(&token, (context.clock)())
                .await
                .map_err(refusal_problem)?;
            (
                AuthMethod::Oidc,
                vec![verified.subject],
                Some(verified.roles),
            )
        }
        None => match &client.certificate {
            Some(der) => {
                let names = certificate::names(der);
                if names.is_empty() {
                    return Err(ApiProblem::unauthenticated(
                        "the client certificate names no one (no SAN, no CN)",
                    ));
                }
                (AuthMethod::ClientCertificate, names, None)
            }
            None => {
                return Err(ApiProblem::unauthenticated(
                    "no credentials: send `Authorization: Bearer <token>` or a client certificate",
                ));
            }
        },
    };
    // 2. the principal, in the rules in force
    let lookup_subjects = subjects.clone();
    let found = context
        .with_store(move |store, context| {
            let governed = context.governed(store)?;
            let lookup = match method {
                AuthMethod::Oidc => governed.directory.by_oidc_subject(&lookup_subjects[0]),
                AuthMethod::ClientCertificate => {
                    governed.directory.by_certificate_names(&lookup_subjects)
                }
            };
            let principal = match &lookup {
                Lookup::Found(id) => governed
                    .snapshot
                    .principals
                    .get(id)
                    .map(|p| p.value.clone()),
                _ => None,
            };
            Ok((lookup, principal))
        })
        .await?;
    let (principal, subject) = match found {
        (Lookup::Found(id), Some(principal)) => {
            let subject = match method {
                AuthMethod::Oidc => subjects[0].clone(),
                AuthMethod::ClientCertificate => subjects
                    .iter()
                    .find(|name| principal.certificate_subjects.contains(name))
                    .cloned()
                    .unwrap_or_else(|| id.clone()),
            };
            (principal, subject)
        }
        (Lookup::Ambiguous(ids), _) => {
            return Err(ApiProblem::forbidden(format!(
                "{} [{}] is claimed by several principals ({}); fix principals/ so one principal holds it",
                method.as_str(),
                subjects.join(", "),
                ids.join(", ")
            )));
        }
        _ => {
            let field = match method {
                AuthMethod::Oidc => "oidc_subjects",
                AuthMethod::ClientCertificate => "certificate_subjects",
            };
            return Err(ApiProblem::forbidden(format!(
                "no principal in principals/ has {field} [{}]",
                subjects.join(", ")
            )));
        }
    };
    // 3. roles
    let repository: BTreeSet<Role> = principal.roles.iter().copied().collect();
    let from_token: BTreeSet<Role> = token_roles
        .iter()
        .flatten()
        .filter_map(|name| rbac::role_of_scope(name))
        .collect();
    let roles: BTreeSet<Role> = match context.authenticator.role_source {
        RoleSource::Repository => repository,
        RoleSource::Token => from_token,
        RoleSource::Both => repository.intersection(&from_token).copied().collect(),
    };
    if roles.is_empty() {
        return Err(ApiProblem::forbidden(format!(
            "{} holds no role ({:?} role source)",
            principal.id, context.authenticator.role_source
        )));
    }
    Ok(Caller {
        principal_id: principal.id.clone(),
        method,
        subject,
        roles,
        scope: principal.scope.clone(),
        address: client.address,
        user_agent,
        request_id,
    })
}
