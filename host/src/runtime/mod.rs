//! The WebAssembly runtime: one engine, one pre-linked component per plugin, a fresh
//! instance per invocation, and the host side of every capability.

pub mod bindings;
mod cache;
pub mod check;
mod engine;
mod error;
mod fair;
mod guest_log;
mod imports;
mod invoke;
mod lanes;
mod limits;
mod outbound;
mod registry;
mod state;
mod wasi_poll;
mod worlds;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use error::{describe_guest_error, InvokeError, InvokeErrorKind, LoadError};
pub use invoke::Completed;
pub use registry::{Plugin, PluginCaps};
pub use state::PluginState;

use crate::config::Config;
use crate::store::Storage;
use crate::telemetry::Metrics;

/// All loaded plugins and the engine that runs them.
pub struct Runtime {
    plugins: BTreeMap<String, Arc<Plugin>>,
    /// One permit per instance the pooling allocator can hold, handed to waiting
    /// plugins in turn.
    instances: fair::FairSemaphore,
    /// Turns on the CPU for guests that run through epoch ticks (see `lanes.rs`).
    lanes: fair::FairSemaphore,
}

impl Runtime {
    /// Builds the engine and loads every configured plugin. Fails on the first plugin
    /// that cannot be loaded, naming it.
    pub async fn start(config: &Config, storage: &Storage, metrics: &Metrics) -> Result<Self, LoadError> {
        let engine = engine::build_engine(&config.runtime, &config.plugins)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let cache = Arc::new(cache::ComponentCache::new(&config.runtime.cache_dir));
        let share = config.runtime.plugin_share();
        let plugins = registry::load_all(&engine, cache, &config.plugins, share, storage, metrics).await?;
        let lanes = busy_lanes(config.runtime.busy_lanes);
        tracing::info!(
            max_instances = config.runtime.max_instances,
            plugin_share = share,
            busy_lanes = lanes,
            "plugin runtime ready"
        );
        Ok(Self {
            plugins,
            instances: fair::FairSemaphore::new(config.runtime.max_instances as usize),
            lanes: fair::FairSemaphore::new(lanes),
        })
    }

    pub fn plugin(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }
}

/// The configured lane count, or one fewer than the async runtime's worker threads (at
/// least one): CPU-bound guests then never occupy every thread, so requests that only
/// need a moment of CPU always find one free.
fn busy_lanes(configured: Option<u32>) -> usize {
    match configured {
        Some(n) => n as usize,
        None => {
            let workers = tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
            workers.saturating_sub(1).max(1)
        }
    }
}
