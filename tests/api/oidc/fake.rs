//! A tiny OpenID issuer on loopback for what a real provider cannot be made to do:
//! ID tokens for another audience, signed with an unknown key, expired, or unsigned. It
//! speaks the spec's discovery, JWKS and token endpoint; tokens are signed RS256 with a
//! checked-in test key (tests/oidc/fake-issuer-key.der, PKCS#1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const KEY_DER: &[u8] = include_bytes!("../../oidc/fake-issuer-key.der");
/// The modulus of that key, base64url (its exponent is 65537).
const KEY_N: &str = "veldhbed0m9tt83QceMium6TahoAiHdjuBmwPOGrpzLb56o_pdDYl9oj71ZOl_lvYhMyZZ1DDAy3RPR__NHJam2uXwlmf-plEvNTTuPHlh-01jBGaaXAh1prje6wYa1tzEv2WfphY5lgkZC1abxVLQgu7Ey03T8GEB8iM2djJMLZ7t_fOpAk4014Q0AwBBQj46KHc3DC2ZeAhxINbRTj0HksYO0k1r-ubu7JoPE7WuCXfnk_s5fyreLc7GgekHi1QQKpvXru9_5ntmQSKCAsOIB53Q4Mwj0wBlNc0Nk1Rt5AdIOGKKhUjqFdkuqC9ZuW2biJFzseW8ua4MnZ0XBP2w";
pub const KID: &str = "fake-key-1";

/// What the token endpoint answers for a code.
#[derive(Clone)]
pub struct Issue {
    pub claims: serde_json::Value,
    pub kid: String,
    /// Send `alg: none` with no signature instead of signing.
    pub unsigned: bool,
}

#[derive(Clone)]
pub struct FakeIssuer {
    pub issuer: String,
    codes: Arc<Mutex<HashMap<String, Issue>>>,
}

impl FakeIssuer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeIssuer {
            issuer,
            codes: Arc::default(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// The next exchange of `code` returns an ID token with these claims.
    pub fn issue(&self, code: &str, issue: Issue) {
        self.codes.lock().unwrap().insert(code.to_string(), issue);
    }

    /// Claims that would pass: this issuer, `aud`, `nonce`, fresh `iat`/`exp`.
    pub fn good_claims(&self, aud: &str, nonce: &str, sub: &str) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        serde_json::json!({
            "iss": self.issuer, "aud": aud, "sub": sub, "nonce": nonce,
            "iat": now, "exp": now + 300, "email": format!("{sub}@fake.test"), "email_verified": true,
        })
    }
}

async fn discovery(State(f): State<FakeIssuer>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "issuer": f.issuer,
        "authorization_endpoint": format!("{}/authorize", f.issuer),
        "token_endpoint": format!("{}/token", f.issuer),
        "jwks_uri": format!("{}/jwks", f.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn jwks() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "keys": [{ "kty": "RSA", "n": KEY_N, "e": "AQAB", "kid": KID, "use": "sig", "alg": "RS256" }]
    }))
}

async fn token(
    State(f): State<FakeIssuer>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(issue) = f.codes.lock().unwrap().remove(&code) else {
        return Json(serde_json::json!({ "error": "invalid_grant" }));
    };
    let id_token = if issue.unsigned {
        let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!(
            "{}.{}.",
            b64(&serde_json::json!({ "alg": "none", "typ": "JWT" })),
            b64(&issue.claims)
        )
    } else {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(issue.kid.clone());
        jsonwebtoken::encode(&header, &issue.claims, &EncodingKey::from_rsa_der(KEY_DER)).unwrap()
    };
    Json(serde_json::json!({
        "access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
    }))
}
