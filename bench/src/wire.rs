//! The load clients' side of a registry request: a peer's request, a lighter look at the reply.
//!
//! Each request is built and signed exactly as a peer's (`Envelope::sign`, fresh id and time)
//! and framed with `p2p_shared::frame`, so the registry does all its work: reading, checking
//! the signature, deciding, signing the reply. Two things differ from `transport::request`:
//!
//! - The connection comes from the client's own loopback address ([`source`]), as if each
//!   client were a host of its own; `transport` always connects from the default address.
//! - The reply is only checked for what matters to the load: that it is a signed envelope,
//!   answers this request's id, and has the expected kind. A peer also verifies the reply's
//!   signature (47 µs, docs/security.md) and builds every entry of a page; on this 2-core
//!   machine the clients share the cores with the registry, so that work would be measured
//!   as if it were the registry's. The floor's clients parse nothing either. What a peer pays
//!   for a reply shows in the crowd figures, which use `transport::request`.
//!
//! The exchange itself follows docs/protocol.md: one request frame, one reply frame, then
//! the registry closes first.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, ensure, Context};
use futures::io::AsyncReadExt;
use p2p_shared::frame::{read_frame, write_frame};
use p2p_shared::message::{new_id, SIGNED};
use p2p_shared::transport::{Origin, EXCHANGE_TIMEOUT};
use p2p_shared::{Envelope, MessageId, Request};
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

/// Sends `body` from `origin`, connecting from loopback address `from`, to the registry at
/// `to`; fails unless the reply is of `kind`.
pub async fn ask(
    from: Ipv4Addr,
    to: SocketAddr,
    origin: &Origin,
    body: Request,
    kind: &str,
) -> anyhow::Result<()> {
    let id = new_id();
    let frame = Envelope::new(id, origin.sender(from.into()), body).sign(&origin.identity);
    let reply = async_std::future::timeout(EXCHANGE_TIMEOUT, exchange(from, to, &frame))
        .await
        .with_context(|| format!("the registry at {to} did not answer in time"))??;
    // A signed frame is `'S' | signature (64 bytes) | JSON`.
    let json = match reply.split_first() {
        Some((&SIGNED, rest)) if rest.len() > 64 => &rest[64..],
        _ => bail!("the registry's reply is not a signed envelope"),
    };
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
