//! [`HeadTailBuffer`]: a bounded, thread-safe record of a byte stream that keeps its first and
//! last bytes, counts all of them, renders them as text, and lets threads wait for more.
//!
//! The buffer knows nothing about processes: a writer (usually a pipe-reader thread) calls
//! [`HeadTailBuffer::write`] and finally [`HeadTailBuffer::close`]; readers render snapshots,
//! optionally from a cursor, and block on [`HeadTailBuffer::wait_closed`] or
//! [`HeadTailBuffer::wait_for_output`].
//!
//! # What is kept
//!
//! The first [`BufferConfig::head_bytes`] bytes (the head) and the last
//! [`BufferConfig::tail_bytes`] bytes (the tail). Everything between is counted and shown as an
//! omission marker. Memory is bounded by the two sizes plus a few bytes of UTF-8 context, whatever
//! is written; both parts are allocated only as output arrives.
//!
//! # How it renders
//!
//! 1. Nothing omitted: the whole stream, and no [`Truncation`].
//! 2. Something omitted: head, `"\n\n... [omitted N bytes] ...\n\n"`, tail, with a [`Truncation`]
//!    whose `retained_bytes` is the byte length of the rendered text.
//! 3. Lines longer than [`BufferConfig::max_line_bytes`] are cut at a character boundary to at
//!    most `max_line_bytes - 16` bytes followed by `" ... [truncated]"`; head and tail are cut
//!    separately when something was omitted between them.
//! 4. Invalid UTF-8 becomes U+FFFD, one per maximal invalid sequence; a character split by the
//!    head/tail boundary is dropped whole.
//!
//! # UTF-8 at the edges
//!
//! The stream is decoded as [`String::from_utf8_lossy`] would decode all of it: into units, each
//! one valid character or one maximal invalid sequence (one U+FFFD). Where the rendering skips
//! bytes (the omitted middle, or a cursor), a unit is shown only if it begins inside the shown
//! part, and a valid character cut by the end of the head is dropped whole. Three bytes of context
//! on each side of an edge decide this exactly, so the buffer keeps them; the result does not
//! depend on how the bytes were split into writes.
//!
//! While the buffer is open, an incomplete UTF-8 sequence at the very end is held back: it is not
//! shown and [`Rendered::next_cursor`] stops before it, so a cursor never points inside a
//! character. Once closed, such a sequence is shown as U+FFFD.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::pattern::{self, LineMatch, LineSplitter, Pattern};
use crate::render::{self, UNIT_CONTEXT};

pub use crate::render::TRUNCATION_SUFFIX;

/// Default size of the head: the first bytes of the stream that are kept.
pub const DEFAULT_HEAD_BYTES: usize = 16384;

/// Default size of the tail: the last bytes of the stream that are kept.
pub const DEFAULT_TAIL_BYTES: usize = 16384;

/// Default longest line (in raw bytes, without its `\n`) that is rendered uncut.
pub const DEFAULT_MAX_LINE_BYTES: usize = 2048;

/// The name of the only truncation strategy, as the wire reports it.
pub const TRUNCATION_STRATEGY: &str = "head_tail";

/// Sizes of a [`HeadTailBuffer`].
///
/// Any sizes are accepted, zero included (a zero head keeps only a tail, and so on). A
/// `max_line_bytes` smaller than the 16-byte cut suffix cuts long lines down to the suffix alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// Bytes kept from the start of the stream. Default [`DEFAULT_HEAD_BYTES`].
    pub head_bytes: usize,
    /// Bytes kept from the end of the stream. Default [`DEFAULT_TAIL_BYTES`].
    pub tail_bytes: usize,
    /// Longest line rendered uncut. Default [`DEFAULT_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            head_bytes: DEFAULT_HEAD_BYTES,
            tail_bytes: DEFAULT_TAIL_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// What a rendering left out. Present only when stream bytes were not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncation {
    /// Stream bytes the rendering covers (`total - cursor`; the whole stream for cursor 0).
    pub original_bytes: u64,
    /// Byte length of the rendered text.
    pub retained_bytes: u64,
    /// Stream bytes that were not kept and are shown by the omission marker.
    pub omitted_bytes: u64,
}

/// One rendering of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rendered {
    /// The text, always valid UTF-8.
    pub output: String,
    /// Present exactly when some of the covered bytes were not kept.
    pub truncated: Option<Truncation>,
    /// Stream offset just past the bytes this rendering covers: pass it back as the cursor to
    /// read only what comes next. Never inside a UTF-8 character while the buffer is open.
    pub next_cursor: u64,
    /// Whether the buffer was closed when this was rendered; if so, the rendering is final.
    pub closed: bool,
}

/// A bounded head+tail record of a byte stream. See the [module docs](self).
///
/// All methods take `&self`; share it between a writer and any number of readers with an `Arc`.
pub struct HeadTailBuffer {
    config: BufferConfig,
    state: Mutex<State>,
    changed: Condvar,
    /// Pattern waiters wait on this one: it is notified when a line matched one of them, at
    /// close, and by [`HeadTailBuffer::wake_waiters`], not at every write.
    line_found: Condvar,
}

struct State {
    /// Stream bytes `[0, head.len())`; grows up to `head_bytes`.
    head: Vec<u8>,
    /// The first stream bytes after the head, so that a character split by the head's end can be
    /// recognised after those bytes have left the ring.
    after_head: [u8; UNIT_CONTEXT],
    /// Ring of the last `tail_bytes + UNIT_CONTEXT` bytes after the head; empty until a byte
    /// goes past the head. The extra bytes are context for the tail's first character.
    ring: Vec<u8>,
    /// Index in `ring` where the next byte goes.
    ring_next: usize,
    /// Bytes held in `ring`.
    ring_len: usize,
    /// Every byte ever written (while open).
    total: u64,
    closed: bool,
    /// The lines as they arrive, split only while a pattern waiter exists (`None` otherwise:
    /// without pattern waiters a write costs nothing more).
    lines: Option<LineSplitter>,
    /// The pattern waits in progress.
    waiters: Vec<PatternWaiter>,
    next_waiter: u64,
}

/// One wait for a line that matches a pattern, checked by the writer against every line that
/// arrives.
struct PatternWaiter {
    id: u64,
    pattern: Arc<Pattern>,
    /// Only lines that begin at or after this offset count.
    from: u64,
    found: Option<LineMatch>,
}

/// Everything the buffer keeps, copied out of the lock: contiguous pieces of the stream.
struct Kept {
    /// `(offset of the first byte, bytes, whether the piece begins at a line start)`.
    pieces: Vec<(u64, Vec<u8>, bool)>,
    closed: bool,
}

