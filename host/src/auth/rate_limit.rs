//! Failed-login limits per username and per client IP, with sliding windows: after a
//! burst of failures the account cools down instead of locking for good (ASVS V6.3.1).
//!
//! An attempt is counted when it starts (so a thousand parallel guesses cannot slip in
//! before the first failure is recorded) and refunded when it succeeds.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimits;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Keys tracked before old, quiet ones are swept.
const SWEEP_ABOVE: usize = 100_000;

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
        let ip_log = ips.entry(ip).or_default();
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
            ip,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(RateLimits {
            per_username_per_minute: 3,
            per_username_per_hour: 5,
            per_ip_per_minute: 4,
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
}
