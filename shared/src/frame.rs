//! Framing: how one message is cut out of a TCP byte stream.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of body. The length is
//! checked against [`MAX_FRAME_LEN`] before anything is allocated, so a hostile sender cannot
//! make us reserve memory by announcing a huge frame.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;

/// The largest frame body, in bytes.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection closed before any frame")]
    Closed,
    #[error("empty frame")]
    Empty,
    #[error("frame too large ({0} bytes, the limit is {MAX_FRAME_LEN})")]
    TooLarge(usize),
    #[error("truncated frame (the connection closed in the middle)")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame and returns its body.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]).await {
            Ok(0) if filled == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => filled += n,
            // A signal, not an error: read again, as read_exact does for the body.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(body)
}

/// Writes one frame. Header and body go out in a single write, so Nagle's algorithm never
/// holds the body back waiting for the header's acknowledgement.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> Result<(), FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    fn read(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
        block_on(read_frame(&mut Cursor::new(bytes.to_vec())))
    }

    #[test]
    fn round_trip() {
        let mut out = Cursor::new(Vec::new());
        block_on(write_frame(&mut out, b"{\"v\":1}")).unwrap();
        let bytes = out.into_inner();
        assert_eq!(&bytes[..4], &[0, 0, 0, 7]);
        assert_eq!(read(&bytes).unwrap(), b"{\"v\":1}");
    }

    #[test]
    fn refuses_bad_frames_before_allocating() {
        assert!(matches!(read(&[]), Err(FrameError::Closed)));
        assert!(matches!(read(&[0, 0]), Err(FrameError::Truncated)));
        assert!(matches!(read(&[0, 0, 0, 0]), Err(FrameError::Empty)));
        assert!(matches!(
            read(&[0x7f, 0xff, 0xff, 0xff]),
            Err(FrameError::TooLarge(0x7fff_ffff))
        ));
        assert!(matches!(
            read(&[0, 0, 0, 100, b'{']),
            Err(FrameError::Truncated)
        ));
        let limit = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        assert!(matches!(read(&limit), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn refuses_to_write_what_it_would_refuse_to_read() {
        let mut out = Cursor::new(Vec::new());
        let big = vec![b'x'; MAX_FRAME_LEN + 1];
        assert!(matches!(
            block_on(write_frame(&mut out, &big)),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            block_on(write_frame(&mut out, b"")),
            Err(FrameError::Empty)
        ));
    }
}
