//! `wasi:io/poll` as wasmtime-wasi implements it, except that a guest which waits in it
//! gives up its busy lane while it waits. A guest sleeps through `poll` or
//! `pollable.block` on a clock (there is nothing else here to wait on: no sockets, no
//! files, stdin closed); holding a lane through the sleep would keep every other busy
//! guest waiting until it wakes or reaches its deadline. A poll that is ready at once
//! keeps the lane: giving it up and queueing again on every call would make a guest that
//! polls often wait a turn each time (tried as a call hook on every host call: hello's
//! p99 under the noisy flood went from 1.6× to 143× its idle p99).

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi_io::bindings::wasi::io::poll;
use wasmtime_wasi_io::poll::DynPollable;

use super::lanes::Lane;
use super::state::PluginState;

/// Replaces wasmtime-wasi's `wasi:io/poll` in `linker` (which must have it already).
pub fn shadow(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<PluginState, LanedPoll>(linker, PluginState::laned_io)?;
    linker.allow_shadowing(false);
    Ok(())
}

struct LanedPoll;

impl HasData for LanedPoll {
    type Data<'a> = LanedIo<'a>;
}

/// The invocation's resource table and its lane.
pub struct LanedIo<'a> {
    pub table: &'a mut ResourceTable,
    pub lane: &'a Lane,
}

/// Runs `wait` holding the lane if it is ready at once, otherwise without the lane
/// (the guest then waits for its turn before it runs wasm again).
async fn off_lane_if_waiting<F: Future>(lane: &Lane, wait: F) -> F::Output {
    let mut wait = pin!(wait);
    let first = std::future::poll_fn(|cx| Poll::Ready(wait.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => out,
        Poll::Pending => lane.off_cpu(wait).await,
    }
}

impl poll::Host for LanedIo<'_> {
    async fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        off_lane_if_waiting(self.lane, poll::Host::poll(&mut *self.table, pollables)).await
    }
}

impl poll::HostPollable for LanedIo<'_> {
    async fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        off_lane_if_waiting(self.lane, poll::HostPollable::block(&mut *self.table, pollable)).await
    }

    async fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(&mut *self.table, pollable).await
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(&mut *self.table, pollable)
    }
}
