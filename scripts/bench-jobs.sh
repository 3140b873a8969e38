#!/usr/bin/env bash
# scripts/bench-jobs.sh — what recording jobs (and raising/clearing their alerts) costs a backup.
# One binary built with test hooks (`cargo build --features test-clock`), run alternately with
# and without VAULTFS_BENCH_NO_JOBS, which skips every job record and alert of a job.
# Each round: a fresh vault, a first backup of CORPUS, then an unchanged second backup (the
# shortest backup there is, so the fixed cost of a job weighs most there).
# Usage: scripts/bench-jobs.sh [CORPUS (default /usr/share/doc)] [ROUNDS (default 7)]
set -euo pipefail
corpus=${1:-/usr/share/doc}
rounds=${2:-7}
bin=${VAULTFS_BIN:-$(dirname "$0")/../target/debug/vaultfs}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export VAULTFS_PASSPHRASE=bench
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
declare -A first second
for r in $(seq 1 "$rounds"); do
  # Alternate which goes first, so neither always meets the other's leftovers.
  order="jobs nojobs"; [ $((r % 2)) -eq 0 ] && order="nojobs jobs"
  for mode in $order; do
    v="$scratch/v-$mode-$r"
    "$bin" init "$v" --kdf-memory-kib 1024 --kdf-iterations 1 >/dev/null
    if [ "$mode" = nojobs ]; then export VAULTFS_BENCH_NO_JOBS=1; else unset VAULTFS_BENCH_NO_JOBS; fi
    first[$mode]+="$(secs "$bin" backup "$v" item "$corpus") "
    second[$mode]+="$(secs "$bin" backup "$v" item "$corpus") "
    rm -rf "$v"
  done
done
unset VAULTFS_BENCH_NO_JOBS
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-15s %12s %12s %8s\n' backup "with jobs" "without" "cost"
for row in first second; do
  declare -n arr=$row
  w=$(echo "${arr[jobs]}" | median); wo=$(echo "${arr[nojobs]}" | median)
  printf '%-15s %11.3fs %11.3fs %7.2f%%\n' "$row" "$w" "$wo" "$(echo "($w - $wo) * 100 / $wo" | bc -l)"
done
