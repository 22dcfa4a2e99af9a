//! CPU time spent by processes, from `/proc` (Linux): the server under test by pid, and
//! PostgreSQL as every process named `postgres` (its backends, one per connection, and
//! its background workers). Dividing by the requests served gives CPU per request, the
//! figure that projects capacity where a 2-CPU machine cannot show scaling.

use std::process::Command;

/// CPU time in clock ticks, user + system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks(pub u64);

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux in practice).
pub fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU used so far by process `pid`; `None` where `/proc` cannot tell (not Linux, gone).
pub fn of_pid(pid: u32) -> Option<Ticks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, ticks)| ticks)
}

/// CPU used so far by every live process whose name is `name` (e.g. `postgres`).
/// Processes that exited since the last reading take their ticks with them, so a
/// difference of two readings undercounts short-lived ones; PostgreSQL's backends live
/// as long as the pool's connections.
pub fn of_name(name: &str) -> Option<Ticks> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut total = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if !file_name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((comm, ticks)) = parse_stat(&stat) {
            if comm == name {
                total += ticks.0;
            }
        }
    }
    Some(Ticks(total))
}

/// The command name and utime + stime of a `/proc/PID/stat` line. The name sits in
/// parentheses and may itself contain spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(&str, Ticks)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After ") ": state is field 3; utime and stime are fields 14 and 15.
    let mut fields = stat.get(close + 2..)?.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((comm, Ticks(utime + stime)))
}

/// CPU microseconds per request between two readings; `None` without a reading or a
/// request.
pub fn us_per_request(before: Option<Ticks>, after: Option<Ticks>, requests: u64, hz: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    if requests == 0 || hz == 0 {
        return None;
    }
    let ticks = after.0.saturating_sub(before.0);
    Some(ticks as f64 * 1e6 / hz as f64 / requests as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_even_with_odd_names() {
        let line = "4242 (post gres) S 1 4242 4242 0 -1 4194560 1234 0 0 0 700 35 0 0 20 0 1 0 99 \
                    1000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(("post gres", Ticks(735))));
        let line = "7 (a) b)) R 1 7 7 0 -1 0 0 0 0 0 12 3 0 0 20 0 1 0 99 1 1";
        assert_eq!(parse_stat(line), Some(("a) b)", Ticks(15))));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_reading_and_per_request_figures_divide() {
        assert!(of_pid(std::process::id()).is_some());
        assert_eq!(
            us_per_request(Some(Ticks(100)), Some(Ticks(300)), 1_000, 100),
            Some(2_000.0)
        );
        assert_eq!(us_per_request(Some(Ticks(1)), Some(Ticks(2)), 0, 100), None);
        assert_eq!(us_per_request(None, Some(Ticks(2)), 10, 100), None);
    }
}
