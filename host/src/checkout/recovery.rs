//! After a crash. An order the previous run left `pending` lost its request somewhere
//! between the stock reservation and the commit of its charge — maybe before the charge
//! reached the provider, maybe after the provider took the money. The provider knows
//! which: each pending order's charge is looked up there (`find-charge`, by the charge's
//! idempotency key) before the order is settled:
//!
//! - charged → the order is `paid` (then its label is bought, as a checkout would), so
//!   the money and the order agree and a retry of the request answers with the order;
//! - not charged (or the charge took no money) → `failed`, its stock back, and a retry
//!   charges under the same provider key;
//! - provider unreachable, or the charge still processing → the order stays `pending`
//!   (a retry gets 409 `request_in_progress`) and is looked up again later.
//!
//! An order that was paid but whose label was not bought yet gets its label.
//!
//! The same settling runs while serving: every `[checkout] reconcile_every_secs` a pass
//! takes the unsettled orders older than `reconcile_stale_secs` that no task of this
//! process is driving (an order whose charge got no answer and whose provider could not
//! be asked, an order a panicked checkout left) and settles them, oldest first, within
//! [`PASS_BUDGET`]. So an order nobody drives is settled within about
//! `reconcile_stale_secs + reconcile_every_secs + 2 × PASS_BUDGET` once the provider
//! answers; while it cannot answer, the order stays pending with its stock.

use std::sync::Arc;
use std::time::Duration;

use super::flow::LabelFailure;
use super::guards::Lease;
use super::{Checkout, CheckoutError, ProviderFailure};
use crate::auth::now_ms;
use crate::domain::{OrderId, RequestId};
use crate::runtime::bindings::http::plinth::plugin::types::Money as WitMoney;
use crate::runtime::bindings::payment::exports::plinth::plugin::payment_gateway as pay;
use crate::store::{OrderRecord, OrderStatus, Payment, StoreError};

/// A charge is looked for from this long before its order was created (clock skew
/// between the host and the provider).
const LOOKUP_SLACK_SECS: i64 = 600;

/// How long one reconciling pass may take; orders left over wait for the next pass.
const PASS_BUDGET: Duration = Duration::from_secs(60);
/// Most orders one pass looks at (the oldest that are due).
const MAX_PER_PASS: usize = 1_000;
/// The longest an order that failed to settle waits before it is tried again (the wait
/// starts at `reconcile_every` and doubles with each failure).
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How one interrupted order was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The provider had the charge: the order is paid (or, when its label could not be
    /// bought, refunded and failed like any checkout).
    Charged,
    /// No money was taken: the order failed and its stock went back.
    NotCharged,
    /// Not settled yet: try again later.
    Later,
}

impl Checkout {
    /// At startup, before serving: idempotency claims whose requests died with the last
    /// process may be retried.
    pub(super) async fn release_claims(&self) -> Result<(), StoreError> {
        let released = self.idempotency.release_unfinished().await?;
        if released > 0 {
            tracing::info!(
                released,
                "idempotency keys of interrupted checkouts may be retried"
            );
        }
        self.storage.flush_blocking()
    }

    /// The orders a previous run left unfinished: pending, or paid with a label still to
    /// buy. Only meaningful before serving: once checkouts run, theirs are unfinished too.
    /// With replicas, only the ones no live replica drives.
    pub async fn interrupted_orders(&self) -> Result<Vec<OrderId>, StoreError> {
        let elsewhere = match &self.driving {
            Some(d) => d.driven_elsewhere().await?,
            None => Default::default(),
        };
        self.orders
            .unsettled_where(i64::MAX, usize::MAX, &|id| !elsewhere.contains(id.as_str()))
            .await
    }

    /// Runs a reconciling pass every `reconcile_every`, for as long as the server serves.
    /// Returns once [`Self::stop_reconciling`] was called (after the order it is
    /// settling, never in the middle of one).
    pub async fn reconcile_periodically(self: Arc<Self>) {
        let mut stop = self.stopping.subscribe();
        let mut every = tokio::time::interval(self.config.reconcile_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.reconcile_pass().await;
        }
    }

