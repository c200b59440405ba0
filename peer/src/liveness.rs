//! Noticing that a chat partner is gone.
//!
//! While chats are open, a task pings every partner each `--keepalive` interval (a ping is a
//! signed request; the reply must come signed by the partner's key). A partner that does not
//! answer, after retries for `--retry-for`, is gone: the chat ends and the user is told. A
//! failed chat message ends the chat the same way (in `session.rs`).

use std::time::Duration;

use futures::future::join_all;
use p2p_shared::message::new_id;
use p2p_shared::transport::{self, Origin, SendError};
use p2p_shared::{runtime, PeerInfo, Request};

use crate::broker::Broker;
use crate::output::{failure, show, Notice};
use crate::retry::{retry, Attempt};

/// Starts the checker; it runs as long as the program.
pub fn start(broker: Broker, origin: Origin, every: Duration, retry_for: Duration) {
    runtime::spawn(async move {
        loop {
            runtime::sleep(every).await;
            let chats = broker.list_connected().await;
            join_all(
                chats
                    .into_iter()
                    .map(|chat| check(&broker, &origin, chat, retry_for)),
            )
            .await;
        }
    });
}

async fn check(broker: &Broker, origin: &Origin, chat: PeerInfo, retry_for: Duration) {
    let ping = || async {
        match transport::request(chat.addr, origin, new_id(), Request::Ping).await {
            Ok(reply) if reply.from.key == chat.key => Attempt::Done(Ok(())),
            Ok(reply) => Attempt::Done(Err(format!(
                "{} answers with another key ({})",
                chat.addr,
                reply.from.key.fingerprint()
            ))),
            Err(e) if is_transient(&e) => Attempt::Again(failure(&e, &chat.addr.to_string())),
            Err(e) => Attempt::Done(Err(failure(&e, &chat.addr.to_string()))),
        }
    };
    let why = match retry(retry_for, ping).await {
        Ok(Ok(())) => return,
        Ok(Err(why)) | Err(why) => why,
    };
    if broker.forget_if(&chat.name, chat.key).await {
        show(Notice::PeerGone {
            peer: chat.name,
            why,
        });
    }
}

/// Failures that may pass: nobody answered, or the connection broke. A refusal is an answer.
pub fn is_transient(e: &SendError) -> bool {
    matches!(
        e,
        SendError::Unreachable { .. } | SendError::Timeout { .. } | SendError::Broken { .. }
    )
}
