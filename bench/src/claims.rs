//! Pings while new names are claimed, with a delay injected into every `fsync` (issue 12).
//!
//! The registry writes each new name to SQLite (`synchronous=FULL`), so a claim ends with an
//! `fsync`, which on a busy disk takes milliseconds or more. That wait must hold up the
//! claimant only, not everyone else: with 20 ms injected into every `fsync`, pings must stay
//! within twice their p50 under the same `strace` without the delay.
//!
//! Each condition gets a fresh registry:
//!
//! - **no strace**: the registry as it runs;
//! - **strace**: under `strace -f --seccomp-bpf -e trace=fsync,fdatasync`, which stops the
//!   registry at those two system calls only (the baseline of the target);
//! - **strace + 20 ms per fsync**: the same with
//!   `-e inject=fsync,fdatasync:delay_enter=20000`, so that every `fsync` and `fdatasync`
//!   of every thread starts 20 ms late, as on a slow disk.
//!
//! In each, one client pings the registry ([`Plan::quiet_pings`] pings with nothing else
//! going on), then [`Plan::claim_clients`] clients claim new names as fast as they are
//! answered, for [`Plan::claim_time`] or [`Plan::claim_cap`] names, while the same client
//! keeps pinging. A ping is a signed `ping` from its own loopback address, with a new
//! connection each time as a peer's request has, and a pause of [`PING_GAP`] after each
//! answer; a claim is a signed `register` of a new name by a new key that opens a session, as
//! the crowd's (`registry.rs`), 16 names to a loopback address so that no address reaches the
//! registry's limits on names and new names per address. Under strace, its output (one line
//! per `fsync`) goes to a file, and the report counts them.
//!
//! Without a working `strace` only the first condition is measured, and the report says so:
//! CI's machines have no strace, and `--quick` must still pass there.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use p2p_shared::{runtime, RegistryRequest};

use crate::load::{self, Throughput};
use crate::plan::Plan;
use crate::programs::{Programs, Registry, Wrapper};
use crate::registry::origin;
use crate::source;
use crate::stats::Summary;
use crate::wire::Client;

/// The delay injected into every `fsync` and `fdatasync` (issue 12).
pub const FSYNC_DELAY: Duration = Duration::from_millis(20);

/// Pings under the delay may take at most this many times their p50 under strace alone.
pub const PING_RATIO_AT_MOST: f64 = 2.0;

/// The pause after each answered ping, so that the pinger is one client among the claimants
/// rather than a load of its own.
const PING_GAP: Duration = Duration::from_millis(1);

/// How long the claimants run before pings count: the registry is busy claiming by then.
const CLAIMS_UNDER_WAY: Duration = Duration::from_millis(200);

/// Where the pinger connects from: an address of its own, away from the claimants'.
const PINGER: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);

/// How long a probe of strace, or strace after its registry was killed, may take.
const STRACE_WAIT: Duration = Duration::from_secs(10);

/// How the registry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Plain,
    Traced,
    Delayed,
}

impl Condition {
    pub fn label(self) -> String {
        match self {
            Condition::Plain => "no strace".to_owned(),
            Condition::Traced => "strace".to_owned(),
            Condition::Delayed => format!("strace + {} ms per fsync", FSYNC_DELAY.as_millis()),
        }
    }

    /// strace's options for this condition, writing its trace to `log`; `None` without strace.
    fn strace_args(self, log: &Path) -> Option<Vec<String>> {
        let mut args: Vec<String> = ["-f", "--seccomp-bpf", "-e", "trace=fsync,fdatasync"]
            .map(String::from)
            .to_vec();
        match self {
            Condition::Plain => return None,
            Condition::Traced => {}
            Condition::Delayed => args.extend([
                "-e".to_owned(),
                format!(
                    "inject=fsync,fdatasync:delay_enter={}",
                    FSYNC_DELAY.as_micros()
                ),
            ]),
        }
        args.extend(["-o".to_owned(), log.display().to_string()]);
        Some(args)
    }
}

/// The figures of one condition.
pub struct Measured {
    pub condition: Condition,
    /// Pings with no claims going on.
    pub quiet: Summary,
    /// Pings while the clients claim new names.
    pub pings: Summary,
    /// The claims: names per second and how long each claimant waited.
    pub claims: Throughput,
    /// `fsync` and `fdatasync` calls of the registry, start-up included, under strace.
    pub fsyncs: Option<usize>,
}

/// The claims part: a [`Measured`] per condition.
pub struct Claims {
    pub clients: usize,
    pub runs: Vec<Measured>,
    /// Why the conditions under strace were not measured, when they were not.
    pub missing: Option<String>,
}

impl Claims {
    pub fn get(&self, condition: Condition) -> Option<&Measured> {
        self.runs.iter().find(|m| m.condition == condition)
    }

    /// The target's ratio: the ping p50 under the delay over the ping p50 under strace alone.
    pub fn ratio(&self) -> Option<f64> {
        let (traced, delayed) = (self.get(Condition::Traced)?, self.get(Condition::Delayed)?);
        Some(delayed.pings.p50.as_secs_f64() / traced.pings.p50.as_secs_f64())
    }

