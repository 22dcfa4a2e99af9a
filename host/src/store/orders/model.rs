//! What an order is while the host works with it: typed ids, amounts as [`Money`] in
//! the order's currency, a parsed [`Address`]. How it is stored is `wire.rs`'s business:
//! the stored document keeps its flat layout of minor units.

use serde::{Deserialize, Serialize};

use crate::domain::{Address, Currency, Money, OrderId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Stock reserved, payment not settled.
    Pending,
    /// Charged.
    Paid,
    /// Charged and the shipping label bought.
    Fulfilled,
    /// Money returned, stock restored.
    Refunded,
    /// Did not complete; stock restored (and any charge refunded).
    Failed,
}

impl OrderStatus {
    /// Whether the order's units count as sold.
    pub fn is_sold(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::Fulfilled)
    }

    /// The name it is stored, filtered and shown under (`pending`, `paid`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    /// Unit price × quantity.
    pub total: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderAdjustment {
    /// `discount`, `tax`, `fee` or `shipping`.
    pub kind: String,
    pub label: String,
    /// Signed (negative for discounts).
    pub amount: Money,
    /// The plugin that made it.
    pub source: String,
    /// Index into `lines`, for line-level adjustments.
    pub line: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shipment {
    pub rate_id: String,
    pub carrier: String,
    pub service: String,
    pub amount: Money,
    pub shipment_id: Option<String>,
    pub tracking_number: Option<String>,
    pub label_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment plugin.
    pub provider: String,
    pub provider_id: String,
    pub refund_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub status: OrderStatus,
    /// Unix milliseconds.
    pub at: i64,
    pub note: Option<String>,
}

/// An order. Every amount is in `currency` (the store's document records only the
/// minor units, see `wire.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "super::wire::OrderWire", into = "super::wire::OrderWire")]
pub struct OrderRecord {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub adjustments: Vec<OrderAdjustment>,
    pub currency: Currency,
    pub subtotal: Money,
    pub total: Money,
    pub shipping_address: Address,
    pub shipment: Option<Shipment>,
    pub payment: Option<Payment>,
    pub history: Vec<Transition>,
    pub created_at: i64,
    /// Set once the reserved units went back to stock, so they never go back twice.
    pub stock_released: bool,
    /// How many earlier attempts of this order were charged and refunded; each new
    /// attempt charges under a new provider idempotency key (see `charge_key`).
    pub attempt: u32,
    /// The payment method reference the charge is made with (a provider's id such as
    /// `pm_…` or `pay_…`, never card data): after a crash, the charge is looked up by it.
    pub payment_method: Option<String>,
    /// Refunded so far: partial refunds the provider reported, or the whole total once
    /// refunded. Only a full refund returns the stock.
    pub refunded: Money,
    /// Bumped by every save: a save of a copy read before another save is refused
    /// (`StoreError::Conflict`) instead of overwriting it.
    pub version: u64,
}

impl OrderRecord {
    /// `minor` units of the order's currency.
    pub fn money(&self, minor: i64) -> Money {
        Money {
            amount: minor,
            currency: self.currency,
        }
    }

    pub fn transition(&mut self, status: OrderStatus, at: i64, note: Option<String>) {
        self.status = status;
        self.history.push(Transition { status, at, note });
    }

    /// The idempotency key the payment provider sees for this attempt: a re-drive of an
    /// interrupted attempt sends the same key (the provider replays the first charge
    /// instead of making a second), a new attempt after a refund a new one.
    pub fn charge_key(&self) -> String {
        match self.attempt {
            0 => format!("plinth-{}", self.id),
            n => format!("plinth-{}-a{n}", self.id),
        }
    }

    /// The idempotency key of this attempt's refund: one per charge, so a second
    /// attempt's refund is never mistaken by the provider for the first one's.
    pub fn refund_key(&self) -> String {
        match self.attempt {
            0 => format!("plinth-refund-{}", self.id),
            n => format!("plinth-refund-{}-a{n}", self.id),
        }
    }

    /// Whether the order still needs the host to act on it: pending (its charge is not
    /// settled), or paid with a shipping label still to buy. Such orders are indexed as
    /// unsettled for the reconciler.
    pub fn is_unsettled(&self) -> bool {
        self.status == OrderStatus::Pending
            || (self.status == OrderStatus::Paid
                && self.shipment.as_ref().is_some_and(|s| s.label_url.is_none()))
    }

    /// Whether this order was paid through `plugin` with the provider's `provider_id`:
    /// the recorded payment is what decides which order a webhook may touch.
    pub fn paid_through(&self, plugin: &str, provider_id: &str) -> bool {
        self.payment
            .as_ref()
            .is_some_and(|p| p.provider == plugin && p.provider_id == provider_id)
    }

    /// Each line's sku and units (a sku may appear on several lines).
    pub fn units(&self) -> impl Iterator<Item = (&str, u64)> {
        self.lines.iter().map(|l| (l.sku.as_str(), u64::from(l.quantity)))
    }
}
