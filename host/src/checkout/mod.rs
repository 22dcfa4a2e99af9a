//! Checkout: price → rules → reserve stock → charge → commit → ship, with every failure
//! after the reservation giving the stock back and every failure after the charge
//! refunding it. Orders move through explicit states, each transition timestamped.

mod flow;
mod guards;
mod idempotency;
mod pricing;
mod recovery;

use std::borrow::Cow;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

pub use flow::{describe_payment_error, Quote};
pub use idempotency::{Answer, Placed};
pub use pricing::{LineRequest, Priced};
pub use recovery::Settled;

use crate::auth::now_ms;
use crate::catalog::Catalog;
use crate::config::CheckoutConfig;
use crate::domain::{AddressError, AddressForm};
use crate::runtime::{InvokeError, Plugin, Runtime};
use crate::store::postgres::driving::Driving;
use crate::store::{IdempotencyStore, OrderStore, ReserveError, Storage, StoreError};

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
    /// The `Idempotency-Key` was used before with another request body.
    #[error("this Idempotency-Key was used with a different request body")]
    KeyReused,
    /// Another request with this `Idempotency-Key` is still running.
    #[error("a request with this Idempotency-Key is still being processed; retry later")]
    KeyInUse,
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

impl CheckoutError {
    /// The HTTP status and the stable code clients branch on, beside the variants so a
    /// new one says its own. `http/error.rs` renders every error through this and keeps
    /// what a client may read: a misbehaving rule's and a provider's own words go to
    /// the log. `Plugin` and `Store` are answered as those errors are.
    pub fn status_code(&self) -> (StatusCode, Cow<'static, str>) {
        let (status, code) = match self {
            CheckoutError::Disabled => (StatusCode::SERVICE_UNAVAILABLE, "checkout_disabled"),
            CheckoutError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_checkout"),
            CheckoutError::UnknownSku(_) => (StatusCode::BAD_REQUEST, "unknown_sku"),
            CheckoutError::MixedCurrency => (StatusCode::BAD_REQUEST, "mixed_currency"),
            CheckoutError::UnknownRate(_) => (StatusCode::BAD_REQUEST, "unknown_shipping_rate"),
            CheckoutError::OutOfStock { .. } => (StatusCode::CONFLICT, "out_of_stock"),
            // The rule's own code, made safe to branch on.
            CheckoutError::Rejected { code, .. } => {
                let code = code
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .take(64)
                    .collect();
                return (StatusCode::UNPROCESSABLE_ENTITY, Cow::Owned(code));
            }
            CheckoutError::RuleMisbehaved(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rule_failed"),
            CheckoutError::Declined(_) | CheckoutError::RequiresAction => {
                (StatusCode::PAYMENT_REQUIRED, "payment_declined")
            }
            CheckoutError::PaymentFailed(_) => (StatusCode::BAD_GATEWAY, "payment_failed"),
            CheckoutError::ShippingFailed(_) => (StatusCode::BAD_GATEWAY, "shipping_failed"),
            CheckoutError::AmountTooLarge => (StatusCode::UNPROCESSABLE_ENTITY, "amount_too_large"),
            CheckoutError::InProgress | CheckoutError::KeyInUse => {
                (StatusCode::CONFLICT, "request_in_progress")
            }
            CheckoutError::KeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch"),
            CheckoutError::TooManyOfYours(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_checkouts"),
            CheckoutError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "checkout_busy"),
            CheckoutError::OrderNotFound => (StatusCode::NOT_FOUND, "order_not_found"),
            CheckoutError::NotRefundable(_) => (StatusCode::CONFLICT, "not_refundable"),
            CheckoutError::NotShipped => (StatusCode::CONFLICT, "not_shipped"),
            CheckoutError::Plugin(_) | CheckoutError::Store(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (status, Cow::Borrowed(code))
    }
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

/// A shipping address the client sent that does not parse: a 400 on the
/// `shipping_address` field, with the address's own words.
impl From<AddressError> for CheckoutError {
    fn from(e: AddressError) -> Self {
        CheckoutError::Invalid {
            field: "shipping_address",
            message: e.to_string(),
        }
    }
}

/// `POST /checkout` and `POST /checkout/quote` bodies.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub lines: Vec<LineRequest>,
    /// Parsed where the checkout needs it (see `Checkout::place`), so a bad address is
    /// answered in the same order of checks, and stored for retries, as always.
    pub shipping_address: AddressForm,
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
    /// Claims and answers of `Idempotency-Key`s (see `idempotency.rs`).
    idempotency: Arc<dyn IdempotencyStore>,
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
            idempotency: storage.idempotency()?,
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
        self.idempotency.expire(now_ms(), ttl).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_their_status_and_code() {
        let of = |e: CheckoutError| {
            let (status, code) = e.status_code();
            (status.as_u16(), code.into_owned())
        };
        assert_eq!(of(CheckoutError::KeyReused), (422, "idempotency_mismatch".into()));
        assert_eq!(of(CheckoutError::KeyInUse), (409, "request_in_progress".into()));
        assert_eq!(of(AddressError::Country.into()), (400, "invalid_checkout".into()));
        let rejected = CheckoutError::Rejected {
            code: "Limit-Exceeded!".into(),
            message: "two per customer".into(),
        };
        assert_eq!(of(rejected), (422, "limit_exceeded_".into()));
    }
}
