//! `/api/v1` with real parts: HTTP and TLS on 127.0.0.1:0, a local OIDC
//! issuer with real RSA / P-256 keys, client certificates made with
//! `rcgen`, the real daemon carrying out what the API queues, and the
//! `ringmaster` binary as a client.

mod cli;
mod flows;
mod harness;
mod issuer;
mod mtls;
mod rbac;
mod tokens;