impl Default for HeadTailBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HeadTailBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("HeadTailBuffer")
            .field("config", &self.config)
            .field("total", &state.total)
            .field("closed", &state.closed)
            .finish()
    }
}

impl HeadTailBuffer {
    /// A buffer with the default sizes (16384 head, 16384 tail, 2048-byte lines).
    #[must_use]
    pub fn new() -> Self {
        Self::with_config(BufferConfig::default())
    }

    /// A buffer with the given sizes.
    #[must_use]
    pub fn with_config(config: BufferConfig) -> Self {
        HeadTailBuffer {
            config,
            state: Mutex::new(State {
                head: Vec::new(),
                after_head: [0; UNIT_CONTEXT],
                ring: Vec::new(),
                ring_next: 0,
                ring_len: 0,
                total: 0,
                closed: false,
                lines: None,
                waiters: Vec::new(),
                next_waiter: 0,
            }),
            changed: Condvar::new(),
            line_found: Condvar::new(),
        }
    }

    /// The sizes this buffer was made with.
    pub fn config(&self) -> BufferConfig {
        self.config
    }

    /// Appends bytes to the stream. Never fails; ignored once the buffer is closed.
    ///
    /// The lock is held only to copy the bytes that survive: of a write longer than the tail,
    /// only its last `tail_bytes` (plus 3 bytes of context) are copied, so a 1 MiB write costs
    /// about what a 32 KiB one does.
    pub fn write(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            let at = state.total;
            state.append(bytes, &self.config);
            if !state.waiters.is_empty() && state.scan_lines(bytes, at, self.config.max_line_bytes)
            {
                self.line_found.notify_all();
            }
        }
        self.changed.notify_all();
    }

    /// For a reader draining a pipe: once the stream is past its head (and the head's context)
    /// and no pattern wait is in progress, bytes that a later write would push out of the tail
    /// need not be copied at all. `take` runs under the buffer's lock with `keep`, the bytes
    /// the tail holds (`tail_bytes` plus 3 of context); it discards what it can of the waiting
    /// input beyond the last `keep` bytes (never copying it) and reads what follows into
    /// `chunk`, returning `(discarded, read)`. Both count as written, as one step: a reader
    /// never sees the gap without the bytes after it.
    ///
    /// Returns `None` without calling `take` when this does not apply (head not full, a
    /// pattern wait in progress, closed, or `chunk` smaller than `keep`); the caller reads and
    /// [`HeadTailBuffer::write`]s as usual.
    pub(crate) fn write_discarding<E>(
        &self,
        chunk: &mut [u8],
        take: impl FnOnce(usize, &mut [u8]) -> Result<(u64, usize), E>,
    ) -> Option<Result<(u64, usize), E>> {
        let keep = self.config.tail_bytes + UNIT_CONTEXT;
        let taken = {
            let mut state = self.state.lock();
            let past_head = (self.config.head_bytes + UNIT_CONTEXT) as u64;
            if state.closed
                || !state.waiters.is_empty()
                || state.total < past_head
                || chunk.len() < keep
            {
                return None;
            }
            let taken = take(keep, chunk);
            if let Ok((discarded, read)) = &taken {
                if *discarded > 0 {
                    state.skip(*discarded);
                }
                if *read > 0 {
                    state.append(&chunk[..*read], &self.config);
                }
            }
            taken
        };
        if taken.as_ref().is_ok_and(|&(d, r)| d > 0 || r > 0) {
            self.changed.notify_all();
        }
        Some(taken)
    }

    /// Seals the buffer: later writes are ignored, renderings become final, and every waiter
    /// wakes. Idempotent. A last line without `\n` counts as a line for pattern waiters now.
    pub fn close(&self) {
        {
            let mut state = self.state.lock();
            if !state.closed && !state.waiters.is_empty() {
                state.scan_last_line(self.config.max_line_bytes);
            }
            state.closed = true;
        }
        self.changed.notify_all();
        self.line_found.notify_all();
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Every byte written so far, kept or not.
    pub fn total_bytes(&self) -> u64 {
        self.state.lock().total
    }

    /// Renders the whole stream.
    #[must_use]
    pub fn render(&self) -> Rendered {
        self.render_from(0)
    }

    /// Renders the stream from `cursor` on: only bytes at offsets `>= cursor` are covered. A
    /// cursor past the end is clamped to the end (an empty rendering).
    #[must_use]
    pub fn render_from(&self, cursor: u64) -> Rendered {
        let snapshot = self.snapshot(cursor);
        snapshot.render(self.config.max_line_bytes, false)
    }

    /// As [`render_from`](Self::render_from), rendered as a terminal shows the text: escape
    /// sequences removed, `\r\n` as `\n`, a lone `\r` overwriting its line from the start.
    /// Everything else is as in `render_from`: the same bytes are covered, the cursor and
    /// [`Rendered::next_cursor`] are raw stream offsets, long lines are cut (counted in the
    /// rendered text), and [`Truncation::retained_bytes`] is the returned text's length.
    #[must_use]
    pub fn render_plain_from(&self, cursor: u64) -> Rendered {
        let snapshot = self.snapshot(cursor);
        snapshot.render(self.config.max_line_bytes, true)
    }

    /// Blocks until the buffer is closed or `deadline` passes. Returns whether it is closed.
    pub fn wait_closed(&self, deadline: Instant) -> bool {
        let mut state = self.state.lock();
        while !state.closed {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.closed;
            }
        }
        true
    }

    /// Blocks until there is output past `cursor` that can be shown, the buffer is closed, or
    /// `deadline` passes. Returns whether output or closure arrived. A cursor past the end counts
    /// as the end, so this waits for new output; a held-back partial character does not count.
    pub fn wait_for_output(&self, cursor: u64, deadline: Instant) -> bool {
        self.wait_for_output_unless(cursor, deadline, || false)
    }

    /// As [`wait_for_output`](Self::wait_for_output), but also returns (`false`, unless output
    /// or closure arrived) as soon as `stop` holds. `stop` is checked under the buffer's lock
    /// when the wait begins and after each wake-up; whoever makes it hold must then call
    /// [`wake_waiters`](Self::wake_waiters).
    pub fn wait_for_output_unless(
        &self,
        cursor: u64,
        deadline: Instant,
        stop: impl Fn() -> bool,
    ) -> bool {
        let mut state = self.state.lock();
        let cursor = cursor.min(state.visible_end());
        loop {
            if state.closed || state.visible_end() > cursor {
                return true;
            }
            if stop() || self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.closed || state.visible_end() > cursor;
            }
        }
    }

    /// Wakes every blocked wait, so that each checks its condition again (see
    /// [`wait_for_output_unless`](Self::wait_for_output_unless)).
    pub fn wake_waiters(&self) {
        let _state = self.state.lock();
        self.changed.notify_all();
        self.line_found.notify_all();
    }

    /// The first line at or after `cursor` that matches `pattern`, among the lines kept now
    /// (see [`wait_for_line_unless`](Self::wait_for_line_unless)); no wait.
    #[must_use]
    pub fn find_line(&self, pattern: &Pattern, cursor: u64) -> Option<LineMatch> {
        let kept = self.kept(&self.state.lock());
        kept.find(pattern, cursor, self.config.max_line_bytes)
    }

    /// Blocks until a line that begins at or after `cursor` matches `pattern`, the buffer is
    /// closed, `deadline` passes, or `stop` holds (checked as in
    /// [`wait_for_output_unless`](Self::wait_for_output_unless)). Returns the first such line.
    ///
    /// The kept text is searched when the wait begins; from then on the writer checks every
    /// line as it arrives (in [`write`](Self::write), while this wait exists), so a line that
    /// passes through the omitted middle is found too. A line is matched on its first
    /// `max_line_bytes` bytes; a last line without `\n` counts once the buffer is closed. A
    /// line whose beginning was already dropped from the kept text when the wait began is
    /// matched from its first kept byte.
    pub fn wait_for_line_unless(
        &self,
        pattern: &Arc<Pattern>,
        cursor: u64,
        deadline: Instant,
        stop: impl Fn() -> bool,
    ) -> Option<LineMatch> {
        let max_line = self.config.max_line_bytes;
        let mut state = self.state.lock();
        let kept = self.kept(&state);
        if state.closed {
            drop(state);
            return kept.find(pattern, cursor, max_line);
        }
        let id = state.next_waiter;
        state.next_waiter += 1;
        if state.lines.is_none() {
            state.lines = Some(kept.splitter(state.total, max_line));
        }
        let from = cursor.min(state.total);
        state.waiters.push(PatternWaiter {
            id,
            pattern: Arc::clone(pattern),
            from,
            found: None,
        });
        drop(state);
        // Lines complete before the wait began: the writer sees only those that end later.
        let early = kept.find(pattern, cursor, max_line);
        let mut state = self.state.lock();
        if early.is_some() {
            state.remove_waiter(id);
            return early;
        }
        loop {
            let found = state
                .waiters
                .iter_mut()
                .find(|w| w.id == id)
                .and_then(|w| w.found.take());
            if found.is_some() || state.closed {
                state.remove_waiter(id);
                return found;
            }
            if stop() || self.line_found.wait_until(&mut state, deadline).timed_out() {
                let found = state.remove_waiter(id);
                return found;
            }
        }
    }

    /// Copies every kept byte out, as contiguous pieces.
    fn kept(&self, state: &State) -> Kept {
        let head_end = state.head.len() as u64;
        let mut pieces = Vec::with_capacity(2);
        if state.total <= head_end || state.ring_start() == head_end {
            let mut bytes = vec![0; state.total as usize];
            state.copy_range(0, state.total, &mut bytes);
            pieces.push((0, bytes, true));
        } else {
            if head_end > 0 {
                pieces.push((0, state.head.clone(), true));
            }
            let start = state.ring_start();
            let mut bytes = vec![0; (state.total - start) as usize];
            state.copy_range(start, state.total, &mut bytes);
            pieces.push((start, bytes, false));
        }
        Kept {
            pieces,
            closed: state.closed,
        }
    }

    /// Copies what a rendering from `cursor` needs out of the lock.
    fn snapshot(&self, cursor: u64) -> Snapshot {
        let state = self.state.lock();
        let head_size = self.config.head_bytes as u64;
        let total = state.total;
        let end = state.visible_end();
        let cursor = cursor.min(end);
        let mut tail_start = total.saturating_sub(self.config.tail_bytes as u64);
        if total > head_size {
            // Right after a discard the ring may hold less than a whole tail.
            tail_start = tail_start.max(state.ring_start());
        }
        let omitted = tail_start.saturating_sub(cursor.max(head_size));
        let mut snapshot = Snapshot {
            total,
            closed: state.closed,
            cursor,
            end,
            omitted,
            first: None,
            second: None,
        };
        if omitted == 0 {
            snapshot.first = state.segment(cursor, end, None);
        } else {
            let head_end = head_size.min(end);
            if cursor < head_end {
                // The head is followed by the gap unless it ends at held-back bytes.
                let next = (end >= head_size).then_some(&state.after_head[..]);
                snapshot.first = state.segment(cursor, head_end, next);
            }
            snapshot.second = state.segment(cursor.max(tail_start), end, None);
        }
        drop(state);
        snapshot
    }
}

