//! What a Store holds for one invocation: a WASI context that grants nothing, the
//! resource limiter, and the capabilities of exactly one plugin.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_log::GuestLog;
use super::limits::GuestLimiter;
use super::registry::PluginCaps;
use crate::domain::RequestId;

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
}

impl PluginState {
    pub fn new(caps: Arc<PluginCaps>, request_id: RequestId, deadline: Instant) -> Self {
        let log = GuestLog::new(
            caps.name.clone(),
            request_id.clone(),
            caps.limits.log_bytes_per_call,
        );
        // Deny by default: no preopened dirs, no env, no args, no sockets, no name
        // lookups, stdin closed; stdout and stderr go to the host log.
        let wasi = WasiCtx::builder()
            .stdout(log.stream("stdout"))
            .stderr(log.stream("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
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
            },
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
