//! The registry run in-process, with a clock the test moves: for what a separate process adds
//! nothing to. A registration lapses the moment the test moves the clock past its time, with
//! no waiting, and the registry's events arrive as values on a channel, not lines to parse.
//! (The black-box tests in the other modules keep what only a real process shows: its stdout,
//! its exit, its signals.)

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use p2p_e2e::{json, outcome, Identity, PublicKey, Signer};
use p2p_server::event::Event;
use p2p_server::log::{Events, Log};
use p2p_server::{Config, Store};
use p2p_shared::clock::Clock;
use p2p_shared::runtime;

const TTL: Duration = Duration::from_secs(60);

/// A registry served by a thread of this test process.
struct Registry {
    addr: SocketAddr,
    key: PublicKey,
    clock: Clock,
    events: Events,
    stop: async_channel::Sender<()>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Registry {
    /// A registry with its claims in memory and a manual clock, on a loopback address of its
    /// own: the other tests listen on 127.0.0.1, so once it stops, no other test's listener
    /// can take its address (a port freed on 127.0.0.1 was taken by another test once, and
    /// `a_stopped_registry_says_so_last_and_answers_no_more` then found it open).
    fn start() -> Registry {
        let listener = runtime::listen("127.0.0.93:0".parse().unwrap()).expect("a loopback port");
        let addr = listener.local_addr().unwrap();
        let identity = Identity::generate();
        let key = identity.public();
        let clock = Clock::manual();
        let config = Config {
            identity,
            store: Store::Embedded(Config::open_claims(None).expect("claims in memory")),
            capacity: p2p_server::CAPACITY,
            ttl: TTL,
            names: p2p_server::NameLimits {
                per_address: 64,
                per_prefix: 256,
                per_key: 4,
            },
            limits: Default::default(),
            clock: clock.clone(),
        };
        let (log, events) = Log::channel();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            let shutdown = async move {
                let _ = stopped.recv().await;
            };
            runtime::block_on(p2p_server::run(listener, config, log, shutdown))
        });
        Registry {
            addr,
            key,
            clock,
            events,
            stop,
            thread: Some(thread),
        }
    }

    /// The next event the registry reports (within 10 s).
    fn next_event(&self) -> Event {
        let next = runtime::timeout(Duration::from_secs(10), self.events.next());
        match runtime::block_on(next) {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the registry stopped"),
            Err(_) => panic!("no event from the registry within 10 s"),
        }
    }

    /// Waits for `event`, skipping others.
    fn expect_event(&self, event: Event) {
        while self.next_event() != event {}
    }

    /// `who`'s signed `register`: the outcome.
    fn register(&self, who: &Signer) -> String {
        let reply = who.request(self.addr, json!({ "type": "register" }));
        assert_eq!(reply["from"]["key"], self.key.to_string(), "{reply}");
        outcome(&reply)
    }

    fn lookup(&self, name: &str) -> String {
        let reply = Signer::tester().request(self.addr, json!({ "type": "lookup", "name": name }));
        outcome(&reply)
    }

    /// Stops the registry; what `run` returned.
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.try_send(());
        let thread = self.thread.take().expect("running");
        thread.join().expect("the registry's thread")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_registration_lapses_when_its_time_is_up_but_the_name_stays_its_keys() {
    let registry = Registry::start();
    let alice = Signer::new("alice", "127.0.0.1:40001");
    assert_eq!(registry.register(&alice), "registered");
    registry.expect_event(Event::Registered {
        name: "alice".parse().unwrap(),
        addr: "127.0.0.1:40001".parse().unwrap(),
        key: alice.key(),
    });
    registry.clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(registry.lookup("alice"), "peer", "not yet");

    registry.clock.advance(Duration::from_secs(1));
    assert_eq!(
        registry.lookup("alice"),
        "claimed",
        "lapsed at once: no address, though the name still means her key"
    );
    // The sweep reports it; nobody else may take the name meanwhile.
    registry.expect_event(Event::Expired {
        name: "alice".parse().unwrap(),
    });
    let mallory = Signer::new("alice", "127.0.0.1:40002");
    assert_eq!(registry.register(&mallory), "name_taken");
    assert_eq!(registry.register(&alice), "registered");
    assert_eq!(registry.lookup("alice"), "peer");
}

#[test]
fn a_renewal_moves_the_deadline() {
    let registry = Registry::start();
    let alice = Signer::new("alice", "127.0.0.1:40001");
    assert_eq!(registry.register(&alice), "registered");
    registry.clock.advance(TTL / 2);
    assert_eq!(registry.register(&alice), "registered");
    registry.clock.advance(TTL / 2 + Duration::from_secs(1));
    assert_eq!(registry.lookup("alice"), "peer", "renewed half way");
    registry.clock.advance(TTL / 2);
    assert_eq!(registry.lookup("alice"), "claimed", "lapsed: no address");
}

#[test]
fn a_stopped_registry_says_so_last_and_answers_no_more() {
    let registry = Registry::start();
    let alice = Signer::new("alice", "127.0.0.1:40001");
    assert_eq!(registry.register(&alice), "registered");
    let addr = registry.addr;
    let events = registry.events.clone_receiver();
    registry.stop().expect("a clean stop");
    let mut last = None;
    while let Ok(Some(event)) =
        runtime::block_on(runtime::timeout(Duration::from_secs(10), events.next()))
    {
        last = Some(event);
    }
    assert_eq!(last, Some(Event::Stopped));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed"
    );
}
