//! Razorpay's Orders and Payments APIs without the I/O: request bodies, and responses
//! mapped to the `payment-gateway` types. Everything here is pure, so it is unit-tested
//! natively.

use plinth_sdk::payment::{
    ChargeReceipt, ChargeRequest, ChargeStatus, Error, Money, PaymentError, RefundReceipt, RefundRequest,
};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Razorpay's limit on an order's `receipt`.
const RECEIPT_MAX_CHARS: usize = 40;

/// Checks an amount before it goes to Razorpay: positive minor units of a three-letter code.
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

/// Checks an id that goes into a URL path (`pay_…`): letters, digits and `_` only.
pub fn validate_id(id: &str, what: &str) -> Result<(), PaymentError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(PaymentError::Invalid(format!(
            "{what} must be a Razorpay payment id, got {id:?}"
        )));
    }
    Ok(())
}

/// `POST /v1/orders`: the order this charge is recorded under.
pub fn order_body(req: &ChargeRequest) -> Value {
    json!({
        "amount": req.amount.amount,
        "currency": req.amount.currency.to_ascii_uppercase(),
        "receipt": req.idempotency_key.chars().take(RECEIPT_MAX_CHARS).collect::<String>(),
        "notes": { "order_id": req.order_id },
    })
}

/// `POST /v1/payments/{id}/capture`.
pub fn capture_body(amount: &Money) -> Value {
    json!({ "amount": amount.amount, "currency": amount.currency.to_ascii_uppercase() })
}

/// `POST /v1/payments/{id}/refund`: the whole payment, or `amount` of it.
pub fn refund_body(req: &RefundRequest) -> Value {
    match &req.amount {
        Some(amount) => json!({ "amount": amount.amount }),
        None => json!({}),
    }
}

/// The `X-Refund-Idempotency` value: Razorpay takes at least 10 characters of letters,
/// digits, `-` and `_`. A key that does not fit is replaced by its SHA-256 in hex, which
/// does and is just as stable across retries.
pub fn refund_idempotency_key(key: &str) -> String {
    let fits = (10..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        key.to_string()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
}

/// The parts of a payment entity the plugin reads.
#[derive(Debug, Deserialize)]
struct Payment {
    id: String,
    status: String,
    amount: i64,
    currency: String,
    error_description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    amount: i64,
    currency: String,
    status: Option<String>,
}

/// `{"error": {...}}`, Razorpay's error body (<https://razorpay.com/docs/errors>).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: RazorpayError,
}

#[derive(Debug, Default, Deserialize)]
struct RazorpayError {
    description: Option<String>,
    reason: Option<String>,
}

/// Maps the answer to `POST /v1/orders` to the order id.
pub fn order_outcome(status: u16, body: &[u8]) -> Result<String, PaymentError> {
    if status != 200 {
        return Err(error_for_status(status, body));
    }
    Ok(parse::<Order>(body, "order")?.id)
}

/// What to do after `POST /v1/payments/{id}/capture`.
#[derive(Debug)]
pub enum Capture {
    Done(Result<ChargeReceipt, PaymentError>),
    /// A 400 that the payment's own state explains better ("already been captured", a
    /// failed payment, an amount that does not match): fetch it and [`reconcile`]; the
    /// error is the answer if that fetch fails.
    CheckPayment(PaymentError),
}

pub fn capture_outcome(status: u16, body: &[u8]) -> Capture {
    match status {
        200 => Capture::Done(parse::<Payment>(body, "payment").and_then(|p| receipt(p, None))),
        400 => {
            let error = error_body(body);
            let message = describe(&error, status);
            if error.reason.as_deref() == Some("payment_failed") {
                Capture::Done(Err(PaymentError::Declined(message)))
            } else {
                Capture::CheckPayment(PaymentError::Invalid(message))
            }
        }
        _ => Capture::Done(Err(error_for_status(status, body))),
    }
}

