//! CPU time used by the server and by this load generator, read from Linux's `/proc`.
//!
//! Both processes share the machine's cores, so requests per second alone do not say how
//! much CPU the server spent; its own CPU time does. Elsewhere the figures are absent.

use std::time::Duration;

/// Linux reports process times in `USER_HZ` ticks, which is 100 in every architecture's ABI.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time of one process, all threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessCpu {
    pub user: Duration,
    /// In the kernel on the process's behalf: syscalls, scheduling, page faults.
    pub system: Duration,
}

impl ProcessCpu {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    fn since(&self, earlier: &ProcessCpu) -> ProcessCpu {
        ProcessCpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// CPU time consumed so far by the server and by us.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsage {
    pub server: Option<ProcessCpu>,
    pub loadgen: Option<ProcessCpu>,
}

impl CpuUsage {
    /// Reads the current totals; `server_pid` is the child's id, if it still has one.
    pub fn now(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.and_then(|pid| process_cpu(&pid.to_string())),
            loadgen: process_cpu("self"),
        }
    }

    /// The CPU time spent between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuUsage) -> CpuUsage {
        let diff = |now: Option<ProcessCpu>, then: Option<ProcessCpu>| Some(now?.since(&then?));
        CpuUsage {
            server: diff(self.server, earlier.server),
            loadgen: diff(self.loadgen, earlier.loadgen),
        }
    }
}

fn process_cpu(pid: &str) -> Option<ProcessCpu> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Fields 14 (`utime`) and 15 (`stime`) of a proc(5) `stat` line.
fn parse_stat(stat: &str) -> Option<ProcessCpu> {
    // The command name (field 2) is parenthesised and may contain spaces and parentheses:
    // count from after its last `)`, where field 3 starts.
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut next_ticks = || -> Option<Duration> {
        let ticks: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
    };
    let user = next_ticks()?;
    let system = next_ticks()?;
    Some(ProcessCpu { user, system })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_found_after_an_awkward_command_name() {
        let line = "4242 (load gen) (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 3 0 1 2 3";
        let cpu = parse_stat(line).expect("well formed");
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(370));
        assert_eq!(cpu.total(), Duration::from_millis(2870));
    }

    #[test]
    fn a_truncated_line_gives_nothing() {
        assert_eq!(parse_stat("4242 (loadgen) S 1 4242"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn own_cpu_time_is_readable() {
        assert!(process_cpu("self").is_some());
    }
}
