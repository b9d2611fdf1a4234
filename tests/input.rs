//! Input to processes through the library: stdin pipes and terminals, over real processes and a
//! real pseudo-terminal. Exact bytes to EOF, the pending bound, order, close on a pipe (EOF) and
//! on a terminal (VEOF), bytes a process never read, `test -t 0`, `stty size`, SIGWINCH on
//! resize, `TERM`, the session and group a terminal process leads, and every refusal.

use std::time::{Duration, Instant};

use procwarden::{
    Command, DEFAULT_MAX_PENDING_INPUT, Error, Manager, Output, OutputQuery, ProcessId, Signal,
    TerminalSize,
};
use sha2::{Digest, Sha256};

const LONG: Duration = Duration::from_secs(20);

/// A manager for each spawn path: the vfork-style clone and the portable fork.
fn both() -> [(&'static str, Manager); 2] {
    [
        ("clone", Manager::new().expect("manager")),
        (
            "fork",
            Manager::builder()
                .portable_spawn(true)
                .build()
                .expect("manager"),
        ),
    ]
}

fn wait_exit(m: &Manager, id: &ProcessId) -> Output {
    let out = m
        .output(id, None, OutputQuery::until_exit(LONG))
        .expect("output");
    assert!(!out.running, "still running after {LONG:?}: {out:?}");
    out
}

/// Follows the output with cursor waits until it contains `needle` (or the process exits, or
/// `LONG` passes); returns all of it so far.
fn wait_for_text(m: &Manager, id: &ProcessId, needle: &str) -> String {
    let deadline = Instant::now() + LONG;
    let mut text = String::new();
    let mut cursor = 0;
    loop {
        let out = m
            .output(id, None, OutputQuery::after(cursor, LONG))
            .expect("output");
        text.push_str(&out.output);
        cursor = out.next_cursor;
        if text.contains(needle) {
            return text;
        }
        assert!(
            out.running && Instant::now() < deadline,
            "{needle:?} never came: {text:?} ({out:?})"
        );
    }
}

/// Bytes that are not text: every byte value, many times over, in a scrambled order.
fn binary(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_program_reading_stdin_to_eof_gets_exactly_the_bytes_sent() {
    for (label, m) in both() {
        let started = m
            .start(Command::shell("sha256sum").stdin_pipe())
            .expect("start");
        let info = m.info(&started.id, None).expect("info");
        assert_eq!(info.stdin_open, Some(true), "{label}");
        assert_eq!(info.tty, None, "{label}");
        // Several writes, together far more than a pipe holds: the watcher writes them as the
        // process reads, in order.
        let data = binary(900 * 1024);
        let mut sent = 0;
        for piece in data.chunks(300 * 1024) {
            let queued = m.write_input(&started.id, None, piece).expect("queued");
            assert_eq!(queued.queued_bytes, piece.len() as u64, "{label}");
            assert!(queued.pending_bytes >= piece.len() as u64, "{label}");
            assert!(
                queued.pending_bytes <= (sent + piece.len()) as u64,
                "{label}"
            );
            sent += piece.len();
        }
        let closed = m.close_input(&started.id, None).expect("close");
        assert_eq!(closed.queued_bytes, 0);
        assert!(!m.info(&started.id, None).expect("info").stdin_open.unwrap());
        let out = wait_exit(&m, &started.id);
        assert_eq!(out.exit.as_ref().and_then(|e| e.code), Some(0), "{label}");
        let digest = hex(&Sha256::digest(&data));
        assert_eq!(out.output, format!("{digest}  -\n"), "{label}");
        assert_eq!(out.input_dropped_bytes, 0, "{label}");
        assert_eq!(out.stdin_open, Some(false), "{label}");
    }
}

#[test]
fn binary_input_and_text_input_arrive_in_order() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(Command::argv(["od", "-An", "-tx1", "-v"]).stdin_pipe())
        .expect("start");
    m.write_input(&started.id, None, b"a").expect("a");
    m.write_input(&started.id, None, &[0, 0xff, 0x80])
        .expect("bytes");
    m.input(&started.id, None, "é\n".as_bytes(), true)
        .expect("last and close");
    let out = wait_exit(&m, &started.id);
    let shown: String = out.output.split_whitespace().collect();
    assert_eq!(shown, "6100ff80c3a90a");
}

#[test]
fn close_on_a_pipe_gives_eof_and_later_input_is_refused() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(Command::shell("cat; echo done").stdin_pipe())
        .expect("start");
    m.input(&started.id, None, b"hello\n", true)
        .expect("queued and closed");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.output, "hello\ndone\n");
    assert!(matches!(
        m.write_input(&started.id, None, b"x"),
        Err(Error::NoInput(_))
    ));
    // A close with the input still open but the process running: later input is refused.
    let started = m
        .start(Command::shell("sleep 30").stdin_pipe())
        .expect("start");
    m.close_input(&started.id, None).expect("close");
    assert!(matches!(
        m.write_input(&started.id, None, b"x"),
        Err(Error::NoInput(_))
    ));
    assert!(matches!(
        m.close_input(&started.id, None),
        Err(Error::NoInput(_))
    ));
    m.signal(&started.id, None, Signal::Kill, None)
        .expect("kill");
    wait_exit(&m, &started.id);
}