/// Decides a charge from `GET /v1/payments/{id}` after a refused capture: captured for the
/// amount asked is a success (a retried charge), for another amount `invalid`, failed is
/// a decline, anything else is `refused` (the capture's own error).
pub fn reconcile(
    status: u16,
    body: &[u8],
    amount: &Money,
    refused: PaymentError,
) -> Result<ChargeReceipt, PaymentError> {
    if status != 200 {
        return Err(refused);
    }
    let payment: Payment = parse(body, "payment")?;
    match payment.status.as_str() {
        "captured" => receipt(payment, Some(amount)),
        "failed" => Err(declined(payment.error_description)),
        _ => Err(refused),
    }
}

/// Decides `find-charge` from `GET /v1/payments/{id}` (the customer's payment, which
/// this plugin captures): captured for the amount asked is the charge; anything else —
/// unknown, only authorized (Razorpay voids those), failed, refunded, captured for
/// another amount — took no money for this order.
pub fn lookup_outcome(
    status: u16,
    body: &[u8],
    amount: &Money,
) -> Result<Option<ChargeReceipt>, PaymentError> {
    match status {
        200 => {}
        404 => return Ok(None),
        _ => return Err(error_for_status(status, body)),
    }
    let payment: Payment = parse(body, "payment")?;
    let same_amount =
        payment.amount == amount.amount && payment.currency.eq_ignore_ascii_case(&amount.currency);
    if payment.status == "captured" && same_amount {
        return receipt(payment, Some(amount)).map(Some);
    }
    Ok(None)
}

/// A payment entity as a receipt: only `captured` is a success; `expect`, when given, must
/// match its amount and currency.
fn receipt(payment: Payment, expect: Option<&Money>) -> Result<ChargeReceipt, PaymentError> {
    let amount = Money {
        amount: payment.amount,
        currency: payment.currency.to_ascii_uppercase(),
    };
    if let Some(expect) = expect {
        if expect.amount != amount.amount || !expect.currency.eq_ignore_ascii_case(&amount.currency) {
            return Err(PaymentError::Invalid(format!(
                "payment {} was captured for {} {}, not {} {}",
                payment.id, amount.amount, amount.currency, expect.amount, expect.currency
            )));
        }
    }
    match payment.status.as_str() {
        "captured" => Ok(ChargeReceipt {
            provider_id: payment.id,
            status: ChargeStatus::Succeeded,
            amount,
        }),
        "failed" => Err(declined(payment.error_description)),
        other => Err(PaymentError::Upstream(format!(
            "Razorpay left payment {} in status {other:?}",
            payment.id
        ))),
    }
}

fn declined(description: Option<String>) -> PaymentError {
    PaymentError::Declined(description.unwrap_or_else(|| "The payment failed.".into()))
}

