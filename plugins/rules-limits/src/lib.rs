//! `rules-limits`: at most N units of a product per customer, counting what they already
//! bought. Pure and deterministic.
//!
//! Config `max_per_customer`: `{"*": 10, "TEE-LTD": 2}` (sku → limit; `*` for the rest).

use std::collections::BTreeMap;

use plinth_sdk::rules::{config, Adjustment, Cart, Customer, Guest, Rejection};

struct Limits;

impl Guest for Limits {
    fn apply(cart: Cart, customer: Customer, _prior: Vec<Adjustment>) -> Result<Vec<Adjustment>, Rejection> {
        let raw = config::get("max_per_customer").unwrap_or_else(|| "{}".into());
        let limits: BTreeMap<String, u32> = serde_json::from_str(&raw).map_err(|e| Rejection {
            code: "limits_misconfigured".into(),
            message: format!("purchase limits are misconfigured: {e}"),
        })?;
        let limits: BTreeMap<String, u32> = limits.into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect();
        for line in &cart.lines {
            let sku = line.sku.to_uppercase();
            let Some(max) = limits.get(&sku).or_else(|| limits.get("*")) else {
                continue;
            };
            let before = customer
                .purchased
                .iter()
                .filter(|(s, _)| s.eq_ignore_ascii_case(&sku))
                .map(|(_, n)| *n)
                .sum::<u32>();
            let wanted = cart
                .lines
                .iter()
                .filter(|l| l.sku.eq_ignore_ascii_case(&sku))
                .map(|l| l.quantity)
                .sum::<u32>();
            if before.saturating_add(wanted) > *max {
                let left = max.saturating_sub(before);
                return Err(Rejection {
                    code: "quantity_limit".into(),
                    message: format!(
                        "{} is limited to {max} per customer; you can buy {left} more",
                        line.name
                    ),
                });
            }
        }
        Ok(vec![])
    }
}

plinth_sdk::rules::export_rules_plugin!(Limits);
