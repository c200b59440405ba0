//! A registration on etcd that keeps the claim rules across every instance: read what the
//! rules count, decide (`rules.rs`), and write in one transaction that holds only if nothing
//! counted changed since the read.
//!
//! Each count is a range of empty keys, one per thing counted (`kv.rs` lists them), read
//! with `count_only`. The write compares each counted range's newest `mod_revision` with the
//! revision of the read: a key added to it since (another instance's claim for the same key,
//! say) fails the compare, and the failed transaction reads the counts again, so the next
//! attempt decides on fresh counts without another round trip. Keys leaving a range (a lease
//! lapsing) only lower a count and fail nothing. So every limit is exact across instances; a
//! registration that loses [`ATTEMPTS`] races in a row is answered `busy` and the peer
//! tries again.
//!
//! A new registration is three round trips: the read, a lease for it, the write.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_shared::identity::PublicKey;
use p2p_shared::PeerName;
use serde_json::{json, Value};

use super::kv::{self, b64, first_value, integer, parse_peer, prefix_end, response, Kv};
use super::rules::{decide, Plan, Snapshot};
use crate::claim_budget::CLAIM_WINDOW;
use crate::registry::{NameLimits, Registration};
use crate::store::StoreError;

/// How many times a registration decides again after losing a race.
const ATTEMPTS: usize = 8;

/// How long one lease carries the new-claim counts of one thread: a count lasts until its
/// lease ends, an hour after it was granted, so a claim counts for 55 to 60 minutes, as
/// in the embedded store (`claim_budget.rs`).
const BUDGET_LEASE_USE: Duration = Duration::from_secs(5 * 60);

/// One registration attempt: who asks for what, from where.
struct Asked<'a> {
    name: &'a PeerName,
    key: PublicKey,
    addr: SocketAddr,
}

