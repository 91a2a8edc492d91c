//! The measured server's CPU time and memory, read from `/proc/<pid>` once a second, and how
//! the CPU splits between seconds in which actions run and seconds in which none do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`: 100 on every Linux the kernel
/// ABI allows for these fields).
const TICKS_PER_S: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path} (is process {pid} running, and is this Linux?): {source}")]
    Read {
        pid: u32,
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: unexpected contents")]
    Parse { path: String },
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Wall clock, unix nanoseconds.
    pub at_ns: i128,
    /// utime + stime, in ticks.
    pub cpu_ticks: u64,
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Peak resident set (VmHWM), KiB.
    pub hwm_kib: u64,
}

/// The wall clock, unix nanoseconds. It is compared with the server's timestamps of the same
/// machine, so it must be the real clock, not an injected one.
#[allow(clippy::disallowed_methods)]
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn read(pid: u32, file: &str) -> Result<String, ProcError> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).map_err(|source| ProcError::Read { pid, path, source })
}

/// utime + stime of `pid` (`self` is not a pid; use [`own_cpu_ticks`]).
pub fn sample(pid: u32) -> Result<Sample, ProcError> {
    let at_ns = now_ns();
    let stat = read(pid, "stat")?;
    let cpu_ticks = cpu_ticks(&stat).ok_or_else(|| ProcError::Parse {
        path: format!("/proc/{pid}/stat"),
    })?;
    let status = read(pid, "status")?;
    Ok(Sample {
        at_ns,
        cpu_ticks,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

/// This process's own utime + stime, in ticks.
pub fn own_cpu_ticks() -> Option<u64> {
    cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 and 15 of `/proc/<pid>/stat`, counted after the command name (which may hold
/// spaces and parentheses, hence the last `)`).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU and memory of the server over the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    pub window_s: f64,
    /// CPU over the whole window, percent of one core.
    pub cpu_pct: f64,
    pub cpu_s: f64,
    /// Seconds of the window in which no action was due, started or closed (see
    /// [`usage`]), and the CPU in them.
    pub idle_s: f64,
    pub idle_cpu_pct: Option<f64>,
    pub busy_s: f64,
    pub busy_cpu_pct: Option<f64>,
    pub rss_start_mib: f64,
    pub rss_end_mib: f64,
    pub rss_max_mib: f64,
    /// VmHWM at the end: the peak since the process started (creation included).
    pub rss_peak_mib: f64,
    /// CPU of each sampling interval (about a second), percent of one core, in order.
    pub cpu_pct_per_interval: Vec<f64>,
}

/// Split the window's CPU between idle and busy sampling intervals. An interval `[a, b)` is
/// busy when an instant in `busy_ns` (nominal times, run starts and closes) falls in
/// `[a - margin, b + margin)`: the server does the work of an action around those instants.
pub fn usage(pid: u32, samples: &[Sample], busy_ns: &mut [i128], margin: Duration) -> ServerUsage {
    let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
    let pct =
        |ticks: u64, s: f64| (s > 0.0).then(|| round2(ticks as f64 / TICKS_PER_S / s * 100.0));
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return ServerUsage {
            pid,
            ..Default::default()
        };
    };
    busy_ns.sort_unstable();
    let margin = margin.as_nanos() as i128;
    let (mut idle_ticks, mut idle_ns, mut busy_ticks, mut busy_ns_sum) = (0u64, 0i128, 0u64, 0i128);
    let mut per_interval = Vec::with_capacity(samples.len());
    for w in samples.windows(2) {
        let (a, b) = (w[0].at_ns, w[1].at_ns);
        let ticks = w[1].cpu_ticks.saturating_sub(w[0].cpu_ticks);
        per_interval.push(pct(ticks, (b - a) as f64 / 1e9).unwrap_or(0.0));
        let i = busy_ns.partition_point(|t| *t < a - margin);
        let busy = busy_ns.get(i).is_some_and(|t| *t < b + margin);
        if busy {
            busy_ticks += ticks;
            busy_ns_sum += b - a;
        } else {
            idle_ticks += ticks;
            idle_ns += b - a;
        }
    }
    let secs = |ns: i128| ns as f64 / 1e9;
    let window_s = secs(last.at_ns - first.at_ns);
    let total = last.cpu_ticks.saturating_sub(first.cpu_ticks);
    ServerUsage {
        pid,
        window_s: round2(window_s),
        cpu_pct: pct(total, window_s).unwrap_or(0.0),
        cpu_s: round2(total as f64 / TICKS_PER_S),
        idle_s: round2(secs(idle_ns)),
        idle_cpu_pct: pct(idle_ticks, secs(idle_ns)),
        busy_s: round2(secs(busy_ns_sum)),
        busy_cpu_pct: pct(busy_ticks, secs(busy_ns_sum)),
        rss_start_mib: mib(first.rss_kib),
        rss_end_mib: mib(last.rss_kib),
        rss_max_mib: mib(samples.iter().map(|s| s.rss_kib).max().unwrap_or(0)),
        rss_peak_mib: mib(last.hwm_kib),
        cpu_pct_per_interval: per_interval,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_an_awkward_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 5 1 2";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(
            status_kib("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n", "VmRSS:"),
            Some(1024)
        );
    }

    #[test]
    fn intervals_near_an_action_are_busy() {
        let s = |sec: i128, ticks: u64| Sample {
            at_ns: sec * 1_000_000_000,
            cpu_ticks: ticks,
            rss_kib: 1024,
            hwm_kib: 2048,
        };
        // 10 one-second intervals; an action at 4.5 s makes [3,4), [4,5), [5,6) busy with a
        // 1 s margin... and only those.
        let samples: Vec<Sample> = (0..=10)
            .map(|i| s(i, (i as u64) + if i >= 5 { 50 } else { 0 }))
            .collect();
        let mut busy = vec![4_500_000_000];
        let u = usage(7, &samples, &mut busy, Duration::from_millis(1000));
        assert_eq!(u.window_s, 10.0);
        assert_eq!(u.busy_s, 3.0);
        assert_eq!(u.idle_s, 7.0);
        assert_eq!(u.idle_cpu_pct, Some(1.0));
        assert_eq!(u.busy_cpu_pct, Some(round2(53.0 / 3.0)));
        assert_eq!(u.cpu_pct, 6.0);
        assert_eq!(u.rss_peak_mib, 2.0);
        assert_eq!(u.cpu_pct_per_interval.len(), 10);
        assert_eq!(u.cpu_pct_per_interval[4], 51.0);
    }
}
