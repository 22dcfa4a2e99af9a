//! Logins in progress: `state`, `nonce` and the PKCE verifier of each, bound to the
//! browser that started it by a secret in an HttpOnly cookie, single use, 10 minutes.
//!
//! They sit behind [`PendingStore`], whose contract is what a database shared by
//! replicas can keep too (a login started on one replica finishes on another): insert
//! refuses past a hard cap instead of evicting live logins, take is atomic and single
//! use, and expiry is the store's. At the cap, a new login may take the place of the
//! oldest login of the *network* (IPv4 /24, IPv6 /48) holding the most, and only when
//! that network holds at least two more than the newcomer's: a flood from a few networks
//! then costs its own logins, never a login a browser from elsewhere is in the middle
//! of, and the flooder's own new starts are refused (503). [`MemoryPending`] is the
//! one-process store: a map plus a time-ordered index and per-network counts, so every
//! operation is O(log n) and a flood of starts never makes a login scan the table. A
//! restart forgets them: the user clicks again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// The network of the client that started it (see [`network_of`]).
    network: IpAddr,
}

/// A login as a shared store keeps it: text fields only, the browser binding as the
/// hex of its hash, the network apart (a store indexes it).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StoredLogin {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    return_url: String,
    link_user_id: Option<String>,
    binding: String,
}

impl PendingLogin {
    /// The network it counts in (see [`network_of`]).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn to_stored(&self) -> StoredLogin {
        StoredLogin {
            provider: self.provider.to_string(),
            nonce: self.nonce.clone(),
            pkce_verifier: self.pkce_verifier.clone(),
            return_url: self.return_url.to_string(),
            link_user_id: self.link_user_id.clone(),
            binding: hex::encode(self.binding),
        }
    }

    /// The login back from its stored form; `None` if the store holds something this
    /// version cannot read (the login then fails as an unknown state would).
    pub fn from_stored(stored: StoredLogin, network: IpAddr) -> Option<Self> {
        Some(Self {
            provider: ProviderName::parse(&stored.provider).ok()?,
            nonce: stored.nonce,
            pkce_verifier: stored.pkce_verifier,
            return_url: Url::parse(&stored.return_url).ok()?,
            link_user_id: stored.link_user_id,
            binding: hex::decode(&stored.binding).ok()?.try_into().ok()?,
            network,
        })
    }
}

impl StateKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The network a client address counts in for the cap: its IPv4 /24 or IPv6 /48 (what
/// one party commonly holds).
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
    }
}

/// The store is at its cap and the newcomer's network holds as many as any: the start
/// is refused (503).
#[derive(Debug)]
pub struct Full;

/// Where logins in progress are kept.
#[async_trait::async_trait]
pub trait PendingStore: Send + Sync {
    /// Keeps `login` under `key` for [`PENDING_TTL`]. At the cap it takes the place of
    /// the oldest login of the network holding the most, if that network holds at
    /// least two more than `login`'s; otherwise `Err(Full)`.
    async fn insert(&self, key: StateKey, login: PendingLogin) -> Result<(), Full>;
    /// Removes the login under `key` and returns it if it has not expired: at most one
    /// caller ever gets it.
    async fn take(&self, key: &StateKey) -> Option<PendingLogin>;
    /// Logins held now (for `/metrics`).
    async fn count(&self) -> usize;
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
    /// Each network's logins, oldest first.
    nets: HashMap<IpAddr, BTreeSet<Age>>,
    /// (logins held, network) for every network holding any: the last is the heaviest.
    weights: BTreeSet<(usize, IpAddr)>,
    next: u64,
}

type Age = (Instant, u64);

impl Table {
    /// Drops expired logins from the old end: amortized O(log n) per login ever added.
    fn expire(&mut self, now: Instant) {
        while let Some((age, key)) = self.by_age.first_key_value() {
            if age.0 > now {
                break;
            }
            let key = *key;
            self.remove(&key);
        }
    }

    fn held_by(&self, net: &IpAddr) -> usize {
        self.nets.get(net).map_or(0, BTreeSet::len)
    }

    /// Moves `net` from weight `before` to `before ± 1`.
    fn reweigh(&mut self, net: IpAddr, before: usize, after: usize) {
        self.weights.remove(&(before, net));
        if after > 0 {
            self.weights.insert((after, net));
        }
    }

