//! The relay floor of issue 19's regimes: the least a program must do to carry a typed line
//! to another program's stdout, the way p2p-chat does it.
//!
//! A relay is this executable in its hidden `relay` mode. It listens on loopback, reads
//! lines from stdin on a thread of its own (as a peer does), and sends each
//! `chat message NAME TEXT` to its partner on a fresh TCP connection, as a peer sends a chat
//! message: connect, write `SEQ SENDER TEXT\n`, read the partner's short answer, see it close.
//! The partner shows `SENDER: TEXT` on stdout and answers `ok`; the sender then prints
//! `delivered to NAME`. No framing, cryptography, JSON, history or state beyond the order.
//!
//! Up to [`WINDOW`] messages are in flight at once, each on its own connection (the
//! pipelining issue 19 asks of the peer, at the peer's own limit of connections from one
//! address), so the receiver puts them back in the typed order by their sequence numbers
//! (`reorder.rs`) and answers each once it is shown. A relay has one partner, set by the
//! stdin line `partner ADDR` (answered `partner is ADDR`).
//!
//! Like the peer, it runs its tasks on one thread (`p2p_shared::runtime`). Unlike the peer,
//! it writes stdout from that thread: the least work, and the bench reads the pipe all the
//! time, so the writes never wait. Its stdin ending ends it.
//!
//! With `--essentials DIR` it also does what no design of the peer can leave out
//! (`relay_essentials.rs`): each message and its answer travel as sealed JSON envelopes,
//! and each message is stored on a disk thread (a database in DIR) before it is answered,
//! and again by its sender before it is reported delivered.

use std::cell::Cell;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::channel::{mpsc, oneshot};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::{SinkExt, StreamExt};
use p2p_shared::runtime::{self, TcpStream};
use p2p_shared::wire::MessageId;

use crate::relay_essentials::{self, Sealer, Store};
use crate::reorder::Reorder;

/// Messages in flight at once: as many connections as a peer accepts from one address.
pub const WINDOW: usize = 16;
/// How far ahead of the next message to show a sequence number may be.
const ROOM: u64 = 1_024;
/// The longest message line a relay reads.
const MAX_LINE: u64 = 64 * 1024;
/// How long one message's connection may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Typed lines waiting for the relay, as a peer's stdin queue.
const TYPED_QUEUE: usize = 16;

/// Messages waiting to be shown, each with the answer its connection waits for.
type Waiting = Reorder<(String, oneshot::Sender<()>)>;

/// How messages travel: in the clear and forgotten, or with the peer's essentials.
enum Carry {
    Bare,
    Essentials(Box<Essentials>),
}

/// What a relay in `--essentials` mode seals with and stores in.
struct Essentials {
    sealer: Sealer,
    store: Store,
}

/// A typed message on its way, as its relay carries it.
enum Outgoing<'a> {
    /// `SEQ SENDER TEXT\n`, answered `ok\n`.
    Clear(Vec<u8>),
    /// A sealed frame, answered by a sealed `ok` naming `id`, then stored.
    Sealed {
        essentials: &'a Essentials,
        id: MessageId,
        frame: Vec<u8>,
    },
}

/// A message read at the receiver: its number, its line to show, and how it is answered.
struct Received<'a> {
    seq: u64,
    shown: String,
    answer: Answer<'a>,
}

/// How a message taken is answered: `ok\n`, or (with the essentials) stored, then a sealed
/// `ok`.
enum Answer<'a> {
    Clear,
    Sealed {
        essentials: &'a Essentials,
        opened: relay_essentials::Opened,
    },
}

impl Carry {
    /// Message `seq` from `me`, as it goes on the wire.
    fn outgoing(&self, seq: u64, me: &str, text: &str) -> Outgoing<'_> {
        match self {
            Carry::Bare => Outgoing::Clear(format!("{seq} {me} {text}\n").into_bytes()),
            Carry::Essentials(essentials) => {
                let (id, frame) = essentials.sealer.seal_message(seq, text);
                Outgoing::Sealed {
                    essentials,
                    id,
                    frame,
                }
            }
        }
    }
}

