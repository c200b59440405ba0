//! Closed-loop load: N clients, each sending its next request as soon as the last one is
//! answered, until a number of requests is done or a time limit passes.
//!
//! Requests are numbered from one shared counter, so the total is exact whatever the number of
//! clients, and each request's number can pick what it does (register or listpeer, which name).
//! The same runner drives the floor and the registry, so their figures differ only in what
//! one request is.
//!
//! While the clients run, the CPU time of the server process and of this one (the clients) is
//! read before and after ([`crate::cpu`]), so each run also tells what one request cost each
//! side.
//!
//! The clients run on async-std's thread pool, as a bare async-std client would, and not
//! through `p2p_shared::runtime`, which runs a program on one thread: the load must not change
//! when the programs' runtime does.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use p2p_shared::runtime;

use crate::cpu::CpuTime;
use crate::stats::Summary;

/// What one load run did, kept whole so that the runs of a level can be added up.
pub struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// CPU time over the run: of the server process, and of this process (its clients).
    server_cpu: CpuTime,
    clients_cpu: CpuTime,
}

/// The figures of one or more runs taken together.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Requests answered per second, over the time of all the runs.
    pub per_second: f64,
    pub latency: Summary,
    /// CPU time per answered request: of the server process, and of this process (its
    /// clients).
    pub server_cpu: CpuTime,
    pub clients_cpu: CpuTime,
}

impl Throughput {
    /// All of `runs` as if they were one: every request answered, over their summed time.
    pub fn of(runs: Vec<Run>) -> anyhow::Result<Throughput> {
        let elapsed: Duration = runs.iter().map(|r| r.elapsed).sum();
        let server_cpu = runs.iter().map(|r| r.server_cpu).sum::<CpuTime>();
        let clients_cpu = runs.iter().map(|r| r.clients_cpu).sum::<CpuTime>();
        let latencies: Vec<Duration> = runs.into_iter().flat_map(|r| r.latencies).collect();
        let answered = latencies.len();
        let latency =
            Summary::of(latencies).context("no request was answered within the time limit")?;
        Ok(Throughput {
            per_second: answered as f64 / elapsed.as_secs_f64(),
            latency,
            server_cpu: server_cpu.per(answered),
            clients_cpu: clients_cpu.per(answered),
        })
    }
}

/// Runs `clients` concurrent clients of the server process `server` until `total` requests
/// are answered or `limit` passes. `request(client, n)` sends request number `n` for client
/// number `client`; the first failure stops the run with its error.
pub fn run<F, Fut>(
    server: u32,
    clients: usize,
    total: usize,
    limit: Duration,
    request: F,
) -> anyhow::Result<Run>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = (CpuTime::of(server)?, CpuTime::this()?);
    let start = Instant::now();
    let deadline = start + limit;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (request, next) = (Arc::clone(&request), Arc::clone(&next));
            async_std::task::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let sent = Instant::now();
                    request(client, n)
                        .await
                        .with_context(|| format!("request {n} of client {client}"))?;
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    let mut failure = None;
    runtime::block_on(async {
        for task in tasks {
            match task.await {
                Ok(latencies) => all.extend(latencies),
                Err(e) => failure = failure.take().or(Some(e)),
            }
        }
    });
    let elapsed = start.elapsed();
    let cpu_after = (CpuTime::of(server)?, CpuTime::this()?);
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Run {
        latencies: all,
        elapsed,
        server_cpu: cpu_after.0.since(cpu_before.0),
        clients_cpu: cpu_after.1.since(cpu_before.1),
    })
}