impl State {
    /// Splits `bytes` (written at offset `at`) into lines and checks each complete one against
    /// the waiters. Returns whether one of them found its line.
    fn scan_lines(&mut self, bytes: &[u8], at: u64, max_line: usize) -> bool {
        let State { lines, waiters, .. } = self;
        let Some(lines) = lines.as_mut() else {
            return false;
        };
        let mut found = false;
        lines.feed(bytes, at, |start, line| {
            found |= check_line(waiters, start, line, max_line);
        });
        found
    }

    /// At close: the last line, if it has no `\n`, counts.
    fn scan_last_line(&mut self, max_line: usize) {
        let State {
            lines,
            waiters,
            total,
            ..
        } = self;
        if let Some((start, line)) = lines.as_ref().and_then(|l| l.last_line(*total)) {
            check_line(waiters, start, line, max_line);
        }
    }

    /// Ends a pattern wait; returns what it found. The last one to go stops the line split.
    fn remove_waiter(&mut self, id: u64) -> Option<LineMatch> {
        let at = self.waiters.iter().position(|w| w.id == id)?;
        let waiter = self.waiters.swap_remove(at);
        if self.waiters.is_empty() {
            self.lines = None;
        }
        waiter.found
    }

    fn append(&mut self, bytes: &[u8], config: &BufferConfig) {
        let head_room = config.head_bytes - self.head.len();
        let (to_head, rest) = bytes.split_at(head_room.min(bytes.len()));
        if !to_head.is_empty() {
            reserve_bounded(&mut self.head, to_head.len(), config.head_bytes);
            self.head.extend_from_slice(to_head);
        }
        if !rest.is_empty() {
            // Offset of `rest[0]` past the end of the head.
            let past_head = self.total + to_head.len() as u64 - config.head_bytes as u64;
            if past_head < UNIT_CONTEXT as u64 {
                let at = past_head as usize;
                let n = (UNIT_CONTEXT - at).min(rest.len());
                self.after_head[at..at + n].copy_from_slice(&rest[..n]);
            }
            self.push_ring(rest, config.tail_bytes + UNIT_CONTEXT);
        }
        self.total += bytes.len() as u64;
    }

