//! `[auth]`: sessions, password hashing and login rate limits.

use std::time::Duration;

use serde::Deserialize;

use super::oauth::{OAuthConfig, RawOAuth, RawProvider};

/// Validated `[auth]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// A session unused this long is expired (ASVS: idle timeout).
    pub idle_timeout: Duration,
    /// A session older than this is expired however active (absolute timeout).
    pub absolute_timeout: Duration,
    /// Mark the session cookie `Secure` (serve over HTTPS, e.g. behind a TLS proxy).
    /// Unset in the file: true when `public_url` is https.
    pub cookie_secure: bool,
    pub argon2: Argon2Params,
    /// Password hashes computed at once; 0 in the file means one per CPU core.
    pub hash_workers: usize,
    /// Logins and registrations waiting for a hashing slot; more get 503 `auth_busy`.
    pub hash_queue: usize,
    pub rate_limit: RateLimits,
    /// Proxies of the operator's in front of the server, each appending the address it
    /// received the request from to `X-Forwarded-For`; 0 = use the socket address.
    pub trusted_proxies: u8,
    /// Social logins in progress at once (memory is bounded by it); more get 503.
    pub oauth_max_pending: usize,
    /// Social login (`[[auth.oidc]]`, return URLs); resolved with the environment.
    pub oauth: OAuthConfig,
}

/// argon2id cost; the defaults are OWASP's (m=19456 KiB, t=2, p=1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Per-client limits. Windows slide, so nobody is locked out for good (ASVS V6.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Failed logins.
    pub per_username_per_minute: u32,
    pub per_username_per_hour: u32,
    pub per_ip_per_minute: u32,
    /// Registration attempts, counted before the password is hashed.
    pub register_per_ip_per_hour: u32,
    /// `GET /auth/oauth/{provider}/start` (and link): each holds a pending login.
    pub oauth_start_per_ip_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_username_per_minute: 10,
            per_username_per_hour: 100,
            per_ip_per_minute: 50,
            register_per_ip_per_hour: 20,
            oauth_start_per_ip_per_minute: 30,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    session_idle_timeout_secs: u64,
    session_absolute_timeout_secs: u64,
    cookie_secure: Option<bool>,
    argon2: Argon2Params,
    hash_workers: usize,
    hash_queue: usize,
    rate_limit: RateLimits,
    trusted_proxies: u64,
    /// Deprecated: `true` means `trusted_proxies = 1`.
    trust_forwarded_for: Option<bool>,
    oauth_max_pending: u64,
    oidc: Vec<RawProvider>,
    public_url: Option<String>,
    oauth_return_urls: Vec<String>,
    oauth_default_return_url: Option<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            session_idle_timeout_secs: 30 * 60,
            session_absolute_timeout_secs: 12 * 60 * 60,
            cookie_secure: None,
            argon2: Argon2Params::default(),
            hash_workers: 0,
            hash_queue: 256,
            rate_limit: RateLimits::default(),
            trusted_proxies: 0,
            trust_forwarded_for: None,
            oauth_max_pending: 20_000,
            oidc: Vec::new(),
            public_url: None,
            oauth_return_urls: Vec::new(),
            oauth_default_return_url: None,
        }
    }
}

impl RawAuth {
    /// The social-login settings, which need the environment to resolve.
    pub fn take_oauth(&mut self) -> RawOAuth {
        RawOAuth {
            providers: std::mem::take(&mut self.oidc),
            public_url: self.public_url.take(),
            return_urls: std::mem::take(&mut self.oauth_return_urls),
            default_return_url: self.oauth_default_return_url.take(),
        }
    }

    /// `cookie_secure` as the file sets it (`None`: follow `public_url`'s scheme).
    pub fn cookie_secure(&self) -> Option<bool> {
        self.cookie_secure
    }

    /// Applies bounds; the error names the field.
    pub fn resolve(self) -> Result<AuthConfig, (&'static str, String)> {
        let check = |field: &'static str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err((field, format!("must be between {min} and {max}")))
            }
        };
        let idle = check(
            "session_idle_timeout_secs",
            self.session_idle_timeout_secs,
            1,
            86_400 * 30,
        )?;
        let absolute = check(
            "session_absolute_timeout_secs",
            self.session_absolute_timeout_secs,
            1,
            86_400 * 365,
        )?;
        if absolute < idle {
            return Err((
                "session_absolute_timeout_secs",
                "must not be shorter than session_idle_timeout_secs".into(),
            ));
        }
        check(
            "argon2.memory_kib",
            self.argon2.memory_kib.into(),
            8 * 1024,
            1024 * 1024,
        )?;
        check("argon2.iterations", self.argon2.iterations.into(), 1, 100)?;
        check("argon2.parallelism", self.argon2.parallelism.into(), 1, 64)?;
        check("hash_workers", self.hash_workers as u64, 0, 256)?;
        check("hash_queue", self.hash_queue as u64, 1, 100_000)?;
        let r = self.rate_limit;
        for (field, limit, max) in [
            (
                "rate_limit.per_username_per_minute",
                r.per_username_per_minute,
                100_000,
            ),
            (
                "rate_limit.per_username_per_hour",
                r.per_username_per_hour,
                1_000_000,
            ),
            ("rate_limit.per_ip_per_minute", r.per_ip_per_minute, 1_000_000),
            (
                "rate_limit.register_per_ip_per_hour",
                r.register_per_ip_per_hour,
                1_000_000,
            ),
            (
                "rate_limit.oauth_start_per_ip_per_minute",
                r.oauth_start_per_ip_per_minute,
                1_000_000,
            ),
        ] {
            check(field, limit.into(), 1, max)?;
        }
        let oauth_max_pending = check("oauth_max_pending", self.oauth_max_pending, 1, 10_000_000)?;
        let trusted_proxies = check("trusted_proxies", self.trusted_proxies, 0, 16)? as u8;
        let trusted_proxies = match self.trust_forwarded_for {
            None | Some(false) => trusted_proxies,
            Some(true) if trusted_proxies == 0 => {
                tracing::warn!(
                    "[auth] trust_forwarded_for is deprecated: it means trusted_proxies = 1 \
                     (one proxy of yours appends to X-Forwarded-For); write that instead"
                );
                1
            }
            Some(true) => {
                return Err((
                    "trust_forwarded_for",
                    "is replaced by trusted_proxies; remove it (trusted_proxies is set)".into(),
                ))
            }
        };
        Ok(AuthConfig {
            idle_timeout: Duration::from_secs(idle),
            absolute_timeout: Duration::from_secs(absolute),
            cookie_secure: self.cookie_secure.unwrap_or(false),
            argon2: self.argon2,
            hash_workers: match self.hash_workers {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            },
            hash_queue: self.hash_queue,
            rate_limit: r,
            trusted_proxies,
            oauth_max_pending: oauth_max_pending as usize,
            oauth: OAuthConfig::default(),
        })
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        RawAuth::default()
            .resolve()
            .expect("default auth settings are valid")
    }
}

/// Who may call an http-plugin route, and what identity it sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// Anyone; the plugin never sees an identity.
    #[default]
    None,
    /// Anyone; the plugin sees the identity when the caller is logged in.
    Optional,
    /// Logged-in users only (401 otherwise).
    Required,
    /// Admins only (401 when not logged in, 403 for other users).
    Admin,
}
