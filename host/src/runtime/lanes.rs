//! Busy lanes: how CPU-bound guests share the worker threads with everything else.
//!
//! A guest that is still running at an epoch tick is *regulated*: from then on it runs
//! wasm only while it holds one of the runtime's lanes. At every tick it gives its lane
//! up, yields (tokio puts it at the back of the run queue) and queues for a lane again;
//! while it waits on the network (`outbound`) or in `wasi:io/poll` (a sleep: see
//! `wasi_poll.rs`) it holds none. Lanes are handed out round
//! robin between plugins ([`FairSemaphore`]). A guest still running at its second tick
//! (it has used at least a whole tick of CPU) is *busy*, and while a plugin has busy
//! guests its new invocations start only once they hold a lane, so a flooded CPU-bound
//! plugin cannot put a fresh burst of unregulated guests on the threads every time its
//! old ones finish. (A call that merely straddles one tick is regulated but does not
//! make its plugin's other calls wait.)
//!
//! The bound. There are L lanes for w worker threads, L < w by default (`busy_lanes`).
//! Without lanes, k spinning guests each ran a whole tick t before yielding, so a task
//! that became ready waited up to ceil(k/w)·t (64 spinners, 2 threads, 5 ms: 160 ms).
//! With lanes, at most L threads run busy guests at any moment, each until the next
//! tick: the other w − L threads serve everything else, and a task queued behind a
//! regulated guest waits at most one tick t — whatever k is. Not regulated: a guest's
//! first stretch, until its first tick (at most t), while its plugin has no busy guest;
//! n such guests starting at once can delay others by about ceil(n/w)·t once, and a
//! plugin whose calls stay under two ticks each (never busy) gets at most one such
//! stretch per call, while the rest of each call waits for the lanes. A call that
//! itself turns regulated waits its turn: at most one tick per plugin queued ahead.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fair::{FairPermit, FairSemaphore};

/// The tick at which a regulated guest also counts as busy for its plugin (which makes
/// the plugin's new calls start on a lane).
const BUSY_AT_TICK: u32 = 2;

/// One invocation's standing on the busy lanes, shared by its epoch callback, its host
/// calls and the invocation itself.
pub struct Lane {
    lanes: FairSemaphore,
    key: usize,
    /// How many of this plugin's invocations are busy right now.
    plugin_busy: Arc<AtomicUsize>,
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    held: Option<FairPermit>,
    /// Runs wasm only while it holds a lane.
    regulated: bool,
    /// Busy itself (counted in the plugin's busy guests), not only started while others
    /// were: otherwise one busy call would keep every later call of a steadily used
    /// plugin regulated for ever.
    busy: bool,
    ticks: u32,
}

impl Lane {
    /// A new invocation of the plugin with fair-queue `key` and busy counter
    /// `plugin_busy`. It is regulated from the start (must [`Lane::wait_turn`] before
    /// running) when the plugin has busy guests already.
    pub fn new(lanes: FairSemaphore, key: usize, plugin_busy: Arc<AtomicUsize>) -> Arc<Self> {
        let regulated = plugin_busy.load(Ordering::Relaxed) > 0;
        Arc::new(Self {
            lanes,
            key,
            plugin_busy,
            state: Mutex::new(LaneState {
                regulated,
                ..LaneState::default()
            }),
        })
    }

    /// Waits for a lane if the invocation is regulated; returns at once otherwise.
    pub async fn wait_turn(&self) {
        if !self.lock().regulated {
            return;
        }
        let lane = self.lanes.acquire(self.key).await;
        self.lock().held = lane;
    }

    /// At an epoch tick: counts the tick, gives up the lane, yields the thread, and
    /// continues once it is this invocation's turn again.
    pub async fn at_tick(self: Arc<Self>) {
        let given_up = {
            let mut state = self.lock();
            state.ticks += 1;
            state.regulated = true;
            if state.ticks >= BUSY_AT_TICK {
                self.mark_busy(&mut state);
            }
            state.held.take()
        };
        drop(given_up);
        tokio::task::yield_now().await;
        self.wait_turn().await;
    }

    /// Runs `fut` (a host call that waits, e.g. on the network) without holding a lane,
    /// then waits for the guest's turn before it runs wasm again.
    pub async fn off_cpu<F: Future>(&self, fut: F) -> F::Output {
        let given_up = self.lock().held.take();
        drop(given_up);
        let out = fut.await;
        self.wait_turn().await;
        out
    }

    fn mark_busy(&self, state: &mut LaneState) {
        if !state.busy {
            state.busy = true;
            self.plugin_busy.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.lock().busy {
            self.plugin_busy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy_of(lane: &Lane) -> usize {
        lane.plugin_busy.load(Ordering::Relaxed)
    }

    /// (the plugin's busy guests, free lanes)
    fn counts(busy: &AtomicUsize, lanes: &FairSemaphore) -> (usize, usize) {
        (busy.load(Ordering::Relaxed), lanes.available())
    }

    #[tokio::test]
    async fn a_guest_needs_a_lane_after_its_first_tick_and_is_busy_after_its_second() {
        let lanes = FairSemaphore::new(1);
        let busy = Arc::new(AtomicUsize::new(0));
        let lane = Lane::new(lanes.clone(), 0, busy.clone());
        lane.clone().at_tick().await;
        assert_eq!(counts(&busy, &lanes), (0, 0), "on a lane, not busy");
        // Its plugin's new calls are not held up by a call that straddled one tick.
        let other = Lane::new(lanes.clone(), 0, busy.clone());
        assert!(futures::poll!(Box::pin(other.wait_turn())).is_ready());
        drop(other);
        lane.clone().at_tick().await;
        assert_eq!(counts(&busy, &lanes), (1, 0), "busy, holds the lane");

        // A new invocation of the same plugin starts regulated and waits for the lane.
        let next = Lane::new(lanes.clone(), 0, busy.clone());
        let mut waiting = Box::pin({
            let next = next.clone();
            async move {
                next.wait_turn().await;
                next
            }
        });
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        // The first gives its lane up while it waits on the network; the second gets it
        // and finishes, and the first has it back before it runs again.
        lane.off_cpu(async move {
            let std::task::Poll::Ready(second) = futures::poll!(waiting.as_mut()) else {
                panic!("the lane was not passed on");
            };
            assert_eq!(busy_of(&second), 1, "regulated, not busy itself");
            drop((second, next));
        })
        .await;
        assert_eq!(counts(&busy, &lanes), (1, 0));
        drop(lane);
        assert_eq!(counts(&busy, &lanes), (0, 1));
    }
}