    /// A stricter ratio, without a target: the ping p50 under the delay while claiming over
    /// the ping p50 under strace alone with no claims. The target's baseline has the claims'
    /// CPU work in it, and fewer claims go through under the delay.
    pub fn ratio_to_quiet(&self) -> Option<f64> {
        let (traced, delayed) = (self.get(Condition::Traced)?, self.get(Condition::Delayed)?);
        Some(delayed.pings.p50.as_secs_f64() / traced.quiet.p50.as_secs_f64())
    }
}

/// Measures each condition that can be measured here.
pub fn measure(programs: &Programs, plan: &Plan) -> anyhow::Result<Claims> {
    let strace = match probe_strace() {
        Ok(strace) => Some(strace),
        Err(why) => {
            crate::progress(&format!("claims: {why}"));
            None
        }
    };
    let mut conditions = vec![Condition::Plain];
    if strace.is_some() {
        conditions.extend([Condition::Traced, Condition::Delayed]);
    }
    let mut runs = Vec::new();
    for condition in conditions {
        crate::progress(&format!(
            "claims, {}: pings, then pings while {} clients claim new names",
            condition.label(),
            plan.claim_clients
        ));
        runs.push(measure_one(programs, plan, condition, strace.as_deref())?);
    }
    Ok(Claims {
        clients: plan.claim_clients,
        runs,
        missing: strace.is_none().then(|| {
            format!(
                "the claims rows under strace, and with {} ms injected into every fsync, \
                 need strace (e.g. `apt-get install strace`); measured without strace only",
                FSYNC_DELAY.as_millis()
            )
        }),
    })
}

/// Finds strace on PATH and checks that it can run a program here with the options of
/// [`Condition::Delayed`] (it needs ptrace and seccomp, which a container may forbid). The
/// program is this bench itself, asked for its version. The error says why not.
fn probe_strace() -> Result<PathBuf, String> {
    let strace = PathBuf::from("strace");
    let args = Condition::Delayed
        .strace_args(Path::new("/dev/null"))
        .expect("a condition under strace");
    let this = std::env::current_exe().map_err(|e| format!("cannot locate p2p-bench: {e}"))?;
    let mut probe = Command::new(&strace)
        .args(&args)
        .arg(&this)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "strace is not installed (not on PATH)".to_owned(),
            _ => format!("cannot run strace: {e}"),
        })?;
    let deadline = Instant::now() + STRACE_WAIT;
    let status = loop {
        match probe.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                // Our own child, by its PID.
                let _ = probe.kill();
                let _ = probe.wait();
                return Err(format!("strace did not finish within {STRACE_WAIT:?}"));
            }
            Err(e) => return Err(format!("cannot wait for strace: {e}")),
        }
    };
    if status.success() {
        return Ok(strace);
    }
    let mut said = String::new();
    if let Some(mut stderr) = probe.stderr.take() {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut said);
    }
    let said = said.lines().last().unwrap_or("(nothing on stderr)");
    Err(format!("strace cannot trace here ({status}): {said}"))
}

/// One condition on a fresh registry.
fn measure_one(
    programs: &Programs,
    plan: &Plan,
    condition: Condition,
    strace: Option<&Path>,
) -> anyhow::Result<Measured> {
    let log = programs.work.fresh("strace")?.join("fsyncs.txt");
    let wrapper = match (strace, condition.strace_args(&log)) {
        (Some(program), Some(args)) => Some(Wrapper {
            program: program.to_path_buf(),
            args,
        }),
        (None, Some(_)) => bail!("{} needs strace", condition.label()),
        (_, None) => None,
    };
    let registry = Running::start(programs, wrapper.as_ref())?;
    let addr = registry.registry.addr;

    let quiet = runtime::block_on(pings(addr, plan.quiet_pings, plan.limit, None))?;
    let quiet = Summary::of(quiet).context("no ping was answered")?;

    // The pinger runs on a thread of its own while the claimants run on async-std's pool.
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = Arc::clone(&stop);
        let (limit, most) = (plan.limit, pings_at_most(plan));
        thread::spawn(move || {
            thread::sleep(CLAIMS_UNDER_WAY);
            runtime::block_on(pings(addr, most, limit, Some(&stop)))
        })
    };
    let claim = move |_, n: usize| async move {
        // A new peer each time: a new key claiming a new name, from 16 names to an address.
        let mut peer = Client {
            origin: origin(&format!("c{n:06}"))?,
            from: source::for_client(n),
            session: None,
        };
        let register = RegistryRequest::Register {
            pattern: None,
            handshake: None,
        };
        peer.ask(addr, register, "registered").await.map(drop)
    };
    let claimed = load::run(
        registry.pid,
        plan.claim_clients,
        plan.claim_cap,
        plan.claim_time,
        claim,
    );
    stop.store(true, Ordering::Relaxed);
    let pinged = pinger
        .join()
        .map_err(|_| anyhow::anyhow!("the pinger panicked"))?;
    let claims = Throughput::of(vec![claimed?])?;
    let pings = Summary::of(pinged?).context("no ping was answered while claiming")?;
    let fsyncs = registry.stop()?;
    Ok(Measured {
        condition,
        quiet,
        pings,
        claims,
        fsyncs,
    })
}

