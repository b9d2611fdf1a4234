#!/usr/bin/env bash
# docs/openapi.json against the release server: schemathesis (property-based tests generated
# from the document, every check) in a short, bounded run. Any failure fails this script.
#
# Run from anywhere in a checkout; needs python3 with venv (.ci/run installs it), cargo, and
# setpriv (util-linux) when run as root. Installs schemathesis into a virtualenv under the
# target directory. Tunables (environment): SCHEMATHESIS_MAX_EXAMPLES (cases per operation
# and phase, default 300), SCHEMATHESIS_SEED (default 1: CI replays the same cases; set
# another to explore), SCHEMATHESIS_WORKERS (default 1: with two, the run
# hit CPython 3.11's "AST constructor recursion depth mismatch" SystemError, a race in its `ast`
# module between threads, inside schemathesis's generation; one worker was also faster here).
#
# Safety: the fuzzer's requests really run commands (random text through `sh -c`, random
# argv). So the server runs
# - as `nobody` when this script runs as root (setpriv), so a command can write only its
#   scratch directory (and what anyone may write, such as /tmp) and signal only processes of
#   nobody; with at most 1024 processes and threads for nobody, and files up to 256 MiB;
# - with an environment of nothing but a scratch HOME, TMPDIR and a PATH that is an empty
#   directory: the shell is /bin/sh by absolute path, so `sh -c` works, but only its
#   builtins do; every argv program named without a path is "not found";
# - with --workdir a fresh temp dir, --max-running 4, and a random token, so that no other
#   local user can drive it during the run;
# and at the end it gets SIGTERM by its pid: a graceful shutdown ends every process group it
# started. The scratch directory is then removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

# The version this script was tested with; change it only together with a green run.
SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-300}"
SEED="${SCHEMATHESIS_SEED:-1}"
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
# Per request: the longest legitimate answer is a wait, bounded by the fuzzer's timeout_ms or
# a process's exit; a request that hangs past this is reported as a failure.
REQUEST_TIMEOUT_S=60
# How long the server may take to print its listening line, and to stop after SIGTERM.
START_TIMEOUT_S=30
STOP_TIMEOUT_S=20

target="${CARGO_TARGET_DIR:-$repo/target}"
venv="$target/ci-venv"
st="$venv/bin/schemathesis"

if ! "$st" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  python=
  # The first Python on PATH that can make a virtualenv (Debian's needs python3-venv).
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      python=$candidate
      break
    fi
  done
  if [ -z "$python" ]; then
    echo "no python3 with venv and ensurepip (apt-get install python3-venv)" >&2
    exit 1
  fi
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$st" --version

cargo build --release --bin procwarden
bin="$target/release/procwarden"

# Under /tmp, and the binary copied into it: the server's user must reach both, wherever the
# checkout lives (a clone under /root is closed to nobody).
scratch=$(mktemp -d /tmp/procwarden-schemathesis.XXXXXX)
chmod 711 "$scratch"
server_pid=
# Stops the server by its pid (SIGTERM: a graceful shutdown ends every process group it
# started; SIGKILL after STOP_TIMEOUT_S, when the parent-death signal still kills each group
# leader) and sets server_status to its exit status.
server_status=
stop_server() {
  local pid=$server_pid
  server_pid=
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  server_status=0
  wait "$pid" 2>/dev/null || server_status=$?
}
cleanup() {
  stop_server
  exec 3<&- 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

mkdir -p "$scratch/work" "$scratch/home" "$scratch/tmp" "$scratch/bin" "$scratch/run"
# The token: random, in a file only the server's user can read.
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$scratch/token"
install -m 755 "$bin" "$scratch/procwarden"
root=
run_as=()
if [ "$(id -u)" = 0 ]; then
  root=1
  chown -R nobody:nogroup "$scratch/work" "$scratch/home" "$scratch/tmp" "$scratch/token"
  run_as=(/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
chmod 600 "$scratch/token"
mkfifo "$scratch/stdout"

(
  # Files a command writes stay under 256 MiB, so a runaway loop cannot fill the disk.
  ulimit -f $((256 * 1024))
  # Processes and threads of nobody, the server's included: a fork bomb stops here. Only for
  # nobody: for the caller's own user it would count every process that user already has.
  if [ -n "$root" ]; then ulimit -u 1024; fi
  exec env -i HOME="$scratch/home" TMPDIR="$scratch/tmp" PATH="$scratch/bin" LANG=C.UTF-8 \
    RUST_LOG=error "${run_as[@]}" "$scratch/procwarden" serve --listen 127.0.0.1:0 \
    --workdir "$scratch/work" --token-file "$scratch/token" --max-running 4
) >"$scratch/stdout" 2>"$scratch/server.log" &
server_pid=$!
# The server prints one line once listening; fd 3 stays open until the end, so its stdout
# never meets a closed pipe.
exec 3<"$scratch/stdout"
if ! read -r -t "$START_TIMEOUT_S" line <&3; then
  echo "the server printed no listening line within ${START_TIMEOUT_S}s" >&2
  cat "$scratch/server.log" >&2
  exit 1
fi
url=${line#listening on }
echo "server $server_pid at $url (workdir $scratch/work)"

status=0
# From the scratch directory: whatever schemathesis writes (its example database, reports)
# lands there, not in the checkout.
(
  cd "$scratch/run"
  SCHEMATHESIS_HOOKS="$repo/.ci/schemathesis_hooks.py" "$st" run "$repo/docs/openapi.json" \
    --url "$url" \
    -H "Authorization: Bearer $(cat "$scratch/token")" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers "$WORKERS" \
    --request-timeout "$REQUEST_TIMEOUT_S" \
    --generation-database none \
    --no-color
) || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the server died during the run" >&2
  status=1
fi
stop_server
if [ "$server_status" != 0 ]; then
  echo "the server exited with status $server_status after SIGTERM (the contract says 0)" >&2
  status=1
fi
if grep -q 'panicked' "$scratch/server.log"; then
  echo "the server logged a panic:" >&2
  grep -A3 'panicked' "$scratch/server.log" >&2
  status=1
fi
exit "$status"
