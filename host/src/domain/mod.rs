//! Newtypes that parse: once a value of one of these types exists, it is valid.

mod address;
mod allowed_host;
mod contact;
mod idempotency_key;
mod money;
mod order_id;
mod password;
mod plugin_name;
mod provider_name;
mod request_id;
mod sku;
mod user_id;
mod username;
mod world;

pub use address::{Address, AddressError, AddressForm};
pub use allowed_host::{is_internal_address, AllowedHost, AllowedHostError, HostPattern};
pub use contact::{Email, EmailError, Phone, PhoneError, Tag, TagError};
pub use idempotency_key::{IdempotencyKey, IdempotencyKeyError};
pub use money::{Currency, CurrencyError, Money, MoneyError};
pub use order_id::{OrderId, OrderIdError};
pub use password::{
    common_password_count, NewPassword, PasswordError, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
};
pub use plugin_name::{PluginName, PluginNameError};
pub use provider_name::{ProviderName, ProviderNameError};
pub use request_id::RequestId;
pub use sku::{Sku, SkuError};
pub use user_id::{UserId, UserIdError};
pub use username::{Username, UsernameError};
pub use world::{UnknownWorld, World};