impl Asked<'_> {
    fn claim(&self) -> String {
        kv::claim_key(self.name)
    }

    fn peer(&self) -> String {
        kv::peer_key(self.name)
    }

    /// The ranges a [`Snapshot`] is read from, in the order [`Asked::snapshot`] reads them.
    fn reads(&self) -> Value {
        let count = |prefix: String| {
            json!({"request_range": {
                "key": b64(&prefix), "range_end": b64(&prefix_end(&prefix)), "count_only": true,
            }})
        };
        let ip = self.addr.ip();
        json!([
            {"request_range": {"key": b64(&self.claim())}},
            {"request_range": {"key": b64(&self.peer())}},
            count(kv::from_prefix(ip)),
            count(kv::held_prefix(&self.key)),
            count(kv::new_from_address(ip)),
            count(kv::new_from_network(ip)),
        ])
    }

    /// The counts in a transaction's reply whose responses are [`Asked::reads`].
    fn snapshot(&self, txn: &Value) -> Result<Snapshot, StoreError> {
        let range = |n| response(txn, n, "response_range");
        let count = |n| integer(&range(n)["count"]).unwrap_or(0).max(0) as usize;
        let revision = integer(&txn["header"]["revision"])
            .ok_or_else(|| StoreError::failed("etcd answered without a revision"))?;
        let owner = match first_value(range(0)) {
            Some(owner) => Some(
                owner
                    .parse()
                    .map_err(|_| StoreError::failed("etcd holds a claim that is not a key"))?,
            ),
            None => None,
        };
        let registered_at = first_value(range(1))
            .and_then(|v| parse_peer(self.name.as_str(), &v))
            .map(|peer| peer.addr);
        Ok(Snapshot {
            revision,
            owner,
            registered_at,
            from_here: count(2),
            held: count(3),
            new_from_address: count(4),
            new_from_network: count(5),
        })
    }

    /// The write of `plan`, made at `snapshot`: registered on `lease`, and if it claims, its
    /// new-claim counts on `budget`. Its failure branch reads the counts again.
    fn write(&self, snapshot: &Snapshot, plan: &Plan, lease: i64, budget: i64) -> Value {
        let ip = self.addr.ip();
        // Nothing in the range changed after the read (a range without keys passes).
        let unchanged = |prefix: String| {
            json!({"key": b64(&prefix), "range_end": b64(&prefix_end(&prefix)),
                "target": "MOD", "mod_revision": (snapshot.revision + 1).to_string(),
                "result": "LESS"})
        };
        let put = |key: String, lease: i64| json!({"request_put": {"key": b64(&key), "value": "", "lease": lease.to_string()}});
        let mut compare = vec![json!({"key": b64(&self.peer()), "target": "MOD",
            "mod_revision": (snapshot.revision + 1).to_string(), "result": "LESS"})];
        let mut success = Vec::new();
        if plan.claim {
            compare.push(json!({"key": b64(&self.claim()), "target": "CREATE",
                "create_revision": "0", "result": "EQUAL"}));
            compare.push(unchanged(kv::held_prefix(&self.key)));
            compare.push(unchanged(kv::new_from_address(ip)));
            compare.push(unchanged(kv::new_from_network(ip)));
            let (name, at) = (self.name, snapshot.revision);
            success.push(json!({"request_put": {
                "key": b64(&self.claim()), "value": b64(&self.key.to_string()),
            }}));
            success.push(put(format!("{}{name}", kv::held_prefix(&self.key)), 0));
            success.push(put(
                format!("{}{name}/{at}", kv::new_from_address(ip)),
                budget,
            ));
            success.push(put(
                format!("{}{name}/{at}", kv::new_from_network(ip)),
                budget,
            ));
        } else {
            // Still this key's: a release since the read makes it a new claim again.
            compare.push(json!({"key": b64(&self.claim()), "target": "VALUE",
                "value": b64(&self.key.to_string()), "result": "EQUAL"}));
        }
        if plan.moving_in {
            compare.push(unchanged(kv::from_prefix(ip)));
        }
        if let Some(old) = plan.moved_from {
            let gone = format!("{}{}", kv::from_prefix(old), self.name);
            success.push(json!({"request_delete_range": {"key": b64(&gone)}}));
        }
        success.push(json!({"request_put": {
            "key": b64(&self.peer()),
            "value": b64(&kv::peer_value(self.addr, &self.key)),
            "lease": lease.to_string(),
        }}));
        success.push(put(format!("{}{}", kv::from_prefix(ip), self.name), lease));
        json!({"compare": compare, "success": success, "failure": self.reads()})
    }
}

impl Kv {
    /// Registers `name` at `addr` for `key` within `limits`, on a new lease of `ttl_secs`,
    /// claiming the name if it is free: the lease, or the rule that refused it.
    pub fn register(
        &mut self,
        name: &PeerName,
        (addr, key): (SocketAddr, PublicKey),
        limits: &NameLimits,
        ttl_secs: u64,
        now: Instant,
    ) -> Result<Result<i64, Registration>, StoreError> {
        let asked = Asked { name, key, addr };
        let read = self.call("/v3/kv/txn", json!({"success": asked.reads()}))?;
        let mut snapshot = asked.snapshot(&read)?;
        let mut lease = None;
        for _ in 0..ATTEMPTS {
            let plan = match decide(&snapshot, key, addr, limits) {
                Ok(plan) => plan,
                Err(refused) => return Ok(Err(refused)),
            };
            let lease = match lease {
                Some(lease) => lease,
                None => *lease.insert(self.grant(ttl_secs)?),
            };
            let budget = match plan.claim {
                true => self.budget_lease(now)?,
                false => 0,
            };
            let reply = self
                .call("/v3/kv/txn", asked.write(&snapshot, &plan, lease, budget))
                .inspect_err(|_| {
                    // Perhaps the budget lease is gone: the next claim takes a new one.
                    self.budget = None;
                })?;
            if kv::succeeded(&reply) {
                return Ok(Ok(lease));
            }
            snapshot = asked.snapshot(&reply)?;
        }
        Err(StoreError::failed(format!(
            "{name}: {ATTEMPTS} registrations in a row raced with others for the same counts"
        )))
    }

