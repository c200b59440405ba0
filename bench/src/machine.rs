//! What the figures were measured on: cores, CPU model, memory, kernel, compiler.
//!
//! Figures from different machines are not comparable, so every report names its machine.
//! Each fact comes from /proc or `rustc --version`; one that cannot be read is reported as
//! unknown rather than stopping the bench.

use std::process::Command;

/// The machine facts a report prints.
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
}

/// The 1-minute load average: how busy the machine was with other work. Figures taken with
/// it well above zero are slower and noisier than the machine can do.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Machine {
    pub fn this() -> Machine {
        let unknown = || "unknown".to_owned();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: field(&cpuinfo, "model name").unwrap_or_else(unknown),
            memory: field(&meminfo, "MemTotal")
                .and_then(|kib| kib.trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kib| format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
                .unwrap_or_else(unknown),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| unknown()),
            rustc: Command::new("rustc")
                .arg("--version")
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_else(unknown),
        }
    }

    /// One line: `2 cores (AMD EPYC), 23.4 GiB, Linux 6.1.0, rustc 1.82.0 (...)`.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {} memory, Linux {}, {}",
            self.cores, self.cpu, self.memory, self.kernel, self.rustc
        )
    }
}

/// The value of `key: value` in a /proc text file.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}
