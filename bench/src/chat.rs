//! Chat message latency between real peer processes, on a fresh connection per message.
//!
//! Two ways, as issue 6 asks:
//!
//! - **As a user sees it.** Peers `alice` and `bob` run as processes with piped stdin and
//!   stdout, and have a chat open. Each sample is the time from writing `chat message bob TEXT`
//!   to alice's stdin until `alice: TEXT` is read from bob's stdout. The time until alice
//!   prints `delivered to bob` is kept too: that is when the sender's user learns the message
//!   arrived. The next message is typed only after both lines, so messages never overlap.
//! - **As the protocol sees it.** The bench itself is the chat partner, speaking the protocol
//!   through `p2p_shared` as a peer does: it listens with `transport::serve`, sends bob a signed
//!   `chat_request` with its half of the key agreement, types `yes` into bob's stdin, receives
//!   bob's signed `chat_answer`, finishes the Noise handshake (`seal::ChatKeys`), and then times
//!   each message from sealing the `chat_message` to opening bob's sealed `ok`
//!   (`transport::exchange`). Bob is a real peer, so this is what one peer's `chat message`
//!   costs on the wire, without the two stdin/stdout hops of the user's view. Bob
//!   acknowledges only after printing the line, so the line is out when the reply comes.
//!
//! The bench's partner runs on async-std's own threads, not through `p2p_shared::runtime`
//! (whose tasks run only while the thread that spawned them is inside `block_on`), because
//! the bench waits for bob's answer on a plain channel.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use p2p_shared::handshake::{HandshakeMessage, Initiator, Recipient};
use p2p_shared::identity::{Identity, PublicKey};
use p2p_shared::seal::ChatKeys;
use p2p_shared::transport::{self, Origin, Service};
use p2p_shared::wire::new_id;
use p2p_shared::{
    runtime, Answer, Envelope, MessageId, Outcome, PeerRequest, ReplyBody, SealedRequest,
};

use crate::plan::Plan;
use crate::programs::{Programs, Registry};
use crate::stats::Summary;
use p2p_kit::Child;

/// The chat figures.
pub struct Chat {
    /// Typed at the sender until printed by the receiver.
    pub typed: Summary,
    /// Typed at the sender until the sender prints `delivered`.
    pub delivered: Summary,
    /// `chat_message` sent until the `ok` reply.
    pub protocol: Summary,
}

/// Runs both chat measurements with peers that use `registry`.
pub fn measure(programs: &Programs, registry: &Registry, plan: &Plan) -> anyhow::Result<Chat> {
    // No checks on chat partners while measuring: the bench's own side of its chat with bob
    // (below) takes bob's answer and nothing else, and would answer bob's sealed
    // `keepalive` `unknown_session`, which ends the chat at bob (a check every 15 s by
    // default fell inside the measurement on a slow run).
    let quiet = ["--keepalive", "1h"];
    let (mut alice, _) = programs.listening_peer("alice", registry, &quiet)?;
    let (mut bob, bob_addr) = programs.listening_peer("bob", registry, &quiet)?;
    open_typed_chat(&mut alice, &mut bob, bob_addr, plan)?;
    let (typed, delivered) = typed_messages(&mut alice, &bob, plan)?;
    let protocol = protocol_messages(&mut bob, bob_addr, plan)?;
    Ok(Chat {
        typed,
        delivered,
        protocol,
    })
}

/// The text of message number `n`: the size of a short chat line.
fn text(n: usize) -> String {
    format!("message {n}: the quick brown fox jumps over the lazy dog")
}

fn open_typed_chat(
    alice: &mut Child,
    bob: &mut Child,
    bob_addr: SocketAddr,
    plan: &Plan,
) -> anyhow::Result<()> {
    let wait = plan.line_timeout;
    alice.send(&format!(
        "chat request {} {}",
        bob_addr.ip(),
        bob_addr.port()
    ))?;
    bob.expect("announcing alice's request", wait, |l| {
        l.starts_with("chat request from alice ")
    })?;
    bob.send("yes")?;
    alice.expect("saying bob accepted", wait, |l| {
        l.starts_with("chat accepted by bob ")
    })?;
    Ok(())
}

fn typed_messages(
    alice: &mut Child,
    bob: &Child,
    plan: &Plan,
) -> anyhow::Result<(Summary, Summary)> {
    let wait = plan.line_timeout;
    let stop = Instant::now() + plan.limit;
    let mut typed = Vec::with_capacity(plan.messages);
    let mut delivered = Vec::with_capacity(plan.messages);
    for n in 0..plan.warmup_messages + plan.messages {
        if Instant::now() > stop {
            break;
        }
        let text = text(n);
        let shown = format!("alice: {text}");
        let sent = alice.send(&format!("chat message bob {text}"))?;
        let printed = bob.expect("with alice's message", wait, |l| l == shown)?;
        let acked = alice.expect("saying it was delivered", wait, |l| l == "delivered to bob")?;
        if n >= plan.warmup_messages {
            typed.push(printed.at - sent);
            delivered.push(acked.at - sent);
        }
    }
    let none = || anyhow::anyhow!("no chat message was measured within {:?}", plan.limit);
    Ok((
        Summary::of(typed).ok_or_else(none)?,
        Summary::of(delivered).ok_or_else(none)?,
    ))
}

/// Bob's answer to the bench's chat request.
struct Answered {
    request: MessageId,
    answer: Answer,
    key: PublicKey,
    handshake: Option<HandshakeMessage>,
}

