//! The one module that names the async runtime.
//!
//! p2p-chat runs on async-std, as its design card asks. async-std is discontinued upstream in
//! favour of smol (RUSTSEC-2025-0052, informational), so every runtime call the programs make
//! (spawning, sockets, timers, blocking on the main future) goes through here. Moving to smol
//! means rewriting this file only: smol has the same pieces (`smol::spawn`, `smol::net`,
//! `smol::Timer`, `smol::block_on`). See docs/decisions.md.
//!
//! Channels and I/O traits are not here on purpose: `async-channel` and `futures::io` work on
//! any runtime.
//!
//! Each program runs on one thread: [`block_on`] runs the program's main future and every
//! task spawned from it on the calling thread (async-std's `spawn_local`). On a 2-core machine
//! that halved the time a chat message takes from one peer's stdin to the other's stdout
//! (docs/benchmarks.md): with async-std's thread pool, each message crossed between threads
//! several times (command loop to broker to network and back), and each crossing is a wake-up of a
//! sleeping thread. The programs' work per message is microseconds, so one core is plenty.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use async_std::net::{TcpListener, TcpStream};
pub use async_std::os::unix::net::{UnixListener, UnixStream};
pub use async_std::task::JoinHandle;

/// How many connections the kernel may queue for a listener before our accept loop takes
/// them. The usual default (128) overflows under a burst of fresh-connection requests and
/// makes clients wait a second for a SYN retransmit.
const LISTEN_BACKLOG: i32 = 1024;

/// Runs the main future of a program to completion on this thread, together with every task
/// [`spawn`]ed on this thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    async_std::task::block_on(future)
}

/// Runs a task in the background, on the thread that calls this: it runs whenever that
/// thread is inside [`block_on`], so call it from the program's main future or its tasks.
/// (`Send` is still required, so that going back to a thread pool stays a one-line change.)
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    async_std::task::spawn_local(future)
}

/// Waits for `duration`.
pub async fn sleep(duration: Duration) {
    async_std::task::sleep(duration).await
}

/// The future did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Runs `future` for at most `duration`, counted from this call.
///
/// Not an `async fn` on purpose: an `async fn` keeps its argument and the future it awaits
/// side by side, so each timeout doubled the size of the future it wrapped, and the nested
/// timeouts of one exchange made a connection task of about 38 KB, which was copied several
/// times on every spawn (two thirds of the registry's instructions under load).
pub fn timeout<F: Future>(
    duration: Duration,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    use futures::FutureExt as _;
    async_std::prelude::FutureExt::timeout(future, duration).map(|r| r.map_err(|_| Elapsed))
}

/// Opens a listening socket with a deep backlog and `SO_REUSEADDR` (so a restarted registry
/// can bind its port again while old connections linger in TIME_WAIT).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from(std::net::TcpListener::from(socket)))
}

/// Why listening on `addr` failed, as a user can act on it: a port in use gets the way out.
pub fn listen_failure(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: the port is in use (another program listens there); \
             choose another with --port, or --port 0 for any free one"
        ),
        io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: this machine has no such address; check --bind")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// An outgoing TCP connection.
pub type Connection = async_io::Async<std::net::TcpStream>;

/// Opens a TCP connection to `to`, from the local IP `from` if one is given, or from the one
/// the route to `to` picks. A program listening on one address of a host with several gives
/// that address, so that a connection comes from where it can be reached.
pub async fn connect(from: Option<IpAddr>, to: SocketAddr) -> io::Result<Connection> {
    let Some(from) = from else {
        return Connection::connect(to).await;
    };
    // async-io connects only from the address the route picks: bind first, then wait for
    // the connection the way async-io's own `connect` does (with rustix, as it does).
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let here = |e: rustix::io::Errno| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("from {from}: {e}"))
    };
    let family = match to {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket = rustix::net::socket_with(family, SocketType::STREAM, flags, None).map_err(here)?;
    rustix::net::bind(&socket, &SocketAddr::new(from, 0)).map_err(here)?;
    match rustix::net::connect(&socket, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(here(e)),
    }
    let stream = Connection::new_nonblocking(std::net::TcpStream::from(socket))?;
    // Writable once the handshake ends, either way; the socket's error says which.
    stream.writable().await?;
    match stream.get_ref().take_error()? {
        None => Ok(stream),
        Some(e) => Err(e),
    }
}

/// Resolves `host:port` (a name or an IP literal) to one address, IPv4 first: peers listen
/// on IPv4 by default, and `localhost` often resolves to `::1` first.
pub async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    use async_std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().await?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")))
}
