#!/usr/bin/env bash
# The limit tests of tests/contain.rs (every test whose name holds "limit", and the `auto`
# test, whose server must make room for controllers in its own cgroup) on a real kernel whose
# cgroup2 hierarchy has the memory, pids and cpu controllers, which the build machine's does
# not (it binds them to cgroup v1 hierarchies that cannot be unmounted).
#
# Boots Debian's kernel (linux-image-amd64) in QEMU with an initramfs made here: busybox-static,
# the debug `procwarden` binary and the compiled tests/contain.rs binary of this checkout (the
# same build `cargo test --all-features` made), and the shared libraries both need. The guest's
# init mounts cgroup2 at /sys/fs/cgroup, enables +memory +pids +cpu for the root's children,
# brings lo up and runs the tests with CI=true and PROCWARDEN_EXPECT_CONTROLLERS, so that a
# limit test can never fall back to the 400 it checks where a controller is missing. The guest
# has no network device at all; its only output is the serial console, into a file here.
#
# Fails on a failed or missing test result, a panic, a count of passed tests other than the
# host's listing of the same filters, and a guest that does not power off within VM_TIMEOUT
# seconds (QEMU is then killed by its pid). KVM is used where it works (a bounded probe boot
# where the CPU offers vmx or svm), else TCG.
#
# Run from anywhere in a checkout, as root (apt-get). Tunables (environment): VM_TIMEOUT
# (default 300), VM_MEMORY_MB (default 1024), VM_TESTS (the test name filters, space-separated;
# "_" runs every test of tests/contain.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VM_TIMEOUT="${VM_TIMEOUT:-300}"
VM_MEMORY_MB="${VM_MEMORY_MB:-1024}"
VM_TESTS="${VM_TESTS:-limit auto_uses_a_procwarden_child_of_the_servers_own_cgroup}"
read -r -a filters <<<"$VM_TESTS"
# How long a KVM probe boot may take before KVM counts as not working: the same boot emulated
# (TCG) reaches its init in about 7 s here, so a KVM slower than this would gain nothing.
KVM_PROBE_TIMEOUT=8
CONTROLLERS="memory pids cpu"

say() { printf 'vm-limits: %s\n' "$*"; }

# --- packages ----------------------------------------------------------------------------
kernel() { ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1; }
packages=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || packages+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
  || packages+=(busybox-static)
