//! The figures of one run next to their floors, and the targets of issue 6 (and issue 12,
//! for pings while names are claimed) for them.
//!
//! Every measurement is paired here with the floor measured the same way in the same run; the
//! targets are written down once, in this file, with the numbers the issue gives (issue 19's
//! regimes in `regimes/rows.rs`, next to their own floor).

use std::time::Duration;

use crate::broadcast::{Flood, FANOUT};
use crate::chat::Chat;
use crate::claims::{Claims, FSYNC_DELAY, PING_RATIO_AT_MOST};
use crate::load::Throughput;
use crate::regimes::syscalls::Syscalls;
use crate::regimes::{rows as regime_rows, Regimes};
use crate::registry::{Crowd, ReplyBytes};
use crate::report::{thousands, Row, Target, Value};
use crate::rest::AtRest;
use crate::stats::{median, Summary};

/// The original Python P2P_Chat: a chat message from one peer's stdin to the other's stdout
/// took 200 to 260 µs. "Faster than the original" is held against the fast end.
const ORIGINAL_CHAT: Duration = Duration::from_micros(200);
/// A chat message may take at most this many times the floor exchange.
const CHAT_FLOOR_RATIO: f64 = 1.5;
/// Registry throughput must reach this share of the floor's at every level.
const LOAD_FLOOR_SHARE: f64 = 0.8;
/// The registry's p99 under the heaviest load.
const LOAD_P99_AT_MOST: Duration = Duration::from_millis(50);
/// The clients of the level that p99 target applies to.
const LOAD_P99_CLIENTS: usize = 256;
/// Resident memory targets, in bytes (the MB are 10^6 bytes).
const CROWD_RSS_AT_MOST: u64 = 64_000_000;
const PEER_RSS_AT_MOST: u64 = 8_000_000;
/// A peer must accept connections this soon after spawn.
const PEER_ACCEPT_AT_MOST: Duration = Duration::from_millis(20);

/// One load level: the registry and the floor with the same number of clients.
pub struct Level {
    pub clients: usize,
    pub registry: Throughput,
    pub floor: Throughput,
    /// The floor again, with replies of the registry's sizes (no target: it tells what the
    /// bytes of the replies cost, apart from the registry's logic).
    pub sized_floor: Throughput,
    pub reply_bytes: ReplyBytes,
}

/// Everything one run measured; sections left out with `--only` are `None` or empty.
pub struct Figures {
    /// The floor exchange, one at a time: the floor of every single-request latency.
    pub floor_exchange: Summary,
    pub chat: Option<Chat>,
    pub load: Vec<Level>,
    /// The crowded registry, and the floor process holding the same names.
    pub crowd: Option<(Crowd, u64)>,
    /// Pings while new names are claimed, with and without a slow `fsync`.
    pub claims: Option<Claims>,
    /// A peer at rest, and the floor process at rest.
    pub rest: Option<(AtRest, AtRest)>,
    /// Broadcasts on a network of peers with no registry.
    pub flood: Option<Flood>,
    /// Issue 19's regimes, next to the relay floor.
    pub regimes: Option<Regimes>,
    /// System calls per message in a burst; `Err` says why they were not counted.
    pub syscalls: Option<Result<Syscalls, String>>,
}

