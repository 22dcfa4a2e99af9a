//! Loading plugins: one compiled component and one `InstancePre` per plugin, checked
//! against its world at start-up, plus the capabilities it was granted.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::Engine;

use super::bindings::{http, payment, rules, shipping, weather};
use super::cache::{ComponentCache, Origin};
use super::error::LoadError;
use super::outbound::OutboundClient;
use super::state::PluginState;
use crate::config::{Limits, PluginConfig, RouteAuth};
use crate::domain::{PluginName, World};
use crate::store::{PluginKv, Storage};
use crate::telemetry::{Metrics, PluginMetrics};

/// What one plugin may touch: its own config values, kv tree and outbound client.
pub struct PluginCaps {
    pub name: PluginName,
    pub world: World,
    pub limits: Limits,
    pub values: BTreeMap<String, String>,
    pub kv: Option<PluginKv>,
    pub outbound: Option<OutboundClient>,
}

/// A pre-linked, type-checked component of one world.
pub enum WorldPre {
    Http(http::HttpPluginPre<PluginState>),
    Weather(weather::WeatherPluginPre<PluginState>),
    Payment(payment::PaymentPluginPre<PluginState>),
    Shipping(shipping::ShippingPluginPre<PluginState>),
    Rules(rules::RulesPluginPre<PluginState>),
}

/// A loaded plugin, ready to be instantiated once per invocation.
pub struct Plugin {
    pub caps: Arc<PluginCaps>,
    /// Who may call an http-plugin and whether it sees the identity.
    pub route_auth: RouteAuth,
    pub(super) pre: WorldPre,
    pub(super) slots: Arc<Semaphore>,
    /// The plugin's place in the fair queues of the instance pool and the busy lanes.
    pub(super) key: usize,
    /// How many of its invocations are busy (CPU-bound) right now.
    pub(super) busy: Arc<AtomicUsize>,
    pub(super) engine: Engine,
    /// Whether the engine counts fuel (it does when any plugin sets a budget).
    pub(super) fuel_metered: bool,
    pub(super) metrics: PluginMetrics,
}

impl Plugin {
    pub fn name(&self) -> &PluginName {
        &self.caps.name
    }

    pub fn world(&self) -> World {
        self.caps.world
    }
}

/// A linker with WASI (granting nothing) and the imports of `world`.
pub fn linker_for(engine: &Engine, world: World) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    super::wasi_poll::shadow(&mut linker)?;
    match world {
        World::Http => http::HttpPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?,
        World::Weather => weather::WeatherPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?,
        World::Payment => payment::PaymentPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?,
        World::Shipping => shipping::ShippingPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?,
        World::Rules => rules::RulesPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?,
    }
    Ok(linker)
}

/// Checks that `component` fits `world` (its imports are satisfiable and its exports
/// are there with the right types) and pre-links it.
pub fn prepare(
    linker: &Linker<PluginState>,
    component: &Component,
    world: World,
) -> wasmtime::Result<WorldPre> {
    let pre = linker.instantiate_pre(component)?;
    Ok(match world {
        World::Http => WorldPre::Http(http::HttpPluginPre::new(pre)?),
        World::Weather => WorldPre::Weather(weather::WeatherPluginPre::new(pre)?),
        World::Payment => WorldPre::Payment(payment::PaymentPluginPre::new(pre)?),
        World::Shipping => WorldPre::Shipping(shipping::ShippingPluginPre::new(pre)?),
        World::Rules => WorldPre::Rules(rules::RulesPluginPre::new(pre)?),
    })
}

