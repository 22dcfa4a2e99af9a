//! What machine a benchmark ran on, so numbers can be compared honestly.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process (what `nproc` prints).
    pub nproc: usize,
    /// UTC start time, RFC 3339.
    pub date: String,
    pub os: String,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
    /// `/proc/loadavg` at the start: other load on a shared machine skews results.
    pub loadavg: Option<String>,
    pub git_commit: Option<String>,
}

impl Machine {
    pub fn detect(root: &Path) -> Self {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        });
        let read_trimmed = |path: &str| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
        let git_commit = Command::new("git")
            .current_dir(root)
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty());
        Self {
            nproc,
            date: format_utc(now),
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            cpu_model,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            loadavg: read_trimmed("/proc/loadavg"),
            git_commit,
        }
    }

    /// Lines for the report header.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "date:    {}\nnproc:   {}\nos:      {}",
            self.date, self.nproc, self.os
        );
        let optional = [
            ("kernel:  ", &self.kernel),
            ("cpu:     ", &self.cpu_model),
            ("loadavg: ", &self.loadavg),
            ("commit:  ", &self.git_commit),
        ];
        for (label, value) in optional {
            if let Some(value) = value {
                out.push('\n');
                out.push_str(label);
                out.push_str(value);
            }
        }
        out
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_764_339_661), "2025-11-28T14:21:01Z");
        assert_eq!(format_utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn describes_the_machine() {
        let machine = Machine::detect(Path::new("."));
        assert!(machine.nproc >= 1);
        assert!(machine.describe().contains("nproc:"));
    }
}
