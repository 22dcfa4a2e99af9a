//! `POST /checkout` under an `Idempotency-Key`: one run per key, and a run nobody can cut
//! short. After the key is claimed, the checkout (price, reserve, charge, label), the
//! answer stored for retries (or the claim released) and the flush run in a task of their
//! own: the request only waits for it. A client that disconnects — on purpose, to strand
//! a reservation, or by accident — drops its wait, never the checkout.
//!
//! [`Checkout::place_once`] is a pipeline, each step a small function with an enum for
//! what happens next: [`Checkout::claim`] (wait for the key, or learn its answer or
//! misuse) → [`Checkout::admit`] (a place among the running checkouts) →
//! [`Checkout::run_detached`] (the task: place, [`keep`] or release the answer, flush).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::guards::{Lease, Refusal, Ticket};
use super::{Checkout, CheckoutError, CheckoutRequest};
use crate::auth::{now_ms, Principal};
use crate::domain::{IdempotencyKey, OrderId, RequestId, UserId};
use crate::store::{Claim, ClaimKey, IdempotencyStore, NextAction, OrderRecord, StoreError, StoredResponse};

/// A claim with no answer after this long, whose order no task of this process drives,
/// belongs to a request that died (e.g. its task panicked).
const ABANDONED_AFTER_MS: i64 = 60_000;
/// How long a retry waits for the first request to finish before answering 409.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);
/// Between two looks at a key someone else holds.
const WAIT_STEP: Duration = Duration::from_millis(50);

/// How the caller turns a checkout's outcome into its answer, and the form that is
/// stored for retries. It runs in the checkout's own task.
pub trait Answer: Send + Sized + 'static {
    fn render(
        outcome: Result<OrderRecord, CheckoutError>,
        rid: &RequestId,
    ) -> impl Future<Output = (Self, StoredResponse)> + Send;
}

/// What a request with an idempotency key gets (a misused or busy key is an error:
/// [`CheckoutError::KeyReused`], [`CheckoutError::KeyInUse`]).
pub enum Placed<A> {
    /// This request ran the checkout: its answer.
    Ran(A),
    /// An earlier request with this key and body finished: its answer, replayed.
    Replay(StoredResponse),
}

/// How a claim ended.
enum Claimed {
    /// The key is this request's, and so is the order's lease.
    Ours(Lease),
    /// An earlier request with this key and body was answered.
    Answered(StoredResponse),
}

/// One look at the key.
enum Look {
    Claimed(Lease),
    Answered(StoredResponse),
    Mismatch,
    /// Someone else holds the key or its order: look again shortly.
    Wait,
}

/// What becomes of the claim once the checkout has its answer.
#[derive(Debug, PartialEq, Eq)]
enum Keep {
    /// Final for this request body: stored, and replayed to retries.
    Answer(StoredResponse),
    /// Not final: the claim is released and a retry runs again.
    Release,
}

/// Outcomes worth replaying are final for this request body. "An earlier attempt is
/// still in progress" is not: a later retry gets the order once that attempt is settled;
/// nor are server-side failures, which a retry may get past.
fn keep(stored: StoredResponse, in_progress: bool) -> Keep {
    let status = stored.status;
    if !in_progress && ((200..300).contains(&status) || matches!(status, 400 | 402 | 409 | 422)) {
        Keep::Answer(stored)
    } else {
        Keep::Release
    }
}

/// Everything the checkout's own task owns.
struct Run {
    p: Principal,
    req: CheckoutRequest,
    claim: Claim,
    lease: Lease,
    ticket: Ticket,
    rid: RequestId,
}

/// Releases the claim if the task ends without an answer (a panic), so a retry need not
/// wait for the claim to be abandoned.
struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    key: Option<ClaimKey>,
}

impl ClaimGuard {
    fn new(store: &Arc<dyn IdempotencyStore>, key: &ClaimKey) -> Self {
        Self {
            store: store.clone(),
            key: Some(key.clone()),
        }
    }

