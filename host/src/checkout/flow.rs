//! The checkout flow and what follows an order: refunds, tracking, webhooks.

use std::collections::BTreeMap;

use super::pricing::{apply_rules, checked_sum, price_lines, Priced, RuleInput};
use super::{Checkout, CheckoutError, CheckoutRequest, ProviderFailure};
use crate::auth::{now_ms, Principal};
use crate::domain::{Address, Money, OrderId, RequestId};
use crate::runtime::bindings::http::plinth::plugin::types::Money as WitMoney;
use crate::runtime::bindings::payment::exports::plinth::plugin::payment_gateway as pay;
use crate::runtime::bindings::rules::exports::plinth::plugin::checkout_rules as rule;
use crate::runtime::bindings::shipping::exports::plinth::plugin::shipping_provider as ship;
use crate::runtime::bindings::GuestError;
use crate::runtime::{InvokeError, InvokeErrorKind};
use crate::store::{OrderAdjustment, OrderRecord, OrderStatus, Payment, Shipment};

/// A payment plugin's error value as people read it: `unavailable: connection refused`.
pub fn describe_payment_error(e: &pay::PaymentError) -> String {
    let (kind, message) = match e {
        pay::PaymentError::Declined(m) => ("declined", m),
        pay::PaymentError::Invalid(m) => ("invalid", m),
        pay::PaymentError::Unavailable(m) => ("unavailable", m),
        pay::PaymentError::Upstream(m) => ("upstream", m),
        pay::PaymentError::Internal(m) => ("internal", m),
    };
    format!("{kind}: {message}")
}

/// A payment plugin's error as the customer may see it: the provider's refusal of the
/// request (`invalid`: e.g. an unknown payment method) is theirs to read; anything else
/// (an upstream outage, a refused secret key) is for the log.
fn payment_failure(plugin: &str, e: &pay::PaymentError) -> ProviderFailure {
    match e {
        pay::PaymentError::Invalid(m) => {
            ProviderFailure::shown(plugin, format!("the payment provider refused the request: {m}"))
        }
        other => ProviderFailure::hidden(plugin, describe_payment_error(other)),
    }
}

/// A shipping plugin's failure: what it says about the address or the parcel
/// (`invalid`, `not-found`) is for the customer, the rest for the log.
fn shipping_failure(e: &InvokeError) -> ProviderFailure {
    let plugin = e.plugin.as_str();
    match &e.kind {
        InvokeErrorKind::Guest(GuestError::Invalid(m) | GuestError::NotFound(m)) => {
            ProviderFailure::shown(plugin, m.clone())
        }
        _ => ProviderFailure::hidden(plugin, e.to_string()),
    }
}

/// What a failed label purchase does to its paid order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelFailure {
    /// Refund it and fail the order: a checkout's customer is waiting for the answer.
    Refund,
    /// Recovery: only a definite failure refunds. A plugin that cannot tell yet (its
    /// purchase may still be under way at the carrier, e.g. its own claim from before a
    /// crash, which durable kv keeps) leaves the order paid with its label due, and the
    /// call fails as `InProgress` for the reconciler to retry.
    Wait,
}

/// Whether a failed label call may still have bought a label (or may succeed later).
fn label_may_be_under_way(e: &InvokeError) -> bool {
    matches!(
        &e.kind,
        InvokeErrorKind::Timeout(_)
            | InvokeErrorKind::Busy
            | InvokeErrorKind::Guest(GuestError::Unavailable(_) | GuestError::Timeout(_))
    )
}

enum Earlier {
    None,
    Finished(Box<OrderRecord>),
    Retry { attempt: u32 },
}

/// A priced cart with shipping options: what `POST /checkout/quote` returns.
pub struct Quote {
    pub priced: Priced,
    /// Before shipping.
    pub total: Money,
    pub rates: Vec<ship::Rate>,
}

fn ship_address(a: &Address) -> ship::Address {
    let f = a.to_form();
    ship::Address {
        name: f.name,
        line1: f.line1,
        line2: f.line2,
        city: f.city,
        region: f.region,
        postal_code: f.postal_code,
        country: f.country,
        phone: f.phone,
        email: f.email,
    }
}

/// Why a charge call ended without telling whether money moved (the plugin timed out
/// or failed, or the provider was unreachable or answered with a server error); `None`
/// when the outcome is known.
fn unanswered(
    outcome: &Result<Result<pay::ChargeReceipt, pay::PaymentError>, InvokeError>,
) -> Option<String> {
    match outcome {
        Err(e) => Some(e.to_string()),
        Ok(Err(e @ (pay::PaymentError::Unavailable(_) | pay::PaymentError::Upstream(_)))) => {
            Some(describe_payment_error(e))
        }
        Ok(_) => None,
    }
}