#[test]
fn one_mebibyte_plus_one_is_refused_whole() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(Command::shell("sleep 30").stdin_pipe())
        .expect("start");
    let too_much = vec![b'x'; DEFAULT_MAX_PENDING_INPUT + 1];
    assert!(matches!(
        m.write_input(&started.id, None, &too_much),
        Err(Error::InputFull(_))
    ));
    // Nothing of it was queued: a whole mebibyte still fits.
    let queued = m
        .write_input(&started.id, None, &too_much[1..])
        .expect("1 MiB fits");
    assert_eq!(queued.pending_bytes, DEFAULT_MAX_PENDING_INPUT as u64);
    // The process reads nothing, so bytes the watcher moved into the pipe still count: one
    // more byte does not fit, and neither does a close riding with it.
    assert!(matches!(
        m.input(&started.id, None, b"y", true),
        Err(Error::InputFull(_))
    ));
    assert_eq!(m.info(&started.id, None).unwrap().stdin_open, Some(true));
    // Another process is not held up by the one that does not read.
    let other = m.start(Command::shell("cat").stdin_pipe()).expect("start");
    m.input(&other.id, None, b"ping\n", true).expect("queued");
    assert_eq!(wait_exit(&m, &other.id).output, "ping\n");
    m.signal(&started.id, None, Signal::Kill, None)
        .expect("kill");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.input_dropped_bytes, DEFAULT_MAX_PENDING_INPUT as u64);
}

#[test]
fn bytes_a_process_never_read_are_counted_exactly() {
    for (label, m) in both() {
        // `read` takes one line, byte by byte from a pipe: the rest stays unread in the pipe.
        let started = m
            .start(Command::shell("read -r line; echo \"got $line\"").stdin_pipe())
            .expect("start");
        m.write_input(&started.id, None, b"first\nrest-of-it")
            .expect("queued");
        let out = wait_exit(&m, &started.id);
        assert_eq!(out.output, "got first\n", "{label}");
        assert_eq!(out.input_dropped_bytes, 10, "{label}");
        assert_eq!(out.stdin_open, Some(false), "{label}");
        // Closed before the process exits without reading: still counted.
        let started = m
            .start(Command::shell("read -r line; sleep 0.2").stdin_pipe())
            .expect("start");
        m.input(&started.id, None, b"one\nabc", true)
            .expect("queued");
        let out = wait_exit(&m, &started.id);
        assert_eq!(out.input_dropped_bytes, 3, "{label}");
        assert!(matches!(
            m.write_input(&started.id, None, b"late"),
            Err(Error::NoInput(_))
        ));
    }
}

#[test]
fn a_process_that_closes_its_stdin_drops_what_is_queued() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(Command::shell("exec 0<&-; echo closed; sleep 30").stdin_pipe())
        .expect("start");
    wait_for_text(&m, &started.id, "closed");
    m.write_input(&started.id, None, b"nobody reads this")
        .expect("queued");
    m.signal(&started.id, None, Signal::Kill, None)
        .expect("kill");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.input_dropped_bytes, 17);
}

