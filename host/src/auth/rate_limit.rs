//! Per-client limits with sliding windows. `LoginLimiter`: failed logins per username
//! and per client IP; after a burst of failures the account cools down instead of
//! locking for good (ASVS V6.3.1). `IpLimiter`: any action per client IP (registration,
//! social-login starts), in bounded memory and O(1) time per call under a flood.
//!
//! An attempt is counted when it starts (so a thousand parallel guesses cannot slip in
//! before the first failure is recorded); a login's is refunded when it succeeds.
//! An IPv6 client counts by its /64: one host usually holds the whole prefix.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimits;
use crate::store::StoreError;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Live attempts one table remembers at most (a few MB). Past it the oldest attempt is
/// forgotten to make room: refusing instead would lock every client out for the length
/// of the window. Refunded attempts (a successful login, one turned away because the
/// hash pool was full) do not count, so only attempts that really cost something (a
/// failed login runs argon2) can push old ones out.
const MAX_TRACKED: usize = 100_000;

/// What a client address counts as: itself, or its /64 for IPv6.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        v4 => v4,
    }
}

#[derive(Default)]
struct Log {
    attempts: VecDeque<Instant>,
}

impl Log {
    fn count_within(&self, now: Instant, window: Duration) -> usize {
        self.attempts
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < window)
            .count()
    }

    /// When the oldest attempt inside `window` leaves it.
    fn retry_after(&self, now: Instant, window: Duration, limit: usize) -> Duration {
        let inside: Vec<&Instant> = self
            .attempts
            .iter()
            .filter(|t| now.duration_since(**t) < window)
            .collect();
        let idx = inside.len().saturating_sub(limit);
        inside
            .get(idx)
            .map(|t| window.saturating_sub(now.duration_since(**t)))
            .unwrap_or(Duration::ZERO)
    }
}

/// Attempts per key within a sliding `window`, in bounded memory and O(1) amortized time
/// per call: every attempt is in one queue in time order as well as in its key's log, so
/// forgetting old attempts pops the queue's front and never scans the table.
struct Windows<K> {
    window: Duration,
    logs: HashMap<K, Log>,
    order: VecDeque<(Instant, K)>,
    /// Attempts in `logs` (the queue also holds the entries of refunded ones until they
    /// leave it or the queue is compacted).
    live: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Windows<K> {
    fn new(window: Duration) -> Self {
        Self {
            window,
            logs: HashMap::new(),
            order: VecDeque::new(),
            live: 0,
        }
    }

    /// Forgets the attempts that left the window.
    fn slide(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= self.window)
        {
            self.forget_oldest();
        }
    }

    /// Forgets the oldest attempt. A refunded attempt left its log already: its queue
    /// entry then matches nothing and just goes.
    fn forget_oldest(&mut self) {
        let Some((at, key)) = self.order.pop_front() else {
            return;
        };
        if let Some(log) = self.logs.get_mut(&key) {
            if log.attempts.front() == Some(&at) {
                log.attempts.pop_front();
                self.live -= 1;
            }
            if log.attempts.is_empty() {
                self.logs.remove(&key);
            }
        }
    }

    /// Rebuilds the queue from the logs, dropping the entries of refunded attempts:
    /// O(n log n) once per [`MAX_TRACKED`] queue entries, so a flood of refunded
    /// attempts costs bounded memory.
    fn compact(&mut self) {
        let mut order: Vec<(Instant, K)> = self
            .logs
            .iter()
            .flat_map(|(key, log)| log.attempts.iter().map(move |at| (*at, key.clone())))
            .collect();
        order.sort_by_key(|(at, _)| *at);
        self.order = order.into();
    }

    fn log(&self, key: &K) -> Option<&Log> {
        self.logs.get(key)
    }

    fn record(&mut self, key: K, now: Instant) {
        while self.live >= MAX_TRACKED {
            self.forget_oldest();
        }
        if self.order.len() >= 2 * MAX_TRACKED {
            self.compact();
        }
        self.logs.entry(key.clone()).or_default().attempts.push_back(now);
        self.order.push_back((now, key));
        self.live += 1;
    }

    /// Takes back the attempt made at `at`: it no longer counts, nor takes room.
    fn refund(&mut self, key: &K, at: Instant) {
        if let Some(log) = self.logs.get_mut(key) {
            if let Some(pos) = log.attempts.iter().position(|t| *t == at) {
                log.attempts.remove(pos);
                self.live -= 1;
                if log.attempts.is_empty() {
                    self.logs.remove(key);
                }
            }
        }
    }
}

