#!/usr/bin/env bash
# The figures of issue 18's table, each against its baseline measured in the same run:
# pwbench (../shared/pwbench, a keep-alive HTTP client over loopback) against the release
# server, alternating with pwbench's in-process baseline, every measurement on a fresh server.
#
#   benches/pwbench.sh [SERVER FLAGS...]      e.g.  benches/pwbench.sh --cgroup off
#
# Environment: ROUNDS (default 2), OUT (the suite's JSON lines; default a temporary file).
# Needs ../shared/pwbench beside the project (as CI has it). Takes about 3 minutes for 2 rounds.
# Prints one line per figure: procwarden, baseline, ratio or difference, goal.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pwbench_src=../shared/pwbench
[ -f "$pwbench_src/Cargo.toml" ] || { echo "pwbench.sh: no $pwbench_src beside the project" >&2; exit 2; }
cargo build --release --quiet
cargo build --release --quiet --manifest-path "$pwbench_src/Cargo.toml" --target-dir target/pwbench
out=${OUT:-$(mktemp)}
PWBENCH=$root/target/pwbench/release/pwbench ROUNDS=${ROUNDS:-2} \
    "$pwbench_src/suite.sh" "$out" -- "$root/target/release/procwarden" serve --listen 127.0.0.1:0 "$@"
python3 - "$out" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]

def med(label, path):
    values = []
    for row in rows:
        if row.get("label") != label:
            continue
        value = row
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(value)
    return statistics.median(values) if values else float("nan")

bare_cycle = med("baseline", "spawn.cycle_us.median")
bare_wake = med("baseline", "wake.latency_us.median")
pipe = med("baseline", "pipe.mib_per_s")
cycle = med("spawn", "cycle_us.median")
start = med("spawn", "start_us.median")
wake = med("wake", "latency_us.median")
flood = med("flood", "mib_per_s")
# server_cpu_ms (utime + stime of the whole process, 10 ms ticks) and not the schedstat sum,
# which covers live threads only: a reader that retired during the run (idle readers retire
# after 250 ms) took its CPU time out of that sum.
flood_cpu = med("flood", "server_cpu_ms")
par = med("spawn-par", "cycles_per_s")
par_cycles = med("spawn-par", "cycles")
par_cpu = med("spawn-par", "server_cpu_ms")
idle_rss = med("idle-0", "rss_kb")
threads_after = med("many", "after.threads")
threads_idle = med("many", "idle.threads")

print(f"{'figure':46} {'procwarden':>12} {'baseline':>12} {'result':>10}  goal")
print(f"{'start+wait `true` over HTTP, median µs':46} {cycle:12.0f} {bare_cycle:12.0f} {cycle / bare_cycle:9.2f}x  <= 1.15x")
print(f"{'POST /start alone, median µs':46} {start:12.0f} {'':>12} {'':>10}  below the peer's 356 µs")
print(f"{'exit -> response, median µs':46} {wake:12.0f} {bare_wake:12.0f} {wake - bare_wake:+9.0f}µs <= +50 µs")
print(f"{'256 MiB flood, MiB/s':46} {flood:12.0f} {pipe:12.0f} {flood / pipe:9.2f}x  >= 1.2x")
print(f"{'flood: server CPU ms for 10 runs':46} {flood_cpu:12.0f} {'':>12} {'':>10}  <= 400 ms")
print(f"{'idle RSS KiB':46} {idle_rss:12.0f} {'':>12} {'':>10}  < 2048")
print(f"{'threads 0.5 s after 200 exits (idle)':46} {threads_after:12.0f} {threads_idle:12.0f} {'':>10}  back to idle")
print(f"{'8 clients, cycles/s':46} {par:12.0f} {'':>12} {'':>10}  >= 2300")
print(f"{'8 clients: server CPU µs per cycle':46} {par_cpu * 1000 / par_cycles:12.1f}")
EOF
