//! Frame decoding: `p2p_shared::wire::stream::read_frame` on any byte stream.
//!
//! Checks, for every input: no panic; the result is exactly what the frame format says
//! (a small model below); the same result whether the bytes arrive at once or in small
//! pieces with `Pending` in between; and memory: nothing at all is allocated for a frame that
//! is refused on its header, and never more than `MAX_FRAME_LEN` bytes in total.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::io::{AsyncRead, Cursor};
use libfuzzer_sys::fuzz_target;
use p2p_shared::wire::stream::{read_frame, FrameError, MAX_FRAME_LEN};

/// Counts what the code under test allocates while `TRACKING` is on.
struct Counting;

static TRACKING: AtomicBool = AtomicBool::new(false);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Relaxed) {
            TOTAL.fetch_add(layout.size(), Relaxed);
            LARGEST.fetch_max(layout.size(), Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Relaxed) {
            TOTAL.fetch_add(layout.size(), Relaxed);
            LARGEST.fetch_max(layout.size(), Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.load(Relaxed) {
            TOTAL.fetch_add(new_size, Relaxed);
            LARGEST.fetch_max(new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What reading one frame from `data` must give, written from docs/protocol.md.
#[derive(Debug, PartialEq)]
enum Expected<'a> {
    Closed,
    Empty,
    TooLarge(usize),
    Truncated,
    Body(&'a [u8]),
}

fn model(data: &[u8]) -> Expected<'_> {
    if data.is_empty() {
        return Expected::Closed;
    }
    if data.len() < 4 {
        return Expected::Truncated;
    }
    let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
    if len == 0 {
        Expected::Empty
    } else if len > MAX_FRAME_LEN {
        Expected::TooLarge(len)
    } else if data.len() - 4 < len {
        Expected::Truncated
    } else {
        Expected::Body(&data[4..4 + len])
    }
}

/// Hands out its bytes a few at a time, saying `Pending` before every piece, as a slow
/// socket would.
struct Trickle<'a> {
    data: &'a [u8],
    pos: usize,
    step: usize,
    ready: bool,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        // 1, 2, 3, ... 7 bytes per read, then again.
        self.step = self.step % 7 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

fn same(got: &Result<Vec<u8>, FrameError>, want: &Expected<'_>) -> bool {
    match (got, want) {
        (Ok(body), Expected::Body(b)) => body.as_slice() == *b,
        (Err(FrameError::Closed), Expected::Closed)
        | (Err(FrameError::Empty), Expected::Empty)
        | (Err(FrameError::Truncated), Expected::Truncated) => true,
        (Err(FrameError::TooLarge(n)), Expected::TooLarge(m)) => n == m,
        _ => false,
    }
}

fuzz_target!(
    init: {
        // block_on sets up its thread-local waker on first use; keep that out of the count.
        let _ = block_on(read_frame(&mut Cursor::new(&[0u8, 0, 0, 1, 0][..])));
    },
    |data: &[u8]| {
        let want = model(data);

        TOTAL.store(0, Relaxed);
        LARGEST.store(0, Relaxed);
        TRACKING.store(true, Relaxed);
        let got = block_on(read_frame(&mut Cursor::new(data)));
        TRACKING.store(false, Relaxed);
        let (total, largest) = (TOTAL.load(Relaxed), LARGEST.load(Relaxed));

        assert!(same(&got, &want), "read {got:?}, expected {want:?}");
        assert!(largest <= MAX_FRAME_LEN, "allocated {largest} bytes at once");
        assert!(total <= MAX_FRAME_LEN, "allocated {total} bytes in all");
        if matches!(
            want,
            Expected::Closed | Expected::Empty | Expected::TooLarge(_)
        ) || data.len() < 4
        {
            assert_eq!(total, 0, "allocated for a frame refused on its header");
        }

        let slow = block_on(read_frame(&mut Trickle {
            data,
            pos: 0,
            step: data.len(),
            ready: false,
        }));
        assert!(same(&slow, &want), "read {slow:?} piecewise, expected {want:?}");
    }
);
