//! A minimal HTTP/1.1 client for etcd's JSON gateway, on a store thread (blocking I/O,
//! never on the registry's event loop): one connection kept open per thread, one request
//! at a time on it.
//!
//! A new connection per request cost more than the request itself (docs/benchmarks.md,
//! issue 16). So the connection stays open between requests, and a reply is read to its end
//! as HTTP/1.1 marks it: a `Content-Length`, chunks (etcd's gateway chunks replies past a few
//! kilobytes), or the end of the stream. A connection that fails, or that the server closes
//! or asks to close, is dropped and the next request opens another; a request that finds a
//! kept connection closed under it, before any byte of the reply, is sent again once on a
//! new one (etcd closed an idle connection, it did not read the request). Every step has a
//! deadline and every reply a size bound, so a stuck or hostile endpoint costs a thread a
//! few seconds at most. Several endpoints (the members of one etcd cluster) are tried in
//! turn, starting with the last one that answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for a connection to one endpoint.
const CONNECT: Duration = Duration::from_secs(1);
/// How long one read or write may stall.
const IO: Duration = Duration::from_secs(3);
/// The largest reply body read: a page of the peer list is 256 registrations of under 200
/// bytes, in base64, well under this.
const MAX_REPLY: u64 = 4 << 20;
/// The longest status line, header line or chunk-size line read, and the most header lines.
const MAX_LINE: u64 = 8 << 10;
const MAX_HEADERS: usize = 64;

/// The endpoints of one etcd cluster, which one answered last, and the connection to it.
pub struct Endpoints {
    hosts: Vec<String>,
    current: usize,
    open: Option<BufReader<TcpStream>>,
}

/// Why a request got no usable answer.
#[derive(Debug)]
pub enum HttpError {
    /// No endpoint could be reached or answered in time.
    Unreachable(String),
    /// An endpoint answered, with an error status or something that is not HTTP.
    Failed(String),
}

/// Why one exchange on one connection failed.
enum Broken {
    /// Nothing of the reply arrived: the request may not have been read.
    BeforeReply(std::io::Error),
    /// The connection failed in the middle of a reply, or it is not HTTP.
    During(std::io::Error),
}

impl Endpoints {
    /// `hosts` as `HOST:PORT`, at least one.
    pub fn new(hosts: Vec<String>) -> Endpoints {
        Endpoints {
            hosts,
            current: 0,
            open: None,
        }
    }

    /// POSTs `body` to `path` at the first endpoint that answers; the reply's body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, HttpError> {
        let mut why = String::new();
        for attempt in 0..self.hosts.len() {
            let at = (self.current + attempt) % self.hosts.len();
            if at != self.current {
                self.open = None;
            }
            match self.post_to(at, path, body) {
                Ok(reply) => {
                    self.current = at;
                    return reply;
                }
                Err(e) => {
                    self.open = None;
                    why = format!("{}: {e}", self.hosts[at]);
                }
            }
        }
        Err(HttpError::Unreachable(why))
    }

    /// One POST to the endpoint `at`, on the kept connection if there is one: `Err` if it
    /// could not be reached or read (try the next one), `Ok(Err)` if it answered but not
    /// with success.
    fn post_to(
        &mut self,
        at: usize,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<Result<Vec<u8>, HttpError>> {
        let host = &self.hosts[at];
        let request = request(host, path, body);
        if let Some(mut kept) = self.open.take() {
            match exchange(&mut kept, &request) {
                Ok((reply, keep)) => {
                    self.open = keep.then_some(kept);
                    return Ok(reply);
                }
                // Closed while idle: once more on a new connection.
                Err(Broken::BeforeReply(_)) => {}
                Err(Broken::During(e)) => return Err(e),
            }
        }
        let mut fresh = connect(host)?;
        match exchange(&mut fresh, &request) {
            Ok((reply, keep)) => {
                self.open = keep.then_some(fresh);
                Ok(reply)
            }
            Err(Broken::BeforeReply(e) | Broken::During(e)) => Err(e),
        }
    }
}

fn connect(host: &str) -> std::io::Result<BufReader<TcpStream>> {
    let addrs: Vec<SocketAddr> = host.to_socket_addrs()?.collect();
    let addr = addrs.first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address for this host")
    })?;
    let stream = TcpStream::connect_timeout(addr, CONNECT)?;
    stream.set_read_timeout(Some(IO))?;
    stream.set_write_timeout(Some(IO))?;
    // Requests are one small write each, and the reply is awaited: no Nagle delay.
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

fn request(host: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `request` and reads its reply: the reply, and whether the connection may be kept.
fn exchange(
    conn: &mut BufReader<TcpStream>,
    request: &[u8],
) -> Result<(Result<Vec<u8>, HttpError>, bool), Broken> {
    conn.get_mut()
        .write_all(request)
        .map_err(Broken::BeforeReply)?;
    // The first byte of the reply tells a connection closed while idle from one broken
    // in the middle of a reply.
    // A timeout is no sign of that: etcd may be at work on the request, not to be sent twice.
    let first = conn.fill_buf().map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Broken::During(e),
        _ => Broken::BeforeReply(e),
    })?;
    if first.is_empty() {
        return Err(Broken::BeforeReply(eof()));
    }
    let (status, body, keep) = read_reply(conn).map_err(Broken::During)?;
    Ok((answer(&status, body), keep))
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the connection closed")
}

fn invalid(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned())
}

