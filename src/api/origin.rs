//! Who caused a write, as the events and the evidence record it.
//!
//! An API request carries an authenticated principal, how it was
//! authenticated, the role that allowed it, the request id, the source
//! address and the user agent. A request queued by the local CLI carries a
//! self-declared actor only: whoever can write the state directory is an
//! admin, and such an actor is marked `local:` and unauthenticated, so it is
//! never presented as a verified identity.

use crate::store::OperatorRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The metadata of an authenticated API request (stored as an operator
/// request's `origin`, copied into events' details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiOrigin {
    /// The principal id from `principals/`.
    pub principal: String,
    /// `oidc` or `client_certificate`.
    pub authentication: String,
    /// The token claim value or certificate name that was matched.
    pub subject: String,
    /// The scope that allowed the request, e.g. `control-plane.publisher`.
    pub role: String,
    pub request_id: String,
    pub source_address: String,
    pub user_agent: Option<String>,
}

/// Where an operator request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOrigin {
    Api(ApiOrigin),
    /// The local CLI: `actor` is whatever `--actor` or `$USER` said.
    Local {
        actor: String,
    },
}

impl RequestOrigin {
    /// The origin of a queued request (a stored origin that does not read
    /// back is treated as local: never as authenticated).
    pub fn of_operator_request(request: &OperatorRequest) -> RequestOrigin {
        match request
            .origin
            .as_ref()
            .and_then(|origin| serde_json::from_value::<ApiOrigin>(origin.clone()).ok())
        {
            Some(origin) => RequestOrigin::Api(origin),
            None => RequestOrigin::Local {
                actor: request.actor.clone(),
            },
        }
    }

    /// The actor column of events: the principal id, or `local:<actor>`.
    pub fn actor(&self) -> String {
        match self {
            RequestOrigin::Api(origin) => origin.principal.clone(),
            RequestOrigin::Local { actor } => format!("local:{actor}"),
        }
    }

    /// The actor_role column of events.
    pub fn role(&self) -> String {
        match self {
            RequestOrigin::Api(origin) => origin.role.clone(),
            RequestOrigin::Local { .. } => "local-operator (unauthenticated)".into(),
        }
    }

    /// The request id (API requests only).
    pub fn request_id(&self) -> Option<&str> {
        match self {
            RequestOrigin::Api(origin) => Some(&origin.request_id),
            RequestOrigin::Local { .. } => None,
        }
    }

    /// How the actor appears in evidence records.
    pub fn evidence_label(&self) -> String {
        match self {
            RequestOrigin::Api(origin) => format!(
                "{} (authenticated by {} as {}; {}; request {})",
                origin.principal,
                origin.authentication,
                origin.subject,
                origin.role,
                origin.request_id
            ),
            RequestOrigin::Local { actor } => {
                format!("local:{actor} (self-declared on the daemon's machine, unauthenticated)")
            }
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            RequestOrigin::Api(origin) => {
                let mut value = json!(origin);
                value["authenticated"] = json!(true);
                value
            }
            RequestOrigin::Local { actor } => json!({
                "authenticated": false,
                "authentication": "none (local state directory)",
                "declared_actor": actor,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: Option<Value>) -> OperatorRequest {
        OperatorRequest {
            request_id: 1,
            intent_id: "i".into(),
            action: "hold".into(),
            reason: "r".into(),
            actor: "admin".into(),
            requested_at: chrono::DateTime::UNIX_EPOCH,
            origin,
        }
    }

    #[test]
    fn a_local_actor_is_never_presented_as_authenticated() {
        let origin = RequestOrigin::of_operator_request(&request(None));
        assert_eq!(origin.actor(), "local:admin");
        assert!(origin.evidence_label().contains("unauthenticated"));
        assert_eq!(origin.to_json()["authenticated"], json!(false));
        // A stored origin that does not read back is local too.
        let forged = RequestOrigin::of_operator_request(&request(Some(json!({"principal": "x"}))));
        assert_eq!(forged.actor(), "local:admin");
    }
}
