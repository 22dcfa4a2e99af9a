//! Razorpay webhooks (<https://razorpay.com/docs/webhooks/validate-test/>): the
//! `X-Razorpay-Signature` header is the hex HMAC-SHA256 of the raw body under the
//! webhook's secret. Razorpay signs no timestamp, so there is no replay window to check;
//! the `x-razorpay-event-id` header identifies an event across redeliveries.

use hmac::{Hmac, Mac};
use plinth_sdk::payment::{Money, PaymentError, RefundEvent, WebhookEvent};
use serde_json::Value;
use sha2::Sha256;

/// Verifies the signature over the raw body, then decodes the event.
pub fn parse(secret: &str, headers: &[(String, String)], body: &[u8]) -> Result<WebhookEvent, PaymentError> {
    let signature = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-razorpay-signature"))
        .map(|(_, value)| value.trim())
        .ok_or_else(|| invalid("missing X-Razorpay-Signature header"))?;
    verify(secret, signature, body)?;
    decode(body)
}

/// Checks the hex signature against `body`, in constant time.
pub fn verify(secret: &str, signature: &str, body: &[u8]) -> Result<(), PaymentError> {
    let signature = hex::decode(signature).map_err(|_| invalid("X-Razorpay-Signature is not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| PaymentError::Internal("unusable webhook secret".into()))?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| invalid("X-Razorpay-Signature does not match the payload"))
}

/// Decodes a verified event body: `{"event": "…", "payload": {"payment": {"entity": …}}}`.
pub fn decode(body: &[u8]) -> Result<WebhookEvent, PaymentError> {
    let event: Value =
        serde_json::from_slice(body).map_err(|e| invalid(&format!("webhook body is not JSON: {e}")))?;
    let kind = event
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("webhook body has no event name"))?;
    let entity_field = |entity: &str, field: &str| {
        event
            .pointer(&format!("/payload/{entity}/entity/{field}"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| invalid(&format!("{kind} event without payload.{entity}.entity.{field}")))
    };
    Ok(match kind {
        "payment.captured" => WebhookEvent::PaymentSucceeded(entity_field("payment", "id")?),
        "payment.failed" => WebhookEvent::PaymentFailed(entity_field("payment", "id")?),
        // One event per refund, full or partial; the payment entity that comes with it
        // carries the running total (`amount_refunded`, in the payment's currency).
        "refund.processed" => {
            let total = event
                .pointer("/payload/payment/entity/amount_refunded")
                .and_then(Value::as_i64)
                .filter(|a| *a >= 0)
                .ok_or_else(|| {
                    invalid("refund.processed event without payload.payment.entity.amount_refunded")
                })?;
            WebhookEvent::Refunded(RefundEvent {
                provider_id: entity_field("refund", "payment_id")?,
                refunded_total: Money {
                    amount: total,
                    currency: entity_field("payment", "currency")?.to_ascii_uppercase(),
                },
            })
        }
        other => WebhookEvent::Ignored(other.to_string()),
    })
}

fn invalid(message: &str) -> PaymentError {
    PaymentError::Invalid(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_razorpay_test";
    /// Shaped like Razorpay's `payment.captured` sample, trimmed.
    const CAPTURED: &str = r#"{"entity":"event","account_id":"acc_BFQ7uQEaa7j2z7","event":"payment.captured","contains":["payment"],"payload":{"payment":{"entity":{"id":"pay_DESlfW9H8K9uqM","entity":"payment","amount":100,"currency":"INR","status":"captured","order_id":"order_DESlLckIVRkHWj","error_description":null}}},"created_at":1567674606}"#;
    /// HMAC-SHA256(SECRET, CAPTURED) in hex, computed independently with Python's `hmac`.
    const CAPTURED_SIG: &str = "698d82fac1e5d31107340a24e533fffdf54af8b36234963457e1ec1b43c44c9f";

    fn headers(sig: &str) -> Vec<(String, String)> {
        vec![
            ("x-razorpay-event-id".into(), "evt_1".into()),
            ("x-razorpay-signature".into(), sig.into()),
        ]
    }

    #[test]
    fn known_vector() {
        let event = parse(SECRET, &headers(CAPTURED_SIG), CAPTURED.as_bytes()).unwrap();
        assert!(matches!(event, WebhookEvent::PaymentSucceeded(id) if id == "pay_DESlfW9H8K9uqM"));
        let upper = CAPTURED_SIG.to_ascii_uppercase();
        assert!(parse(SECRET, &headers(&upper), CAPTURED.as_bytes()).is_ok());
    }

    #[test]
    fn rejects_bad_signatures() {
        let reject = |secret: &str, sig: &str, body: &str| {
            matches!(
                parse(secret, &headers(sig), body.as_bytes()),
                Err(PaymentError::Invalid(_))
            )
        };
        assert!(reject("other", CAPTURED_SIG, CAPTURED));
        assert!(reject(SECRET, CAPTURED_SIG, &CAPTURED.replace("100", "1000")));
        assert!(reject(SECRET, &CAPTURED_SIG[..62], CAPTURED));
        assert!(reject(SECRET, "zz", CAPTURED));
        assert!(reject(SECRET, "", CAPTURED));
        assert!(matches!(
            parse(SECRET, &[], CAPTURED.as_bytes()),
            Err(PaymentError::Invalid(_))
        ));
    }

    #[test]
    fn decodes_event_types() {
        let failed = CAPTURED.replace("payment.captured", "payment.failed");
        assert!(
            matches!(decode(failed.as_bytes()).unwrap(), WebhookEvent::PaymentFailed(id) if id == "pay_DESlfW9H8K9uqM")
        );
        let refund = r#"{"entity":"event","event":"refund.processed","contains":["refund","payment"],
            "payload":{"refund":{"entity":{"id":"rfnd_2","entity":"refund","amount":100,"currency":"INR",
            "payment_id":"pay_DESlfW9H8K9uqM","status":"processed"}},"payment":{"entity":{"id":"pay_DESlfW9H8K9uqM",
            "amount":1000,"currency":"INR","amount_refunded":300,"refund_status":"partial"}}}}"#;
        assert!(matches!(decode(refund.as_bytes()).unwrap(),
            WebhookEvent::Refunded(r) if r.provider_id == "pay_DESlfW9H8K9uqM" && r.refunded_total.amount == 300
                && r.refunded_total.currency == "INR"));
        let no_total = refund.replace(r#","amount_refunded":300"#, "");
        assert!(matches!(
            decode(no_total.as_bytes()),
            Err(PaymentError::Invalid(_))
        ));
        let order = r#"{"event":"order.paid","payload":{}}"#;
        assert!(matches!(decode(order.as_bytes()).unwrap(), WebhookEvent::Ignored(t) if t == "order.paid"));
        let broken = r#"{"event":"payment.captured","payload":{}}"#;
        assert!(matches!(decode(broken.as_bytes()), Err(PaymentError::Invalid(_))));
        assert!(matches!(decode(b"[]"), Err(PaymentError::Invalid(_))));
    }
}
