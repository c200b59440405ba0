//! `p2p-peer send NAME TEXT`: a script hands a message to the peer already running on the
//! data folder, through a Unix socket there (`DATA/control-NAME.sock`).
//!
//! The running peer listens on the socket in a task of its own. Only the folder's owner may
//! use it: the folder is 0700 and the socket 0600, and each caller's uid (`SO_PEERCRED`) must
//! be ours, or it is refused. One request per connection, one line, bounded
//! ([`MAX_REQUEST`]), read within [`READ_TIMEOUT`]: `p2p-control 1 send text|json PEER TEXT`
//! (docs/protocol.md, "The control socket"). The request becomes a `chat message PEER TEXT`
//! command on the command loop's bounded channel ([`Request`], at most [`QUEUE`] waiting), so
//! that it runs in turn with the user's commands and its outcomes carry its id; the screen
//! copies every event with that id to the connection (`Screen::tap`) until the command has
//! ended, then the connection gets `end ok` (every outcome was delivered or queued) or
//! `end failed`. The client prints the events and exits 0 only on `end ok`. With nobody
//! listening it says so and exits 1: it never starts a peer.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use futures::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, StreamExt};
use p2p_shared::runtime::{self, UnixListener, UnixStream};
use p2p_shared::PeerName;

use crate::error::PeerError;
use crate::event::{Event, Shown};
use crate::input::MAX_LINE_LEN;
use crate::render::Rendering;

/// The longest request line: a command line's worth of text and the words before it.
pub const MAX_REQUEST: usize = MAX_LINE_LEN + 128;
/// How long a caller may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How many requests may wait for the command loop; more are refused (`busy`).
pub const QUEUE: usize = 4;
/// How many events of one request may wait for its connection: a long text is cut into a
/// few messages, each with its outcome; a caller that does not read loses the rest.
const TAP_ROOM: usize = 64;
/// The first words of every request: the protocol and its version.
const MAGIC: &str = "p2p-control 1";

/// A message to send, from a caller of the socket, for the command loop.
pub struct Request {
    pub peer: PeerName,
    pub text: String,
    /// Where the screen copies the events that answer it.
    pub tap: async_channel::Sender<Shown>,
}

/// The socket of `name` in the data folder `dir`.
pub fn socket_path(dir: &Path, name: PeerName) -> PathBuf {
    dir.join(format!("control-{name}.sock"))
}

/// The socket being listened on: removed when dropped, as the peer exits, so that `send`
/// finds no socket rather than a dead one.
pub struct Listening {
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `path` (a stale socket of a peer that died is replaced: the caller holds the
/// history, so no other peer of this name runs) and hands requests to `requests`.
pub fn listen(
    path: PathBuf,
    requests: async_channel::Sender<Request>,
) -> std::io::Result<Listening> {
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    // The folder is 0700 already; this keeps the socket the owner's if the folder is not.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let listener = UnixListener::from(listener);
    runtime::spawn(async move {
        let mut incoming = listener.incoming();
        while let Some(stream) = incoming.next().await {
            if let Ok(stream) = stream {
                runtime::spawn(serve(stream, requests.clone()));
            }
        }
    });
    Ok(Listening { path })
}

/// The uid of the process at the other end of `stream`, if the kernel says.
fn caller_uid(stream: &UnixStream) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
    Some(cred.uid.as_raw())
}

/// Whether a caller with `uid` may use the socket: only our own user (not even root).
pub fn may_use(uid: Option<u32>, ours: u32) -> bool {
    uid == Some(ours)
}

/// A request: the output it wants, the peer, the text.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    json: bool,
    peer: PeerName,
    text: String,
}

/// What a request line asks, or why it cannot be run.
fn parse(line: &str) -> Result<Parsed, String> {
    let rest = line
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(" send "))
        .ok_or("not a p2p-control 1 send request")?;
    let (json, rest) = match rest.split_once(' ') {
        Some(("json", rest)) => (true, rest),
        Some(("text", rest)) => (false, rest),
        _ => return Err("the output must be text or json".into()),
    };
    let (peer, text) = rest.split_once(' ').ok_or("a peer and a text are needed")?;
    let peer = peer.parse().map_err(|e| format!("{peer:?}: {e}"))?;
    match text.trim() {
        "" => Err("the text is empty".into()),
        text => Ok(Parsed {
            json,
            peer,
            text: text.to_string(),
        }),
    }
}

/// Whether `event` is an outcome of a message, and a good one (delivered or queued).
fn outcome(event: &Event) -> Option<bool> {
    match event {
        Event::Delivered { .. } | Event::Queued { .. } => Some(true),
        Event::Error(_) | Event::QueuedDropped { .. } => Some(false),
        _ => None,
    }
}

