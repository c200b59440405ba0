//! The load clients' side of a registry request: a peer's request, a lighter look at the reply.
//!
//! A load client is a peer as the registry sees it ([`Client`]): its first `register` is
//! signed and carries a key share, and opens a registry session; every later request goes in
//! that session (`p2p_shared::registry_session`), as a registered peer's do. Each
//! request is built as a peer's (a fresh id and time) and framed with `p2p_shared::frame`, so
//! the registry does all its work: reading, checking the session's tag or the signature,
//! deciding, authenticating or signing the reply. Two things differ from `transport`:
//!
//! - The connection comes from the client's own loopback address ([`source`]), as if each
//!   client were a host of its own; `transport` always connects from the default address.
//! - The reply is only checked for what matters to the load: that it is authentic in the
//!   session (or is a signed envelope, before there is one), answers this request's id, and has the
//!   expected kind. A peer also verifies a signed reply's signature (47 µs,
//!   docs/security.md) and builds every entry of a page; on this 2-core machine the clients
//!   share the cores with the registry, so that work would be measured as if it were the
//!   registry's. The floor's clients parse nothing either. What a peer pays for a reply shows
//!   in the crowd figures, which use `transport::request`.
//!
//! The exchange itself follows docs/protocol.md: one request frame, one reply frame, then
//! the registry closes first.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, ensure, Context};
use futures::io::AsyncReadExt;
use p2p_shared::handshake::registry::RegistryInitiator;
use p2p_shared::registry_session::PeerSession;
use p2p_shared::transport::{Origin, EXCHANGE_TIMEOUT};
use p2p_shared::wire::frame;
use p2p_shared::wire::stream::{read_frame, write_frame};
use p2p_shared::wire::{new_id, SignedEnvelope};
use p2p_shared::{Envelope, MessageId, Outcome, RegistryRequest, ReplyBody};
use serde::Deserialize;

use crate::source;

/// The part of a reply envelope the load looks at.
#[derive(Deserialize)]
struct ReplyView {
    body: BodyView,
}

#[derive(Deserialize)]
struct BodyView {
    re: Option<MessageId>,
    result: ResultView,
}

#[derive(Deserialize)]
struct ResultView {
    #[serde(rename = "type")]
    kind: String,
}

/// One load client: a peer's name and key, the loopback address it connects from, and its
/// registry session once its first `register` opened one.
pub struct Client {
    pub origin: Origin,
    pub from: Ipv4Addr,
    pub session: Option<PeerSession>,
}

impl Client {
    /// Sends `body` to the registry at `to`, in the session if there is one, and fails unless
    /// the reply is of `kind`; returns the reply's size on the wire, length prefix included.
    /// Without a session, a `register` opens one.
    pub async fn ask(
        &mut self,
        to: SocketAddr,
        body: RegistryRequest,
        kind: &str,
    ) -> anyhow::Result<usize> {
        if self.session.is_none() {
            return self.ask_signed(to, body, kind).await;
        }
        let id = new_id();
        let envelope = Envelope::new(id, self.origin.sender(self.from.into()), body);
        let session = self.session.as_mut().expect("checked above");
        let (counter, frame) = session.request(&envelope.encode());
        let reply = send(self.from, to, &frame).await?;
        let json = session
            .reply(counter, &reply)
            .context("the registry's reply is not authentic in the session")?;
        check(&json, id, kind)?;
        Ok(4 + reply.len())
    }

    /// A signed request, as a peer sends before it has a session: a `register` carries message
    /// 1 of a handshake, and message 2 in the reply completes the session.
    async fn ask_signed(
        &mut self,
        to: SocketAddr,
        body: RegistryRequest,
        kind: &str,
    ) -> anyhow::Result<usize> {
        let id = new_id();
        let (body, ours) = match body {
            RegistryRequest::Register { .. } => {
                let (ours, pattern, first) =
                    RegistryInitiator::start(&self.origin.identity, id, None);
                let register = RegistryRequest::Register {
                    pattern: Some(pattern),
                    handshake: Some(first),
                };
                (register, Some(ours))
            }
            other => (other, None),
        };
        let sender = self.origin.sender(self.from.into());
        let frame = Envelope::new(id, sender, body).sign(&self.origin.identity);
        let reply = send(self.from, to, &frame).await?;
        let Some((_, json)) = frame::parse_signed(&reply) else {
            bail!("the registry's reply is not a signed envelope");
        };
        check(json, id, kind)?;
        let on_the_wire = 4 + reply.len();
        let Some(ours) = ours else {
            return Ok(on_the_wire);
        };
        let reply = SignedEnvelope::<ReplyBody>::decode(&reply)?.envelope;
        let Outcome::Registered {
            handshake: Some(second),
            ..
        } = reply.body.result
        else {
            bail!("the registry opened no session");
        };
        let registry = reply.from.key;
        let (keys, _) = ours
            .finish(&second, &registry)
            .context("the registry's handshake does not finish the bench's")?;
        self.session = Some(PeerSession::new(self.origin.name, registry, keys));
        Ok(on_the_wire)
    }
}

/// Checks that the reply `json` answers request `id` with an outcome of `kind`.
fn check(json: &[u8], id: MessageId, kind: &str) -> anyhow::Result<()> {
    let view: ReplyView =
        serde_json::from_slice(json).context("the registry's reply is not an envelope")?;
    ensure!(
        view.body.re == Some(id),
        "the registry's reply answers {:?}, not {id}",
        view.body.re
    );
    ensure!(
        view.body.result.kind == kind,
        "the registry answered {} instead of {kind}: {}",
        view.body.result.kind,
        String::from_utf8_lossy(json)
    );
    Ok(())
}

/// One exchange, within the time a peer allows it.
async fn send(from: Ipv4Addr, to: SocketAddr, frame: &[u8]) -> anyhow::Result<Vec<u8>> {
    async_std::future::timeout(EXCHANGE_TIMEOUT, exchange(from, to, frame))
        .await
        .with_context(|| format!("the registry at {to} did not answer in time"))?
}

/// One request frame out, one reply frame back, then the registry's close.
async fn exchange(from: Ipv4Addr, to: SocketAddr, frame: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream =
        source::connect(from, to).with_context(|| format!("cannot connect to {to} from {from}"))?;
    write_frame(&mut stream, frame)
        .await
        .with_context(|| format!("cannot send to {to}"))?;
    let reply = read_frame(&mut stream)
        .await
        .with_context(|| format!("no reply from {to}"))?;
    let mut rest = [0u8; 1];
    let after = stream.read(&mut rest).await?;
    ensure!(after == 0, "{to} sent bytes after its reply");
    Ok(reply)
}
