//! Pricing a cart: catalog prices, then the rules chain in configured order.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::CheckoutError;
use crate::catalog::Catalog;
use crate::domain::{Address, Currency, Money, RequestId, Sku};
use crate::runtime::bindings::http::plinth::plugin::types::Money as WitMoney;
use crate::runtime::bindings::rules::exports::plinth::plugin::checkout_rules as rule;
use crate::runtime::{Plugin, Runtime};
use crate::store::{OrderAdjustment, OrderLine};

/// Most lines and units per order.
const MAX_LINES: usize = 100;
const MAX_QUANTITY: u32 = 10_000;

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub sku: String,
    pub quantity: u32,
}

/// A priced cart: lines at catalog prices plus the rules' adjustments, every amount in
/// `currency`.
pub struct Priced {
    pub lines: Vec<OrderLine>,
    pub adjustments: Vec<OrderAdjustment>,
    pub currency: Currency,
    pub subtotal: Money,
}

impl Priced {
    /// `minor` units of the cart's currency.
    pub fn money(&self, minor: i64) -> Money {
        Money {
            amount: minor,
            currency: self.currency,
        }
    }

    /// Subtotal plus every adjustment; `AmountTooLarge` rather than a wrapped sum.
    pub fn total(&self) -> Result<Money, CheckoutError> {
        let adjustments = self.adjustments.iter().map(|a| a.amount);
        checked_sum(self.currency, std::iter::once(self.subtotal).chain(adjustments))
    }
}

/// A sum of amounts in `currency` that fails instead of wrapping (release builds wrap).
/// Every amount of a cart is in its currency: pricing refuses mixed currencies, and
/// rules and rates in another one.
pub fn checked_sum(
    currency: Currency,
    amounts: impl IntoIterator<Item = Money>,
) -> Result<Money, CheckoutError> {
    let amount = amounts
        .into_iter()
        .inspect(|m| debug_assert_eq!(m.currency, currency, "an amount in another currency"))
        .try_fold(0i64, |sum, m| sum.checked_add(m.amount))
        .ok_or(CheckoutError::AmountTooLarge)?;
    Ok(Money { amount, currency })
}

fn invalid(field: &'static str, message: impl ToString) -> CheckoutError {
    CheckoutError::Invalid {
        field,
        message: message.to_string(),
    }
}

/// Looks up each line in the catalog (one currency per order).
pub async fn price_lines(
    catalog: &Catalog,
    lines: &[LineRequest],
) -> Result<(Vec<OrderLine>, Currency), CheckoutError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(invalid("lines", format!("1-{MAX_LINES} lines")));
    }
    let mut merged: BTreeMap<String, u32> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for l in lines {
        let sku = Sku::parse(&l.sku).map_err(|e| invalid("lines", e))?;
        if l.quantity == 0 || l.quantity > MAX_QUANTITY {
            return Err(invalid("lines", format!("quantity must be 1-{MAX_QUANTITY}")));
        }
        let q = merged.entry(sku.to_string()).or_insert_with(|| {
            order.push(sku.to_string());
            0
        });
        *q = q.saturating_add(l.quantity).min(MAX_QUANTITY);
    }
    let mut out = Vec::with_capacity(order.len());
    let mut currency: Option<Currency> = None;
    for sku in order {
        let quantity = merged[&sku];
        let (product, _) = catalog
            .get(&sku)
            .await
            .map_err(|_| CheckoutError::UnknownSku(sku.clone()))?;
        let price = product.price;
        match currency {
            None => currency = Some(price.currency),
            Some(c) if c != price.currency => return Err(CheckoutError::MixedCurrency),
            Some(_) => {}
        }
        out.push(OrderLine {
            total: Money {
                amount: price
                    .amount
                    .checked_mul(i64::from(quantity))
                    .ok_or(CheckoutError::AmountTooLarge)?,
                currency: price.currency,
            },
            sku,
            name: product.name,
            quantity,
            unit_price: product.price,
        });
    }
    // At least one line was priced (an empty cart is refused above).
    let currency = currency.ok_or_else(|| invalid("lines", format!("1-{MAX_LINES} lines")))?;
    Ok((out, currency))
}