impl Checkout {
    async fn price(
        &self,
        p: &Principal,
        req: &CheckoutRequest,
        address: &Address,
        rid: &RequestId,
    ) -> Result<Priced, CheckoutError> {
        let (lines, currency) = price_lines(&self.catalog, &req.lines).await?;
        let mut categories = Vec::with_capacity(lines.len());
        for l in &lines {
            categories.push(
                self.catalog
                    .get(&l.sku)
                    .await
                    .map(|(p, _)| p.category)
                    .unwrap_or_default(),
            );
        }
        let mut purchased: BTreeMap<String, u32> = BTreeMap::new();
        if !self.rules.is_empty() {
            let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
            for (sku, units) in self.orders.purchased(&p.user.id, &skus).await? {
                if units > 0 {
                    purchased.insert(sku, u32::try_from(units).unwrap_or(u32::MAX));
                }
            }
        }
        let customer = rule::Customer {
            user_id: p.user.id.to_string(),
            username: p.user.username.clone(),
            roles: p.user.roles.iter().map(|r| r.as_str().to_string()).collect(),
            purchased: purchased.into_iter().collect(),
        };
        let input = RuleInput {
            lines: &lines,
            categories,
            currency,
            discount_code: req.discount_code.clone().filter(|c| !c.trim().is_empty()),
            destination: address,
            now_secs: now_ms() / 1000,
            customer,
        };
        let adjustments = apply_rules(&self.runtime, &self.rules, input, rid).await?;
        let subtotal = checked_sum(currency, lines.iter().map(|l| l.total))?;
        Ok(Priced {
            lines,
            adjustments,
            currency,
            subtotal,
        })
    }

    async fn rates(
        &self,
        address: &Address,
        priced: &Priced,
        rid: &RequestId,
    ) -> Result<Vec<ship::Rate>, CheckoutError> {
        let (Some(plugin), Some(origin)) = (&self.shipping, &self.config.origin) else {
            return Ok(Vec::new());
        };
        let units: u32 = priced.lines.iter().map(|l| l.quantity).sum();
        let parcel = ship::Parcel {
            weight_grams: units.saturating_mul(self.config.grams_per_item),
            length_mm: 300,
            width_mm: 200,
            height_mm: 150,
        };
        let rates = self
            .runtime
            .shipping_rates(
                plugin,
                ship_address(origin),
                ship_address(address),
                vec![parcel],
                rid,
            )
            .await
            .map_err(|e| match e.kind {
                InvokeErrorKind::Guest(_) => CheckoutError::ShippingFailed(shipping_failure(&e)),
                _ => CheckoutError::Plugin(e),
            })?
            .value;
        Ok(rates
            .into_iter()
            .filter(|r| r.amount.currency == priced.currency.as_str())
            .collect())
    }

    /// Prices the cart and lists shipping rates; changes nothing.
    pub async fn quote(
        &self,
        p: &Principal,
        req: CheckoutRequest,
        rid: &RequestId,
    ) -> Result<Quote, CheckoutError> {
        let address = Address::parse(req.shipping_address.clone())?;
        let priced = self.price(p, &req, &address, rid).await?;
        let total = priced.total()?;
        let rates = self.rates(&address, &priced, rid).await?;
        Ok(Quote { priced, total, rates })
    }

