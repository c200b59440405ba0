//! Which key each peer name means here: the pinned keys (`known.rs` keeps them on disk) and
//! the changed keys offered since, for `trust NAME`.
//!
//! Only a contact the user chose pins a key: a request we sent, or one we accepted. An
//! unsolicited request does not, or anyone could fill `known_peers` with names, or claim a
//! name here before its owner first asks.
//!
//! A name means something only in a namespace: the registry's that binds it (by the
//! registry's key), or, for names met while no registry is trusted, this peer's own. So pins
//! are kept per namespace (`@KEY/bob`, `@local/bob` in `known_peers`): the bob of one
//! community is not taken for the bob of another, nor for a bob met on a network with no
//! registry. Which namespace is in force comes with each call ([`Context`]), from the
//! registry the peer trusts at that moment.
//!
//! [`Context`]: crate::state::Context

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use p2p_shared::identity::{NoiseKey, PublicKey};
use p2p_shared::{ErrorCode, Outcome, PeerName};

use crate::error::PeerError;
use crate::event::Event;
use crate::known::{FileWrite, KnownKeys, Pin};
use crate::state::Effect;

/// How many changed keys are kept per name for `trust`.
const MAX_OFFERED: usize = 4;

/// Whose word a name is taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// No registry is trusted: names are this peer's own, trust on first use.
    Local,
    /// The registry with this key binds names to keys.
    Registry(PublicKey),
}

impl Namespace {
    /// The namespace of the registry trusted now, if any.
    pub fn of(registry: Option<PublicKey>) -> Namespace {
        registry.map_or(Namespace::Local, Namespace::Registry)
    }
}

/// A name in a namespace: what a pin in `known_peers` is for. Written `@local/NAME` or
/// `@KEY/NAME` (no name or key holds `@` or `/`); a line of protocol version 4 has a bare
/// `NAME`, which has no namespace until [`Pins::new`] gives it the one in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scoped {
    namespace: Option<Namespace>,
    name: PeerName,
}

impl Scoped {
    fn new(namespace: Namespace, name: PeerName) -> Scoped {
        Scoped {
            namespace: Some(namespace),
            name,
        }
    }
}

