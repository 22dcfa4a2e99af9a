//! One flush for many waiters: a writer that needs durability sends a ticket; the
//! committer drains every waiting ticket, runs one `flush` on the blocking pool, and
//! answers them all. A ticket sent while a flush runs waits for the next one, whose
//! flush starts after the ticket's writes, so it covers them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

type Ticket = oneshot::Sender<Result<(), String>>;

pub struct GroupCommit {
    /// Weak, so that the committer task never keeps the database (and its file lock)
    /// alive after the last `Storage` is dropped.
    db: Weak<sled::Db>,
    tickets: OnceLock<mpsc::UnboundedSender<Ticket>>,
    flushes: Arc<AtomicU64>,
}

impl GroupCommit {
    pub fn new(db: &Arc<sled::Db>) -> Self {
        Self {
            db: Arc::downgrade(db),
            tickets: OnceLock::new(),
            flushes: Default::default(),
        }
    }

    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Must be called from within a tokio runtime (the committer task starts lazily).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let sender = self.tickets.get_or_init(|| self.start());
        let (tx, rx) = oneshot::channel();
        sender
            .send(tx)
            .map_err(|_| StoreError::Flush("the committer has stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Flush(e)),
            Err(_) => Err(StoreError::Flush("the committer has stopped".into())),
        }
    }

    fn start(&self) -> mpsc::UnboundedSender<Ticket> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Ticket>();
        let db = self.db.clone();
        let flushes = self.flushes.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let result = match db.upgrade() {
                    Some(db) => match tokio::task::spawn_blocking(move || db.flush()).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(format!("flush task failed: {e}")),
                    },
                    None => Err("the database is closed".to_string()),
                };
                flushes.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = &result {
                    tracing::error!(error = %e, waiters = batch.len(), "database flush failed");
                }
                for ticket in batch.drain(..) {
                    let _ = ticket.send(result.clone());
                }
            }
        });
        tx
    }
}