    /// Places the order `order_id` (see [`OrderId::for_key`]). Only through
    /// [`Checkout::place_once`], which marks the order as driven and owns its key.
    pub(super) async fn place(
        &self,
        p: &Principal,
        req: CheckoutRequest,
        order_id: &OrderId,
        rid: &RequestId,
    ) -> Result<OrderRecord, CheckoutError> {
        let payment_plugin = self.payment.clone().ok_or(CheckoutError::Disabled)?;
        let attempt = match self.earlier_attempt(order_id).await? {
            Earlier::None => 0,
            Earlier::Finished(order) => return Ok(*order),
            Earlier::Retry { attempt } => attempt,
        };
        let payment_method = req
            .payment_method
            .clone()
            .filter(|m| !m.trim().is_empty() && m.len() <= 255)
            .ok_or(CheckoutError::Invalid {
                field: "payment_method",
                message: "required (the payment provider's reference)".into(),
            })?;
        let address = Address::parse(req.shipping_address.clone())?;
        // One customer's checkouts price and reserve one at a time: rules such as
        // per-customer limits count the units of the customer's other orders, and the
        // reservation below is what the next one counts.
        let customer = self.customers.lock(p.user.id.as_str()).await;
        let mut priced = self.price(p, &req, &address, rid).await?;
        let rates = self.rates(&address, &priced, rid).await?;
        let rate =
            match (&req.shipping_rate_id, self.shipping.is_some()) {
                (_, false) => None,
                (Some(id), true) => Some(
                    rates
                        .iter()
                        .find(|r| &r.rate_id == id)
                        .cloned()
                        .ok_or_else(|| CheckoutError::UnknownRate(id.clone()))?,
                ),
                (None, true) => Some(rates.iter().min_by_key(|r| r.amount.amount).cloned().ok_or_else(
                    || {
                        let plugin = self
                            .shipping
                            .as_ref()
                            .map(|s| s.name().as_str())
                            .unwrap_or_default();
                        CheckoutError::ShippingFailed(ProviderFailure::shown(
                            plugin,
                            "no shipping rate for this address",
                        ))
                    },
                )?),
            };
        if let Some(r) = &rate {
            priced.adjustments.push(OrderAdjustment {
                kind: "shipping".into(),
                label: format!("{} {}", r.carrier, r.service),
                amount: priced.money(r.amount.amount),
                source: self
                    .shipping
                    .as_ref()
                    .map(|s| s.name().to_string())
                    .unwrap_or_default(),
                line: None,
            });
        }
        let total = priced.total()?;
        if total.amount < 0 {
            return Err(CheckoutError::RuleMisbehaved(
                "the adjustments make the total negative".into(),
            ));
        }
        let now = now_ms();
        let shipment = rate.as_ref().map(|r| Shipment {
            rate_id: r.rate_id.clone(),
            carrier: r.carrier.clone(),
            service: r.service.clone(),
            amount: priced.money(r.amount.amount),
            shipment_id: None,
            tracking_number: None,
            label_url: None,
        });
        let refunded = priced.money(0);
        let mut order = OrderRecord {
            id: order_id.clone(),
            user_id: p.user.id.clone(),
            status: OrderStatus::Pending,
            currency: priced.currency,
            subtotal: priced.subtotal,
            total,
            lines: priced.lines,
            adjustments: priced.adjustments,
            shipping_address: address,
            shipment,
            payment: None,
            history: Vec::new(),
            created_at: now,
            stock_released: false,
            attempt,
            payment_method: Some(payment_method.clone()),
            refunded,
            version: 0,
        };
        order.transition(OrderStatus::Pending, now, None);
        self.orders.reserve(&order).await?;
        drop(customer);
        // The reservation is on disk before any money moves.
        self.storage.flush().await?;

        let charged = self
            .runtime
            .payment_charge(
                &payment_plugin,
                pay::ChargeRequest {
                    order_id: order.id.to_string(),
                    amount: WitMoney {
                        amount: total.amount,
                        currency: order.currency.to_string(),
                    },
                    payment_method,
                    idempotency_key: order.charge_key(),
                    customer_email: order.shipping_address.email().map(|e| e.as_str().to_string()),
                    description: Some(format!("Order {}", order.id)),
                },
                rid,
            )
            .await;
        let outcome = charged.map(|c| c.value);
        if let Some(why) = unanswered(&outcome) {
            // No answer: the provider may have taken the money anyway.
            return Err(self.settle_unanswered_charge(&mut order, why, rid).await);
        }
        let receipt = match outcome {
            Ok(Ok(r)) if r.status == pay::ChargeStatus::Succeeded => r,
            outcome => {
                self.orders.discard(&order).await?;
                self.storage.flush().await?;
                return Err(match outcome {
                    Ok(Ok(_)) => CheckoutError::RequiresAction,
                    Ok(Err(pay::PaymentError::Declined(m))) => CheckoutError::Declined(m),
                    Ok(Err(other)) => {
                        CheckoutError::PaymentFailed(payment_failure(payment_plugin.name().as_str(), &other))
                    }
                    Err(e) => CheckoutError::Plugin(e),
                });
            }
        };
        order.payment = Some(Payment {
            provider: payment_plugin.name().to_string(),
            provider_id: receipt.provider_id,
            refund_id: None,
        });
        order.transition(OrderStatus::Paid, now_ms(), None);
        self.orders.save(&mut order, false).await?;
        self.storage.flush().await?;

        self.fulfil(&mut order, rid).await?;
        Ok(order)
    }

