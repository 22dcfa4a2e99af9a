//! Checkout: price → rules → reserve stock → charge → commit → ship, with every failure
//! after the reservation giving the stock back and every failure after the charge
//! refunding it. Orders move through explicit states, each transition timestamped.

mod flow;
mod guards;
mod idempotency;
mod pricing;
mod recovery;

use std::sync::Arc;

use serde::Deserialize;

pub use flow::{describe_payment_error, order_id_for, Quote};
pub use idempotency::{Answer, Placed};
pub use pricing::{LineRequest, Priced};
pub use recovery::Settled;

use crate::auth::now_ms;
use crate::catalog::Catalog;
use crate::config::CheckoutConfig;
use crate::runtime::{InvokeError, Plugin, Runtime};
use crate::store::postgres::driving::Driving;
use crate::store::{Address, OrderStore, ReserveError, Storage, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("checkout is not configured (no payment plugin)")]
    Disabled,
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no product with sku {0}")]
    UnknownSku(String),
    #[error("all products in one order must have the same currency")]
    MixedCurrency,
    #[error("only {available} of {sku} left in stock")]
    OutOfStock { sku: String, available: u64 },
    /// A business rule said no; the message is for the customer.
    #[error("{message}")]
    Rejected { code: String, message: String },
    #[error("a checkout rule misbehaved: {0}")]
    RuleMisbehaved(String),
    #[error("the payment was declined: {0}")]
    Declined(String),
    #[error("the payment needs an action from the customer (e.g. 3-D Secure)")]
    RequiresAction,
    #[error("the payment provider failed: {0}")]
    PaymentFailed(ProviderFailure),
    #[error("the shipping provider failed: {0}")]
    ShippingFailed(ProviderFailure),
    /// Money arithmetic would overflow (prices × quantities, sums, adjustments).
    #[error("the order's amounts are too large to compute")]
    AmountTooLarge,
    #[error("{0} is not one of the offered shipping rates")]
    UnknownRate(String),
    #[error("an earlier attempt of this order is still being processed")]
    InProgress,
    #[error("you have {0} checkouts in progress; wait for one to finish")]
    TooManyOfYours(usize),
    #[error("too many checkouts are in progress; retry shortly")]
    Busy,
    #[error("no such order")]
    OrderNotFound,
    #[error("the order is {0} and cannot be refunded")]
    NotRefundable(String),
    #[error("the order has no shipment to track")]
    NotShipped,
    #[error(transparent)]
    Plugin(#[from] InvokeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a payment or shipping plugin failed. The customer sees `public` when the text is
/// meant for them (the provider refused their payment method, the carrier does not know
/// their address); otherwise a generic message naming the plugin and the request id,
/// and `detail` (which may hold an upstream's words about keys or accounts) goes to the
/// server log only.
#[derive(Clone, Debug)]
pub struct ProviderFailure {
    pub plugin: String,
    pub detail: String,
    pub public: Option<String>,
}

impl ProviderFailure {
    /// A failure whose text is for the log only.
    pub fn hidden(plugin: &str, detail: impl Into<String>) -> Self {
        Self {
            plugin: plugin.to_string(),
            detail: detail.into(),
            public: None,
        }
    }

    /// A failure the customer may read about.
    pub fn shown(plugin: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            plugin: plugin.to_string(),
            detail: message.clone(),
            public: Some(message),
        }
    }
}

impl std::fmt::Display for ProviderFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {}: {}", self.plugin, self.detail)
    }
}

impl From<ReserveError> for CheckoutError {
    fn from(e: ReserveError) -> Self {
        match e {
            ReserveError::OutOfStock { sku, available } => CheckoutError::OutOfStock { sku, available },
            ReserveError::Exists(_) => CheckoutError::InProgress,
            ReserveError::Store(e) => CheckoutError::Store(e),
        }
    }
}

/// A shipping address as the client sends it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl AddressInput {
    pub fn validate(self) -> Result<Address, CheckoutError> {
        let field = |name: &'static str, v: &str, max: usize| {
            let t = v.trim();
            if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
                Err(CheckoutError::Invalid {
                    field: "shipping_address",
                    message: format!("{name} must be 1-{max} characters"),
                })
            } else {
                Ok(t.to_string())
            }
        };
        let optional = |name: &'static str, v: Option<String>, max: usize| match v {
            Some(v) if !v.trim().is_empty() => field(name, &v, max).map(Some),
            _ => Ok(None),
        };
        let country = self.country.trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CheckoutError::Invalid {
                field: "shipping_address",
                message: "country must be an ISO 3166-1 alpha-2 code like US or DE".into(),
            });
        }
        let email = match self.email {
            Some(e) if !e.trim().is_empty() => Some(
                crate::domain::Email::parse(&e)
                    .map_err(|_| CheckoutError::Invalid {
                        field: "shipping_address",
                        message: "email is not an email address".into(),
                    })?
                    .as_str()
                    .to_string(),
            ),
            _ => None,
        };
        Ok(Address {
            name: field("name", &self.name, 100)?,
            line1: field("line1", &self.line1, 200)?,
            line2: optional("line2", self.line2, 200)?,
            city: field("city", &self.city, 100)?,
            region: optional("region", self.region.map(|r| r.to_ascii_uppercase()), 50)?,
            postal_code: field("postal_code", &self.postal_code, 20)?,
            country,
            phone: optional("phone", self.phone, 30)?,
            email,
        })
    }
}

