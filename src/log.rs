//! Full logs: besides its head and tail, a process started with a log has its whole output
//! stream appended to a file, by the same reader thread that fills its buffer. [`LogStore`] is
//! the directory and its bounds; [`LogFile`] one process's file, which range reads and searches
//! read back.
//!
//! Bounds: each file stops growing at [`DEFAULT_LOG_MAX_BYTES`] (configurable), and a start
//! that asks for a log is refused once the files together hold [`DEFAULT_LOG_MAX_TOTAL_BYTES`];
//! a file also stops growing when the total would pass that. A file that stopped early says so
//! (`truncated`), and a write that failed (a full disk) stops the file and keeps the error to
//! report; neither touches the process or its head and tail.
//!
//! Files are removed with their process record (when the last reference to it goes), and the
//! directory's files (the directory too, when the store made it) when the manager closes.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::id::ProcessId;
use crate::info::{LogChunk, LogMatch, LogSearch};
use crate::pattern::{self, Pattern};
use crate::render;

/// Default largest log file, in bytes (1 GiB): past it the file stops growing.
pub const DEFAULT_LOG_MAX_BYTES: u64 = 1 << 30;
/// Default most bytes all log files together may hold (8 GiB): a start asking for a log is
/// refused once they do.
pub const DEFAULT_LOG_MAX_TOTAL_BYTES: u64 = 8 << 30;
/// Bytes a log file's writer gathers before it writes them (it also writes whenever the pipe
/// has been drained, so a quiet process's log is always current).
pub const LOG_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Most bytes one range read returns.
pub const MAX_LOG_READ_BYTES: u64 = 65536;
/// Most matches one search returns.
pub const MAX_LOG_SEARCH_MATCHES: usize = 1000;
/// Matches a search returns unless told otherwise.
pub const DEFAULT_LOG_SEARCH_MATCHES: usize = 100;
/// Bytes a search reads from the file at once.
const SEARCH_CHUNK_BYTES: usize = 256 * 1024;

/// The log directory and what its files may hold.
#[derive(Debug)]
pub(crate) struct LogStore {
    dir: PathBuf,
    /// Whether the store made the directory (and so removes it at close).
    made: bool,
    max_bytes: u64,
    max_total: u64,
    /// Bytes in the live files.
    used: AtomicU64,
    /// The live files, for removal at close.
    files: Mutex<HashSet<PathBuf>>,
    /// Why the directory could not be made, if it could not.
    broken: Option<String>,
}

/// Why a start's log could not be made.
#[derive(Debug)]
pub(crate) enum LogRefusal {
    /// The files already hold the total allowed.
    Full,
    /// The directory or the file could not be made.
    Unusable(io::Error),
}

impl LogStore {
    /// A store in `dir` (made with mode 0700 when missing), or, with `None`, in a new directory
    /// private to this store under the system's temporary directory. A directory that cannot
    /// be made does not fail here: starts that ask for a log are refused.
    pub(crate) fn new(dir: Option<&Path>, max_bytes: u64, max_total: u64) -> LogStore {
        let (dir, made, broken) = match dir {
            Some(dir) if dir.is_dir() => (dir.to_path_buf(), false, None),
            Some(dir) => match make_private_dir(dir) {
                Ok(()) => (dir.to_path_buf(), true, None),
                Err(e) => (dir.to_path_buf(), false, Some(e.to_string())),
            },
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "procwarden-logs-{}-{}",
                    std::process::id(),
                    ProcessId::new_random()
                ));
                match make_private_dir(&dir) {
                    Ok(()) => (dir, true, None),
                    Err(e) => (dir, false, Some(e.to_string())),
                }
            }
        };
        LogStore {
            dir,
            made,
            max_bytes,
            max_total,
            used: AtomicU64::new(0),
            files: Mutex::new(HashSet::new()),
            broken,
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty log file for process `id`.
    pub(crate) fn create(self: &Arc<Self>, id: ProcessId) -> Result<Arc<LogFile>, LogRefusal> {
        if let Some(broken) = &self.broken {
            return Err(LogRefusal::Unusable(io::Error::other(format!(
                "cannot make the log directory {}: {broken}",
                self.dir.display()
            ))));
        }
        if self.used.load(Ordering::SeqCst) >= self.max_total {
            return Err(LogRefusal::Full);
        }
        let path = self.dir.join(format!("{id}.log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                LogRefusal::Unusable(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", path.display()),
                ))
            })?;
        let reader = file.try_clone().map_err(LogRefusal::Unusable)?;
        self.files.lock().insert(path.clone());
        Ok(Arc::new(LogFile {
            store: Arc::clone(self),
            path,
            writer: Mutex::new(Writer {
                out: BufWriter::with_capacity(LOG_WRITE_BUFFER_BYTES, file),
                written: 0,
                stopped: false,
            }),
            reader,
            flushed: AtomicU64::new(0),
            truncated: AtomicBool::new(false),
            error: Mutex::new(None),
            ended: AtomicBool::new(false),
        }))
    }

    /// Takes up to `n` bytes of the total for a write; returns how many it took (fewer when
    /// the total would pass its bound).
    fn reserve(&self, n: u64) -> u64 {
        let mut granted = 0;
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                granted = n.min(self.max_total.saturating_sub(used));
                Some(used + granted)
            });
        granted
    }

    /// Removes every live file, and the directory if the store made it (at close).
    pub(crate) fn remove_all(&self) {
        let files: Vec<PathBuf> = self.files.lock().drain().collect();
        for path in files {
            let _ = std::fs::remove_file(path);
        }
        if self.made {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.remove_all();
    }
}

