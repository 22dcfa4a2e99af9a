//! `payments-razorpay`: the `payment-plugin` world on Razorpay's Orders and Payments APIs
//! (<https://razorpay.com/docs/api/>).
//!
//! - `charge`: the payment method is a Razorpay payment id (`pay_…`) the customer
//!   authorized client-side (Checkout). `POST /v1/orders` records the charge (receipt = the
//!   idempotency key, cut to 40 characters; `notes.order_id`), then
//!   `POST /v1/payments/{id}/capture`. A refused capture is settled from
//!   `GET /v1/payments/{id}`: already captured for the same amount is a success (a retry),
//!   failed is a decline.
//! - `find-charge`: `GET /v1/payments/{id}` of the lookup's payment method: captured for
//!   the amount is the charge, anything else took no money.
//! - `refund`: `POST /v1/payments/{id}/refund` with `X-Refund-Idempotency`.
//! - `parse-webhook`: checks `X-Razorpay-Signature`, then maps `payment.captured`,
//!   `payment.failed` and `refund.processed` (with the payment's running refunded total,
//!   so partial refunds stay partial).
//!
//! Config: `base_url` (default `https://api.razorpay.com`; its host must be on
//! `allowed_hosts`), `key_id` and `key_secret` (required; HTTP Basic auth, never logged),
//! `webhook_secret` (webhooks are refused without it).

mod api;
mod webhook;

use base64::Engine as _;
use plinth_sdk::payment::log::{self, Level};
use plinth_sdk::payment::{
    config, outbound, ChargeLookup, ChargeReceipt, ChargeRequest, Guest, HttpResponse, OutboundRequest,
    PaymentError, RefundReceipt, RefundRequest, WebhookEvent, WebhookRequest,
};
use serde_json::Value;

use crate::api::Capture;

struct Razorpay;

const DEFAULT_BASE_URL: &str = "https://api.razorpay.com";

/// A config value, `None` when unset or blank.
fn setting(key: &str) -> Option<String> {
    config::get(key).filter(|v| !v.trim().is_empty())
}

fn required(key: &str) -> Result<String, PaymentError> {
    setting(key).ok_or_else(|| PaymentError::Internal(format!("config value `{key}` is not set")))
}

/// `{method} {base_url}{path}`, authenticated, with a JSON body when given.
fn call(
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: Option<(&str, String)>,
) -> Result<HttpResponse, PaymentError> {
    let credentials = format!("{}:{}", required("key_id")?, required("key_secret")?);
    let base = setting("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.into());
    let mut headers = vec![
        (
            "authorization".to_string(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    if body.is_some() {
        headers.push(("content-type".to_string(), "application/json".to_string()));
    }
    if let Some((name, value)) = extra {
        headers.push((name.to_string(), value));
    }
    outbound::send(&OutboundRequest {
        method: method.into(),
        url: format!("{}{path}", base.trim_end_matches('/')),
        headers,
        body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        timeout_ms: None,
    })
    .map_err(api::from_outbound)
}

fn charge(req: &ChargeRequest) -> Result<ChargeReceipt, PaymentError> {
    api::validate_money(&req.amount)?;
    api::validate_id(&req.payment_method, "payment method")?;
    let order = call("POST", "/v1/orders", Some(api::order_body(req)), None)
        .and_then(|resp| api::order_outcome(resp.status, &resp.body))?;
    log::log(
        Level::Debug,
        &format!("razorpay order {order} for order {}", req.order_id),
    );
    let payment = &req.payment_method;
    let capture = call(
        "POST",
        &format!("/v1/payments/{payment}/capture"),
        Some(api::capture_body(&req.amount)),
        None,
    )?;
    match api::capture_outcome(capture.status, &capture.body) {
        Capture::Done(result) => result,
        Capture::CheckPayment(refused) => match call("GET", &format!("/v1/payments/{payment}"), None, None) {
            Ok(resp) => api::reconcile(resp.status, &resp.body, &req.amount, refused),
            Err(_) => Err(refused),
        },
    }
}

/// Logs how a call ended: ids and error kinds only, never keys.
fn log_outcome<T>(what: &str, subject: &str, result: &Result<T, PaymentError>, id: impl Fn(&T) -> &str) {
    let (level, message) = match result {
        Ok(ok) => (Level::Info, format!("razorpay {what} {subject}: ok, {}", id(ok))),
        Err(PaymentError::Declined(m)) => (Level::Info, format!("razorpay {what} {subject}: declined: {m}")),
        Err(e) => (Level::Warn, format!("razorpay {what} {subject}: {e:?}")),
    };
    log::log(level, &message);
}

impl Guest for Razorpay {
    fn charge(req: ChargeRequest) -> Result<ChargeReceipt, PaymentError> {
        let result = charge(&req);
        log_outcome("charge", &format!("for order {}", req.order_id), &result, |r| {
            &r.provider_id
        });
        result
    }

    fn refund(req: RefundRequest) -> Result<RefundReceipt, PaymentError> {
        let result = (|| {
            if let Some(amount) = &req.amount {
                api::validate_money(amount)?;
            }
            api::validate_id(&req.provider_id, "provider id")?;
            let key = api::refund_idempotency_key(&req.idempotency_key);
            call(
                "POST",
                &format!("/v1/payments/{}/refund", req.provider_id),
                Some(api::refund_body(&req)),
                Some(("x-refund-idempotency", key)),
            )
            .and_then(|resp| api::refund_outcome(resp.status, &resp.body))
        })();
        log_outcome("refund", &format!("of {}", req.provider_id), &result, |r| {
            &r.provider_id
        });
        result
    }

    fn find_charge(req: ChargeLookup) -> Result<Option<ChargeReceipt>, PaymentError> {
        let result = (|| {
            api::validate_money(&req.amount)?;
            api::validate_id(&req.payment_method, "payment method")?;
            call("GET", &format!("/v1/payments/{}", req.payment_method), None, None)
                .and_then(|resp| api::lookup_outcome(resp.status, &resp.body, &req.amount))
        })();
        let subject = format!("for order {}", req.order_id);
        match &result {
            Ok(None) => log::log(Level::Info, &format!("razorpay find-charge {subject}: none")),
            Ok(Some(r)) => log::log(
                Level::Info,
                &format!("razorpay find-charge {subject}: {}", r.provider_id),
            ),
            Err(e) => log::log(Level::Warn, &format!("razorpay find-charge {subject}: {e:?}")),
        }
        result
    }

    fn parse_webhook(req: WebhookRequest) -> Result<WebhookEvent, PaymentError> {
        let Some(secret) = setting("webhook_secret") else {
            log::log(
                Level::Warn,
                "razorpay webhook refused: config value `webhook_secret` is not set",
            );
            return Err(PaymentError::Invalid(
                "webhook signing secret is not configured".into(),
            ));
        };
        webhook::parse(&secret, &req.headers, &req.body)
    }
}

plinth_sdk::payment::export_payment_plugin!(Razorpay);
