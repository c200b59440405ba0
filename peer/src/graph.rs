//! `graph`: the network as this peer knows it, as Graphviz DOT (`graph`) or JSON
//! (`graph --json`), for a picture (`graph | dot -Tsvg`) or a script.
//!
//! A peer knows only its own side of the network: whom it chats with, what its registry
//! listed, its book (peers met directly or passed on by exchange) and the peers heard on the
//! LAN. So the graph is this peer, its registry and those peers, with one edge per way it
//! knows each ([`EdgeKind`]) and when it last had word of it. Peers are nodes by key (one
//! key, one node, whatever its names); at most [`MAX_NODES`] nodes, the rest counted in
//! `omitted` and shown in DOT as one summary node. Pure: the command gathers the sources
//! (`exchange_commands.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use p2p_shared::identity::PublicKey;
use p2p_shared::{PeerInfo, PeerName};
use serde::Serialize;

use crate::event::PeerKey;

/// The most nodes a graph holds (this peer and its registry included): a picture of more is
/// unreadable, and a listing of thousands must not make an event of megabytes.
pub const MAX_NODES: usize = 200;

/// How this peer knows of another (or of its registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// This peer's registry.
    Registry,
    /// The registry lists the peer (an edge from the registry).
    Listed,
    /// An open chat.
    Chat,
    /// In the book, heard from the peer itself.
    Direct,
    /// In the book, passed on by another peer.
    Exchange,
    /// Heard on the LAN (`--lan`).
    Lan,
}

impl EdgeKind {
    fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Registry => "registry",
            EdgeKind::Listed => "listed",
            EdgeKind::Chat => "chat",
            EdgeKind::Direct => "direct",
            EdgeKind::Exchange => "exchange",
            EdgeKind::Lan => "lan",
        }
    }
}

/// One peer the graph shows, or this peer, or the registry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// `me`, `registry`, or the peer key's fingerprint.
    pub id: String,
    pub name: Option<PeerName>,
    pub addr: SocketAddr,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub key: Option<PeerKey>,
    /// Marked dead by the book's checks.
    pub dead: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// When this peer last had word of the other end this way (none: never checked yet).
    pub last_seen: Option<DateTime<Utc>>,
}

/// What `graph` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Peers left out beyond [`MAX_NODES`].
    pub omitted: usize,
}

/// One way of knowing a peer, as the sources give it.
pub struct Sighting {
    pub peer: PeerInfo,
    pub kind: EdgeKind,
    pub last_seen: Option<DateTime<Utc>>,
    pub dead: bool,
}

/// Builds the graph of `me` (at `addr`), its registry at `registry` (and when it last
/// answered), and what it knows.
pub fn build(
    (me, addr): (PeerName, SocketAddr),
    (registry, answered): (SocketAddr, Option<DateTime<Utc>>),
    sightings: Vec<Sighting>,
    now: DateTime<Utc>,
) -> Graph {
    let mut nodes = vec![
        Node {
            id: "me".into(),
            name: Some(me),
            addr,
            key: None,
            dead: false,
        },
        Node {
            id: "registry".into(),
            name: None,
            addr: registry,
            key: None,
            dead: false,
        },
    ];
    let mut edges = vec![Edge {
        from: "me".into(),
        to: "registry".into(),
        kind: EdgeKind::Registry,
        last_seen: answered,
    }];
    // One node per key, in the order of the sources; edges deduplicated by (key, kind).
    let mut index: BTreeMap<PublicKey, usize> = BTreeMap::new();
    let mut seen_edges = BTreeMap::new();
    let mut omitted = std::collections::BTreeSet::new();
    for s in sightings {
        let key = s.peer.key;
        let at = match index.get(&key) {
            Some(&at) => at,
            None if nodes.len() >= MAX_NODES => {
                omitted.insert(key);
                continue;
            }
            None => {
                nodes.push(Node {
                    id: key.fingerprint(),
                    name: Some(s.peer.name),
                    addr: s.peer.addr,
                    key: Some(PeerKey(key)),
                    dead: false,
                });
                index.insert(key, nodes.len() - 1);
                nodes.len() - 1
            }
        };
        nodes[at].dead |= s.dead;
        if seen_edges.insert((key, s.kind), ()).is_some() {
            continue;
        }
        let from = match s.kind {
            EdgeKind::Listed => "registry",
            _ => "me",
        };
        let last_seen = match s.kind {
            EdgeKind::Listed | EdgeKind::Chat => Some(now),
            _ => s.last_seen,
        };
        edges.push(Edge {
            from: from.into(),
            to: nodes[at].id.clone(),
            kind: s.kind,
            last_seen,
        });
    }
    Graph {
        nodes,
        edges,
        omitted: omitted.len(),
    }
}

