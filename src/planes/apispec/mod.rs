//! `apispec`: the vendors' own machine-readable API descriptions, and a small
//! evaluator that says whether a request (and the answer to it) is one the
//! real service would accept.
//!
//! The descriptions are the trimmed copies under `tests/fixtures/specs/`
//! (GitHub's OpenAPI from `@octokit/openapi`, Microsoft Graph's OpenAPI as
//! generated into Microsoft's SDKs, Canonical's Landscape API schema, and
//! extracts written from the AWX source), embedded so that the simulators
//! refuse what the vendor refuses and the conformance suite checks every
//! request a connector sends. `scripts/refresh-specs.sh` refreshes them; the
//! READMEs next to them name each source, version and licence.
//!
//! The evaluator is a subset of OpenAPI 3 (paths with `{parameter}`
//! segments, methods, `deprecated`, query parameters with enums, JSON
//! schemas with `$ref`, `allOf`/`anyOf`/`oneOf`, `nullable`, `required`,
//! `enum`, `additionalProperties`) plus three dialects:
//!
//! - **OData** (Graph): `$select` and `$filter` name declared properties of
//!   the entity type, or of a derived type through a cast
//!   (`microsoft.graph.mobileLobApp/committedContentVersion`); bodies are
//!   closed (OData refuses an undeclared property with 400) and
//!   `@odata.type` picks the derived type a body is checked against.
//! - **AWX**: list filters follow `FieldLookupBackend`: a field of the
//!   model, an allowed lookup, and never a `prevent_search` field (403).
//! - **Landscape**: the legacy API's actions, parameters and encoding as
//!   Canonical's client sends them (a form body, or GET with a query).

mod awx;
mod landscape;
mod odata;
mod openapi;
mod schema;

use serde_json::Value;
use std::fmt;
use std::sync::LazyLock;

/// How a description's rules beyond plain OpenAPI are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenApi,
    OData,
    Awx,
    Landscape,
}

/// One vendor description.
#[derive(Debug)]
pub struct Description {
    /// The fixture's file name, e.g. `intune/graph-beta.json`.
    pub name: &'static str,
    /// The vendor's version of the description (`info.version`).
    pub version: String,
    /// Where it comes from (`info.x-source`).
    pub source: String,
    pub dialect: Dialect,
    /// The path every operation's path is under (`servers[0].url`).
    pub base_path: String,
    document: Value,
}

/// A request as it reaches the plane.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without query (`/beta/deviceAppManagement/mobileApps`).
    pub path: &'a str,
    /// The raw query string, if any (without `?`).
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a request or an answer does not fit the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The status the real service answers (400, 403, 404, 405), when it
    /// refuses the request; `None` for what it accepts today but the
    /// description says not to rely on (a deprecated operation, an
    /// undeclared query parameter it ignores).
    pub refused_with: Option<u16>,
    /// The vendor's error code for the refusal (`BadRequest`, ...).
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.refused_with {
            Some(status) => write!(formatter, "{} (the service answers {status})", self.message),
            None => write!(formatter, "{}", self.message),
        }
    }
}

impl Violation {
    fn refused(status: u16, code: &'static str, message: String) -> Violation {
        Violation {
            refused_with: Some(status),
            code,
            message,
        }
    }

    fn advisory(code: &'static str, message: String) -> Violation {
        Violation {
            refused_with: None,
            code,
            message,
        }
    }
}

/// The operation of the description a request matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `GET /deviceAppManagement/mobileApps/{mobileApp-id}`, or for
    /// Landscape `POST /api/ InstallPackages`.
    pub id: String,
    method: String,
    path_key: String,
}