    /// The lease for new-claim counts made now: this thread's, granted for an hour, renewed
    /// every [`BUDGET_LEASE_USE`].
    fn budget_lease(&mut self, now: Instant) -> Result<i64, StoreError> {
        if let Some((granted, lease)) = self.budget {
            if now.saturating_duration_since(granted) < BUDGET_LEASE_USE {
                return Ok(lease);
            }
        }
        let lease = self.grant(CLAIM_WINDOW.as_secs())?;
        self.budget = Some((now, lease));
        Ok(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::BASE64;
    use p2p_shared::identity::Identity;

    fn asked(name: &PeerName) -> Asked<'_> {
        Asked {
            name,
            key: Identity::generate().public(),
            addr: "10.0.0.1:4000".parse().unwrap(),
        }
    }

    #[test]
    fn the_counts_are_read_as_the_gateway_writes_them() {
        let name: PeerName = "alice".parse().unwrap();
        let asked = asked(&name);
        let owner = Identity::generate().public();
        let peer = kv::peer_value("10.0.0.2:1".parse().unwrap(), &owner);
        // Counts of zero and empty ranges are left out by the gateway.
        let reply = json!({
            "header": {"revision": "41"},
            "responses": [
                {"response_range": {"kvs": [{"key": b64("k"), "value": b64(&owner.to_string())}], "count": "1"}},
                {"response_range": {"kvs": [{"key": b64("k"), "value": b64(&peer)}], "count": "1"}},
                {"response_range": {"count": "3"}},
                {"response_range": {}},
                {"response_range": {"count": "2"}},
                {"response_range": {"count": "7"}},
            ],
        });
        let snapshot = asked.snapshot(&reply).unwrap();
        assert_eq!(
            snapshot,
            Snapshot {
                revision: 41,
                owner: Some(owner),
                registered_at: Some("10.0.0.2:1".parse().unwrap()),
                from_here: 3,
                held: 0,
                new_from_address: 2,
                new_from_network: 7,
            }
        );
        assert!(asked.snapshot(&json!({})).is_err(), "no revision");
    }

    #[test]
    fn a_claim_writes_only_if_no_count_changed_since_the_read() {
        let name: PeerName = "alice".parse().unwrap();
        let asked = asked(&name);
        let snapshot = Snapshot {
            revision: 41,
            ..Snapshot::default()
        };
        let plan = Plan {
            claim: true,
            moving_in: true,
            moved_from: None,
        };
        let txn = asked.write(&snapshot, &plan, 7, 9);
        let compares: Vec<(String, String)> = txn["compare"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let key = String::from_utf8(
                    BASE64
                        .decode(c["key"].as_str().unwrap().as_bytes())
                        .unwrap(),
                )
                .unwrap();
                (key, c["target"].as_str().unwrap().to_owned())
            })
            .collect();
        let key = asked.key;
        let want = [
            ("p2p-chat/peers/alice".to_owned(), "MOD"),
            ("p2p-chat/claims/alice".to_owned(), "CREATE"),
            (format!("p2p-chat/held/{key}/"), "MOD"),
            ("p2p-chat/new/ip/10.0.0.1/".to_owned(), "MOD"),
            ("p2p-chat/new/net/10.0.0.0/24/".to_owned(), "MOD"),
            ("p2p-chat/from/10.0.0.1/".to_owned(), "MOD"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, t)| (k.clone(), t.to_string()))
            .collect();
        assert_eq!(compares, want);
        for compare in txn["compare"].as_array().unwrap() {
            if compare["target"] == "MOD" {
                assert_eq!(compare["mod_revision"], "42");
                assert_eq!(compare["result"], "LESS");
            }
        }
        // The failure branch is the read: a lost race costs no extra round trip.
        assert_eq!(txn["failure"], asked.reads());
        // Six writes: the claim, what counts it (3) and the registration (2).
        assert_eq!(txn["success"].as_array().unwrap().len(), 6);
    }
}
