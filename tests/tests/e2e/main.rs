//! The end-to-end tests: the real programs on loopback, driven as a script or a person would.
//!
//! One test executable for all of them, so that their tests run side by side (most of a
//! test's time is waiting for a program), and the programs are built once. Each module is one
//! subject; docs/testing.md lists them.

mod bot;
mod chat;
mod cli;
mod data_folder;
mod exhaustion;
mod faults;
mod hostile;
mod in_process;
mod interface;
mod lan;
mod lifecycle;
mod living;
mod logs;
mod names;
mod network;
mod order;
mod output_attacks;
mod paste;
mod pty;
mod registry;
mod requests;
mod scripts;
mod security;
mod shared_store;
mod start;
mod terminal;
