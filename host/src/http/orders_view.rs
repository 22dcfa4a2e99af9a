//! How orders and quotes look on the wire.

use serde::Serialize;
use utoipa::ToSchema;

use super::auth::rfc3339;
use crate::checkout::Quote;
use crate::domain::Money;
use crate::store::{Address, OrderAdjustment, OrderRecord, OrderStatus, Payment, Shipment};

#[derive(Serialize, ToSchema)]
pub struct LineView {
    sku: String,
    name: String,
    quantity: u32,
    #[schema(value_type = Object)]
    unit_price: Money,
    /// Minor units.
    total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TransitionView {
    status: OrderStatus,
    at: String,
    note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderView {
    id: String,
    /// The customer's user id.
    user_id: String,
    status: OrderStatus,
    currency: String,
    lines: Vec<LineView>,
    adjustments: Vec<OrderAdjustment>,
    /// Minor units.
    subtotal: i64,
    /// Minor units: what was charged.
    total: i64,
    /// Minor units refunded so far (partial refunds, or the whole total).
    refunded: i64,
    shipping_address: Address,
    shipment: Option<Shipment>,
    payment: Option<Payment>,
    history: Vec<TransitionView>,
    created_at: String,
}

impl From<OrderRecord> for OrderView {
    fn from(o: OrderRecord) -> Self {
        Self {
            id: o.id,
            user_id: o.user_id,
            status: o.status,
            currency: o.currency,
            lines: o
                .lines
                .into_iter()
                .map(|l| LineView {
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    total: l.total,
                })
                .collect(),
            adjustments: o.adjustments,
            subtotal: o.subtotal,
            total: o.total,
            refunded: o.refunded,
            shipping_address: o.shipping_address,
            shipment: o.shipment,
            payment: o.payment,
            history: o
                .history
                .into_iter()
                .map(|t| TransitionView {
                    status: t.status,
                    at: rfc3339(t.at),
                    note: t.note,
                })
                .collect(),
            created_at: rfc3339(o.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderBody {
    pub order: OrderView,
}

#[derive(Serialize, ToSchema)]
pub struct RateView {
    rate_id: String,
    carrier: String,
    service: String,
    /// Minor units, in the cart's currency.
    amount: i64,
    estimated_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct QuoteBody {
    currency: String,
    lines: Vec<LineView>,
    adjustments: Vec<OrderAdjustment>,
    subtotal: i64,
    /// Before shipping.
    total: i64,
    shipping_rates: Vec<RateView>,
}

impl From<Quote> for QuoteBody {
    fn from(q: Quote) -> Self {
        let total = q.total;
        Self {
            currency: q.priced.currency,
            subtotal: q.priced.subtotal,
            total,
            adjustments: q.priced.adjustments,
            lines: q
                .priced
                .lines
                .into_iter()
                .map(|l| LineView {
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    total: l.total,
                })
                .collect(),
            shipping_rates: q
                .rates
                .into_iter()
                .map(|r| RateView {
                    rate_id: r.rate_id,
                    carrier: r.carrier,
                    service: r.service,
                    amount: r.amount.amount,
                    estimated_days: r.estimated_days,
                })
                .collect(),
        }
    }
}
