//! A minimal HTTP/1.0 client for etcd's JSON gateway: one POST per connection, on a store
//! thread (blocking I/O, never on the registry's event loop).
//!
//! HTTP/1.0 so that etcd answers with a `Content-Length` or closes the connection after the
//! body, never with chunks: the reply is the bytes up to the end of the stream. Every step
//! has a deadline and every reply a size bound, so a stuck or hostile endpoint costs a
//! thread a few seconds at most. Several endpoints (the members of one etcd cluster) are
//! tried in turn, starting with the last one that answered.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for a connection to one endpoint.
const CONNECT: Duration = Duration::from_secs(1);
/// How long one read or write may stall.
const IO: Duration = Duration::from_secs(3);
/// The largest reply read: a page of the peer list is 256 registrations of under 200 bytes,
/// in base64, well under this.
const MAX_REPLY: u64 = 4 << 20;

/// The endpoints of one etcd cluster, and which one answered last.
pub struct Endpoints {
    hosts: Vec<String>,
    current: usize,
}

/// Why a request got no usable answer.
#[derive(Debug)]
pub enum HttpError {
    /// No endpoint could be reached or answered in time.
    Unreachable(String),
    /// An endpoint answered, with an error status or something that is not HTTP.
    Failed(String),
}

impl Endpoints {
    /// `hosts` as `HOST:PORT`, at least one.
    pub fn new(hosts: Vec<String>) -> Endpoints {
        Endpoints { hosts, current: 0 }
    }

    /// POSTs `body` to `path` at the first endpoint that answers; the reply's body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, HttpError> {
        let mut why = String::new();
        for attempt in 0..self.hosts.len() {
            let at = (self.current + attempt) % self.hosts.len();
            match post_to(&self.hosts[at], path, body) {
                Ok(reply) => {
                    self.current = at;
                    return reply;
                }
                Err(e) => {
                    why = format!("{}: {e}", self.hosts[at]);
                }
            }
        }
        Err(HttpError::Unreachable(why))
    }
}

/// One POST to one endpoint: `Err` if it could not be reached or read (try the next one),
/// `Ok(Err)` if it answered but not with success.
fn post_to(host: &str, path: &str, body: &[u8]) -> std::io::Result<Result<Vec<u8>, HttpError>> {
    let addrs: Vec<SocketAddr> = host.to_socket_addrs()?.collect();
    let addr = addrs.first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address for this host")
    })?;
    let mut stream = TcpStream::connect_timeout(addr, CONNECT)?;
    stream.set_read_timeout(Some(IO))?;
    stream.set_write_timeout(Some(IO))?;
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reply = Vec::new();
    stream.take(MAX_REPLY + 1).read_to_end(&mut reply)?;
    if reply.len() as u64 > MAX_REPLY {
        return Ok(Err(HttpError::Failed("the reply is too large".into())));
    }
    Ok(parse(&reply))
}

/// The body of an HTTP reply, if its status is 200.
fn parse(reply: &[u8]) -> Result<Vec<u8>, HttpError> {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| HttpError::Failed("the reply has no end of headers".into()))?;
    let head = String::from_utf8_lossy(&reply[..end]);
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    let body = reply[end + 4..].to_vec();
    match code {
        "200" => Ok(body),
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(HttpError::Failed(format!("{status}: {text}")))
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Unreachable(why) => write!(f, "unreachable ({why})"),
            HttpError::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_its_body_when_its_status_is_200() {
        let ok = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(ok, b"{}");
        let refused = parse(b"HTTP/1.0 400 Bad Request\r\n\r\n{\"error\":\"x\"}");
        assert!(matches!(refused, Err(HttpError::Failed(why)) if why.contains("400")));
        assert!(matches!(parse(b"garbage"), Err(HttpError::Failed(_))));
    }

    #[test]
    fn no_endpoint_answering_is_unreachable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut endpoints = Endpoints::new(vec![format!("127.0.0.1:{port}")]);
        let result = endpoints.post("/v3/kv/range", b"{}");
        assert!(matches!(result, Err(HttpError::Unreachable(_))));
    }
}
