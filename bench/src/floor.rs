//! The floor: the same work as p2p-chat with no protocol logic, on async-std directly.
//!
//! Every figure the bench reports is compared with what a bare program does on this machine
//! in the same run. The floor server runs as a process of its own (this executable in its
//! hidden `floor` mode), like the registry and the peers, and has what a peer has at rest: a
//! listener and a thread reading stdin. A floor exchange is a p2p-chat exchange without
//! framing, JSON, validation or state: the client connects, writes [`REQUEST_LEN`] bytes and
//! reads [`REPLY_LEN`] bytes, and the server closes first, as docs/protocol.md requires.
//!
//! The request's first four bytes may ask for a longer reply (a big-endian length, at most
//! [`MAX_REPLY_LEN`]): the bench uses that for a second floor that sends the registry's own
//! reply sizes, pages of peers included, to tell what the bytes of a page cost from what the
//! registry's logic costs.
//!
//! This is the one module of the workspace that names async-std itself instead of going
//! through `p2p_shared::runtime`: it measures the runtime, not the facade.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};

use crate::source;
use p2p_kit::Child;

/// Bytes a floor client sends: about the size of a chat message envelope.
pub const REQUEST_LEN: usize = 256;
/// Bytes a floor server answers with, unless the request asks for more.
pub const REPLY_LEN: usize = 256;
/// The longest reply a request may ask for: a frame's limit.
pub const MAX_REPLY_LEN: usize = 64 * 1024;
/// The bytes of every reply.
static REPLY: [u8; MAX_REPLY_LEN] = [b'r'; MAX_REPLY_LEN];
/// The listen backlog of the floor server, the same as the programs' (`runtime::listen`), so
/// that a burst of 256 clients does not wait for SYN retransmits behind the default of 128.
const LISTEN_BACKLOG: i32 = 1024;
/// How long one floor exchange may take before it counts as failed.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the floor server (this executable in its `floor` mode) on loopback `port`, holding
/// `hold` registrations' worth of bare data, without waiting for it to listen.
pub fn start(port: u16, hold: usize) -> anyhow::Result<Child> {
    let this = std::env::current_exe().context("cannot locate the p2p-bench executable")?;
    let args = vec![
        "floor".to_owned(),
        "--port".to_owned(),
        port.to_string(),
        "--hold".to_owned(),
        hold.to_string(),
    ];
    Ok(Child::spawn("floor server", &this, &args)?)
}

/// Starts the floor server on a free port and returns it once it listens, with its address.
pub fn start_listening(hold: usize) -> anyhow::Result<(Child, SocketAddr)> {
    let child = start(0, hold)?;
    let addr = child.listening_addr(EXCHANGE_TIMEOUT)?;
    Ok((child, addr))
}

/// The floor server process: listens on loopback `port` (0: any), prints `listening on ADDR`,
/// answers floor exchanges until its stdin ends, and holds `hold` names with addresses in
/// memory meanwhile (the bare data of a registry that many peers registered at, for the
/// memory floor).
pub fn serve_main(port: u16, hold: usize) -> anyhow::Result<()> {
    // Kept until the process ends, like a registry's registrations.
    let _held: BTreeMap<String, SocketAddr> = (0..hold)
        .map(|i| (format!("p{i:06}"), SocketAddr::from(([127, 0, 0, 1], 1))))
        .collect();
    let listener = listen(port)?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    // A peer has a stdin reader thread; so has the floor. Its end is the end of the floor.
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(|| {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            std::process::exit(0)
        })
        .context("cannot start the stdin reader")?;
    async_std::task::block_on(accept_forever(listener));
    Ok(())
}

fn listen(port: u16) -> anyhow::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from(std::net::TcpListener::from(socket)))
}

async fn accept_forever(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or a reset before accept: pause instead of spinning.
            async_std::task::sleep(Duration::from_millis(50)).await;
            continue;
        };
        async_std::task::spawn(async move {
            let _ = async_std::future::timeout(EXCHANGE_TIMEOUT, answer(stream)).await;
        });
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut request = [0u8; REQUEST_LEN];
    stream.read_exact(&mut request).await?;
    let asked = u32::from_be_bytes([request[0], request[1], request[2], request[3]]) as usize;
    let len = if asked == 0 {
        REPLY_LEN
    } else {
        asked.min(MAX_REPLY_LEN)
    };
    stream.write_all(&REPLY[..len]).await?;
    stream.shutdown(Shutdown::Write)
}

/// One floor exchange with the floor server at `to`, connecting from loopback address `from`:
/// connect, write, read, see the close.
pub async fn exchange(from: Ipv4Addr, to: SocketAddr) -> anyhow::Result<()> {
    exchange_into(from, to, &mut [0u8; REPLY_LEN]).await
}

/// A floor exchange whose reply is `reply_len` bytes (at most [`MAX_REPLY_LEN`]).
pub async fn exchange_sized(
    from: Ipv4Addr,
    to: SocketAddr,
    reply_len: usize,
) -> anyhow::Result<()> {
    exchange_into(from, to, &mut vec![0u8; reply_len.min(MAX_REPLY_LEN)]).await
}

/// A floor exchange that asks for as many bytes as `reply` holds and reads them into it.
async fn exchange_into(from: Ipv4Addr, to: SocketAddr, reply: &mut [u8]) -> anyhow::Result<()> {
    async_std::future::timeout(EXCHANGE_TIMEOUT, async {
        let mut stream = source::connect(from, to)?;
        let mut request = [b'q'; REQUEST_LEN];
        request[..4].copy_from_slice(&(reply.len() as u32).to_be_bytes());
        stream.write_all(&request).await?;
        stream.read_exact(reply).await?;
        let mut rest = [0u8; 1];
        match stream.read(&mut rest).await? {
            0 => Ok(()),
            _ => Err(std::io::Error::other("bytes after the reply")),
        }
    })
    .await
    .with_context(|| format!("the floor server at {to} did not answer in time"))?
    .with_context(|| format!("a floor exchange with {to} failed"))
}
