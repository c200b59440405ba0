//! Framing: how one message is cut out of a TCP byte stream.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of body. The length is
//! checked against [`MAX_FRAME_LEN`] before anything is allocated, so a hostile sender cannot
//! make us reserve memory by announcing a huge frame.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io::{self, IoSlice};

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
    let len = read_header(reader).await?;
    read_body(reader, len).await
}

/// Reads a frame's 4-byte header and returns the body's length, checked before anything is
/// allocated; `Closed` if the sender left before any byte (a port probe).
pub async fn read_header<R: AsyncRead + Unpin>(reader: &mut R) -> Result<usize, FrameError> {
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
    Ok(len)
}

/// Reads a frame's body of `len` bytes (from [`read_header`]).
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
) -> Result<Vec<u8>, FrameError> {
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

/// Writes one frame. Header and body go out in a single gathering write (`writev`), so
/// Nagle's algorithm never holds the body back waiting for the header's acknowledgement, and
/// the body, up to a 64 KB page of peers, is not copied to sit behind its header. That takes
/// a writer with vectored writes, as async-std's `TcpStream` is; with `AsyncWrite`'s default
/// the header would go alone, and on a socket without `TCP_NODELAY` the body could wait.
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
    let header = (body.len() as u32).to_be_bytes();
    let mut slices = [IoSlice::new(&header), IoSlice::new(body)];
    let mut unwritten = &mut slices[..];
    while !unwritten.is_empty() {
        match writer.write_vectored(unwritten).await {
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => IoSlice::advance_slices(&mut unwritten, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
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

    /// A writer that takes at most three bytes per write, as a socket with a full buffer may.
    struct Narrow(Vec<u8>);

    impl AsyncWrite for Narrow {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_frame_written_a_few_bytes_at_a_time_arrives_whole() {
        let mut out = Narrow(Vec::new());
        block_on(write_frame(&mut out, b"0123456789")).unwrap();
        assert_eq!(out.0, b"\0\0\0\x0a0123456789");
        assert_eq!(read(&out.0).unwrap(), b"0123456789");
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