/// A granted attempt; hand it back to [`LoginAttempts::succeeded`] on success.
#[derive(Debug)]
pub struct Attempt {
    username: String,
    ip: IpAddr,
    at: Instant,
    /// Its row, when a shared store counted it.
    row: Option<String>,
}

impl Attempt {
    /// An attempt a shared store counted as `row`.
    pub fn stored(username: &str, ip: IpAddr, row: String) -> Self {
        Self {
            username: username.to_string(),
            ip,
            at: Instant::now(),
            row: Some(row),
        }
    }

    pub fn row(&self) -> Option<&str> {
        self.row.as_deref()
    }
}

/// Where failed logins are counted: in this process ([`LoginLimiter`]), or in the
/// database replicas share, so that they limit as one.
#[async_trait::async_trait]
pub trait LoginAttempts: Send + Sync {
    /// Counts an attempt by `username` from `ip`, or says how long to wait (nothing is
    /// counted then).
    async fn begin(&self, username: &str, ip: IpAddr) -> Result<Result<Attempt, Duration>, StoreError>;
    /// A successful login does not count against anyone.
    async fn succeeded(&self, attempt: Attempt) -> Result<(), StoreError>;
    /// Forgets attempts older than every window; how many.
    async fn sweep(&self) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl LoginAttempts for LoginLimiter {
    async fn begin(&self, username: &str, ip: IpAddr) -> Result<Result<Attempt, Duration>, StoreError> {
        Ok(self.begin_here(username, ip))
    }

    async fn succeeded(&self, attempt: Attempt) -> Result<(), StoreError> {
        self.refund_here(attempt);
        Ok(())
    }

    async fn sweep(&self) -> Result<u64, StoreError> {
        // The windows slide as they are used; nothing to sweep.
        Ok(0)
    }
}

pub struct LoginLimiter {
    limits: RateLimits,
    users: Mutex<Windows<String>>,
    ips: Mutex<Windows<IpAddr>>,
}

impl LoginLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            users: Mutex::new(Windows::new(HOUR)),
            ips: Mutex::new(Windows::new(MINUTE)),
        }
    }

    /// Grants an attempt, or says how long to wait.
    pub fn begin_here(&self, username: &str, ip: IpAddr) -> Result<Attempt, Duration> {
        let (now, ip) = (Instant::now(), rate_key(ip));
        let username = username.to_string();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        users.slide(now);
        ips.slide(now);
        let empty = Log::default();
        let user_log = users.log(&username).unwrap_or(&empty);
        let ip_log = ips.log(&ip).unwrap_or(&empty);
        let checks = [
            (user_log, MINUTE, self.limits.per_username_per_minute),
            (user_log, HOUR, self.limits.per_username_per_hour),
            (ip_log, MINUTE, self.limits.per_ip_per_minute),
        ];
        let wait = checks
            .iter()
            .filter(|(log, window, limit)| log.count_within(now, *window) >= *limit as usize)
            .map(|(log, window, limit)| log.retry_after(now, *window, *limit as usize))
            .max();
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        users.record(username.clone(), now);
        ips.record(ip, now);
        Ok(Attempt {
            username,
            ip,
            at: now,
            row: None,
        })
    }

    /// A successful login does not count against anyone.
    pub fn refund_here(&self, attempt: Attempt) {
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refund(&attempt.username, attempt.at);
        self.ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refund(&attempt.ip, attempt.at);
    }
}

/// At most `limit` attempts per client address in a sliding `window`, in bounded memory
/// (see [`Windows`]).
pub struct IpLimiter {
    limit: usize,
    inner: Mutex<Windows<IpAddr>>,
}