/// Loads every configured plugin (from the compiled cache when unchanged).
pub async fn load_all(
    engine: &Engine,
    cache: Arc<ComponentCache>,
    plugins: &[PluginConfig],
    share: u32,
    storage: &Storage,
    metrics: &Metrics,
) -> Result<BTreeMap<String, Arc<Plugin>>, LoadError> {
    let fuel_metered = super::engine::fuel_metered(plugins);
    let mut linkers: BTreeMap<&'static str, Linker<PluginState>> = BTreeMap::new();
    let mut loaded = BTreeMap::new();
    for (key, cfg) in plugins.iter().enumerate() {
        let linker = match linkers.entry(cfg.world.wit_name()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(linker_for(engine, cfg.world).map_err(|e| LoadError::Engine(format!("{e:#}")))?)
            }
        };
        let placement = Placement {
            key,
            // A plugin without its own `max_concurrent` holds at most its share of the
            // pool, so one flooded plugin cannot take every instance.
            slots: cfg.limits.max_concurrent.unwrap_or(share),
            fuel_metered,
        };
        let plugin = load_one(engine, placement, &cache, linker, cfg, storage, metrics).await?;
        loaded.insert(cfg.name.to_string(), Arc::new(plugin));
    }
    Ok(loaded)
}

/// How a plugin sits in the shared runtime.
struct Placement {
    /// Its place in the fair queues (instance pool, busy lanes).
    key: usize,
    /// Instances it may hold at once.
    slots: u32,
    /// Whether the engine counts fuel.
    fuel_metered: bool,
}

async fn load_one(
    engine: &Engine,
    placement: Placement,
    cache: &Arc<ComponentCache>,
    linker: &Linker<PluginState>,
    cfg: &PluginConfig,
    storage: &Storage,
    metrics: &Metrics,
) -> Result<Plugin, LoadError> {
    let name = cfg.name.to_string();
    let path = cfg.source.display().to_string();
    let started = Instant::now();
    let wasm = tokio::fs::read(&cfg.source)
        .await
        .map_err(|source| LoadError::Read {
            plugin: name.clone(),
            path: path.clone(),
            source,
        })?;
    let (component, origin) = {
        let (engine, cache) = (engine.clone(), cache.clone());
        tokio::task::spawn_blocking(move || cache.load(&engine, &wasm))
            .await
            .map_err(|e| LoadError::Engine(e.to_string()))?
            .map_err(|e| LoadError::Compile {
                plugin: name.clone(),
                path: path.clone(),
                detail: format!("{e:#}"),
            })?
    };
    let pre = prepare(linker, &component, cfg.world).map_err(|e| LoadError::World {
        plugin: name.clone(),
        world: cfg.world,
        detail: format!("{e:#}"),
    })?;
    let kv = if cfg.world.has_kv() {
        Some(
            storage
                .plugin_kv(
                    &cfg.name,
                    cfg.limits.kv_max_value_bytes,
                    cfg.limits.kv_quota_bytes,
                )
                .await
                .map_err(|e| LoadError::Capability {
                    plugin: name.clone(),
                    what: "kv store",
                    detail: e.to_string(),
                })?,
        )
    } else {
        None
    };
    let outbound = if cfg.world.has_outbound() {
        Some(
            OutboundClient::new(cfg.allowed_hosts.clone(), cfg.internal_hosts.clone()).map_err(|e| {
                LoadError::Capability {
                    plugin: name.clone(),
                    what: "field `allowed_hosts`",
                    detail: e.to_string(),
                }
            })?,
        )
    } else {
        None
    };
    match origin {
        Origin::Cache => {
            tracing::info!(plugin = %name, world = %cfg.world, elapsed_ms = started.elapsed().as_millis() as u64, "plugin loaded from the compiled cache (not recompiled)")
        }
        Origin::Compiled => {
            tracing::info!(plugin = %name, world = %cfg.world, elapsed_ms = started.elapsed().as_millis() as u64, "plugin compiled and cached")
        }
    }
    Ok(Plugin {
        route_auth: cfg.auth,
        caps: Arc::new(PluginCaps {
            name: cfg.name.clone(),
            world: cfg.world,
            limits: cfg.limits.clone(),
            values: cfg.values.clone(),
            kv,
            outbound,
        }),
        pre,
        slots: Arc::new(Semaphore::new(placement.slots as usize)),
        key: placement.key,
        busy: Arc::new(AtomicUsize::new(0)),
        engine: engine.clone(),
        fuel_metered: placement.fuel_metered,
        metrics: metrics.plugin(cfg.name.as_str()),
    })
}
