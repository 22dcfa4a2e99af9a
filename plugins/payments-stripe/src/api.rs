//! Stripe's REST API without the I/O: request bodies, and responses mapped to the
//! `payment-gateway` types. Everything here is pure, so it is unit-tested natively.

use plinth_sdk::payment::{
    ChargeReceipt, ChargeRequest, ChargeStatus, Error, Money, PaymentError, RefundReceipt, RefundRequest,
};
use serde::Deserialize;

use crate::form::Form;

/// Shown when Stripe declines without a message of its own.
const DECLINED: &str = "Your card was declined.";

/// Checks an amount before it goes to Stripe: positive minor units of a three-letter code.
pub fn validate_money(money: &Money) -> Result<(), PaymentError> {
    if money.amount <= 0 {
        return Err(PaymentError::Invalid(format!(
            "amount must be positive, got {}",
            money.amount
        )));
    }
    if money.currency.len() != 3 || !money.currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(PaymentError::Invalid(format!(
            "currency must be an ISO 4217 code, got {:?}",
            money.currency
        )));
    }
    Ok(())
}

/// `POST /v1/payment_intents`: create and confirm in one call. `payment_method_types[]=card`
/// lets `confirm=true` work without a `return_url`. `descriptive` adds `description` and
/// `receipt_email`, which the real API takes and the localstripe emulator rejects.
pub fn charge_form(req: &ChargeRequest, descriptive: bool) -> Form {
    let mut form = Form::new();
    form.push("amount", &req.amount.amount.to_string())
        .push("currency", &req.amount.currency.to_ascii_lowercase())
        .push("payment_method", &req.payment_method)
        .push("confirm", "true")
        .push("payment_method_types[]", "card")
        .push("metadata[order_id]", &req.order_id)
        .push("metadata[charge_key]", &req.idempotency_key);
    if descriptive {
        if let Some(description) = &req.description {
            form.push("description", description);
        }
        if let Some(email) = &req.customer_email {
            form.push("receipt_email", email);
        }
    }
    form
}

/// `POST /v1/refunds`: the whole PaymentIntent, or `amount` of it.
pub fn refund_form(req: &RefundRequest) -> Form {
    let mut form = Form::new();
    form.push("payment_intent", &req.provider_id);
    if let Some(amount) = &req.amount {
        form.push("amount", &amount.amount.to_string());
    }
    form
}

/// The parts of a PaymentIntent the plugin reads.
#[derive(Debug, Deserialize)]
pub(crate) struct PaymentIntent {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
    last_payment_error: Option<StripeError>,
}

impl PaymentIntent {
    pub fn receipt(&self, status: ChargeStatus) -> ChargeReceipt {
        ChargeReceipt {
            provider_id: self.id.clone(),
            status,
            amount: Money {
                amount: self.amount,
                currency: self.currency.to_ascii_uppercase(),
            },
        }
    }
}

/// The parts of a Refund the plugin reads.
#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    amount: i64,
    currency: String,
    status: Option<String>,
}

/// `{"error": {...}}`, Stripe's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Debug, Default, Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

/// Maps the answer to `POST /v1/payment_intents`.
pub fn charge_outcome(status: u16, body: &[u8]) -> Result<ChargeReceipt, PaymentError> {
    if status != 200 {
        return Err(error_for_status(status, body));
    }
    let pi: PaymentIntent = parse(body, "PaymentIntent")?;
    let status = match pi.status.as_str() {
        "succeeded" => ChargeStatus::Succeeded,
        "processing" | "requires_capture" => ChargeStatus::Pending,
        "requires_action" => ChargeStatus::RequiresAction,
        // A confirmation that failed: the real API answers 402, an emulator may answer 200
        // with the PaymentIntent back at `requires_payment_method`.
        "requires_payment_method" if pi.last_payment_error.is_some() => {
            let message = pi.last_payment_error.and_then(|e| e.message);
            return Err(PaymentError::Declined(message.unwrap_or_else(|| DECLINED.into())));
        }
        other => {
            return Err(PaymentError::Upstream(format!(
                "Stripe left PaymentIntent {} in status {other:?}",
                pi.id
            )))
        }
    };
    Ok(pi.receipt(status))
}

