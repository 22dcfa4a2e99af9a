//! Logins in progress: `state`, `nonce` and the PKCE verifier of each, bound to the
//! browser that started it by a secret in an HttpOnly cookie, single use, 10 minutes.
//!
//! They sit behind [`PendingStore`], whose contract is what a database shared by
//! replicas can keep too (a login started on one replica finishes on another): insert
//! refuses past a hard cap instead of evicting live logins, take is atomic and single
//! use, and expiry is the store's. [`MemoryPending`] is the one-process store: a map
//! plus a time-ordered index, so every operation is O(log n) and a flood of starts
//! never makes a login scan the table. A restart forgets them: the user clicks again.

use std::collections::{BTreeMap, HashMap};
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

/// What a login is stored under: the SHA-256 of its `state` (the state itself, which
/// travels in URLs, is kept nowhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey([u8; 32]);

impl StateKey {
    pub fn of(state: &str) -> Self {
        Self(hash(state))
    }
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
}

/// The store is at its cap: the start is refused (503), no live login is evicted.
#[derive(Debug)]
pub struct Full;

/// Where logins in progress are kept.
pub trait PendingStore: Send + Sync {
    /// Keeps `login` under `key` for [`PENDING_TTL`]; `Err(Full)` at the cap.
    fn insert(&self, key: StateKey, login: PendingLogin) -> Result<(), Full>;
    /// Removes the login under `key` and returns it if it has not expired: at most one
    /// caller ever gets it.
    fn take(&self, key: &StateKey) -> Option<PendingLogin>;
    /// Logins held now (for `/metrics`).
    fn count(&self) -> usize;
}

/// The in-memory [`PendingStore`]: at most `cap` logins.
pub struct MemoryPending {
    cap: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    logins: HashMap<StateKey, (Age, PendingLogin)>,
    /// The same logins in expiry order; the sequence number breaks ties.
    by_age: BTreeMap<Age, StateKey>,
    next: u64,
}

type Age = (Instant, u64);

impl Table {
    /// Drops expired logins from the old end: amortized O(log n) per login ever added.
    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.by_age.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.logins.remove(&key);
        }
    }
}

impl MemoryPending {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            table: Mutex::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PendingStore for MemoryPending {
    fn insert(&self, key: StateKey, login: PendingLogin) -> Result<(), Full> {
        let now = Instant::now();
        let mut t = self.table();
        t.expire(now);
        if t.logins.len() >= self.cap {
            return Err(Full);
        }
        let age = (now + PENDING_TTL, t.next);
        t.next += 1;
        t.by_age.insert(age, key);
        // 256 random bits never collide; if they did, the old entry leaves both maps.
        if let Some((old, _)) = t.logins.insert(key, (age, login)) {
            t.by_age.remove(&old);
        }
        Ok(())
    }

    fn take(&self, key: &StateKey) -> Option<PendingLogin> {
        let now = Instant::now();
        let mut t = self.table();
        let (age, login) = t.logins.remove(key)?;
        t.by_age.remove(&age);
        (age.0 > now).then_some(login)
    }

    fn count(&self) -> usize {
        let mut t = self.table();
        t.expire(Instant::now());
        t.logins.len()
    }
}

/// Logins in progress: makes the secrets, checks a returning browser.
pub struct PendingLogins {
    store: Box<dyn PendingStore>,
}

pub struct Started {
    pub state: String,
    pub nonce: String,
    pub pkce_challenge: String,
    /// Goes into the browser's cookie; nowhere else.
    pub binding: String,
}

impl PendingLogins {
    pub fn new(store: Box<dyn PendingStore>) -> Self {
        Self { store }
    }

    /// Records a new login; `Err(Full)` when too many are in progress.
    pub fn start(
        &self,
        provider: ProviderName,
        return_url: Url,
        link_user_id: Option<String>,
    ) -> Result<Started, Full> {
        let (state, nonce, verifier, binding) =
            (random_secret(), random_secret(), random_secret(), random_secret());
        let login = PendingLogin {
            provider,
            nonce: nonce.clone(),
            pkce_verifier: verifier.clone(),
            return_url,
            link_user_id,
            binding: hash(&binding),
        };
        self.store.insert(StateKey::of(&state), login)?;
        Ok(Started {
            pkce_challenge: pkce_challenge(&verifier),
            state,
            nonce,
            binding,
        })
    }

    /// Takes the login for `state` (it is gone afterwards, whatever happens next) if it
    /// is for `provider`, younger than [`PENDING_TTL`] and `binding` is the cookie of the
    /// browser that started it.
    pub fn take(&self, state: &str, binding: Option<&str>, provider: &ProviderName) -> Option<PendingLogin> {
        let pending = self.store.take(&StateKey::of(state))?;
        let same_browser = binding.is_some_and(|b| constant_time_eq(&hash(b), &pending.binding));
        (same_browser && &pending.provider == provider).then_some(pending)
    }

    /// Logins in progress now.
    pub fn count(&self) -> usize {
        self.store.count()
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
        let logins = PendingLogins::new(Box::new(MemoryPending::new(10)));
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

    fn login() -> PendingLogin {
        PendingLogin {
            provider: ProviderName::parse("google").unwrap(),
            nonce: random_secret(),
            pkce_verifier: random_secret(),
            return_url: Url::parse("https://shop.example/").unwrap(),
            link_user_id: None,
            binding: hash("browser"),
        }
    }

    #[test]
    fn a_full_store_refuses_and_keeps_its_logins() {
        let store = MemoryPending::new(3);
        let keys: Vec<StateKey> = (0..3).map(|i| StateKey::of(&format!("s{i}"))).collect();
        for k in &keys {
            store.insert(*k, login()).unwrap();
        }
        assert!(store.insert(StateKey::of("s3"), login()).is_err());
        assert_eq!(store.count(), 3);
        assert!(
            store.take(&keys[1]).is_some(),
            "a live login survives the refusal"
        );
        assert!(store.take(&keys[1]).is_none(), "single use");
        assert!(
            store.insert(StateKey::of("s3"), login()).is_ok(),
            "its slot is free again"
        );
        let t = store.table();
        assert_eq!((t.logins.len(), t.by_age.len()), (3, 3));
    }

    #[test]
    fn expired_logins_are_not_taken_and_leave_the_store() {
        let store = MemoryPending::new(2);
        let past = Instant::now();
        {
            // Two logins that expired just now, as if started 10 minutes ago.
            let mut t = store.table();
            for (i, name) in ["old1", "old2"].iter().enumerate() {
                let age = (past, i as u64);
                t.by_age.insert(age, StateKey::of(name));
                t.logins.insert(StateKey::of(name), (age, login()));
            }
            t.next = 2;
        }
        assert!(store.take(&StateKey::of("old1")).is_none(), "expired");
        assert!(
            store.insert(StateKey::of("new"), login()).is_ok(),
            "expired ones made room"
        );
        assert_eq!(store.count(), 1);
        assert!(store.take(&StateKey::of("new")).is_some());
    }
}