    /// Asks the reconciler to stop (at shutdown).
    pub fn stop_reconciling(&self) {
        self.stopping.send_replace(true);
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// One pass: settles the unsettled orders older than `reconcile_stale` that no task
    /// of this process drives, oldest first, within [`PASS_BUDGET`]. Returns how many
    /// are left for a later pass.
    pub async fn reconcile_pass(&self) -> usize {
        let stale = i64::try_from(self.config.reconcile_stale.as_millis()).unwrap_or(i64::MAX);
        let now = std::time::Instant::now();
        self.backoff.forget_stale(now);
        // Orders other live replicas drive are theirs; a replica that died stops renewing
        // its leases, and its orders come back here once they lapse.
        let elsewhere = match &self.driving {
            Some(d) => match d.driven_elsewhere().await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler: cannot read the order leases");
                    return 0;
                }
            },
            None => Default::default(),
        };
        let ids = match self
            .orders
            .unsettled_where(now_ms().saturating_sub(stale), MAX_PER_PASS, &|id| {
                let id = id.as_str();
                !self.in_flight.contains(id) && !elsewhere.contains(id) && self.backoff.due(id, now)
            })
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "reconciler: cannot list unsettled orders");
                return 0;
            }
        };
        if ids.is_empty() {
            return 0;
        }
        tracing::info!(
            orders = ids.len(),
            "reconciler: settling orders nobody is driving"
        );
        self.reconcile(ids, PASS_BUDGET).await.len()
    }

    /// Settles interrupted orders, one after the other, until `budget` runs out. Returns
    /// the ones still to settle.
    pub async fn reconcile(&self, ids: Vec<OrderId>, budget: Duration) -> Vec<OrderId> {
        let until = tokio::time::Instant::now() + budget;
        let mut left = Vec::new();
        for id in ids {
            if tokio::time::Instant::now() >= until || self.is_stopping() {
                left.push(id);
                continue;
            }
            match self.reconcile_one(&id).await {
                Ok(Settled::Later) => {
                    self.backoff.failed(id.as_str(), std::time::Instant::now());
                    left.push(id);
                }
                Ok(settled) => {
                    self.backoff.settled(id.as_str());
                    tracing::info!(order_id = %id, ?settled, "interrupted order settled");
                }
                Err(e) => {
                    self.backoff.failed(id.as_str(), std::time::Instant::now());
                    tracing::warn!(order_id = %id, error = %e, "interrupted order not settled yet");
                    left.push(id);
                }
            }
        }
        left
    }

    /// Settles one order a crash interrupted; see the module docs.
    pub async fn reconcile_one(&self, id: &OrderId) -> Result<Settled, CheckoutError> {
        // Driven by this task while it settles: shutdown waits for it, and its claim is
        // not taken over meanwhile.
        let _driving = self.in_flight.enter(id.as_str());
        let Some(_lease) = Lease::take(&self.driving, id.as_str()).await? else {
            // Another replica took it up meanwhile.
            return Ok(Settled::Later);
        };
        let _order = self.order_locks.lock(id.as_str()).await;
        let Some(mut order) = self.orders.get(id).await? else {
            return Ok(Settled::NotCharged);
        };
        let rid = RequestId::generate();
        if order.status == OrderStatus::Paid {
            // Charged and committed; the crash came before the label.
            return match self.fulfil_recovered(&mut order, &rid).await {
                Err(CheckoutError::InProgress) => Ok(Settled::Later),
                done => done.map(|()| Settled::Charged),
            };
        }
        if order.status != OrderStatus::Pending {
            // A provider webhook or an admin settled it meanwhile.
            return Ok(if order.payment.is_some() {
                Settled::Charged
            } else {
                Settled::NotCharged
            });
        }
        let found = self.find_charge(&order, &rid).await?;
        match found {
            Some((provider, receipt)) if receipt.status == pay::ChargeStatus::Succeeded => {
                self.mark_charged(&mut order, provider, receipt.provider_id, &rid)
                    .await?;
                Ok(Settled::Charged)
            }
            Some((_, receipt)) if receipt.status == pay::ChargeStatus::Pending => {
                tracing::info!(order_id = %order.id, provider_id = %receipt.provider_id, "interrupted charge still processing at the provider");
                Ok(Settled::Later)
            }
            _ => {
                order.transition(
                    OrderStatus::Failed,
                    now_ms(),
                    Some(
                        "not settled by its checkout (a restart, or no answer from the payment provider); the payment provider has no charge for it; stock restored"
                            .into(),
                    ),
                );
                self.orders.save(&mut order, true).await?;
                self.storage.flush().await?;
                tracing::warn!(order_id = %order.id, "interrupted order had no charge: failed, stock restored");
                Ok(Settled::NotCharged)
            }
        }
    }

    /// Asks the payment plugin for the charge of this order's current attempt: the
    /// plugin's name and the charge, or `None` when there is none (or no plugin to ask,
    /// or an order recorded before charges could be looked up).
    pub(super) async fn find_charge(
        &self,
        order: &OrderRecord,
        rid: &RequestId,
    ) -> Result<Option<(String, pay::ChargeReceipt)>, CheckoutError> {
        let (Some(plugin), Some(payment_method)) = (self.payment.clone(), order.payment_method.clone())
        else {
            return Ok(None);
        };
        let lookup = pay::ChargeLookup {
            order_id: order.id.to_string(),
            idempotency_key: order.charge_key(),
            amount: WitMoney {
                amount: order.total.amount,
                currency: order.currency.to_string(),
            },
            payment_method,
            not_before: order.created_at / 1000 - LOOKUP_SLACK_SECS,
        };
        let answer = self.runtime.payment_find_charge(&plugin, lookup, rid).await?;
        match answer.value {
            Ok(found) => Ok(found.map(|receipt| (plugin.name().to_string(), receipt))),
            Err(e) => Err(CheckoutError::PaymentFailed(ProviderFailure::hidden(
                plugin.name().as_str(),
                format!("looking up the charge: {}", super::describe_payment_error(&e)),
            ))),
        }
    }

    async fn mark_charged(
        &self,
        order: &mut OrderRecord,
        provider: String,
        provider_id: String,
        rid: &RequestId,
    ) -> Result<(), CheckoutError> {
        tracing::warn!(order_id = %order.id, provider_id = %provider_id, "interrupted order was charged: completing it");
        order.payment = Some(Payment {
            provider,
            provider_id,
            refund_id: None,
        });
        order.transition(
            OrderStatus::Paid,
            now_ms(),
            Some(
                "not settled by its checkout (a restart, or no answer from the payment provider); the charge was found at the payment provider"
                    .into(),
            ),
        );
        self.orders.save(order, false).await?;
        self.storage.flush().await?;
        self.fulfil_recovered(order, rid).await
    }

    /// Buys the label of a recovered paid order. A label that definitely cannot be bought
    /// refunds and fails the order, as in a checkout; one the shipping plugin cannot
    /// tell about yet leaves the order paid (`InProgress`: the reconciler tries again).
    async fn fulfil_recovered(&self, order: &mut OrderRecord, rid: &RequestId) -> Result<(), CheckoutError> {
        match self.fulfil_or(order, rid, LabelFailure::Wait).await {
            // The label failed: the order was refunded and failed, like a checkout whose
            // label fails. Settled either way.
            Err(CheckoutError::ShippingFailed(why)) => {
                tracing::warn!(order_id = %order.id, %why, "label of a recovered order failed: refunded");
                Ok(())
            }
            other => other,
        }
    }
}
