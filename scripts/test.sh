#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then formatting, lints and every
# test (unit tests and the integration tests under tests/, which run the real binary on real
# files and, from the mount issue on, real FUSE mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# VAULTFS_TEST_IO_URING=on|off|auto: every test mount that does not choose its transport gets
# `--io-uring $VAULTFS_TEST_IO_URING` (tests/common/mnt.rs). `on` switches the kernel's FUSE over
# io_uring on for the run (root) and puts the old value back on exit. Unset (CI): the default,
# auto, with the kernel's switch as it is; CI runs one mode, not both.
case "${VAULTFS_TEST_IO_URING:-}" in
  "" | off | auto) ;;
  on)
    uring_param=/sys/module/fuse/parameters/enable_uring
    uring_old=$(cat "$uring_param")
    trap 'echo "$uring_old" > "$uring_param"' EXIT
    echo Y > "$uring_param"
    echo "== FUSE over io_uring on ($uring_param=Y for this run, $uring_old after)"
    ;;
  *) echo "VAULTFS_TEST_IO_URING must be on, off or auto" >&2; exit 2 ;;
esac
export VAULTFS_TEST_IO_URING

start=$(date +%s)
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --all-targets --quiet --features test-clock -- -D warnings
echo "== cargo test (with the test clock: tests move the vault's time)"
# The log is kept when something fails (CI prints the failures below; the rest is in the file).
log=$(mktemp /tmp/vaultfs-test.XXXXXX.log)
# The status of cargo itself decides: no `|| true` after the pipeline (it would reset PIPESTATUS),
# and errexit/pipefail are off only around it so grep finding nothing cannot end the script.
set +e +o pipefail
cargo test --all-targets --no-fail-fast --features test-clock "$@" 2>&1 | tee "$log" \
  | grep --line-buffered -E '^(test result|running|error|failures|---- |thread )'
status=${PIPESTATUS[0]}
set -e -o pipefail
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "suite took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
if [ "$status" -ne 0 ]; then
  echo "== failures (cargo test exited $status; full log: $log)"
  # Every test binary has its own failures section: print each (its ---- stdout blocks included).
  awk '/^failures:$/ {on=1} on {print} /^test result:/ {on=0}' "$log" | tail -n 400
  grep -E '^error(\[|:)' "$log" | head -20 || true
  exit "$status"
fi
rm -f "$log"
