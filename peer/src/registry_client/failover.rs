//! Failing over between the instances of one registry (`--server a,b,c`, issue 16): a
//! request that fails in a way another instance may not is asked again there, once per
//! instance, in a new registry session (the one agreed with the instance left behind is
//! dropped). Every instance must present the registry's one pinned key (`check_key`).

use std::net::SocketAddr;
use std::time::Duration;

use p2p_shared::transport::SendError;
use p2p_shared::wire::RegistryRequest;
use p2p_shared::{ErrorCode, Outcome};

use super::RegistryClient;

/// Whether a request that failed this way may succeed at another instance of the registry:
/// this one is gone, cannot reach its store, is overloaded, or is not the registry.
fn fails_over(e: &SendError) -> bool {
    match e {
        SendError::Unreachable { .. }
        | SendError::Timeout { .. }
        | SendError::Broken { .. }
        | SendError::BadReply { .. } => true,
        SendError::Refused { code, .. } => {
            matches!(code, ErrorCode::Unavailable | ErrorCode::Busy)
        }
    }
}

impl RegistryClient {
    /// Whether `e`, from the instance asked now, sends us to the next one; moves there if
    /// so. `tried`: how many instances this request has been to.
    fn moved_on(&mut self, e: &SendError, tried: &mut usize) -> bool {
        *tried += 1;
        if !fails_over(e) || *tried >= self.instances.len() {
            return false;
        }
        let from = self.addr();
        self.current = (self.current + 1) % self.instances.len();
        // The session was agreed with the instance left behind.
        self.session = None;
        tracing::warn!("registry instance {from}: {e}; trying {}", self.addr());
        true
    }

    /// Registers us (or renews our registration); returns the address the registry recorded
    /// and how long the registration lasts unless renewed. Through the next instance if the
    /// one asked now fails.
    pub async fn register(&mut self) -> Result<(SocketAddr, Duration), SendError> {
        let mut tried = 0;
        loop {
            match self.register_here().await {
                Err(e) if self.moved_on(&e, &mut tried) => continue,
                other => return other,
            }
        }
    }

    /// One request, in our session if we have one, else signed; through the next instance
    /// if the one asked now fails.
    pub(super) async fn ask(&mut self, body: RegistryRequest) -> Result<Outcome, SendError> {
        let mut tried = 0;
        loop {
            match self.ask_here(body.clone()).await {
                Err(e) if self.moved_on(&e, &mut tried) => continue,
                other => return other,
            }
        }
    }
}