fn make_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// One process's log file.
#[derive(Debug)]
pub(crate) struct LogFile {
    store: Arc<LogStore>,
    path: PathBuf,
    writer: Mutex<Writer>,
    /// The same file, for reads (positioned reads only).
    reader: File,
    /// Bytes written through to the file (what readers can see).
    flushed: AtomicU64,
    /// The file stopped before the end of the stream (a bound, or a failed write).
    truncated: AtomicBool,
    /// Why a write failed, if one did.
    error: Mutex<Option<String>>,
    /// The stream has ended: everything it held is in the file (unless truncated).
    ended: AtomicBool,
}

#[derive(Debug)]
struct Writer {
    out: BufWriter<File>,
    /// Bytes accepted (buffered or written).
    written: u64,
    /// No more bytes are taken.
    stopped: bool,
}

/// What [`LogFile::state`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogState {
    pub(crate) bytes: u64,
    pub(crate) truncated: bool,
    pub(crate) error: Option<String>,
}

impl LogFile {
    /// Appends stream bytes (the reader thread, after the buffer took them). Never fails: a
    /// bound or a failed write stops the file and is recorded.
    pub(crate) fn append(&self, bytes: &[u8]) {
        let mut writer = self.writer.lock();
        if writer.stopped || bytes.is_empty() || self.ended.load(Ordering::SeqCst) {
            return;
        }
        let room = self.store.max_bytes.saturating_sub(writer.written);
        let want = (bytes.len() as u64).min(room);
        let take = self.store.reserve(want) as usize;
        if take > 0
            && let Err(e) = writer.out.write_all(&bytes[..take])
        {
            self.fail(&mut writer, take as u64, &e);
            return;
        }
        writer.written += take as u64;
        if take < bytes.len() {
            // A bound: the file keeps the stream's first bytes and stops.
            self.truncated.store(true, Ordering::SeqCst);
            writer.stopped = true;
            self.flush_locked(&mut writer);
        }
    }

    /// Writes what is buffered through to the file (the reader calls it when the pipe is
    /// drained; readers before they read).
    pub(crate) fn flush(&self) {
        let mut writer = self.writer.lock();
        self.flush_locked(&mut writer);
    }

    fn flush_locked(&self, writer: &mut Writer) {
        if self.error.lock().is_some() {
            // A write failed: the file holds what it holds, and nothing more is written.
            return;
        }
        match writer.out.flush() {
            Ok(()) => self.flushed.store(writer.written, Ordering::SeqCst),
            Err(e) => self.fail(writer, 0, &e),
        }
    }

    /// A write failed (a full disk): the file keeps what reached it (a prefix of the stream)
    /// and stops; `reserved` bytes were counted for the write that failed.
    fn fail(&self, writer: &mut Writer, reserved: u64, e: &io::Error) {
        log::warn!(
            "log {}: writing failed, the log stops here: {e}",
            self.path.display()
        );
        writer.stopped = true;
        self.truncated.store(true, Ordering::SeqCst);
        *self.error.lock() = Some(format!("writing the log failed: {e}"));
        // What the file really holds: its length (buffered bytes may be partly written).
        let len = self.reader.metadata().map_or(0, |m| m.len());
        let counted = writer.written + reserved;
        self.store
            .used
            .fetch_sub(counted.saturating_sub(len), Ordering::SeqCst);
        writer.written = len.min(counted);
        self.flushed.store(writer.written, Ordering::SeqCst);
    }

