//! Newtypes that parse: once a value of one of these types exists, it is valid.

mod allowed_host;
mod contact;
mod money;
mod password;
mod plugin_name;
mod provider_name;
mod request_id;
mod sku;
mod username;
mod world;

pub use allowed_host::{is_internal_address, AllowedHost, AllowedHostError, HostPattern};
pub use contact::{Email, EmailError, Phone, PhoneError, Tag, TagError};
pub use money::{Currency, CurrencyError, Money, MoneyError};
pub use password::{
    common_password_count, NewPassword, PasswordError, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
};
pub use plugin_name::{PluginName, PluginNameError};
pub use provider_name::{ProviderName, ProviderNameError};
pub use request_id::RequestId;
pub use sku::{Sku, SkuError};
pub use username::{Username, UsernameError};
pub use world::{UnknownWorld, World};
