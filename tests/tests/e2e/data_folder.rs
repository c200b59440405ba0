//! One data folder shared by peers of different names, as README's quick start runs them
//! (both on the default folder): what each peer writes there is its own, and nothing one
//! writes is lost to the other (issue 17, item 3; docs/decisions.md, "One data folder,
//! several names").

use p2p_e2e::{DataDir, Peer};

/// No line of `log` is a warning.
#[track_caller]
fn no_warning(peer: &Peer) {
    let log = peer.take_log();
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("WARN")).collect();
    assert!(warnings.is_empty(), "{}: {warnings:?}", peer.name());
}

#[test]
fn two_names_on_one_data_folder_each_keep_the_pin_it_made_across_a_restart() {
    let shared = DataDir::new("shared");
    let start = |name: &str| Peer::builder(name).data_dir(shared.path()).start();
    let (mut alice, mut carol) = (start("alice"), start("carol"));
    let (bob, dave) = (Peer::start_offline("bob"), Peer::start_offline("dave"));
    // Each pins its partner's key (a request sent pins the key that answered), both while
    // the other runs: before, each rewrote one shared `known_peers` from what it had in
    // memory, and the pin of the one that wrote first was lost.
    alice.chat_with(&bob);
    carol.chat_with(&dave);
    alice.say(&bob, "hello from alice");
    carol.say(&dave, "hello from carol");
    alice.exit();
    carol.exit();
    no_warning(&alice);
    no_warning(&carol);

    // Started again on the same folder, each vouches for its partner by the pin alone (there
    // is no registry): a request from the partner is not marked unverified.
    let (mut alice, mut carol) = (start("alice"), start("carol"));
    for (me, partner) in [(&alice, &bob), (&carol, &dave)] {
        partner.send(&format!("chat request 127.0.0.1 {}", me.port()));
        partner.expect_prefix(&format!("chat request sent to {}", me.name()));
        me.expect_request_vouched(partner.name(), partner.addr(), &partner.fingerprint(), true);
    }
    alice.exit();
    carol.exit();
    no_warning(&alice);
    no_warning(&carol);
}
