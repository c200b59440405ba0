//! Noticing that a chat partner is away.
//!
//! While chats are open, a task checks every partner each `--keepalive` interval with a
//! sealed `keepalive` in the chat: only the partner holding the chat's keys can acknowledge
//! it, so a new process at the partner's address (the same key, restarted) cannot keep a
//! dead chat alive; its signed `unknown_session` makes the chat away at once. A check that
//! gets no answer, after retries for `--retry-for`, is missed; a chat that misses
//! [`MISSES_TO_END`] checks in a row (counted per chat: one opened again starts from none)
//! is away (`state/conversations.rs`): the chat's keys go,
//! and what is typed to it is kept. One missed check never does it: a partner whose slots a
//! flood holds for a moment, or a network that drops a few packets, is not away. `busy` is
//! an answer from a live partner that is only overloaded: the check counts as answered.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use p2p_shared::transport::SendError;
use p2p_shared::wire::frame::ChatId;
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerInfo};

use crate::broker::Broker;
use crate::error::Failure;
use crate::event::Event;
use crate::in_chat::{self, Body, Sent};
use crate::retry::{retry, Attempt};
use crate::screen::Screen;

/// How many checks in a row a partner may miss before its chat ends.
pub const MISSES_TO_END: u32 = 2;

/// Starts the checker; it runs as long as the broker does.
pub fn start(broker: Broker, screen: Screen, every: Duration, retry_for: Duration) {
    runtime::spawn(async move {
        let mut misses = Misses::default();
        loop {
            runtime::sleep(every).await;
            let Some(chats) = broker.call(|state, _, _| state.chats_by_id()).await else {
                break;
            };
            misses.keep_only(chats.iter().map(|(_, id)| *id));
            let broker_ref = &broker;
            let checks = chats.into_iter().map(|(chat, id)| async move {
                let result = check(broker_ref, &chat, retry_for).await;
                (chat, id, result)
            });
            for (chat, id, checked) in join_all(checks).await {
                // Counted in the chat each check was sealed in: a chat that opened again
                // meanwhile starts from none.
                let miss = match checked {
                    Checked::Answered => misses.record(id, Ok(())),
                    Checked::Missed(miss) => misses.record(miss.chat, Err(miss)),
                    Checked::Lost(miss) => Some(miss),
                };
                let Some(Miss { why, chat: id }) = miss else {
                    continue;
                };
                let peer = chat.name;
                let away = broker.call(move |state, _, fx| state.away_if(&peer, id, fx));
                if away.await == Some(true) {
                    screen.push_state(Event::PeerAway { peer, why });
                }
            }
        }
    });
}

/// What one check found.
enum Checked {
    /// The partner answered in the chat (`ok`, or `busy`).
    Answered,
    /// Nobody answered, or not with the chat's keys: one miss.
    Missed(Miss),
    /// The partner answered that it no longer knows the chat (it restarted, or ended it
    /// meanwhile): away at once.
    Lost(Miss),
}

/// A check that failed: why, and the chat it was sealed in, the only one it can make away.
struct Miss {
    why: String,
    chat: ChatId,
}

/// One check: a sealed `keepalive` in the chat, which only the partner holding the chat's
/// keys can acknowledge; its signed `unknown_session` (naming our frame) says it lost them.
async fn check(broker: &Broker, chat: &PeerInfo, retry_for: Duration) -> Checked {
    let (peer, whom) = (chat.name, format!("{} ({})", chat.name, chat.addr));
    let ping = || async {
        match in_chat::send(broker, peer, new_id(), Body::Keepalive).await {
            // The chat ended meanwhile: nothing to check (a chat opened since is checked
            // on its own).
            Sent::NoChat | Sent::ChatEnded => Attempt::Done(Checked::Answered),
            Sent::Answered(Some(Outcome::Ok), _) => Attempt::Done(Checked::Answered),
            Sent::Answered(
                Some(Outcome::Error {
                    code: ErrorCode::Busy,
                    ..
                }),
                _,
            ) => Attempt::Done(Checked::Answered),
            Sent::Answered(
                Some(Outcome::Error {
                    code: ErrorCode::UnknownSession,
                    ..
                }),
                route,
            ) => Attempt::Done(Checked::Lost(Miss {
                why: format!(
                    "{whom} no longer knows the chat (it restarted, or ended it meanwhile)"
                ),
                chat: route.chat,
            })),
            Sent::Answered(_, route) => Attempt::Done(Checked::Missed(Miss {
                why: format!("{whom} did not answer in the chat"),
                chat: route.chat,
            })),
            Sent::Failed(e, route) => {
                let why = Failure::of(&e, &whom).text;
                let miss = Miss {
                    why,
                    chat: route.chat,
                };
                match is_transient(&e) {
                    true => Attempt::Again(miss),
                    false => Attempt::Done(Checked::Missed(miss)),
                }
            }
        }
    };
    match retry(retry_for, ping).await {
        Ok(checked) => checked,
        Err(miss) => Checked::Missed(miss),
    }
}

/// Checks missed in a row, per chat (by its id: a chat opened again, even with the same
/// partner, starts from none).
#[derive(Default)]
struct Misses(HashMap<ChatId, u32>);

impl Misses {
    /// Records one check in chat `who`; the last miss, once it missed [`MISSES_TO_END`] in a
    /// row.
    fn record<M>(&mut self, who: ChatId, result: Result<(), M>) -> Option<M> {
        match result {
            Ok(()) => {
                self.0.remove(&who);
                None
            }
            Err(why) => {
                let missed = self.0.entry(who).or_default();
                *missed += 1;
                if *missed < MISSES_TO_END {
                    return None;
                }
                self.0.remove(&who);
                Some(why)
            }
        }
    }

    /// Forgets chats no longer open.
    fn keep_only(&mut self, open: impl Iterator<Item = ChatId>) {
        let open: Vec<ChatId> = open.collect();
        self.0.retain(|id, _| open.contains(id));
    }
}

/// Failures that may pass: nobody answered, or the connection broke. A refusal is an answer.
pub fn is_transient(e: &SendError) -> bool {
    matches!(
        e,
        SendError::Unreachable { .. } | SendError::Timeout { .. } | SendError::Broken { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_ends_only_after_checks_missed_in_a_row_in_that_chat() {
        let mut misses = Misses::default();
        let (bob, carol, bob_again): (ChatId, ChatId, ChatId) = ([1; 16], [2; 16], [3; 16]);
        let missed = || Err("no answer".to_string());
        let answered = || Ok::<(), String>(());
        assert_eq!(misses.record(bob, missed()), None, "one miss is not gone");
        assert_eq!(
            misses.record(bob, answered()),
            None,
            "an answer (ok or busy)"
        );
        assert_eq!(misses.record(bob, missed()), None, "counts from none again");
        assert_eq!(misses.record(carol, missed()), None, "each chat apart");
        // The chat with bob opens again (new keys, the same bob) after one miss: its first
        // miss is its first.
        assert_eq!(misses.record(bob_again, missed()), None);
        assert_eq!(misses.record(bob, missed()), Some("no answer".into()));
        // A chat no longer open is forgotten.
        misses.keep_only([bob_again].into_iter());
        assert_eq!(misses.record(carol, missed()), None, "carol's count went");
        assert_eq!(misses.record(bob_again, missed()), Some("no answer".into()));
    }
}
