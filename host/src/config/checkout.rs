//! `[checkout]`: which plugins price, charge and ship an order.

use std::time::Duration;

use serde::Deserialize;

use crate::domain::{Address, AddressForm, PluginName};

/// Validated `[checkout]`.
#[derive(Clone, Debug)]
pub struct CheckoutConfig {
    /// The payment-plugin that charges; `None` turns checkout off (503).
    pub payment: Option<PluginName>,
    /// The shipping-plugin for rates, labels and tracking; `None` ships nothing.
    pub shipping: Option<PluginName>,
    /// rules-plugins, applied in this order.
    pub rules: Vec<PluginName>,
    /// Where parcels ship from.
    pub origin: Option<Address>,
    /// Parcel weight per item, for rates.
    pub grams_per_item: u32,
    /// How long idempotency keys (and their responses) are kept.
    pub idempotency_ttl: Duration,
    /// How often the reconciler looks for orders nobody is driving.
    pub reconcile_every: Duration,
    /// How old an unsettled order must be before the reconciler takes it.
    pub reconcile_stale: Duration,
    /// Checkouts running at once in this process (they outlive their connections, so
    /// the connection limit does not bound them); one more gets 503 `checkout_busy`.
    pub max_in_flight: usize,
    /// Checkouts one customer may have running at once; one more gets 429
    /// `too_many_checkouts`.
    pub max_in_flight_per_customer: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCheckout {
    pub payment: Option<PluginName>,
    pub shipping: Option<PluginName>,
    pub rules: Vec<PluginName>,
    /// Parsed in `resolve_checkout`, so a bad address names its field.
    pub origin: Option<AddressForm>,
    pub grams_per_item: u32,
    pub idempotency_ttl_hours: u64,
    pub reconcile_every_secs: u64,
    pub reconcile_stale_secs: u64,
    pub max_in_flight: u64,
    pub max_in_flight_per_customer: u64,
}

impl Default for RawCheckout {
    fn default() -> Self {
        Self {
            payment: None,
            shipping: None,
            rules: Vec::new(),
            origin: None,
            grams_per_item: 500,
            idempotency_ttl_hours: 24,
            reconcile_every_secs: 30,
            reconcile_stale_secs: 60,
            max_in_flight: 256,
            max_in_flight_per_customer: 4,
        }
    }
}
