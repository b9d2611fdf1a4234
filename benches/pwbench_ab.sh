#!/usr/bin/env bash
# Alternates release builds round by round on the two figures that small changes move: the
# exit -> response latency (`pwbench wake`) and the start + wait cycle (`pwbench spawn`), with
# pwbench's in-process baseline once per round. Rounds on a small VM differ by more than a
# small change, so compare builds within a round, not across rounds.
#
#   benches/pwbench_ab.sh ROUNDS NAME=BINARY [NAME=BINARY ...]
#   e.g. benches/pwbench_ab.sh 12 before=/tmp/pw-before after=target/release/procwarden
#
# Environment: OUT (the JSON lines; default a temporary file), SERVER_FLAGS (added to each
# `serve`). Needs ../shared/pwbench beside the project. About 10 s per build and round.
# Prints, per build: the round medians, their median, and against the first build the median
# per-round difference and in how many rounds it was lower.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:?usage: pwbench_ab.sh ROUNDS NAME=BINARY ...}
shift
[ $# -ge 1 ] || { echo "usage: pwbench_ab.sh ROUNDS NAME=BINARY ..." >&2; exit 2; }
pwbench_src=../shared/pwbench
[ -f "$pwbench_src/Cargo.toml" ] || { echo "pwbench_ab.sh: no $pwbench_src beside the project" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$pwbench_src/Cargo.toml" --target-dir target/pwbench
pw=$root/target/pwbench/release/pwbench
out=${OUT:-$(mktemp)}
: >"$out"
log=$(mktemp -d)
spid=
stop() {
    [ -n "$spid" ] || return 0
    kill -TERM "$spid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=
}
trap 'stop; rm -rf "$log"' EXIT
record() { # name round what json
    python3 -c 'import json,sys; print(json.dumps({"name":sys.argv[1],"round":int(sys.argv[2]),"what":sys.argv[3],"r":json.loads(sys.argv[4])}))' "$@" >>"$out"
}
for r in $(seq "$rounds"); do
    record baseline "$r" baseline "$("$pw" baseline -n 200 --bytes 16777216 --runs 1)"
    for spec in "$@"; do
        name=${spec%%=*}
        bin=${spec#*=}
        # shellcheck disable=SC2086 # SERVER_FLAGS is a list of words
        "$bin" serve --listen 127.0.0.1:0 ${SERVER_FLAGS:-} >"$log/out" 2>"$log/err" &
        spid=$!
        url=
        for _ in $(seq 100); do
            url=$(grep -o 'http://[^ ]*' "$log/out" | head -1 || true)
            [ -n "$url" ] && break
            sleep 0.05
        done
        [ -n "$url" ] || { echo "pwbench_ab.sh: $bin did not print its address" >&2; cat "$log/err" >&2; exit 1; }
        record "$name" "$r" wake "$("$pw" wake --url "$url" -n 200 --pid "$spid")"
        record "$name" "$r" spawn "$("$pw" spawn --url "$url" -n 300 --pid "$spid")"
        stop
    done
    echo "pwbench_ab.sh: round $r of $rounds done" >&2
done
python3 - "$out" "${@%%=*}" <<'PY'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
names = sys.argv[2:]

def get(d, path):
    for key in path.split("."):
        d = d.get(key) if isinstance(d, dict) else None
    return d

def per_round(name, what, path):
    return [get(r["r"], path) for r in sorted(rows, key=lambda r: r["round"])
            if r["name"] == name and r["what"] == what]

for label, path in [("bare exit -> waitpid", "wake.latency_us.median"),
                    ("bare spawn + wait", "spawn.cycle_us.median")]:
    values = per_round("baseline", "baseline", path)
    print(f"{label:34} median {statistics.median(values):8.0f} µs  rounds {[round(v) for v in values]}")
for what, path, label in [("wake", "latency_us.median", "exit -> response"),
                          ("spawn", "cycle_us.median", "start + wait cycle"),
                          ("spawn", "start_us.median", "POST /start")]:
    first = per_round(names[0], what, path)
    for name in names:
        values = per_round(name, what, path)
        line = f"{label + ' ' + name:34} median {statistics.median(values):8.0f} µs"
        if name != names[0]:
            diff = [a - b for a, b in zip(values, first)]
            wins = sum(d < 0 for d in diff)
            line += f"  vs {names[0]}: {statistics.median(diff):+.0f} µs, lower in {wins} of {len(diff)}"
        print(line)
PY