#[test]
fn a_terminal_process_sees_a_terminal_of_its_size_and_term() {
    for (label, m) in both() {
        let started = m
            .start(
                Command::shell(
                    "test -t 0 && test -t 1 && echo is-a-tty; stty size; echo \"T=$TERM\"",
                )
                .tty(24, 80),
            )
            .expect("start");
        let out = wait_exit(&m, &started.id);
        assert_eq!(out.exit.as_ref().and_then(|e| e.code), Some(0), "{label}");
        assert_eq!(
            out.output, "is-a-tty\r\n24 80\r\nT=xterm-256color\r\n",
            "{label}"
        );
        assert_eq!(out.tty, Some(TerminalSize { rows: 24, cols: 80 }));
        // The command's own TERM wins; so does the manager's configured one over the default.
        let out = wait_exit(
            &m,
            &m.start(Command::shell("echo $TERM").tty(5, 5).env("TERM", "vt100"))
                .expect("start")
                .id,
        );
        assert_eq!(out.output, "vt100\r\n", "{label}");
    }
    let m = Manager::builder()
        .env("TERM", "host-term")
        .terminal_term("screen")
        .build()
        .expect("manager");
    let out = wait_exit(
        &m,
        &m.start(Command::shell("echo $TERM").tty(5, 5))
            .expect("start")
            .id,
    );
    assert_eq!(out.output, "screen\r\n");
    // Without a terminal the base environment's TERM is left as it is.
    let out = wait_exit(
        &m,
        &m.start(Command::shell("echo $TERM")).expect("start").id,
    );
    assert_eq!(out.output, "host-term\n");
}

#[test]
fn a_terminal_process_leads_its_session_and_group() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(Command::shell("echo ready; sleep 30").tty(24, 80))
        .expect("start");
    wait_for_text(&m, &started.id, "ready");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", started.pid)).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // state ppid pgrp session tty_nr tpgid
    let pid = started.pid.to_string();
    assert_eq!(fields[2], pid, "process group: {stat}");
    assert_eq!(fields[3], pid, "session: {stat}");
    assert_ne!(fields[4], "0", "a controlling terminal: {stat}");
    assert_eq!(fields[5], pid, "the foreground group: {stat}");
    m.signal(&started.id, None, Signal::Terminate, None)
        .expect("terminate");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.exit.and_then(|e| e.signal), Some(libc_sigterm()));
    // A timeout reaches a terminal process's group as any other.
    let started = m
        .start(
            Command::shell("sleep 30")
                .tty(24, 80)
                .timeout(Duration::from_millis(200)),
        )
        .expect("start");
    assert!(wait_exit(&m, &started.id).exit.unwrap().timed_out);
}

fn libc_sigterm() -> i32 {
    15
}

#[test]
fn resize_changes_the_size_and_sends_sigwinch() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(
            Command::shell("trap 'stty size; kill $!; exit 0' WINCH; sleep 30 & echo ready; wait")
                .tty(24, 80),
        )
        .expect("start");
    wait_for_text(&m, &started.id, "ready");
    m.resize(&started.id, None, 50, 132).expect("resize");
    assert_eq!(
        m.info(&started.id, None).unwrap().tty,
        Some(TerminalSize {
            rows: 50,
            cols: 132
        })
    );
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.output, "ready\r\n50 132\r\n");
    assert!(matches!(
        m.resize(&started.id, None, 10, 10),
        Err(Error::NoTerminal(_))
    ));
}

#[test]
fn close_on_a_terminal_ends_cat_with_veof() {
    let m = Manager::new().expect("manager");
    // At the start of a line.
    let started = m
        .start(Command::shell("cat; echo end").tty(24, 80))
        .expect("start");
    m.input(&started.id, None, b"hello\n", true)
        .expect("queued");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.exit.as_ref().and_then(|e| e.code), Some(0));
    // The terminal echoes the line, cat writes it back, then `end`.
    assert_eq!(out.output, "hello\r\nhello\r\nend\r\n");
    // Inside a line: the first ^D hands the line over, the second ends the read.
    let started = m
        .start(Command::shell("cat; echo; echo end").tty(24, 80))
        .expect("start");
    m.input(&started.id, None, b"partial", true)
        .expect("queued");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.output, "partialpartial\r\nend\r\n");
    // Later input is refused; a terminal process without close keeps taking input.
    assert!(matches!(
        m.write_input(&started.id, None, b"x"),
        Err(Error::NoInput(_))
    ));
}

