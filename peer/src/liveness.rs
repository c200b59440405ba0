//! Noticing that a chat partner is gone.
//!
//! While chats are open, a task pings every partner each `--keepalive` interval (a ping is a
//! signed request; the reply must come signed by the partner's key). A partner that does not
//! answer, after retries for `--retry-for`, is gone: the chat ends and the user is told. A
//! `busy` refusal is an answer from a live partner that is only overloaded: it is retried,
//! and never ends a chat by itself. A failed chat message ends the chat the same way
//! (`chat_commands.rs`).

use std::time::Duration;

use futures::future::join_all;
use p2p_shared::transport::{self, Origin, SendError};
use p2p_shared::wire::new_id;
use p2p_shared::{runtime, ErrorCode, PeerInfo, PeerRequest};

use crate::broker::Broker;
use crate::error::Failure;
use crate::event::Event;
use crate::retry::{retry, Attempt};
use crate::screen::Screen;

/// Starts the checker; it runs as long as the broker does.
pub fn start(broker: Broker, screen: Screen, origin: Origin, every: Duration, retry_for: Duration) {
    runtime::spawn(async move {
        loop {
            runtime::sleep(every).await;
            let Some(chats) = broker.call(|state, _, _| state.chats()).await else {
                break;
            };
            let checks = chats
                .into_iter()
                .map(|chat| check(&broker, &screen, &origin, chat, retry_for));
            join_all(checks).await;
        }
    });
}

async fn check(
    broker: &Broker,
    screen: &Screen,
    origin: &Origin,
    chat: PeerInfo,
    retry_for: Duration,
) {
    let whom = chat.addr.to_string();
    let ping = || async {
        match transport::request(chat.addr, origin, new_id(), PeerRequest::Ping).await {
            Ok(reply) if reply.from.key == chat.key => Attempt::Done(Ok(())),
            Ok(reply) => Attempt::Done(Err(format!(
                "{} answers with another key ({})",
                chat.addr,
                reply.from.key.fingerprint()
            ))),
            Err(e) if is_transient(&e) || e.code() == Some(ErrorCode::Busy) => {
                Attempt::Again(Failure::of(&e, &whom).text)
            }
            Err(e) => Attempt::Done(Err(Failure::of(&e, &whom).text)),
        }
    };
    let why = match retry(retry_for, ping).await {
        Ok(Ok(())) => return,
        Ok(Err(why)) | Err(why) => why,
    };
    let (peer, key) = (chat.name, chat.key);
    let ended = broker.call(move |state, _, fx| state.forget_if(&peer, &key, fx));
    if ended.await == Some(true) {
        screen.push_state(Event::PeerGone { peer, why });
    }
}

/// Failures that may pass: nobody answered, or the connection broke. A refusal is an answer.
pub fn is_transient(e: &SendError) -> bool {
    matches!(
        e,
        SendError::Unreachable { .. } | SendError::Timeout { .. } | SendError::Broken { .. }
    )
}
