//! A measurement to read, not a test: the cost of a spawn, each way, against std's.

use super::*;

/// Median wall time of `n` runs of `f`.
fn median_of(n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// Something started that the spawn-only measurement reaps outside the timed part.
trait Reap {
    /// Waits for the child and checks it exited 0.
    fn reap(self);
}

impl Reap for SpawnedChild {
    fn reap(self) {
        assert_eq!(TestChild::from(self).wait(), WaitOutcome::Exited(0));
    }
}

impl Reap for std::process::Child {
    fn reap(mut self) {
        assert!(self.wait().expect("wait").success());
    }
}

/// Median wall time of `n` calls of `start` alone (until it returns); each child is
/// reaped after its time is taken, so none overlaps the next measurement.
fn median_of_starts<C: Reap>(n: usize, mut start: impl FnMut() -> C) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let began = Instant::now();
            let child = start();
            let took = began.elapsed();
            child.reap();
            took
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// Not a test: a measurement to read (`cargo test --release spawn_micro_benchmark --
/// --ignored --nocapture`). Spawn + reap of `/bin/sh -c true`, 200 times each way; then
/// `spawn` alone (until it returns, reaping excluded), 500 times each way, with stdin
/// opened per spawn (`stdin: None`) and with one cached `/dev/null` fd, against std's
/// `Command::spawn()`.
#[test]
#[ignore = "micro-measurement; run by hand with --release --ignored --nocapture"]
fn spawn_micro_benchmark() {
    const RUNS: usize = 200;
    const SPAWN_ONLY_RUNS: usize = 500;
    fn measure(label: &str) {
        let devnull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let stdin = Arc::new(open_dev_null().unwrap());
        for method in METHODS {
            let spec = SpawnSpec {
                output: OwnedFd::from(devnull.try_clone().unwrap()),
                ..sh(method, "true")
            };
            let median = median_of(RUNS, || {
                let mut child = TestChild::spawn(&spec);
                assert_eq!(child.wait(), WaitOutcome::Exited(0));
            });
            println!("{label}: {method:?}: median {median:?}");
            let median = median_of_starts(SPAWN_ONLY_RUNS, || spawn(&spec).expect("spawn"));
            println!("{label}: {method:?}: spawn alone, stdin: None: median {median:?}");
            let cached = SpawnSpec {
                output: OwnedFd::from(devnull.try_clone().unwrap()),
                stdin: Some(Arc::clone(&stdin)),
                ..sh(method, "true")
            };
            let median = median_of_starts(SPAWN_ONLY_RUNS, || spawn(&cached).expect("spawn"));
            println!("{label}: {method:?}: spawn alone, stdin: Some: median {median:?}");
        }
        let median = median_of_starts(SPAWN_ONLY_RUNS, || {
            std::process::Command::new("/bin/sh")
                .args(["-c", "true"])
                .spawn()
                .expect("spawn")
        });
        println!("{label}: std Command::new(\"/bin/sh\").spawn() alone: median {median:?}");
        for program in ["sh", "/bin/sh"] {
            let median = median_of(RUNS, || {
                let status = std::process::Command::new(program)
                    .args(["-c", "true"])
                    .status()
                    .unwrap();
                assert!(status.success());
            });
            println!("{label}: std Command::new({program:?}).status(): median {median:?}");
        }
    }
    measure("small parent");

    // Fork copies page tables: its cost grows with the parent's resident memory. Make
    // 512 MiB resident in 4 KiB pages (no transparent huge pages, which would hide it).
    const BALLAST: usize = 512 << 20;
    // SAFETY: a fresh private anonymous mapping; only this function uses it.
    let ballast = unsafe {
        libc::mmap(
            ptr::null_mut(),
            BALLAST,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(ballast, libc::MAP_FAILED);
    #[cfg(target_os = "linux")]
    // SAFETY: advice on our own mapping.
    unsafe {
        libc::madvise(ballast, BALLAST, libc::MADV_NOHUGEPAGE)
    };
    for offset in (0..BALLAST).step_by(4096) {
        // SAFETY: inside the mapping; volatile so the writes are not optimised away.
        unsafe { ballast.cast::<u8>().add(offset).write_volatile(1) };
    }
    measure("parent with 512 MiB resident in 4 KiB pages");
    // SAFETY: unmapping our own mapping, no longer used.
    unsafe { libc::munmap(ballast, BALLAST) };
}
