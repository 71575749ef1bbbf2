//! A local OpenID Connect issuer: an axum server on 127.0.0.1 serving a
//! discovery document and a JWKS of real RSA / P-256 keys (made with
//! `rcgen` on aws-lc-rs), and tokens signed with them by `jsonwebtoken`.
//! Keys can be rotated while it runs; it counts JWKS fetches.

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ringmaster::api::ApiServer;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A signing key with its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    /// The public key as PEM (what an HS256-with-the-public-key attack uses).
    pub public_pem: String,
}

fn key(kid: &str, algorithm: Algorithm) -> SigningKey {
    let pair = match algorithm {
        Algorithm::RS256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256),
        Algorithm::ES256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        other => panic!("no test keys for {other:?}"),
    }
    .expect("key generation");
    let pem = pair.serialize_pem();
    let encoding = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()),
    }
    .expect("encoding key");
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.key_algorithm = Some(match algorithm {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        _ => KeyAlgorithm::ES256,
    });
    SigningKey {
        kid: kid.to_owned(),
        algorithm,
        encoding,
        jwk,
        public_pem: pair.public_key_pem(),
    }
}

/// A fresh RSA-2048 key (RS256).
pub fn rsa_key(kid: &str) -> SigningKey {
    key(kid, Algorithm::RS256)
}

/// A fresh P-256 key (ES256).
pub fn ec_key(kid: &str) -> SigningKey {
    key(kid, Algorithm::ES256)
}

/// The audience tokens are issued for.
pub const AUDIENCE: &str = "api://ringmaster-tests";

struct Published {
    keys: Mutex<Vec<Jwk>>,
    issuer: Mutex<String>,
    fetches: AtomicUsize,
}

/// The running issuer.
pub struct Issuer {
    pub url: String,
    published: Arc<Published>,
    _server: ApiServer,
}

async fn discovery(State(published): State<Arc<Published>>) -> Json<Value> {
    let issuer = published.issuer.lock().expect("issuer").clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/discovery/v2.0/keys"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn keys(State(published): State<Arc<Published>>) -> Json<JwkSet> {
    published.fetches.fetch_add(1, Ordering::SeqCst);
    Json(JwkSet {
        keys: published.keys.lock().expect("keys").clone(),
    })
}

impl Issuer {
    /// Starts an issuer publishing `keys`.
    pub async fn start(keys_published: &[&SigningKey]) -> Issuer {
        let published = Arc::new(Published {
            keys: Mutex::new(keys_published.iter().map(|k| k.jwk.clone()).collect()),
            issuer: Mutex::new(String::new()),
            fetches: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/discovery/v2.0/keys", get(keys))
            .with_state(published.clone());
        let server = ApiServer::start("127.0.0.1:0", router)
            .await
            .expect("issuer listens");
        let url = format!("http://{}", server.local_addr);
        *published.issuer.lock().expect("issuer") = url.clone();
        Issuer {
            url,
            published,
            _server: server,
        }
    }

    /// Replaces the published keys (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.published.keys.lock().expect("keys") = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.published.fetches.load(Ordering::SeqCst)
    }

    /// Standard claims for `oid`, valid for an hour from now.
    pub fn claims(&self, oid: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.url,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 3600,
            "oid": oid,
            "tid": "00000000-0000-4000-8000-000000000001",
        })
    }

    /// A token for `oid` signed with `key`.
    pub fn token(&self, key: &SigningKey, oid: &str) -> String {
        sign(key, &self.claims(oid))
    }
}

/// Signs `claims` with `key` (header: its algorithm and kid).
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with a hand-made header and signature (for `alg: none` and
/// HS256-with-the-public-key).
pub fn forged(header: &Value, claims: &Value, sign_with_hmac_key: Option<&[u8]>) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match sign_with_hmac_key {
        Some(secret) => {
            use hmac::{KeyInit as _, Mac as _};
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
            mac.update(signing_input.as_bytes());
            b64(&mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{signing_input}.{signature}")
}
