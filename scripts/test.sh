#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then formatting, lints and every
# test (unit tests and the integration tests under tests/, which run the real binary on real
# files and, from the mount issue on, real FUSE mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

start=$(date +%s)
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --all-targets --quiet --features test-clock -- -D warnings
echo "== cargo test (with the test clock: tests move the vault's time)"
cargo test --all-targets --no-fail-fast --features test-clock 2>&1 | tee /tmp/vaultfs-test.$$.log | grep -E '^(test result|running|error|failures|---- |thread )' || true
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "== failures (full log: /tmp/vaultfs-test.$$.log)"
  sed -n '/^failures:/,/^test result/p' /tmp/vaultfs-test.$$.log | tail -200
  exit "$status"
fi
passed=$(grep -Eo '[0-9]+ passed' /tmp/vaultfs-test.$$.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/vaultfs-test.$$.log | awk '{s+=$1} END {print s+0}')
rm -f /tmp/vaultfs-test.$$.log
echo "suite took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
