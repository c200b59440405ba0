//! This peer's own commands: `status` and `contacts`, and leaving (the end of every session,
//! whether by `exit`, the end of input or a signal).

use futures::future::{join, join3, join_all};
use p2p_shared::transport;
use p2p_shared::wire::new_id;
use p2p_shared::{Answer, PeerRequest};

use crate::command_loop::CommandLoop;
use crate::event::{ChatState, Event, Status};
use crate::state::{self, Leaving};

impl CommandLoop {
    pub(crate) async fn status(&mut self) {
        let reachable = self.registry.ping().await.is_ok();
        let other_key = match reachable {
            true => None,
            false => self.registry.other_key().await,
        };
        let snapshot = self.broker.call(|state, cx, _| state.snapshot(cx.now));
        let Some(snapshot) = snapshot.await else {
            return;
        };
        self.show(Event::Status(Status {
            name: self.origin.name,
            addr: self.listening,
            registry: self.registry.addr(),
            registry_reachable: reachable,
            registry_other_key: other_key,
            registry_key_given: self.registry.key_given(),
            registered: self.registered,
            chats: snapshot.chats,
            away: snapshot.away,
            incoming: snapshot.incoming,
            outgoing: snapshot.outgoing,
        }))
        .await;
    }

    /// `contacts`: the pins and chats from the broker, and from the history when each was
    /// last seen and whether a chat there ended.
    pub(crate) async fn contacts(&mut self) {
        let Some(mut contacts) = self.broker.call(|state, _, _| state.contacts()).await else {
            return;
        };
        for contact in &mut contacts {
            let Ok(last) = self.disk.last(contact.name, 1).await else {
                continue;
            };
            contact.last_seen = last.first().map(|line| line.at);
            if contact.chat == ChatState::None && contact.last_seen.is_some() {
                contact.chat = ChatState::Ended;
            }
        }
        self.show(Event::Contacts { contacts }).await;
    }

    /// Ends every chat, tells everyone waiting for our answer that we left, withdraws our
    /// own requests and unregisters, all at once: each is one exchange, so a peer that does
    /// not answer holds the exit up for one exchange's time at most (protocol.md).
    pub(crate) async fn leave(&mut self) {
        let leaving = self.broker.call(|state, _, fx| state.leave(fx)).await;
        let Leaving {
            goodbyes,
            unanswered,
            withdraw,
        } = leaving.unwrap_or_default();
        let origin = &self.origin;
        let goodbyes = goodbyes
            .into_iter()
            .map(|g| transport::exchange(g.from, g.addr, g.frame));
        let notices = unanswered.iter().map(|r| {
            let body = state::unanswered(r, Answer::Left);
            transport::request(r.addr, origin, new_id(), body)
        });
        let withdrawals = withdraw.iter().map(|w| {
            let body = PeerRequest::ChatWithdraw { request: w.request };
            transport::request(w.addr, origin, new_id(), body)
        });
        let (registered, registry) = (self.registered, &mut self.registry);
        let unregister = async move {
            if registered {
                let _ = registry.unregister().await;
            }
        };
        join(
            join3(join_all(goodbyes), join_all(notices), join_all(withdrawals)),
            unregister,
        )
        .await;
        // Pins made at the last moment are on disk before we go.
        self.disk.written().await;
        // Not a command's result that waits for room: a peer whose stdout nobody reads must
        // still exit (its last lines are given a moment, SCREEN_GRACE in lib.rs). It answers
        // `exit`, if that is why we leave.
        self.screen.push_state(self.answering(Event::Bye));
    }
}
