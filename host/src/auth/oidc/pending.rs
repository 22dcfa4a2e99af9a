//! Logins in progress: `state`, `nonce` and the PKCE verifier of each, bound to the
//! browser that started it by a secret in an HttpOnly cookie, single use, 10 minutes.
//! Kept in memory (a restart forgets them: the user clicks "login" again), bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use url::Url;

use crate::domain::ProviderName;

/// How long a started login may take.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Logins in progress at once; more are refused (503) rather than grow memory.
const MAX_PENDING: usize = 100_000;

/// 256 random bits, base64url: for state, nonce, PKCE verifier and the browser binding.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of a verifier (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn hash(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// One started login.
pub struct PendingLogin {
    pub provider: ProviderName,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_url: Url,
    /// Set for `POST /auth/oauth/{provider}/link`: the user to link the identity to.
    pub link_user_id: Option<String>,
    /// SHA-256 of the cookie secret of the browser that started it.
    binding: [u8; 32],
    created: Instant,
}

/// Logins in progress keyed by SHA-256 of their `state`.
#[derive(Default)]
pub struct PendingLogins {
    inner: Mutex<HashMap<[u8; 32], PendingLogin>>,
}

pub struct Started {
    pub state: String,
    pub nonce: String,
    pub pkce_challenge: String,
    /// Goes into the browser's cookie; nowhere else.
    pub binding: String,
}

impl PendingLogins {
    /// Records a new login; `None` when too many are in progress.
    pub fn start(
        &self,
        provider: ProviderName,
        return_url: Url,
        link_user_id: Option<String>,
    ) -> Option<Started> {
        let (state, nonce, verifier, binding) =
            (random_secret(), random_secret(), random_secret(), random_secret());
        let started = Started {
            state: state.clone(),
            nonce: nonce.clone(),
            pkce_challenge: pkce_challenge(&verifier),
            binding: binding.clone(),
        };
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_PENDING / 2 {
            map.retain(|_, p| p.created.elapsed() < PENDING_TTL);
        }
        if map.len() >= MAX_PENDING {
            return None;
        }
        map.insert(
            hash(&state),
            PendingLogin {
                provider,
                nonce,
                pkce_verifier: verifier,
                return_url,
                link_user_id,
                binding: hash(&binding),
                created: Instant::now(),
            },
        );
        Some(started)
    }

    /// Takes the login for `state` (it is gone afterwards, whatever happens next) if it
    /// is for `provider`, younger than [`PENDING_TTL`] and `binding` is the cookie of the
    /// browser that started it.
    pub fn take(&self, state: &str, binding: Option<&str>, provider: &ProviderName) -> Option<PendingLogin> {
        let pending = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hash(state))?;
        let same_browser = binding.is_some_and(|b| constant_time_eq(&hash(b), &pending.binding));
        (same_browser && &pending.provider == provider && pending.created.elapsed() < PENDING_TTL)
            .then_some(pending)
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_login_is_taken_once_by_its_own_browser() {
        let logins = PendingLogins::default();
        let google = ProviderName::parse("google").unwrap();
        let url = Url::parse("https://shop.example/").unwrap();
        let s = logins.start(google.clone(), url.clone(), None).unwrap();
        assert!(logins.take(&s.state, Some(&s.binding), &google).is_some());
        assert!(
            logins.take(&s.state, Some(&s.binding), &google).is_none(),
            "single use"
        );

        let s = logins.start(google.clone(), url.clone(), None).unwrap();
        assert!(logins.take(&s.state, Some("another browser"), &google).is_none());
        assert!(
            logins.take(&s.state, Some(&s.binding), &google).is_none(),
            "burnt by the failed try"
        );

        let s = logins.start(google.clone(), url, None).unwrap();
        let other = ProviderName::parse("github").unwrap();
        assert!(logins.take(&s.state, Some(&s.binding), &other).is_none());
        assert_ne!(s.state, s.nonce);
    }
}
