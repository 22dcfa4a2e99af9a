//! Social login: OpenID Connect (discovery, PKCE S256, `state`, `nonce`, ID-token
//! validation against the provider's JWKS) and plain OAuth2 (authorize → token →
//! userinfo) for providers without ID tokens. Providers are configuration
//! (`[[auth.oidc]]`); accounts are keyed by (issuer, sub), never by email alone.

mod accounts;
mod error;
pub mod pending;
mod provider;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

pub use accounts::ExternalIdentity;
pub use error::OAuthError;
pub use pending::PENDING_TTL;

use crate::auth::IpLimiter;
use crate::config::{AuthConfig, OAuthConfig, ProviderKind};
use crate::domain::ProviderName;
use pending::{PendingLogins, PendingStore};
use provider::{endpoint, truthy, Provider};

/// How long one request to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A login that was started: where to send the browser, and the secret for its cookie.
pub struct Begun {
    pub redirect: Url,
    /// Goes into the browser-binding cookie only.
    pub binding: String,
}

/// The query of the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// RFC 9207: the issuer the response comes from, when the provider sends it.
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A login that came back valid.
pub struct Finished {
    pub identity: ExternalIdentity,
    pub return_url: Url,
    /// For a link flow: the user who asked for it.
    pub link_user_id: Option<String>,
}

/// The social-login service.
pub struct OAuth {
    config: OAuthConfig,
    providers: HashMap<String, Provider>,
    pending: PendingLogins,
    /// Starts per client address: one address cannot fill the pending table.
    starts: IpLimiter,
    http: reqwest::Client,
}

impl OAuth {
    /// Social login; logins in progress are kept where `pending` says (in memory, or in
    /// the shared database so a login may finish on another replica).
    pub fn new(auth: &AuthConfig, pending: Box<dyn PendingStore>) -> Self {
        let config = &auth.oauth;
        for (name, why) in &config.skipped {
            tracing::warn!(provider = %name, reason = %why, "social login provider skipped");
        }
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the TLS backend initializes");
        Self {
            providers: config
                .providers
                .iter()
                .map(|p| (p.name.to_string(), Provider::new(p.clone())))
                .collect(),
            config: config.clone(),
            pending: PendingLogins::new(pending),
            starts: IpLimiter::new(
                auth.rate_limit.oauth_start_per_ip_per_minute,
                Duration::from_secs(60),
            ),
            http,
        }
    }

    /// The configured providers' names, in config order.
    pub fn provider_names(&self) -> Vec<&str> {
        self.config.providers.iter().map(|p| p.name.as_str()).collect()
    }

    fn provider(&self, name: &str) -> Result<&Provider, OAuthError> {
        self.providers
            .get(name)
            .ok_or_else(|| OAuthError::UnknownProvider(name.chars().take(64).collect()))
    }

    /// `{public_url}/auth/oauth/{provider}/callback`.
    pub fn redirect_uri(&self, provider: &ProviderName) -> String {
        let base = self.config.public_url.as_ref().map_or("", |u| u.as_str());
        format!("{}/auth/oauth/{provider}/callback", base.trim_end_matches('/'))
    }

    /// Checks `return_to` against the allow-list (or takes the default).
    pub fn return_url(&self, return_to: Option<&str>) -> Result<Url, OAuthError> {
        let refuse = |raw: &str| OAuthError::ReturnUrlNotAllowed(raw.chars().take(200).collect());
        match return_to {
            Some(raw) => {
                let url = Url::parse(raw).map_err(|_| refuse(raw))?;
                if self.config.return_url_allowed(&url) {
                    Ok(url)
                } else {
                    tracing::warn!(return_to = %raw.chars().take(200).collect::<String>(), "oauth return URL refused");
                    Err(refuse(raw))
                }
            }
            None => self
                .config
                .default_return_url
                .clone()
                .ok_or_else(|| refuse("(none given and no default)")),
        }
    }

    /// Logins in progress now (a gauge in `/metrics`).
    pub async fn pending_count(&self) -> usize {
        self.pending.count().await
    }

