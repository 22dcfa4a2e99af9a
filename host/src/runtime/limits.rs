//! The linear-memory cap of one invocation and the typed reasons an invocation is cut
//! short, so the host can tell a limit from a bug.

use wasmtime::ResourceLimiter;

/// Raised (as the trap's cause) when the guest passes its deadline.
#[derive(Debug, thiserror::Error)]
#[error("plugin deadline exceeded")]
pub struct DeadlineExceeded;

/// Raised (as the trap's cause) when the guest asks for more memory than its cap.
#[derive(Debug, thiserror::Error)]
#[error("plugin memory limit of {limit} bytes exceeded (its memories together asked for {desired})")]
pub struct MemoryLimitExceeded {
    pub limit: u64,
    pub desired: u64,
}

/// Most table elements one instance may hold, all its tables together.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The memory cap of one invocation, over **all** linear memories of its Store together:
/// a component may define several (one per core module instance, up to the pool's
/// `max_memories_per_component`), and a per-memory cap would let it use that many times
/// its limit. Every byte of every memory is granted here (wasmtime asks the limiter for
/// a memory's initial size too), so the running sum is the Store's total.
pub struct GuestLimiter {
    memory_cap: u64,
    /// Bytes granted so far, all memories together. Never credited back when a granted
    /// growth then fails (wasmtime cannot tell us reliably which one failed), so it can
    /// only over-count, never under-count.
    memory_granted: u64,
    table_elements: usize,
}

impl GuestLimiter {
    pub fn new(memory_cap: u64) -> Self {
        Self {
            memory_cap,
            memory_granted: 0,
            table_elements: 0,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `current` bytes of this memory are already in the sum.
        let total = self
            .memory_granted
            .saturating_sub(current as u64)
            .saturating_add(desired as u64);
        if total > self.memory_cap {
            return Err(MemoryLimitExceeded {
                limit: self.memory_cap,
                desired: total,
            }
            .into());
        }
        // Past the memory's own maximum the growth fails anyway: refuse it here so it is
        // not counted.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.memory_granted = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_elements
            .saturating_sub(current)
            .saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_cap_holds_for_all_memories_together() {
        let mut l = GuestLimiter::new(4 * MIB as u64);
        // Three memories created at 1 MiB each, then one grows to 2 MiB: 4 MiB in all.
        for _ in 0..3 {
            assert!(l.memory_growing(0, MIB, None).unwrap());
        }
        assert!(l.memory_growing(MIB, 2 * MIB, None).unwrap());
        // Any further byte, in any of them, is over the cap.
        let err = l.memory_growing(MIB, MIB + 65536, None).unwrap_err();
        let m = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!((m.limit, m.desired), (4 * MIB as u64, 4 * MIB as u64 + 65536));
        assert!(l.memory_growing(0, 65536, None).is_err(), "a fourth memory");
    }

    #[test]
    fn growth_past_a_memorys_own_maximum_is_refused_uncounted() {
        let mut l = GuestLimiter::new(4 * MIB as u64);
        assert!(l.memory_growing(0, MIB, Some(MIB)).unwrap());
        assert!(!l.memory_growing(MIB, 2 * MIB, Some(MIB)).unwrap());
        assert!(
            l.memory_growing(0, 3 * MIB, None).unwrap(),
            "the refused MiB was not counted"
        );
    }

    #[test]
    fn table_elements_are_capped_across_tables() {
        let mut l = GuestLimiter::new(MIB as u64);
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(!l.table_growing(0, 1, None).unwrap());
        assert!(!l.table_growing(10, 11, None).unwrap());
    }
}
