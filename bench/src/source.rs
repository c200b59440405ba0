//! Loopback source addresses for the load clients: many clients look like many hosts.
//!
//! Both programs bound what one IP address and one network (a /24) may hold at once: 16
//! connections per address and 128 per network, and new names per network and per hour (see
//! docs/security.md, "Availability"). 256 clients on one machine would all come from
//! 127.0.0.1 and be refused as a crowd from one host, which 256 real peers are not. So
//! client `i` connects from loopback address [`for_client`]`(i)`, shared by 16 clients, each
//! such host in a /24 of its own; every address in 127.0.0.0/8 reaches this machine and
//! nothing else. The floor's clients connect the same way, so both see the same connection
//! pattern.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use async_std::net::TcpStream;

/// Clients per source address: the programs' connections per address at once.
const CLIENTS_PER_ADDRESS: usize = 16;

/// The loopback address client (or crowd member) `i` connects from: 127.x.y.1, one host per
/// /24, never in 127.0.0.0/24, so the programs' own traffic is not counted with it.
pub fn for_client(i: usize) -> Ipv4Addr {
    let host = i / CLIENTS_PER_ADDRESS;
    // At most 250 * 250 networks, far more than any plan uses; skip .0 and .255.
    Ipv4Addr::new(127, (host / 250 % 250) as u8 + 1, (host % 250) as u8 + 1, 1)
}

/// Opens a TCP connection to `to` from `from` (any port). The connect is started without
/// waiting; the first write waits for it to complete, as async-std's writes wait for any
/// socket that is not ready.
pub fn connect(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.set_nonblocking(true)?;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    socket.set_nodelay(true)?;
    Ok(TcpStream::from(std::net::TcpStream::from(socket)))
}
