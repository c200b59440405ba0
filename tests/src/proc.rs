//! One program under test, for a test: the kit's [`Child`] with expectations that fail the
//! test, showing what the program printed last, instead of returning errors.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use p2p_kit::Stream;
use p2p_kit::{Bins, Child, Scratch};

/// How long one `expect*` call waits for its line.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Full path of `p2p-server` or `p2p-peer`, built (once per test process) with this test's
/// profile into its target folder.
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    let bins = Bins::of_this_build().unwrap_or_else(|e| panic!("{e}"));
    match name {
        "p2p-server" => bins.server.clone(),
        "p2p-peer" => bins.peer.clone(),
        other => panic!("no program {other}"),
    }
}

/// A fresh, empty folder, removed (with everything in it) when dropped.
pub struct DataDir(Scratch);

impl DataDir {
    /// A new folder; `label` (a peer name, `server`, ...) only helps a person reading paths.
    #[track_caller]
    pub fn new(label: &str) -> DataDir {
        DataDir(Scratch::new(label).unwrap_or_else(|e| panic!("cannot create a folder: {e}")))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> String {
        self.path().display().to_string()
    }
}

/// The folder a program runs with: one the test passed in (and keeps), or a fresh one the
/// program's handle owns.
pub(crate) enum DataDirUse {
    Given(PathBuf),
    Owned(DataDir),
}

impl DataDirUse {
    pub(crate) fn new(given: Option<PathBuf>, label: &str) -> DataDirUse {
        match given {
            Some(path) => DataDirUse::Given(path),
            None => DataDirUse::Owned(DataDir::new(label)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            DataDirUse::Given(path) => path,
            DataDirUse::Owned(dir) => dir.path(),
        }
    }
}

/// One running program. Dropping it kills the process.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `program args...` with piped stdin, stdout and stderr. `label` names it in
    /// failure messages.
    #[track_caller]
    pub fn spawn(label: impl Into<String>, program: &Path, args: &[String]) -> Proc {
        Proc::spawn_with_env(label, program, args, &[])
    }