impl Graph {
    /// Graphviz DOT: this peer a double circle, the registry a box, dead peers dashed; each
    /// edge labelled with its kind and when it was last seen.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph p2pchat {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
        for n in &self.nodes {
            let (title, shape) = match n.id.as_str() {
                "me" => (format!("{} (this peer)", name_of(n)), "doublecircle"),
                "registry" => ("registry".to_string(), "box"),
                _ => (name_of(n), "ellipse"),
            };
            let mut label = format!("{title}\\n{}", n.addr);
            if let Some(key) = &n.key {
                let short: String = key.fingerprint().chars().take(9).collect();
                let _ = write!(label, "\\nkey {short}");
            }
            let style = if n.dead { ", style=dashed" } else { "" };
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\", shape={shape}{style}];",
                quote(&n.id),
                quote_label(&label)
            );
        }
        if self.omitted > 0 {
            let _ = writeln!(
                out,
                "  \"omitted\" [label=\"{} more peers not shown\", shape=note];",
                self.omitted
            );
        }
        for e in &self.edges {
            let when = match e.last_seen {
                Some(t) => t.format("%H:%M:%S").to_string(),
                None => "not seen".into(),
            };
            let style = match e.kind {
                EdgeKind::Chat => ", penwidth=2",
                EdgeKind::Exchange | EdgeKind::Listed => ", style=dashed",
                EdgeKind::Lan => ", color=blue",
                _ => "",
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{} {when}\"{style}];",
                quote(&e.from),
                quote(&e.to),
                e.kind.as_str()
            );
        }
        out.push('}');
        out
    }
}

fn name_of(n: &Node) -> String {
    n.name.map(|n| n.to_string()).unwrap_or_default()
}

/// A DOT string's contents: quotes and backslashes escaped, control characters dropped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// [`quote`], but keeping the `\n` line breaks the label was made with.
fn quote_label(s: &str) -> String {
    s.split("\\n").map(quote).collect::<Vec<_>>().join("\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_shared::identity::Identity;

    fn peer(name: &str, last: u8) -> PeerInfo {
        PeerInfo {
            name: name.parse().unwrap(),
            addr: SocketAddr::from(([10, 0, 0, last], 4000)),
            key: Identity::generate().public(),
        }
    }

    fn sighting(peer: &PeerInfo, kind: EdgeKind) -> Sighting {
        Sighting {
            peer: peer.clone(),
            kind,
            last_seen: None,
            dead: false,
        }
    }

    fn me() -> (PeerName, SocketAddr) {
        (
            "alice".parse().unwrap(),
            SocketAddr::from(([10, 0, 0, 1], 4000)),
        )
    }

    #[test]
    fn one_node_per_key_one_edge_per_way_of_knowing_it() {
        let bob = peer("bob", 2);
        let registry = SocketAddr::from(([10, 0, 0, 9], 4000));
        let sightings = vec![
            sighting(&bob, EdgeKind::Chat),
            sighting(&bob, EdgeKind::Lan),
            sighting(&bob, EdgeKind::Lan),
            sighting(&bob, EdgeKind::Listed),
        ];
        let g = build(me(), (registry, None), sightings, Utc::now());
        assert_eq!(g.nodes.len(), 3);
        let kinds: Vec<(&str, EdgeKind)> =
            g.edges.iter().map(|e| (e.from.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("me", EdgeKind::Registry),
                ("me", EdgeKind::Chat),
                ("me", EdgeKind::Lan),
                ("registry", EdgeKind::Listed)
            ]
        );
        let dot = g.dot();
        assert!(dot.starts_with("digraph p2pchat {"), "{dot}");
        assert!(dot.contains("\"me\" -> \"registry\""), "{dot}");
        assert!(
            dot.contains(&format!(
                "\"me\" -> \"{}\" [label=\"lan",
                bob.key.fingerprint()
            )),
            "{dot}"
        );
        assert!(dot.ends_with('}'));
    }

    #[test]
    fn a_large_network_is_cut_and_counted() {
        let sightings = (0..MAX_NODES + 50)
            .map(|i| sighting(&peer(&format!("p{i}"), 2), EdgeKind::Exchange))
            .collect();
        let registry = SocketAddr::from(([10, 0, 0, 9], 4000));
        let g = build(me(), (registry, None), sightings, Utc::now());
        assert_eq!(g.nodes.len(), MAX_NODES);
        assert_eq!(g.omitted, 52);
        assert!(g.dot().contains("52 more peers not shown"));
    }

    #[test]
    fn dot_strings_cannot_be_broken_out_of() {
        assert_eq!(quote("a\"b\\c\n"), "a\\\"b\\\\c");
        assert_eq!(quote_label("x\\ny\""), "x\\ny\\\"");
    }
}