/// One line, without its CRLF, at most [`MAX_LINE`] long.
fn line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = Vec::new();
    reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(match line.len() as u64 >= MAX_LINE {
            true => invalid("a line of the reply is too long"),
            false => eof(),
        });
    }
    let line = String::from_utf8(line).map_err(|_| invalid("a reply line is not text"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads one HTTP/1.x reply: its status line, its body, and whether the connection may be
/// kept for the next request.
fn read_reply(reader: &mut impl BufRead) -> std::io::Result<(String, Vec<u8>, bool)> {
    let status = line(reader)?;
    let mut keep = status.starts_with("HTTP/1.1 ");
    let (mut length, mut chunked) = (None, false);
    for n in 0.. {
        let header = line(reader)?;
        if header.is_empty() {
            break;
        }
        if n >= MAX_HEADERS {
            return Err(invalid("the reply has too many headers"));
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("a reply header is not NAME: VALUE"));
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: u64 = value.parse().map_err(|_| invalid("a bad Content-Length"))?;
                length = Some(n);
            }
            "transfer-encoding" => chunked = value.ends_with("chunked"),
            "connection" if value == "close" => keep = false,
            _ => {}
        }
    }
    let body = match (chunked, length) {
        (true, _) => read_chunks(reader)?,
        (false, Some(n)) if n > MAX_REPLY => return Err(invalid("the reply is too large")),
        (false, Some(n)) => {
            let mut body = vec![0; n as usize];
            reader.read_exact(&mut body)?;
            body
        }
        // No length: the body ends with the connection.
        (false, None) => {
            keep = false;
            let mut body = Vec::new();
            reader.take(MAX_REPLY + 1).read_to_end(&mut body)?;
            if body.len() as u64 > MAX_REPLY {
                return Err(invalid("the reply is too large"));
            }
            body
        }
    };
    Ok((status, body, keep))
}

/// A chunked body, at most [`MAX_REPLY`] in all.
fn read_chunks(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size = line(reader)?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| invalid("a bad chunk size"))?;
        if body.len() as u64 + size > MAX_REPLY {
            return Err(invalid("the reply is too large"));
        }
        if size == 0 {
            // Trailers, if any, up to the empty line.
            for _ in 0..MAX_HEADERS {
                if line(reader)?.is_empty() {
                    return Ok(body);
                }
            }
            return Err(invalid("the reply has too many trailers"));
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        reader.read_exact(&mut body[start..])?;
        if !line(reader)?.is_empty() {
            return Err(invalid("a chunk does not end with CRLF"));
        }
    }
}

/// The body of a reply, if its status is 200.
fn answer(status: &str, body: Vec<u8>) -> Result<Vec<u8>, HttpError> {
    match status.split_whitespace().nth(1).unwrap_or_default() {
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

    fn read(reply: &[u8]) -> std::io::Result<(String, Vec<u8>, bool)> {
        read_reply(&mut std::io::Cursor::new(reply))
    }

    #[test]
    fn a_reply_ends_as_http_1_1_marks_it() {
        let (status, body, keep) =
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}trailing").unwrap();
        assert_eq!(
            (status.as_str(), &body[..], keep),
            ("HTTP/1.1 200 OK", &b"{}"[..], true)
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        let (_, body, keep) = read(chunked).unwrap();
        assert_eq!((&body[..], keep), (&b"{\"a\":1}"[..], true));
        // No length: to the end of the stream, and the connection is not kept.
        let (_, body, keep) = read(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap();
        assert_eq!((&body[..], keep), (&b"{}"[..], false));
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(!read(close).unwrap().2);
    }

    #[test]
    fn a_reply_too_large_cut_short_or_not_http_is_refused() {
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_REPLY + 1
        );
        assert!(read(huge.as_bytes()).is_err());
        let chunk = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_REPLY + 1
        );
        assert!(read(chunk.as_bytes()).is_err());
        assert!(read(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(read(b"garbage").is_err());
        let long = vec![b'x'; MAX_LINE as usize + 10];
        assert!(read(&long).is_err());
        let refused = answer("HTTP/1.1 400 Bad Request", b"{\"error\":\"x\"}".to_vec());
        assert!(matches!(refused, Err(HttpError::Failed(why)) if why.contains("400")));
    }

    #[test]
    fn a_kept_connection_carries_many_requests_and_one_closed_is_replaced() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        // A server that answers two requests on its first connection, then closes it, and
        // one on the next: three requests, two connections.
        let server = std::thread::spawn(move || {
            let mut connections = 0;
            for answers in [2, 1] {
                let (stream, _) = listener.accept().unwrap();
                connections += 1;
                let mut reader = BufReader::new(stream);
                for n in 0..answers {
                    let (mut length, mut header) = (0, String::new());
                    while {
                        header.clear();
                        reader.read_line(&mut header).unwrap();
                        header != "\r\n"
                    } {
                        if let Some(v) = header.strip_prefix("Content-Length: ") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let reply = format!("{{\"n\":{n}}}");
                    let head =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", reply.len());
                    reader
                        .get_mut()
                        .write_all((head + &reply).as_bytes())
                        .unwrap();
                }
            }
            connections
        });
        let mut endpoints = Endpoints::new(vec![host]);
        for want in ["{\"n\":0}", "{\"n\":1}", "{\"n\":0}"] {
            let reply = endpoints.post("/v3/kv/range", b"{}").unwrap();
            assert_eq!(reply, want.as_bytes());
        }
        assert_eq!(server.join().unwrap(), 2);
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
