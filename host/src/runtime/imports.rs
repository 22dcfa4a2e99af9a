//! The host side of each capability a plugin can import: `kv`, `config`, `log`,
//! `outbound`. Each acts only on the calling plugin's own resources.

use std::time::Instant;

use super::bindings::http::plinth::plugin::types;
use super::bindings::{config, kv, log, outbound, GuestError, HttpResponse, OutboundRequest};
use super::guest_log::Level;
use super::state::PluginState;
use crate::store::{KvError, PluginKv};

/// Longest single log message kept, in bytes.
const MAX_LOG_MESSAGE: usize = 8 << 10;

impl types::Host for PluginState {}

impl PluginState {
    fn kv(&self) -> Result<PluginKv, GuestError> {
        self.call
            .caps
            .kv
            .clone()
            .ok_or_else(|| GuestError::Denied("this plugin has no kv store".into()))
    }

    /// Marks the call as having written (the host makes it durable before answering),
    /// whatever the outcome: a failed write may still have reached storage.
    fn kv_wrote<T>(&mut self, result: Result<T, KvError>) -> Result<T, GuestError> {
        self.call.kv_dirty = true;
        self.kv_answer(result)
    }

    fn kv_answer<T>(&self, result: Result<T, KvError>) -> Result<T, GuestError> {
        result.map_err(|e| self.kv_error(e))
    }

    fn kv_error(&self, e: KvError) -> GuestError {
        match e {
            KvError::BadKey | KvError::NotACounter(_) | KvError::Overflow => {
                GuestError::Invalid(e.to_string())
            }
            KvError::ValueTooLarge { .. } | KvError::QuotaExceeded { .. } => {
                GuestError::LimitExceeded(e.to_string())
            }
            KvError::Contention => GuestError::Unavailable(e.to_string()),
            KvError::Storage(detail) => {
                tracing::error!(plugin = %self.call.caps.name, request_id = %self.call.request_id, error = %detail, "kv storage error");
                GuestError::Unavailable("storage error".into())
            }
        }
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, GuestError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let result = kv.get(&key).await;
        Ok(self.kv_answer(result))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), GuestError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let result = kv.set(&key, &value).await;
        Ok(self.kv_wrote(result))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, GuestError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let result = kv.delete(&key).await;
        Ok(self.kv_wrote(result))
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, GuestError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let result = kv.list_keys(&prefix, start_after.as_deref(), limit).await;
        Ok(self.kv_answer(result))
    }

    async fn increment(&mut self, key: String, delta: i64) -> wasmtime::Result<Result<i64, GuestError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let result = kv.increment(&key, delta).await;
        Ok(self.kv_wrote(result))
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> wasmtime::Result<Result<bool, GuestError>> {
        let kv = match self.kv() {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let result = kv
            .compare_and_swap(&key, expected.as_deref(), new.as_deref())
            .await;
        Ok(self.kv_wrote(result))
    }
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.call.caps.values.get(&key).cloned())
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        let mut end = message.len().min(MAX_LOG_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        self.call.log.emit(level, "log", &message[..end]);
        Ok(())
    }
}

impl outbound::Host for PluginState {
    async fn send(&mut self, req: OutboundRequest) -> wasmtime::Result<Result<HttpResponse, GuestError>> {
        let caps = self.call.caps.clone();
        let Some(client) = caps.outbound.as_ref() else {
            return Ok(Err(GuestError::Denied(
                "this plugin may not make outbound calls".into(),
            )));
        };
        if self.call.outbound_calls >= caps.limits.max_outbound_calls {
            return Ok(Err(GuestError::LimitExceeded(format!(
                "at most {} outbound calls per invocation",
                caps.limits.max_outbound_calls
            ))));
        }
        self.call.outbound_calls += 1;
        let started = Instant::now();
        let url_for_log = req.url.clone();
        // No lane while the network is waited on: a busy guest's turn goes to others.
        let lane = self.call.lane.clone();
        let result = lane
            .off_cpu(client.send(req, self.call.deadline, caps.limits.max_outbound_response_bytes))
            .await;
        match &result {
            Ok(resp) => {
                tracing::debug!(plugin = %caps.name, request_id = %self.call.request_id, url = %url_for_log, status = resp.status, elapsed_ms = started.elapsed().as_millis() as u64, "outbound call")
            }
            Err(e) => {
                tracing::info!(plugin = %caps.name, request_id = %self.call.request_id, url = %url_for_log, error = ?e, "outbound call refused or failed")
            }
        }
        Ok(result)
    }
}
