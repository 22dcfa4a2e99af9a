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

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Keys tracked before old, quiet ones are swept.
const SWEEP_ABOVE: usize = 100_000;
/// Attempts an [`IpLimiter`] remembers at most (a few MB); past it, new attempts wait
/// for the oldest to leave the window rather than grow memory.
const MAX_TRACKED: usize = 100_000;

/// What a client address counts as: itself, or its /64 for IPv6.
fn rate_key(ip: IpAddr) -> IpAddr {
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
    fn prune(&mut self, now: Instant, window: Duration) {
        while self
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.attempts.pop_front();
        }
    }

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

/// A granted attempt; call [`LoginLimiter::succeeded`] with it on success.
#[derive(Debug)]
pub struct Attempt {
    username: String,
    ip: IpAddr,
    at: Instant,
}

pub struct LoginLimiter {
    limits: RateLimits,
    users: Mutex<HashMap<String, Log>>,
    ips: Mutex<HashMap<IpAddr, Log>>,
}

impl LoginLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            users: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// Grants an attempt, or says how long to wait.
    pub fn begin(&self, username: &str, ip: IpAddr) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() > SWEEP_ABOVE {
            users.retain(|_, log| {
                log.prune(now, HOUR);
                !log.attempts.is_empty()
            });
        }
        if ips.len() > SWEEP_ABOVE {
            ips.retain(|_, log| {
                log.prune(now, MINUTE);
                !log.attempts.is_empty()
            });
        }
        let user_log = users.entry(username.to_string()).or_default();
        user_log.prune(now, HOUR);
        let ip_log = ips.entry(rate_key(ip)).or_default();
        ip_log.prune(now, MINUTE);

        let checks = [
            (user_log as &Log, MINUTE, self.limits.per_username_per_minute),
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
        user_log.attempts.push_back(now);
        ip_log.attempts.push_back(now);
        Ok(Attempt {
            username: username.to_string(),
            ip: rate_key(ip),
            at: now,
        })
    }

    /// A successful login does not count against anyone.
    pub fn succeeded(&self, attempt: Attempt) {
        let remove = |log: &mut Log| {
            if let Some(pos) = log.attempts.iter().position(|t| *t == attempt.at) {
                log.attempts.remove(pos);
            }
        };
        if let Some(log) = self
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&attempt.username)
        {
            remove(log);
        }
        if let Some(log) = self
            .ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&attempt.ip)
        {
            remove(log);
        }
    }
}

/// At most `limit` attempts per client address in a sliding `window`.
///
/// Every attempt is in one queue in time order as well as in its address's log, so
/// forgetting old attempts pops the queue's front: no call ever scans the table, and a
/// flood of addresses costs memory only up to [`MAX_TRACKED`].
pub struct IpLimiter {
    limit: usize,
    window: Duration,
    inner: Mutex<IpWindows>,
}

#[derive(Default)]
struct IpWindows {
    logs: HashMap<IpAddr, Log>,
    order: VecDeque<(Instant, IpAddr)>,
}

impl IpLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit as usize,
            window,
            inner: Mutex::default(),
        }
    }

    /// Counts an attempt from `ip`, or says how long to wait (nothing is counted then).
    pub fn try_acquire(&self, ip: IpAddr) -> Result<(), Duration> {
        let (now, key) = (Instant::now(), rate_key(ip));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let IpWindows { logs, order } = &mut *inner;
        while let Some(&(at, old)) = order.front() {
            if now.duration_since(at) < self.window {
                break;
            }
            order.pop_front();
            if let Some(log) = logs.get_mut(&old) {
                log.attempts.pop_front();
                if log.attempts.is_empty() {
                    logs.remove(&old);
                }
            }
        }
        if let Some(log) = logs.get(&key).filter(|log| log.attempts.len() >= self.limit) {
            return Err(log
                .retry_after(now, self.window, self.limit)
                .max(Duration::from_secs(1)));
        }
        if let Some(&(oldest, _)) = order.front().filter(|_| order.len() >= MAX_TRACKED) {
            return Err(self
                .window
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_secs(1)));
        }
        logs.entry(key).or_default().attempts.push_back(now);
        order.push_back((now, key));
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
            l.begin("alice", ip).unwrap();
        }
        let wait = l.begin("alice", other_ip).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= MINUTE, "{wait:?}");
        // Another account from another address is unaffected.
        let ok = l.begin("bob", other_ip).unwrap();
        l.succeeded(ok);
        for _ in 0..3 {
            let a = l.begin("carol", other_ip).unwrap();
            l.succeeded(a);
        }
        assert!(l.begin("carol", other_ip).is_ok(), "successes never count");
    }

    #[test]
    fn limits_per_ip() {
        let l = limiter();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for name in ["a1", "a2", "a3", "a4"] {
            l.begin(name, ip).unwrap();
        }
        assert!(l.begin("a5", ip).is_err());
        assert!(l.begin("a5", "10.0.0.10".parse().unwrap()).is_ok());
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
    fn ip_limiter_refuses_past_its_memory_cap() {
        let l = IpLimiter::new(1, MINUTE);
        for i in 0..MAX_TRACKED as u32 {
            l.try_acquire(IpAddr::from(i.to_be_bytes())).unwrap();
        }
        let wait = l.try_acquire("198.51.100.1".parse().unwrap()).unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
    }
}
