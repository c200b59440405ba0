//! The registry's records in etcd, through its JSON gateway (`/v3/kv/*`, `/v3/lease/*`): one
//! function per question the registry asks, each one round trip.
//!
//! Keys, under a prefix (`p2p-chat/`):
//!
//! - `claims/NAME`: the key that owns the name, written once by a transaction that creates
//!   it only if it does not exist (compare `create_revision == 0`), deleted by a release:
//!   etcd's consensus is what makes "first key wins, never granted twice" hold across
//!   instances and machines;
//! - `peers/NAME`: `ADDR KEY`, on a lease whose TTL is the registration's: etcd drops it when
//!   the lease lapses, for every instance at once; a listing page is a range over these keys
//!   with a limit, after the last name of the page before;
//! - `statics/KEY`: the key's static proof (`store.rs` says why it is kept), as JSON;
//! - what the claim rules count (`register.rs`), one empty key per thing counted, so that a
//!   count is a range with `count_only` and a write that must not exceed it compares the
//!   range's newest `mod_revision`: `held/KEY/NAME` per name a key holds (deleted with its
//!   claim), `from/IP/NAME` per name registered from an address (on the registration's
//!   lease), `new/ip/IP/NAME/REV` and `new/net/NETWORK/NAME/REV` per new claim (on a lease of
//!   an hour).
//!
//! The gateway's JSON carries keys and values in base64 and 64-bit integers as strings, and
//! leaves out fields at their zero value (`succeeded: false`, an empty `kvs`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use data_encoding::BASE64;
use p2p_shared::handshake::StaticProof;
use p2p_shared::identity::PublicKey;
use p2p_shared::prefix::Prefix;
use p2p_shared::{PeerInfo, PeerName};
use serde_json::{json, Value};

use super::http::{Endpoints, HttpError};
use crate::registry::Removal;
use crate::store::StoreError;

const PREFIX: &str = "p2p-chat/";

pub struct Kv {
    endpoints: Endpoints,
    /// The lease the new-claim counts made by this thread go on, and when it was granted
    /// (`register.rs`).
    pub(super) budget: Option<(Instant, i64)>,
}

pub(super) fn claim_key(name: &PeerName) -> String {
    format!("{PREFIX}claims/{name}")
}

pub(super) fn peer_key(name: &PeerName) -> String {
    format!("{PREFIX}peers/{name}")
}

fn static_key(key: &PublicKey) -> String {
    format!("{PREFIX}statics/{key}")
}

/// The names `key` holds claims on, one key each.
pub(super) fn held_prefix(key: &PublicKey) -> String {
    format!("{PREFIX}held/{key}/")
}

/// The names registered from `ip` now, one key each.
pub(super) fn from_prefix(ip: IpAddr) -> String {
    format!("{PREFIX}from/{ip}/")
}

/// The new names claimed from `ip` in the last hour, one key each.
pub(super) fn new_from_address(ip: IpAddr) -> String {
    format!("{PREFIX}new/ip/{ip}/")
}

/// The new names claimed from `ip`'s network in the last hour, one key each.
pub(super) fn new_from_network(ip: IpAddr) -> String {
    format!("{PREFIX}new/net/{}/", Prefix::of(ip))
}

/// The end of the range of every key under `prefix` (which ends with `/`): the prefix with
/// its last byte plus one.
pub(super) fn prefix_end(prefix: &str) -> String {
    let stem = prefix.strip_suffix('/').unwrap_or(prefix);
    format!("{stem}0")
}

pub(super) fn b64(text: &str) -> String {
    BASE64.encode(text.as_bytes())
}

/// A base64 field of a reply, as text (`None` if absent or not base64 of UTF-8).
fn text(value: &Value) -> Option<String> {
    let bytes = BASE64.decode(value.as_str()?.as_bytes()).ok()?;
    String::from_utf8(bytes).ok()
}

/// The key-value pairs of a range reply. (The gateway leaves out an empty value, so a
/// missing one is empty.)
fn values(range: &Value) -> Vec<(String, String)> {
    let Some(kvs) = range.get("kvs").and_then(Value::as_array) else {
        return Vec::new();
    };
    kvs.iter()
        .filter_map(|kv| {
            let value = kv.get("value").map_or(Some(String::new()), text)?;
            Some((text(kv.get("key")?)?, value))
        })
        .collect()
}

/// The value of the first key of a range reply.
pub(super) fn first_value(range: &Value) -> Option<String> {
    values(range).into_iter().next().map(|(_, v)| v)
}

