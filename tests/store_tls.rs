//! TLS to the PostgreSQL store, chosen by the URL's `sslmode` and
//! `sslrootcert` as libpq chooses it (issue 13), against real servers:
//! `support::postgres::tcp_servers` starts one PostgreSQL with `ssl=on`
//! (a certificate for `localhost` issued by a CA the `openssl` command line
//! made in a temp dir) and one without TLS, both on 127.0.0.1.
//!
//! Every URL carries a password, and no error may show it.

mod support;

use ringmaster::store::{Store, StoreError, StoreLocation};
use support::postgres::{TcpServers, tcp_servers};

const PASSWORD: &str = "Hunter2-never-shown";

fn url(host: &str, port: u16, database: &str, query: &str) -> String {
    format!("postgres://postgres:{PASSWORD}@{host}:{port}/{database}?{query}")
}

fn open(url: &str) -> Store {
    Store::open_location(&StoreLocation::parse(url).unwrap()).unwrap()
}

/// The error text of a refused open, checked for the password.
fn refused(url: &str) -> String {
    let error = Store::open_location(&StoreLocation::parse(url).unwrap())
        .expect_err("the connection is refused");
    let text = format!("{error} {error:?}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    assert!(
        matches!(error, StoreError::PostgresConnect { .. }),
        "a connection error: {text}"
    );
    error.to_string()
}

/// Whether the server sees a TLS session on `database` (asked through its
/// unix socket, from outside the store).
fn encrypted_sessions(servers: &TcpServers, port: u16, database: &str) -> (i64, i64) {
    let host = servers.root.to_str().unwrap().replace('/', "%2F");
    let mut admin = postgres::Client::connect(
        &format!("postgres://postgres@{host}:{port}/postgres"),
        postgres::NoTls,
    )
    .unwrap();
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1",
            &[&database],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn verify_full_with_the_right_ca_connects_over_tls() {
    let servers = tcp_servers();
    let database = servers.fresh_database(servers.tls_port);
    let query = format!("sslmode=verify-full&sslrootcert={}", servers.ca.display());
    let store = open(&url("localhost", servers.tls_port, &database, &query));
    assert!(store.verify_event_chain().unwrap().first_break.is_none());
    let (tls, plain) = encrypted_sessions(servers, servers.tls_port, &database);
    assert_eq!((tls, plain), (1, 0), "the store's session is encrypted");
    assert!(!store.describe().contains(PASSWORD), "{}", store.describe());
}

#[test]
fn a_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let servers = tcp_servers();
    let database = servers.fresh_database(servers.tls_port);
    for mode in ["verify-full", "verify-ca", "require"] {
        let query = format!("sslmode={mode}&sslrootcert={}", servers.other_ca.display());
        let error = refused(&url("localhost", servers.tls_port, &database, &query));
        assert!(
            error.contains("invalid peer certificate") && error.contains("UnknownIssuer"),
            "{mode}: {error}"
        );
        assert!(
            error.contains(&format!("sslmode={mode}")) && error.contains("sslrootcert"),
            "{mode}: the error says what was checked: {error}"
        );
    }
    assert_eq!(
        encrypted_sessions(servers, servers.tls_port, &database),
        (0, 0)
    );
}

#[test]
fn a_host_name_the_certificate_does_not_name_is_refused_by_verify_full_only() {
    let servers = tcp_servers();
    let database = servers.fresh_database(servers.tls_port);
    // The certificate names `localhost`; 127.0.0.1 is the same server.
    let query = format!("sslmode=verify-full&sslrootcert={}", servers.ca.display());
    let error = refused(&url("127.0.0.1", servers.tls_port, &database, &query));
    assert!(
        error.contains("not valid for name") && error.contains("name the host"),
        "{error}"
    );
    // verify-ca checks the chain, not the name (libpq's meaning).
    let query = format!("sslmode=verify-ca&sslrootcert={}", servers.ca.display());
    let _store = open(&url("127.0.0.1", servers.tls_port, &database, &query));
    assert_eq!(
        encrypted_sessions(servers, servers.tls_port, &database),
        (1, 0)
    );
}

#[test]
fn modes_that_require_tls_refuse_a_server_without_it() {
    let servers = tcp_servers();
    let database = servers.fresh_database(servers.plain_port);
    for query in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={}", servers.ca.display()),
    ] {
        let error = refused(&url("localhost", servers.plain_port, &database, &query));
        assert!(
            error.contains("server does not support TLS") && error.contains("requires TLS"),
            "{query}: {error}"
        );
    }
    assert_eq!(
        encrypted_sessions(servers, servers.plain_port, &database),
        (0, 0),
        "nothing connected in plain text"
    );
    // prefer (libpq's default) falls back to plain text there.
    let _store = open(&url("localhost", servers.plain_port, &database, ""));
    assert_eq!(
        encrypted_sessions(servers, servers.plain_port, &database),
        (0, 1)
    );
}

#[test]
fn prefer_and_require_encrypt_and_disable_does_not() {
    let servers = tcp_servers();
    let port = servers.tls_port;
    let prefer = servers.fresh_database(port);
    let _a = open(&url("127.0.0.1", port, &prefer, "sslmode=prefer"));
    assert_eq!(encrypted_sessions(servers, port, &prefer), (1, 0));
    let require = servers.fresh_database(port);
    let _b = open(&url("127.0.0.1", port, &require, "sslmode=require"));
    assert_eq!(encrypted_sessions(servers, port, &require), (1, 0));
    let disable = servers.fresh_database(port);
    let _c = open(&url("127.0.0.1", port, &disable, "sslmode=disable"));
    assert_eq!(encrypted_sessions(servers, port, &disable), (0, 1));
}

#[test]
fn bad_tls_settings_are_refused_before_connecting_without_the_password() {
    let servers = tcp_servers();
    let database = servers.fresh_database(servers.tls_port);
    for (query, expected) in [
        ("sslmode=allow", "sslmode=allow is not supported"),
        (
            "sslmode=require&sslcert=/tmp/client.pem",
            "sslcert is not supported",
        ),
        (
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "sslrootcert /nonexistent/ca.pem cannot be read",
        ),
    ] {
        let location = url("localhost", servers.tls_port, &database, query);
        let error = match StoreLocation::parse(&location) {
            Err(error) => error.to_string(),
            Ok(location) => Store::open_location(&location)
                .expect_err("refused")
                .to_string(),
        };
        assert!(error.contains(expected), "{query}: {error}");
        assert!(!error.contains(PASSWORD), "{error}");
    }
}
