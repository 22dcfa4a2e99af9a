//! Errors of the runtime layer: loading plugins, and invoking them.

use std::time::Duration;

use super::bindings::GuestError;
use crate::domain::{PluginName, World};

/// A plugin that cannot be loaded; the message names the plugin and the config field.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {plugin:?}: field `source`: cannot read {path}: {source}")]
    Read {
        plugin: String,
        path: String,
        source: std::io::Error,
    },
    #[error("plugin {plugin:?}: field `source`: {path} is not a valid WebAssembly component: {detail}")]
    Compile {
        plugin: String,
        path: String,
        detail: String,
    },
    #[error("plugin {plugin:?}: field `world`: the component does not fit world {world}: {detail}")]
    World {
        plugin: String,
        world: World,
        detail: String,
    },
    #[error("plugin {plugin:?}: {what}: {detail}")]
    Capability {
        plugin: String,
        what: &'static str,
        detail: String,
    },
    #[error("runtime: cannot configure the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why an invocation did not produce a value.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {kind}")]
pub struct InvokeError {
    pub plugin: PluginName,
    pub kind: InvokeErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeErrorKind {
    #[error("did not finish within {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory limit")]
    MemoryLimit,
    #[error("exceeded its fuel budget")]
    FuelExhausted,
    #[error("trapped")]
    Trapped,
    #[error("too many concurrent invocations")]
    Busy,
    #[error("is a {actual} plugin, not a {expected}")]
    WrongWorld { expected: World, actual: World },
    #[error("returned an error: {}", describe_guest_error(.0))]
    Guest(GuestError),
    #[error("returned an invalid response: {0}")]
    BadResponse(String),
}

impl InvokeError {
    pub fn new(plugin: &PluginName, kind: InvokeErrorKind) -> Self {
        Self {
            plugin: plugin.clone(),
            kind,
        }
    }
}

/// A plugin's error value as people read it: `upstream: the API answered 500`.
pub fn describe_guest_error(e: &GuestError) -> String {
    let (kind, message) = match e {
        GuestError::Invalid(m) => ("invalid", m),
        GuestError::Denied(m) => ("denied", m),
        GuestError::NotFound(m) => ("not found", m),
        GuestError::Unavailable(m) => ("unavailable", m),
        GuestError::Upstream(m) => ("upstream", m),
        GuestError::Timeout(m) => ("timeout", m),
        GuestError::LimitExceeded(m) => ("limit exceeded", m),
        GuestError::Internal(m) => ("internal", m),
    };
    format!("{kind}: {message}")
}
