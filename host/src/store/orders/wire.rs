//! The stored form of an order, in one place. sled keeps it as JSON bytes, PostgreSQL as
//! the `record` JSONB document, and `plinth store copy` moves one into the other, so the
//! layout is what installs already hold: amounts as bare minor units next to one
//! `currency`, field names and order as they have always been. [`OrderRecord`]
//! (de)serializes through [`OrderWire`] (`#[serde(from, into)]`), so no path can write
//! another shape.

use serde::{Deserialize, Serialize};

use super::model::{OrderAdjustment, OrderLine, OrderRecord, OrderStatus, Payment, Shipment, Transition};
use crate::domain::{Address, Currency, Money, OrderId, UserId};

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct OrderWire {
    id: OrderId,
    user_id: UserId,
    status: OrderStatus,
    lines: Vec<LineWire>,
    adjustments: Vec<AdjustmentWire>,
    currency: Currency,
    subtotal: i64,
    total: i64,
    shipping_address: Address,
    shipment: Option<ShipmentWire>,
    payment: Option<Payment>,
    history: Vec<Transition>,
    created_at: i64,
    stock_released: bool,
    // Added after the first orders were written: absent means the default.
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    payment_method: Option<String>,
    #[serde(default)]
    refunded: i64,
    #[serde(default)]
    version: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct LineWire {
    sku: String,
    name: String,
    quantity: u32,
    /// The one amount stored with its currency (it is the catalog's price).
    unit_price: Money,
    total: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct AdjustmentWire {
    kind: String,
    label: String,
    amount: i64,
    source: String,
    line: Option<u32>,
}

#[derive(Clone, Serialize, Deserialize)]
struct ShipmentWire {
    rate_id: String,
    carrier: String,
    service: String,
    amount: i64,
    shipment_id: Option<String>,
    tracking_number: Option<String>,
    label_url: Option<String>,
}

impl From<OrderWire> for OrderRecord {
    fn from(w: OrderWire) -> Self {
        let currency = w.currency;
        let money = |amount| Money { amount, currency };
        Self {
            id: w.id,
            user_id: w.user_id,
            status: w.status,
            lines: w
                .lines
                .into_iter()
                .map(|l| OrderLine {
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    total: money(l.total),
                })
                .collect(),
            adjustments: w
                .adjustments
                .into_iter()
                .map(|a| OrderAdjustment {
                    kind: a.kind,
                    label: a.label,
                    amount: money(a.amount),
                    source: a.source,
                    line: a.line,
                })
                .collect(),
            currency,
            subtotal: money(w.subtotal),
            total: money(w.total),
            shipping_address: w.shipping_address,
            shipment: w.shipment.map(|s| Shipment {
                rate_id: s.rate_id,
                carrier: s.carrier,
                service: s.service,
                amount: money(s.amount),
                shipment_id: s.shipment_id,
                tracking_number: s.tracking_number,
                label_url: s.label_url,
            }),
            payment: w.payment,
            history: w.history,
            created_at: w.created_at,
            stock_released: w.stock_released,
            attempt: w.attempt,
            payment_method: w.payment_method,
            refunded: money(w.refunded),
            version: w.version,
        }
    }
}

impl From<OrderRecord> for OrderWire {
    /// Every amount of an order is in its currency (pricing refuses mixed currencies
    /// and rules or rates in another one), so only the minor units are written.
    fn from(o: OrderRecord) -> Self {
        Self {
            id: o.id,
            user_id: o.user_id,
            status: o.status,
            lines: o
                .lines
                .into_iter()
                .map(|l| LineWire {
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    total: l.total.amount,
                })
                .collect(),
            adjustments: o
                .adjustments
                .into_iter()
                .map(|a| AdjustmentWire {
                    kind: a.kind,
                    label: a.label,
                    amount: a.amount.amount,
                    source: a.source,
                    line: a.line,
                })
                .collect(),
            currency: o.currency,
            subtotal: o.subtotal.amount,
            total: o.total.amount,
            shipping_address: o.shipping_address,
            shipment: o.shipment.map(|s| ShipmentWire {
                rate_id: s.rate_id,
                carrier: s.carrier,
                service: s.service,
                amount: s.amount.amount,
                shipment_id: s.shipment_id,
                tracking_number: s.tracking_number,
                label_url: s.label_url,
            }),
            payment: o.payment,
            history: o.history,
            created_at: o.created_at,
            stock_released: o.stock_released,
            attempt: o.attempt,
            payment_method: o.payment_method,
            refunded: o.refunded.amount,
            version: o.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::{decode, encode, from_json, to_json};

    /// An order exactly as the store wrote it before the model carried typed ids and
    /// `Money` (taken from that code's serialization; the test then ran against it):
    /// serde_json's compact form, fields in declaration order. sled keeps these bytes,
    /// PostgreSQL the same document as JSONB, and `plinth store copy` moves one into the
    /// other. Changing the model must not change a byte of it.
    const STORED_ORDER: &str = concat!(
        r#"{"id":"0123456789abcdef0123456789abcdef","user_id":"0190a1b2c3d4e5f60718293a4b5c6d7e","#,
        r#""status":"fulfilled","lines":[{"sku":"MUG-1","name":"Mug","quantity":2,"#,
        r#""unit_price":{"amount":1250,"currency":"USD"},"total":2500}],"#,
        r#""adjustments":[{"kind":"discount","label":"10% off","amount":-250,"source":"rules-discounts","line":0},"#,
        r#"{"kind":"shipping","label":"USPS Priority","amount":550,"source":"shipping-shippo","line":null}],"#,
        r#""currency":"USD","subtotal":2500,"total":2800,"#,
        r#""shipping_address":{"name":"Ada Lovelace","line1":"12 Analytical Way","line2":null,"city":"Oakland","#,
        r#""region":"CA","postal_code":"94610","country":"US","phone":"+14155550100","email":"ada@example.com"},"#,
        r#""shipment":{"rate_id":"rate_1","carrier":"USPS","service":"Priority","amount":550,"shipment_id":"shp_1","#,
        r#""tracking_number":"9400","label_url":"https://labels.example.com/1.pdf"},"#,
        r#""payment":{"provider":"payments-stripe","provider_id":"pi_1","refund_id":null},"#,
        r#""history":[{"status":"pending","at":1764480000000,"note":null},{"status":"paid","at":1764480001000,"note":null},"#,
        r#"{"status":"fulfilled","at":1764480002000,"note":"label bought"}],"#,
        r#""created_at":1764480000000,"stock_released":false,"attempt":1,"payment_method":"pm_card_visa","#,
        r#""refunded":300,"version":3}"#
    );

    #[test]
    fn stored_orders_decode_and_encode_byte_for_byte() {
        let order: OrderRecord = decode(STORED_ORDER.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(encode(&order).unwrap()).unwrap(), STORED_ORDER);
        // PostgreSQL keeps the same document as JSONB: equal as JSON values.
        let value: serde_json::Value = serde_json::from_str(STORED_ORDER).unwrap();
        let order: OrderRecord = from_json(value.clone()).unwrap();
        assert_eq!(to_json(&order).unwrap(), value);
    }

    #[test]
    fn stored_amounts_become_money_in_the_orders_currency() {
        let order: OrderRecord = decode(STORED_ORDER.as_bytes()).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let m = |amount| Money {
            amount,
            currency: usd,
        };
        assert_eq!(order.currency, usd);
        assert_eq!(order.id.as_str(), "0123456789abcdef0123456789abcdef");
        assert_eq!(order.user_id.as_str(), "0190a1b2c3d4e5f60718293a4b5c6d7e");
        assert_eq!(
            (order.lines[0].unit_price, order.lines[0].total),
            (m(1250), m(2500))
        );
        let amounts: Vec<Money> = order.adjustments.iter().map(|a| a.amount).collect();
        assert_eq!(amounts, [m(-250), m(550)]);
        assert_eq!(
            (order.subtotal, order.total, order.refunded),
            (m(2500), m(2800), m(300))
        );
        assert_eq!(order.shipment.as_ref().unwrap().amount, m(550));
        assert_eq!(order.shipping_address.country(), "US");
        assert_eq!(
            order.shipping_address.email().unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn orders_from_before_attempts_refunds_and_versions_still_decode() {
        let mut old: serde_json::Value = serde_json::from_str(STORED_ORDER).unwrap();
        let fields = old.as_object_mut().unwrap();
        for gone in ["attempt", "payment_method", "refunded", "version"] {
            fields.remove(gone);
        }
        let order: OrderRecord = from_json(old).unwrap();
        assert_eq!(
            (order.attempt, order.payment_method.as_deref(), order.version),
            (0, None, 0)
        );
        assert_eq!(order.refunded.amount, 0);
        assert_eq!(to_json(&order).unwrap()["refunded"], 0);
    }
}
