//! The argon2id ceiling: how many logins per second a server can verify at best.
//!
//! Every login costs the server one argon2id hash. Timed here, in the xtask process, on
//! one thread with exactly the server's parameters, the median hash time `t1` bounds the
//! login rate of a server that hashes on every CPU: `nproc / t1` per second. The login
//! benchmark reports its measured throughput as a fraction of that ceiling.
//!
//! The hashes reuse one memory buffer, so `t1` is the hash itself: a fresh 19 MiB
//! allocation per hash may page-fault (measured here: 0 to ~2,400 minor faults and up
//! to ~5 ms extra per hash, more often on threads other than the main one), and that is
//! a cost the server can avoid, not part of the ceiling.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Serialize;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub output_len: usize,
    pub salt_len: usize,
}

impl Argon2Cost {
    /// The server's defaults (`[auth.argon2]` unset): OWASP's m=19456 KiB, t=2, p=1,
    /// a 32-byte hash and a 16-byte salt, as the `argon2` crate's PHC hashing uses.
    pub const SERVER_DEFAULT: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
        output_len: 32,
        salt_len: 16,
    };

    /// `argon2id m=19456 KiB t=2 p=1`.
    pub fn describe(&self) -> String {
        format!(
            "argon2id m={} KiB t={} p={}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }

    fn params(&self) -> Result<Params> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(self.output_len),
        )
        .map_err(|e| anyhow!("invalid argon2 parameters {self:?}: {e}"))
    }

    fn hasher(&self) -> Result<Argon2<'static>> {
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params()?))
    }
}

/// Single-thread hash times.
#[derive(Debug, Clone, PartialEq)]
pub struct HashTiming {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    /// Hashes timed (warm-up hashes excluded).
    pub samples: usize,
}

/// Runs `warmup` untimed hashes, then times `samples` hashes one after the other on the
/// calling thread, all in one memory buffer (touched by the first hash).
pub fn time_hashes(cost: &Argon2Cost, warmup: usize, samples: usize) -> Result<HashTiming> {
    ensure!(samples > 0, "at least one hash must be timed");
    let hasher = cost.hasher()?;
    let mut memory = vec![Block::default(); cost.params()?.block_count()];
    let password = b"correct-horse-battery-staple-42";
    let mut salt = vec![0u8; cost.salt_len];
    let mut out = vec![0u8; cost.output_len];
    let mut times = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        // A different salt per hash, like the server's stored hashes.
        for (j, byte) in salt.iter_mut().enumerate() {
            *byte = (i * 31 + j) as u8;
        }
        let started = Instant::now();
        hasher
            .hash_password_into_with_memory(password, &salt, &mut out, &mut memory)
            .map_err(|e| anyhow!("argon2 hashing failed: {e}"))?;
        let elapsed = started.elapsed();
        std::hint::black_box(&out);
        if i >= warmup {
            times.push(elapsed);
        }
    }
    let median = median(&mut times).ok_or_else(|| anyhow!("no hash timed"))?;
    Ok(HashTiming {
        median,
        min: times[0],
        max: times[times.len() - 1],
        samples,
    })
}

/// The median of `times` (sorting them); the mean of the middle two for an even count.
pub fn median(times: &mut [Duration]) -> Option<Duration> {
    times.sort_unstable();
    let n = times.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(times[n / 2]),
        _ => Some((times[n / 2 - 1] + times[n / 2]) / 2),
    }
}

/// Hashes per second `threads` threads can do at best when one hash takes `t1`:
/// `threads / t1`. `None` when `t1` is zero.
pub fn ceiling_per_s(threads: usize, t1: Duration) -> Option<f64> {
    let secs = t1.as_secs_f64();
    (secs > 0.0).then(|| threads as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Cost = Argon2Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        output_len: 32,
        salt_len: 16,
    };

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [ms(7)]), Some(ms(7)));
        assert_eq!(median(&mut [ms(30), ms(10), ms(20)]), Some(ms(20)));
        assert_eq!(median(&mut [ms(40), ms(10), ms(30), ms(20)]), Some(ms(25)));
        // One slow outlier (e.g. a hiccup on a shared machine) does not move it.
        assert_eq!(median(&mut [ms(10), ms(11), ms(900)]), Some(ms(11)));
    }

    #[test]
    fn ceiling_is_threads_over_single_hash_time() {
        let c = ceiling_per_s(2, Duration::from_millis(25)).expect("nonzero");
        assert!((c - 80.0).abs() < 1e-9, "{c}");
        let c = ceiling_per_s(8, Duration::from_micros(12_500)).expect("nonzero");
        assert!((c - 640.0).abs() < 1e-9, "{c}");
        assert_eq!(ceiling_per_s(4, Duration::ZERO), None);
    }

    #[test]
    fn times_the_requested_number_of_hashes() {
        let t = time_hashes(&CHEAP, 1, 5).expect("hashes");
        assert_eq!(t.samples, 5);
        assert!(t.min <= t.median && t.median <= t.max, "{t:?}");
        assert!(t.median > Duration::ZERO);
        assert!(time_hashes(&CHEAP, 0, 0).is_err());
    }

    #[test]
    fn uses_argon2id_with_the_given_cost() {
        // The parameters take effect: another cost gives another hash, the same cost the
        // same hash.
        let hash = |cost: &Argon2Cost| {
            let mut out = vec![0u8; cost.output_len];
            cost.hasher()
                .expect("valid")
                .hash_password_into(b"password", &[1u8; 16], &mut out)
                .expect("hashes");
            out
        };
        let a = hash(&CHEAP);
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            hash(&Argon2Cost {
                iterations: 2,
                ..CHEAP
            })
        );
        assert_eq!(a, hash(&CHEAP));
        let invalid = Argon2Cost {
            memory_kib: 1,
            ..CHEAP
        };
        assert!(invalid.hasher().is_err());
        assert_eq!(
            Argon2Cost::SERVER_DEFAULT.describe(),
            "argon2id m=19456 KiB t=2 p=1"
        );
    }
}
