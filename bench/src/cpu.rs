//! CPU time of a process, from /proc: where a load level's cycles go.
//!
//! On this 2-core machine the server and its clients share the cores, so a request rate is
//! bounded by the CPU that one request costs both sides together, not by the server alone.
//! The load levels therefore also report the CPU time per request of the server process and
//! of the bench's own process (its clients), each split into user time (the program's own
//! work: parsing, cryptography, the runtime) and system time (the kernel's: TCP, sockets,
//! waking threads). Next to the floor's, those four figures say which side and which kind of
//! work a gap in requests/s comes from.
//!
//! The kernel counts a process's time in clock ticks (usually 10 ms), and each reading is off
//! by up to a tick, so a figure is as exact as the time behind it is long: over a level's
//! 30,000 requests, 1 µs per request is 3 ticks. The tens of µs of system time are good to a
//! few percent; a figure of a few µs (the floor's user time) only says "a few µs".

use std::time::Duration;

use anyhow::Context;

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    /// The CPU time process `pid` used so far, all its threads together.
    pub fn of(pid: u32) -> anyhow::Result<CpuTime> {
        Self::read(&format!("/proc/{pid}/stat"))
    }

    /// The CPU time this process used so far.
    pub fn this() -> anyhow::Result<CpuTime> {
        Self::read("/proc/self/stat")
    }

    fn read(path: &str) -> anyhow::Result<CpuTime> {
        let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        // SAFETY: sysconf only reads a configuration value.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        parse_stat(&stat, ticks_per_second)
            .with_context(|| format!("{path} has no readable CPU times"))
    }

    /// The time used between `earlier` and this reading.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// The share of each of `n` requests (zero for none).
    pub fn per(self, n: usize) -> CpuTime {
        let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
        CpuTime {
            user: self.user / n,
            system: self.system / n,
        }
    }
}

impl std::iter::Sum for CpuTime {
    fn sum<I: Iterator<Item = CpuTime>>(times: I) -> CpuTime {
        times.fold(CpuTime::default(), |total, t| CpuTime {
            user: total.user + t.user,
            system: total.system + t.system,
        })
    }
}

/// Reads utime and stime (fields 14 and 15 of /proc/PID/stat, in ticks). The second field,
/// the program's name in parentheses, may itself hold spaces and parentheses, so the fields
/// are counted from the last `)`.
fn parse_stat(stat: &str, ticks_per_second: i64) -> Option<CpuTime> {
    let ticks_per_second = u64::try_from(ticks_per_second).ok().filter(|&t| t > 0)?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (the state) onwards: utime is the 12th of those.
    let mut fields = after_name.split_whitespace().skip(11);
    let mut ticks = || -> Option<Duration> {
        let ticks: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_nanos(
            ticks.checked_mul(1_000_000_000)? / ticks_per_second,
        ))
    };
    Some(CpuTime {
        user: ticks()?,
        system: ticks()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_after_any_program_name() {
        let stat = "4242 (p2p (odd) name) S 1 4242 4242 0 -1 4194560 520 0 0 0 \
                    250 75 0 0 20 0 3 0 1234 5000000 900 18446744073709551615";
        let cpu = parse_stat(stat, 100).unwrap();
        assert_eq!(cpu.user, Duration::from_millis(2_500));
        assert_eq!(cpu.system, Duration::from_millis(750));
    }

    #[test]
    fn refuses_what_is_not_a_stat_line() {
        assert_eq!(parse_stat("", 100), None);
        assert_eq!(parse_stat("4242 (short) S 1 2", 100), None);
        assert_eq!(
            parse_stat("4242 (x) S 1 2 3 4 5 6 7 8 9 10 x 75", 100),
            None
        );
        assert_eq!(
            parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 250 75", 0),
            None,
            "no tick length"
        );
    }

    #[test]
    fn splits_a_run_over_its_requests() {
        let before = CpuTime {
            user: Duration::from_millis(100),
            system: Duration::from_millis(200),
        };
        let after = CpuTime {
            user: Duration::from_millis(300),
            system: Duration::from_millis(600),
        };
        let each = after.since(before).per(1_000);
        assert_eq!(each.user, Duration::from_micros(200));
        assert_eq!(each.system, Duration::from_micros(400));
        assert_eq!(after.since(before).per(0), after.since(before));
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // Spin until the kernel has counted at least one tick of ours.
        let start = std::time::Instant::now();
        let mut spun = 0u64;
        while CpuTime::this().unwrap() == CpuTime::default() {
            spun = std::hint::black_box(spun.wrapping_add(1));
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no CPU time counted"
            );
        }
    }
}
