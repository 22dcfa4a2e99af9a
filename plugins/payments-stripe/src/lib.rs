//! `payments-stripe`: the `payment-plugin` world on Stripe's REST API
//! (<https://docs.stripe.com/api>).
//!
//! - `charge`: `POST /v1/payment_intents` with `confirm=true` (create and confirm in one
//!   call), the request's idempotency key as `Idempotency-Key`.
//! - `refund`: `POST /v1/refunds` for the PaymentIntent, whole or partial.
//! - `find-charge`: walks `GET /v1/payment_intents` for the one whose
//!   `metadata[charge_key]` is the lookup's idempotency key (see `lookup`).
//! - `parse-webhook`: checks `Stripe-Signature` (HMAC-SHA256, 5 minutes' tolerance), then
//!   maps `payment_intent.succeeded`, `payment_intent.payment_failed` and `charge.refunded`
//!   (with the charge's running `amount_refunded`, so partial refunds stay partial).
//!
//! Config:
//! - `base_url` (default `https://api.stripe.com`; its host must be on `allowed_hosts`);
//! - `secret_key` (required; sent as HTTP Basic auth, never logged);
//! - `webhook_secret` (the endpoint's `whsec_…`; webhooks are refused without it);
//! - `send_description` (default `true`): send `description` and `receipt_email`. Set it to
//!   `false` for the localstripe emulator, which rejects both parameters;
//! - `created_filter` (default `true`): narrow `find-charge`'s list with `created[gte]`.
//!   Set it to `false` for localstripe, which rejects that parameter.

mod api;
mod form;
mod lookup;
mod webhook;

use base64::Engine as _;
use plinth_sdk::payment::log::{self, Level};
use plinth_sdk::payment::{
    config, outbound, ChargeLookup, ChargeReceipt, ChargeRequest, Guest, HttpResponse, OutboundRequest,
    PaymentError, RefundReceipt, RefundRequest, WebhookEvent, WebhookRequest,
};

use crate::form::Form;

struct Stripe;

const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// A config value, `None` when unset or blank.
fn setting(key: &str) -> Option<String> {
    config::get(key).filter(|v| !v.trim().is_empty())
}

/// `{method} {base_url}{path}`, authenticated with the secret key.
fn call(
    method: &str,
    path: &str,
    mut headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<HttpResponse, PaymentError> {
    let secret = setting("secret_key")
        .ok_or_else(|| PaymentError::Internal("config value `secret_key` is not set".into()))?;
    let base = setting("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.into());
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{secret}:"));
    headers.push(("authorization".to_string(), format!("Basic {credentials}")));
    headers.push(("accept".to_string(), "application/json".to_string()));
    outbound::send(&OutboundRequest {
        method: method.into(),
        url: format!("{}{path}", base.trim_end_matches('/')),
        headers,
        body,
        timeout_ms: None,
    })
    .map_err(api::from_outbound)
}

/// `POST {base_url}{path}` with a form body and the idempotency key.
fn post_form(path: &str, form: Form, idempotency_key: &str) -> Result<HttpResponse, PaymentError> {
    let mut headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    if !idempotency_key.is_empty() {
        headers.push(("idempotency-key".to_string(), idempotency_key.to_string()));
    }
    call("POST", path, headers, form.into_body())
}

/// Logs how a call ended: ids and error kinds only, never keys or card data.
fn log_outcome<T>(what: &str, subject: &str, result: &Result<T, PaymentError>, id: impl Fn(&T) -> &str) {
    let (level, message) = match result {
        Ok(ok) => (Level::Info, format!("stripe {what} {subject}: ok, {}", id(ok))),
        Err(PaymentError::Declined(m)) => (Level::Info, format!("stripe {what} {subject}: declined: {m}")),
        Err(e) => (Level::Warn, format!("stripe {what} {subject}: {e:?}")),
    };
    log::log(level, &message);
}

impl Guest for Stripe {
    fn charge(req: ChargeRequest) -> Result<ChargeReceipt, PaymentError> {
        api::validate_money(&req.amount)?;
        if req.payment_method.trim().is_empty() {
            return Err(PaymentError::Invalid("payment method is required".into()));
        }
        let descriptive = setting("send_description").is_none_or(|v| v.trim() != "false");
        let result = post_form(
            "/v1/payment_intents",
            api::charge_form(&req, descriptive),
            &req.idempotency_key,
        )
        .and_then(|resp| api::charge_outcome(resp.status, &resp.body));
        log_outcome("charge", &format!("for order {}", req.order_id), &result, |r| {
            &r.provider_id
        });
        result
    }

    fn refund(req: RefundRequest) -> Result<RefundReceipt, PaymentError> {
        if let Some(amount) = &req.amount {
            api::validate_money(amount)?;
        }
        if req.provider_id.trim().is_empty() {
            return Err(PaymentError::Invalid("provider id is required".into()));
        }
        let result = post_form("/v1/refunds", api::refund_form(&req), &req.idempotency_key)
            .and_then(|resp| api::refund_outcome(resp.status, &resp.body));
        log_outcome("refund", &format!("of {}", req.provider_id), &result, |r| {
            &r.provider_id
        });
        result
    }

    fn find_charge(req: ChargeLookup) -> Result<Option<ChargeReceipt>, PaymentError> {
        if req.idempotency_key.trim().is_empty() {
            return Err(PaymentError::Invalid("idempotency key is required".into()));
        }
        let created_filter = setting("created_filter").is_none_or(|v| v.trim() != "false");
        let mut after: Option<String> = None;
        let mut result = Err(PaymentError::Unavailable(format!(
            "no answer within {} pages of PaymentIntents",
            lookup::MAX_PAGES
        )));
        for _ in 0..lookup::MAX_PAGES {
            let path = lookup::page_path(&req, created_filter, after.as_deref());
            let page = call("GET", &path, Vec::new(), Vec::new())
                .and_then(|resp| lookup::page_outcome(&req, resp.status, &resp.body));
            match page {
                Ok(lookup::PageOutcome::Next(id)) => after = Some(id),
                Ok(lookup::PageOutcome::Found(found)) => {
                    result = Ok(found);
                    break;
                }
                Ok(lookup::PageOutcome::Absent) => {
                    result = Ok(None);
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let subject = format!("for order {}", req.order_id);
        match &result {
            Ok(None) => log::log(Level::Info, &format!("stripe find-charge {subject}: none")),
            Ok(Some(r)) => log::log(
                Level::Info,
                &format!("stripe find-charge {subject}: {} ({:?})", r.provider_id, r.status),
            ),
            Err(e) => log::log(Level::Warn, &format!("stripe find-charge {subject}: {e:?}")),
        }
        result
    }

    fn parse_webhook(req: WebhookRequest) -> Result<WebhookEvent, PaymentError> {
        let Some(secret) = setting("webhook_secret") else {
            log::log(
                Level::Warn,
                "stripe webhook refused: config value `webhook_secret` is not set",
            );
            return Err(PaymentError::Invalid(
                "webhook signing secret is not configured".into(),
            ));
        };
        webhook::parse(&secret, &req.headers, &req.body, req.received_at)
    }
}

plinth_sdk::payment::export_payment_plugin!(Stripe);