[ -n "$(kernel)" ] || packages+=(linux-image-amd64)
command -v cpio >/dev/null 2>&1 || packages+=(cpio)
if [ ${#packages[@]} -gt 0 ]; then
  say "installing ${packages[*]}"
  apt-get update -qq
  # INITRD=No: the kernel package's hook would otherwise build an initramfs of the host's
  # modules, which this guest does not use (it boots the one made below).
  DEBIAN_FRONTEND=noninteractive INITRD=No \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
vmlinuz=$(kernel)
[ -n "$vmlinuz" ] || { say "no /boot/vmlinuz-*-amd64 after installing linux-image-amd64"; exit 1; }
say "kernel $vmlinuz, $(qemu-system-x86_64 --version | head -n 1)"

# --- the binaries under test -------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo test --all-features --test contain --no-run --message-format=json-render-diagnostics \
  > "$work/build.json"
read -r server tests < <(python3 - "$work/build.json" <<'PY'
import json, sys
server = tests = None
for line in open(sys.argv[1]):
    msg = json.loads(line)
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    target = msg["target"]
    if target["name"] == "procwarden" and "bin" in target["kind"]:
        server = msg["executable"]
    if target["name"] == "contain" and "test" in target["kind"]:
        tests = msg["executable"]
if not (server and tests):
    sys.exit("cargo named no procwarden binary or contain test binary")
print(server, tests)
PY
)
# What the guest must run: the host lists the same filter (listing runs nothing).
expected=$("$tests" "${filters[@]}" --list --format terse | grep -c ': test$' || true)
[ "$expected" -gt 0 ] || { say "no test matches $VM_TESTS"; exit 1; }
say "$expected test(s) matching $VM_TESTS from $tests"

# --- the initramfs -----------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,root,usr/local/bin}
cp /bin/busybox "$root/bin/busybox"
# Debug info stripped (the binaries are 50 MB each with it): the guest unpacks every byte.
strip --strip-debug -o "$root/usr/local/bin/procwarden" "$server"
strip --strip-debug -o "$root/usr/local/bin/contain" "$tests"
for lib in $(for bin in "$server" "$tests"; do
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cat > "$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/local/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $CONTROLLERS; do echo "+\$c" > /sys/fs/cgroup/cgroup.subtree_control; done
echo "vm-limits: kernel \$(uname -r); cgroup2 controllers for children: \$(cat /sys/fs/cgroup/cgroup.subtree_control)"
ip link set lo up
cd /root
CI=true PROCWARDEN_TEST_BINARY=/usr/local/bin/procwarden \
  PROCWARDEN_EXPECT_CONTROLLERS=$(echo $CONTROLLERS | tr ' ' ,) RUST_BACKTRACE=1 \
  /usr/local/bin/contain $VM_TESTS --test-threads=1 --show-output
echo "vm-limits: guest tests exited with \$?"
poweroff -f
EOF
chmod +x "$root/init"
# Uncompressed: decompressing in the guest (without KVM, emulated) costs more than reading.
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initramfs.cpio"
say "initramfs $(du -h "$work/initramfs.cpio" | cut -f1)"

# --- boot --------------------------------------------------------------------------------
# No network device (-nic none, and -nodefaults drops the rest), no display, the serial
# console into a file; -no-reboot turns a guest panic or reboot into QEMU's exit.
qemu_args=(-nodefaults -nographic -no-reboot -nic none -monitor none -m "$VM_MEMORY_MB"
  -kernel "$vmlinuz" -append "console=ttyS0 panic=-1 quiet")
accel=(-accel tcg,thread=multi -cpu max -smp 2)
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
  probe="$work/probe"
  mkdir -p "$probe/bin"
  cp /bin/busybox "$probe/bin/busybox"
  printf '#!/bin/busybox sh\n/bin/busybox echo vm-limits-probe-ok\n/bin/busybox poweroff -f\n' \
    > "$probe/init"
  chmod +x "$probe/init"
  (cd "$probe" && find . | cpio -o -H newc --quiet) > "$work/probe.cpio"
  if timeout --foreground -s KILL "$KVM_PROBE_TIMEOUT" qemu-system-x86_64 "${qemu_args[@]}" \
      -accel kvm -cpu host -smp 2 -initrd "$work/probe.cpio" -serial "file:$work/probe.log" \
      </dev/null >/dev/null 2>&1 && grep -q vm-limits-probe-ok "$work/probe.log"; then
    accel=(-accel kvm -cpu host -smp 2)
  else
    say "KVM did not boot the probe within ${KVM_PROBE_TIMEOUT}s: emulating (TCG)"
  fi
else
  say "no usable KVM here (/dev/kvm, or vmx/svm in /proc/cpuinfo): emulating (TCG)"
fi
log="$work/serial.log"
say "booting (${accel[*]}), at most ${VM_TIMEOUT}s"
# timeout --foreground: at the deadline SIGKILL goes to QEMU's pid alone (137), not to a
# process group.
started=$SECONDS
set +e
timeout --foreground -s KILL "$VM_TIMEOUT" qemu-system-x86_64 "${qemu_args[@]}" "${accel[@]}" \
  -initrd "$work/initramfs.cpio" -serial "file:$log" </dev/null
qemu_status=$?
set -e
# The guest's console for the CI log, without carriage returns and the firmware's terminal
# escapes.
clean=$(tr -d '\r' < "$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g')
sed 's/^/  guest| /' <<<"$clean"
say "the guest ran $((SECONDS - started))s"

# --- verdict -----------------------------------------------------------------------------
if [ "$qemu_status" -eq 137 ]; then
  say "FAILED: the guest did not power off within ${VM_TIMEOUT}s (QEMU killed)"
  exit 1
fi
if [ "$qemu_status" -ne 0 ]; then
  say "FAILED: QEMU exited with $qemu_status"
  exit 1
fi
if grep -qE 'panicked at|FAILED|Kernel panic' <<<"$clean"; then
  say "FAILED: a failure or panic in the guest (above)"
  exit 1
fi
if ! grep -qx 'vm-limits: guest tests exited with 0' <<<"$clean"; then
  say "FAILED: the guest's tests did not exit with 0"
  exit 1
fi
result=$(grep -E '^test result: ' <<<"$clean" || true)
if ! grep -qE "^test result: ok\. $expected passed; 0 failed; 0 ignored" <<<"$result"; then
  say "FAILED: expected \"test result: ok. $expected passed; 0 failed; 0 ignored\", got: ${result:-nothing}"
  exit 1
fi
say "passed in the guest: $result"
