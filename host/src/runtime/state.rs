//! What a Store holds for one invocation: a WASI context that grants nothing, the
//! resource limiter, and the capabilities of exactly one plugin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_log::GuestLog;
use super::lanes::Lane;
use super::limits::GuestLimiter;
use super::registry::PluginCaps;
use crate::domain::{RequestId, World};

pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: GuestLimiter,
    pub(super) call: CallState,
}

/// Per-invocation bookkeeping the host imports consult.
pub struct CallState {
    pub caps: Arc<PluginCaps>,
    pub request_id: RequestId,
    pub deadline: Instant,
    pub log: GuestLog,
    pub outbound_calls: u32,
    /// Set when the plugin wrote to its kv store: the host flushes before answering.
    pub kv_dirty: bool,
    /// Its standing on the busy lanes (given up while a host call waits).
    pub lane: Arc<Lane>,
}

impl PluginState {
    pub fn new(caps: Arc<PluginCaps>, request_id: RequestId, deadline: Instant, lane: Arc<Lane>) -> Self {
        let log = GuestLog::new(
            caps.name.clone(),
            request_id.clone(),
            caps.limits.log_bytes_per_call,
            caps.limits.log_lines_per_call,
        );
        // Deny by default: no preopened dirs, no env, no args, no sockets, no name
        // lookups, stdin closed; stdout and stderr go to the host log.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(log.stream("stdout"))
            .stderr(log.stream("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if caps.world == World::Rules {
            deterministic(&mut builder);
        }
        let wasi = builder.build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(caps.limits.memory_bytes),
            call: CallState {
                caps,
                request_id,
                deadline,
                log,
                outbound_calls: 0,
                kv_dirty: false,
                lane,
            },
        }
    }
}

impl PluginState {
    /// The resource table with the invocation's lane, for `wasi:io/poll`.
    pub(super) fn laned_io(&mut self) -> super::wasi_poll::LanedIo<'_> {
        super::wasi_poll::LanedIo {
            table: &mut self.table,
            lane: &self.call.lane,
        }
    }
}

/// Rules must be pure functions of their input: their clocks are frozen at the Unix
/// epoch and their random numbers come from a fixed seed (the checkout's time is in the
/// cart). `std` still works in them (e.g. `HashMap`'s seeding), deterministically.
fn deterministic(builder: &mut wasmtime_wasi::WasiCtxBuilder) {
    use wasi_rand::SeedableRng;
    struct Frozen;
    impl HostWallClock for Frozen {
        fn resolution(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn now(&self) -> Duration {
            Duration::ZERO
        }
    }
    impl HostMonotonicClock for Frozen {
        fn resolution(&self) -> u64 {
            1_000_000_000
        }
        fn now(&self) -> u64 {
            0
        }
    }
    builder
        .wall_clock(Frozen)
        .monotonic_clock(Frozen)
        .secure_random(wasi_rand::rngs::StdRng::seed_from_u64(0))
        .insecure_random(wasi_rand::rngs::StdRng::seed_from_u64(1))
        .insecure_random_seed(0);
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
