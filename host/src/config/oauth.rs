//! Social login: `[[auth.oidc]]` providers and the `[auth]` settings of the OAuth flow
//! (public URL, return-URL allow-list). Secrets come from `${ENV}`; a provider whose
//! variables are unset is skipped (and named in [`OAuthConfig::skipped`]), so a config
//! with ready-made entries starts without them.

use std::fmt;

use serde::Deserialize;
use url::Url;

use super::{expand, ConfigError, ExpandError};
use crate::domain::ProviderName;

/// Validated social-login settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthConfig {
    pub providers: Vec<OAuthProvider>,
    /// Where browsers reach this server; redirect URIs are
    /// `{public_url}/auth/oauth/{provider}/callback`.
    pub public_url: Option<Url>,
    /// Where a finished login may send the browser (see [`OAuthConfig::return_url_allowed`]).
    pub return_urls: Vec<Url>,
    /// Used when `/start` gets no `return_to`.
    pub default_return_url: Option<Url>,
    /// Providers left out because an environment variable they use is unset: (name, why).
    pub skipped: Vec<(String, String)>,
}

impl OAuthConfig {
    pub fn provider(&self, name: &str) -> Option<&OAuthProvider> {
        self.providers.iter().find(|p| p.name.as_str() == name)
    }

    /// A return URL is allowed when it equals an allow-list entry, or when an entry ends
    /// in `/` and the URL has the same scheme, host and port and a path under it. URLs
    /// with credentials are never allowed.
    pub fn return_url_allowed(&self, url: &Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        self.return_urls.iter().any(|allowed| {
            url == allowed
                || (allowed.path().ends_with('/')
                    && url.scheme() == allowed.scheme()
                    && url.host_str() == allowed.host_str()
                    && url.port_or_known_default() == allowed.port_or_known_default()
                    && url.path().starts_with(allowed.path())
                    && !url.path().contains("/../"))
        })
    }
}

/// The client secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// One login provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthProvider {
    pub name: ProviderName,
    /// For OpenID Connect the exact issuer (the `iss` of its ID tokens); for plain OAuth2
    /// the namespace its user ids live in (e.g. `https://github.com`).
    pub issuer: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub scopes: Vec<String>,
    /// Link a first login to the account that already has this email from a trusted
    /// provider when the provider says the email is verified.
    pub trust_verified_email: bool,
}

// A handful per process, built once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect: endpoints and keys from `{issuer}/.well-known/openid-configuration`.
    Oidc { issuer: Url },
    /// Plain OAuth2 (GitHub, Facebook): authorize → token → userinfo, no ID token.
    OAuth2 {
        authorization_endpoint: Url,
        token_endpoint: Url,
        userinfo_endpoint: Url,
        /// The userinfo field with the stable user id (`id` for GitHub and Facebook).
        subject_field: String,
        /// The userinfo field with a handle to derive a username from (`login` for GitHub).
        username_field: Option<String>,
    },
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    #[default]
    Oidc,
    Oauth2,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    name: ProviderName,
    #[serde(default)]
    kind: RawKind,
    issuer: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    trust_verified_email: bool,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    subject_field: Option<String>,
    username_field: Option<String>,
}

/// The OAuth parts of `[auth]`, taken out before the rest is resolved.
#[derive(Default)]
pub struct RawOAuth {
    pub providers: Vec<RawProvider>,
    pub public_url: Option<String>,
    pub return_urls: Vec<String>,
    pub default_return_url: Option<String>,
}

/// Parses a URL that must be https, or http to a loopback host (tests, development).
fn endpoint_url(section: &str, field: &str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::invalid(section, field, format!("not a URL: {e}")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(ConfigError::invalid(
                section,
                field,
                "must be https (http only for 127.0.0.1, localhost or [::1])",
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            section,
            field,
            "must not have credentials or a fragment",
        ));
    }
    Ok(url)
}

fn plain_url(section: &str, field: &str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::invalid(section, field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::invalid(
            section,
            field,
            "must be an absolute http(s) URL",
        ));
    }
    Ok(url)
}

