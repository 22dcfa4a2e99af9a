//! `rules-discounts`: discount codes. Pure and deterministic: the time comes in the cart.
//!
//! Config `codes` is a JSON object of code → rule:
//! `{"SUMMER10": {"percent": 10, "min_order": 5000, "expires_at": 1798761600},
//!   "FIVEOFF": {"fixed": 500, "currency": "USD"}}`
//! (`min_order` in minor units of the cart's currency, `expires_at` in Unix seconds).

use std::collections::BTreeMap;

use plinth_sdk::rules::{config, Adjustment, AdjustmentKind, Cart, Customer, Guest, Money, Rejection};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    percent: Option<u32>,
    fixed: Option<i64>,
    currency: Option<String>,
    #[serde(default)]
    min_order: i64,
    expires_at: Option<i64>,
}

fn reject(code: &str, message: String) -> Rejection {
    Rejection {
        code: code.into(),
        message,
    }
}

fn codes() -> Result<BTreeMap<String, Code>, Rejection> {
    let raw = config::get("codes").unwrap_or_else(|| "{}".into());
    let parsed: BTreeMap<String, Code> = serde_json::from_str(&raw).map_err(|e| {
        reject(
            "discounts_misconfigured",
            format!("discount codes are misconfigured: {e}"),
        )
    })?;
    Ok(parsed.into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect())
}

/// Order value so far: lines plus earlier adjustments, computed wide so that no price ×
/// quantity or sum can wrap; a value beyond `i64` is refused.
fn order_value(cart: &Cart, prior: &[Adjustment]) -> Result<i64, Rejection> {
    let lines: i128 = cart
        .lines
        .iter()
        .map(|l| i128::from(l.unit_price.amount) * i128::from(l.quantity))
        .sum();
    let value = lines + prior.iter().map(|a| i128::from(a.amount.amount)).sum::<i128>();
    i64::try_from(value).map_err(|_| {
        reject(
            "amount_too_large",
            "the order's amounts are too large to compute".into(),
        )
    })
}

struct Discounts;

impl Guest for Discounts {
    fn apply(cart: Cart, _customer: Customer, prior: Vec<Adjustment>) -> Result<Vec<Adjustment>, Rejection> {
        let Some(entered) = cart
            .discount_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        else {
            return Ok(vec![]);
        };
        let name = entered.to_uppercase();
        let codes = codes()?;
        let rule = codes.get(&name).ok_or_else(|| {
            reject(
                "unknown_discount_code",
                format!("{entered} is not a valid discount code"),
            )
        })?;
        if rule.expires_at.is_some_and(|t| cart.now >= t) {
            return Err(reject("discount_code_expired", format!("{name} has expired")));
        }
        let value = order_value(&cart, &prior)?;
        if value < rule.min_order {
            return Err(reject(
                "discount_minimum_not_met",
                format!(
                    "{name} needs an order of at least {} {}",
                    rule.min_order, cart.currency
                ),
            ));
        }
        let (off, label) = match (rule.percent, rule.fixed) {
            // |value × p / 100| ≤ |value|: fits once computed wide.
            (Some(p), None) if p <= 100 => (
                (i128::from(value) * i128::from(p) / 100) as i64,
                format!("{name} (-{p}%)"),
            ),
            (None, Some(f)) if f >= 0 => {
                if rule
                    .currency
                    .as_deref()
                    .is_some_and(|c| !c.eq_ignore_ascii_case(&cart.currency))
                {
                    return Err(reject(
                        "discount_currency_mismatch",
                        format!("{name} does not apply to {}", cart.currency),
                    ));
                }
                (f.min(value), format!("{name} (-{f})"))
            }
            _ => {
                return Err(reject(
                    "discounts_misconfigured",
                    format!("{name} needs exactly one of percent (0-100) or fixed"),
                ))
            }
        };
        Ok(vec![Adjustment {
            kind: AdjustmentKind::Discount,
            label,
            amount: Money {
                amount: -off,
                currency: cart.currency.clone(),
            },
            line: None,
        }])
    }
}

plinth_sdk::rules::export_rules_plugin!(Discounts);