    /// `n` stream bytes past the head and its context that were never received: nothing of
    /// the tail survives them.
    fn skip(&mut self, n: u64) {
        self.ring_next = 0;
        self.ring_len = 0;
        self.total += n;
    }

    fn push_ring(&mut self, bytes: &[u8], capacity: usize) {
        if self.ring.is_empty() {
            self.ring = vec![0; capacity];
        }
        if bytes.len() >= capacity {
            // Only the last `capacity` bytes survive this write: copy just those.
            self.ring.copy_from_slice(&bytes[bytes.len() - capacity..]);
            self.ring_next = 0;
            self.ring_len = capacity;
            return;
        }
        let first = (capacity - self.ring_next).min(bytes.len());
        self.ring[self.ring_next..self.ring_next + first].copy_from_slice(&bytes[..first]);
        let rest = &bytes[first..];
        self.ring[..rest.len()].copy_from_slice(rest);
        self.ring_next = (self.ring_next + bytes.len()) % capacity;
        self.ring_len = (self.ring_len + bytes.len()).min(capacity);
    }

    /// Stream offset of the first byte held in the ring.
    fn ring_start(&self) -> u64 {
        self.total - self.ring_len as u64
    }

    /// End of the shown stream: the total, less a trailing incomplete character while open.
    fn visible_end(&self) -> u64 {
        if self.closed {
            return self.total;
        }
        // After a skip the ring may hold fewer bytes than the context (none at all).
        let mut from = self.total.saturating_sub(UNIT_CONTEXT as u64);
        if from >= self.head.len() as u64 {
            from = from.max(self.ring_start());
        }
        let mut last = [0u8; UNIT_CONTEXT];
        let len = (self.total - from) as usize;
        self.copy_range(from, self.total, &mut last[..len]);
        self.total - render::incomplete_suffix(&last[..len]) as u64
    }

    /// Copies kept stream bytes `[from, from + out.len())` into `out`.
    fn copy_range(&self, from: u64, to: u64, out: &mut [u8]) {
        debug_assert_eq!((to - from) as usize, out.len());
        let head_end = self.head.len() as u64;
        let mut written = 0;
        if from < head_end {
            let part = &self.head[from as usize..to.min(head_end) as usize];
            out[..part.len()].copy_from_slice(part);
            written = part.len();
        }
        if to > head_end {
            let start = from.max(head_end);
            debug_assert!(
                start >= self.ring_start(),
                "copying bytes that were not kept"
            );
            let capacity = self.ring.len();
            let oldest = (self.ring_next + capacity - self.ring_len) % capacity;
            let mut index = (oldest + (start - self.ring_start()) as usize) % capacity;
            let mut remaining = &mut out[written..];
            while !remaining.is_empty() {
                let n = remaining.len().min(capacity - index);
                remaining[..n].copy_from_slice(&self.ring[index..index + n]);
                remaining = &mut remaining[n..];
                index = 0;
            }
        }
    }

    /// The shown stream bytes `[from, to)` with up to [`UNIT_CONTEXT`] kept bytes before them,
    /// and `next` (the bytes after them, when a gap follows). `None` when the range is empty.
    fn segment(&self, from: u64, to: u64, next: Option<&[u8]>) -> Option<Segment> {
        if from >= to {
            return None;
        }
        let head_end = self.head.len() as u64;
        let ring_start = self.ring_start();
        let mut context_from = from.saturating_sub(UNIT_CONTEXT as u64);
        if from > head_end && ring_start > head_end {
            // Bytes before the ring were dropped: context comes from the ring alone.
            context_from = context_from.max(ring_start);
        }
        let mut bytes = vec![0; (to - context_from) as usize];
        self.copy_range(context_from, to, &mut bytes);
        let mut after = [0; UNIT_CONTEXT];
        let after_len = match next {
            Some(next) => {
                let len = (self.total - to).min(UNIT_CONTEXT as u64) as usize;
                after[..len].copy_from_slice(&next[..len]);
                len
            }
            None => 0,
        };
        Some(Segment {
            bytes,
            context: (from - context_from) as usize,
            next: after,
            next_len: after_len,
            before_gap: next.is_some(),
        })
    }
}

/// Checks one complete line against every waiter that has not found its line yet and for which
/// it counts. Returns whether one found it.
fn check_line(waiters: &mut [PatternWaiter], start: u64, line: &[u8], max_line: usize) -> bool {
    let mut found = false;
    for waiter in waiters
        .iter_mut()
        .filter(|w| w.found.is_none() && start >= w.from)
    {
        if waiter.pattern.matches_line(line, max_line) {
            waiter.found = Some(LineMatch::new(line, start, max_line));
            found = true;
        }
    }
    found
}

impl Kept {
    /// The first kept line at or after `cursor` that matches: whole lines, the line at the
    /// head's end before an omitted middle (on its kept bytes), and, once closed, a last line
    /// without `\n`.
    fn find(&self, pattern: &Pattern, cursor: u64, max_line: usize) -> Option<LineMatch> {
        let mut found = None;
        let count = self.pieces.len();
        for (i, (at, bytes, starts_line)) in self.pieces.iter().enumerate() {
            if *at + bytes.len() as u64 <= cursor {
                continue;
            }
            let last = i + 1 < count || self.closed;
            let hit = pattern::each_line(bytes, *at, cursor, *starts_line, last, |start, line| {
                if pattern.matches_line(line, max_line) {
                    found = Some(LineMatch::new(line, start, max_line));
                    true
                } else {
                    false
                }
            });
            if hit {
                break;
            }
        }
        found
    }

    /// A splitter for the lines that arrive after `total`: its current line is the kept text
    /// after the last `\n`.
    fn splitter(&self, total: u64, max_line: usize) -> LineSplitter {
        match self.pieces.last() {
            None => LineSplitter::new(total, &[], max_line),
            Some((at, bytes, _)) => match memchr::memrchr(b'\n', bytes) {
                Some(nl) => LineSplitter::new(*at + nl as u64 + 1, &bytes[nl + 1..], max_line),
                // No line end kept: the line began at the piece's start (or, if its start was
                // dropped, is matched from there).
                None => LineSplitter::new(*at, bytes, max_line),
            },
        }
    }
}

