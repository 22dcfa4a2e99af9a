//! `plinth plugin check`: does a component fit a world, and what does it import and
//! export? Uses the same linker as the server, so "fits" here means "loads" there.

use std::path::Path;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;

use super::engine::inspection_engine;
use super::registry::{linker_for, prepare};
use crate::domain::World;

pub struct CheckReport {
    pub imports: Vec<(String, &'static str)>,
    pub exports: Vec<(String, &'static str)>,
    /// `Err` explains why the component does not fit the world.
    pub fits: Result<(), String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid WebAssembly component: {detail}")]
    Invalid { path: String, detail: String },
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
}

pub fn check_component(path: &Path, world: World) -> Result<CheckReport, CheckError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckError::Read {
        path: display.clone(),
        source,
    })?;
    let engine = inspection_engine().map_err(|e| CheckError::Engine(format!("{e:#}")))?;
    let component = Component::from_binary(&engine, &bytes).map_err(|e| CheckError::Invalid {
        path: display,
        detail: format!("{e:#}"),
    })?;
    let ty = component.component_type();
    let imports = ty
        .imports(&engine)
        .map(|(name, item)| (name.to_string(), kind(&item.ty)))
        .collect();
    let exports = ty
        .exports(&engine)
        .map(|(name, item)| (name.to_string(), kind(&item.ty)))
        .collect();
    let linker = linker_for(&engine, world).map_err(|e| CheckError::Engine(format!("{e:#}")))?;
    let fits = prepare(&linker, &component, world)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    Ok(CheckReport {
        imports,
        exports,
        fits,
    })
}

fn kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}