/// `Ok(Err(why))`: an environment variable it uses is unset; skip the provider.
fn resolve_provider(
    p: RawProvider,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Result<OAuthProvider, String>, ConfigError> {
    let section = format!("auth.oidc {:?}", p.name.as_str());
    let ex = |field: &str, raw: &str| -> Result<Result<String, String>, ConfigError> {
        match expand(raw, env) {
            Ok(v) => Ok(Ok(v)),
            Err(ExpandError::Missing(var)) => {
                Ok(Err(format!("environment variable {var} is not set ({field})")))
            }
            Err(e) => Err(ConfigError::invalid(&section, field, e.to_string())),
        }
    };
    macro_rules! ex {
        ($field:expr, $raw:expr) => {
            match ex($field, $raw)? {
                Ok(v) => v,
                Err(why) => return Ok(Err(why)),
            }
        };
    }
    let issuer = ex!("issuer", &p.issuer);
    let client_id = ex!("client_id", &p.client_id);
    let client_secret = ex!("client_secret", &p.client_secret);
    if client_id.is_empty() {
        return Err(ConfigError::invalid(&section, "client_id", "must not be empty"));
    }
    let scopes = match p.scopes {
        Some(s) => s,
        None if p.kind == RawKind::Oidc => vec!["openid".into(), "email".into(), "profile".into()],
        None => Vec::new(),
    };
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(ConfigError::invalid(
            &section,
            "scopes",
            "scopes are single words",
        ));
    }
    let kind = match p.kind {
        RawKind::Oidc => {
            if !scopes.iter().any(|s| s == "openid") {
                return Err(ConfigError::invalid(
                    &section,
                    "scopes",
                    "an OpenID Connect login needs \"openid\"",
                ));
            }
            for (field, v) in [
                ("authorization_endpoint", &p.authorization_endpoint),
                ("token_endpoint", &p.token_endpoint),
                ("userinfo_endpoint", &p.userinfo_endpoint),
                ("subject_field", &p.subject_field),
                ("username_field", &p.username_field),
            ] {
                if v.is_some() {
                    return Err(ConfigError::invalid(
                        &section,
                        field,
                        "only for kind = \"oauth2\" (OpenID Connect uses discovery)",
                    ));
                }
            }
            ProviderKind::Oidc {
                issuer: endpoint_url(&section, "issuer", &issuer)?,
            }
        }
        RawKind::Oauth2 => {
            let need = |field: &str, v: &Option<String>| -> Result<String, ConfigError> {
                v.clone()
                    .ok_or_else(|| ConfigError::invalid(&section, field, "required for kind = \"oauth2\""))
            };
            let authorization_endpoint = ex!(
                "authorization_endpoint",
                &need("authorization_endpoint", &p.authorization_endpoint)?
            );
            let token_endpoint = ex!("token_endpoint", &need("token_endpoint", &p.token_endpoint)?);
            let userinfo_endpoint = ex!(
                "userinfo_endpoint",
                &need("userinfo_endpoint", &p.userinfo_endpoint)?
            );
            ProviderKind::OAuth2 {
                authorization_endpoint: endpoint_url(
                    &section,
                    "authorization_endpoint",
                    &authorization_endpoint,
                )?,
                token_endpoint: endpoint_url(&section, "token_endpoint", &token_endpoint)?,
                userinfo_endpoint: endpoint_url(&section, "userinfo_endpoint", &userinfo_endpoint)?,
                subject_field: p.subject_field.unwrap_or_else(|| "id".into()),
                username_field: p.username_field,
            }
        }
    };
    if issuer.is_empty() || issuer.contains('\n') {
        return Err(ConfigError::invalid(&section, "issuer", "must be a URL"));
    }
    Ok(Ok(OAuthProvider {
        name: p.name,
        issuer,
        kind,
        client_id,
        client_secret: ClientSecret(client_secret),
        scopes,
        trust_verified_email: p.trust_verified_email,
    }))
}

/// Validates the OAuth settings; errors name `[auth]` or the provider and the field.
pub fn resolve(raw: RawOAuth, env: &impl Fn(&str) -> Option<String>) -> Result<OAuthConfig, ConfigError> {
    let mut out = OAuthConfig::default();
    for p in raw.providers {
        let name = p.name.clone();
        if out.providers.iter().any(|q| q.name == name) || out.skipped.iter().any(|(n, _)| n == name.as_str())
        {
            return Err(ConfigError::invalid(
                format!("auth.oidc {:?}", name.as_str()),
                "name",
                "defined twice",
            ));
        }
        match resolve_provider(p, env)? {
            Ok(provider) => out.providers.push(provider),
            Err(why) => out.skipped.push((name.to_string(), why)),
        }
    }
    out.public_url = match &raw.public_url {
        Some(u) => {
            let url = plain_url("[auth]", "public_url", u)?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError::invalid(
                    "[auth]",
                    "public_url",
                    "must not have a query or fragment",
                ));
            }
            Some(url)
        }
        None => None,
    };
    out.return_urls = raw
        .return_urls
        .iter()
        .map(|u| plain_url("[auth]", "oauth_return_urls", u))
        .collect::<Result<_, _>>()?;
    out.default_return_url = match &raw.default_return_url {
        Some(u) => Some(plain_url("[auth]", "oauth_default_return_url", u)?),
        None => out.return_urls.first().cloned(),
    };
    if let Some(d) = &out.default_return_url {
        if !out.return_url_allowed(d) {
            return Err(ConfigError::invalid(
                "[auth]",
                "oauth_default_return_url",
                "must be on oauth_return_urls",
            ));
        }
    }
    if !out.providers.is_empty() {
        if out.public_url.is_none() {
            return Err(ConfigError::invalid(
                "[auth]",
                "public_url",
                "social login needs the URL browsers reach this server at (for redirect URIs)",
            ));
        }
        if out.return_urls.is_empty() {
            return Err(ConfigError::invalid(
                "[auth]",
                "oauth_return_urls",
                "social login needs at least one URL to send the browser back to",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(urls: &[&str]) -> OAuthConfig {
        OAuthConfig {
            return_urls: urls.iter().map(|u| Url::parse(u).unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn return_urls_must_be_on_the_allow_list() {
        let c = cfg(&["https://shop.example/app/", "https://shop.example/done"]);
        for ok in [
            "https://shop.example/app/",
            "https://shop.example/app/orders?x=1",
            "https://shop.example/done",
        ] {
            assert!(c.return_url_allowed(&Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in [
            "https://evil.example/app/",
            "http://shop.example/app/",
            "https://shop.example:8443/app/",
            "https://shop.example/done/more",
            "https://shop.example/other",
            "https://user@shop.example/app/",
            "https://shop.example.evil.example/app/",
        ] {
            assert!(!c.return_url_allowed(&Url::parse(bad).unwrap()), "{bad}");
        }
    }
}