/// Maps the answer to `POST /v1/payments/{id}/refund`. `pending` and `processed` refunds
/// are accepted; a `failed` one is not.
pub fn refund_outcome(status: u16, body: &[u8]) -> Result<RefundReceipt, PaymentError> {
    if status != 200 {
        return Err(error_for_status(status, body));
    }
    let refund: Refund = parse(body, "refund")?;
    if refund.status.as_deref() == Some("failed") {
        return Err(PaymentError::Upstream(format!(
            "Razorpay refund {} failed",
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

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, PaymentError> {
    serde_json::from_slice(body)
        .map_err(|e| PaymentError::Upstream(format!("Razorpay sent an unexpected {what}: {e}")))
}

fn error_body(body: &[u8]) -> RazorpayError {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default()
}

fn describe(error: &RazorpayError, status: u16) -> String {
    error
        .description
        .clone()
        .unwrap_or_else(|| format!("Razorpay answered HTTP {status}"))
}

/// Maps a non-200 answer. Bad keys are our configuration (`internal`, and Razorpay's
/// message is not repeated); 409 is an idempotent refund still in progress (retry).
pub fn error_for_status(status: u16, body: &[u8]) -> PaymentError {
    let error = error_body(body);
    match status {
        401 | 403 => PaymentError::Internal(format!("Razorpay refused the API key (HTTP {status})")),
        409 | 429 => PaymentError::Unavailable(describe(&error, status)),
        400..=499 => PaymentError::Invalid(describe(&error, status)),
        _ => PaymentError::Upstream(describe(&error, status)),
    }
}

/// Maps a failed `outbound::send`: the host's refusals are our configuration (`internal`),
/// a slow or unreachable Razorpay is `unavailable`.
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

    fn inr(amount: i64) -> Money {
        Money {
            amount,
            currency: "INR".into(),
        }
    }

    /// From Razorpay's "Capture a Payment" example, trimmed.
    const CAPTURED: &str = r#"{"id": "pay_G3P9vcIhRs3NV4", "entity": "payment", "amount": 1000,
        "currency": "INR", "status": "captured", "order_id": "order_GjCr5oKh4AVC51",
        "method": "card", "amount_refunded": 0, "captured": true, "error_code": null,
        "error_description": null, "created_at": 1605871409}"#;

    fn with_status(status: &str) -> String {
        CAPTURED.replace("\"captured\",", &format!("\"{status}\","))
    }

    fn error(description: &str, reason: &str) -> String {
        format!(
            r#"{{"error": {{"code": "BAD_REQUEST_ERROR", "description": "{description}", "source": "business",
            "step": "payment_initiation", "reason": "{reason}", "metadata": {{}}, "field": null}}}}"#
        )
    }

    #[test]
    fn bodies() {
        let req = ChargeRequest {
            order_id: "ord_1".into(),
            amount: Money {
                amount: 50_000,
                currency: "inr".into(),
            },
            payment_method: "pay_G3P9vcIhRs3NV4".into(),
            idempotency_key: "checkout-0123456789-0123456789-0123456789-tail".into(),
            customer_email: None,
            description: None,
        };
        assert_eq!(
            order_body(&req),
            json!({"amount": 50000, "currency": "INR", "receipt": "checkout-0123456789-0123456789-012345678",
                   "notes": {"order_id": "ord_1"}})
        );
        assert_eq!(
            capture_body(&req.amount),
            json!({"amount": 50000, "currency": "INR"})
        );
        let mut refund = RefundRequest {
            provider_id: "pay_1".into(),
            amount: None,
            idempotency_key: "k".into(),
        };
        assert_eq!(refund_body(&refund), json!({}));
        refund.amount = Some(inr(100));
        assert_eq!(refund_body(&refund), json!({"amount": 100}));
    }

    #[test]
    fn idempotency_keys_fit_razorpay_rules() {
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        assert_eq!(refund_idempotency_key(uuid), uuid);
        let short = refund_idempotency_key("abc");
        assert_eq!(short.len(), 64);
        assert_eq!(short, refund_idempotency_key("abc"));
        assert_ne!(
            refund_idempotency_key("order:1/refund"),
            refund_idempotency_key("order:2/refund")
        );
    }

    #[test]
    fn validates_inputs() {
        assert!(validate_money(&inr(100)).is_ok());
        assert!(validate_money(&inr(-1)).is_err());
        assert!(validate_id("pay_G3P9vcIhRs3NV4", "payment").is_ok());
        assert!(validate_id("pay_1/../../v1/orders", "payment").is_err());
        assert!(validate_id("", "payment").is_err());
    }

    #[test]
    fn orders() {
        let body = br#"{"id": "order_EKwxwAgItmmXdp", "entity": "order", "amount": 50000,
            "amount_paid": 0, "amount_due": 50000, "currency": "INR", "receipt": "receipt#1",
            "status": "created", "attempts": 0, "notes": [], "created_at": 1582628071}"#;
        assert_eq!(order_outcome(200, body).unwrap(), "order_EKwxwAgItmmXdp");
        let bad = error("The amount must be atleast INR 1.00", "input_validation_failed");
        assert!(matches!(
            order_outcome(400, bad.as_bytes()),
            Err(PaymentError::Invalid(_))
        ));
    }

    #[test]
    fn captured_is_a_receipt() {
        let Capture::Done(Ok(r)) = capture_outcome(200, CAPTURED.as_bytes()) else {
            panic!()
        };
        assert_eq!(r.provider_id, "pay_G3P9vcIhRs3NV4");
        assert!(matches!(r.status, ChargeStatus::Succeeded));
        assert_eq!((r.amount.amount, r.amount.currency.as_str()), (1000, "INR"));
    }

    #[test]
    fn capture_errors() {
        let failed = error("Payment failed", "payment_failed");
        assert!(matches!(capture_outcome(400, failed.as_bytes()),
            Capture::Done(Err(PaymentError::Declined(m))) if m == "Payment failed"));
        let again = error(
            "This payment has already been captured",
            "input_validation_failed",
        );
        assert!(matches!(capture_outcome(400, again.as_bytes()),
            Capture::CheckPayment(PaymentError::Invalid(m)) if m.contains("already been captured")));
        assert!(matches!(
            capture_outcome(401, b"{}"),
            Capture::Done(Err(PaymentError::Internal(_)))
        ));
        assert!(matches!(
            capture_outcome(502, b""),
            Capture::Done(Err(PaymentError::Upstream(_)))
        ));
        assert!(matches!(
            capture_outcome(200, b"{}"),
            Capture::Done(Err(PaymentError::Upstream(_)))
        ));
    }

    #[test]
    fn reconciles_a_refused_capture() {
        let refused = || PaymentError::Invalid("This payment has already been captured".into());
        // A retried charge: already captured for the same amount.
        let r = reconcile(200, CAPTURED.as_bytes(), &inr(1000), refused()).unwrap();
        assert_eq!(r.provider_id, "pay_G3P9vcIhRs3NV4");
        // Captured, but for another amount: not ours to call a success.
        assert!(
            matches!(reconcile(200, CAPTURED.as_bytes(), &inr(999), refused()),
            Err(PaymentError::Invalid(m)) if m.contains("captured for 1000 INR, not 999 INR"))
        );
        let failed = with_status("failed").replace(
            "\"error_description\": null",
            "\"error_description\": \"Payment failed because the card was declined\"",
        );
        assert!(matches!(reconcile(200, failed.as_bytes(), &inr(1000), refused()),
            Err(PaymentError::Declined(m)) if m.starts_with("Payment failed because")));
        assert!(matches!(
            reconcile(200, with_status("authorized").as_bytes(), &inr(1000), refused()),
            Err(PaymentError::Invalid(_))
        ));
        assert!(matches!(
            reconcile(500, b"", &inr(1000), refused()),
            Err(PaymentError::Invalid(_))
        ));
    }

    #[test]
    fn finds_a_captured_payment_only() {
        let found = lookup_outcome(200, CAPTURED.as_bytes(), &inr(1000))
            .unwrap()
            .unwrap();
        assert_eq!(found.provider_id, "pay_G3P9vcIhRs3NV4");
        assert!(lookup_outcome(200, CAPTURED.as_bytes(), &inr(999))
            .unwrap()
            .is_none());
        for status in ["authorized", "failed", "refunded", "created"] {
            assert!(lookup_outcome(200, with_status(status).as_bytes(), &inr(1000))
                .unwrap()
                .is_none());
        }
        assert!(
            lookup_outcome(404, br#"{"error": {"code": "BAD_REQUEST_ERROR"}}"#, &inr(1000))
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            lookup_outcome(503, b"", &inr(1000)),
            Err(PaymentError::Upstream(_))
        ));
    }

    #[test]
    fn refunds() {
        let body = br#"{"id": "rfnd_FP8QHiV938haTz", "entity": "refund", "amount": 500100,
            "receipt": null, "currency": "INR", "payment_id": "pay_29QQoUBi66xm2f", "notes": [],
            "acquirer_data": {"arn": null}, "created_at": 1597078866, "batch_id": null,
            "status": "processed", "speed_processed": "normal", "speed_requested": "normal"}"#;
        let r = refund_outcome(200, body).unwrap();
        assert_eq!(
            (r.provider_id.as_str(), r.amount.amount),
            ("rfnd_FP8QHiV938haTz", 500_100)
        );
        let failed = String::from_utf8_lossy(body).replace("\"processed\"", "\"failed\"");
        assert!(matches!(
            refund_outcome(200, failed.as_bytes()),
            Err(PaymentError::Upstream(_))
        ));
        let over = error(
            "The refund amount provided is greater than amount captured",
            "input_validation_failed",
        );
        assert!(matches!(
            refund_outcome(400, over.as_bytes()),
            Err(PaymentError::Invalid(_))
        ));
        assert!(matches!(
            refund_outcome(409, b"{}"),
            Err(PaymentError::Unavailable(_))
        ));
        assert!(matches!(
            refund_outcome(429, b""),
            Err(PaymentError::Unavailable(_))
        ));
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
    }
}
