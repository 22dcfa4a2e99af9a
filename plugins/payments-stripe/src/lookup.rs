//! `find-charge` on Stripe: `GET /v1/payment_intents` (newest first, 100 a page), matching
//! the `metadata[charge_key]` every charge of this plugin carries. Pure, like `api`.
//!
//! Stripe's list takes `created[gte]`, which keeps the walk to the minutes around the
//! order; the localstripe emulator refuses that parameter, so it can be turned off
//! (`created_filter = "false"`), and the plugin then filters by `created` itself.

use plinth_sdk::payment::{ChargeLookup, ChargeReceipt, ChargeStatus, PaymentError};
use serde::Deserialize;

use crate::api::{self, PaymentIntent};
use crate::form::encode;

/// Pages walked at most (100 PaymentIntents each) before giving up as `unavailable`.
pub const MAX_PAGES: usize = 50;

/// The path of one page of the list.
pub fn page_path(lookup: &ChargeLookup, created_filter: bool, starting_after: Option<&str>) -> String {
    let mut path = String::from("/v1/payment_intents?limit=100");
    if created_filter {
        path.push_str(&format!("&created%5Bgte%5D={}", lookup.not_before));
    }
    if let Some(after) = starting_after {
        path.push_str(&format!("&starting_after={}", encode(after)));
    }
    path
}

#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<PaymentIntent>,
    #[serde(default)]
    has_more: bool,
}

/// What one page says.
#[derive(Debug)]
pub enum PageOutcome {
    /// The charge, settled from its PaymentIntent (`None`: it took no money).
    Found(Option<ChargeReceipt>),
    /// Not on this page; the next one starts after this id.
    Next(String),
    /// Not there at all.
    Absent,
}

/// Reads one page of `GET /v1/payment_intents`.
pub fn page_outcome(lookup: &ChargeLookup, status: u16, body: &[u8]) -> Result<PageOutcome, PaymentError> {
    if status != 200 {
        return Err(api::error_for_status(status, body));
    }
    let page: Page = api::parse(body, "list of PaymentIntents")?;
    let matching = page.data.iter().filter(|pi| {
        pi.metadata.get("charge_key") == Some(&lookup.idempotency_key) && pi.created >= lookup.not_before
    });
    // One key makes one charge at Stripe; should an emulator have made more, the one
    // that took money wins.
    let mut best: Option<Option<ChargeReceipt>> = None;
    for pi in matching {
        let settled = settle(pi)?;
        let took_money = settled
            .as_ref()
            .is_some_and(|r| r.status == ChargeStatus::Succeeded);
        if best.is_none() || took_money {
            best = Some(settled);
        }
        if took_money {
            break;
        }
    }
    if let Some(found) = best {
        return Ok(PageOutcome::Found(found));
    }
    match page.data.last() {
        Some(last) if page.has_more => Ok(PageOutcome::Next(last.id.clone())),
        _ => Ok(PageOutcome::Absent),
    }
}

/// A PaymentIntent as the state of a charge; `None` when it holds no money (declined,
/// canceled, never confirmed).
fn settle(pi: &PaymentIntent) -> Result<Option<ChargeReceipt>, PaymentError> {
    let status = match pi.status.as_str() {
        "succeeded" => ChargeStatus::Succeeded,
        "processing" | "requires_capture" => ChargeStatus::Pending,
        "requires_action" => ChargeStatus::RequiresAction,
        "requires_payment_method" | "requires_confirmation" | "canceled" => return Ok(None),
        other => {
            return Err(PaymentError::Upstream(format!(
                "Stripe has PaymentIntent {} in status {other:?}",
                pi.id
            )))
        }
    };
    Ok(Some(pi.receipt(status)))
}

#[cfg(test)]
mod tests {
    use plinth_sdk::payment::Money;

    use super::*;

    fn lookup() -> ChargeLookup {
        ChargeLookup {
            order_id: "ord_1".into(),
            idempotency_key: "plinth-ord_1".into(),
            amount: Money {
                amount: 1200,
                currency: "USD".into(),
            },
            payment_method: "pm_card_visa".into(),
            not_before: 1_700_000_000,
        }
    }

    fn pi(id: &str, key: &str, status: &str, created: i64) -> String {
        format!(
            r#"{{"id": "{id}", "object": "payment_intent", "amount": 1200, "currency": "usd",
            "status": "{status}", "created": {created}, "metadata": {{"order_id": "ord_1", "charge_key": "{key}"}}}}"#
        )
    }

    fn page(items: &[String], has_more: bool) -> Vec<u8> {
        format!(
            r#"{{"object": "list", "data": [{}], "has_more": {has_more}}}"#,
            items.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn paths() {
        assert_eq!(
            page_path(&lookup(), true, None),
            "/v1/payment_intents?limit=100&created%5Bgte%5D=1700000000"
        );
        assert_eq!(
            page_path(&lookup(), false, Some("pi_9")),
            "/v1/payment_intents?limit=100&starting_after=pi_9"
        );
    }

    #[test]
    fn finds_the_succeeded_charge_for_the_key() {
        let body = page(
            &[
                pi("pi_1", "plinth-other", "succeeded", 1_700_000_100),
                pi("pi_2", "plinth-ord_1", "succeeded", 1_700_000_100),
            ],
            true,
        );
        let PageOutcome::Found(Some(receipt)) = page_outcome(&lookup(), 200, &body).unwrap() else {
            panic!("not found");
        };
        assert_eq!(receipt.provider_id, "pi_2");
        assert_eq!(receipt.status, ChargeStatus::Succeeded);
        assert_eq!(receipt.amount.currency, "USD");
    }

    #[test]
    fn a_declined_or_canceled_charge_took_no_money() {
        for status in ["requires_payment_method", "canceled"] {
            let body = page(&[pi("pi_2", "plinth-ord_1", status, 1_700_000_100)], false);
            assert!(matches!(
                page_outcome(&lookup(), 200, &body).unwrap(),
                PageOutcome::Found(None)
            ));
        }
    }

    #[test]
    fn a_duplicate_that_took_money_wins() {
        let body = page(
            &[
                pi("pi_1", "plinth-ord_1", "canceled", 1_700_000_100),
                pi("pi_2", "plinth-ord_1", "succeeded", 1_700_000_100),
            ],
            false,
        );
        let PageOutcome::Found(Some(r)) = page_outcome(&lookup(), 200, &body).unwrap() else {
            panic!("not found");
        };
        assert_eq!(r.provider_id, "pi_2");
    }

    #[test]
    fn pages_on_and_stops() {
        let older = pi("pi_0", "plinth-ord_1", "succeeded", 1_600_000_000);
        let other = pi("pi_1", "plinth-other", "succeeded", 1_700_000_100);
        let body = page(&[older.clone(), other.clone()], true);
        assert!(
            matches!(page_outcome(&lookup(), 200, &body).unwrap(), PageOutcome::Next(id) if id == "pi_1")
        );
        let body = page(&[older, other], false);
        assert!(matches!(
            page_outcome(&lookup(), 200, &body).unwrap(),
            PageOutcome::Absent
        ));
        assert!(matches!(
            page_outcome(&lookup(), 200, &page(&[], false)).unwrap(),
            PageOutcome::Absent
        ));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            page_outcome(&lookup(), 401, b"{}"),
            Err(PaymentError::Internal(_))
        ));
        assert!(matches!(
            page_outcome(&lookup(), 200, b"not json"),
            Err(PaymentError::Upstream(_))
        ));
    }
}