    /// The stream ended: flushes, and marks the file complete.
    pub(crate) fn end(&self) {
        let mut writer = self.writer.lock();
        self.flush_locked(&mut writer);
        self.ended.store(true, Ordering::SeqCst);
    }

    /// Whether the stream has ended and all of it is in the file.
    pub(crate) fn complete(&self) -> bool {
        self.ended.load(Ordering::SeqCst) && !self.truncated.load(Ordering::SeqCst)
    }

    /// The file's length (after a flush), whether it stopped early, and why.
    pub(crate) fn state(&self) -> LogState {
        self.flush();
        LogState {
            bytes: self.flushed.load(Ordering::SeqCst),
            truncated: self.truncated.load(Ordering::SeqCst),
            error: self.error.lock().clone(),
        }
    }

    /// Reads stream bytes `[offset, offset + limit)` as text: a character cut by either end
    /// is left out; an incomplete sequence at the very end of a running stream is held back.
    pub(crate) fn read(&self, offset: u64, limit: u64) -> io::Result<LogChunk> {
        let state = self.state();
        let ended = self.ended.load(Ordering::SeqCst);
        let end = state.bytes;
        let from = offset.min(end);
        let to = from.saturating_add(limit).min(end);
        let context = from.min(render::UNIT_CONTEXT as u64);
        let after = (end - to).min(render::UNIT_CONTEXT as u64);
        let mut bytes = vec![0; (to - from + context + after) as usize];
        self.reader.read_exact_at(&mut bytes, from - context)?;
        let (prev, rest) = bytes.split_at(context as usize);
        // The bytes at the start that finish a character begun before it (looked at past the
        // range's end too, so that a range inside one character starts after it).
        let skip = render::continued_prefix(prev, rest);
        let span = (to - from) as usize;
        if skip >= span {
            let at = from + skip as u64;
            return Ok(LogChunk {
                output: String::new(),
                offset: at,
                next_offset: at,
                log_bytes: end,
                complete: self.complete(),
                log_truncated: state.truncated,
                log_error: state.error,
            });
        }
        let (body, next) = rest.split_at(span);
        let body = &body[skip..];
        let cut = if next.is_empty() {
            // At the file's end: while more may come, an incomplete character waits for it.
            if ended {
                0
            } else {
                render::incomplete_suffix(body)
            }
        } else {
            render::split_char_suffix(body, next)
        };
        let body = &body[..body.len() - cut];
        Ok(LogChunk {
            output: String::from_utf8_lossy(body).into_owned(),
            offset: from + skip as u64,
            next_offset: from + skip as u64 + body.len() as u64,
            log_bytes: end,
            complete: self.complete(),
            log_truncated: state.truncated,
            log_error: state.error,
        })
    }

    /// The first `limit` lines that match `pattern` (lines as the output waits see them), and
    /// whether there were more.
    pub(crate) fn search(
        &self,
        pattern: &Pattern,
        limit: usize,
        max_line: usize,
    ) -> io::Result<LogSearch> {
        let end = self.state().bytes;
        let complete = self.ended.load(Ordering::SeqCst);
        let mut found = Vec::new();
        let mut more = false;
        let mut line_number = 0u64;
        let mut splitter = pattern::LineSplitter::new(0, &[], max_line);
        let mut chunk = vec![0; SEARCH_CHUNK_BYTES];
        let mut at = 0u64;
        let mut check = |start: u64, line: &[u8], found: &mut Vec<LogMatch>, more: &mut bool| {
            line_number += 1;
            if *more || !pattern.matches_line(line, max_line) {
                return;
            }
            if found.len() == limit {
                *more = true;
            } else {
                found.push(LogMatch {
                    offset: start,
                    line_number,
                    line: pattern::shown_line(line, max_line),
                });
            }
        };
        while at < end && !more {
            let n = ((end - at) as usize).min(chunk.len());
            self.reader.read_exact_at(&mut chunk[..n], at)?;
            splitter.feed(&chunk[..n], at, |start, line| {
                check(start, line, &mut found, &mut more);
            });
            at += n as u64;
        }
        if complete
            && !more
            && let Some((start, line)) = splitter.last_line(end)
        {
            let line = line.to_vec();
            check(start, &line, &mut found, &mut more);
        }
        Ok(LogSearch {
            matches: found,
            more,
        })
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let written = self.writer.get_mut().written;
        let _ = std::fs::remove_file(&self.path);
        self.store.files.lock().remove(&self.path);
        self.store.used.fetch_sub(written, Ordering::SeqCst);
    }
}
