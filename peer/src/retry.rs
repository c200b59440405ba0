//! Trying again, with backoff, for a bounded time.
//!
//! Used for chat messages and liveness pings: a transient failure (nobody answered, the
//! connection broke) is retried after 100 ms, then 200 ms, 400 ms, ... up to 2 s between
//! tries, until the time given runs out.

use std::future::Future;
use std::time::{Duration, Instant};

use p2p_shared::runtime;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// What one try came to.
pub enum Attempt<T, E> {
    /// Final: success, or a failure that retrying will not change.
    Done(T),
    /// A transient failure, and why.
    Again(E),
}

/// Runs `attempt` until it is done or `within` has passed; then the last transient failure.
pub async fn retry<T, E, F, Fut>(within: Duration, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let deadline = Instant::now() + within;
    let mut delay = FIRST_DELAY;
    loop {
        match attempt().await {
            Attempt::Done(result) => return Ok(result),
            Attempt::Again(why) => {
                if Instant::now() + delay > deadline {
                    return Err(why);
                }
                runtime::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_transient_failures_until_success() {
        let mut tries = 0;
        let result: Result<u32, &str> = runtime::block_on(retry(Duration::from_secs(5), || {
            tries += 1;
            let n = tries;
            async move {
                if n < 3 {
                    Attempt::Again("not yet")
                } else {
                    Attempt::Done(n)
                }
            }
        }));
        assert_eq!(result, Ok(3));
    }

    #[test]
    fn gives_up_when_the_time_is_out_and_never_retries_a_final_answer() {
        let result: Result<(), &str> =
            runtime::block_on(retry(Duration::ZERO, || async { Attempt::Again("down") }));
        assert_eq!(result, Err("down"));
        let mut tries = 0;
        let result: Result<&str, &str> = runtime::block_on(retry(Duration::from_secs(5), || {
            tries += 1;
            async { Attempt::Done("refused") }
        }));
        assert_eq!((result, tries), (Ok("refused"), 1));
    }
}