impl Description {
    /// Parses a description; `name` is its fixture file.
    pub fn parse(name: &'static str, text: &str) -> Result<Description, String> {
        let document: Value =
            serde_json::from_str(text).map_err(|error| format!("{name}: {error}"))?;
        let info = document.get("info").cloned().unwrap_or(Value::Null);
        let text_of = |key: &str| {
            info.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let dialect = match text_of("x-dialect").as_str() {
            "odata" => Dialect::OData,
            "awx" => Dialect::Awx,
            "landscape" => Dialect::Landscape,
            _ => Dialect::OpenApi,
        };
        let base_path = match dialect {
            Dialect::Landscape => document
                .pointer("/x-client/path")
                .and_then(Value::as_str)
                .unwrap_or("/api/")
                .to_string(),
            _ => {
                let server = document
                    .pointer("/servers/0/url")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // A full URL (GitHub's) keeps only its path.
                let path = match server.find("://") {
                    Some(scheme) => server[scheme + 3..]
                        .find('/')
                        .map_or("", |slash| &server[scheme + 3 + slash..]),
                    None => server,
                };
                path.trim_end_matches('/').to_string()
            }
        };
        Ok(Description {
            name,
            version: text_of("version"),
            source: text_of("x-source"),
            dialect,
            base_path,
            document,
        })
    }

    /// The operations the description holds, as `METHOD path`.
    pub fn operations(&self) -> Vec<String> {
        match self.dialect {
            Dialect::Landscape => landscape::operations(&self.document),
            _ => openapi::operations(&self.document),
        }
    }

    /// Whether `path` is under this description's base path.
    pub fn covers(&self, path: &str) -> bool {
        match self.dialect {
            Dialect::Landscape => path == self.base_path,
            _ => path.starts_with(&format!("{}/", self.base_path)),
        }
    }

    /// The operation a request is, or why the real service would refuse it
    /// (or why the description says not to send it).
    pub fn check_request(&self, request: &Request<'_>) -> Result<Operation, Violation> {
        match self.dialect {
            Dialect::Landscape => landscape::check_request(&self.document, request),
            _ => openapi::check_request(self, request),
        }
    }

    /// Whether an answer to `operation` fits the description: a declared
    /// status, and a JSON body of the declared shape.
    pub fn check_response(
        &self,
        operation: &Operation,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), Violation> {
        match self.dialect {
            Dialect::Landscape => landscape::check_response(status, content_type, body),
            _ => openapi::check_response(self, operation, status, content_type, body),
        }
    }
}

impl Description {
    /// Whether a webhook payload fits the description's `x-webhooks` entry
    /// `name` (GitHub: `pull-request-review-submitted`, `push`, ...): types,
    /// enums and nullability. Required properties are not insisted on: GitHub
    /// adds required fields to its description (`auto_merge`, ...) that
    /// payloads recorded earlier lack, and ringmaster reads few fields.
    pub fn check_webhook(&self, name: &str, body: &[u8]) -> Result<(), Violation> {
        let pointer =
            format!("/x-webhooks/{name}/post/requestBody/content/application~1json/schema");
        let Some(schema_of) = self.document.pointer(&pointer) else {
            return Err(Violation::advisory(
                "UnknownWebhook",
                format!("{}: no webhook {name}", self.name),
            ));
        };
        let value: Value = serde_json::from_slice(body).map_err(|error| {
            Violation::refused(400, "BadRequest", format!("{name}: not JSON: {error}"))
        })?;
        schema::validate(
            &self.document,
            schema_of,
            &value,
            name,
            schema::Mode {
                odata: false,
                required: false,
            },
        )
        .map_err(|reason| Violation::advisory("BadPayload", format!("{}: {reason}", self.name)))
    }
}

macro_rules! embedded {
    ($function:ident, $file:literal) => {
        /// The embedded description `tests/fixtures/specs/` holds under this name.
        pub fn $function() -> &'static Description {
            static DESCRIPTION: LazyLock<Description> = LazyLock::new(|| {
                Description::parse(
                    $file,
                    include_str!(concat!("../../../tests/fixtures/specs/", $file)),
                )
                .unwrap_or_else(|error| panic!("embedded description {error}"))
            });
            &DESCRIPTION
        }
    };
}

embedded!(github, "github/api.github.com.json");
embedded!(graph_beta, "intune/graph-beta.json");
embedded!(graph_v1, "intune/graph-v1.0.json");
embedded!(awx, "awx/awx-api.json");
embedded!(landscape, "landscape/legacy-api.json");
embedded!(jamf_pro, "jamf/jamf-pro-api.json");

/// The Classic API part of the Jamf extract (`x-classic-api`): paths and
/// methods only, its XML bodies unchecked.
pub fn jamf_classic() -> &'static Description {
    static DESCRIPTION: LazyLock<Description> = LazyLock::new(|| {
        let pro = jamf_pro();
        let mut document = pro
            .document
            .get("x-classic-api")
            .cloned()
            .unwrap_or(Value::Null);
        document["openapi"] = Value::from("3.0.1");
        document["info"] = serde_json::json!({
            "title": "Jamf Classic API (paths ringmaster sends)",
            "version": pro.version,
            "x-source": pro.source,
        });
        Description::parse(
            "jamf/jamf-pro-api.json#x-classic-api",
            &document.to_string(),
        )
        .unwrap_or_else(|error| panic!("embedded description {error}"))
    });
    &DESCRIPTION
}

/// The parsed query of a request: `(name, value)` pairs, percent-decoded.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = crate::planes::http::percent_decode;
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// For a simulator's middleware: the request, its body buffered and put
/// back, or the violation when the real service would refuse it (a request
/// the service accepts, even a deprecated one, passes).
pub async fn screen(
    description: &Description,
    request: axum::extract::Request,
) -> Result<axum::extract::Request, Violation> {
    if !description.covers(request.uri().path()) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 256 * 1024 * 1024)
        .await
        .map_err(|error| {
            Violation::refused(400, "BadRequest", format!("unreadable body: {error}"))
        })?;
    let verdict = description.check_request(&Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        content_type: parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
        body: &bytes,
    });
    match verdict {
        Err(violation) if violation.refused_with.is_some() => Err(violation),
        _ => Ok(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        )),
    }
}