/// Grows `head` for `extra` more bytes, doubling but never past `limit`, so a small output
/// costs a small allocation and a full head costs exactly `limit`.
fn reserve_bounded(head: &mut Vec<u8>, extra: usize, limit: usize) {
    let needed = head.len() + extra;
    if needed > head.capacity() {
        // Double (at least 64 bytes), but never past the head's size.
        let target = needed
            .max(head.capacity() * 2)
            .max(64)
            .min(limit)
            .max(needed);
        head.reserve_exact(target - head.len());
    }
}

/// Kept bytes of one shown part of the stream, copied out of the lock.
struct Segment {
    /// `context` bytes of stream before the part, then the part itself.
    bytes: Vec<u8>,
    context: usize,
    /// Stream bytes right after the part, when it is followed by a gap.
    next: [u8; UNIT_CONTEXT],
    next_len: usize,
    before_gap: bool,
}

impl Segment {
    fn render_into(&self, out: &mut String, max_line: usize, plain: bool) {
        let (context, body) = self.bytes.split_at(self.context);
        let body = &body[render::continued_prefix(context, body)..];
        let body = if self.before_gap {
            &body[..body.len() - render::split_char_suffix(body, &self.next[..self.next_len])]
        } else {
            body
        };
        if plain {
            // Decoded first (the same units as the raw rendering), then rendered as a terminal
            // shows it, then cut: line lengths are those of the text a reader sees.
            let shown = crate::plain::render(&String::from_utf8_lossy(body));
            render::push_lines(out, shown.as_bytes(), max_line);
        } else {
            render::push_lines(out, body, max_line);
        }
    }
}

/// Everything a rendering needs, taken under the lock and rendered after it is released.
struct Snapshot {
    total: u64,
    closed: bool,
    cursor: u64,
    end: u64,
    omitted: u64,
    first: Option<Segment>,
    second: Option<Segment>,
}

impl Snapshot {
    fn render(&self, max_line: usize, plain: bool) -> Rendered {
        let mut output = String::new();
        if let Some(first) = &self.first {
            first.render_into(&mut output, max_line, plain);
        }
        if self.omitted > 0 {
            let opens = output.is_empty();
            render::push_marker(&mut output, self.omitted, opens);
        }
        if let Some(second) = &self.second {
            second.render_into(&mut output, max_line, plain);
        }
        let truncated = (self.omitted > 0).then(|| Truncation {
            original_bytes: self.total - self.cursor,
            retained_bytes: output.len() as u64,
            omitted_bytes: self.omitted,
        });
        Rendered {
            output,
            truncated,
            next_cursor: self.end,
            closed: self.closed,
        }
    }
}