/// The bench's side of a chat with bob: it only has to take bob's answer to its request.
#[derive(Clone)]
struct Partner {
    answers: mpsc::Sender<Answered>,
}

impl Service for Partner {
    type Request = PeerRequest;

    async fn handle(
        &self,
        request: Envelope<PeerRequest>,
        _remote: SocketAddr,
        _local: SocketAddr,
    ) -> Outcome {
        match request.body {
            PeerRequest::ChatAnswer {
                request: id,
                answer,
                handshake,
            } => {
                let _ = self.answers.send(Answered {
                    request: id,
                    answer,
                    key: request.from.key,
                    handshake,
                });
                Outcome::Ok
            }
            PeerRequest::Ping => Outcome::Ok,
            PeerRequest::ChatRequest { .. }
            | PeerRequest::ChatWithdraw { .. }
            | PeerRequest::Exchange { .. }
            | PeerRequest::Broadcast { .. } => Outcome::error(
                p2p_shared::ErrorCode::UnsupportedRequest,
                "this is the bench",
            ),
        }
    }
}

fn protocol_messages(
    bob: &mut Child,
    bob_addr: SocketAddr,
    plan: &Plan,
) -> anyhow::Result<Summary> {
    let listener = runtime::listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("the bench cannot listen on loopback")?;
    let origin = Origin {
        name: "bench".parse()?,
        ip: Ipv4Addr::UNSPECIFIED.into(),
        port: listener.local_addr()?.port(),
        identity: Arc::new(Identity::generate()),
    };
    let (answers_tx, answers) = mpsc::channel();
    let partner = Partner {
        answers: answers_tx,
    };
    let serving = async_std::task::spawn(transport::serve(
        listener,
        origin.clone(),
        partner,
        transport::Limits::default(),
        futures::future::pending(),
    ));
    let measured = open_protocol_chat(bob, bob_addr, &origin, &answers, plan.line_timeout)
        .and_then(|keys| time_protocol_messages(bob, bob_addr, &origin, &keys, plan));
    runtime::block_on(serving.cancel());
    measured
}

/// Asks bob for a chat, has him accept it, and agrees the session keys, as a requesting peer.
fn open_protocol_chat(
    bob: &mut Child,
    bob_addr: SocketAddr,
    origin: &Origin,
    answers: &mpsc::Receiver<Answered>,
    wait: Duration,
) -> anyhow::Result<ChatKeys> {
    let id = new_id();
    let (ours, pattern, handshake) =
        Initiator::start(&origin.identity, id, Recipient::Unknown(None));
    let body = PeerRequest::ChatRequest { pattern, handshake };
    let reply = runtime::block_on(transport::request(bob_addr, origin, id, body))
        .context("bob refused the bench's chat request")?;
    ensure!(
        matches!(reply.outcome, Outcome::Pending { .. }),
        "bob answered the chat request with {:?}",
        reply.outcome
    );
    bob.expect("announcing the bench's request", wait, |l| {
        l.starts_with("chat request from bench ")
    })?;
    bob.send("yes")?;
    let answered = answers
        .recv_timeout(wait)
        .context("bob did not answer the bench's chat request")?;
    let (Answer::Accepted, Some(theirs)) = (answered.answer, answered.handshake) else {
        bail!("bob answered {:?} without a handshake", answered.answer);
    };
    ensure!(answered.request == id, "bob answered another request");
    ours.finish(&theirs, &answered.key)
        .context("bob's handshake does not finish the bench's")
}

fn time_protocol_messages(
    bob: &Child,
    bob_addr: SocketAddr,
    origin: &Origin,
    keys: &ChatKeys,
    plan: &Plan,
) -> anyhow::Result<Summary> {
    let stop = Instant::now() + plan.limit;
    let total = plan.warmup_messages + plan.messages;
    // Inside a session the sender is known by its keys, so `from.addr` names no address.
    let from = origin.sender(Ipv4Addr::UNSPECIFIED.into());
    let mut latencies = Vec::with_capacity(plan.messages);
    let mut last = None;
    runtime::block_on(async {
        for n in 0..total {
            if Instant::now() > stop {
                break;
            }
            let counter = n as u64;
            let sent = Instant::now();
            let body = SealedRequest::ChatMessage {
                text: text(n),
                seq: counter + 1,
                again: false,
            };
            let plaintext = Envelope::new(new_id(), from.clone(), body).encode();
            let reply = transport::exchange(None, bob_addr, keys.seal(counter, &plaintext))
                .await
                .with_context(|| format!("chat message {n} to bob failed"))?;
            let reply = keys
                .open_ack(counter, &reply)
                .with_context(|| format!("bob's reply to chat message {n} does not open"))?;
            let outcome = Envelope::<ReplyBody>::decode(&reply)?.body.result;
            let took = sent.elapsed();
            if outcome != Outcome::Ok {
                bail!("bob answered chat message {n} with {outcome:?}");
            }
            if n >= plan.warmup_messages {
                latencies.push(took);
            }
            last = Some(n);
        }
        anyhow::Ok(())
    })?;
    // Bob's stdout is read all along; its last line shows the messages really were printed.
    if let Some(n) = last {
        let shown = format!("bench: {}", text(n));
        bob.expect("with the bench's last message", plan.line_timeout, |l| {
            l == shown
        })?;
    }
    Summary::of(latencies).context("no protocol chat message was measured within the time limit")
}