/// The `n`th response of a transaction, of `kind` (`response_range`, ...).
pub(super) fn response<'a>(txn: &'a Value, n: usize, kind: &str) -> &'a Value {
    &txn["responses"][n][kind]
}

/// Whether a transaction took its success branch.
pub(super) fn succeeded(txn: &Value) -> bool {
    txn.get("succeeded").and_then(Value::as_bool) == Some(true)
}

/// A registration's value: `ADDR KEY`.
pub(super) fn peer_value(addr: SocketAddr, key: &PublicKey) -> String {
    format!("{addr} {key}")
}

pub(super) fn parse_peer(name: &str, value: &str) -> Option<PeerInfo> {
    let (addr, key) = value.split_once(' ')?;
    Some(PeerInfo {
        name: name.parse().ok()?,
        addr: addr.parse().ok()?,
        key: key.parse().ok()?,
    })
}

/// An integer of a reply, which the gateway writes as a string.
pub(super) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => s.parse().ok(),
        other => other.as_i64(),
    }
}

impl Kv {
    /// `hosts`: the cluster's endpoints, `HOST:PORT`.
    pub fn new(hosts: Vec<String>) -> Kv {
        Kv {
            endpoints: Endpoints::new(hosts),
            budget: None,
        }
    }

    pub(super) fn call(&mut self, path: &str, body: Value) -> Result<Value, StoreError> {
        let reply = self
            .endpoints
            .post(path, body.to_string().as_bytes())
            .map_err(|e| match e {
                // etcd answering an error (no leader, a timeout of its own) is as good as
                // unreachable for the peer: nothing could be written.
                HttpError::Unreachable(_) | HttpError::Failed(_) => {
                    StoreError::unavailable(format!("etcd {e}"))
                }
            })?;
        serde_json::from_slice(&reply)
            .map_err(|e| StoreError::failed(format!("etcd sent a reply that is not JSON: {e}")))
    }

    fn range_one(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let reply = self.call("/v3/kv/range", json!({ "key": b64(key) }))?;
        Ok(first_value(&reply))
    }

    /// A new lease of `ttl_secs`.
    pub fn grant(&mut self, ttl_secs: u64) -> Result<i64, StoreError> {
        let reply = self.call("/v3/lease/grant", json!({ "TTL": ttl_secs.to_string() }))?;
        integer(&reply["ID"]).ok_or_else(|| StoreError::failed("etcd granted a lease with no id"))
    }

    /// Renews `lease`: false if it lapsed (or never was).
    /// Renews `lease` if `name`'s registration is still on it: false (nothing renewed) if the
    /// registration is gone, or was made again through another instance, on a lease of its
    /// own that only a renewal there would keep. Renewing ours then would tell the peer it is
    /// registered while its registration lapses. Two round trips: the check, the keepalive.
    pub fn renew(&mut self, name: &PeerName, lease: i64) -> Result<bool, StoreError> {
        let txn = json!({
            "compare": [{
                "key": b64(&peer_key(name)),
                "target": "LEASE",
                "lease": lease.to_string(),
                "result": "EQUAL",
            }],
        });
        if !succeeded(&self.call("/v3/kv/txn", txn)?) {
            return Ok(false);
        }
        self.keepalive(lease)
    }

