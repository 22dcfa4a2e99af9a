//! One invocation: a fresh Store and instance from the plugin's `InstancePre`, bounded
//! by its deadline (epoch ticks make a busy guest yield and then stop it), its memory
//! cap and optional fuel. Whatever goes wrong becomes a typed [`InvokeError`]; the
//! cause is logged with the request id, never shown to the client.
//!
//! Sharing between plugins. An invocation first takes one of its plugin's slots (its
//! `max_concurrent`, by default its share of the pool), then an instance of the pool;
//! freed instances go to waiting plugins in turn ([`FairSemaphore`]), so a flooded
//! plugin holds at most its share and another plugin's call waits for at most one
//! release per plugin ahead of it. CPU-bound guests take turns on the busy lanes
//! (`lanes.rs`, which also derives the latency bound).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

use futures::future::BoxFuture;

use super::bindings::GuestError;
use super::error::{InvokeError, InvokeErrorKind};
use super::fair::FairPermit;
use super::lanes::Lane;
use super::limits::{DeadlineExceeded, MemoryLimitExceeded};
use super::registry::Plugin;
use super::state::PluginState;
use super::Runtime;
use crate::domain::{RequestId, World};

/// Extra time the outer timeout allows past the deadline, so that a spinning guest is
/// normally stopped by the epoch check (which knows it was a timeout) first.
const GRACE: Duration = Duration::from_millis(50);

/// A finished invocation's value and what the host must do before answering.
#[derive(Debug)]
pub struct Completed<T> {
    pub value: T,
    /// The plugin wrote to its kv store: flush before acknowledging.
    pub kv_dirty: bool,
}

pub(super) struct Invocation {
    pub store: Store<PluginState>,
    pub deadline: Instant,
    started: Instant,
    fuel_limit: Option<u64>,
    _slots: Slots,
}

/// Held for an invocation's life: one of the plugin's own slots and one instance of the
/// process-wide pool.
pub(super) struct Slots {
    _plugin: OwnedSemaphorePermit,
    _pool: FairPermit,
}

/// The guest call of one invocation, given the fresh Store; owns what it needs.
pub(super) type GuestCall<R> =
    Box<dyn for<'a> FnOnce(&'a mut Store<PluginState>) -> BoxFuture<'a, wasmtime::Result<R>> + Send>;

impl Runtime {
    /// Runs `call` in a fresh Store of `plugin` within its deadline and limits.
    pub(super) async fn run<R: Send>(
        &self,
        plugin: &Plugin,
        request_id: &RequestId,
        call: GuestCall<R>,
    ) -> Result<Completed<R>, InvokeError> {
        let slots = self.take_slots(plugin).await?;
        let lane = Lane::new(self.lanes.clone(), plugin.key, plugin.busy.clone());
        let mut inv = begin(plugin, request_id, slots, lane.clone())?;
        let guest = async {
            // A plugin with busy guests starts new ones only on a lane (see lanes.rs).
            lane.wait_turn().await;
            call(&mut inv.store).await
        };
        let result = tokio::time::timeout_at((inv.deadline + GRACE).into(), guest).await;
        self.finish(plugin, inv, result)
    }

    /// Waits for a slot of the plugin and of the instance pool (in turn with the other
    /// plugins), at most as long as the plugin's own deadline: a burst queues instead of
    /// failing, a flood gets 503.
    async fn take_slots(&self, plugin: &Plugin) -> Result<Slots, InvokeError> {
        let busy = || InvokeError::new(plugin.name(), InvokeErrorKind::Busy);
        let wait = plugin.caps.limits.timeout;
        let take = async {
            let own = plugin.slots.clone().acquire_owned().await.map_err(|_| busy())?;
            let pool = self.instances.acquire(plugin.key).await.ok_or_else(busy)?;
            Ok(Slots {
                _plugin: own,
                _pool: pool,
            })
        };
        tokio::time::timeout(wait, take).await.map_err(|_| busy())?
    }

