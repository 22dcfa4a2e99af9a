//! Talking to one provider: discovery (cached), the JWKS (cached, refetched on an
//! unknown key id at most every [`JWKS_REFETCH_MIN`]), the token exchange, userinfo and
//! ID-token validation.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::error::OAuthError;
use super::pending::constant_time_eq;
use crate::config::{OAuthProvider, ProviderKind};

/// Discovery documents are re-read after this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Keys are re-read after this long even when every kid is known.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the keys (rotation), but not more often than this: a flood
/// of forged tokens with random kids must not become a flood of requests to the provider.
pub const JWKS_REFETCH_MIN: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// An ID token issued longer ago than this is refused even if not expired.
const MAX_TOKEN_AGE_SECS: i64 = 600;
/// Largest answer read from a provider.
const MAX_BODY: usize = 1 << 20;

/// Signature algorithms accepted for ID tokens: asymmetric only, never `none` or HMAC.
const ALLOWED_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What the host uses from `/.well-known/openid-configuration`.
#[derive(Clone, Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: Option<String>,
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

struct Keys {
    keys: Vec<Jwk>,
    fetched: Instant,
}

/// A configured provider with its caches.
pub struct Provider {
    pub config: OAuthProvider,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    keys: Mutex<Option<Keys>>,
}

/// The answer of the token endpoint.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The claims the host reads from an ID token.
#[derive(Deserialize)]
pub struct IdClaims {
    pub sub: String,
    pub iat: Option<i64>,
    pub nonce: Option<String>,
    pub azp: Option<String>,
    #[serde(default)]
    pub aud: Audience,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<serde_json::Value>,
    pub preferred_username: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
pub enum Audience {
    One(#[allow(dead_code)] String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    fn len(&self) -> usize {
        match self {
            Audience::One(_) => 1,
            Audience::Many(v) => v.len(),
            Audience::None => 0,
        }
    }
}

/// An endpoint from discovery: http(s) only.
pub fn endpoint(what: &str, raw: &str) -> Result<Url, OAuthError> {
    Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .ok_or_else(|| OAuthError::BadResponse(format!("discovery: {what} is not an http(s) URL")))
}

/// `true` and `"true"` (some providers send a string).
pub fn truthy(v: &Option<serde_json::Value>) -> bool {
    matches!(v, Some(serde_json::Value::Bool(true)))
        || matches!(v, Some(serde_json::Value::String(s)) if s == "true")
}

fn unreachable(what: &str, e: reqwest::Error) -> OAuthError {
    // reqwest's Display can include the URL; endpoints are not secret, tokens never are
    // in URLs here.
    OAuthError::Unreachable(format!("{what}: {}", e.without_url()))
}

/// Reads a JSON body (bounded), mapping failures to `Unreachable` / `BadResponse`.
async fn read_json<T: for<'de> Deserialize<'de>>(
    what: &str,
    mut resp: reqwest::Response,
) -> Result<T, OAuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(what, e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OAuthError::BadResponse(format!(
                "{what}: answer over {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| OAuthError::BadResponse(format!("{what}: {e}")))
}

impl Provider {
    pub fn new(config: OAuthProvider) -> Self {
        Self {
            config,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        }
    }

    /// The discovery document (OIDC), fetched once an hour; its `issuer` must be exactly
    /// the configured one.
    pub async fn metadata(&self, http: &reqwest::Client) -> Result<Metadata, OAuthError> {
        let ProviderKind::Oidc { issuer } = &self.config.kind else {
            return Err(OAuthError::BadResponse("not an OpenID Connect provider".into()));
        };
        let mut cached = self.metadata.lock().await;
        if let Some((m, at)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.as_str().trim_end_matches('/')
        );
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable("discovery", e))?;
        if !resp.status().is_success() {
            return Err(OAuthError::Unreachable(format!(
                "discovery answered {}",
                resp.status()
            )));
        }
        let m: Metadata = read_json("discovery", resp).await?;
        if m.issuer != self.config.issuer {
            return Err(OAuthError::BadResponse(format!(
                "discovery names issuer {:?}, configured {:?}",
                m.issuer, self.config.issuer
            )));
        }
        *cached = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Exchanges the authorization code (with the PKCE verifier) at the token endpoint.
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        token_endpoint: &Url,
        basic_auth: bool,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let secret = self.config.client_secret.expose();
        let mut req = http
            .post(token_endpoint.clone())
            .header("accept", "application/json");
        if basic_auth {
            // RFC 6749 §2.3.1: both parts form-urlencoded first.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&self.config.client_id), Some(enc(secret)));
        } else {
            form.push(("client_id", self.config.client_id.as_str()));
            form.push(("client_secret", secret));
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable("token endpoint", e))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(OAuthError::Unreachable(format!(
                "token endpoint answered {status}"
            )));
        }
        let tokens: TokenResponse = read_json("token endpoint", resp).await?;
        if let Some(error) = &tokens.error {
            let detail = tokens.error_description.as_deref().unwrap_or("");
            return Err(OAuthError::ProviderError(
                format!("token endpoint: {error} {detail}").trim().to_string(),
            ));
        }
        if !status.is_success() {
            return Err(OAuthError::ProviderError(format!(
                "token endpoint answered {status}"
            )));
        }
        Ok(tokens)
    }

    /// The userinfo answer for an access token, as JSON.
    pub async fn userinfo(
        &self,
        http: &reqwest::Client,
        endpoint: &Url,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
        let resp = http
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            // GitHub refuses requests without one.
            .header("user-agent", "plinth")
            .send()
            .await
            .map_err(|e| unreachable("userinfo endpoint", e))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(OAuthError::Unreachable(format!(
                "userinfo endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(OAuthError::ProviderError(format!(
                "userinfo endpoint answered {status}"
            )));
        }
        read_json("userinfo endpoint", resp).await
    }