/// The relay process: named `name` (the SENDER of what it sends), listening on loopback
/// `port` (0: any), with the essentials when given their data directory.
pub fn serve_main(name: String, port: u16, essentials: Option<PathBuf>) -> anyhow::Result<()> {
    let listener = runtime::listen(SocketAddr::from(([127, 0, 0, 1], port)))
        .context("the relay cannot listen on loopback")?;
    let addr = listener.local_addr()?;
    let carry = Arc::new(match essentials {
        None => Carry::Bare,
        Some(dir) => Carry::Essentials(Box::new(Essentials {
            sealer: Sealer::new(&name, addr)?,
            store: Store::open(&dir)?,
        })),
    });
    say(&format!("listening on {addr}"));
    let (mut typed_tx, typed) = mpsc::channel::<String>(TYPED_QUEUE);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if futures::executor::block_on(typed_tx.send(line)).is_err() {
                    break;
                }
            }
            // The bench closed our stdin (or went away): the end of the relay.
            std::process::exit(0)
        })
        .context("cannot start the stdin reader")?;
    let waiting = Arc::new(Mutex::new(Waiting::new(ROOM)));
    let receiving = Arc::clone(&carry);
    runtime::block_on(async move {
        runtime::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors or a reset before accept: pause instead of spinning.
                    runtime::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (waiting, carry) = (Arc::clone(&waiting), Arc::clone(&receiving));
                runtime::spawn(async move {
                    let exchange = receive(stream, waiting, &carry);
                    let _ = runtime::timeout(EXCHANGE_TIMEOUT, exchange).await;
                });
            }
        });
        send_typed(&name, typed, &carry).await;
    });
    Ok(())
}

/// Sends each typed message, [`WINDOW`] at a time, numbered in the order typed.
async fn send_typed(me: &str, typed: mpsc::Receiver<String>, carry: &Carry) {
    let partner = Cell::new(None);
    let next_seq = Cell::new(0u64);
    typed
        .for_each_concurrent(WINDOW, |line| {
            // Run in the order the lines come, before any of them is sent.
            let job = match parse_typed(&line) {
                Typed::Partner(addr) => {
                    partner.set(Some(addr));
                    say(&format!("partner is {addr}"));
                    None
                }
                Typed::Message { to, text } => {
                    let seq = next_seq.get();
                    next_seq.set(seq + 1);
                    let outgoing = carry.outgoing(seq, me, text);
                    Some((to.to_owned(), text.to_owned(), outgoing))
                }
                Typed::Other => {
                    say(&format!("unknown line: {line}"));
                    None
                }
            };
            let partner = partner.get();
            async move {
                let Some((to, text, outgoing)) = job else {
                    return;
                };
                let outcome = match partner {
                    Some(addr) => send_one(addr, &outgoing).await,
                    None => Err("no partner yet".to_owned()),
                };
                let outcome = match (outcome, &outgoing) {
                    (Ok(()), Outgoing::Sealed { essentials, id, .. }) => {
                        match essentials.store.store(*id, &to, me, &text).await {
                            true => Ok(()),
                            false => Err("not stored".to_owned()),
                        }
                    }
                    (outcome, _) => outcome,
                };
                match outcome {
                    Ok(()) => say(&format!("delivered to {to}")),
                    Err(why) => say(&format!("not delivered to {to}: {why}")),
                }
            }
        })
        .await;
}

/// A typed line, as the relay understands it.
#[derive(Debug, PartialEq, Eq)]
enum Typed<'a> {
    Partner(SocketAddr),
    Message { to: &'a str, text: &'a str },
    Other,
}

fn parse_typed(line: &str) -> Typed<'_> {
    if let Some(addr) = line.strip_prefix("partner ") {
        return addr.parse().map_or(Typed::Other, Typed::Partner);
    }
    let Some(rest) = line.strip_prefix("chat message ") else {
        return Typed::Other;
    };
    match rest.split_once(' ') {
        Some((to, text)) => Typed::Message { to, text },
        None => Typed::Other,
    }
}

/// One message on a fresh connection: `Ok` once the partner answered `ok` (with the
/// essentials: a sealed `ok` for the message's id).
async fn send_one(to: SocketAddr, outgoing: &Outgoing<'_>) -> Result<(), String> {
    let exchange = async {
        let mut stream = runtime::connect(None, to).await?;
        stream.get_ref().set_nodelay(true)?;
        let mut answer = Vec::new();
        match outgoing {
            Outgoing::Clear(line) => {
                stream.write_all(line).await?;
                (&mut stream).take(16).read_to_end(&mut answer).await?;
            }
            Outgoing::Sealed {
                essentials,
                id,
                frame,
            } => {
                stream.write_all(frame).await?;
                let body = relay_essentials::read_frame(&stream).await?;
                if essentials.sealer.open_ack(body, *id) {
                    answer.extend_from_slice(b"ok\n");
                }
            }
        }
        std::io::Result::Ok(answer)
    };
    match runtime::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok(answer)) if answer == b"ok\n" => Ok(()),
        Ok(Ok(answer)) => Err(format!("answered {:?}", String::from_utf8_lossy(&answer))),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in time".to_owned()),
    }
}