    /// Buys the shipping label of a paid order (when shipping is configured) and moves it
    /// to `fulfilled`; a label that cannot be bought refunds the order and fails it.
    pub(super) async fn fulfil(&self, order: &mut OrderRecord, rid: &RequestId) -> Result<(), CheckoutError> {
        self.fulfil_or(order, rid, LabelFailure::Refund).await
    }

    /// [`Self::fulfil`], with what a failed label does to the order.
    pub(super) async fn fulfil_or(
        &self,
        order: &mut OrderRecord,
        rid: &RequestId,
        on_failure: LabelFailure,
    ) -> Result<(), CheckoutError> {
        let Some(plugin) = self.shipping.clone() else {
            return Ok(());
        };
        let Some(rate_id) = order.shipment.as_ref().map(|s| s.rate_id.clone()) else {
            return Ok(());
        };
        let bought = self
            .runtime
            .shipping_buy_label(&plugin, rate_id, format!("plinth-{}", order.id), rid)
            .await;
        match bought {
            Ok(done) => {
                let label = done.value;
                if let Some(s) = order.shipment.as_mut() {
                    s.shipment_id = Some(label.shipment_id);
                    s.tracking_number = Some(label.tracking_number);
                    s.label_url = Some(label.label_url);
                    s.carrier = label.carrier;
                }
                order.transition(OrderStatus::Fulfilled, now_ms(), None);
                self.orders.save(order, false).await?;
                self.storage.flush().await?;
                Ok(())
            }
            Err(e) if on_failure == LabelFailure::Wait && label_may_be_under_way(&e) => {
                tracing::info!(order_id = %order.id, error = %e, "label not bought yet; the order stays paid for a later try");
                Err(CheckoutError::InProgress)
            }
            Err(e) => {
                let failure = shipping_failure(&e);
                self.refund_and_close(order, OrderStatus::Failed, "shipping label failed", rid)
                    .await?;
                Err(CheckoutError::ShippingFailed(failure))
            }
        }
    }

