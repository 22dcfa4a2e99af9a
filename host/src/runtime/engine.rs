//! The one wasmtime `Engine`: pooling allocator sized from config, epoch interruption
//! driven by one ticker thread for the whole process, fuel only when a plugin asks.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::{PluginConfig, RuntimeConfig};

/// Native stack a guest may use before it traps with a stack overflow.
const MAX_WASM_STACK: usize = 512 << 10;
/// Host stack for each async call (must exceed the guest's).
const ASYNC_STACK: usize = 1 << 20;
/// Linear memory kept mapped between instances of a pool slot, reset with memset
/// instead of madvise: cheaper for small guests that touch few pages.
const KEEP_RESIDENT: usize = 1 << 20;
/// Linear memories one component may define (one per core module instance that has one).
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;

pub fn build_engine(rt: &RuntimeConfig, plugins: &[PluginConfig]) -> wasmtime::Result<Engine> {
    let max_memory = plugins
        .iter()
        .map(|p| p.limits.memory_bytes)
        .max()
        .unwrap_or(32 << 20);
    let n = rt.max_instances;

    let mut pool = PoolingAllocationConfig::new();
    per_component_limits(&mut pool)
        .total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        // Each memory may reach the largest cap; the limiter holds each Store to its own
        // plugin's cap over all its memories together.
        .max_memory_size(max_memory as usize)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        // On Linux 6.7+ reset only the pages a guest actually dirtied (PAGEMAP_SCAN)
        // instead of memset-ing the whole kept-resident prefix; older kernels fall back.
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(fuel_metered(plugins))
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(ASYNC_STACK)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    register_with_ticker(&engine, Duration::from_millis(rt.epoch_tick_ms));
    Ok(engine)
}

/// Fuel costs a little on every guest instruction, so it is on only when some plugin
/// has a budget.
pub fn fuel_metered(plugins: &[PluginConfig]) -> bool {
    plugins.iter().any(|p| p.limits.fuel.is_some())
}

/// What one component may contain; a component over these is refused when it is
/// compiled or loaded, naming the limit.
fn per_component_limits(pool: &mut PoolingAllocationConfig) -> &mut PoolingAllocationConfig {
    pool.max_core_instances_per_component(32)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(16)
}

/// An engine for inspecting components offline (`plinth plugin check`): a pool of one
/// instance with the server's per-component limits, so "fits" there means "loads" here.
pub fn inspection_engine() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    per_component_limits(&mut pool)
        .total_component_instances(1)
        .total_core_instances(32)
        .total_memories(MAX_MEMORIES_PER_COMPONENT)
        .total_tables(16)
        .total_stacks(1);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

struct Ticker {
    engines: Mutex<Vec<EngineWeak>>,
}

static TICKER: OnceLock<Ticker> = OnceLock::new();

/// Adds `engine` to the process's single epoch ticker thread, starting it on first use
/// with the given period. Engines that are dropped fall off the list.
fn register_with_ticker(engine: &Engine, period: Duration) {
    let ticker = TICKER.get_or_init(|| {
        std::thread::Builder::new()
            .name("plinth-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                let Some(t) = TICKER.get() else { continue };
                let mut engines = t.engines.lock().unwrap_or_else(|e| e.into_inner());
                engines.retain(|weak| match weak.upgrade() {
                    Some(engine) => {
                        engine.increment_epoch();
                        true
                    }
                    None => false,
                });
            })
            .expect("spawn the epoch ticker thread");
        Ticker {
            engines: Mutex::new(Vec::new()),
        }
    });
    ticker
        .engines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(engine.weak());
}