impl Figures {
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        if let Some(chat) = &self.chat {
            self.chat_rows(chat, &mut rows);
        }
        for level in &self.load {
            load_rows(level, &mut rows);
        }
        if let Some((crowd, floor_rss)) = &self.crowd {
            self.crowd_rows(crowd, *floor_rss, &mut rows);
        }
        if let Some(claims) = &self.claims {
            self.claims_rows(claims, &mut rows);
        }
        if let Some((peer, floor)) = &self.rest {
            rest_rows(peer, floor, &mut rows);
        }
        if let Some(flood) = &self.flood {
            flood_rows(flood, &mut rows);
        }
        if let Some(regimes) = &self.regimes {
            regime_rows::regime_rows(regimes, &mut rows);
        }
        if let Some(Ok(syscalls)) = &self.syscalls {
            regime_rows::syscall_rows(syscalls, &mut rows);
        }
        rows
    }

    fn claims_rows(&self, claims: &Claims, rows: &mut Vec<Row>) {
        let floor = self.floor_exchange;
        for run in &claims.runs {
            let label = run.condition.label();
            rows.push(plain(
                &format!("claims, {label}: ping p50, no claims"),
                run.quiet.p50,
                floor.p50,
            ));
            rows.push(plain(
                &format!(
                    "claims, {label}: ping p50 while {} clients claim new names",
                    claims.clients
                ),
                run.pings.p50,
                floor.p50,
            ));
            rows.push(plain(
                &format!("claims, {label}: ping p99 while claiming"),
                run.pings.p99,
                floor.p99,
            ));
            rows.push(Row {
                figure: format!("claims, {label}: new names claimed"),
                value: Value::Rate(run.claims.per_second),
                floor: None,
                target: None,
            });
            rows.push(Row {
                figure: format!("claims, {label}: one claim (register → registered), p50"),
                value: Value::Time(run.claims.latency.p50),
                floor: None,
                target: None,
            });
            if let Some(fsyncs) = run.fsyncs {
                rows.push(Row {
                    figure: format!(
                        "claims, {label}: fsync calls, for {} new names",
                        thousands(run.claims.latency.count as u64)
                    ),
                    value: Value::Count(fsyncs as u64),
                    floor: None,
                    target: None,
                });
            }
        }
        if let Some(ratio) = claims.ratio() {
            rows.push(Row {
                figure: format!(
                    "claims: ping p50 with {} ms per fsync ÷ ping p50 under strace alone",
                    FSYNC_DELAY.as_millis()
                ),
                value: Value::Ratio(ratio),
                floor: None,
                target: Some(Target {
                    text: format!("≤ {PING_RATIO_AT_MOST}×"),
                    met: ratio <= PING_RATIO_AT_MOST,
                }),
            });
        }
        if let Some(ratio) = claims.ratio_to_quiet() {
            rows.push(Row {
                figure: format!(
                    "claims: ping p50 with {} ms per fsync ÷ ping p50 under strace, no claims",
                    FSYNC_DELAY.as_millis()
                ),
                value: Value::Ratio(ratio),
                floor: None,
                target: None,
            });
        }
    }

    fn chat_rows(&self, chat: &Chat, rows: &mut Vec<Row>) {
        let floor = self.floor_exchange;
        let typed = chat.typed.p50;
        let limit = floor.p50.mul_f64(CHAT_FLOOR_RATIO);
        rows.push(Row {
            figure: "chat: typed at alice → printed by bob, p50".into(),
            value: Value::Time(typed),
            floor: Some(Value::Time(floor.p50)),
            target: Some(Target {
                text: format!(
                    "< {} (original), ≤ {CHAT_FLOOR_RATIO}× floor",
                    Value::Time(ORIGINAL_CHAT).show()
                ),
                met: typed < ORIGINAL_CHAT && typed <= limit,
            }),
        });
        rows.push(plain(
            "chat: typed → printed, p99",
            chat.typed.p99,
            floor.p99,
        ));
        rows.push(plain(
            "chat: typed → `delivered` at alice, p50",
            chat.delivered.p50,
            floor.p50,
        ));
        rows.push(plain(
            "chat: typed → `delivered`, p99",
            chat.delivered.p99,
            floor.p99,
        ));
        rows.push(plain(
            "chat: chat_message sent → ok reply, p50",
            chat.protocol.p50,
            floor.p50,
        ));
        rows.push(plain(
            "chat: chat_message → ok reply, p99",
            chat.protocol.p99,
            floor.p99,
        ));
    }

    fn crowd_rows(&self, crowd: &Crowd, floor_rss_kib: u64, rows: &mut Vec<Row>) {
        let n = thousands(crowd.registered as u64);
        let floor = self.floor_exchange;
        rows.push(Row {
            figure: format!("registry of {n}: resident memory"),
            value: Value::Memory(crowd.rss_kib),
            floor: Some(Value::Memory(floor_rss_kib)),
            target: Some(memory_target(crowd.rss_kib, CROWD_RSS_AT_MOST)),
        });
        rows.push(Row {
            figure: format!("registry of {n}: registering, 16 clients"),
            value: Value::Rate(crowd.registering.per_second),
            floor: None,
            target: None,
        });
        rows.push(plain(
            &format!("registry of {n}: one listpeer page, p50"),
            crowd.page.p50,
            floor.p50,
        ));
        rows.push(plain(
            &format!("registry of {n}: one listpeer page, p99"),
            crowd.page.p99,
            floor.p99,
        ));
        rows.push(plain(
            &format!("registry of {n}: lookup, p50"),
            crowd.lookup.p50,
            floor.p50,
        ));
        rows.push(plain(
            &format!("registry of {n}: whole listing, {} pages", crowd.pages),
            crowd.listing,
            floor.p50 * crowd.pages as u32,
        ));
        rows.push(plain(
            &format!("registry of {n}: `listpeer` typed → last line (at most 4,096 shown)"),
            crowd.typed_listing,
            floor.p50 * crowd.pages as u32,
        ));
    }
}

/// A latency row without a target.
fn plain(figure: &str, value: Duration, floor: Duration) -> Row {
    Row {
        figure: figure.to_owned(),
        value: Value::Time(value),
        floor: Some(Value::Time(floor)),
        target: None,
    }
}

