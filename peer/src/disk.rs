//! The disk thread: the chat history (SQLite) and the pin files, off the event loop.
//!
//! A write to disk can take milliseconds, or far longer on a busy or failing disk; on the
//! peer's one executor thread it would hold up every chat. So the history and the pin files
//! belong to this thread, and the rest of the peer hands it [`Job`]s through a bounded queue:
//! a chat message to store before it is acknowledged, or before it is reported delivered
//! (its connection or its task waits for the answer), the last
//! lines of a chat for `history`, a pin file to rewrite (nobody waits). Chat lines that wait
//! behind each other are stored in one transaction ([`BATCH`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::channel::oneshot;
use p2p_shared::{MessageId, PeerName};

use crate::event::Shown;
use crate::history::{History, Line};
use crate::known::FileWrite;
use crate::screen::Slot;

/// How many jobs may wait for the thread.
const QUEUE: usize = 256;

/// The most chat lines stored in one transaction: those that wait behind each other under
/// load (a burst of messages), which then share one commit.
const BATCH: usize = 64;

/// How long the thread waits without a job before it checkpoints the history's log: a
/// checkpoint syncs the disk, milliseconds that must not fall on a chat line, so it runs in
/// a pause (`history.rs`).
const PAUSE: Duration = Duration::from_millis(100);

/// One chat line to store.
#[derive(Clone, Debug)]
pub struct Record {
    /// The message's id: each is stored once, and the store says whether it was new.
    pub id: MessageId,
    /// The chat it belongs to.
    pub peer: PeerName,
    /// Who wrote it: the peer, or ourselves.
    pub sender: PeerName,
    pub text: String,
    pub at: DateTime<Utc>,
}

enum Job {
    Record {
        record: Record,
        /// Shown here once stored: a place on the screen and what to fill it with.
        then: Option<Box<(Slot, Shown)>>,
        done: oneshot::Sender<Result<bool, String>>,
    },
    Last {
        peer: PeerName,
        n: usize,
        done: oneshot::Sender<Result<Vec<Line>, String>>,
    },
    /// Look at the files waiting to be written.
    Write,
    /// Answered once every job before it is done, and every file written.
    Done(oneshot::Sender<()>),
}

/// The whole files waiting to be written, the latest one for each path: a pin file is
/// rewritten whole, so only its latest contents matter, and none is ever dropped, however
/// busy the queue.
type Waiting = Arc<Mutex<BTreeMap<PathBuf, FileWrite>>>;

/// A handle to the disk thread; cheap to clone. The thread ends when every handle is gone.
#[derive(Clone)]
pub struct Disk {
    jobs: async_channel::Sender<Job>,
    files: Waiting,
}