    fn keepalive(&mut self, lease: i64) -> Result<bool, StoreError> {
        let reply = self.call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))?;
        Ok(integer(&reply["result"]["TTL"]).unwrap_or(0) > 0)
    }

    /// Ends `lease` and every key on it. A lease that is gone already is no failure.
    fn revoke(&mut self, lease: i64) -> Result<(), StoreError> {
        match self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() })) {
            Err(e) if e.to_string().contains("lease not found") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// `name`'s registration, if live, and its claim, in one read.
    pub fn lookup(
        &mut self,
        name: &PeerName,
    ) -> Result<(Option<PeerInfo>, Option<PublicKey>), StoreError> {
        let txn = json!({
            "success": [
                {"request_range": {"key": b64(&peer_key(name))}},
                {"request_range": {"key": b64(&claim_key(name))}},
            ],
        });
        let reply = self.call("/v3/kv/txn", txn)?;
        let peer = first_value(response(&reply, 0, "response_range"))
            .and_then(|v| parse_peer(name.as_str(), &v));
        let owner = first_value(response(&reply, 1, "response_range")).and_then(|v| v.parse().ok());
        // A registration is only as good as its claim: a released name's lease may outlive
        // the release by a moment on another instance.
        let peer = peer.filter(|p| Some(p.key) == owner);
        Ok((peer, owner))
    }

    /// Up to `limit` registrations after `after`, sorted by name; and whether more follow.
    pub fn page(
        &mut self,
        after: Option<&PeerName>,
        limit: usize,
    ) -> Result<(Vec<PeerInfo>, bool), StoreError> {
        let prefix = format!("{PREFIX}peers/");
        // After `after`: the smallest key greater than it is it with a zero byte appended.
        let start = match after {
            Some(after) => format!("{prefix}{after}\0"),
            None => prefix.clone(),
        };
        let body = json!({
            "key": b64(&start),
            "range_end": b64(&prefix_end(&prefix)),
            "limit": limit.to_string(),
        });
        let reply = self.call("/v3/kv/range", body)?;
        let peers = values(&reply)
            .into_iter()
            .filter_map(|(k, v)| parse_peer(k.strip_prefix(&prefix)?, &v))
            .collect();
        let more = reply.get("more").and_then(Value::as_bool) == Some(true);
        Ok((peers, more))
    }

    /// Removes `name`'s registration if `key` owns the name.
    pub fn unregister(&mut self, name: &PeerName, key: &PublicKey) -> Result<Removal, StoreError> {
        self.remove(name, key, false)
    }

    /// Removes `name`'s claim (and what counts it for `key`) and its registration if `key`
    /// owns the name. What it counted against its address's hourly budget stays: a release
    /// gives back no budget, as in the embedded store.
    pub fn release(&mut self, name: &PeerName, key: &PublicKey) -> Result<Removal, StoreError> {
        self.remove(name, key, true)
    }

    /// One transaction that checks the owner and deletes; then the registration's lease is
    /// revoked, which drops its count at its address (`from/IP/NAME`, on the same lease). If
    /// the revoke fails, that count lapses with the lease, within the TTL.
    fn remove(
        &mut self,
        name: &PeerName,
        key: &PublicKey,
        claim_too: bool,
    ) -> Result<Removal, StoreError> {
        let claim = b64(&claim_key(name));
        let mut deletes =
            vec![json!({"request_delete_range": {"key": b64(&peer_key(name)), "prev_kv": true}})];
        if claim_too {
            let held = format!("{}{name}", held_prefix(key));
            deletes.push(json!({"request_delete_range": {"key": claim}}));
            deletes.push(json!({"request_delete_range": {"key": b64(&held)}}));
        }
        let txn = json!({
            "compare": [{"key": claim, "target": "VALUE", "value": b64(&key.to_string()), "result": "EQUAL"}],
            "success": deletes,
            "failure": [{"request_range": {"key": claim}}],
        });
        let reply = self.call("/v3/kv/txn", txn)?;
        if !succeeded(&reply) {
            return Ok(
                match values(response(&reply, 0, "response_range")).is_empty() {
                    true => Removal::Unknown,
                    false => Removal::NotOwner,
                },
            );
        }
        let deleted = response(&reply, 0, "response_delete_range");
        let lease = deleted["prev_kvs"][0].get("lease").and_then(integer);
        if let Some(lease) = lease {
            self.revoke(lease)?;
        }
        Ok(match (claim_too, lease) {
            (false, None) => Removal::Unknown,
            _ => Removal::Done,
        })
    }

    /// Remembers `key`'s static proof.
    pub fn put_static(&mut self, key: &PublicKey, proof: &StaticProof) -> Result<(), StoreError> {
        let proof = serde_json::to_string(proof).expect("a proof serializes");
        let body = json!({"key": b64(&static_key(key)), "value": b64(&proof)});
        self.call("/v3/kv/put", body).map(|_| ())
    }

    /// `key`'s static proof, if remembered and readable.
    pub fn static_of(&mut self, key: &PublicKey) -> Result<Option<StaticProof>, StoreError> {
        let proof = self.range_one(&static_key(key))?;
        Ok(proof.and_then(|p| serde_json::from_str(&p).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_the_gateway_writes_them() {
        let key = p2p_shared::identity::Identity::generate().public();
        let value = peer_value("127.0.0.1:4000".parse().unwrap(), &key);
        let reply = json!({
            "kvs": [{"key": b64("p2p-chat/peers/alice"), "value": b64(&value), "create_revision": "2"}],
            "more": true,
        });
        let kvs = values(&reply);
        assert_eq!(kvs.len(), 1);
        let peer = parse_peer("alice", &kvs[0].1).unwrap();
        assert_eq!((peer.name.as_str(), peer.key), ("alice", key));
        assert_eq!(integer(&json!("694")), Some(694));
        assert!(values(&json!({"header": {}})).is_empty(), "no kvs: none");
        assert!(parse_peer("alice", "not a peer").is_none());
    }
}