/// `POST /checkout` and `POST /checkout/quote` bodies.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub lines: Vec<LineRequest>,
    pub shipping_address: AddressInput,
    /// The payment provider's reference (e.g. a Stripe PaymentMethod id). Not needed
    /// for a quote.
    #[serde(default)]
    pub payment_method: Option<String>,
    #[serde(default)]
    pub discount_code: Option<String>,
    /// A `rate_id` from the quote; the cheapest rate otherwise.
    #[serde(default)]
    pub shipping_rate_id: Option<String>,
}

pub struct Checkout {
    /// The orders tasks of this process are driving.
    in_flight: guards::InFlight,
    /// With replicas on a shared database: the leases of the orders this replica
    /// drives, and who drives the others.
    driving: Option<Arc<Driving>>,
    /// Pricing and reservation of one customer run one at a time.
    customers: guards::KeyedLocks,
    /// Read-change-save of one order runs one at a time (see `guards`).
    order_locks: guards::KeyedLocks,
    /// Checkouts running at once.
    admission: Arc<guards::Admission>,
    /// Orders the reconciler failed to settle wait before it tries them again.
    backoff: guards::Backoff,
    /// Set at shutdown: the reconciler stops between two orders.
    stopping: tokio::sync::watch::Sender<bool>,
    runtime: Arc<Runtime>,
    catalog: Arc<Catalog>,
    orders: Arc<dyn OrderStore>,
    storage: Storage,
    config: CheckoutConfig,
    payment: Option<Arc<Plugin>>,
    shipping: Option<Arc<Plugin>>,
    rules: Vec<Arc<Plugin>>,
}

impl Checkout {
    /// Wires the configured plugins and releases the idempotency claims of requests that
    /// died with the last process. Orders it left pending are settled by `reconcile`.
    pub async fn new(
        runtime: Arc<Runtime>,
        catalog: Arc<Catalog>,
        storage: &Storage,
        config: &CheckoutConfig,
    ) -> Result<Self, StoreError> {
        let get = |name: &crate::domain::PluginName| runtime.plugin(name.as_str()).cloned();
        let checkout = Self {
            in_flight: Default::default(),
            driving: match (storage.postgres(), storage.replica()) {
                (Some(pg), Some(replica)) => Some(Driving::start(pg, replica)),
                _ => None,
            },
            customers: Default::default(),
            order_locks: Default::default(),
            admission: Arc::new(guards::Admission::new(
                config.max_in_flight,
                config.max_in_flight_per_customer,
            )),
            backoff: guards::Backoff::new(config.reconcile_every, recovery::MAX_BACKOFF),
            stopping: tokio::sync::watch::Sender::new(false),
            payment: config.payment.as_ref().and_then(get),
            shipping: config.shipping.as_ref().and_then(get),
            rules: config.rules.iter().filter_map(get).collect(),
            orders: storage.orders()?,
            storage: storage.clone(),
            config: config.clone(),
            runtime,
            catalog,
        };
        // With replicas, an unanswered claim may be another replica's checkout in
        // progress: it is taken over only once abandoned, never released wholesale.
        match &checkout.driving {
            None => checkout.release_claims().await?,
            Some(driving) => {
                let dropped = driving.forget_previous_life().await?;
                if dropped > 0 {
                    tracing::info!(
                        orders = dropped,
                        "order leases of this replica's previous run released"
                    );
                }
            }
        }
        Ok(checkout)
    }

    /// Forgets answered idempotency keys older than `[checkout] idempotency_ttl_hours`.
    pub async fn sweep_idempotency(&self) -> Result<usize, StoreError> {
        let ttl = i64::try_from(self.config.idempotency_ttl.as_millis()).unwrap_or(i64::MAX);
        self.orders.expire_idempotency(now_ms(), ttl).await
    }

    pub fn orders(&self) -> &dyn OrderStore {
        self.orders.as_ref()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn payment_plugin(&self) -> Option<&Arc<Plugin>> {
        self.payment.as_ref()
    }

    pub fn config(&self) -> &CheckoutConfig {
        &self.config
    }
}
