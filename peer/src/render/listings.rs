//! The text of the listings: `status`, the peer lists (`listpeer`, `list connected peer`),
//! `contacts`, the book (`peers`) and `nearby`: a counted header line, then one line per entry.

use std::fmt;

use chrono::{DateTime, Local, Utc};
use p2p_shared::PeerInfo;

use super::{secs, unverified};
use crate::event::{BookEntry, ChatState, Contact, NearbyEntry, Status};
use crate::state::book::Source;

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status: {} listening on {}", self.name, self.addr)?;
        let reach = match (
            self.registry_reachable,
            self.registered,
            &self.registry_other_key,
        ) {
            // `trust registry` cannot replace a --server-key: the advice is the one way that
            // can, so that what it says to do is never refused.
            (false, _, Some(other)) if self.registry_key_given => format!(
                "answers with another key, {}, not the --server-key given for it: refused. If \
                 its operator confirms that key, start again with --server-key {other}",
                other.fingerprint()
            ),
            (false, _, Some(other)) => format!(
                "answers with another key, {}, not the one trusted for it: refused. If its \
                 operator confirms that key, type: trust registry {}",
                other.fingerprint(),
                other.fingerprint()
            ),
            (false, _, None) => "unreachable".into(),
            (true, true, _) => "reachable, registered".into(),
            (true, false, _) => "reachable, not registered".into(),
        };
        writeln!(f, "registry {}: {reach}", self.registry)?;
        listing(f, "chats", "chat", &self.chats)?;
        f.write_str("\n")?;
        listing(f, "away", "away", &self.away)?;
        write!(f, "\nincoming requests: {}", self.incoming.len())?;
        for w in &self.incoming {
            let left = secs(&w.expires_in);
            write!(f, "\nrequest from {} {} expires in {left}s", w.peer, w.addr)?;
            if let Some(at) = w.received_at {
                let local = at.with_timezone(&Local).format("%H:%M:%S");
                write!(f, " (received {local})")?;
            }
        }
        write!(f, "\noutgoing requests: {}", self.outgoing.len())?;
        for w in &self.outgoing {
            let left = secs(&w.expires_in);
            write!(f, "\nrequest to {} {} gives up in {left}s", w.peer, w.addr)?;
        }
        Ok(())
    }
}

pub(super) fn listing(
    f: &mut fmt::Formatter<'_>,
    header: &str,
    tag: &str,
    peers: &[PeerInfo],
) -> fmt::Result {
    write!(f, "{header}: {}", peers.len())?;
    for p in peers {
        let fingerprint = p.key.fingerprint();
        write!(f, "\n{tag} {} {} key {fingerprint}", p.name, p.addr)?;
    }
    Ok(())
}

/// `contacts`: a counted header, then one line per pinned peer.
pub(super) fn contact_list(f: &mut fmt::Formatter<'_>, contacts: &[Contact]) -> fmt::Result {
    write!(f, "contacts: {}", contacts.len())?;
    for c in contacts {
        let vouched = match &c.registry {
            Some(registry) => format!("vouched by registry {}", registry.fingerprint()),
            None => "pinned on first contact".into(),
        };
        let chat = match c.chat {
            ChatState::Open => "chat open",
            ChatState::Away => "chat away",
            ChatState::Ended => "chat ended",
            ChatState::None => "no chat",
        };
        let seen = match &c.last_seen {
            Some(at) => format!(
                "last seen {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => "never seen".into(),
        };
        let (name, fp, queued) = (c.name, c.key.fingerprint(), c.queued);
        write!(
            f,
            "\ncontact {name} key {fp} {vouched}, {chat}, {queued} queued, {seen}"
        )?;
    }
    Ok(())
}

/// `peers`: a counted header, then one line per peer of the book, with how it was learned
/// and when it was last seen.
pub(super) fn book(f: &mut fmt::Formatter<'_>, peers: &[BookEntry]) -> fmt::Result {
    let stamp = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write!(f, "known peers: {}", peers.len())?;
    for p in peers {
        let how = match p.source {
            Source::Direct => "direct",
            Source::Exchange => "from exchange",
        };
        let seen = match (&p.dead_since, &p.seen) {
            (Some(since), _) => format!("dead since {}", stamp(since)),
            (None, Some(seen)) => format!("seen {}", stamp(seen)),
            (None, None) => "not seen yet".into(),
        };
        write!(
            f,
            "\nknown {}{} {} key {} ({how}, {seen})",
            p.name,
            unverified(p.verified),
            p.addr,
            p.key.fingerprint()
        )?;
    }
    Ok(())
}

/// `nearby`: a counted header, then one line per peer heard on the LAN; `(unverified)` unless
/// a pin or the registry vouches for the name's key, `(checking)` until the key answered.
pub(super) fn nearby(f: &mut fmt::Formatter<'_>, peers: &[NearbyEntry]) -> fmt::Result {
    write!(f, "nearby peers: {}", peers.len())?;
    for p in peers {
        let checking = if p.reached { "" } else { " (checking)" };
        write!(
            f,
            "\nnearby {} {} key {}{}{checking}",
            p.name,
            p.addr,
            p.key.fingerprint(),
            unverified(p.verified)
        )?;
    }
    Ok(())
}
