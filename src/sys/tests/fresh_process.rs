//! Exact fd and memory-mapping accounting: each check re-runs this test binary for one
//! ignored test, alone, in a fresh process where no other test opens fds or maps memory.

use super::*;

/// Set in the environment of the fresh processes that run [`fresh_process_fd_checks`] and
/// [`fresh_process_stack_checks`].
const FRESH_PROCESS_ENV: &str = "PROCWARDEN_SYS_FRESH_PROCESS";

/// Exact fd accounting needs a process where no other test opens fds meanwhile: re-run
/// this test binary, alone, for the one ignored test below.
#[test]
fn spawn_leaks_no_fd_and_copes_with_closed_stdio() {
    run_in_fresh_process("fresh_process_fd_checks");
}

/// Exact accounting of memory mappings needs a process where no other test maps or
/// unmaps meanwhile.
#[test]
#[cfg(target_os = "linux")]
fn spawns_reuse_one_child_stack_per_thread_and_thread_exit_unmaps_it() {
    run_in_fresh_process("fresh_process_stack_checks");
}

/// Re-runs this test binary for the one ignored test `test` of this module, alone, and
/// fails unless it ran and passed.
fn run_in_fresh_process(test: &str) {
    let module = module_path!().split_once("::").expect("crate::module").1;
    let name = format!("{module}::{test}");
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            &name,
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(FRESH_PROCESS_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the fresh-process test did not run:\n{stdout}"
    );
}

/// A shell command showing that stdin is `/dev/null`, and what it prints then. Linux names
/// the file; elsewhere an immediate EOF (not EBADF, as a closed fd 0 would give) shows it.
const STDIN_PROBE: (&str, &str) = if cfg!(target_os = "linux") {
    ("readlink /proc/self/fd/0", "/dev/null\n")
} else {
    ("cat && echo empty", "empty\n")
};

#[test]
#[ignore = "runs in a fresh process, started by spawn_leaks_no_fd_and_copes_with_closed_stdio"]
fn fresh_process_fd_checks() {
    if std::env::var_os(FRESH_PROCESS_ENV).is_none() {
        return; // run by hand among other tests: the counts would not be exact
    }
    for method in METHODS {
        assert_eq!(run(sh(method, "true")).1, WaitOutcome::Exited(0)); // warm-up
    }
    let devnull = Arc::new(open_dev_null().unwrap());
    let before = open_fd_count().unwrap();
    for method in METHODS {
        for _ in 0..10 {
            assert_eq!(
                run(sh(method, "echo x")),
                ("x\n".to_owned(), WaitOutcome::Exited(0))
            );
            assert_spawn_fails(
                &spec(method, cstring("/nonexistent/x"), &["x"]),
                libc::ENOENT,
                ChildStep::Exec,
            );
            let mut bad_cwd = sh(method, "true");
            bad_cwd.cwd = cstring("/nonexistent/dir");
            assert_spawn_fails(&bad_cwd, libc::ENOENT, ChildStep::Chdir);
            // With the caller's /dev/null: nothing opened, nothing closed of it.
            let mut given = sh(method, "echo y");
            given.stdin = Some(Arc::clone(&devnull));
            assert_eq!(run(given), ("y\n".to_owned(), WaitOutcome::Exited(0)));
            let mut given = spec(method, cstring("/nonexistent/x"), &["x"]);
            given.stdin = Some(Arc::clone(&devnull));
            assert_spawn_fails(&given, libc::ENOENT, ChildStep::Exec);
        }
    }
    assert_eq!(
        open_fd_count().unwrap(),
        before,
        "spawn leaked fds into the parent"
    );

    // The host closed its stdin: /dev/null then opens as fd 0 inside spawn, and the
    // caller's output fd, or its stdin fd, can itself be 0.
    drop(devnull);
    // SAFETY: this process is ours alone; nothing else uses fd 0.
    unsafe { libc::close(0) };
    let before = open_fd_count().unwrap();
    for method in METHODS {
        let (probe, expected) = STDIN_PROBE;
        assert_eq!(
            run(sh(method, probe)),
            (expected.to_owned(), WaitOutcome::Exited(0))
        );

        // The caller's /dev/null is fd 0 itself (still close-on-exec).
        let devnull = Arc::new(open_dev_null().unwrap());
        assert_eq!(devnull.as_raw_fd(), 0);
        let mut given = sh(method, probe);
        given.stdin = Some(Arc::clone(&devnull));
        assert_eq!(run(given), (expected.to_owned(), WaitOutcome::Exited(0)));
        drop(devnull);

        // Keep fd 0 taken while the pipe is made, so neither end lands on it.
        let placeholder = File::open("/dev/null").unwrap();
        assert_eq!(placeholder.as_raw_fd(), 0);
        let (read, write) = pipe_cloexec().unwrap();
        drop(placeholder);
        // SAFETY: dup returns the lowest free fd, 0, which we own from here on.
        let output = unsafe { libc::dup(write.as_raw_fd()) };
        assert_eq!(output, 0);
        // SAFETY: fd 0 is ours (see above).
        let output = unsafe { OwnedFd::from_raw_fd(output) };
        drop(write);
        let script = format!("echo out; echo err >&2; {}", STDIN_PROBE.0);
        // The spec, and with it `output` (fd 0), is dropped right after the spawn.
        let mut child = TestChild::spawn(&SpawnSpec {
            output,
            ..sh(method, &script)
        });
        assert_eq!(read_to_eof(read), format!("out\nerr\n{}", STDIN_PROBE.1));
        assert_eq!(child.wait(), WaitOutcome::Exited(0));
    }
    assert_eq!(
        open_fd_count().unwrap(),
        before,
        "spawn leaked fds into the parent"
    );
}