/// Receives one message: shows it (and any it puts in order) once every earlier one is
/// shown, then answers `ok`; a malformed or refused message gets a word and the close.
async fn receive(
    mut stream: TcpStream,
    waiting: Arc<Mutex<Waiting>>,
    carry: &Carry,
) -> std::io::Result<()> {
    let Some(Received { seq, shown, answer }) = read_message(&stream, carry).await? else {
        return refuse(&mut stream, carry, "malformed").await;
    };
    let (shown_tx, shown_rx) = oneshot::channel();
    let taken = {
        let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
        let taken = waiting.take(seq, (shown, shown_tx));
        // Written while the lock is held, so that lines leave in the order they were put.
        if let Ok(ready) = &taken {
            let text: String = ready.iter().map(|(shown, _)| shown.as_str()).collect();
            say_all(&text);
        }
        taken
    };
    match taken {
        Ok(ready) => {
            for (_, answer) in ready {
                let _ = answer.send(());
            }
        }
        Err(refused) => return refuse(&mut stream, carry, &refused.to_string()).await,
    }
    if shown_rx.await.is_err() {
        return Ok(());
    }
    match answer {
        Answer::Clear => stream.write_all(b"ok\n").await?,
        Answer::Sealed {
            essentials,
            opened: m,
        } => {
            if essentials
                .store
                .store(m.id, &m.sender, &m.sender, &m.text)
                .await
            {
                stream.write_all(&essentials.sealer.seal_ack(m.id)).await?;
            }
        }
    }
    Ok(())
}

/// Answers a message that is not taken: a word in the clear; with the essentials, nothing
/// (the close), which the sender reports, since it reads only sealed frames.
async fn refuse(stream: &mut TcpStream, carry: &Carry, why: &str) -> std::io::Result<()> {
    match carry {
        Carry::Bare => stream.write_all(format!("{why}\n").as_bytes()).await,
        Carry::Essentials(_) => Ok(()),
    }
}

/// Reads one message: a line in the clear, or a sealed frame opened; `None` if malformed.
async fn read_message<'a>(
    stream: &TcpStream,
    carry: &'a Carry,
) -> std::io::Result<Option<Received<'a>>> {
    Ok(match carry {
        Carry::Bare => {
            let mut line = Vec::new();
            BufReader::new(stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await?;
            parse_wire(&line).map(|(seq, shown)| Received {
                seq,
                shown,
                answer: Answer::Clear,
            })
        }
        Carry::Essentials(essentials) => {
            let frame = relay_essentials::read_frame(stream).await?;
            essentials.sealer.open_message(frame).map(|m| Received {
                seq: m.seq,
                shown: format!("{}: {}\n", m.sender, m.text),
                answer: Answer::Sealed {
                    essentials,
                    opened: m,
                },
            })
        }
    })
}

/// `SEQ SENDER TEXT\n` as the number and the line to show, `SENDER: TEXT\n`.
fn parse_wire(line: &[u8]) -> Option<(u64, String)> {
    let line = std::str::from_utf8(line).ok()?.strip_suffix('\n')?;
    let (seq, rest) = line.split_once(' ')?;
    let (sender, text) = rest.split_once(' ')?;
    Some((seq.parse().ok()?, format!("{sender}: {text}\n")))
}

fn say(line: &str) {
    say_all(&format!("{line}\n"));
}

/// Writes whole lines to stdout in one call. A failed write (the bench went away) is
/// ignored: the end of stdin ends the relay.
fn say_all(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_are_read_as_a_peer_reads_them() {
        assert_eq!(
            parse_typed("chat message bob m1 and more"),
            Typed::Message {
                to: "bob",
                text: "m1 and more"
            }
        );
        assert_eq!(
            parse_typed("partner 127.0.0.1:9"),
            Typed::Partner(SocketAddr::from(([127, 0, 0, 1], 9)))
        );
        assert_eq!(parse_typed("partner nowhere"), Typed::Other);
        assert_eq!(parse_typed("chat message bob"), Typed::Other);
        assert_eq!(parse_typed("hello"), Typed::Other);
    }

    #[test]
    fn a_message_on_the_wire_is_shown_as_the_peer_shows_it() {
        assert_eq!(
            parse_wire(b"7 alice m7 hi\n"),
            Some((7, "alice: m7 hi\n".to_owned()))
        );
        assert_eq!(parse_wire(b"7 alice m7"), None, "no newline: cut short");
        assert_eq!(parse_wire(b"x alice m7\n"), None);
        assert_eq!(parse_wire(b"7 alice\n"), None);
        assert_eq!(parse_wire(&[0xff, b' ', b'a', b' ', b'b', b'\n']), None);
    }
}
