//! Which key each peer name means here: the pinned keys (`known.rs` keeps them on disk) and
//! the changed keys offered since, for `trust NAME`.
//!
//! Only a contact the user chose pins a key: a request we sent, or one we accepted. An
//! unsolicited request does not, or anyone could fill `known_peers` with names, or claim a
//! name here before its owner first asks.

use std::collections::HashMap;

use p2p_shared::identity::{NoiseKey, PublicKey};
use p2p_shared::{ErrorCode, Outcome, PeerName};

use crate::error::PeerError;
use crate::event::Event;
use crate::known::{FileWrite, KnownKeys, Pin};
use crate::state::Effect;

/// How many changed keys are kept per name for `trust`.
const MAX_OFFERED: usize = 4;

pub struct Pins {
    known: KnownKeys<PeerName>,
    /// Changed keys we refused, for `trust NAME FINGERPRINT`: the last few per name, so
    /// that one stranger's key offered after the real one does not push it out (several
    /// can; `trust` still pins only the key with the fingerprint typed, so that costs a
    /// retry, never a wrong pin). Only names pinned here get entries.
    offered: HashMap<PeerName, Vec<PublicKey>>,
}

impl Pins {
    pub fn new(known: KnownKeys<PeerName>) -> Pins {
        Pins {
            known,
            offered: HashMap::new(),
        }
    }

    /// Checks `key` against the one pinned for `name`, and pins it on first contact if
    /// `pin_new`. A changed key is refused (the outcome to answer with), with a warning the
    /// first time it is seen.
    pub fn check(
        &mut self,
        name: &PeerName,
        key: PublicKey,
        pin_new: bool,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Outcome> {
        match self.known.check(name, &key) {
            Pin::Known => Ok(()),
            Pin::New if !pin_new => Ok(()),
            Pin::New => {
                fx.push(Effect::Write(self.known.pin(name, key)));
                Ok(())
            }
            Pin::Changed { pinned } => {
                let offered = self.offered.entry(*name).or_default();
                if !offered.contains(&key) {
                    if offered.len() == MAX_OFFERED {
                        offered.remove(0);
                    }
                    offered.push(key);
                    fx.push(Effect::Show(Event::KeyChanged {
                        peer: *name,
                        pinned: pinned.fingerprint(),
                        offered: key.fingerprint(),
                    }));
                }
                Err(Outcome::error(
                    ErrorCode::KeyChanged,
                    format!("the key for {name} is not the one this peer knows"),
                ))
            }
        }
    }

    /// Records the Noise static key that `key`, pinned for `name`, proved in a handshake;
    /// the file to write if that changed anything.
    pub fn record_noise(
        &mut self,
        name: &PeerName,
        key: &PublicKey,
        static_key: NoiseKey,
    ) -> Option<FileWrite> {
        match self.vouches(name, key) {
            true => self.known.pin_noise(name, static_key),
            false => None,
        }
    }

    /// The Noise static key known for `name`, if `key` is the one pinned for it.
    pub fn noise(&self, name: &PeerName, key: &PublicKey) -> Option<NoiseKey> {
        self.vouches(name, key)
            .then(|| self.known.noise(name))
            .flatten()
    }

    /// Whether `key` is the one pinned for `name`.
    pub fn vouches(&self, name: &PeerName, key: &PublicKey) -> bool {
        matches!(self.known.check(name, key), Pin::Known)
    }

    /// How `key` compares with what is pinned for `name`.
    #[cfg(test)]
    pub fn pin_of(&self, name: &PeerName, key: &PublicKey) -> Pin {
        self.known.check(name, key)
    }

    /// Pins the changed key `peer` last offered, if it has the `fingerprint` the user checked
    /// with `peer`: never whatever key came last, which an attacker may have sent.
    pub fn trust(
        &mut self,
        peer: &PeerName,
        fingerprint: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<PublicKey, PeerError> {
        let offered = self
            .offered
            .get(peer)
            .ok_or(PeerError::NothingToTrust { peer: *peer })?;
        let Some(key) = offered
            .iter()
            .find(|k| k.fingerprint() == fingerprint)
            .copied()
        else {
            let offered: Vec<String> = offered.iter().map(PublicKey::fingerprint).collect();
            return Err(PeerError::NotOffered {
                peer: *peer,
                fingerprint: fingerprint.to_owned(),
                offered: offered.join(", "),
            });
        };
        self.offered.remove(peer);
        fx.push(Effect::Write(self.known.pin(peer, key)));
        Ok(key)
    }
}
