//! `p2p-peer`: a command-driven peer of the p2p-chat network. The program is the library
//! `p2p_peer` (see `lib.rs`); this is its entry point.

fn main() -> std::process::ExitCode {
    p2p_peer::main()
}
