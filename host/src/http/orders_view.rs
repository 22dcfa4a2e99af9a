//! How orders and quotes look on the wire. The JSON is the API's contract, apart from
//! the store's model (and from its stored layout, even where they agree today): amounts
//! are minor units beside the order's `currency` (the unit price keeps its own
//! currency), ids are plain strings, the address is the form clients send.

use serde::Serialize;
use utoipa::ToSchema;

use super::auth::rfc3339;
use crate::checkout::Quote;
use crate::domain::{AddressForm, Money};
use crate::store::{OrderAdjustment, OrderLine, OrderRecord, OrderStatus, Payment, Shipment, Transition};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatusView {
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

impl From<OrderStatus> for OrderStatusView {
    fn from(s: OrderStatus) -> Self {
        match s {
            OrderStatus::Pending => Self::Pending,
            OrderStatus::Paid => Self::Paid,
            OrderStatus::Fulfilled => Self::Fulfilled,
            OrderStatus::Refunded => Self::Refunded,
            OrderStatus::Failed => Self::Failed,
        }
    }
}

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

impl From<OrderLine> for LineView {
    fn from(l: OrderLine) -> Self {
        Self {
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price: l.unit_price,
            total: l.total.amount,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdjustmentView {
    /// `discount`, `tax`, `fee` or `shipping`.
    kind: String,
    label: String,
    /// Signed minor units (negative for discounts).
    amount: i64,
    /// The plugin that made it.
    source: String,
    /// Index into `lines`, for line-level adjustments.
    line: Option<u32>,
}

impl From<OrderAdjustment> for AdjustmentView {
    fn from(a: OrderAdjustment) -> Self {
        Self {
            kind: a.kind,
            label: a.label,
            amount: a.amount.amount,
            source: a.source,
            line: a.line,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ShipmentView {
    rate_id: String,
    carrier: String,
    service: String,
    /// Minor units.
    amount: i64,
    shipment_id: Option<String>,
    tracking_number: Option<String>,
    label_url: Option<String>,
}

impl From<Shipment> for ShipmentView {
    fn from(s: Shipment) -> Self {
        Self {
            rate_id: s.rate_id,
            carrier: s.carrier,
            service: s.service,
            amount: s.amount.amount,
            shipment_id: s.shipment_id,
            tracking_number: s.tracking_number,
            label_url: s.label_url,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    /// The payment plugin.
    provider: String,
    provider_id: String,
    refund_id: Option<String>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        Self {
            provider: p.provider,
            provider_id: p.provider_id,
            refund_id: p.refund_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TransitionView {
    status: OrderStatusView,
    at: String,
    note: Option<String>,
}

impl From<Transition> for TransitionView {
    fn from(t: Transition) -> Self {
        Self {
            status: t.status.into(),
            at: rfc3339(t.at),
            note: t.note,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderView {
    id: String,
    /// The customer's user id.
    user_id: String,
    status: OrderStatusView,
    currency: String,
    lines: Vec<LineView>,
    adjustments: Vec<AdjustmentView>,
    /// Minor units.
    subtotal: i64,
    /// Minor units: what was charged.
    total: i64,
    /// Minor units refunded so far (partial refunds, or the whole total).
    refunded: i64,
    /// As the checkout body sent it, parsed (trimmed, upper-case country and region).
    shipping_address: AddressForm,
    shipment: Option<ShipmentView>,
    payment: Option<PaymentView>,
    history: Vec<TransitionView>,
    created_at: String,
}

impl From<OrderRecord> for OrderView {
    fn from(o: OrderRecord) -> Self {
        Self {
            id: o.id.to_string(),
            user_id: o.user_id.to_string(),
            status: o.status.into(),
            currency: o.currency.to_string(),
            lines: o.lines.into_iter().map(LineView::from).collect(),
            adjustments: o.adjustments.into_iter().map(AdjustmentView::from).collect(),
            subtotal: o.subtotal.amount,
            total: o.total.amount,
            refunded: o.refunded.amount,
            shipping_address: o.shipping_address.to_form(),
            shipment: o.shipment.map(ShipmentView::from),
            payment: o.payment.map(PaymentView::from),
            history: o.history.into_iter().map(TransitionView::from).collect(),
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
    adjustments: Vec<AdjustmentView>,
    subtotal: i64,
    /// Before shipping.
    total: i64,
    shipping_rates: Vec<RateView>,
}

impl From<Quote> for QuoteBody {
    fn from(q: Quote) -> Self {
        Self {
            currency: q.priced.currency.to_string(),
            subtotal: q.priced.subtotal.amount,
            total: q.total.amount,
            adjustments: q
                .priced
                .adjustments
                .into_iter()
                .map(AdjustmentView::from)
                .collect(),
            lines: q.priced.lines.into_iter().map(LineView::from).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The order a client reads is the stored one's fields, flat as they always were.
    #[test]
    fn an_order_reads_as_it_always_did() {
        let stored = serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef", "user_id": "u1", "status": "paid",
            "lines": [{ "sku": "MUG-1", "name": "Mug", "quantity": 2,
                        "unit_price": { "amount": 1250, "currency": "USD" }, "total": 2500 }],
            "adjustments": [{ "kind": "tax", "label": "Tax", "amount": 200, "source": "rules-tax", "line": null }],
            "currency": "USD", "subtotal": 2500, "total": 3250,
            "shipping_address": { "name": "Ada", "line1": "1 Way", "line2": null, "city": "Oakland",
                                  "region": "CA", "postal_code": "94610", "country": "US",
                                  "phone": null, "email": "ada@example.com" },
            "shipment": { "rate_id": "r1", "carrier": "USPS", "service": "Priority", "amount": 550,
                          "shipment_id": null, "tracking_number": null, "label_url": null },
            "payment": { "provider": "payments-stripe", "provider_id": "pi_1", "refund_id": null },
            "history": [{ "status": "pending", "at": 0, "note": null }],
            "created_at": 0, "stock_released": false, "attempt": 0, "payment_method": "pm_1",
            "refunded": 100, "version": 2
        });
        let order: OrderRecord = serde_json::from_value(stored.clone()).unwrap();
        let view = serde_json::to_value(OrderView::from(order)).unwrap();
        let mut expected = stored;
        let fields = expected.as_object_mut().unwrap();
        for internal in ["stock_released", "attempt", "payment_method", "version"] {
            fields.remove(internal);
        }
        fields["created_at"] = rfc3339(0).into();
        fields["history"][0]["at"] = rfc3339(0).into();
        assert_eq!(view, expected);
    }
}