    /// After a charge call that got no answer: asks the provider whether the charge was
    /// made. If it was, it is refunded and the order fails (visible, with its refund);
    /// if the provider says it was not, the order is dropped and its stock goes back (a
    /// retry charges under the same provider key). If the provider cannot say, the order
    /// stays pending with its stock: the reconciler settles it once the provider
    /// answers, and retries get 409 until then. Returns the error for the client.
    async fn settle_unanswered_charge(
        &self,
        order: &mut OrderRecord,
        why: String,
        rid: &RequestId,
    ) -> CheckoutError {
        let plugin = self
            .payment
            .as_ref()
            .map(|p| p.name().as_str())
            .unwrap_or_default();
        let failure = |public: &str| {
            CheckoutError::PaymentFailed(ProviderFailure {
                plugin: plugin.to_string(),
                detail: format!("no answer from the payment provider: {why}"),
                public: Some(public.to_string()),
            })
        };
        match self.find_charge(order, rid).await {
            Ok(Some((provider, receipt))) if receipt.status == pay::ChargeStatus::Succeeded => {
                tracing::warn!(order_id = %order.id, provider_id = %receipt.provider_id,
                    "an unanswered charge went through: refunding it");
                order.payment = Some(Payment {
                    provider,
                    provider_id: receipt.provider_id,
                    refund_id: None,
                });
                let note = "the payment provider did not answer in time, but charged";
                if let Err(e) = self.refund_and_close(order, OrderStatus::Failed, note, rid).await {
                    if order.payment.as_ref().is_some_and(|p| p.refund_id.is_some()) {
                        // The money went back; only recording it failed (or its flush):
                        // the stored order is the truth, a save from here would undo it.
                        tracing::error!(order_id = %order.id, error = %e, "an unanswered charge was refunded but the order could not be recorded");
                        return e;
                    }
                    // Keep the order (paid, with its charge) for an operator rather than
                    // lose track of the money.
                    tracing::error!(order_id = %order.id, error = %e, "refund of an unanswered charge failed");
                    order.transition(
                        OrderStatus::Paid,
                        now_ms(),
                        Some(format!("{note}; refund failed: {e}")),
                    );
                    if let Err(e) = self.orders.save(order, false).await {
                        return e.into();
                    }
                    return failure(
                        "the payment provider did not answer in time; the order is kept for review",
                    );
                }
                failure("the payment provider did not answer in time; the charge was refunded")
            }
            Ok(Some((_, receipt))) if receipt.status == pay::ChargeStatus::Pending => {
                tracing::warn!(order_id = %order.id, provider_id = %receipt.provider_id,
                    "an unanswered charge is still processing at the provider: the reconciler settles it");
                failure("the payment is still processing; the order will be settled with the provider")
            }
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e,
                    "could not ask the provider about an unanswered charge: the reconciler settles it");
                failure("no answer from the payment provider; the order will be settled with the provider")
            }
            Ok(_) => {
                if let Err(e) = self.orders.discard(order).await {
                    return e.into();
                }
                if let Err(e) = self.storage.flush().await {
                    return e.into();
                }
                failure("no answer from the payment provider; nothing was charged")
            }
        }
    }

    /// What an earlier request with this order's idempotency key left behind. Only one
    /// request per key runs at a time (the claim), so this cannot race with itself.
    async fn earlier_attempt(&self, order_id: &OrderId) -> Result<Earlier, CheckoutError> {
        let Some(prev) = self.orders.get(order_id).await? else {
            return Ok(Earlier::None);
        };
        match prev.status {
            // The order went through; only its response was lost (a crash between the
            // commit and the stored response). Answer with it: never a second sale.
            OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Refunded => {
                Ok(Earlier::Finished(Box::new(prev)))
            }
            // It failed and gave its stock back: try again. If it was charged (and then
            // refunded) the new attempt needs a new provider key; if it was interrupted
            // before its charge was recorded, the same key makes the provider replay that
            // charge instead of taking the money twice.
            OrderStatus::Failed => {
                let attempt = prev.attempt + u32::from(prev.payment.is_some());
                self.orders.discard(&prev).await?;
                Ok(Earlier::Retry { attempt })
            }
            OrderStatus::Pending => Err(CheckoutError::InProgress),
        }
    }

    /// Refunds the charge, gives the stock back and moves the order to `status`.
    pub(super) async fn refund_and_close(
        &self,
        order: &mut OrderRecord,
        status: OrderStatus,
        note: &str,
        rid: &RequestId,
    ) -> Result<(), CheckoutError> {
        let plugin = self.payment.clone().ok_or(CheckoutError::Disabled)?;
        if let Some(payment) = order.payment.clone() {
            let name = plugin.name().as_str();
            let refunded = self
                .runtime
                .payment_refund(
                    &plugin,
                    pay::RefundRequest {
                        provider_id: payment.provider_id.clone(),
                        amount: None,
                        idempotency_key: order.refund_key(),
                    },
                    rid,
                )
                .await?
                .value
                .map_err(|e| {
                    CheckoutError::PaymentFailed(ProviderFailure::hidden(
                        name,
                        format!("refund failed: {}", describe_payment_error(&e)),
                    ))
                })?;
            if let Some(p) = order.payment.as_mut() {
                p.refund_id = Some(refunded.provider_id);
            }
            order.refunded = order.total;
        }
        order.transition(
            status,
            now_ms(),
            Some(format!("{note}; payment refunded, stock restored")),
        );
        self.orders.save(order, true).await?;
        self.storage.flush().await?;
        Ok(())
    }

    /// Refunds a paid order (admin). Once started it runs to its end in a task of its
    /// own, like a checkout: cut off between the provider's refund and the save (the
    /// client went, or the request deadline passed while it waited for the order's
    /// lock), the money would be back and the order still sold.
    pub async fn refund(
        self: &std::sync::Arc<Self>,
        order_id: &OrderId,
        rid: &RequestId,
    ) -> Result<OrderRecord, CheckoutError> {
        use tracing::Instrument;
        let (this, id, rid) = (self.clone(), order_id.clone(), rid.clone());
        let run = async move { this.refund_now(&id, &rid).await };
        match tokio::spawn(run.instrument(tracing::Span::current())).await {
            Ok(refunded) => refunded,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only when the runtime shuts down.
            Err(_) => Err(CheckoutError::InProgress),
        }
    }

    async fn refund_now(&self, order_id: &OrderId, rid: &RequestId) -> Result<OrderRecord, CheckoutError> {
        let _order = self.order_locks.lock(order_id.as_str()).await;
        let mut order = self
            .orders
            .get(order_id)
            .await?
            .ok_or(CheckoutError::OrderNotFound)?;
        if !order.status.is_sold() {
            return Err(CheckoutError::NotRefundable(order.status.as_str().to_string()));
        }
        self.refund_and_close(&mut order, OrderStatus::Refunded, "refunded by an admin", rid)
            .await?;
        Ok(order)
    }

    /// Tracking through the shipping plugin.
    pub async fn track(&self, order: &OrderRecord, rid: &RequestId) -> Result<ship::Tracking, CheckoutError> {
        let plugin = self.shipping.clone().ok_or(CheckoutError::NotShipped)?;
        let shipment = order.shipment.as_ref().ok_or(CheckoutError::NotShipped)?;
        let number = shipment
            .tracking_number
            .clone()
            .ok_or(CheckoutError::NotShipped)?;
        Ok(self
            .runtime
            .shipping_track(&plugin, shipment.carrier.clone(), number, rid)
            .await?
            .value)
    }

    /// Applies a verified event from the payment plugin `plugin` to its order,
    /// idempotently: only orders paid through that plugin are touched. Returns whether
    /// anything changed.
    pub async fn apply_event(&self, plugin: &str, event: &pay::WebhookEvent) -> Result<bool, CheckoutError> {
        let (provider_id, from, to) = match event {
            pay::WebhookEvent::PaymentSucceeded(id) => (id, OrderStatus::Pending, OrderStatus::Paid),
            pay::WebhookEvent::PaymentFailed(id) => (id, OrderStatus::Pending, OrderStatus::Failed),
            pay::WebhookEvent::Refunded(refund) => return self.apply_refund(plugin, refund).await,
            pay::WebhookEvent::Ignored(_) => return Ok(false),
        };
        let Some((_order, mut order)) = self.locked_by_payment(plugin, provider_id).await? else {
            if matches!(event, pay::WebhookEvent::PaymentSucceeded(_)) {
                // Money arrived for no recorded order: a charge whose order was cut off
                // by a crash before it was recorded, and never retried. An operator must
                // refund or match it.
                tracing::warn!(plugin, provider_id = %provider_id, "payment succeeded for no known order; reconcile by hand");
            }
            return Ok(false);
        };
        if order.status != from {
            return Ok(false);
        }
        order.transition(to, now_ms(), Some("payment provider event".into()));
        self.orders.save(&mut order, to == OrderStatus::Failed).await?;
        self.storage.flush().await?;
        Ok(true)
    }

    /// The order paid through `plugin` as `provider_id`, read under its lock (the
    /// lookup finds its id; the order is read again once the lock is held, so the copy
    /// is the latest), with the lock.
    async fn locked_by_payment(
        &self,
        plugin: &str,
        provider_id: &str,
    ) -> Result<Option<(tokio::sync::OwnedMutexGuard<()>, OrderRecord)>, CheckoutError> {
        let Some(found) = self.orders.by_payment(plugin, provider_id).await? else {
            return Ok(None);
        };
        let lock = self.order_locks.lock(found.id.as_str()).await;
        Ok(self
            .orders
            .by_payment(plugin, provider_id)
            .await?
            .map(|order| (lock, order)))
    }

    /// A refund the provider reports. The event carries everything refunded so far, so
    /// a replayed or reordered event changes nothing; a partial refund is recorded on
    /// the order (amount and history) and only a full one refunds it and returns stock.
    async fn apply_refund(&self, plugin: &str, refund: &pay::RefundEvent) -> Result<bool, CheckoutError> {
        let Some((_order, mut order)) = self.locked_by_payment(plugin, &refund.provider_id).await? else {
            return Ok(false);
        };
        let so_far = order.money(refund.refunded_total.amount);
        if !order.status.is_sold() || so_far.amount <= order.refunded.amount {
            return Ok(false);
        }
        if !refund
            .refunded_total
            .currency
            .eq_ignore_ascii_case(order.currency.as_str())
        {
            tracing::warn!(plugin, order_id = %order.id, currency = %refund.refunded_total.currency,
                "refund event in another currency than the order's; ignored");
            return Ok(false);
        }
        order.refunded = so_far;
        let full = so_far.amount >= order.total.amount;
        if full {
            order.transition(
                OrderStatus::Refunded,
                now_ms(),
                Some(format!(
                    "refunded at the payment provider ({so_far}); stock restored"
                )),
            );
        } else {
            let note = format!(
                "partially refunded at the payment provider: {so_far} of {}",
                order.total
            );
            order.transition(order.status, now_ms(), Some(note));
        }
        self.orders.save(&mut order, full).await?;
        self.storage.flush().await?;
        Ok(true)
    }
}