/// The most pings one condition can take: one per [`PING_GAP`] over the claims' time.
fn pings_at_most(plan: &Plan) -> usize {
    (plan.claim_time.as_micros() / PING_GAP.as_micros()).max(1) as usize
}

/// Pings the registry at `addr` one at a time, [`PING_GAP`] apart: `most` pings, for at most
/// `limit`, until `stop` is set (after one ping at least). Returns each ping's time.
async fn pings(
    addr: SocketAddr,
    most: usize,
    limit: Duration,
    stop: Option<&AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let mut pinger = Client {
        origin: origin("pinger")?,
        from: PINGER,
        session: None,
    };
    let deadline = Instant::now() + limit;
    let mut times = Vec::with_capacity(most);
    while times.len() < most && Instant::now() < deadline {
        let sent = Instant::now();
        // No session: a signed `ping`, answered with a signed `ok`.
        pinger.ask(addr, RegistryRequest::Ping, "ok").await?;
        times.push(sent.elapsed());
        if stop.is_some_and(|stop| stop.load(Ordering::Relaxed)) {
            break;
        }
        async_std::task::sleep(PING_GAP).await;
    }
    Ok(times)
}

/// A registry, perhaps under strace, and the PID of the registry process itself.
struct Running {
    registry: Registry,
    pid: u32,
    /// strace's output, when the registry runs under it.
    log: Option<PathBuf>,
}

impl Running {
    fn start(programs: &Programs, wrapper: Option<&Wrapper>) -> anyhow::Result<Running> {
        let registry = programs.registry_under(wrapper, &[])?;
        let Some(wrapper) = wrapper else {
            let pid = registry.child.pid();
            return Ok(Running {
                registry,
                pid,
                log: None,
            });
        };
        // strace starts the registry as its child; it has said where it listens, so it runs.
        let pid = only_child(registry.child.pid())?;
        let log = wrapper
            .args
            .iter()
            .skip_while(|a| *a != "-o")
            .nth(1)
            .map(PathBuf::from);
        Ok(Running { registry, pid, log })
    }

    /// Stops the registry; under strace, waits for strace to end and returns how many
    /// `fsync` and `fdatasync` calls it saw.
    fn stop(mut self) -> anyhow::Result<Option<usize>> {
        let Some(log) = self.log.take() else {
            return Ok(None);
        };
        self.kill_registry();
        if let Err(e) = self.registry.child.wait_exit(STRACE_WAIT) {
            bail!("strace did not end within {STRACE_WAIT:?} after its registry was killed: {e}");
        }
        let trace = std::fs::read_to_string(&log)
            .with_context(|| format!("cannot read strace's output {}", log.display()))?;
        // An interrupted call is one `fsync(` line and one `<... fsync resumed>` line.
        let calls = trace
            .lines()
            .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
            .count();
        Ok(Some(calls))
    }

    /// Under strace, kills the registry process by its PID, if it is still strace's child.
    fn kill_registry(&self) {
        let strace = self.registry.child.pid();
        if self.pid != strace && parent_of(self.pid) == Some(strace) {
            // SAFETY: kill only sends a signal, to a process this bench's strace started.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Then `registry.child` is dropped, which kills strace (or the plain registry).
        self.kill_registry();
    }
}

/// The one child process of `parent`, from /proc.
fn only_child(parent: u32) -> anyhow::Result<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").context("cannot list /proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if parent_of(pid) == Some(parent) {
            children.push(pid);
        }
    }
    match children[..] {
        [child] => Ok(child),
        _ => bail!("process {parent} has {} children, not one", children.len()),
    }
}

/// The parent of process `pid`: the field after the state in /proc/PID/stat, which follows
/// the command name in parentheses.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_runs_as_issue_12_says() {
        let log = Path::new("/tmp/log");
        assert_eq!(Condition::Plain.strace_args(log), None);
        let traced = "-f --seccomp-bpf -e trace=fsync,fdatasync -o /tmp/log";
        assert_eq!(
            Condition::Traced.strace_args(log).unwrap().join(" "),
            traced
        );
        assert_eq!(
            Condition::Delayed.strace_args(log).unwrap().join(" "),
            "-f --seccomp-bpf -e trace=fsync,fdatasync \
             -e inject=fsync,fdatasync:delay_enter=20000 -o /tmp/log"
        );
    }

    #[test]
    fn the_parent_comes_from_proc() {
        let this = std::process::id();
        // SAFETY: getppid only reads this process's parent id.
        let parent = unsafe { libc::getppid() } as u32;
        assert_eq!(parent_of(this), Some(parent));
        assert_eq!(parent_of(u32::MAX), None);
    }
}
