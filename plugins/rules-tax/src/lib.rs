//! `rules-tax`: sales tax by destination. Pure and deterministic.
//!
//! Config `rates` is a JSON object of region → rate in basis points (1/100 of a
//! percent): `{"US-CA": 725, "US": 0, "DE": 1900, "GB": 2000, "*": 0}`. The most specific
//! key wins: `COUNTRY-REGION`, then `COUNTRY`, then `*`. Tax is charged on the order value
//! after earlier adjustments (discounts), rounded half up to the minor unit.

use std::collections::BTreeMap;

use plinth_sdk::rules::{config, Adjustment, AdjustmentKind, Cart, Customer, Guest, Money, Rejection};

struct Tax;

fn rates() -> Result<BTreeMap<String, i64>, Rejection> {
    let raw = config::get("rates").unwrap_or_else(|| "{}".into());
    let parsed: BTreeMap<String, i64> = serde_json::from_str(&raw).map_err(|e| Rejection {
        code: "tax_misconfigured".into(),
        message: format!("tax rates are misconfigured: {e}"),
    })?;
    Ok(parsed.into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect())
}

impl Guest for Tax {
    fn apply(cart: Cart, _customer: Customer, prior: Vec<Adjustment>) -> Result<Vec<Adjustment>, Rejection> {
        let rates = rates()?;
        let country = cart.destination.country.to_uppercase();
        let region = cart.destination.region.as_deref().map(str::to_uppercase);
        let bps = region
            .and_then(|r| rates.get(&format!("{country}-{r}")))
            .or_else(|| rates.get(&country))
            .or_else(|| rates.get("*"))
            .copied()
            .unwrap_or(0);
        if bps == 0 {
            return Ok(vec![]);
        }
        // Computed wide: no price × quantity, sum or rate can wrap; a tax beyond `i64`
        // is refused.
        let lines: i128 = cart
            .lines
            .iter()
            .map(|l| i128::from(l.unit_price.amount) * i128::from(l.quantity))
            .sum();
        let taxable = (lines + prior.iter().map(|a| i128::from(a.amount.amount)).sum::<i128>()).max(0);
        let tax = i64::try_from((taxable * i128::from(bps) + 5_000) / 10_000).map_err(|_| Rejection {
            code: "amount_too_large".into(),
            message: "the order's amounts are too large to compute".into(),
        })?;
        Ok(vec![Adjustment {
            kind: AdjustmentKind::Tax,
            label: format!("Tax {}.{:02}% ({country})", bps / 100, bps % 100),
            amount: Money {
                amount: tax,
                currency: cart.currency.clone(),
            },
            line: None,
        }])
    }
}

plinth_sdk::rules::export_rules_plugin!(Tax);
