//! Noticing that a chat partner is away.
//!
//! While chats are open, a task checks every partner each `--keepalive` interval with a
//! sealed `keepalive` in the chat: only the partner holding the chat's keys can acknowledge
//! it, so a new process at the partner's address (the same key, restarted) cannot keep a
//! dead chat alive; its signed `unknown_session` makes the chat away at once. A check that
//! gets no answer, after retries for `--retry-for`, is missed; a partner that misses
//! [`MISSES_TO_END`] checks in a row is away (`state/conversations.rs`): the chat's keys go,
//! and what is typed to it is kept. One missed check never does it: a partner whose slots a
//! flood holds for a moment, or a network that drops a few packets, is not away. `busy` is
//! an answer from a live partner that is only overloaded: the check counts as answered.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use p2p_shared::identity::PublicKey;
use p2p_shared::transport::SendError;
use p2p_shared::wire::frame::ChatId;
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, Outcome, PeerInfo, PeerName};

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
            let Some(chats) = broker.call(|state, _, _| state.chats()).await else {
                break;
            };
            misses.keep_only(&chats);
            let broker_ref = &broker;
            let checks = chats.into_iter().map(|chat| async move {
                let result = check(broker_ref, &chat, retry_for).await;
                (chat, result)
            });
            for (chat, checked) in join_all(checks).await {
                let miss = match checked {
                    Checked::Answered => misses.record(&chat, Ok(())),
                    Checked::Missed(miss) => misses.record(&chat, Err(miss)),
                    Checked::Lost(miss) => Some(miss),
                };
                let Some(Miss { why, chat: id }) = miss else {
                    continue;
                };
                // The chat the last check was sealed in: one opened since is checked anew.
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
    /// The partner answered that it no longer knows the chat (it restarted): away at once.
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
                why: format!("{whom} no longer knows the chat (it restarted)"),
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

/// Checks missed in a row, per partner (by name and key: a new chat with the same name
/// starts from none).
#[derive(Default)]
struct Misses(HashMap<(PeerName, PublicKey), u32>);

impl Misses {
    /// Records one check of `chat`; the last miss, once it missed [`MISSES_TO_END`] in a row.
    fn record<M>(&mut self, chat: &PeerInfo, result: Result<(), M>) -> Option<M> {
        let who = (chat.name, chat.key);
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

    /// Forgets partners no longer chatted with.
    fn keep_only(&mut self, chats: &[PeerInfo]) {
        self.0
            .retain(|(name, key), _| chats.iter().any(|c| c.name == *name && c.key == *key));
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
    use p2p_shared::identity::Identity;

    fn partner(name: &str) -> PeerInfo {
        PeerInfo {
            name: name.parse().unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            key: Identity::generate().public(),
        }
    }

    #[test]
    fn a_chat_ends_only_after_checks_missed_in_a_row() {
        let mut misses = Misses::default();
        let (bob, carol) = (partner("bob"), partner("carol"));
        let missed = || Err("no answer".to_string());
        let answered = || Ok::<(), String>(());
        assert_eq!(misses.record(&bob, missed()), None, "one miss is not gone");
        assert_eq!(
            misses.record(&bob, answered()),
            None,
            "an answer (ok or busy)"
        );
        assert_eq!(
            misses.record(&bob, missed()),
            None,
            "counts from none again"
        );
        assert_eq!(misses.record(&carol, missed()), None, "each partner apart");
        assert_eq!(misses.record(&bob, missed()), Some("no answer".into()));
        // A partner no longer chatted with is forgotten: a new chat starts from none.
        misses.keep_only(std::slice::from_ref(&bob));
        assert_eq!(misses.record(&carol, missed()), None);
        let new_bob = PeerInfo {
            key: Identity::generate().public(),
            ..bob.clone()
        };
        assert_eq!(misses.record(&new_bob, missed()), None);
    }
}