fn load_rows(level: &Level, rows: &mut Vec<Row>) {
    let (registry, floor) = (level.registry, level.floor);
    let clients = match level.clients {
        1 => "1 client".to_owned(),
        n => format!("{n} clients"),
    };
    rows.push(Row {
        figure: format!("registry, register+listpeer, {clients}"),
        value: Value::Rate(registry.per_second),
        floor: Some(Value::Rate(floor.per_second)),
        target: Some(Target {
            text: format!("≥ {:.0}% of floor", LOAD_FLOOR_SHARE * 100.0),
            met: registry.per_second >= LOAD_FLOOR_SHARE * floor.per_second,
        }),
    });
    let bytes = level.reply_bytes;
    rows.push(Row {
        figure: format!(
            "registry, {clients}, vs. floor with its replies' sizes ({} B, {} B)",
            thousands(bytes.registered as u64),
            thousands(bytes.page as u64)
        ),
        value: Value::Rate(registry.per_second),
        floor: Some(Value::Rate(level.sized_floor.per_second)),
        target: None,
    });
    // Where a request's CPU goes, on both sides (`cpu.rs`): no targets, the explanation of
    // the rate above.
    let sides = [
        ("server", registry.server_cpu, floor.server_cpu),
        ("clients'", registry.clients_cpu, floor.clients_cpu),
    ];
    for (side, measured, floor) in sides {
        let kinds = [
            ("user", measured.user, floor.user),
            ("system", measured.system, floor.system),
        ];
        for (kind, measured, floor) in kinds {
            rows.push(plain(
                &format!("registry, {clients}, {side} CPU per request, {kind}"),
                measured,
                floor,
            ));
        }
    }
    let p99 = registry.latency.p99;
    rows.push(Row {
        figure: format!("registry, {clients}, p99"),
        value: Value::Time(p99),
        floor: Some(Value::Time(floor.latency.p99)),
        target: (level.clients == LOAD_P99_CLIENTS).then(|| Target {
            text: format!("< {}", Value::Time(LOAD_P99_AT_MOST).show()),
            met: p99 < LOAD_P99_AT_MOST,
        }),
    });
}

fn rest_rows(peer: &AtRest, floor: &AtRest, rows: &mut Vec<Row>) {
    rows.push(Row {
        figure: "peer at rest: resident memory".into(),
        value: Value::Memory(peer.rss_kib),
        floor: Some(Value::Memory(floor.rss_kib)),
        target: Some(memory_target(peer.rss_kib, PEER_RSS_AT_MOST)),
    });
    rows.push(plain(
        &format!("peer: spawn → answers, median of {}", peer.starts),
        peer.accept_median,
        floor.accept_median,
    ));
    rows.push(Row {
        figure: format!("peer: spawn → answers, slowest of {}", peer.starts),
        value: Value::Time(peer.accept_max),
        floor: Some(Value::Time(floor.accept_max)),
        target: Some(Target {
            text: format!("≤ {}", Value::Time(PEER_ACCEPT_AT_MOST).show()),
            met: peer.accept_max <= PEER_ACCEPT_AT_MOST,
        }),
    });
}

/// No floor: a bare program has no network to flood. The bound is a target the design sets
/// (each peer passes a broadcast on once, to at most [`FANOUT`]), so a run above it is a bug.
fn flood_rows(flood: &Flood, rows: &mut Vec<Row>) {
    let n = flood.peers;
    let count = |figure: String, value: usize| Row {
        figure,
        value: Value::Count(value as u64),
        floor: None,
        target: None,
    };
    let time = |figure: String, value: Duration| Row {
        figure,
        value: Value::Time(value),
        floor: None,
        target: None,
    };
    rows.push(time(
        format!("broadcast, {n} peers: formed (every book lists all the others)"),
        flood.formed,
    ));
    let all = &flood.broadcasts;
    let copies: Vec<usize> = all.iter().map(|b| b.copies).collect();
    let (Some(mid), Some(&fewest), Some(&most)) = (
        median(copies.clone()),
        copies.iter().min(),
        copies.iter().max(),
    ) else {
        return;
    };
    rows.push(count(
        format!(
            "broadcast, {n} peers: copies (connections) per broadcast, median of {}",
            all.len()
        ),
        mid,
    ));
    rows.push(count(
        format!("broadcast, {n} peers: copies per broadcast, fewest"),
        fewest,
    ));
    rows.push(Row {
        target: Some(Target {
            text: format!("≤ {} ({n} peers, fan-out {FANOUT})", flood.bound()),
            met: most <= flood.bound(),
        }),
        ..count(
            format!("broadcast, {n} peers: copies per broadcast, most"),
            most,
        )
    });
    let repeats = all.iter().map(|b| b.repeats()).collect();
    rows.push(count(
        format!(
            "broadcast, {n} peers: repeats per broadcast (copies to a peer that had it), median"
        ),
        median(repeats).unwrap_or(0),
    ));
    rows.push(count(
        format!("broadcast, {n} peers: the most copies one peer received of one broadcast"),
        all.iter().map(|b| b.most_at_one_peer).max().unwrap_or(0),
    ));
    if let Some(latency) = flood.latency() {
        rows.push(time(
            format!("broadcast, {n} peers: typed → shown by the last peer, p50"),
            latency.p50,
        ));
        rows.push(time(
            format!("broadcast, {n} peers: typed → shown by the last peer, p99"),
            latency.p99,
        ));
    }
    rows.push(count(
        format!("broadcast, {n} peers: connections refused, whole run"),
        flood.refused,
    ));
}

fn memory_target(rss_kib: u64, at_most: u64) -> Target {
    Target {
        text: format!("≤ {} MB", at_most / 1_000_000),
        met: rss_kib * 1024 <= at_most,
    }
}
