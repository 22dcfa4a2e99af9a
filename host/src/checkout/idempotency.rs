//! `POST /checkout` under an `Idempotency-Key`: one run per key, and a run nobody can cut
//! short. After the key is claimed, the checkout (price, reserve, charge, label), the
//! answer stored for retries (or the claim released) and the flush run in a task of their
//! own: the request only waits for it. A client that disconnects — on purpose, to strand
//! a reservation, or by accident — drops its wait, never the checkout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::guards::{Lease, Refusal};
use super::{order_id_for, Checkout, CheckoutError, CheckoutRequest};
use crate::auth::{now_ms, Principal};
use crate::domain::RequestId;
use crate::store::{Claim, OrderRecord, OrderStore, StoredResponse};

/// A claim with no answer after this long, whose order no task of this process drives,
/// belongs to a request that died (e.g. its task panicked).
const ABANDONED_AFTER_MS: i64 = 60_000;
/// How long a retry waits for the first request to finish before answering 409.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);

/// How the caller turns a checkout's outcome into its answer, and the form that is
/// stored for retries. It runs in the checkout's own task.
pub trait Answer: Send + Sized + 'static {
    fn render(
        outcome: Result<OrderRecord, CheckoutError>,
        rid: &RequestId,
    ) -> impl Future<Output = (Self, StoredResponse)> + Send;
}

/// What a request with an idempotency key gets.
pub enum Placed<A> {
    /// This request ran the checkout: its answer.
    Ran(A),
    /// An earlier request with this key and body finished: its answer, replayed.
    Replay(StoredResponse),
    /// The key was used with another request body.
    Mismatch,
    /// Another request with this key is still running after [`WAIT_FOR_FIRST`].
    Busy,
}

/// Outcomes worth replaying: final for this request body. "An earlier attempt is still
/// in progress" is not: a later retry gets the order once that attempt is settled; nor
/// are server-side failures, which a retry may get past.
fn is_final(status: u16, in_progress: bool) -> bool {
    !in_progress && ((200..300).contains(&status) || matches!(status, 400 | 402 | 409 | 422))
}

/// Releases the claim if the task ends without an answer (a panic), so a retry need not
/// wait for the claim to be abandoned.
struct ClaimGuard {
    orders: Arc<dyn OrderStore>,
    scope: String,
    armed: bool,
}

impl ClaimGuard {
    /// Stores the answer (when final) or releases the claim.
    async fn finish(mut self, answer: Option<StoredResponse>) -> Result<(), crate::store::StoreError> {
        self.armed = false;
        match answer {
            Some(stored) => self.orders.complete(&self.scope, stored).await,
            None => self.orders.release_claim(&self.scope).await,
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Dropped while unwinding: the release is a store call, so it runs as a task of
        // its own.
        let (orders, scope) = (self.orders.clone(), std::mem::take(&mut self.scope));
        tokio::spawn(async move {
            if let Err(e) = orders.release_claim(&scope).await {
                tracing::error!(error = %e, "releasing the idempotency claim of a failed checkout");
            }
        });
    }
}

impl Checkout {
    /// Places the order of `key` exactly once (see the module docs); `request_hash`
    /// identifies the request body.
    pub async fn place_once<A: Answer>(
        self: &Arc<Self>,
        p: Principal,
        req: CheckoutRequest,
        key: &str,
        request_hash: &str,
        rid: RequestId,
    ) -> Result<Placed<A>, CheckoutError> {
        let scope = format!("{}/{}", p.user.id, key);
        let order_id = order_id_for(&p.user.id, key);
        let started = tokio::time::Instant::now();
        let lease = loop {
            // With replicas the order's lease comes first: whoever holds it (another
            // replica's checkout or reconciler) is running this order, and a claim
            // nobody holds the lease for is abandoned (its replica died), so it is
            // taken over at once. Without replicas the lease is a formality and only
            // this process's own tasks count as running it.
            let Some(lease) = Lease::take(&self.driving, &order_id).await? else {
                if started.elapsed() < WAIT_FOR_FIRST {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                return Ok(Placed::Busy);
            };
            let abandoned_after = if self.in_flight.contains(&order_id) {
                i64::MAX
            } else if self.driving.is_some() {
                0
            } else {
                ABANDONED_AFTER_MS
            };
            match self
                .orders
                .claim(&scope, request_hash, &order_id, now_ms(), abandoned_after)
                .await?
            {
                Claim::Fresh => break lease,
                Claim::Done(stored) => return Ok(Placed::Replay(stored)),
                Claim::Mismatch => return Ok(Placed::Mismatch),
                Claim::InFlight if started.elapsed() < WAIT_FOR_FIRST => {
                    drop(lease);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Claim::InFlight => return Ok(Placed::Busy),
            }
        };
        // A fresh key runs only if admitted (replays and waits for a running key do
        // not need a place); refused, the claim is given back, nothing stays behind and
        // the request may simply be retried.
        let ticket = match self.admission.admit(&p.user.id) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                self.orders.release_claim(&scope).await?;
                return Err(match refusal {
                    Refusal::Customer => {
                        CheckoutError::TooManyOfYours(self.config.max_in_flight_per_customer)
                    }
                    Refusal::Everyone => CheckoutError::Busy,
                });
            }
        };
        // The key is ours: from here on nothing may depend on the client staying.
        let checkout = self.clone();
        let run = async move {
            let _ticket = ticket;
            let _lease = lease;
            let claim = ClaimGuard {
                orders: checkout.orders.clone(),
                scope,
                armed: true,
            };
            let _driving = checkout.in_flight.enter(&order_id);
            // A webhook or an admin refund of this order waits until the checkout is done
            // with it (they would otherwise save over each other's copies).
            let _order = checkout.order_locks.lock(&order_id).await;
            let outcome = checkout.place(&p, req, &order_id, &rid).await;
            let in_progress = matches!(outcome, Err(CheckoutError::InProgress));
            let (answer, stored) = A::render(outcome, &rid).await;
            claim
                .finish(is_final(stored.status, in_progress).then_some(stored))
                .await?;
            checkout.storage.flush().await?;
            Ok::<A, CheckoutError>(answer)
        };
        match tokio::spawn(run.instrument(tracing::Span::current())).await {
            Ok(answer) => answer.map(Placed::Ran),
            // The checkout panicked (its claim is released; a pending order it left is
            // settled by the reconciler): the request fails as a panicking handler does.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only when the runtime shuts down.
            Err(_) => Err(CheckoutError::InProgress),
        }
    }

    /// Waits up to `limit` for the checkouts this process is running to finish (at
    /// shutdown: a checkout cut off by the exit would be left to the next start).
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while !self.in_flight.is_empty() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::is_final;

    #[test]
    fn only_final_outcomes_are_replayed() {
        for status in [201, 400, 402, 409, 422] {
            assert!(is_final(status, false), "{status}");
        }
        for status in [500, 502, 503, 504] {
            assert!(!is_final(status, false), "{status}");
        }
        assert!(!is_final(409, true), "an earlier attempt still running");
    }
}
