//! Noticing that a chat partner is gone.
//!
//! While chats are open, a task pings every partner each `--keepalive` interval (a ping is a
//! signed request; the reply must come signed by the partner's key). A check that gets no
//! answer from the partner's key, after retries for `--retry-for`, is missed; a partner that
//! misses [`MISSES_TO_END`] checks in a row is gone: the chat ends and the user is told. One
//! missed check never ends a chat: a partner whose slots a flood holds for a moment, or a
//! network that drops a few packets, is not gone. A `busy` refusal signed by the partner is
//! an answer from a live partner that is only overloaded: the check counts as answered. A
//! failed chat message still ends the chat at once (`chat_commands.rs`): the user asked for
//! something that could not be done.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use p2p_shared::identity::PublicKey;
use p2p_shared::transport::{self, Origin, SendError};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, PeerInfo, PeerName, PeerRequest};

use crate::broker::Broker;
use crate::error::Failure;
use crate::event::Event;
use crate::retry::{retry, Attempt};
use crate::screen::Screen;

/// How many checks in a row a partner may miss before its chat ends.
pub const MISSES_TO_END: u32 = 2;

/// Starts the checker; it runs as long as the broker does.
pub fn start(broker: Broker, screen: Screen, origin: Origin, every: Duration, retry_for: Duration) {
    runtime::spawn(async move {
        let mut misses = Misses::default();
        loop {
            runtime::sleep(every).await;
            let Some(chats) = broker.call(|state, _, _| state.chats()).await else {
                break;
            };
            misses.keep_only(&chats);
            let origin = &origin;
            let checks = chats.into_iter().map(|chat| async move {
                let result = check(origin, &chat, retry_for).await;
                (chat, result)
            });
            for (chat, result) in join_all(checks).await {
                let Some(why) = misses.record(&chat, result) else {
                    continue;
                };
                let (peer, key) = (chat.name, chat.key);
                let away = broker.call(move |state, _, fx| state.away_if(&peer, &key, fx));
                if away.await == Some(true) {
                    screen.push_state(Event::PeerAway { peer, why });
                }
            }
        }
    });
}

/// One check: `Ok` if the partner answered (`ok`, or `busy`) with its key; otherwise why not.
async fn check(origin: &Origin, chat: &PeerInfo, retry_for: Duration) -> Result<(), String> {
    let whom = chat.addr.to_string();
    let ping = || async {
        match transport::request(chat.addr, origin, new_id(), PeerRequest::Ping).await {
            Ok(reply) if reply.from.key == chat.key => Attempt::Done(Ok(())),
            Ok(reply) => Attempt::Done(Err(format!(
                "{} answers with another key ({})",
                chat.addr,
                reply.from.key.fingerprint()
            ))),
            Err(SendError::Refused {
                code: ErrorCode::Busy,
                key,
                ..
            }) if key == chat.key => Attempt::Done(Ok(())),
            Err(e) if is_transient(&e) || e.code() == Some(ErrorCode::Busy) => {
                Attempt::Again(Failure::of(&e, &whom).text)
            }
            Err(e) => Attempt::Done(Err(Failure::of(&e, &whom).text)),
        }
    };
    match retry(retry_for, ping).await {
        Ok(result) => result,
        Err(why) => Err(why),
    }
}

/// Checks missed in a row, per partner (by name and key: a new chat with the same name
/// starts from none).
#[derive(Default)]
struct Misses(HashMap<(PeerName, PublicKey), u32>);

impl Misses {
    /// Records one check of `chat`; the reason to end its chat, once it missed
    /// [`MISSES_TO_END`] in a row.
    fn record(&mut self, chat: &PeerInfo, result: Result<(), String>) -> Option<String> {
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
        assert_eq!(misses.record(&bob, missed()), None, "one miss is not gone");
        assert_eq!(misses.record(&bob, Ok(())), None, "an answer (ok or busy)");
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
