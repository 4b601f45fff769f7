//! What Linux reports of a running process under `/proc`: its memory figures
//! and CPU time, for tests and benchmarks that measure the operator.
//!
//! Use it from a test file with `mod proc_status;`.
#![allow(dead_code)]

/// Which process to read.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    /// The one reading.
    Own,
    Pid(u32),
}

impl Process {
    fn dir(self) -> String {
        match self {
            Process::Own => "/proc/self".into(),
            Process::Pid(pid) => format!("/proc/{pid}"),
        }
    }
}

/// The lines of `/proc/<pid>/status` (empty once the process is gone).
pub fn status(process: Process) -> String {
    std::fs::read_to_string(format!("{}/status", process.dir())).unwrap_or_default()
}

/// A field of `/proc/<pid>/status` counted in kB (`VmRSS:`, `VmHWM:`,
/// `RssAnon:`, ...); 0 when the process or the field is not there.
pub fn kib(process: Process, field: &str) -> u64 {
    status(process)
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// [`kib`] in MiB.
pub fn mib(process: Process, field: &str) -> f64 {
    kib(process, field) as f64 / 1024.0
}

/// User + system CPU time of a process, in clock ticks (USER_HZ, 100/s).
pub fn cpu_ticks(process: Process) -> u64 {
    std::fs::read_to_string(format!("{}/stat", process.dir()))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}