impl io::Write for &HeadTailBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        HeadTailBuffer::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Write for HeadTailBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        HeadTailBuffer::write(self, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NaiveBuffer, check_script};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    const SUFFIX: &str = TRUNCATION_SUFFIX;

    /// `len` bytes of 80-byte lines (79 letters, then a newline).
    fn lines(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if i % 80 == 79 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect()
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("test data is UTF-8")
    }

    fn small(head: usize, tail: usize) -> HeadTailBuffer {
        HeadTailBuffer::with_config(BufferConfig {
            head_bytes: head,
            tail_bytes: tail,
            ..BufferConfig::default()
        })
    }

    fn marker(n: u64) -> String {
        format!("\n\n... [omitted {n} bytes] ...\n\n")
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Multi-byte text, so that cuts at character boundaries and the tail's context matter.
    fn utf8_bytes(len: usize) -> Vec<u8> {
        "añ€😀\n".bytes().cycle().take(len).collect()
    }

    /// Discarding the middle and receiving the rest renders exactly as writing everything,
    /// before and after the close, from any cursor.
    #[test]
    fn a_discarded_middle_renders_as_the_written_one() {
        for (head, tail) in [(100, 50), (16384, 16384)] {
            for (filler, rest) in [(10_000, 60), (1, 1000), (70_000, 53)] {
                let keep = tail + UNIT_CONTEXT;
                let first = utf8_bytes(head + UNIT_CONTEXT + 17);
                let middle = utf8_bytes(filler + 7);
                let last: Vec<u8> = utf8_bytes(keep + rest).into_iter().rev().collect();
                let written = small(head, tail);
                written.write(&first);
                written.write(&middle);
                written.write(&last);
                let skipped = small(head, tail);
                skipped.write(&first);
                let mut chunk = vec![0u8; keep + rest];
                let taken = skipped.write_discarding(&mut chunk, |k, out: &mut [u8]| {
                    assert_eq!(k, keep);
                    out[..last.len()].copy_from_slice(&last);
                    Ok::<_, ()>((middle.len() as u64, last.len()))
                });
                assert_eq!(taken, Some(Ok((middle.len() as u64, last.len()))));
                for cursor in [0, 5, head as u64 + 2, written.total_bytes() - 3] {
                    assert_eq!(written.render_from(cursor), skipped.render_from(cursor));
                }
                written.close();
                skipped.close();
                assert_eq!(written.render(), skipped.render());
                assert_eq!(written.total_bytes(), skipped.total_bytes());
            }
        }
    }

    /// A discard with nothing received after it leaves a consistent rendering: the head, the
    /// count, no tail; the next write shows up as the tail.
    #[test]
    fn a_discard_without_bytes_after_it_renders_the_head_and_the_count() {
        let b = small(10, 8);
        b.write(b"0123456789abcdef");
        let mut chunk = vec![0u8; 64];
        let taken = b.write_discarding(&mut chunk, |_, _| Ok::<_, ()>((100, 0)));
        assert_eq!(taken, Some(Ok((100, 0))));
        let r = b.render();
        assert_eq!(r.next_cursor, 116);
        assert_eq!(r.truncated.as_ref().map(|t| t.original_bytes), Some(116));
        assert!(r.output.starts_with("0123456789"), "{:?}", r.output);
        b.write(b"XYZ\n");
        b.close();
        let r = b.render();
        assert!(r.output.ends_with("XYZ\n"), "{:?}", r.output);
        assert_eq!(r.truncated.map(|t| t.original_bytes), Some(120));
    }

    /// Before the head is full, with a pattern wait in progress, or closed, nothing is
    /// discarded and `take` is not called.
    #[test]
    fn nothing_is_discarded_where_every_byte_may_matter() {
        let mut chunk = vec![0u8; 64];
        let never = |_: usize, _: &mut [u8]| -> Result<(u64, usize), ()> { panic!("called") };
        let b = small(10, 8);
        b.write(b"0123456789a");
        assert!(
            b.write_discarding(&mut chunk, never).is_none(),
            "head and context"
        );
        b.write(b"bcdef");
        let too_small = &mut [0u8; 4][..];
        assert!(
            b.write_discarding(too_small, never).is_none(),
            "chunk < keep"
        );
        b.close();
        assert!(b.write_discarding(&mut chunk, never).is_none(), "closed");
        let waiting = Arc::new(small(10, 8));
        waiting.write(b"0123456789abcdef");
        let pattern = Arc::new(crate::pattern::Pattern::new("^never$", 1024).expect("pattern"));
        let waiter = {
            let waiting = Arc::clone(&waiting);
            thread::spawn(move || waiting.wait_for_line_unless(&pattern, 0, soon(), || false))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while waiting.state.lock().waiters.is_empty() {
            assert!(Instant::now() < deadline, "the waiter registers");
            thread::yield_now();
        }
        assert!(
            waiting.write_discarding(&mut chunk, never).is_none(),
            "pattern wait"
        );
        waiting.close();
        let _ = waiter.join();
    }

    #[test]
    fn empty_buffer_renders_nothing() {
        let b = HeadTailBuffer::new();
        let r = b.render();
        assert_eq!(r.output, "");
        assert_eq!(r.truncated, None);
        assert_eq!(r.next_cursor, 0);
        assert!(!r.closed);
    }

    #[test]
    fn exactly_the_head_size_is_returned_whole() {
        let data = lines(16384);
        let b = HeadTailBuffer::new();
        b.write(&data);
        let r = b.render();
        assert_eq!(r.output, text(&data));
        assert_eq!(r.truncated, None);
        assert_eq!(r.next_cursor, 16384);
    }

    #[test]
    fn exactly_head_plus_tail_is_returned_whole() {
        let data = lines(32768);
        let b = HeadTailBuffer::new();
        b.write(&data);
        let r = b.render();
        assert_eq!(r.output, text(&data));
        assert_eq!(r.truncated, None);
    }

    #[test]
    fn one_byte_over_is_marked_as_omitted() {
        let data = lines(32769);
        let b = HeadTailBuffer::new();
        b.write(&data);
        let r = b.render();
        let want = format!(
            "{}{}{}",
            text(&data[..16384]),
            marker(1),
            text(&data[16385..])
        );
        assert_eq!(r.output, want);
        assert_eq!(
            r.truncated,
            Some(Truncation {
                original_bytes: 32769,
                retained_bytes: want.len() as u64,
                omitted_bytes: 1,
            })
        );
        assert_eq!(r.next_cursor, 32769);
    }

    #[test]
    fn fifty_a_fifty_z_in_a_ten_ten_buffer() {
        let b = small(10, 10);
        b.write(&[b'A'; 50]);
        b.write(&[b'Z'; 50]);
        let r = b.render();
        assert_eq!(
            r.output,
            "AAAAAAAAAA\n\n... [omitted 80 bytes] ...\n\nZZZZZZZZZZ"
        );
        assert_eq!(
            r.truncated,
            Some(Truncation {
                original_bytes: 100,
                retained_bytes: 50,
                omitted_bytes: 80,
            })
        );
    }

    #[test]
    fn byte_at_a_time_writes_match_one_write() {
        let mut data = lines(20000);
        data.extend("héllo € 🙂\n".repeat(1500).as_bytes());
        data.extend_from_slice(&[0xFF, b'x', 0xE2, 0x82]);
        let whole = HeadTailBuffer::new();
        whole.write(&data);
        let bytewise = HeadTailBuffer::new();
        for b in &data {
            bytewise.write(std::slice::from_ref(b));
        }
        assert_eq!(bytewise.total_bytes(), data.len() as u64);
        assert_eq!(bytewise.render(), whole.render());
        whole.close();
        bytewise.close();
        assert_eq!(bytewise.render(), whole.render());
    }

    #[test]
    fn concurrent_writers_keep_exact_totals_and_whole_writes() {
        let b = Arc::new(HeadTailBuffer::new());
        let writers: Vec<_> = (0..10)
            .map(|t| {
                let b = Arc::clone(&b);
                thread::spawn(move || {
                    let piece = format!("writer-{t}-piece\n");
                    for _ in 0..1000 {
                        b.write(piece.as_bytes());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer thread");
        }
        // Every piece is 15 bytes.
        assert_eq!(b.total_bytes(), 10 * 1000 * 15);
        let r = b.render();
        let omitted = r.truncated.expect("150000 bytes do not fit").omitted_bytes;
        assert_eq!(omitted, 150_000 - 32768);
        // The head starts with whole pieces: each write landed in one piece.
        let head = &r.output[..16384];
        for line in head.split('\n').take(16384 / 15) {
            assert!(
                line.starts_with("writer-") && line.ends_with("-piece"),
                "torn write: {line:?}"
            );
        }
    }

    #[test]
    fn a_2548_byte_line_is_cut_to_2032_bytes() {
        let b = HeadTailBuffer::new();
        b.write(&[b'x'; 2548]);
        let r = b.render();
        assert_eq!(r.output, format!("{}{SUFFIX}", "x".repeat(2032)));
        assert_eq!(r.output.len(), 2048);
        // Cutting a line alone is not truncation of the stream.
        assert_eq!(r.truncated, None);
        assert_eq!(r.next_cursor, 2548);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_not_cut() {
        let b = HeadTailBuffer::new();
        let line = "y".repeat(2048);
        b.write(format!("{line}\n{line}").as_bytes());
        assert_eq!(b.render().output, format!("{line}\n{line}"));
    }

    #[test]
    fn a_long_line_in_the_tail_is_cut_separately() {
        let mut data = lines(16384);
        data.extend(std::iter::repeat_n(b'c', 20000));
        data.push(b'\n');
        data.extend(std::iter::repeat_n(b'L', 3000));
        data.extend_from_slice(b"\nend");
        let b = HeadTailBuffer::new();
        b.write(&data);
        let r = b.render();
        let tail_start = data.len() - 16384;
        let tail = &data[tail_start..];
        let long_at = tail.iter().position(|&c| c == b'L').expect("the long line");
        // The tail's first line is the end of the 20000-byte 'c' line: cut too, on its own.
        let first = &tail[..long_at - 1];
        assert!(first.len() > 2048);
        let want = format!(
            "{}{}{}{SUFFIX}\n{}{SUFFIX}\nend",
            text(&data[..16384]),
            marker((tail_start - 16384) as u64),
            "c".repeat(2032),
            "L".repeat(2032),
        );
        assert_eq!(r.output, want);
        let t = r.truncated.expect("omitted");
        assert_eq!(t.retained_bytes, want.len() as u64);
        assert_eq!(t.original_bytes, data.len() as u64);
    }

    #[test]
    fn the_head_is_cut_separately_from_the_tail() {
        // One endless line: the head's part and the tail's part are each a line of 16384 bytes.
        let b = HeadTailBuffer::new();
        b.write(&vec![b'q'; 100_000]);
        let line = format!("{}{SUFFIX}", "q".repeat(2032));
        assert_eq!(
            b.render().output,
            format!("{line}{}{line}", marker(100_000 - 32768))
        );
    }

    #[test]
    fn a_character_across_the_head_boundary_is_dropped_whole() {
        let mut data = lines(16383);
        data.extend("€".as_bytes()); // bytes 16383..16386: the head keeps only its first byte
        data.extend(lines(40000));
        let b = HeadTailBuffer::new();
        b.write(&data);
        let r = b.render();
        let head = r.output.split("\n\n... [omitted").next().expect("head");
        assert_eq!(head, text(&data[..16383]));
        assert!(!r.output.contains('\u{FFFD}'));
    }

    #[test]
    fn a_character_across_the_tail_start_is_dropped_whole() {
        let mut data = lines(40000);
        let total = data.len() + 3 + 16382;
        // The tail starts one byte into the 4-byte character.
        let tail_start = total - 16384;
        data.truncate(tail_start - 1);
        data.extend("🙂".as_bytes());
        data.extend(lines(16384 - 3));
        assert_eq!(data.len(), total);
        let b = HeadTailBuffer::new();
        b.write(&data);
        let r = b.render();
        let tail = r.output.rsplit(" ...\n\n").next().expect("tail");
        assert_eq!(tail, text(&data[tail_start + 3..]));
        assert!(!r.output.contains('\u{FFFD}'));
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_sequence() {
        let b = HeadTailBuffer::new();
        b.write(b"a\xffb\xe2\x82z\xc0\xaf!");
        let r = b.render();
        assert_eq!(
            r.output,
            String::from_utf8_lossy(b"a\xffb\xe2\x82z\xc0\xaf!")
        );
        assert_eq!(r.output, "a\u{FFFD}b\u{FFFD}z\u{FFFD}\u{FFFD}!");
    }

    #[test]
    fn a_cut_through_a_character_drops_it_whole() {
        let mut line = "x".repeat(2030).into_bytes();
        line.extend("🙂".as_bytes()); // bytes 2030..2034 straddle the 2032 cut
        line.extend(std::iter::repeat_n(b'x', 600));
        let b = HeadTailBuffer::new();
        b.write(&line);
        assert_eq!(b.render().output, format!("{}{SUFFIX}", "x".repeat(2030)));
    }

    #[test]
    fn cursors_follow_the_stream() {
        let b = HeadTailBuffer::new();
        b.write(b"hello\n");
        let r = b.render();
        assert_eq!((r.output.as_str(), r.next_cursor), ("hello\n", 6));
        b.write(b"wor");
        let r = b.render_from(6);
        assert_eq!((r.output.as_str(), r.next_cursor), ("wor", 9));
        // Half a character is held back, and the cursor stops before it.
        b.write(&"€".as_bytes()[..1]);
        let r = b.render_from(9);
        assert_eq!((r.output.as_str(), r.next_cursor), ("", 9));
        b.write(&"€".as_bytes()[1..]);
        let r = b.render_from(9);
        assert_eq!((r.output.as_str(), r.next_cursor), ("€", 12));
        // Past the end: clamped.
        let r = b.render_from(1_000_000);
        assert_eq!((r.output.as_str(), r.next_cursor), ("", 12));
        assert_eq!(r.truncated, None);
        let r = b.render_from(u64::MAX);
        assert_eq!(r.next_cursor, 12);
    }

    #[test]
    fn a_held_back_sequence_shows_as_replacement_once_closed() {
        let b = HeadTailBuffer::new();
        b.write(b"a\xe2\x82");
        let r = b.render();
        assert_eq!((r.output.as_str(), r.next_cursor), ("a", 1));
        b.close();
        let r = b.render();
        assert_eq!((r.output.as_str(), r.next_cursor), ("a\u{FFFD}", 3));
        assert!(r.closed);
    }

    #[test]
    fn plain_rendering_keeps_raw_cursors() {
        let b = HeadTailBuffer::new();
        b.write(b"\x1b[32m10%\x1b[0m\r20%\r30%\r\n");
        let raw = b.render();
        let plain = b.render_plain_from(0);
        assert_eq!(plain.output, "30%\n");
        assert_eq!(plain.next_cursor, raw.next_cursor);
        assert_eq!(plain.next_cursor, 22);
        b.write(b"\x1b[1mdone\x1b[0m");
        let r = b.render_plain_from(22);
        assert_eq!((r.output.as_str(), r.next_cursor), ("done", 34));
        assert_eq!(r.truncated, None);
    }

    #[test]
    fn plain_truncation_counts_the_plain_text() {
        let b = small(10, 10);
        b.write(b"\x1b[1mAAAAA");
        b.write(&[b'-'; 50]);
        b.write(b"ZZZZ\x1b[0m\rY");
        let r = b.render_plain_from(0);
        // Head `ESC[1mAAAAA-`, tail `ZZZZ ESC[0m \r Y`: each rendered on its own.
        assert_eq!(r.output, "AAAAA-\n\n... [omitted 49 bytes] ...\n\nYZZZ");
        assert_eq!(
            r.truncated,
            Some(Truncation {
                original_bytes: 69,
                retained_bytes: r.output.len() as u64,
                omitted_bytes: 49,
            })
        );
        assert_eq!(r.next_cursor, 69);
    }

    #[test]
    fn plain_long_lines_are_cut_after_rendering() {
        // A progress bar that redraws one line 1000 times is one short line on a terminal.
        let b = HeadTailBuffer::new();
        let mut bar = Vec::new();
        for i in 0..1000 {
            bar.extend_from_slice(format!("\r{:>4}/1000", i + 1).as_bytes());
        }
        b.write(&bar);
        assert!(b.render().output.ends_with(TRUNCATION_SUFFIX));
        assert_eq!(b.render_plain_from(0).output, "1000/1000");
    }

    #[test]
    fn cursor_in_the_gap_opens_with_the_marker() {
        let b = small(10, 10);
        b.write(&[b'A'; 50]);
        b.write(&[b'Z'; 50]);
        let r = b.render_from(50);
        assert_eq!(r.output, "... [omitted 40 bytes] ...\n\nZZZZZZZZZZ");
        assert_eq!(
            r.truncated,
            Some(Truncation {
                original_bytes: 50,
                retained_bytes: r.output.len() as u64,
                omitted_bytes: 40,
            })
        );
        let r = b.render_from(10);
        assert_eq!(r.output, "... [omitted 80 bytes] ...\n\nZZZZZZZZZZ");
    }

    #[test]
    fn cursor_in_the_head_keeps_the_head_rest() {
        let b = small(10, 10);
        b.write(&[b'A'; 50]);
        b.write(&[b'Z'; 50]);
        let r = b.render_from(5);
        assert_eq!(
            r.output,
            "AAAAA\n\n... [omitted 80 bytes] ...\n\nZZZZZZZZZZ"
        );
        assert_eq!(r.truncated.map(|t| t.original_bytes), Some(95));
    }

    #[test]
    fn cursor_in_the_tail_is_not_truncated() {
        let b = small(10, 10);
        b.write(&[b'A'; 50]);
        b.write(&[b'Z'; 50]);
        let r = b.render_from(95);
        assert_eq!(r.output, "ZZZZZ");
        assert_eq!(r.truncated, None);
        assert_eq!(r.next_cursor, 100);
    }

    #[test]
    fn a_cursor_sequence_reads_each_byte_once_when_nothing_is_lost() {
        let b = HeadTailBuffer::new();
        let mut seen = String::new();
        let mut cursor = 0;
        for i in 0..200 {
            b.write(format!("line {i} é\n").as_bytes());
            let r = b.render_from(cursor);
            seen.push_str(&r.output);
            cursor = r.next_cursor;
        }
        let want: String = (0..200).map(|i| format!("line {i} é\n")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn zero_sizes_keep_nothing_but_count_everything() {
        let b = small(0, 0);
        b.write(b"hello");
        let r = b.render();
        assert_eq!(r.output, "... [omitted 5 bytes] ...\n\n");
        assert_eq!(
            r.truncated,
            Some(Truncation {
                original_bytes: 5,
                retained_bytes: 27,
                omitted_bytes: 5,
            })
        );
    }

    #[test]
    fn writes_after_close_are_ignored() {
        let b = HeadTailBuffer::new();
        b.write(b"kept");
        b.close();
        b.close();
        b.write(b" dropped");
        assert_eq!(b.total_bytes(), 4);
        assert_eq!(b.render().output, "kept");
    }

    #[test]
    fn memory_stays_bounded_by_the_sizes() {
        let b = HeadTailBuffer::new();
        let chunk = lines(65536);
        for _ in 0..160 {
            b.write(&chunk);
        }
        assert_eq!(b.total_bytes(), 160 * 65536);
        let state = b.state.lock();
        assert!(state.head.capacity() <= DEFAULT_HEAD_BYTES);
        assert_eq!(state.ring.capacity(), DEFAULT_TAIL_BYTES + UNIT_CONTEXT);
    }

    #[test]
    fn small_output_allocates_little() {
        let b = HeadTailBuffer::new();
        b.write(b"ok\n");
        let state = b.state.lock();
        assert!(state.head.capacity() <= 64);
        assert_eq!(state.ring.capacity(), 0);
    }

    #[test]
    fn a_big_write_equals_many_small_ones() {
        let data = lines(1 << 20);
        let big = HeadTailBuffer::new();
        big.write(&data);
        let chunked = HeadTailBuffer::new();
        for part in data.chunks(1000) {
            chunked.write(part);
        }
        assert_eq!(big.render(), chunked.render());
        assert_eq!(big.render_from(1_040_000), chunked.render_from(1_040_000));
    }

    #[test]
    fn wait_closed_wakes_on_close() {
        let b = Arc::new(HeadTailBuffer::new());
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.wait_closed(soon()))
        };
        b.write(b"not yet");
        b.close();
        assert!(waiter.join().expect("waiter"));
    }

    #[test]
    fn waits_time_out_at_the_deadline() {
        let b = HeadTailBuffer::new();
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!b.wait_closed(deadline));
        assert!(Instant::now() >= deadline);
        assert!(!b.wait_for_output(0, Instant::now() + Duration::from_millis(10)));
    }

    #[test]
    fn wait_for_output_wakes_on_new_bytes_past_the_cursor() {
        let b = Arc::new(HeadTailBuffer::new());
        b.write(b"old");
        assert!(b.wait_for_output(0, Instant::now()), "bytes past 0 exist");
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.wait_for_output(3, soon()))
        };
        b.write(b"new");
        assert!(waiter.join().expect("waiter"));
        assert_eq!(b.render_from(3).output, "new");
    }

    #[test]
    fn a_held_back_partial_character_does_not_end_a_wait() {
        let b = Arc::new(HeadTailBuffer::new());
        b.write(&[0xE2]);
        assert!(!b.wait_for_output(0, Instant::now() + Duration::from_millis(20)));
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.wait_for_output(0, soon()))
        };
        b.write(&[0x82, 0xAC]);
        assert!(waiter.join().expect("waiter"));
        assert_eq!(b.render().output, "€");
    }

    #[test]
    fn a_cursor_past_the_end_counts_as_the_end() {
        let b = HeadTailBuffer::new();
        b.write(b"abc");
        // Nothing past the (clamped) end arrives: the wait times out.
        assert!(!b.wait_for_output(u64::MAX, Instant::now() + Duration::from_millis(10)));
        b.close();
        assert!(b.wait_for_output(u64::MAX, Instant::now()));
    }

    #[test]
    fn close_wakes_output_waiters() {
        let b = Arc::new(HeadTailBuffer::new());
        let waiter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.wait_for_output(0, soon()))
        };
        b.close();
        assert!(waiter.join().expect("waiter"));
    }

    #[test]
    fn the_model_agrees_on_the_named_cases() {
        let config = BufferConfig {
            head_bytes: 10,
            tail_bytes: 10,
            ..BufferConfig::default()
        };
        let mut model = NaiveBuffer::new(config);
        let b = HeadTailBuffer::with_config(config);
        for chunk in [&[b'A'; 50][..], &[b'Z'; 50][..]] {
            model.write(chunk);
            b.write(chunk);
        }
        for cursor in 0..=101 {
            assert_eq!(b.render_from(cursor), model.render_from(cursor));
        }
    }

    /// SplitMix64: a tiny deterministic generator, so a failing seed can be replayed.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn random_scripts_match_the_naive_model() {
        let seed = std::env::var("PROCWARDEN_PROPTEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5EED_u64);
        let mut rng = SplitMix(seed);
        for case in 0..2000 {
            let len = 3 + (rng.next() % 160) as usize;
            let script: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let result = std::panic::catch_unwind(|| check_script(&script));
            assert!(result.is_ok(), "seed {seed}, case {case} failed");
        }
    }
}