/// Maps the answer to `POST /v1/refunds`. A refund that is `pending` has been accepted;
/// one that is `failed` or `canceled` already has not.
pub fn refund_outcome(status: u16, body: &[u8]) -> Result<RefundReceipt, PaymentError> {
    if status != 200 {
        return Err(error_for_status(status, body));
    }
    let refund: Refund = parse(body, "Refund")?;
    if let Some(s @ ("failed" | "canceled")) = refund.status.as_deref() {
        return Err(PaymentError::Upstream(format!(
            "Stripe refund {} is {s}",
            refund.id
        )));
    }
    Ok(RefundReceipt {
        provider_id: refund.id,
        amount: Money {
            amount: refund.amount,
            currency: refund.currency.to_ascii_uppercase(),
        },
    })
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, PaymentError> {
    serde_json::from_slice(body)
        .map_err(|e| PaymentError::Upstream(format!("Stripe sent an unexpected {what}: {e}")))
}

/// Maps a non-200 answer (<https://docs.stripe.com/api/errors>). 402 is a declined card
/// (Stripe's `message` for those is meant for the customer); a bad key is our
/// configuration, not the caller's input, so it is `internal` and its message (which
/// echoes part of the key) is not repeated.
pub fn error_for_status(status: u16, body: &[u8]) -> PaymentError {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default();
    let message = || {
        error
            .message
            .clone()
            .unwrap_or_else(|| format!("Stripe answered HTTP {status}"))
    };
    match status {
        402 => PaymentError::Declined(error.message.clone().unwrap_or_else(|| DECLINED.into())),
        401 | 403 => PaymentError::Internal(format!("Stripe refused the secret key (HTTP {status})")),
        // 409 is either the same idempotency key with other parameters (the caller's
        // mistake) or a concurrent request with the same key (retry later).
        409 if error.kind.as_deref() == Some("idempotency_error") => PaymentError::Invalid(message()),
        409 | 429 => PaymentError::Unavailable(message()),
        400..=499 => PaymentError::Invalid(message()),
        500..=599 => PaymentError::Upstream(message()),
        _ => PaymentError::Upstream(format!(
            "Stripe answered HTTP {status}{}",
            error.code.map(|c| format!(" ({c})")).unwrap_or_default()
        )),
    }
}

/// Maps a failed `outbound::send`: the host's refusals are our configuration (`internal`),
/// a slow or unreachable Stripe is `unavailable`.
pub fn from_outbound(error: Error) -> PaymentError {
    match error {
        Error::Timeout(m) => PaymentError::Unavailable(format!("timeout: {m}")),
        Error::Unavailable(m) => PaymentError::Unavailable(m),
        Error::Upstream(m) | Error::NotFound(m) => PaymentError::Upstream(m),
        Error::Denied(m) => PaymentError::Internal(format!("outbound call denied: {m}")),
        Error::LimitExceeded(m) => PaymentError::Internal(format!("outbound limit exceeded: {m}")),
        Error::Invalid(m) => PaymentError::Internal(format!("invalid outbound request: {m}")),
        Error::Internal(m) => PaymentError::Internal(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(amount: i64) -> Money {
        Money {
            amount,
            currency: "USD".into(),
        }
    }

    fn charge_request() -> ChargeRequest {
        ChargeRequest {
            order_id: "ord_1".into(),
            amount: usd(1999),
            payment_method: "pm_card_visa".into(),
            idempotency_key: "key-1".into(),
            customer_email: Some("a+b@example.com".into()),
            description: Some("Order #1".into()),
        }
    }

    #[test]
    fn charge_form_has_every_parameter() {
        assert_eq!(
            charge_form(&charge_request(), true).as_str(),
            "amount=1999&currency=usd&payment_method=pm_card_visa&confirm=true\
             &payment_method_types%5B%5D=card&metadata%5Border_id%5D=ord_1\
             &metadata%5Bcharge_key%5D=key-1\
             &description=Order%20%231&receipt_email=a%2Bb%40example.com"
        );
        let plain = charge_form(&charge_request(), false);
        assert!(!plain.as_str().contains("description") && !plain.as_str().contains("receipt_email"));
    }

    #[test]
    fn refund_form_with_and_without_amount() {
        let mut req = RefundRequest {
            provider_id: "pi_1".into(),
            amount: None,
            idempotency_key: "r-1".into(),
        };
        assert_eq!(refund_form(&req).as_str(), "payment_intent=pi_1");
        req.amount = Some(usd(500));
        assert_eq!(refund_form(&req).as_str(), "payment_intent=pi_1&amount=500");
    }

    #[test]
    fn validates_money() {
        assert!(validate_money(&usd(1)).is_ok());
        assert!(matches!(validate_money(&usd(0)), Err(PaymentError::Invalid(_))));
        let bad = Money {
            amount: 5,
            currency: "US".into(),
        };
        assert!(matches!(validate_money(&bad), Err(PaymentError::Invalid(_))));
    }

    /// Trimmed from localstripe 1.15.10's answer for `pm_card_visa`.
    const SUCCEEDED: &str = r#"{"amount": 1999, "currency": "usd", "id": "pi_jWpquH0ejisE68",
        "last_payment_error": null, "next_action": null, "object": "payment_intent",
        "metadata": {"order_id": "ord_1"}, "payment_method": "pm_card_visa", "status": "succeeded"}"#;

    #[test]
    fn succeeded_payment_intent_is_a_receipt() {
        let receipt = charge_outcome(200, SUCCEEDED.as_bytes()).unwrap();
        assert_eq!(receipt.provider_id, "pi_jWpquH0ejisE68");
        assert!(matches!(receipt.status, ChargeStatus::Succeeded));
        assert_eq!(
            (receipt.amount.amount, receipt.amount.currency.as_str()),
            (1999, "USD")
        );
    }

    #[test]
    fn other_statuses() {
        let with = |status: &str| SUCCEEDED.replace("\"succeeded\"", &format!("\"{status}\""));
        let action = charge_outcome(200, with("requires_action").as_bytes()).unwrap();
        assert!(matches!(action.status, ChargeStatus::RequiresAction));
        let pending = charge_outcome(200, with("processing").as_bytes()).unwrap();
        assert!(matches!(pending.status, ChargeStatus::Pending));
        assert!(matches!(
            charge_outcome(200, with("canceled").as_bytes()),
            Err(PaymentError::Upstream(_))
        ));
        assert!(matches!(
            charge_outcome(200, b"<html>"),
            Err(PaymentError::Upstream(_))
        ));
    }

    #[test]
    fn failed_confirmation_in_a_200_is_declined() {
        let body = SUCCEEDED.replace("\"succeeded\"", "\"requires_payment_method\"").replace(
            "\"last_payment_error\": null",
            r#""last_payment_error": {"charge": "ch_1", "code": "card_declined", "message": "Your card was declined."}"#,
        );
        match charge_outcome(200, body.as_bytes()) {
            Err(PaymentError::Declined(m)) => assert_eq!(m, "Your card was declined."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_402_is_declined() {
        // localstripe says `invalid_request_error` where Stripe says `card_error`.
        let body = br#"{"error": {"charge": "ch_8tUSywAClijHtv", "code": "card_declined",
            "message": "Your card was declined.", "type": "invalid_request_error"}}"#;
        match charge_outcome(402, body) {
            Err(PaymentError::Declined(m)) => assert_eq!(m, "Your card was declined."),
            other => panic!("{other:?}"),
        }
        assert!(matches!(error_for_status(402, b""), PaymentError::Declined(m) if m == DECLINED));
    }

    #[test]
    fn other_error_statuses() {
        let body =
            |kind: &str, msg: &str| format!(r#"{{"error": {{"type": "{kind}", "message": "{msg}"}}}}"#);
        let bad = body("invalid_request_error", "Amount must be at least $0.50 usd");
        assert!(matches!(error_for_status(400, bad.as_bytes()),
            PaymentError::Invalid(m) if m == "Amount must be at least $0.50 usd"));
        assert!(
            matches!(error_for_status(404, b"{}"), PaymentError::Invalid(m) if m == "Stripe answered HTTP 404")
        );
        let key = body(
            "invalid_request_error",
            "Invalid API Key provided: sk_test_****1234",
        );
        assert!(
            matches!(error_for_status(401, key.as_bytes()), PaymentError::Internal(m) if !m.contains("sk_"))
        );
        let idem = body(
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters",
        );
        assert!(matches!(
            error_for_status(409, idem.as_bytes()),
            PaymentError::Invalid(_)
        ));
        assert!(matches!(
            error_for_status(409, b"{}"),
            PaymentError::Unavailable(_)
        ));
        assert!(matches!(error_for_status(429, b""), PaymentError::Unavailable(_)));
        assert!(
            matches!(error_for_status(500, body("api_error", "oops").as_bytes()),
            PaymentError::Upstream(m) if m == "oops")
        );
        assert!(matches!(error_for_status(302, b""), PaymentError::Upstream(_)));
    }

    /// localstripe 1.15.10's answer to a partial refund.
    const REFUND: &str = r#"{"amount": 500, "balance_transaction": "txn_DuBjCg9q0kIV7j",
        "charge": "ch_5lurCrUQc297x1", "created": 1795885367, "currency": "usd", "date": 1795885367,
        "id": "re_yfK81Ay1Tpb8QC", "livemode": false, "metadata": {}, "object": "refund",
        "payment_intent": "pi_jWpquH0ejisE68", "status": "succeeded"}"#;

    #[test]
    fn refunds() {
        let receipt = refund_outcome(200, REFUND.as_bytes()).unwrap();
        assert_eq!(receipt.provider_id, "re_yfK81Ay1Tpb8QC");
        assert_eq!(
            (receipt.amount.amount, receipt.amount.currency.as_str()),
            (500, "USD")
        );
        let pending = REFUND.replace("\"succeeded\"", "\"pending\"");
        assert!(refund_outcome(200, pending.as_bytes()).is_ok());
        let failed = REFUND.replace("\"succeeded\"", "\"failed\"");
        assert!(matches!(
            refund_outcome(200, failed.as_bytes()),
            Err(PaymentError::Upstream(_))
        ));
        let refused =
            br#"{"error": {"message": "Cannot refund a failed payment.", "type": "invalid_request_error"}}"#;
        assert!(matches!(refund_outcome(400, refused),
            Err(PaymentError::Invalid(m)) if m == "Cannot refund a failed payment."));
    }

    #[test]
    fn outbound_errors() {
        assert!(
            matches!(from_outbound(Error::Timeout("5s".into())), PaymentError::Unavailable(m) if m == "timeout: 5s")
        );
        assert!(matches!(
            from_outbound(Error::Denied("host".into())),
            PaymentError::Internal(_)
        ));
        assert!(matches!(
            from_outbound(Error::Unavailable("refused".into())),
            PaymentError::Unavailable(_)
        ));
    }
}