    /// Starts a login (or, with `link_user_id`, a link) at `provider` for a browser at
    /// `client`: first the per-address limit, so a flood costs nothing but this check.
    pub async fn begin(
        &self,
        provider: &str,
        return_to: Option<&str>,
        link_user_id: Option<String>,
        client: IpAddr,
    ) -> Result<Begun, OAuthError> {
        self.starts
            .try_acquire(client)
            .map_err(OAuthError::TooManyStarts)?;
        let p = self.provider(provider)?;
        let return_url = self.return_url(return_to)?;
        let authorize = match &p.config.kind {
            ProviderKind::Oidc { .. } => {
                let metadata = p.metadata(&self.http).await.inspect_err(
                    |e| tracing::warn!(provider = %provider, error = %e, "oauth discovery failed"),
                )?;
                endpoint("authorization_endpoint", &metadata.authorization_endpoint)?
            }
            ProviderKind::OAuth2 {
                authorization_endpoint,
                ..
            } => authorization_endpoint.clone(),
        };
        let name = p.config.name.clone();
        let started = self
            .pending
            .start(name.clone(), return_url, link_user_id, client)
            .await
            .map_err(|pending::Full| OAuthError::Busy)?;
        let mut url = authorize;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &p.config.client_id)
                .append_pair("redirect_uri", &self.redirect_uri(&name))
                .append_pair("state", &started.state)
                .append_pair("code_challenge", &started.pkce_challenge)
                .append_pair("code_challenge_method", "S256");
            if !p.config.scopes.is_empty() {
                q.append_pair("scope", &p.config.scopes.join(" "));
            }
            if matches!(p.config.kind, ProviderKind::Oidc { .. }) {
                q.append_pair("nonce", &started.nonce);
            }
        }
        Ok(Begun {
            redirect: url,
            binding: started.binding,
        })
    }

    /// Completes a login: the state must be a pending login of this browser (it is used
    /// up either way), then the code is exchanged and the identity established.
    pub async fn finish(
        &self,
        provider: &str,
        params: CallbackParams,
        binding: Option<&str>,
    ) -> Result<Finished, OAuthError> {
        let p = self.provider(provider)?;
        let result = self.finish_inner(p, params, binding).await;
        if let Err(e) = &result {
            tracing::warn!(provider = %provider, error = %e, "social login failed");
        }
        result
    }

    async fn finish_inner(
        &self,
        p: &Provider,
        params: CallbackParams,
        binding: Option<&str>,
    ) -> Result<Finished, OAuthError> {
        let state = params.state.as_deref().ok_or(OAuthError::StateInvalid)?;
        let pending = self
            .pending
            .take(state, binding, &p.config.name)
            .await
            .ok_or(OAuthError::StateInvalid)?;
        if let Some(error) = &params.error {
            let error: String = error.chars().take(100).collect();
            let detail: String = params
                .error_description
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            let shown = format!("{error} {detail}").trim().to_string();
            return Err(if error == "access_denied" {
                OAuthError::AccessDenied(shown)
            } else {
                OAuthError::ProviderError(shown)
            });
        }
        let code = params
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::ProviderError("the callback has no code".into()))?;
        let redirect_uri = self.redirect_uri(&p.config.name);
        let identity = match &p.config.kind {
            ProviderKind::Oidc { .. } => {
                let metadata = p.metadata(&self.http).await?;
                // RFC 9207: a response that names an issuer must name this one (mix-up).
                if let Some(iss) = &params.iss {
                    if iss != &p.config.issuer {
                        return Err(OAuthError::ProviderError(
                            "the response comes from another issuer".into(),
                        ));
                    }
                }
                let basic = metadata.token_endpoint_auth_methods_supported.is_empty()
                    || metadata
                        .token_endpoint_auth_methods_supported
                        .iter()
                        .any(|m| m == "client_secret_basic");
                let tokens = p
                    .exchange(
                        &self.http,
                        &endpoint("token_endpoint", &metadata.token_endpoint)?,
                        basic,
                        code,
                        &redirect_uri,
                        &pending.pkce_verifier,
                    )
                    .await?;
                let id_token = tokens
                    .id_token
                    .as_deref()
                    .ok_or_else(|| OAuthError::TokenInvalid("no ID token in the token response".into()))?;
                let claims = p
                    .validate_id_token(&self.http, &metadata, id_token, &pending.nonce)
                    .await?;
                let (mut email, mut email_verified, mut preferred) = (
                    claims.email,
                    truthy(&claims.email_verified),
                    claims.preferred_username,
                );
                // Profile claims may be only at userinfo (code flow); the ID token's sub
                // stays authoritative and userinfo must agree with it.
                if email.is_none() || preferred.is_none() {
                    if let (Some(url), Some(access)) = (&metadata.userinfo_endpoint, &tokens.access_token) {
                        let info = p
                            .userinfo(&self.http, &endpoint("userinfo_endpoint", url)?, access)
                            .await?;
                        if info.get("sub").and_then(|v| v.as_str()) != Some(claims.sub.as_str()) {
                            return Err(OAuthError::TokenInvalid(
                                "userinfo is about another subject".into(),
                            ));
                        }
                        if email.is_none() {
                            email = info.get("email").and_then(|v| v.as_str()).map(str::to_string);
                            email_verified = truthy(&info.get("email_verified").cloned());
                        }
                        if preferred.is_none() {
                            preferred = info
                                .get("preferred_username")
                                .and_then(|v| v.as_str())
                                .map(str::to_string);
                        }
                    }
                }
                ExternalIdentity {
                    provider: p.config.name.to_string(),
                    issuer: p.config.issuer.clone(),
                    subject: claims.sub,
                    email,
                    email_verified,
                    preferred_username: preferred,
                    trust_verified_email: p.config.trust_verified_email,
                }
            }
            ProviderKind::OAuth2 {
                token_endpoint,
                userinfo_endpoint,
                subject_field,
                username_field,
                ..
            } => {
                let tokens = p
                    .exchange(
                        &self.http,
                        token_endpoint,
                        false,
                        code,
                        &redirect_uri,
                        &pending.pkce_verifier,
                    )
                    .await?;
                let access = tokens.access_token.as_deref().ok_or_else(|| {
                    OAuthError::TokenInvalid("no access token in the token response".into())
                })?;
                let info = p.userinfo(&self.http, userinfo_endpoint, access).await?;
                let subject = match info.get(subject_field) {
                    Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => {
                        return Err(OAuthError::BadResponse(format!(
                            "userinfo has no {subject_field:?}"
                        )))
                    }
                };
                let text = |field: &str| info.get(field).and_then(|v| v.as_str()).map(str::to_string);
                ExternalIdentity {
                    provider: p.config.name.to_string(),
                    issuer: p.config.issuer.clone(),
                    subject,
                    email: text("email"),
                    // Plain OAuth2 gives no verified-email claim this host could trust.
                    email_verified: false,
                    preferred_username: username_field.as_deref().and_then(text),
                    trust_verified_email: false,
                }
            }
        };
        Ok(Finished {
            identity,
            return_url: pending.return_url,
            link_user_id: pending.link_user_id,
        })
    }
}
