//! What can go wrong, as the user is told: one typed error per case, each with a stable code.
//!
//! Every error the peer reports is a [`PeerError`]. Its text (`Display`) is the sentence
//! after `error: ` in text mode, and README documents its wording; its [`PeerError::code`]
//! is what `--json` carries in `code` (docs/json.md lists them), for scripts that must tell
//! one failure from another without matching sentences. Codes never change meaning.

use std::net::SocketAddr;

use p2p_shared::transport::SendError;
use p2p_shared::PeerName;

use crate::command::ParseError;

/// Why talking to someone failed, as one phrase: `cannot reach bob (127.0.0.1:2): connection
/// refused`, with the code of its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub text: String,
}

impl Failure {
    /// How `e` reads, when talking to `whom` (`bob (127.0.0.1:40002)`, `the registry at ...`).
    pub fn of(e: &SendError, whom: &str) -> Failure {
        let (code, text) = match e {
            SendError::Unreachable { source, .. } => {
                // Plain OS errors read best as their kind ("connection refused").
                let why = match source.get_ref() {
                    Some(_) => source.to_string(),
                    None => source.kind().to_string(),
                };
                ("unreachable", format!("cannot reach {whom}: {why}"))
            }
            SendError::Timeout { .. } => ("timeout", format!("{whom} did not answer in time")),
            SendError::Broken { source, .. } => (
                "broken",
                format!("the connection to {whom} failed: {source}"),
            ),
            SendError::BadReply { reason, .. } => (
                "bad_reply",
                format!("{whom} sent an invalid reply: {reason}"),
            ),
            SendError::Refused { detail, .. } => ("refused", format!("{whom} refused: {detail}")),
        };
        Failure { code, text }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Everything the peer reports as `error: ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    // What was typed.
    #[error("{0}")]
    Usage(ParseError),
    #[error("line too long (the limit is {max} bytes); ignored")]
    LineTooLong { max: usize },
    #[error("the line is not valid UTF-8; ignored")]
    NotUtf8,
    #[error("not a JSON command ({why}); one is {{\"id\": \"...\", \"cmd\": \"...\"}}")]
    BadCommandJson { why: String },
    /// A JSON command's `cmd` holds a line break outside the text of a message: it is one
    /// command, so a second line would be a second command smuggled into it.
    #[error(
        "a JSON command is one command: \"cmd\" may break lines only in the text of chat \
         message, broadcast or a message in a conversation; nothing was run"
    )]
    LineBreakInCommand,
    /// A caller of the control socket (`p2p-peer send`) that was turned away.
    #[error("the control socket refused the request: {why}")]
    ControlRefused { why: String },

    // The registry.
    #[error("{0}")]
    Registry(Failure),
    #[error(
        "the name {name} is taken: it belongs to another key; start with another --name, or \
         ask the registry's operator to give it back (p2p-server release {name})"
    )]
    NameTaken { name: PeerName },
    #[error("{name} is not registered")]
    NotRegistered { name: PeerName },
    #[error(
        "lost the registry ({why}); trying again every {retry_secs}s; meanwhile chats go on, \
         and names are found in the book of {known} known peers"
    )]
    RegistryLost {
        why: Failure,
        retry_secs: u64,
        known: usize,
    },
    #[error("the registry no longer lets {name} register: {why}")]
    RegistrationRefused { name: PeerName, why: Failure },

    // Asking for a chat.
    #[error("cannot find {host}: {why}")]
    UnknownHost { host: String, why: String },
    #[error("no peer named {name} is registered")]
    UnknownPeer { name: PeerName },
    #[error("{name} is not online (its name is claimed, but not registered now)")]
    NotOnline { name: PeerName },
    #[error("{0}")]
    NotTheRegisteredKey(Box<KeyMismatch>),
    #[error("{0}")]
    RequestFailed(Failure),
    #[error("join failed: {0}")]
    JoinFailed(Failure),
    #[error("no key is known for {peer}: nothing to block")]
    NoKeyFor { peer: PeerName },
    #[error("{peer} is not blocked")]
    NotBlocked { peer: PeerName },
    #[error("nothing to forget about {peer}: no chat and no pinned key")]
    NothingToForget { peer: PeerName },
    #[error("{name} is this peer's own name: a chat is with another peer")]
    OwnName { name: PeerName },
    #[error("already in a chat with the peer at {addr}")]
    AlreadyConnected { addr: SocketAddr },
    #[error("the peer at {addr} has too many pending chat requests; try again later")]
    TooManyRequests { addr: SocketAddr },
    #[error("the peer at {addr} knows another key for the name {me}: refused")]
    KnownOtherwise { addr: SocketAddr, me: PeerName },
    #[error("{addr} answered the chat request with {what}")]
    UnexpectedAnswer { addr: SocketAddr, what: String },
    #[error("chat request to {peer} not made")]
    RequestNotMade { peer: PeerName },
    #[error("chat request to {peer} failed: {why}")]
    AcceptanceUnusable { peer: PeerName, why: &'static str },

    // Answering one.
    #[error("no pending chat request")]
    NonePending,
    #[error("no pending chat request from {name}")]
    NonePendingFrom { name: PeerName },
    #[error("{} chat requests are pending ({}); answer yes NAME or no NAME", .names.len(), names_list(.names))]
    Ambiguous { names: Vec<PeerName> },
    #[error(
        "no chat with {peer}: its key share is unusable, or its key is not the one known for \
         {peer}; declining"
    )]
    CannotAccept { peer: PeerName },
    #[error("{peer} no longer waits for an answer; no chat started")]
    NoLongerWaiting { peer: PeerName },
    #[error("{why}; no chat started")]
    AnswerNotDelivered { why: Failure },
    #[error("could not tell {peer}: {why}")]
    CouldNotTell { peer: PeerName, why: Failure },
    /// Told, but no answer came: the other side may have read it.
    #[error("{peer} may not have been told: {why}")]
    MayNotHaveTold { peer: PeerName, why: Failure },
    #[error("declined chat request from {peer}, but {why}")]
    DeclinedUntold { peer: PeerName, why: Box<PeerError> },

    // Chatting.
    #[error("not in a chat with {peer}")]
    NotInChat { peer: PeerName },
    #[error("{peer} is away and already has as many messages kept as it may; message not kept")]
    OutboxFull { peer: PeerName },
    /// Never shown: a request to reopen an away chat ends quietly.
    #[error("the chat could not be reopened")]
    ResumeFailed,
    /// It failed before it could have been read (nobody listens, the frame not written
    /// whole): not delivered.
    #[error("{why}; message not delivered")]
    Undelivered { why: Failure },
    #[error("{peer} is busy and did not take the message within {secs}s; message not delivered")]
    NotAcknowledged { peer: PeerName, secs: u64 },
    /// A try of it was written whole, and no acknowledgement came: the partner may have read
    /// and shown it. Not "not delivered", or the user sends it again.
    #[error("no acknowledgement from {peer}: it may not have arrived")]
    NoAcknowledgement { peer: PeerName },
    /// The same for a kept message that ends here (`why`): it goes no more.
    #[error("no acknowledgement from {peer}: it may not have arrived, and goes no more: {why}")]
    NoAcknowledgementEnded { peer: PeerName, why: String },
    #[error("{peer} refused the message: {detail}")]
    MessageRefused { peer: PeerName, detail: String },
    #[error(
        "{peer} ({addr}) sent an acknowledgement that does not open with the chat's keys; \
         message not confirmed"
    )]
    BadAcknowledgement { peer: PeerName, addr: SocketAddr },
    #[error("{peer} answered with {what}")]
    UnexpectedReply { peer: PeerName, what: String },
    #[error("delivered to {peer}, but {why}")]
    DeliveredNotStored { peer: PeerName, why: String },
    #[error("the message from {peer} shows, but it is not in the history: {why}")]
    ReceivedNotStored { peer: PeerName, why: String },

    // The rest.
    #[error("{why}")]
    History { why: String },
    #[error("{peer} has offered no new key")]
    NothingToTrust { peer: PeerName },
    #[error(
        "no new key offered for {peer} has fingerprint {fingerprint} (offered: {offered}): \
         not trusted. Check the fingerprint with {peer} again"
    )]
    NotOffered {
        peer: PeerName,
        fingerprint: String,
        offered: String,
    },
    #[error("{0}")]
    RegistryNotTrusted(String),
}

/// The peer at an address answered with another name or key than the registry's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the peer at {addr} answers as {answered} with key {offered}, but the registry has key \
     {expected} for {name}: refused"
)]
pub struct KeyMismatch {
    pub addr: SocketAddr,
    pub answered: PeerName,
    pub offered: String,
    pub expected: String,
    pub name: PeerName,
}

fn names_list(names: &[PeerName]) -> String {
    let names: Vec<&str> = names.iter().map(PeerName::as_str).collect();
    names.join(", ")
}

impl PeerError {
    /// The stable code of this error (docs/json.md).
    pub fn code(&self) -> &'static str {
        match self {
            PeerError::Usage(e) if e.is_unknown_command() => "unknown_command",
            PeerError::Usage(_) => "usage",
            PeerError::LineTooLong { .. } => "line_too_long",
            PeerError::NotUtf8 => "not_utf8",
            PeerError::BadCommandJson { .. } => "bad_command_json",
            PeerError::LineBreakInCommand => "line_break_in_command",
            PeerError::ControlRefused { .. } => "control_refused",
            PeerError::Registry(why)
            | PeerError::RequestFailed(why)
            | PeerError::JoinFailed(why) => why.code,
            PeerError::NameTaken { .. } => "name_taken",
            PeerError::NotRegistered { .. } => "not_registered",
            PeerError::RegistryLost { .. } => "registry_lost",
            PeerError::RegistrationRefused { .. } => "registration_refused",
            PeerError::UnknownHost { .. } => "unknown_host",
            PeerError::UnknownPeer { .. } => "unknown_peer",
            PeerError::NotOnline { .. } => "not_online",
            PeerError::NotTheRegisteredKey(_) => "not_the_registered_key",
            PeerError::OwnName { .. } => "own_name",
            PeerError::AlreadyConnected { .. } => "already_connected",
            PeerError::TooManyRequests { .. } => "too_many_requests",
            PeerError::KnownOtherwise { .. } => "known_otherwise",
            PeerError::UnexpectedAnswer { .. } | PeerError::UnexpectedReply { .. } => "bad_reply",
            PeerError::RequestNotMade { .. } => "key_changed",
            PeerError::AcceptanceUnusable { .. } => "acceptance_unusable",
            PeerError::NonePending | PeerError::NonePendingFrom { .. } => "no_pending_request",
            PeerError::Ambiguous { .. } => "ambiguous",
            PeerError::CannotAccept { .. } => "cannot_accept",
            PeerError::NoLongerWaiting { .. } => "no_longer_waiting",
            PeerError::AnswerNotDelivered { why } => why.code,
            PeerError::CouldNotTell { .. } | PeerError::DeclinedUntold { .. } => "could_not_tell",
            PeerError::MayNotHaveTold { .. } => "may_not_have_told",
            PeerError::NotInChat { .. } => "not_in_chat",
            PeerError::Undelivered { why } => why.code,
            PeerError::NotAcknowledged { .. } => "not_acknowledged",
            PeerError::NoAcknowledgement { .. } | PeerError::NoAcknowledgementEnded { .. } => {
                "no_acknowledgement"
            }
            PeerError::MessageRefused { .. } => "refused",
            PeerError::BadAcknowledgement { .. } => "bad_acknowledgement",
            PeerError::DeliveredNotStored { .. }
            | PeerError::ReceivedNotStored { .. }
            | PeerError::History { .. } => "history_failed",
            PeerError::NothingToTrust { .. } => "nothing_to_trust",
            PeerError::NoKeyFor { .. } => "no_key_for",
            PeerError::OutboxFull { .. } => "outbox_full",
            PeerError::ResumeFailed => "resume_failed",
            PeerError::NotBlocked { .. } => "not_blocked",
            PeerError::NothingToForget { .. } => "nothing_to_forget",
            PeerError::NotOffered { .. } => "fingerprint_mismatch",
            PeerError::RegistryNotTrusted(_) => "registry_not_trusted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_one_phrase_with_its_code() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let refused = SendError::Unreachable {
            addr,
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let failure = Failure::of(&refused, "bob (127.0.0.1:9)");
        assert_eq!(
            failure.text,
            "cannot reach bob (127.0.0.1:9): connection refused"
        );
        assert_eq!(failure.code, "unreachable");
        let error = PeerError::Undelivered { why: failure };
        assert_eq!(
            error.to_string(),
            "cannot reach bob (127.0.0.1:9): connection refused; message not delivered"
        );
        assert_eq!(error.code(), "unreachable");
    }

    #[test]
    fn a_message_that_may_have_arrived_is_never_said_not_delivered() {
        let error = PeerError::NoAcknowledgement {
            peer: "bob".parse().unwrap(),
        };
        assert_eq!(
            error.to_string(),
            "no acknowledgement from bob: it may not have arrived"
        );
        assert_eq!(error.code(), "no_acknowledgement");
    }

    #[test]
    fn ambiguous_answers_name_every_requester() {
        let names = vec!["bob".parse().unwrap(), "carol".parse().unwrap()];
        let error = PeerError::Ambiguous { names };
        assert_eq!(
            error.to_string(),
            "2 chat requests are pending (bob, carol); answer yes NAME or no NAME"
        );
    }
}