    /// Stores the answer or releases the claim.
    async fn finish(mut self, keep: Keep) -> Result<(), StoreError> {
        let Some(key) = self.key.take() else {
            return Ok(());
        };
        match keep {
            Keep::Answer(stored) => self.store.save_response(&key, &stored).await,
            Keep::Release => self.store.release(&key).await,
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        // Dropped while unwinding: the release is a store call, so it runs as a task of
        // its own.
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.release(&key).await {
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
        key: &IdempotencyKey,
        request_hash: String,
        rid: RequestId,
    ) -> Result<Placed<A>, CheckoutError> {
        let claim = Claim::new(&p.user.id, key, request_hash);
        let lease = match self.claim(&claim).await? {
            Claimed::Ours(lease) => lease,
            Claimed::Answered(stored) => return Ok(Placed::Replay(stored)),
        };
        let ticket = self.admit(&p.user.id, &claim.key).await?;
        let run = Run {
            p,
            req,
            claim,
            lease,
            ticket,
            rid,
        };
        self.run_detached(run).await.map(Placed::Ran)
    }

    /// Waits (up to [`WAIT_FOR_FIRST`]) until the key is this request's or answered.
    async fn claim(&self, claim: &Claim) -> Result<Claimed, CheckoutError> {
        let started = tokio::time::Instant::now();
        loop {
            match self.look(claim).await? {
                Look::Claimed(lease) => return Ok(Claimed::Ours(lease)),
                Look::Answered(stored) => return Ok(Claimed::Answered(stored)),
                Look::Mismatch => return Err(CheckoutError::KeyReused),
                Look::Wait if started.elapsed() < WAIT_FOR_FIRST => tokio::time::sleep(WAIT_STEP).await,
                Look::Wait => return Err(CheckoutError::KeyInUse),
            }
        }
    }

    /// One try at the key. With replicas the order's lease comes first: whoever holds it
    /// (another replica's checkout or reconciler) is running this order. Without
    /// replicas the lease is a formality.
    async fn look(&self, claim: &Claim) -> Result<Look, CheckoutError> {
        let Some(lease) = Lease::take(&self.driving, claim.order_id.as_str()).await? else {
            return Ok(Look::Wait);
        };
        let next = self
            .idempotency
            .try_claim(claim, now_ms(), self.abandoned_after(&claim.order_id))
            .await?;
        Ok(match next {
            NextAction::Proceed => Look::Claimed(lease),
            NextAction::Replay(stored) => Look::Answered(stored),
            NextAction::Mismatch => Look::Mismatch,
            // The lease goes back while we wait.
            NextAction::Wait => Look::Wait,
        })
    }

    /// When an unanswered claim of `order_id` counts as abandoned. Never while a task of
    /// this process drives the order. With replicas, at once: the lease was just taken,
    /// so no live replica runs it (its replica died). Otherwise after
    /// [`ABANDONED_AFTER_MS`] (a task that panicked).
    fn abandoned_after(&self, order_id: &OrderId) -> i64 {
        if self.in_flight.contains(order_id.as_str()) {
            i64::MAX
        } else if self.driving.is_some() {
            0
        } else {
            ABANDONED_AFTER_MS
        }
    }

    /// A place among the running checkouts. A fresh key runs only if admitted (replays
    /// and waits for a running key do not need one); refused, the claim is given back,
    /// nothing stays behind and the request may simply be retried.
    async fn admit(&self, user: &UserId, key: &ClaimKey) -> Result<Ticket, CheckoutError> {
        let refusal = match self.admission.admit(user.as_str()) {
            Ok(ticket) => return Ok(ticket),
            Err(refusal) => refusal,
        };
        self.idempotency.release(key).await?;
        Err(match refusal {
            Refusal::Customer => CheckoutError::TooManyOfYours(self.config.max_in_flight_per_customer),
            Refusal::Everyone => CheckoutError::Busy,
        })
    }

    /// Runs the claimed checkout in a task of its own and waits for its answer. The key
    /// is ours: from here on nothing may depend on the client staying.
    async fn run_detached<A: Answer>(self: &Arc<Self>, run: Run) -> Result<A, CheckoutError> {
        let checkout = self.clone();
        let task = async move { checkout.run(run).await };
        match tokio::spawn(task.instrument(tracing::Span::current())).await {
            Ok(answer) => answer,
            // The checkout panicked (its claim is released; a pending order it left is
            // settled by the reconciler): the request fails as a panicking handler does.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only when the runtime shuts down.
            Err(_) => Err(CheckoutError::InProgress),
        }
    }

    /// The task: places the order, keeps or releases the answer, flushes.
    async fn run<A: Answer>(&self, run: Run) -> Result<A, CheckoutError> {
        let Run {
            p,
            req,
            claim,
            lease: _lease,
            ticket: _ticket,
            rid,
        } = run;
        let guard = ClaimGuard::new(&self.idempotency, &claim.key);
        let order_id = claim.order_id.as_str();
        let _driving = self.in_flight.enter(order_id);
        // A webhook or an admin refund of this order waits until the checkout is done
        // with it (they would otherwise save over each other's copies).
        let _order = self.order_locks.lock(order_id).await;
        let outcome = self.place(&p, req, &claim.order_id, &rid).await;
        let in_progress = matches!(outcome, Err(CheckoutError::InProgress));
        let (answer, stored) = A::render(outcome, &rid).await;
        guard.finish(keep(stored, in_progress)).await?;
        self.storage.flush().await?;
        Ok(answer)
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
    use super::*;

    fn answer(status: u16) -> StoredResponse {
        StoredResponse {
            status,
            body: "{}".into(),
        }
    }

    #[test]
    fn only_final_outcomes_are_replayed() {
        for status in [201, 400, 402, 409, 422] {
            assert_eq!(
                keep(answer(status), false),
                Keep::Answer(answer(status)),
                "{status}"
            );
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(keep(answer(status), false), Keep::Release, "{status}");
        }
        assert_eq!(
            keep(answer(409), true),
            Keep::Release,
            "an earlier attempt still running"
        );
    }
}
