//! The WebAssembly runtime: one engine, one pre-linked component per plugin, a fresh
//! instance per invocation, and the host side of every capability.

pub mod bindings;
mod cache;
pub mod check;
mod engine;
mod error;
mod guest_log;
mod imports;
mod invoke;
mod limits;
mod outbound;
mod registry;
mod state;
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
    /// One permit per instance the pooling allocator can hold.
    instances: Arc<tokio::sync::Semaphore>,
}

impl Runtime {
    /// Builds the engine and loads every configured plugin. Fails on the first plugin
    /// that cannot be loaded, naming it.
    pub async fn start(config: &Config, storage: &Storage, metrics: &Metrics) -> Result<Self, LoadError> {
        let engine = engine::build_engine(&config.runtime, &config.plugins)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let cache = Arc::new(cache::ComponentCache::new(&config.runtime.cache_dir));
        let plugins = registry::load_all(&engine, cache, &config.plugins, storage, metrics).await?;
        Ok(Self {
            plugins,
            instances: Arc::new(tokio::sync::Semaphore::new(config.runtime.max_instances as usize)),
        })
    }

    pub fn plugin(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }
}
