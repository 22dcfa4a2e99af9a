//! The linear-memory cap of one invocation and the typed reasons an invocation is cut
//! short, so the host can tell a limit from a bug.

use wasmtime::ResourceLimiter;

/// Raised (as the trap's cause) when the guest passes its deadline.
#[derive(Debug, thiserror::Error)]
#[error("plugin deadline exceeded")]
pub struct DeadlineExceeded;

/// Raised (as the trap's cause) when the guest asks for more memory than its cap.
#[derive(Debug, thiserror::Error)]
#[error("plugin memory limit of {limit} bytes exceeded (asked for {desired})")]
pub struct MemoryLimitExceeded {
    pub limit: u64,
    pub desired: u64,
}

/// Most table elements one instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

pub struct GuestLimiter {
    memory_cap: u64,
}

impl GuestLimiter {
    pub fn new(memory_cap: u64) -> Self {
        Self { memory_cap }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            return Err(MemoryLimitExceeded {
                limit: self.memory_cap,
                desired: desired as u64,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