    /// The provider's signing key `kid`: from the cache, else from a fresh JWKS (key
    /// rotation) unless one was fetched less than [`JWKS_REFETCH_MIN`] ago.
    async fn key(
        &self,
        http: &reqwest::Client,
        jwks_uri: &Url,
        kid: Option<&str>,
    ) -> Result<Jwk, OAuthError> {
        let mut cached = self.keys.lock().await;
        let find = |keys: &Keys| -> Option<Jwk> {
            let usable = |k: &&Jwk| {
                !matches!(k.algorithm, AlgorithmParameters::OctetKey(_))
                    && matches!(k.common.public_key_use, None | Some(PublicKeyUse::Signature))
            };
            match kid {
                Some(kid) => keys
                    .keys
                    .iter()
                    .filter(usable)
                    .find(|k| k.common.key_id.as_deref() == Some(kid))
                    .cloned(),
                // No kid: only unambiguous when the provider has one signing key.
                None => {
                    let mut it = keys.keys.iter().filter(usable);
                    match (it.next(), it.next()) {
                        (Some(k), None) => Some(k.clone()),
                        _ => None,
                    }
                }
            }
        };
        if let Some(keys) = cached.as_ref() {
            if keys.fetched.elapsed() < JWKS_TTL {
                if let Some(k) = find(keys) {
                    return Ok(k);
                }
                if keys.fetched.elapsed() < JWKS_REFETCH_MIN {
                    return Err(OAuthError::TokenInvalid("unknown signing key id".into()));
                }
            }
        }
        let resp = http
            .get(jwks_uri.clone())
            .send()
            .await
            .map_err(|e| unreachable("jwks", e))?;
        if !resp.status().is_success() {
            return Err(OAuthError::Unreachable(format!(
                "jwks answered {}",
                resp.status()
            )));
        }
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = read_json("jwks", resp).await?;
        // Keys of types this host cannot use are skipped, not fatal.
        let keys = Keys {
            keys: raw
                .keys
                .into_iter()
                .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
                .collect(),
            fetched: Instant::now(),
        };
        let found = find(&keys);
        *cached = Some(keys);
        found.ok_or_else(|| OAuthError::TokenInvalid("unknown signing key id".into()))
    }

    /// Validates an ID token: signature with the provider's key (allow-listed asymmetric
    /// algorithms only), exact `iss`, `aud` containing the client id (and `azp` when there
    /// are several), `exp`, `iat`, and the `nonce` of this login.
    pub async fn validate_id_token(
        &self,
        http: &reqwest::Client,
        metadata: &Metadata,
        token: &str,
        nonce: &str,
    ) -> Result<IdClaims, OAuthError> {
        let invalid = |why: &str| OAuthError::TokenInvalid(why.to_string());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("malformed token or unsupported algorithm"))?;
        let supported: HashSet<&str> = metadata
            .id_token_signing_alg_values_supported
            .iter()
            .map(String::as_str)
            .collect();
        let alg_name = format!("{:?}", header.alg);
        if !ALLOWED_ALGS.contains(&header.alg)
            || (!supported.is_empty() && !supported.contains(alg_name.as_str()))
        {
            return Err(invalid("signature algorithm not allowed"));
        }
        let jwks_uri = metadata
            .jwks_uri
            .as_deref()
            .ok_or_else(|| OAuthError::BadResponse("discovery has no jwks_uri".into()))?;
        let jwk = self
            .key(http, &endpoint("jwks_uri", jwks_uri)?, header.kid.as_deref())
            .await?;
        if let Some(key_alg) = &jwk.common.key_algorithm {
            if format!("{key_alg:?}") != alg_name {
                return Err(invalid("the key is not for this algorithm"));
            }
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| OAuthError::BadResponse("unusable signing key".into()))?;
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[self.config.issuer.as_str()]);
        v.set_audience(&[self.config.client_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<IdClaims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::ExpiredSignature => "token expired",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidAudience => "token is for another audience",
                K::InvalidSignature => "bad signature",
                K::ImmatureSignature => "token not yet valid",
                K::MissingRequiredClaim(_) => "a required claim is missing",
                K::InvalidAlgorithm => "the key does not match the algorithm",
                _ => "malformed token",
            })
        })?;
        let claims = data.claims;
        let now = crate::auth::now_ms() / 1000;
        match claims.iat {
            None => return Err(invalid("a required claim is missing")),
            Some(iat) if iat > now + LEEWAY_SECS as i64 => return Err(invalid("token issued in the future")),
            Some(iat) if iat < now - MAX_TOKEN_AGE_SECS => return Err(invalid("token issued too long ago")),
            Some(_) => {}
        }
        if claims.aud.len() > 1 && claims.azp.as_deref() != Some(self.config.client_id.as_str()) {
            return Err(invalid("token is for another audience"));
        }
        match &claims.nonce {
            Some(n) if constant_time_eq(n.as_bytes(), nonce.as_bytes()) => {}
            _ => return Err(invalid("nonce mismatch")),
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(invalid("bad sub"));
        }
        Ok(claims)
    }
}
