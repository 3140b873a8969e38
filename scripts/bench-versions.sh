#!/usr/bin/env bash
# Memory of the mount daemon serving versions/ with many points (issue 18, acceptance 1).
# A generated tree (DIRS directories of FILES files), POINTS backups each changing ~1% of the
# files; then the mount lists the history of a few files and of the top directories and reads
# every version of one file. Prints the daemon's peak RSS (VmHWM) and the times.
# Usage: scripts/bench-versions.sh [POINTS] (default 1000). Needs a built target/release or
# target/debug vaultfs (VAULTFS=path to override).
set -euo pipefail
POINTS=${1:-1000} DIRS=${DIRS:-40} FILES=${FILES:-50}
BIN=${VAULTFS:-$(ls -t target/release/vaultfs target/debug/vaultfs 2>/dev/null | head -1)}
W=$(mktemp -d /var/tmp/vaultfs-bench-versions.XXXXXX)
cleanup() { "$BIN" umount "$W/mnt" 2>/dev/null || umount -l "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
export VAULTFS_PASSPHRASE=bench
"$BIN" init "$W/vault" --kdf-memory-kib 64 --kdf-iterations 1 >/dev/null
for d in $(seq 1 "$DIRS"); do
  mkdir -p "$W/src/d$d"
  for f in $(seq 1 "$FILES"); do head -c 2000 /dev/urandom > "$W/src/d$d/f$f.txt"; done
done
start=$(date +%s.%N)
for i in $(seq 1 "$POINTS"); do
  for _ in $(seq 1 $(( DIRS * FILES / 100 ))); do
    echo "$i $RANDOM" >> "$W/src/d$(( RANDOM % DIRS + 1 ))/f$(( RANDOM % FILES + 1 )).txt"
  done
  echo "point $i" > "$W/src/d1/f1.txt"
  "$BIN" backup "$W/vault" gen "$W/src" >/dev/null
done
echo "points: $POINTS backups of $((DIRS * FILES)) files in $(echo "$(date +%s.%N) - $start" | bc) s"
mkdir "$W/mnt"
out=$("$BIN" mount "$W/vault" "$W/mnt")
pid=$(echo "$out" | grep -o 'pid [0-9]*' | grep -o '[0-9]*' | head -1)
t0=$(date +%s.%N)
n=$(ls "$W/mnt/versions/gen/d1/f1.txt" | wc -l)
t1=$(date +%s.%N)
cat "$W/mnt/versions/gen/d1/f1.txt/"* | wc -c >/dev/null
t2=$(date +%s.%N)
for d in $(seq 1 10); do ls "$W/mnt/versions/gen/d$d/f2.txt" >/dev/null; done
ls "$W/mnt/versions/gen" >/dev/null
t3=$(date +%s.%N)
echo "versions of d1/f1.txt (changed in every point): $n, listed in $(echo "$t1 - $t0" | bc) s, all read in $(echo "$t2 - $t1" | bc) s"
echo "10 more histories and the item's listing: $(echo "$t3 - $t2" | bc) s"
echo "daemon peak RSS: $(grep VmHWM /proc/"$pid"/status)"