/// The lines of `/proc/self/maps`: one per memory mapping.
#[cfg(target_os = "linux")]
fn mappings() -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether a mapping starts at `base` (the child stack's guard page).
#[cfg(target_os = "linux")]
fn mapped_at(base: usize) -> bool {
    let prefix = format!("{base:x}-");
    mappings().iter().any(|line| line.starts_with(&prefix))
}

#[test]
#[cfg(target_os = "linux")]
#[ignore = "runs in a fresh process, started by \
            spawns_reuse_one_child_stack_per_thread_and_thread_exit_unmaps_it"]
fn fresh_process_stack_checks() {
    if std::env::var_os(FRESH_PROCESS_ENV).is_none() {
        return; // run by hand among other tests: the counts would not be exact
    }
    let method = SpawnMethod::CloneVfork;
    let devnull = Arc::new(open_dev_null().unwrap());
    let missing = spec(method, cstring("/nonexistent/x"), &["x"]);

    // This thread: the first spawn maps the stack; 200 more, failures among them, reuse it.
    assert_eq!(
        linux::spare_stack_base(),
        None,
        "no spawn on this thread yet"
    );
    assert_eq!(run(sh(method, "true")).1, WaitOutcome::Exited(0));
    let base = linux::spare_stack_base().expect("a stack kept after the first spawn");
    assert!(mapped_at(base));
    let before = mappings().len();
    for i in 0..200 {
        if i % 20 == 0 {
            assert_spawn_fails(&missing, libc::ENOENT, ChildStep::Exec);
        } else {
            let mut spec = sh(method, "true");
            spec.stdin = (i % 2 == 0).then(|| Arc::clone(&devnull));
            assert_eq!(run(spec).1, WaitOutcome::Exited(0));
        }
    }
    let after = mappings();
    assert_eq!(
        after.len(),
        before,
        "mappings grew over 200 spawns:\n{}",
        after.join("\n")
    );
    assert_eq!(
        linux::spare_stack_base(),
        Some(base),
        "the same stack, reused"
    );

    // Other threads: each maps its own, and its exit unmaps it. A first thread that
    // spawns with Fork (no child stack) warms up what any thread costs (glibc keeps a
    // joined thread's stack for the next one, malloc keeps its arena).
    std::thread::spawn(move || {
        assert_eq!(run(sh(SpawnMethod::Fork, "true")).1, WaitOutcome::Exited(0));
        assert_eq!(linux::spare_stack_base(), None, "Fork maps no child stack");
    })
    .join()
    .unwrap();
    let before = mappings().len();
    let thread_base = std::thread::spawn(move || {
        assert_eq!(run(sh(method, "true")).1, WaitOutcome::Exited(0));
        let thread_base = linux::spare_stack_base().expect("this thread's own stack");
        assert!(mapped_at(thread_base));
        thread_base
    })
    .join()
    .unwrap();
    assert_ne!(thread_base, base, "threads do not share a stack");
    assert!(!mapped_at(thread_base), "thread exit unmapped its stack");
    let after = mappings();
    assert_eq!(
        after.len(),
        before,
        "a spawning thread left mappings behind:\n{}",
        after.join("\n")
    );
    assert!(mapped_at(base), "this thread's stack is untouched");
}