    /// Turns the raw outcome into a value or a typed error, records metrics and logs.
    fn finish<R>(
        &self,
        plugin: &Plugin,
        inv: Invocation,
        result: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<Completed<R>, InvokeError> {
        let name = plugin.name().as_str();
        let elapsed = inv.started.elapsed();
        let request_id = inv.store.data().call.request_id.clone();
        if let Some(limit) = inv.fuel_limit {
            let used = limit.saturating_sub(inv.store.get_fuel().unwrap_or(0));
            plugin.metrics.fuel(used);
        }
        let kind = match result {
            Ok(Ok(value)) => {
                plugin.metrics.invocation("ok", elapsed);
                return Ok(Completed {
                    value,
                    kv_dirty: inv.store.data().call.kv_dirty,
                });
            }
            Ok(Err(err)) => classify(&err, plugin, &request_id),
            Err(_elapsed) => InvokeErrorKind::Timeout(plugin.caps.limits.timeout),
        };
        let outcome = match &kind {
            InvokeErrorKind::Timeout(_) => "timeout",
            InvokeErrorKind::MemoryLimit => "memory_limit",
            InvokeErrorKind::FuelExhausted => "fuel_exhausted",
            InvokeErrorKind::Busy => "busy",
            _ => "trapped",
        };
        plugin.metrics.invocation(outcome, elapsed);
        tracing::warn!(plugin = name, request_id = %request_id, outcome, elapsed_ms = elapsed.as_millis() as u64, "plugin invocation failed");
        Err(InvokeError::new(plugin.name(), kind))
    }
}

impl<T> Completed<Result<T, GuestError>> {
    /// Lifts the guest's own error into an [`InvokeError`].
    pub fn guest_result(self, plugin: &Plugin) -> Result<Completed<T>, InvokeError> {
        match self.value {
            Ok(value) => Ok(Completed {
                value,
                kv_dirty: self.kv_dirty,
            }),
            Err(e) => Err(InvokeError::new(plugin.name(), InvokeErrorKind::Guest(e))),
        }
    }
}

/// Takes a concurrency slot and builds the Store for one invocation.
pub(super) fn begin(
    plugin: &Plugin,
    request_id: &RequestId,
    slots: Slots,
    lane: Arc<Lane>,
) -> Result<Invocation, InvokeError> {
    let limits = &plugin.caps.limits;
    let started = Instant::now();
    let deadline = started + limits.timeout;
    let state = PluginState::new(plugin.caps.clone(), request_id.clone(), deadline, lane.clone());
    let mut store = Store::new(&plugin.engine, state);
    store.limiter(|s| &mut s.limiter);
    // Fuel is on for the engine when any plugin sets a budget; others get no budget.
    let fuel_limit = limits.fuel;
    if plugin.fuel_metered {
        store
            .set_fuel(fuel_limit.unwrap_or(u64::MAX))
            .map_err(|_| InvokeError::new(plugin.name(), InvokeErrorKind::Trapped))?;
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(DeadlineExceeded.into())
        } else {
            // Yield, and for a busy guest wait for its next turn on a lane; wasmtime sets
            // the next deadline (the next tick) once this future is done.
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(lane.clone().at_tick())))
        }
    });
    Ok(Invocation {
        store,
        deadline,
        started,
        fuel_limit,
        _slots: slots,
    })
}

pub(super) fn wrong_world(plugin: &Plugin, expected: World) -> InvokeError {
    InvokeError::new(
        plugin.name(),
        InvokeErrorKind::WrongWorld {
            expected,
            actual: plugin.world(),
        },
    )
}

fn classify(err: &wasmtime::Error, plugin: &Plugin, request_id: &RequestId) -> InvokeErrorKind {
    let name = plugin.name().as_str();
    if err.is::<DeadlineExceeded>() {
        return InvokeErrorKind::Timeout(plugin.caps.limits.timeout);
    }
    if let Some(m) = err.downcast_ref::<MemoryLimitExceeded>() {
        tracing::warn!(plugin = name, request_id = %request_id, limit = m.limit, desired = m.desired, "plugin hit its memory limit");
        return InvokeErrorKind::MemoryLimit;
    }
    if err.is::<PoolConcurrencyLimitError>() {
        tracing::warn!(plugin = name, request_id = %request_id, "instance pool exhausted");
        return InvokeErrorKind::Busy;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => InvokeErrorKind::FuelExhausted,
        Some(Trap::Interrupt) => InvokeErrorKind::Timeout(plugin.caps.limits.timeout),
        Some(trap) => {
            tracing::error!(plugin = name, request_id = %request_id, trap = %trap, cause = %format!("{err:#}"), "plugin trapped");
            InvokeErrorKind::Trapped
        }
        None => {
            tracing::error!(plugin = name, request_id = %request_id, cause = %format!("{err:#}"), "plugin failed");
            InvokeErrorKind::Trapped
        }
    }
}
