//! What is typed while a command runs is kept whole for the next prompt.
//!
//! rustyline puts the terminal in raw mode only while it edits a line, and between lines puts
//! back the mode it found. In the usual (canonical) mode the kernel echoes what is typed over
//! the command's output and keeps at most 4095 bytes of a line, dropping the rest without a
//! word: a long line pasted while a command ran arrived cut. So for the whole session the mode
//! rustyline finds is one without echo and without line editing, where typed-ahead bytes wait
//! in the kernel (which makes the typist wait when its buffer is full, rather than drop) until
//! the next prompt reads them. Ctrl-C still interrupts a running command (signals stay on),
//! and output is still processed (newlines still return the carriage). The mode the terminal
//! had is put back when the session ends.

use std::io;
use std::os::fd::AsFd;

use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, Termios};

/// The terminal's own mode, put back when this is dropped.
pub struct TypeAhead {
    original: Termios,
}

impl TypeAhead {
    /// Switches stdin's terminal to the type-ahead mode.
    pub fn hold() -> io::Result<TypeAhead> {
        let stdin = io::stdin();
        let original = termios::tcgetattr(stdin.as_fd())?;
        let mut held = original.clone();
        held.local_flags &= !(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::IEXTEN);
        held.input_flags &= !InputFlags::ICRNL;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &held)?;
        Ok(TypeAhead { original })
    }
}

impl Drop for TypeAhead {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, &self.original);
    }
}