/// Answers one connection: reads its request, checks who sent it, has the command loop run
/// it, and writes what answers it.
async fn serve(stream: UnixStream, requests: async_channel::Sender<Request>) {
    let mut writer = stream.clone();
    let uid = caller_uid(&stream);
    let mut line = String::new();
    let mut reader = futures::io::BufReader::new(stream.take(MAX_REQUEST as u64));
    let read = runtime::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await;
    let parsed = match read {
        Ok(Ok(_)) if line.ends_with('\n') => parse(line.trim_end_matches('\n')),
        Ok(Ok(_)) => Err("the request is too long or has no line end".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no request in time".into()),
    };
    // Refusals in the form asked for, when it can be read.
    let json = match &parsed {
        Ok(request) => request.json,
        Err(_) => line.starts_with(&format!("{MAGIC} send json ")),
    };
    let rendering = match json {
        true => Rendering::Json,
        false => Rendering::Text {
            color: false,
            interactive: false,
        },
    };
    let refuse = |why: String| {
        let error = Shown::from(Event::Error(PeerError::ControlRefused { why }));
        format!("{}\nend failed\n", rendering.render(&error))
    };
    let ours = rustix::process::getuid().as_raw();
    if !may_use(uid, ours) {
        tracing::warn!(
            ?uid,
            "control socket: refused a caller that is not our user"
        );
        let why = "only the owner of the data folder may send through its peer".to_string();
        let _ = writer.write_all(refuse(why).as_bytes()).await;
        return;
    }
    let Parsed { peer, text, .. } = match parsed {
        Ok(request) => request,
        Err(why) => {
            let _ = writer.write_all(refuse(why).as_bytes()).await;
            return;
        }
    };
    let (tap, events) = async_channel::bounded(TAP_ROOM);
    if requests.try_send(Request { peer, text, tap }).is_err() {
        let why = "the peer is busy with other requests; try again".to_string();
        let _ = writer.write_all(refuse(why).as_bytes()).await;
        return;
    }
    // Until the command has ended (the screen drops the tap): every outcome counts.
    let (mut outcomes, mut all_good) = (0, true);
    while let Ok(shown) = events.recv().await {
        if let Some(good) = outcome(&shown.event) {
            outcomes += 1;
            all_good &= good;
        }
        let line = format!("{}\n", rendering.render(&shown));
        if writer.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
    let end = match outcomes > 0 && all_good {
        true => "end ok\n",
        false => "end failed\n",
    };
    let _ = writer.write_all(end.as_bytes()).await;
}

/// `p2p-peer send`: hands `peer` and `text` to the peer running as `name` (or the only one
/// running) on `dir`, prints what it answers, and exits 0 only if the message was delivered
/// or queued.
pub fn send(
    dir: &Path,
    name: Option<PeerName>,
    json: bool,
    peer: PeerName,
    text: &str,
) -> ExitCode {
    let path = match name {
        Some(name) => socket_path(dir, name),
        None => match only_socket(dir) {
            Ok(path) => path,
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut stream = match StdStream::connect(&path) {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            eprintln!(
                "error: refused: {} is not yours; only the owner of the data folder may send \
                 through its peer",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!(
                "error: no peer is running there ({}: {e}); start one first (send never does)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let text = text.replace(['\n', '\r'], " ");
    // Said here, with the limit, rather than left to the peer's refusal of a long line.
    if text.len() > MAX_LINE_LEN {
        eprintln!(
            "error: the text is {} bytes; at most {MAX_LINE_LEN} go in one send (a typed line's \
             limit): send it in parts",
            text.len()
        );
        return ExitCode::FAILURE;
    }
    let output = if json { "json" } else { "text" };
    let request = format!("{MAGIC} send {output} {peer} {text}\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        eprintln!("error: cannot send to the peer: {e}");
        return ExitCode::FAILURE;
    }
    let mut ok = false;
    for line in BufReader::new(stream).lines() {
        match line.as_deref() {
            Ok("end ok") => ok = true,
            Ok("end failed") => ok = false,
            Ok(line) => println!("{line}"),
            Err(_) => break,
        }
    }
    match ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// The one control socket in `dir`, when no name was given.
fn only_socket(dir: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("no peer is running on {}: {e}", dir.display()))?;
    let sockets: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("control-") && n.ends_with(".sock"))
        })
        .take(2)
        .collect();
    match sockets.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("no peer is running on {}", dir.display())),
        _ => Err("several peers may run on this folder: say which with --name".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_uid_may_use_the_socket() {
        assert!(may_use(Some(1000), 1000));
        assert!(!may_use(Some(65534), 1000));
        assert!(!may_use(Some(0), 1000), "not even root: it is someone else");
        assert!(!may_use(None, 1000), "no credentials: refused");
    }

    #[test]
    fn requests_parse_and_bad_ones_are_refused() {
        let parsed = parse("p2p-control 1 send json bob hi there").unwrap();
        assert!(parsed.json);
        assert_eq!(parsed.peer.to_string(), "bob");
        assert_eq!(parsed.text, "hi there");
        assert!(!parse("p2p-control 1 send text bob hi").unwrap().json);
        assert!(parse("p2p-control 2 send text bob hi").is_err());
        assert!(parse("p2p-control 1 send text bob ").is_err());
        assert!(parse("p2p-control 1 send xml bob hi").is_err());
        assert!(parse("p2p-control 1 send text b@d hi").is_err());
        assert!(parse("").is_err());
    }

    /// The check the listener makes, on a real socket: the kernel's word on the caller is
    /// our uid, so it is let in; any other uid is not (`may_use`). The e2e test runs a
    /// caller as another user (living.rs).
    #[test]
    fn the_kernel_names_the_caller_and_our_own_uid_is_let_in() {
        let (ours, theirs) = StdStream::pair().unwrap();
        let theirs = UnixStream::from(theirs);
        let uid = caller_uid(&theirs);
        assert_eq!(uid, Some(rustix::process::getuid().as_raw()));
        assert!(may_use(uid, rustix::process::getuid().as_raw()));
        drop(ours);
    }
}
