//! Ctrl-C, SIGTERM and SIGHUP (a closed terminal window): the first asks the program to stop
//! cleanly, a second one ends it at once (exit status 130).
//!
//! Both programs stop the same way: the registry answers what is in flight, the peer tells
//! its chat partners and the registry. The handler runs on a thread of `ctrlc`'s own, so the
//! request arrives on a channel that the program awaits with everything else.

use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the handler (once per process); the channel gets a message on the first signal.
pub fn stop_requests() -> Result<async_channel::Receiver<()>, ctrlc::Error> {
    let (tx, rx) = async_channel::bounded(1);
    static SIGNALLED: AtomicBool = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if SIGNALLED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        let _ = tx.try_send(());
    })?;
    Ok(rx)
}