impl Disk {
    /// Starts the thread that owns `history`.
    pub fn start(mut history: History) -> std::io::Result<Disk> {
        let (jobs, queue) = async_channel::bounded(QUEUE);
        let files = Waiting::default();
        let waiting = Arc::clone(&files);
        std::thread::Builder::new()
            .name("disk".into())
            .spawn(move || {
                // A job taken while gathering records, to do after them.
                let mut next = None;
                while let Some(job) = next.take().or_else(|| next_job(&queue, &mut history)) {
                    write_files(&waiting);
                    match job {
                        Job::Record { record, then, done } => {
                            // Those waiting behind it go in the same transaction.
                            let mut batch = vec![(record, then, done)];
                            while batch.len() < BATCH {
                                match queue.try_recv() {
                                    Ok(Job::Record { record, then, done }) => {
                                        batch.push((record, then, done))
                                    }
                                    Ok(other) => {
                                        next = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            store(&mut history, batch);
                        }
                        Job::Last { peer, n, done } => {
                            let _ = done.send(history.last(&peer, n).map_err(|e| e.to_string()));
                        }
                        Job::Write => {}
                        Job::Done(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(Disk { jobs, files })
    }

    /// Stores `record`; false if a message with its id was stored before. `then`: once it is
    /// stored (the first time), `event` fills the place on the screen that `slot` keeps; if it
    /// is not, the place is given back.
    pub async fn record(
        &self,
        record: Record,
        then: Option<(Slot, Shown)>,
    ) -> Result<bool, String> {
        let then = then.map(Box::new);
        self.ask(|done| Job::Record { record, then, done }).await?
    }

    /// The last `n` lines of the chat with `peer`, oldest first.
    pub async fn last(&self, peer: PeerName, n: usize) -> Result<Vec<Line>, String> {
        self.ask(|done| Job::Last { peer, n, done }).await?
    }

    /// Writes a whole file (a pin file), without waiting. It replaces any earlier contents of
    /// the same path still waiting; if the queue is full, the thread writes it with its next
    /// job.
    pub fn write(&self, write: FileWrite) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.insert(write.path.clone(), write);
        drop(files);
        let _ = self.jobs.try_send(Job::Write);
    }

    /// Waits until every job handed to the thread so far is done and every file written: a
    /// pin the user asked for is on disk before the user is told, and before the peer exits.
    pub async fn written(&self) {
        let _ = self.ask(Job::Done).await;
    }

    async fn ask<T>(&self, job: impl FnOnce(oneshot::Sender<T>) -> Job) -> Result<T, String> {
        let (done, answer) = oneshot::channel();
        let gone = || "the disk thread has stopped".to_owned();
        self.jobs.send(job(done)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }
}

/// A record to store, where to show it once stored, and who waits for the outcome.
type RecordJob = (
    Record,
    Option<Box<(Slot, Shown)>>,
    oneshot::Sender<Result<bool, String>>,
);

/// Stores `batch` in one transaction, then shows each record stored for the first time in
/// its place, in order, and answers each.
fn store(history: &mut History, batch: Vec<RecordJob>) {
    let rows = batch
        .iter()
        .map(|(r, _, _)| (r.id, &r.peer, &r.sender, r.text.as_str(), r.at));
    let stored = history.record_all(rows).map_err(|e| e.to_string());
    for (i, (_, then, done)) in batch.into_iter().enumerate() {
        let stored = stored.as_ref().map(|all| all[i]).map_err(Clone::clone);
        // Straight to the screen from here: a hop back to the event loop first would cost
        // every chat line another thread wake-up.
        if let (Ok(true), Some(then)) = (&stored, then) {
            let (slot, event) = *then;
            slot.fill(event);
        }
        let _ = done.send(stored);
    }
}

/// The next job, or `None` once every handle is gone. While the history's log holds rows
/// not yet in the database, a [`PAUSE`] without jobs checkpoints it first.
fn next_job(queue: &async_channel::Receiver<Job>, history: &mut History) -> Option<Job> {
    if history.needs_checkpoint() {
        match recv_until(queue, Instant::now() + PAUSE) {
            Some(job) => return job.ok(),
            None => {
                if let Err(e) = history.checkpoint() {
                    tracing::warn!("the chat history's log could not be checkpointed: {e}");
                }
            }
        }
    }
    queue.recv_blocking().ok()
}

/// Waits for the next job until `deadline` (`None` if none came by then). async-channel
/// has no blocking receive with a time limit, and an async timer would wake the event loop's
/// reactor for every wait; this thread parks on its own instead.
fn recv_until(
    queue: &async_channel::Receiver<Job>,
    deadline: Instant,
) -> Option<Result<Job, async_channel::RecvError>> {
    let (parker, unparker) = parking::pair();
    let waker = Waker::from(unparker);
    let mut cx = Context::from_waker(&waker);
    let mut recv = std::pin::pin!(queue.recv());
    loop {
        if let Poll::Ready(job) = recv.as_mut().poll(&mut cx) {
            return Some(job);
        }
        if !parker.park_deadline(deadline) {
            return None;
        }
    }
}

/// Writes the files waiting, each once.
fn write_files(waiting: &Waiting) {
    let files = std::mem::take(&mut *waiting.lock().unwrap_or_else(|p| p.into_inner()));
    for write in files.into_values() {
        if let Err(e) = write.perform() {
            tracing::warn!("{e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::event::Event;
    use crate::render::Rendering;
    use crate::screen::{Screen, Sink};
    use p2p_shared::runtime;
    use p2p_shared::wire::new_id;

    /// A sink that hands every line to the test.
    struct Lines(mpsc::Sender<String>);

    impl Sink for Lines {
        fn line(&mut self, text: &str) -> std::io::Result<()> {
            let _ = self.0.send(text.to_owned());
            Ok(())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn waiting_for_a_job_ends_at_its_deadline_or_with_the_job() {
        let (jobs, queue) = async_channel::bounded(1);
        assert!(recv_until(&queue, Instant::now()).is_none(), "none came");
        let sender = std::thread::spawn(move || jobs.send_blocking(Job::Write).is_ok());
        let job = recv_until(&queue, Instant::now() + Duration::from_secs(60));
        assert!(matches!(job, Some(Ok(Job::Write))), "woken by the job");
        assert!(sender.join().unwrap());
        assert!(
            matches!(recv_until(&queue, Instant::now()), Some(Err(_))),
            "the queue closed: no job will come"
        );
    }

    /// A message sent again may have been stored before (and shown then): the place kept for
    /// it is filled only if the history did not have it, and given back otherwise.
    #[test]
    fn a_place_kept_for_a_message_is_filled_only_if_the_message_is_new() {
        let disk = Disk::start(History::in_memory().unwrap()).unwrap();
        let plain = Rendering::Text {
            color: false,
            interactive: false,
        };
        let (tx, lines) = mpsc::channel();
        let screen = Screen::start(plain, Box::new(Lines(tx)), None).unwrap();
        let bob: PeerName = "bob".parse().unwrap();
        let kept = Record {
            id: new_id(),
            peer: bob,
            sender: bob,
            text: "kept".into(),
            at: Utc::now(),
        };
        let place = || {
            let event = Event::Message {
                peer: bob,
                text: "kept".into(),
                at: kept.at,
            };
            Some((screen.reserve().unwrap(), Shown::from(event)))
        };
        runtime::block_on(async {
            assert_eq!(disk.record(kept.clone(), place()).await, Ok(true));
            assert_eq!(disk.record(kept.clone(), place()).await, Ok(false));
        });
        screen.push(Event::Bye);
        let next = || lines.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(next(), "bob: kept");
        assert_eq!(next(), "bye", "shown once; the second place was given back");
    }

    #[test]
    fn records_once_and_reads_back_in_order() {
        let disk = Disk::start(History::in_memory().unwrap()).unwrap();
        let bob: PeerName = "bob".parse().unwrap();
        let record = |text: &str| Record {
            id: new_id(),
            peer: bob,
            sender: bob,
            text: text.into(),
            at: Utc::now(),
        };
        runtime::block_on(async {
            let first = record("one");
            assert_eq!(disk.record(first.clone(), None).await, Ok(true));
            assert_eq!(
                disk.record(first, None).await,
                Ok(false),
                "a retry: stored once"
            );
            assert_eq!(disk.record(record("two"), None).await, Ok(true));
            let lines = disk.last(bob, 10).await.unwrap();
            let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(texts, ["one", "two"]);
        });
    }
}