impl IpLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit as usize,
            inner: Mutex::new(Windows::new(window)),
        }
    }

    /// Counts an attempt from `ip`, or says how long to wait (nothing is counted then).
    pub fn try_acquire(&self, ip: IpAddr) -> Result<(), Duration> {
        let (now, key) = (Instant::now(), rate_key(ip));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.slide(now);
        if let Some(log) = inner.log(&key).filter(|log| log.attempts.len() >= self.limit) {
            return Err(log
                .retry_after(now, inner.window, self.limit)
                .max(Duration::from_secs(1)));
        }
        inner.record(key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(RateLimits {
            per_username_per_minute: 3,
            per_username_per_hour: 5,
            per_ip_per_minute: 4,
            ..RateLimits::default()
        })
    }

    #[test]
    fn limits_per_username_and_refunds_successes() {
        let l = limiter();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other_ip: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.begin_here("alice", ip).unwrap();
        }
        let wait = l.begin_here("alice", other_ip).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= MINUTE, "{wait:?}");
        // Another account from another address is unaffected.
        let ok = l.begin_here("bob", other_ip).unwrap();
        l.refund_here(ok);
        for _ in 0..3 {
            let a = l.begin_here("carol", other_ip).unwrap();
            l.refund_here(a);
        }
        assert!(l.begin_here("carol", other_ip).is_ok(), "successes never count");
    }

    #[test]
    fn limits_per_ip() {
        let l = limiter();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for name in ["a1", "a2", "a3", "a4"] {
            l.begin_here(name, ip).unwrap();
        }
        assert!(l.begin_here("a5", ip).is_err());
        assert!(l.begin_here("a5", "10.0.0.10".parse().unwrap()).is_ok());
    }

    #[test]
    fn ip_limiter_counts_per_address_and_per_ipv6_prefix() {
        let l = IpLimiter::new(2, MINUTE);
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(l.try_acquire(a).is_ok() && l.try_acquire(a).is_ok());
        let wait = l.try_acquire(a).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= MINUTE, "{wait:?}");
        assert!(l.try_acquire("203.0.113.8".parse().unwrap()).is_ok());
        // The same /64 is one client; the next /64 is another.
        assert!(l.try_acquire("2001:db8::1".parse().unwrap()).is_ok());
        assert!(l.try_acquire("2001:db8::ffff:2".parse().unwrap()).is_ok());
        assert!(l.try_acquire("2001:db8::3".parse().unwrap()).is_err());
        assert!(l.try_acquire("2001:db8:0:1::3".parse().unwrap()).is_ok());
        assert!(l.try_acquire("::ffff:203.0.113.7".parse().unwrap()).is_err());
    }

    #[test]
    fn ip_limiter_forgets_old_attempts_and_stays_bounded() {
        let l = IpLimiter::new(1, Duration::from_millis(50));
        let ip = |i: u32| IpAddr::from(i.to_be_bytes());
        for i in 0..1000 {
            l.try_acquire(ip(i)).unwrap();
        }
        assert!(l.try_acquire(ip(7)).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.try_acquire(ip(7)).is_ok(), "the window slid");
        let inner = l.inner.lock().unwrap();
        assert_eq!(
            (inner.order.len(), inner.logs.len()),
            (1, 1),
            "old attempts are gone"
        );
    }

    #[test]
    fn a_flood_of_addresses_past_the_memory_cap_locks_nobody_out() {
        let l = IpLimiter::new(1, MINUTE);
        for i in 0..MAX_TRACKED as u32 + 10 {
            l.try_acquire(IpAddr::from(i.to_be_bytes())).unwrap();
        }
        // A client the flood never touched still gets in, and memory stayed capped.
        assert!(l.try_acquire("198.51.100.1".parse().unwrap()).is_ok());
        let inner = l.inner.lock().unwrap();
        assert!(inner.order.len() <= MAX_TRACKED && inner.logs.len() <= MAX_TRACKED);
        drop(inner);
        // The newest addresses are still limited.
        let last = IpAddr::from((MAX_TRACKED as u32 + 9).to_be_bytes());
        assert!(l.try_acquire(last).is_err());
    }

    #[test]
    fn refunded_attempts_push_no_failures_out_and_cost_bounded_memory() {
        let l = limiter();
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        for _ in 0..3 {
            l.begin_here("target", ip).unwrap();
        }
        // A flood of attempts that are all refunded (the hash pool was full, or they
        // succeeded), far past the table's cap, from many addresses.
        for i in 0..3 * MAX_TRACKED as u32 {
            let a = l
                .begin_here(&format!("u{}", i % 7), IpAddr::from(i.to_be_bytes()))
                .unwrap();
            l.refund_here(a);
        }
        assert!(
            l.begin_here("target", "10.9.9.10".parse().unwrap()).is_err(),
            "the target's failures are still counted"
        );
        let users = l.users.lock().unwrap();
        assert!(users.order.len() <= 2 * MAX_TRACKED, "{}", users.order.len());
        assert_eq!(users.live, 3);
    }

    #[test]
    fn a_flood_of_usernames_keeps_logins_bounded_and_limits_in_force() {
        let l = limiter();
        let started = Instant::now();
        // Each guess names a new account from a new address: the tables stay capped
        // and no call scans them (200k calls would take minutes at O(n) each).
        for i in 0..2 * MAX_TRACKED as u32 {
            let _ = l.begin_here(&format!("u{i}"), IpAddr::from(i.to_be_bytes()));
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert!(l.users.lock().unwrap().order.len() <= MAX_TRACKED);
        assert!(l.ips.lock().unwrap().logs.len() <= MAX_TRACKED);
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        for _ in 0..3 {
            l.begin_here("target", ip).unwrap();
        }
        assert!(
            l.begin_here("target", ip).is_err(),
            "the per-username limit holds"
        );
    }
}
