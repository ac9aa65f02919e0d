//! CPU and memory accounting from /proc, as vipbench does it (`cpu_snap`, `cpu_json`).
//!
//! Router CPU: `utime + stime` of `/proc/PID/stat` (all threads) for an external router, or
//! of `/proc/self/task/TID/stat` for the in-process router thread. The generator's CPU is
//! this process's `getrusage` (minus the router thread when it runs in-process). Other CPU:
//! the busy time of `/proc/stat` minus both, a noise indicator.

use std::time::Instant;

use super::report::CaseResult;

/// `/proc` reports times in USER_HZ, which is 100 on every Linux architecture.
const USER_HZ: f64 = 100.0;

/// Where the router's CPU time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterCpu {
    /// Not measured (external router without `--router-pid`).
    None,
    /// An external router process.
    Pid(u32),
    /// The in-process router thread.
    Thread(u32),
}

impl RouterCpu {
    /// The name used in the JSON `router_cpu_source` field.
    pub fn source(self) -> &'static str {
        match self {
            RouterCpu::None => "none",
            RouterCpu::Pid(_) => "pid",
            RouterCpu::Thread(_) => "thread",
        }
    }

    fn read(self) -> Option<f64> {
        match self {
            RouterCpu::None => None,
            RouterCpu::Pid(pid) => stat_cpu_s(&format!("/proc/{pid}/stat")),
            RouterCpu::Thread(tid) => stat_cpu_s(&format!("/proc/self/task/{tid}/stat")),
        }
    }
}

/// utime + stime (seconds) of a `/proc/…/stat` file.
fn stat_cpu_s(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // fields after the ")" closing comm: state(3) ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime(14) stime(15)
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut it = rest.split_ascii_whitespace().skip(11);
    let ut: u64 = it.next()?.parse().ok()?;
    let st: u64 = it.next()?.parse().ok()?;
    Some((ut + st) as f64 / USER_HZ)
}

/// This process's CPU time (all threads), seconds.
fn self_cpu_s() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => 0.0,
    }
}

/// Busy time of the whole machine (user nice system irq softirq steal), seconds.
fn machine_busy_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_ascii_whitespace().take(8).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    let busy: u64 = [0usize, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Some(busy as f64 / USER_HZ)
}

fn online_cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|t| t.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count())
        .unwrap_or(1)
        .max(1)
}

/// One snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Snap {
    t: Instant,
    router: Option<f64>,
    process: f64,
    busy: Option<f64>,
}

/// Take a snapshot.
pub fn snap(router: RouterCpu) -> Snap {
    Snap { t: Instant::now(), router: router.read(), process: self_cpu_s(), busy: machine_busy_s() }
}

/// Append vipbench's CPU fields over `[a, b]` for `units` units called `unit`
/// (`router_cpu_s`, `router_cpu_us_per_<unit>`, `gen_cpu_s`, `gen_cpu_us_per_<unit>`,
/// `other_cpu_s`, `other_cpu_frac`, `cpu_window_s`) and return the router's µs per unit
/// (−1 when unknown).
pub fn fields(r: &mut CaseResult, a: &Snap, b: &Snap, units: u64, unit: &str, src: RouterCpu) -> f64 {
    let el = b.t.duration_since(a.t).as_secs_f64();
    let router = match (a.router, b.router) {
        (Some(x), Some(y)) => y - x,
        _ => -1.0,
    };
    let process = b.process - a.process;
    // In-process, the router thread's time is part of ours.
    let generator =
        if matches!(src, RouterCpu::Thread(_)) && router >= 0.0 { (process - router).max(0.0) } else { process };
    let mut other = match (a.busy, b.busy) {
        (Some(x), Some(y)) => (y - x) - generator - router.max(0.0),
        _ => -1.0,
    };
    if a.busy.is_some() && b.busy.is_some() && other < 0.0 {
        other = 0.0;
    }
    let per = |v: f64| if v >= 0.0 && units > 0 { v * 1e6 / units as f64 } else { -1.0 };
    let ncpu = online_cpus() as f64;
    r.float("router_cpu_s", router, 2)
        .float(&format!("router_cpu_us_per_{unit}"), per(router), 2)
        .float("gen_cpu_s", generator, 2)
        .float(&format!("gen_cpu_us_per_{unit}"), per(generator), 2)
        .float("other_cpu_s", other, 2)
        .float("other_cpu_frac", if other >= 0.0 && el > 0.0 { other / (el * ncpu) } else { -1.0 }, 3)
        .float("cpu_window_s", el, 2)
        .str("router_cpu_source", src.source());
    per(router)
}

/// `[router X us CPU/unit]` for the table, or nothing.
pub fn note(us: f64, unit: &str) -> String {
    if us < 0.0 { String::new() } else { format!("  [router {us:.1} us CPU/{unit}]") }
}

/// A `kB` value from `/proc/PID/status` (`VmRSS`, `VmHWM`), −1 when unreadable.
pub fn status_kb(pid: u32, key: &str) -> i64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return -1 };
    text.lines()
        .find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.split_ascii_whitespace().next()?.parse().ok()
        })
        .unwrap_or(-1)
}

/// The kernel id of the calling thread (from `/proc/thread-self`).
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_stat_and_status() {
        let tid = current_tid().unwrap();
        assert!(RouterCpu::Thread(tid).read().is_some());
        assert!(RouterCpu::Pid(std::process::id()).read().is_some());
        assert!(status_kb(std::process::id(), "VmRSS") > 0);
        assert_eq!(status_kb(std::process::id(), "NoSuchKey"), -1);
        assert!(machine_busy_s().is_some());
    }
}