impl fmt::Display for Scoped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace {
            Some(Namespace::Local) => write!(f, "@local/{}", self.name),
            Some(Namespace::Registry(key)) => write!(f, "@{key}/{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

impl FromStr for Scoped {
    type Err = ();
    fn from_str(s: &str) -> Result<Scoped, ()> {
        let (namespace, name) = match s.strip_prefix('@') {
            Some(scoped) => {
                let (namespace, name) = scoped.split_once('/').ok_or(())?;
                let namespace = match namespace {
                    "local" => Namespace::Local,
                    key => Namespace::Registry(key.parse().map_err(|_| ())?),
                };
                (Some(namespace), name)
            }
            None => (None, s),
        };
        let name = name.parse().map_err(|_| ())?;
        Ok(Scoped { namespace, name })
    }
}

pub struct Pins {
    known: KnownKeys<Scoped>,
    /// Changed keys we refused, for `trust NAME FINGERPRINT`: the last few per name, so
    /// that one stranger's key offered after the real one does not push it out (several
    /// can; `trust` still pins only the key with the fingerprint typed, so that costs a
    /// retry, never a wrong pin). Only names pinned here get entries.
    offered: HashMap<Scoped, Vec<PublicKey>>,
}

impl Pins {
    /// The pins of `known`. Pins of protocol version 4, which had no namespaces, are carried
    /// over into `now`'s, the namespace in force at start-up (the registry the peer trusts,
    /// which is where they were most likely made); the file to write if there were any.
    pub fn new(mut known: KnownKeys<Scoped>, now: Namespace) -> (Pins, Option<FileWrite>) {
        let carried = known.rekey(|scoped| match scoped.namespace {
            None => Some(Scoped::new(now, scoped.name)),
            Some(_) => None,
        });
        let pins = Pins {
            known,
            offered: HashMap::new(),
        };
        (pins, carried)
    }

    /// Checks `key` against the one pinned for `name`, and pins it on first contact if
    /// `pin_new`. A changed key is refused (the outcome to answer with), with a warning the
    /// first time it is seen.
    pub fn check(
        &mut self,
        ns: Namespace,
        name: &PeerName,
        key: PublicKey,
        pin_new: bool,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Outcome> {
        let scoped = Scoped::new(ns, *name);
        match self.known.check(&scoped, &key) {
            Pin::Known => Ok(()),
            Pin::New if !pin_new => Ok(()),
            Pin::New => {
                fx.push(Effect::Write(self.known.pin(&scoped, key)));
                Ok(())
            }
            Pin::Changed { pinned } => {
                let offered = self.offered.entry(scoped).or_default();
                if !offered.contains(&key) {
                    if offered.len() == MAX_OFFERED {
                        offered.remove(0);
                    }
                    offered.push(key);
                    let warning = Event::KeyChanged {
                        peer: *name,
                        pinned: pinned.fingerprint(),
                        offered: key.fingerprint(),
                        pinned_key: pinned,
                        offered_key: key,
                    };
                    fx.push(Effect::Show(warning.into()));
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
        ns: Namespace,
        name: &PeerName,
        key: &PublicKey,
        static_key: NoiseKey,
    ) -> Option<FileWrite> {
        match self.vouches(ns, name, key) {
            true => self.known.pin_noise(&Scoped::new(ns, *name), static_key),
            false => None,
        }
    }

    /// The Noise static key known for `name`, if `key` is the one pinned for it.
    pub fn noise(&self, ns: Namespace, name: &PeerName, key: &PublicKey) -> Option<NoiseKey> {
        self.vouches(ns, name, key)
            .then(|| self.known.noise(&Scoped::new(ns, *name)))
            .flatten()
    }

    /// Drops the pin for `name` (`forget NAME`): the next contact is a first one again.
    pub fn forget(&mut self, ns: Namespace, name: &PeerName) -> Option<FileWrite> {
        self.offered.remove(&Scoped::new(ns, *name));
        self.known.unpin(&Scoped::new(ns, *name))
    }

    /// Every pin with its namespace (a pin of before namespaces has none until `new` gives
    /// it one, so every pin here has one).
    pub fn all(&self) -> Vec<(Namespace, PeerName, PublicKey)> {
        let scoped = self.known.entries();
        scoped
            .filter_map(|(s, key)| Some((s.namespace?, s.name, *key)))
            .collect()
    }

    /// The key pinned for `name`, if any.
    pub fn pinned(&self, ns: Namespace, name: &PeerName) -> Option<PublicKey> {
        self.known.get(&Scoped::new(ns, *name))
    }

    /// Whether `key` is the one pinned for `name`.
    pub fn vouches(&self, ns: Namespace, name: &PeerName, key: &PublicKey) -> bool {
        matches!(self.known.check(&Scoped::new(ns, *name), key), Pin::Known)
    }

    /// How `key` compares with what is pinned for `name`.
    #[cfg(test)]
    pub fn pin_of(&self, ns: Namespace, name: &PeerName, key: &PublicKey) -> Pin {
        self.known.check(&Scoped::new(ns, *name), key)
    }

    /// Pins the changed key `peer` last offered, if it has the `fingerprint` the user checked
    /// with `peer`: never whatever key came last, which an attacker may have sent.
    pub fn trust(
        &mut self,
        ns: Namespace,
        peer: &PeerName,
        fingerprint: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<PublicKey, PeerError> {
        let scoped = Scoped::new(ns, *peer);
        let offered = self
            .offered
            .get(&scoped)
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
        self.offered.remove(&scoped);
        fx.push(Effect::Write(self.known.pin(&scoped, key)));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use p2p_shared::identity::Identity;

    use super::*;

    fn bob() -> PeerName {
        "bob".parse().unwrap()
    }

    #[test]
    fn a_scoped_name_reads_back_as_written_and_nothing_else_passes_for_one() {
        let registry = Identity::generate().public();
        for scoped in [
            Scoped::new(Namespace::Local, bob()),
            Scoped::new(Namespace::Registry(registry), bob()),
        ] {
            assert_eq!(scoped.to_string().parse::<Scoped>(), Ok(scoped));
        }
        assert_eq!(
            Scoped::new(Namespace::Registry(registry), bob()).to_string(),
            format!("@{registry}/bob")
        );
        let legacy = "bob".parse::<Scoped>().unwrap();
        assert_eq!(legacy.namespace, None, "a line of version 4");
        for bad in [
            "@bob",
            "@local/",
            "@nokey/bob",
            "@local/b b",
            "@/bob",
            "b/ob",
        ] {
            assert!(bad.parse::<Scoped>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pin_speaks_only_in_its_namespace() {
        let (one, other) = (Identity::generate().public(), Identity::generate().public());
        let (first, second) = (Identity::generate().public(), Identity::generate().public());
        let (mut pins, _) = Pins::new(KnownKeys::empty(), Namespace::Local);
        let mut fx = Vec::new();
        let at_one = Namespace::Registry(one);
        pins.check(at_one, &bob(), first, true, &mut fx).unwrap();
        assert!(pins.vouches(at_one, &bob(), &first));
        assert!(pins.check(at_one, &bob(), second, true, &mut fx).is_err());
        // Another registry's bob, and the bob of a network with no registry, are others.
        for elsewhere in [Namespace::Registry(other), Namespace::Local] {
            assert_eq!(pins.pin_of(elsewhere, &bob(), &second), Pin::New);
            assert!(!pins.vouches(elsewhere, &bob(), &first));
        }
        // `trust` answers for the namespace the key was offered in.
        let fingerprint = second.fingerprint();
        let refused = pins.trust(Namespace::Local, &bob(), &fingerprint, &mut fx);
        assert!(refused.is_err());
        assert_eq!(
            pins.trust(at_one, &bob(), &fingerprint, &mut fx),
            Ok(second)
        );
    }

    #[test]
    fn pins_of_version_4_move_into_the_namespace_in_force_at_start() {
        let dir = std::env::temp_dir().join(format!("p2p-pins-carry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_peers");
        let (registry, bob_identity) = (Identity::generate().public(), Identity::generate());
        let (key, noise) = (bob_identity.public(), bob_identity.noise().public());
        std::fs::write(&path, format!("bob {key} {noise}\n")).unwrap();
        let now = Namespace::Registry(registry);
        let (pins, carried) = Pins::new(KnownKeys::load(path.clone()).unwrap(), now);
        assert!(pins.vouches(now, &bob(), &key));
        assert_eq!(pins.noise(now, &bob(), &key), Some(noise));
        let carried = carried.expect("the file is rewritten");
        assert_eq!(carried.contents, format!("@{registry}/bob {key} {noise}\n"));
        carried.perform().unwrap();
        let (_, again) = Pins::new(KnownKeys::load(path).unwrap(), Namespace::Local);
        assert!(again.is_none(), "carried over once");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
