//! argon2id on a bounded pool of dedicated threads, off the async runtime.
//!
//! `workers` threads (one per core by default) run at a lower scheduling priority (nice
//! 5), so a login flood uses spare CPU but the runtime's workers, which serve every
//! other route, win most of it whenever they have work. At most `queue` jobs wait; more are refused at once
//! (503) instead of piling up memory.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::config::Argon2Params;

type Job = Box<dyn FnOnce() + Send>;

/// The pool is saturated: the caller should answer 503 with Retry-After.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is saturated")]
pub struct HashBusy;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash uses other parameters than the configured ones.
    pub needs_rehash: bool,
}

pub struct HashPool {
    jobs: SyncSender<Job>,
    params: Params,
    /// A hash of a random password with the current parameters: verifying against it
    /// makes an unknown username cost exactly what a wrong password costs.
    dummy_hash: String,
}

impl HashPool {
    pub fn new(params: Argon2Params, workers: usize, queue: usize) -> Result<Arc<Self>, argon2::Error> {
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("plinth-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn a password hashing thread");
        }
        let dummy_hash = hash_with(&params, &uuid::Uuid::new_v4().to_string())
            .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        Ok(Arc::new(Self {
            jobs: tx,
            params,
            dummy_hash,
        }))
    }

    async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, HashBusy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => rx.await.map_err(|_| HashBusy),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Err(HashBusy),
        }
    }

    /// Hashes a new password (fresh random salt, PHC string).
    pub async fn hash(&self, password: String) -> Result<String, HashBusy> {
        let params = self.params.clone();
        self.run(move || hash_with(&params, &password))
            .await?
            .map_err(|_| HashBusy)
    }

    /// Checks `password` against `stored` (or, for an unknown user, against the dummy
    /// hash, so both cases take the same time and both fail).
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<Verified, HashBusy> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let params = self.params.clone();
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Verified {
                    matches: false,
                    needs_rehash: true,
                };
            };
            let matches = verify_reusing_memory(password.as_bytes(), &parsed).unwrap_or(false);
            let current = parsed.algorithm.as_str() == "argon2id"
                && Params::try_from(&parsed).is_ok_and(|p| {
                    p.m_cost() == params.m_cost()
                        && p.t_cost() == params.t_cost()
                        && p.p_cost() == params.p_cost()
                });
            Verified {
                matches: matches && known,
                needs_rehash: !current,
            }
        })
        .await
    }
}

thread_local! {
    /// The argon2 working memory of this hashing thread, kept between hashes: a fresh
    /// 19 MiB allocation per login costs thousands of page faults.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Recomputes the hash of `password` with the parameters and salt of `stored` and
/// compares it in constant time.
fn verify_reusing_memory(password: &[u8], stored: &PasswordHash) -> Option<bool> {
    let algorithm = Algorithm::try_from(stored.algorithm).ok()?;
    let version = match stored.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::V0x13,
    };
    let params = Params::try_from(stored).ok()?;
    let expected = stored.hash?;
    let mut salt_buf = [0u8; 64];
    let salt = stored.salt?.decode_b64(&mut salt_buf).ok()?;
    let mut out = vec![0u8; expected.len()];
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        blocks.resize(params.block_count(), Block::new());
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..])
            .ok()
    })?;
    Some(Output::new(&out).ok()? == expected)
}

fn hash_with(params: &Params, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    Ok(argon.hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Nice 5 for the calling thread (Linux: per-thread priority): request handling wins
/// when both want the CPU, yet logins keep about a quarter of it under full load.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread, no memory is shared.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Params {
        Argon2Params {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let pool = HashPool::new(cheap(), 1, 4).unwrap();
        let phc = pool.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        let ok = pool
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .unwrap();
        assert_eq!(
            ok,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = pool.verify("wrong".into(), Some(phc)).await.unwrap();
        assert!(!bad.matches);
        let unknown = pool.verify("anything".into(), None).await.unwrap();
        assert!(!unknown.matches);
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let old = HashPool::new(cheap(), 1, 4).unwrap();
        let phc = old.hash("correct horse".into()).await.unwrap();
        let mut newer = cheap();
        newer.iterations = 2;
        let pool = HashPool::new(newer, 1, 4).unwrap();
        let v = pool.verify("correct horse".into(), Some(phc)).await.unwrap();
        assert_eq!(
            v,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_queued() {
        let pool = HashPool::new(cheap(), 1, 1).unwrap();
        let jobs: Vec<_> = (0..8).map(|_| pool.hash("correct horse".into())).collect();
        let results = futures::future::join_all(jobs).await;
        assert!(results.iter().any(|r| r.is_err()), "some must be refused");
        assert!(results.iter().any(|r| r.is_ok()), "some must run");
    }
}
