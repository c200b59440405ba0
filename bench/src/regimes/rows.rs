//! The regimes' rows of the report, with issue 19's targets: each figure of the p2p-peer
//! pair next to the relay floor's in the same run. Each p50 and burst rate is followed by
//! two rows without a target that split the distance: the relay with the peer's essentials
//! against the bare relay (what sealing and storing cost), and the peer against the relay
//! with the essentials (what the peer adds to them).

use super::syscalls::{Calls, Syscalls};
use super::{Latencies, Measured, Regimes};
use crate::report::{thousands, Row, Target, Value};

/// Back-to-back and at rest may take at most this many times their floor.
const LATENCY_FLOOR_RATIO: f64 = 1.2;
/// A burst must reach this share of its floor's rate...
const BURST_FLOOR_SHARE: f64 = 0.5;
/// ...and this rate (on a quiet machine), in messages per second.
const BURST_RATE_AT_LEAST: f64 = 10_000.0;
/// The most frequent kinds of system call shown per side, besides `futex`.
const KINDS_SHOWN: usize = 5;

/// One regime's latencies of a pair.
type LatenciesOf = fn(&Measured) -> &Latencies;

pub fn regime_rows(regimes: &Regimes, rows: &mut Vec<Row>) {
    let (peer, floor, essentials) = (&regimes.peer, &regimes.floor, &regimes.essentials);
    let rounds = regimes.rounds;
    let latencies: [(&str, LatenciesOf); 2] = [
        ("back-to-back", |m| &m.back_to_back),
        ("at rest", |m| &m.at_rest),
    ];
    for (regime, of) in latencies {
        let figure = format!("{regime}, {rounds} rounds: typed → shown");
        latency_rows(&figure, of(peer), of(floor), true, rows);
        split_rows(
            &format!("{figure}, p50"),
            [of(peer), of(floor), of(essentials)].map(|l| Value::Time(l.all.p50)),
            rows,
        );
    }
    burst_rows(peer, floor, rounds, rows);
    split_rows(
        &format!(
            "burst of {}, {rounds} rounds: messages shown per second, median",
            burst_size(peer)
        ),
        [peer, floor, essentials].map(|m| Value::Rate(m.bursts.per_second())),
        rows,
    );
    let figure = format!("ping-pong, {rounds} rounds: round trip");
    latency_rows(&figure, &peer.ping_pong, &floor.ping_pong, false, rows);
    split_rows(
        &format!("{figure}, p50"),
        [peer, floor, essentials].map(|m| Value::Time(m.ping_pong.all.p50)),
        rows,
    );
    rows.push(Row {
        figure: "regimes: anything unexpected (other lines, repeats, no `delivered`)".into(),
        value: Value::Count(peer.troubles as u64),
        floor: Some(Value::Count(floor.troubles as u64)),
        target: None,
    });
    let bursts = &essentials.bursts;
    rows.push(Row {
        figure: "regimes, the relay with the essentials: anything unexpected, or out of order"
            .into(),
        value: Value::Count((essentials.troubles + bursts.faults()) as u64 + bursts.undelivered()),
        floor: None,
        target: None,
    });
}

/// The two rows that split a figure's distance to the bare floor: `[peer, floor,
/// essentials]`.
fn split_rows(figure: &str, [peer, floor, essentials]: [Value; 3], rows: &mut Vec<Row>) {
    rows.push(Row {
        figure: format!("{figure}: the relay with the peer's essentials"),
        value: essentials,
        floor: Some(floor),
        target: None,
    });
    rows.push(Row {
        figure: format!("{figure}: p2p-peer against the relay with the essentials"),
        value: peer,
        floor: Some(essentials),
        target: None,
    });
}

fn burst_size(peer: &Measured) -> String {
    thousands(peer.bursts.runs.first().map_or(0, |r| r.messages) as u64)
}

