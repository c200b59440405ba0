//! Where a program reads the time: the system's clock, or one a test moves by hand.
//!
//! Rules that depend on time (a registration lapses, a request expires) take the time as a
//! parameter, so their unit tests pass whatever instant they like. A test of a whole program
//! run in-process needs the same control one level up: the program reads its [`Clock`], and
//! a test that wants a registration to lapse moves a manual clock forward instead of waiting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of instants.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's monotonic clock.
    #[default]
    System,
    /// A clock that moves only when told ([`Clock::advance`]).
    Manual(Arc<Mutex<Instant>>),
}

impl Clock {
    /// A manual clock, starting at the system's now.
    pub fn manual() -> Clock {
        Clock::Manual(Arc::new(Mutex::new(Instant::now())))
    }

    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(now) => *now.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock forward by `by`; the system's clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(now) = self {
            *now.lock().unwrap_or_else(|p| p.into_inner()) += by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_every_copy_sees_it() {
        let clock = Clock::manual();
        let copy = clock.clone();
        let start = clock.now();
        assert_eq!(copy.now(), start);
        clock.advance(Duration::from_secs(61));
        assert_eq!(copy.now(), start + Duration::from_secs(61));
    }
}
