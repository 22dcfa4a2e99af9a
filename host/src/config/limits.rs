//! Per-plugin limits, with safe defaults for everything a plugin can consume.

use std::time::Duration;

use serde::Deserialize;

/// Limits as written in the file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    fuel: Option<u64>,
    max_concurrent: Option<u32>,
    max_outbound_calls: Option<u32>,
    max_outbound_response_kib: Option<u64>,
    kv_max_value_kib: Option<u64>,
    kv_quota_mib: Option<u64>,
    log_kib_per_call: Option<u64>,
    log_lines_per_call: Option<u64>,
}

/// Validated limits of one plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline of one invocation, instantiation included.
    pub timeout: Duration,
    /// Cap on one invocation's linear memories, all of them together.
    pub memory_bytes: u64,
    /// Instruction budget per invocation (wasmtime fuel), if set.
    pub fuel: Option<u64>,
    /// Instances of this plugin alive at once; more wait, then get 503 `plugin_busy`.
    /// `None`: the plugin's share of the pool (`[runtime] plugin_share_percent`).
    pub max_concurrent: Option<u32>,
    /// Outbound HTTP calls per invocation.
    pub max_outbound_calls: u32,
    /// Largest outbound response body accepted.
    pub max_outbound_response_bytes: u64,
    /// Largest single kv value.
    pub kv_max_value_bytes: u64,
    /// Total bytes (keys + values) the plugin may keep in its kv store.
    pub kv_quota_bytes: u64,
    /// Guest log, stdout and stderr bytes kept per invocation (each line also costs
    /// `guest_log::LINE_OVERHEAD_BYTES`); the rest is dropped.
    pub log_bytes_per_call: u64,
    /// Guest log, stdout and stderr lines kept per invocation; the rest is dropped.
    pub log_lines_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        RawLimits::default().resolve().expect("default limits are valid")
    }
}

type FieldError = (&'static str, String);

fn pick(field: &'static str, v: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, FieldError> {
    let v = v.unwrap_or(default);
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err((field, format!("must be between {min} and {max}")))
    }
}

impl RawLimits {
    /// Applies defaults and bounds; the error names the field.
    pub fn resolve(&self) -> Result<Limits, FieldError> {
        Ok(Limits {
            timeout: Duration::from_millis(pick("timeout_ms", self.timeout_ms, 5_000, 1, 600_000)?),
            memory_bytes: pick("memory_mib", self.memory_mib, 32, 1, 4096)? << 20,
            fuel: match self.fuel {
                Some(f) => Some(pick("fuel", Some(f), 0, 1_000, u64::MAX / 2)?),
                None => None,
            },
            max_concurrent: match self.max_concurrent {
                Some(n) => Some(pick("max_concurrent", Some(n.into()), 0, 1, 10_000)? as u32),
                None => None,
            },
            max_outbound_calls: pick(
                "max_outbound_calls",
                self.max_outbound_calls.map(u64::from),
                16,
                0,
                1_000,
            )? as u32,
            max_outbound_response_bytes: pick(
                "max_outbound_response_kib",
                self.max_outbound_response_kib,
                1024,
                1,
                64 * 1024,
            )? << 10,
            kv_max_value_bytes: pick("kv_max_value_kib", self.kv_max_value_kib, 64, 1, 16 * 1024)? << 10,
            kv_quota_bytes: pick("kv_quota_mib", self.kv_quota_mib, 64, 1, 64 * 1024)? << 20,
            log_bytes_per_call: pick("log_kib_per_call", self.log_kib_per_call, 64, 0, 16 * 1024)? << 10,
            log_lines_per_call: pick("log_lines_per_call", self.log_lines_per_call, 1_000, 0, 100_000)?
                as u32,
        })
    }
}
