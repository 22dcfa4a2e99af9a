//! Building and running the server: storage, runtime, router, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::oidc::OAuth;
use crate::auth::Auth;
use crate::catalog::{Catalog, CatalogError};
use crate::checkout::Checkout;
use crate::config::{Config, ConnectionLimits};
use crate::contacts::Contacts;
use crate::http::{router, AppInner, AppState};
use crate::runtime::{LoadError, Runtime};
use crate::store::{Storage, StoreError};
use crate::telemetry::Metrics;
use crate::weather::WeatherService;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error(transparent)]
    Plugin(#[from] LoadError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server that is bound and ready; `run_until_stopped` serves it.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
    limits: ConnectionLimits,
}

/// How long startup waits for payment providers to settle interrupted orders.
const RECONCILE_AT_STARTUP: std::time::Duration = std::time::Duration::from_secs(15);
/// How long shutdown waits for running checkouts (their clients may be gone) to end.
const CHECKOUTS_AT_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(30);

impl Application {
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let storage = {
            let data_dir = config.server.data_dir.clone();
            tokio::task::spawn_blocking(move || crate::data_dir::prepare(&data_dir))
                .await
                .map_err(|e| StoreError::Flush(format!("open task failed: {e}")))?
                .map_err(StoreError::from)?;
            Storage::open(&config.server.data_dir.join("db"), &config.storage).await?
        };
        let auth = Auth::new(&storage, &config.auth)?;
        let oauth = OAuth::new(
            &config.auth,
            storage.pending_logins(config.auth.oauth_max_pending),
        );
        let contacts = Contacts::new(&storage)?;
        let catalog = Catalog::open(&storage, &config.server.data_dir.join("search")).await?;
        let metrics = Arc::new(Metrics::new());
        let runtime = Arc::new(Runtime::start(config, &storage, &metrics).await?);
        let weather = WeatherService::new(runtime.clone(), &config.weather);
        let catalog = Arc::new(catalog);
        let checkout = {
            let (runtime, catalog, storage, cfg) = (
                runtime.clone(),
                catalog.clone(),
                storage.clone(),
                config.checkout.clone(),
            );
            Checkout::new(runtime, catalog, &storage, &cfg).await?
        };
        let checkout = Arc::new(checkout);
        // Orders a crash left pending are settled with the payment provider before the
        // first request; what cannot be settled now is left to the periodic reconciler.
        // On a shared database the orders other live replicas drive (their leases) are
        // theirs, and skipped.
        let ids = checkout.interrupted_orders().await?;
        if !ids.is_empty() {
            tracing::warn!(
                orders = ids.len(),
                "orders interrupted by the last shutdown: looking up their charges"
            );
            checkout.reconcile(ids, RECONCILE_AT_STARTUP).await;
        }
        let listener =
            TcpListener::bind(config.server.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.server.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.server.listen,
            source,
        })?;
        let state = AppState::new(AppInner {
            auth,
            oauth,
            catalog,
            checkout,
            contacts,
            runtime,
            weather,
            storage,
            metrics,
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: config.server.connections.request_timeout,
        });
        // Shutdown waits for the longest request any route may take.
        let limits = ConnectionLimits {
            longest_request: crate::http::longest_request(
                &state.runtime,
                config.server.connections.request_timeout,
            ),
            ..config.server.connections
        };
        Ok(Self {
            listener,
            state,
            addr,
            limits,
        })
    }

    /// The address actually bound (port 0 in the config picks a free one).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then drains connections, flushes storage and
    /// releases it: when this returns, the data directory can be opened again.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let sweeper = tokio::spawn(sweep_expired(state.clone()));
        // Orders nobody drives (left by a restart, or by a charge whose provider could
        // not be asked) are settled with the provider while serving.
        let reconciler = tokio::spawn(state.checkout.clone().reconcile_periodically());
        // With replicas, the search index follows the other replicas' catalog writes.
        let follower = state
            .storage
            .is_shared()
            .then(|| tokio::spawn(state.catalog.clone().follow()));
        crate::server::serve(self.listener, router(self.state), self.limits, shutdown).await;
        sweeper.abort();
        let _ = sweeper.await;
        if let Some(follower) = follower {
            follower.abort();
            let _ = follower.await;
        }
        // The reconciler finishes the order it is settling (a charge being looked up
        // or recorded), then stops; past the limit it is cut off, which recovery at the
        // next start also handles.
        state.checkout.stop_reconciling();
        let mut reconciler = reconciler;
        if tokio::time::timeout(CHECKOUTS_AT_SHUTDOWN, &mut reconciler)
            .await
            .is_err()
        {
            tracing::warn!("the reconciler did not stop in time; the next start settles what it was on");
            reconciler.abort();
        }
        // Checkouts run in tasks of their own, which may outlive their connections.
        if !state.checkout.wait_idle(CHECKOUTS_AT_SHUTDOWN).await {
            tracing::warn!("checkouts still running at shutdown are left to the next start's recovery");
        }
        // Connection tasks finish dropping their copies of the state just after `serve`
        // returns; wait for them so the database (and its lock) is really closed.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while state.is_shared() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let storage = state.storage.clone();
        drop(state);
        tokio::task::spawn_blocking(move || storage.flush_blocking())
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        Ok(())
    }
}

/// Every ten minutes removes expired sessions (they are refused on use anyway; this
/// keeps the table small) and idempotency keys past their TTL.
async fn sweep_expired(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    every.tick().await;
    loop {
        every.tick().await;
        let s = state.clone();
        match s.auth.sweep_expired().await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
            _ => {}
        }
        match s.checkout.sweep_idempotency().await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "expired idempotency keys removed"),
            Err(e) => tracing::warn!(error = %e, "idempotency sweep failed"),
            _ => {}
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
