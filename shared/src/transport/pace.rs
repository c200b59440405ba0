//! Reading a request against the clock: the first bytes soon, the rest at a minimum rate.
//!
//! A connection holds one of the receiver's few slots until its request is read, so a sender
//! that trickles its bytes (one a second) holds a slot for as long as the receiver waits. A
//! single deadline for the whole request cannot tell such a sender from one with a large
//! frame on a slow link; two can: the 4-byte header must arrive within [`FIRST_BYTES`] of the
//! accept, and the body within a time proportional to the length the header announced
//! ([`body_deadline`]), which a LAN meets with room to spare and a trickle never does.

use std::time::Duration;

use futures::io::AsyncRead;

use super::refusal::Refusal;
use crate::runtime;
use crate::wire::stream::{read_body, read_header, MAX_FRAME_LEN};

/// How long a receiver waits for a frame's 4-byte header after the accept.
pub const FIRST_BYTES: Duration = Duration::from_secs(2);

/// The slowest rate a frame's body may arrive at after its header, in bytes per second (a
/// LAN does thousands of times better).
pub const MIN_RATE: usize = 16 * 1024;

/// What every body gets on top of its length at [`MIN_RATE`]: a round trip or two of slack.
const BODY_SLACK: Duration = Duration::from_secs(1);

/// How long the body of a frame of `len` bytes may take after its header: 1 s, plus 1 s for
/// each 16 KiB announced; at most 5 s for the largest frame.
pub fn body_deadline(len: usize) -> Duration {
    BODY_SLACK
        + Duration::from_millis((len.min(MAX_FRAME_LEN) as u64 * 1000).div_ceil(MIN_RATE as u64))
}

/// Reads one frame's body within the deadlines above.
pub async fn read_request<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, Refusal> {
    let len = match runtime::timeout(FIRST_BYTES, read_header(reader)).await {
        Ok(len) => len?,
        Err(_) => return Err(Refusal::NoHeader),
    };
    let deadline = body_deadline(len);
    match runtime::timeout(deadline, read_body(reader, len)).await {
        Ok(body) => Ok(body?),
        Err(_) => Err(Refusal::SlowBody { len, deadline }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::stream::FrameError;

    #[test]
    fn a_body_may_take_longer_the_longer_it_is_but_never_long() {
        assert_eq!(body_deadline(1), Duration::from_millis(1_001));
        assert_eq!(body_deadline(MIN_RATE), Duration::from_secs(2));
        assert_eq!(body_deadline(MAX_FRAME_LEN), Duration::from_secs(5));
        assert_eq!(body_deadline(usize::MAX), Duration::from_secs(5));
    }

    #[test]
    fn frames_are_read_and_bad_headers_refused_before_allocating() {
        use futures::executor::block_on;
        use futures::io::Cursor;
        let read = |bytes: &[u8]| block_on(read_request(&mut Cursor::new(bytes.to_vec())));
        assert_eq!(read(&[0, 0, 0, 2, b'h', b'i']).unwrap(), b"hi");
        assert!(matches!(read(&[]), Err(Refusal::Frame(FrameError::Closed))));
        assert!(matches!(
            read(&[0, 0]),
            Err(Refusal::Frame(FrameError::Truncated))
        ));
        assert!(matches!(
            read(&[0, 0, 0, 0]),
            Err(Refusal::Frame(FrameError::Empty))
        ));
        let huge = read(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(huge, Err(Refusal::Frame(FrameError::TooLarge(_)))));
        let cut = read(&[0, 0, 0, 9, b'h']);
        assert!(matches!(cut, Err(Refusal::Frame(FrameError::Truncated))));
    }
}
