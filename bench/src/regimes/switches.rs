//! Wake-ups of a process: the voluntary context switches of all its threads, from /proc.
//!
//! A thread switches out voluntarily when it waits (for a pipe, a socket, a channel, a
//! lock) and another thread or the kernel wakes it later, so over a burst these count the
//! hand-offs between threads and the waits for I/O that a message costs, without tracing:
//! `voluntary_ctxt_switches` of each `/proc/PID/task/TID/status`. A thread that ended during
//! the burst is not counted; the programs' threads live as long as they do.

use anyhow::Context;

/// The voluntary context switches of all of `pid`'s threads so far.
pub fn voluntary(pid: u32) -> anyhow::Result<u64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("cannot list {tasks}"))? {
        let path = task?.path().join("status");
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += field(&status, "voluntary_ctxt_switches:")
            .with_context(|| format!("{} has no voluntary_ctxt_switches", path.display()))?;
    }
    Ok(total)
}

/// The number after `name` at the start of a line of `status`.
fn field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voluntary_count_is_read_not_the_nonvoluntary_one() {
        let status =
            "Name:\tp2p-peer\nvoluntary_ctxt_switches:\t42\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(field(status, "voluntary_ctxt_switches:"), Some(42));
        assert_eq!(field(status, "nonvoluntary_ctxt_switches:"), Some(7));
        assert_eq!(field("Name:\tx\n", "voluntary_ctxt_switches:"), None);
    }

    #[test]
    fn the_threads_of_a_live_process_are_read() {
        // Our own /proc entry: every thread of ours has the field.
        assert!(voluntary(std::process::id()).is_ok());
    }
}
