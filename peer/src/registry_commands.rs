//! The registry's commands and the renewals between commands: `register`, `exit network`,
//! `release name`, and renewing the registration at a third of the time the registry grants
//! (registering again by itself when a restarted registry has forgotten it); looking a name
//! up for the other commands, with the book when the registry cannot answer.

use std::time::{Duration, Instant};

use p2p_shared::identity::NoiseKey;
use p2p_shared::{ErrorCode, PeerInfo, PeerName};

use crate::command_loop::CommandLoop;
use crate::error::{Failure, PeerError};
use crate::event::Event;
use crate::registry_client::Found;

/// How often to retry a renewal when the registry does not answer.
const RENEW_RETRY: Duration = Duration::from_secs(5);

impl CommandLoop {
    pub(crate) async fn register(&mut self) {
        match self.registry.register().await {
            Ok((addr, ttl)) => {
                self.registered = true;
                self.registry_lost = false;
                self.renew_at = Some(Instant::now() + renewal_interval(ttl));
                let name = self.origin.name;
                self.show(Event::Registered { name, addr }).await;
            }
            Err(e) if e.code() == Some(ErrorCode::NameTaken) => {
                let name = self.origin.name;
                self.error(PeerError::NameTaken { name }).await
            }
            Err(e) => self.error(self.registry_failure(&e)).await,
        }
    }

    pub(crate) async fn exit_network(&mut self) {
        match self.registry.unregister().await {
            Ok(()) => {
                self.registered = false;
                self.renew_at = None;
                self.show(Event::LeftNetwork).await;
            }
            Err(e) if e.code() == Some(ErrorCode::NotRegistered) => {
                self.registered = false;
                self.renew_at = None;
                let name = self.origin.name;
                self.error(PeerError::NotRegistered { name }).await;
            }
            Err(e) => self.error(self.registry_failure(&e)).await,
        }
    }

    /// Renews the registration; says once when the registry is lost, and again when it is
    /// back (a restarted registry forgot us, and this registers us again). These are no
    /// command's results: they always show, merged with an equal one still waiting.
    pub(crate) async fn renew(&mut self) {
        match self.registry.register().await {
            Ok((addr, ttl)) => {
                if self.registry_lost {
                    self.registry_lost = false;
                    let name = self.origin.name;
                    self.screen.push_state(Event::Reregistered { name, addr });
                }
                self.renew_at = Some(Instant::now() + renewal_interval(ttl));
            }
            Err(e) if e.code() == Some(ErrorCode::NameTaken) => {
                self.registered = false;
                self.renew_at = None;
                let why = Failure::of(&e, &self.registry.describe());
                let name = self.origin.name;
                let refused = PeerError::RegistrationRefused { name, why };
                self.screen.push_state(Event::Error(refused));
            }
            Err(e) => {
                if !self.registry_lost {
                    self.registry_lost = true;
                    let why = Failure::of(&e, &self.registry.describe());
                    let retry_secs = RENEW_RETRY.as_secs();
                    let known = self.broker.call(|state, _, _| state.live_peers().len());
                    let known = known.await.unwrap_or_default();
                    let lost = PeerError::RegistryLost {
                        why,
                        retry_secs,
                        known,
                    };
                    self.screen.push_state(Event::Error(lost));
                }
                self.renew_at = Some(Instant::now() + RENEW_RETRY);
            }
        }
    }

    pub(crate) async fn release_name(&mut self) {
        match self.registry.release().await {
            Ok(()) => {
                self.registered = false;
                self.renew_at = None;
                let name = self.origin.name;
                self.show(Event::Released { name }).await;
            }
            Err(e) => self.error(self.registry_failure(&e)).await,
        }
    }

    /// A failure to talk to the registry, as the user reads it.
    pub(crate) fn registry_failure(&self, e: &p2p_shared::transport::SendError) -> PeerError {
        PeerError::Registry(Failure::of(e, &self.registry.describe()))
    }

    /// Looks `name` up at the registry: where it is, its Noise static key if the registry
    /// had one its identity signed, and whether the key is vouched for (always, by the
    /// registry). With no registry to answer, the book says where `name` is: the key
    /// pinned for it, or the only key the book has for it (then not vouched for).
    pub(crate) async fn lookup(
        &mut self,
        name: &PeerName,
    ) -> Result<(PeerInfo, Option<NoiseKey>, bool), PeerError> {
        match self.registry.lookup(name).await {
            Ok(Found::Online(peer, noise)) => Ok((peer, noise, true)),
            Ok(Found::Offline(_)) => Err(PeerError::NotOnline { name: *name }),
            Err(e) if e.code() == Some(ErrorCode::UnknownPeer) => {
                Err(PeerError::UnknownPeer { name: *name })
            }
            Err(e) if crate::liveness::is_transient(&e) => {
                let name = *name;
                let booked = self
                    .broker
                    .call(move |state, cx, _| state.book_lookup(&name, cx));
                match booked.await.flatten() {
                    Some((peer, vouched)) => Ok((peer, None, vouched)),
                    None => Err(self.registry_failure(&e)),
                }
            }
            Err(e) => Err(self.registry_failure(&e)),
        }
    }
}

/// Renew at a third of the time granted: two renewals may fail before it lapses.
fn renewal_interval(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_millis(500), Duration::from_secs(600))
}