fn latency_rows(
    figure: &str,
    peer: &Latencies,
    floor: &Latencies,
    targeted: bool,
    rows: &mut Vec<Row>,
) {
    let (measured, limit) = (peer.all.p50, floor.all.p50.mul_f64(LATENCY_FLOOR_RATIO));
    rows.push(Row {
        figure: format!("{figure}, p50"),
        value: Value::Time(measured),
        floor: Some(Value::Time(floor.all.p50)),
        target: targeted.then(|| Target {
            text: format!("≤ {LATENCY_FLOOR_RATIO}× floor"),
            met: measured <= limit,
        }),
    });
    rows.push(Row {
        figure: format!("{figure}, p99"),
        value: Value::Time(peer.all.p99),
        floor: Some(Value::Time(floor.all.p99)),
        target: None,
    });
}

fn burst_rows(peer: &Measured, floor: &Measured, rounds: usize, rows: &mut Vec<Row>) {
    let (ours, theirs) = (&peer.bursts, &floor.bursts);
    let name = format!("burst of {}, {rounds} rounds", burst_size(peer));
    let rate = ours.per_second();
    rows.push(Row {
        figure: format!("{name}: messages shown per second, median"),
        value: Value::Rate(rate),
        floor: Some(Value::Rate(theirs.per_second())),
        target: Some(Target {
            text: format!(
                "≥ {BURST_FLOOR_SHARE}× floor, ≥ {}/s",
                thousands(BURST_RATE_AT_LEAST as u64)
            ),
            met: rate >= BURST_FLOOR_SHARE * theirs.per_second() && rate >= BURST_RATE_AT_LEAST,
        }),
    });
    rows.push(Row {
        figure: format!("{name}: first line typed → last shown, median"),
        value: Value::Time(ours.took()),
        floor: Some(Value::Time(theirs.took())),
        target: None,
    });
    let zero = |figure: String, ours: u64, theirs: u64| Row {
        figure,
        value: Value::Count(ours),
        floor: Some(Value::Count(theirs)),
        target: Some(Target {
            text: "0".into(),
            met: ours == 0,
        }),
    };
    rows.push(zero(
        format!("{name}: messages not shown exactly once in order"),
        ours.faults() as u64,
        theirs.faults() as u64,
    ));
    rows.push(zero(
        format!("{name}: messages without `delivered`"),
        ours.undelivered(),
        theirs.undelivered(),
    ));
    for (side, who) in [(0, "alice (sender)"), (1, "bob (receiver)")] {
        rows.push(Row {
            figure: format!("{name}: wake-ups (voluntary context switches) per message, {who}"),
            value: Value::PerMessage(ours.wakeups_per_message(side)),
            floor: Some(Value::PerMessage(theirs.wakeups_per_message(side))),
            target: None,
        });
    }
}

pub fn syscall_rows(syscalls: &Syscalls, rows: &mut Vec<Row>) {
    let (peer, floor) = (&syscalls.peer, &syscalls.floor);
    let name = format!("burst of {} under strace", thousands(peer.messages as u64));
    for (side, who) in [(0, "alice"), (1, "bob")] {
        let (ours, theirs) = (&peer.sides[side], &floor.sides[side]);
        let per = |n: u64, messages: usize| Value::PerMessage(n as f64 / messages.max(1) as f64);
        let pair = |of: &dyn Fn(&Calls) -> u64| {
            (
                per(of(ours), peer.messages),
                Some(per(of(theirs), floor.messages)),
            )
        };
        let (value, floor_value) = pair(&Calls::total);
        rows.push(Row {
            figure: format!("{name}: system calls per message, {who}"),
            value,
            floor: floor_value,
            target: None,
        });
        let mut kinds: Vec<&str> = ours
            .by_kind
            .iter()
            .take(KINDS_SHOWN)
            .map(|(k, _)| k.as_str())
            .collect();
        if !kinds.contains(&"futex") {
            kinds.push("futex");
        }
        for kind in kinds {
            let (value, floor_value) = pair(&|calls: &Calls| calls.of(kind));
            rows.push(Row {
                figure: format!("{name}: `{kind}` per message, {who}"),
                value,
                floor: floor_value,
                target: None,
            });
        }
    }
}