#[test]
fn a_terminal_process_takes_input_line_by_line() {
    let m = Manager::new().expect("manager");
    let started = m
        .start(Command::shell("read -r a; echo \"one=$a\"; read -r b; echo \"two=$b\"").tty(24, 80))
        .expect("start");
    assert_eq!(m.info(&started.id, None).unwrap().stdin_open, Some(true));
    m.write_input(&started.id, None, b"x\n").expect("x");
    wait_for_text(&m, &started.id, "one=x");
    m.write_input(&started.id, None, b"y\r").expect("y");
    let out = wait_exit(&m, &started.id);
    assert!(out.output.ends_with("two=y\r\n"), "{:?}", out.output);
    assert_eq!(out.stdin_open, Some(false));
}

#[test]
fn refusals() {
    let m = Manager::new().expect("manager");
    // No input at all.
    let plain = m.start(Command::shell("sleep 30")).expect("start");
    assert!(matches!(
        m.write_input(&plain.id, None, b"x"),
        Err(Error::NoInput(_))
    ));
    assert!(matches!(
        m.resize(&plain.id, None, 10, 10),
        Err(Error::NoTerminal(_))
    ));
    let info = m.info(&plain.id, None).unwrap();
    assert_eq!((info.stdin_open, info.tty), (None, None));
    // A pipe is no terminal.
    let piped = m
        .start(Command::shell("sleep 30").stdin_pipe())
        .expect("start");
    assert!(matches!(
        m.resize(&piped.id, None, 10, 10),
        Err(Error::NoTerminal(_))
    ));
    // Sizes out of range, at start and at resize.
    for (rows, cols) in [(0, 80), (24, 0), (1001, 80), (24, 1001)] {
        assert!(matches!(
            m.start(Command::shell("true").tty(rows, cols)),
            Err(Error::InvalidTerminalSize { .. })
        ));
    }
    let tty = m
        .start(Command::shell("sleep 30").tty(24, 80))
        .expect("start");
    assert!(matches!(
        m.resize(&tty.id, None, 0, 10),
        Err(Error::InvalidTerminalSize { .. })
    ));
    m.resize(&tty.id, None, 1000, 1)
        .expect("largest and smallest");
    // Another chat's process, an unknown one.
    let chat = procwarden::Uuid::new_v4();
    let theirs = m
        .start(Command::shell("sleep 30").stdin_pipe().chat(chat))
        .expect("start");
    let other = Some(procwarden::Uuid::new_v4());
    assert!(matches!(
        m.write_input(&theirs.id, other, b"x"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        m.resize(&theirs.id, other, 5, 5),
        Err(Error::NotFound(_))
    ));
    m.write_input(&theirs.id, Some(chat), b"x")
        .expect("own chat");
    let unknown = ProcessId::from(procwarden::Uuid::new_v4());
    assert!(matches!(
        m.write_input(&unknown, None, b"x"),
        Err(Error::NotFound(_))
    ));
    // After exit.
    for id in [&plain.id, &piped.id, &tty.id, &theirs.id] {
        m.signal(id, None, Signal::Kill, None).expect("kill");
        wait_exit(&m, id);
    }
    assert!(matches!(
        m.write_input(&piped.id, None, b"x"),
        Err(Error::NoInput(_))
    ));
    assert!(matches!(
        m.resize(&tty.id, None, 10, 10),
        Err(Error::NoTerminal(_))
    ));
    assert_eq!(m.info(&tty.id, None).unwrap().stdin_open, Some(false));
}

#[test]
fn a_huge_bound_means_no_bound() {
    let m = Manager::builder()
        .max_pending_input(usize::MAX)
        .build()
        .expect("manager");
    let started = m
        .start(Command::shell("sleep 30").stdin_pipe())
        .expect("start");
    m.write_input(&started.id, None, &vec![0; 2 * DEFAULT_MAX_PENDING_INPUT])
        .expect("no bound");
    m.signal(&started.id, None, Signal::Kill, None)
        .expect("kill");
    wait_exit(&m, &started.id);
}
