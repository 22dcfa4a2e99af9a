//! Newtypes that parse: once a value of one of these types exists, it is valid.

mod allowed_host;
mod plugin_name;
mod request_id;
mod world;

pub use allowed_host::{is_internal_address, AllowedHost, AllowedHostError, HostPattern};
pub use plugin_name::{PluginName, PluginNameError};
pub use request_id::RequestId;
pub use world::{UnknownWorld, World};