    fn add(&mut self, key: StateKey, age: Age, login: PendingLogin) {
        let net = login.network;
        let before = self.held_by(&net);
        self.by_age.insert(age, key);
        self.nets.entry(net).or_default().insert(age);
        self.reweigh(net, before, before + 1);
        // 256 random bits never collide; if they did, the old entry leaves every index.
        if let Some((old_age, old)) = self.logins.insert(key, (age, login)) {
            self.by_age.remove(&old_age);
            self.forget_in_net(old.network, old_age);
        }
    }

    fn remove(&mut self, key: &StateKey) -> Option<(Age, PendingLogin)> {
        let (age, login) = self.logins.remove(key)?;
        self.by_age.remove(&age);
        self.forget_in_net(login.network, age);
        Some((age, login))
    }

    fn forget_in_net(&mut self, net: IpAddr, age: Age) {
        let before = self.held_by(&net);
        if let Some(ages) = self.nets.get_mut(&net) {
            if ages.remove(&age) {
                if ages.is_empty() {
                    self.nets.remove(&net);
                }
                self.reweigh(net, before, before - 1);
            }
        }
    }

    /// Makes room for a login from `net` at the cap: drops the oldest login of the
    /// heaviest network if it holds at least two more than `net`. Whether it did.
    fn evict_for(&mut self, net: &IpAddr) -> bool {
        let Some(&(most, heavy)) = self.weights.last() else {
            return false;
        };
        if most < self.held_by(net) + 2 {
            return false;
        }
        let oldest = self.nets.get(&heavy).and_then(|ages| ages.first().copied());
        let Some(key) = oldest.and_then(|age| self.by_age.get(&age).copied()) else {
            return false;
        };
        self.remove(&key);
        true
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

#[async_trait::async_trait]
impl PendingStore for MemoryPending {
    async fn insert(&self, key: StateKey, login: PendingLogin) -> Result<(), Full> {
        let now = Instant::now();
        let mut t = self.table();
        t.expire(now);
        if t.logins.len() >= self.cap && !t.evict_for(&login.network) {
            return Err(Full);
        }
        let age = (now + PENDING_TTL, t.next);
        t.next += 1;
        t.add(key, age, login);
        Ok(())
    }

    async fn take(&self, key: &StateKey) -> Option<PendingLogin> {
        let now = Instant::now();
        let (age, login) = self.table().remove(key)?;
        (age.0 > now).then_some(login)
    }

    async fn count(&self) -> usize {
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
    pub async fn start(
        &self,
        provider: ProviderName,
        return_url: Url,
        link_user_id: Option<String>,
        client: IpAddr,
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
            network: network_of(client),
        };
        self.store.insert(StateKey::of(&state), login).await?;
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
    pub async fn take(
        &self,
        state: &str,
        binding: Option<&str>,
        provider: &ProviderName,
    ) -> Option<PendingLogin> {
        let pending = self.store.take(&StateKey::of(state)).await?;
        let same_browser = binding.is_some_and(|b| constant_time_eq(&hash(b), &pending.binding));
        (same_browser && &pending.provider == provider).then_some(pending)
    }

    /// Logins in progress now.
    pub async fn count(&self) -> usize {
        self.store.count().await
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

    #[tokio::test]
    async fn a_login_is_taken_once_by_its_own_browser() {
        let logins = PendingLogins::new(Box::new(MemoryPending::new(10)));
        let google = ProviderName::parse("google").unwrap();
        let url = Url::parse("https://shop.example/").unwrap();
        let s = logins
            .start(google.clone(), url.clone(), None, HOME)
            .await
            .unwrap();
        assert!(logins.take(&s.state, Some(&s.binding), &google).await.is_some());
        assert!(
            logins.take(&s.state, Some(&s.binding), &google).await.is_none(),
            "single use"
        );

        let s = logins
            .start(google.clone(), url.clone(), None, HOME)
            .await
            .unwrap();
        assert!(logins
            .take(&s.state, Some("another browser"), &google)
            .await
            .is_none());
        assert!(
            logins.take(&s.state, Some(&s.binding), &google).await.is_none(),
            "burnt by the failed try"
        );

        let s = logins.start(google.clone(), url, None, HOME).await.unwrap();
        let other = ProviderName::parse("github").unwrap();
        assert!(logins.take(&s.state, Some(&s.binding), &other).await.is_none());
        assert_ne!(s.state, s.nonce);
    }

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    fn login() -> PendingLogin {
        login_from(HOME)
    }

    fn login_from(client: IpAddr) -> PendingLogin {
        PendingLogin {
            provider: ProviderName::parse("google").unwrap(),
            nonce: random_secret(),
            pkce_verifier: random_secret(),
            return_url: Url::parse("https://shop.example/").unwrap(),
            link_user_id: None,
            binding: hash("browser"),
            network: network_of(client),
        }
    }

    #[tokio::test]
    async fn a_full_store_refuses_and_keeps_its_logins() {
        let store = MemoryPending::new(3);
        let keys: Vec<StateKey> = (0..3).map(|i| StateKey::of(&format!("s{i}"))).collect();
        for k in &keys {
            store.insert(*k, login()).await.unwrap();
        }
        assert!(store.insert(StateKey::of("s3"), login()).await.is_err());
        assert_eq!(store.count().await, 3);
        assert!(
            store.take(&keys[1]).await.is_some(),
            "a live login survives the refusal"
        );
        assert!(store.take(&keys[1]).await.is_none(), "single use");
        assert!(
            store.insert(StateKey::of("s3"), login()).await.is_ok(),
            "its slot is free again"
        );
        let t = store.table();
        assert_eq!((t.logins.len(), t.by_age.len()), (3, 3));
    }

    #[tokio::test]
    async fn at_the_cap_a_flooding_network_loses_its_oldest_logins_not_anyone_elses() {
        let store = MemoryPending::new(4);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        store
            .insert(StateKey::of("alice"), login_from(ip("198.51.100.9")))
            .await
            .unwrap();
        // One /24 (and one /48) fills the rest.
        for (i, key) in ["f1", "f2", "f3"].iter().enumerate() {
            store
                .insert(StateKey::of(key), login_from(ip(&format!("203.0.113.{i}"))))
                .await
                .unwrap();
        }
        // The flooder's own next start is refused: it already holds the most.
        assert!(store
            .insert(StateKey::of("f4"), login_from(ip("203.0.113.200")))
            .await
            .is_err());
        // Someone from elsewhere takes the place of the flooder's oldest.
        store
            .insert(StateKey::of("bob"), login_from(ip("2001:db8:1::1")))
            .await
            .unwrap();
        assert!(store.take(&StateKey::of("f1")).await.is_none(), "evicted");
        // Then the flooder holds 2 against bob's network's 1: no more evictions for
        // that network (no ping-pong), and alice was never touched.
        assert!(store
            .insert(StateKey::of("bob2"), login_from(ip("2001:db8:1:ffff::2")))
            .await
            .is_err());
        assert!(store.take(&StateKey::of("alice")).await.is_some());
        let t = store.table();
        assert_eq!(t.logins.len(), 3);
        let weights: usize = t.weights.iter().map(|(n, _)| n).sum();
        assert_eq!(weights, 3, "the per-network counts follow the table");
        assert_eq!(t.nets.values().map(BTreeSet::len).sum::<usize>(), 3);
    }

    #[test]
    fn networks_are_ipv4_slash_24_and_ipv6_slash_48() {
        let n = |s: &str| network_of(s.parse().unwrap()).to_string();
        assert_eq!(n("203.0.113.77"), "203.0.113.0");
        assert_eq!(n("::ffff:203.0.113.77"), "203.0.113.0");
        assert_eq!(n("2001:db8:aa:bb::1"), "2001:db8:aa::");
    }

    #[tokio::test]
    async fn expired_logins_are_not_taken_and_leave_the_store() {
        let store = MemoryPending::new(2);
        let past = Instant::now();
        {
            // Two logins that expired just now, as if started 10 minutes ago.
            let mut t = store.table();
            for (i, name) in ["old1", "old2"].iter().enumerate() {
                t.add(StateKey::of(name), (past, i as u64), login());
            }
            t.next = 2;
        }
        assert!(store.take(&StateKey::of("old1")).await.is_none(), "expired");
        assert!(
            store.insert(StateKey::of("new"), login()).await.is_ok(),
            "expired ones made room"
        );
        assert_eq!(store.count().await, 1);
        assert!(store.take(&StateKey::of("new")).await.is_some());
    }
}
