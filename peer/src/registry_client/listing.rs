//! `listpeer`'s side of the registry client: a listing fetched page by page, bounded in
//! peers and in pages, whatever a registry (a broken or lying one included) says it has.

use p2p_shared::transport::SendError;
use p2p_shared::{Outcome, PeerInfo, PeerName, RegistryRequest};

use super::RegistryClient;

/// The most peers `listpeer` keeps: far more than a LAN holds, and at most about a megabyte
/// of listing, whatever a registry (a lying one included) says it has. Beyond, paging stops
/// and the user is told ([`Listing::cut`]).
pub const MAX_LISTED: usize = 4096;

/// The most pages `listpeer` fetches: 16 full pages of 256 reach [`MAX_LISTED`]; short
/// pages (a broken or lying registry) stop here.
const MAX_PAGES: usize = 64;

/// What `listpeer` keeps of a registry's listing.
#[derive(Debug)]
pub struct Listing {
    /// At most [`MAX_LISTED`] peers, sorted by name.
    pub peers: Vec<PeerInfo>,
    /// The registry has more than these: paging stopped at the bound.
    pub cut: bool,
}

impl RegistryClient {
    /// The registered peers, sorted by name, fetched page by page, up to [`MAX_LISTED`] of
    /// them in [`MAX_PAGES`] pages.
    pub async fn list(&mut self) -> Result<Listing, SendError> {
        let mut all: Vec<PeerInfo> = Vec::new();
        let mut after: Option<PeerName> = None;
        for _ in 0..MAX_PAGES {
            let request = RegistryRequest::ListPeers { after };
            let (peers, next) = match self.ask(request).await? {
                Outcome::Peers { peers, next } => (peers, next),
                other => return Err(self.unexpected(other)),
            };
            all.extend(peers.into_iter().take(MAX_LISTED - all.len()));
            // Pages must move forward, or a broken registry could loop us forever.
            match next {
                Some(next) if after.as_ref().is_none_or(|a| next > *a) => after = Some(next),
                _ => {
                    return Ok(Listing {
                        peers: all,
                        cut: false,
                    })
                }
            }
            if all.len() >= MAX_LISTED {
                break;
            }
        }
        Ok(Listing {
            peers: all,
            cut: true,
        })
    }
}