    /// [`Proc::spawn`] with the environment variables `env` set.
    #[track_caller]
    pub fn spawn_with_env(
        label: impl Into<String>,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Proc {
        let child = Child::spawn_with_env(&label.into(), program, args, env)
            .unwrap_or_else(|e| panic!("{e}"));
        Proc { child }
    }

    /// The process id (for messages and signals).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Writes `line` and a newline to stdin, and flushes.
    #[track_caller]
    pub fn send(&self, line: &str) {
        if let Err(e) = self.child.send(line) {
            self.fail(&e.to_string());
        }
    }

    /// Reads stdout lines until one satisfies `matches`, and returns it; the lines before it
    /// are consumed. Fails after [`EXPECT_TIMEOUT`] or if stdout ends.
    #[track_caller]
    pub fn expect_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        match self.child.expect(what, EXPECT_TIMEOUT, matches) {
            Ok(line) => line.text,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Proc::expect_line`] with a deadline of `timeout`: for a line the program prints on a
    /// schedule of its own (a summary at the end of a window) rather than in answer to a step.
    #[track_caller]
    pub fn expect_line_within(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        match self.child.expect(what, timeout, matches) {
            Ok(line) => line.text,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits for a stdout line containing `needle`.
    #[track_caller]
    pub fn expect(&self, needle: &str) -> String {
        self.expect_line(&format!("containing {needle:?}"), |l| l.contains(needle))
    }

    /// Waits for a stdout line equal to `line`, skipping others.
    #[track_caller]
    pub fn expect_exact(&self, line: &str) -> String {
        self.expect_line(&format!("equal to {line:?}"), |l| l == line)
    }

    /// The very next stdout line must be `line`: nothing printed in between.
    #[track_caller]
    pub fn expect_next(&self, line: &str) {
        let next = self.next_line();
        if next != line {
            self.fail(&format!("the next line is {next:?}, not {line:?}"));
        }
    }

    /// Waits for a stdout line starting with `prefix`.
    #[track_caller]
    pub fn expect_prefix(&self, prefix: &str) -> String {
        self.expect_line(&format!("starting with {prefix:?}"), |l| {
            l.starts_with(prefix)
        })
    }

    /// Waits for a line of the log (stderr) containing `needle`.
    #[track_caller]
    pub fn expect_log(&self, needle: &str) -> String {
        let what = format!("containing {needle:?}");
        match self
            .child
            .expect_log(&what, EXPECT_TIMEOUT, |l| l.contains(needle))
        {
            Ok(line) => line.text,
            Err(e) => panic!("{e}"),
        }
    }

    /// The log (stderr) lines read so far and not yet taken, without waiting; after
    /// [`Proc::wait_exit`], every line the program logged.
    pub fn take_log(&self) -> Vec<String> {
        self.child.take_log().into_iter().map(|l| l.text).collect()
    }

    /// The very next stdout line, whatever it is.
    #[track_caller]
    pub fn next_line(&self) -> String {
        self.expect_line("at all", |_| true)
    }

    /// The next `n` stdout lines.
    #[track_caller]
    pub fn expect_lines(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_line()).collect()
    }

    /// Waits for a header line `PREFIX N` (e.g. `peers: 3`) and returns the `N` lines after it.
    #[track_caller]
    pub fn expect_list(&self, prefix: &str) -> Vec<String> {
        let header = self.expect_prefix(prefix);
        let n: usize = header[prefix.len()..]
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("bad list header {header:?}")));
        self.expect_lines(n)
    }

    /// Stops reading `stream`, as a reader who went away (see [`Child::stop_reading`]).
    pub fn stop_reading(&self, stream: Stream) {
        self.child.stop_reading(stream);
    }

    /// Reads `stream` again, from where it stopped.
    pub fn resume_reading(&self, stream: Stream) {
        self.child.resume_reading(stream);
    }

    /// Makes the pipe of `stream` hold one page, so that a few unread lines fill it.
    #[track_caller]
    pub fn shrink_pipe(&self, stream: Stream) {
        if let Err(e) = self.child.shrink_pipe(stream) {
            self.fail(&e.to_string());
        }
    }

    /// Closes stdin: the program sees the end of its input.
    pub fn close_stdin(&mut self) {
        self.child.close_stdin();
    }

    /// Waits (at most [`EXPECT_TIMEOUT`]) for the process to end and returns its exit status.
    /// Lines not yet read are kept in the transcript, which then holds all of stderr too.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child
            .wait_exit(EXPECT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        self.child.try_wait().is_none()
    }

    /// Kills the process (our own child) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Sends SIGINT to the process, as Ctrl-C in a terminal would.
    #[track_caller]
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends SIGTERM to the process, as a service manager stopping it would.
    #[track_caller]
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Stops the process (SIGSTOP), as a laptop put to sleep or a cut network would look from
    /// outside: the kernel still takes connections and bytes for it, but nothing answers.
    #[track_caller]
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a [`Proc::pause`]d process run again (SIGCONT).
    #[track_caller]
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends SIGHUP to the process, as closing its terminal window would.
    #[track_caller]
    pub fn hang_up(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Sends `signal` to the process; a failure fails the test.
    #[track_caller]
    fn signal(&self, signal: libc::c_int) {
        if let Err(e) = self.child.signal(signal) {
            self.fail(&e.to_string());
        }
    }

    /// What the process printed last, one entry per line, `out| ` or `err| ` first.
    pub fn transcript(&self) -> Vec<String> {
        self.child.transcript()
    }

    /// The stdout lines printed so far (read or not by `expect*`).
    pub fn stdout_so_far(&self) -> Vec<String> {
        self.transcript()
            .into_iter()
            .filter_map(|l| l.strip_prefix("out| ").map(str::to_owned))
            .collect()
    }

    /// Fails the test with `msg` and what the process printed last.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{}", self.child.failure(msg))
    }
}
