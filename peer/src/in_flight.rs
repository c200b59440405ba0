//! The chat messages in flight: the tasks sending them, bounded in number.
//!
//! `chat message` does not wait for its message's acknowledgement (`message_commands.rs`):
//! a task sends it, and the command loop goes on with the next line. So a burst of piped
//! messages has several on the wire at once, instead of one round trip each. Two rules keep
//! that safe:
//!
//! - at most [`IN_FLIGHT_MAX`] at once: one more waits for the oldest to end, which holds up
//!   the command loop (and so the input) instead of growing without bound;
//! - every command other than `chat message` first waits for all of them
//!   ([`InFlight::settle`]), so that `disconnect`, `exit` and the rest come after the
//!   messages typed before them, as a script expects.

use std::collections::VecDeque;

use futures::FutureExt;
use p2p_shared::runtime::JoinHandle;

use crate::state::order::IN_FLIGHT_MAX;

/// The tasks of the messages in flight, oldest first.
#[derive(Default)]
pub struct InFlight {
    tasks: VecDeque<JoinHandle<()>>,
}

impl InFlight {
    /// Waits, while [`IN_FLIGHT_MAX`] are in flight, for the oldest ones to end: then one
    /// more may go.
    pub async fn make_room(&mut self) {
        self.forget_ended();
        while self.tasks.len() >= IN_FLIGHT_MAX {
            if let Some(oldest) = self.tasks.pop_front() {
                oldest.await;
            }
        }
    }

    /// Adds the task of one more message, sent once [`InFlight::make_room`] has returned.
    pub fn add(&mut self, task: JoinHandle<()>) {
        self.tasks.push_back(task);
    }

    /// Waits until every message in flight has ended (its outcome shown).
    pub async fn settle(&mut self) {
        while let Some(task) = self.tasks.pop_front() {
            task.await;
        }
    }

    /// Drops the tasks that have ended already, so that the count is of those in flight.
    fn forget_ended(&mut self) {
        // Polled once each, without waiting: an ended task gives its `()` at once.
        self.tasks.retain_mut(|task| task.now_or_never().is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use p2p_shared::runtime;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A message task that ends when told to, counting in `ended`.
    fn task(ended: &Arc<AtomicUsize>) -> (oneshot::Sender<()>, JoinHandle<()>) {
        let (end, told) = oneshot::channel::<()>();
        let ended = Arc::clone(ended);
        let handle = runtime::spawn(async move {
            let _ = told.await;
            ended.fetch_add(1, Ordering::SeqCst);
        });
        (end, handle)
    }

    #[test]
    fn one_more_than_the_limit_waits_for_the_oldest_and_settle_waits_for_all() {
        runtime::block_on(async {
            let ended = Arc::new(AtomicUsize::new(0));
            let mut in_flight = InFlight::default();
            let mut ends = VecDeque::new();
            for _ in 0..IN_FLIGHT_MAX {
                in_flight.make_room().await;
                let (end, handle) = task(&ended);
                ends.push_back(end);
                in_flight.add(handle);
            }
            assert_eq!(in_flight.tasks.len(), IN_FLIGHT_MAX);
            assert_eq!(ended.load(Ordering::SeqCst), 0);
            // One more goes only once the oldest has ended.
            ends.pop_front().unwrap().send(()).unwrap();
            in_flight.make_room().await;
            assert_eq!(ended.load(Ordering::SeqCst), 1);
            let (end, handle) = task(&ended);
            ends.push_back(end);
            in_flight.add(handle);
            assert_eq!(ended.load(Ordering::SeqCst), 1);
            assert_eq!(in_flight.tasks.len(), IN_FLIGHT_MAX);
            for end in ends {
                end.send(()).unwrap();
            }
            in_flight.settle().await;
            assert_eq!(ended.load(Ordering::SeqCst), IN_FLIGHT_MAX + 1);
            assert!(in_flight.tasks.is_empty());
        });
    }
}