/// Everything a rule sees.
pub struct RuleInput<'a> {
    pub lines: &'a [OrderLine],
    pub categories: Vec<String>,
    pub currency: Currency,
    pub discount_code: Option<String>,
    pub destination: &'a Address,
    pub now_secs: i64,
    pub customer: rule::Customer,
}

/// Runs the rules chain; each rule sees the adjustments of the ones before it.
pub async fn apply_rules(
    runtime: &Runtime,
    rules: &[Arc<Plugin>],
    input: RuleInput<'_>,
    request_id: &RequestId,
) -> Result<Vec<OrderAdjustment>, CheckoutError> {
    let cart = rule::Cart {
        lines: input
            .lines
            .iter()
            .zip(&input.categories)
            .map(|(l, category)| rule::CartLine {
                sku: l.sku.clone(),
                name: l.name.clone(),
                category: category.clone(),
                quantity: l.quantity,
                unit_price: WitMoney {
                    amount: l.unit_price.amount,
                    currency: l.unit_price.currency.to_string(),
                },
            })
            .collect(),
        currency: input.currency.to_string(),
        discount_code: input.discount_code,
        destination: rule::Destination {
            country: input.destination.country().to_string(),
            region: input.destination.region().map(str::to_string),
            postal_code: input.destination.postal_code().to_string(),
        },
        now: input.now_secs,
    };
    let mut prior: Vec<rule::Adjustment> = Vec::new();
    let mut out = Vec::new();
    for plugin in rules {
        let done = runtime
            .rules_apply(
                plugin,
                cart.clone(),
                input.customer.clone(),
                prior.clone(),
                request_id,
            )
            .await?;
        let adjustments = done.value.map_err(|r| CheckoutError::Rejected {
            code: r.code,
            message: r.message,
        })?;
        for a in adjustments {
            if a.amount.currency != input.currency.as_str() {
                return Err(CheckoutError::RuleMisbehaved(format!(
                    "{} returned an adjustment in {}, the cart is in {}",
                    plugin.name(),
                    a.amount.currency,
                    input.currency
                )));
            }
            if a.line.is_some_and(|i| i as usize >= input.lines.len()) {
                return Err(CheckoutError::RuleMisbehaved(format!(
                    "{} adjusted a line that does not exist",
                    plugin.name()
                )));
            }
            out.push(OrderAdjustment {
                kind: match a.kind {
                    rule::AdjustmentKind::Discount => "discount",
                    rule::AdjustmentKind::Tax => "tax",
                    rule::AdjustmentKind::Fee => "fee",
                }
                .to_string(),
                label: a.label.chars().take(200).collect(),
                amount: Money {
                    amount: a.amount.amount,
                    currency: input.currency,
                },
                source: plugin.name().to_string(),
                line: a.line,
            });
            prior.push(a);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(amount: i64) -> Money {
        Money {
            amount,
            currency: Currency::parse("USD").unwrap(),
        }
    }

    fn adjustment(amount: i64) -> OrderAdjustment {
        OrderAdjustment {
            kind: "fee".into(),
            label: "x".into(),
            amount: usd(amount),
            source: "rule".into(),
            line: None,
        }
    }

    #[test]
    fn totals_fail_instead_of_wrapping() {
        let priced = |subtotal, adjustments: Vec<i64>| Priced {
            lines: Vec::new(),
            adjustments: adjustments.into_iter().map(adjustment).collect(),
            currency: usd(0).currency,
            subtotal: usd(subtotal),
        };
        assert_eq!(priced(1000, vec![-100, 50]).total().unwrap(), usd(950));
        assert!(matches!(
            priced(i64::MAX, vec![1]).total(),
            Err(CheckoutError::AmountTooLarge)
        ));
        assert!(matches!(
            priced(0, vec![i64::MIN, -1]).total(),
            Err(CheckoutError::AmountTooLarge)
        ));
        // A big negative adjustment that brings an overflowing run back is still refused:
        // every partial sum must fit.
        assert!(priced(i64::MAX, vec![i64::MAX, i64::MIN]).total().is_err());
        assert!(matches!(
            checked_sum(usd(0).currency, [usd(i64::MAX / 2 + 1), usd(i64::MAX / 2 + 1)]),
            Err(CheckoutError::AmountTooLarge)
        ));
    }
}
