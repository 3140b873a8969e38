#!/usr/bin/env bash
# scripts/bench-s3.sh — vaultfs on S3 against restic on the same S3 server, same run.
#
# Starts a throwaway SeaweedFS on 127.0.0.1 (scripts/seaweed.sh; pip installs it if missing),
# then for each tool, into a fresh prefix of the same bucket:
#   backup       first backup of the corpus
#   incremental  second backup after a change of a few files
#   tar cold     `tar -cf - . | wc -c` of the latest snapshot through the tool's mount, page
#                cache dropped and a fresh cache directory (vaultfs: its cache dir; restic:
#                --cache-dir) so every pack comes over the network
#   restore      restore of the latest snapshot into an empty directory (fresh cache too),
#                verified with diff -r
# Environment: BENCH_CORPUS=DIR (default: /usr/share/doc, a few thousand small files; the
# Linux tree works too), BENCH_OUT=FILE (also write the table there), BENCH_KEEP=1.
# Stdout: the table (markdown); progress on stderr.
set -euo pipefail
export LC_NUMERIC=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS=${BENCH_CORPUS:-/usr/share/doc}
PASS=bench
say() { printf '[bench-s3 %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench-s3: error: %s\n' "$*" >&2; exit 1; }
[ -d "$CORPUS" ] || die "no corpus at $CORPUS"
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >&2; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >&2; }
export PATH="$PATH:${HOME:-/root}/.cargo/bin"

say "building vaultfs (release)"
(cd "$ROOT" && cargo build --release --quiet)
VFS=$ROOT/target/release/vaultfs

T=$(mktemp -d /tmp/vfs-bench-s3.XXXXXX)
MNTS=()
cleanup() {
    for m in "${MNTS[@]}"; do
        if grep -q " $m " /proc/self/mounts; then
            "$VFS" umount "$m" >/dev/null 2>&1 || fusermount3 -u "$m" 2>/dev/null || umount -l "$m" || true
        fi
    done
    "$ROOT/scripts/seaweed.sh" stop "$T/sw" >/dev/null 2>&1 || true
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT
say "starting SeaweedFS"
eval "$("$ROOT/scripts/seaweed.sh" start "$T/sw" bench)"
export VAULTFS_PASSPHRASE=$PASS RESTIC_PASSWORD=$PASS
L=$T/logs
mkdir -p "$L"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# timed NAME CMD...: sets WALL (s); fails the script if CMD fails.
timed() {
    local name=$1
    shift
    drop_caches
    /usr/bin/time -f '%e' -o "$L/$name.time" "$@" >"$L/$name.log" 2>&1 ||
        { tail -20 "$L/$name.log" >&2; die "$name failed: $*"; }
    WALL=$(tail -n1 "$L/$name.time")
}
ROWS=$T/rows
: >"$ROWS"
row() { printf '| %s | %s | %s | %s |\n' "$@" >>"$ROWS"; }

# Each tool backs up its own copy of the corpus at the same path, changed the same way.
SRC=$T/src
head -c 4000000 /dev/urandom >"$T/new.bin"
fresh_copy() {
    rm -rf "$SRC"
    say "copying the corpus $CORPUS"
    cp -a "$CORPUS/." "$SRC/"
}
change() { # a new 4 MB file and 20 appended files
    mkdir -p "$SRC/bench-change"
    cp "$T/new.bin" "$SRC/bench-change/new.bin"
    # awk reads all of sort's output (head would stop early: SIGPIPE under pipefail).
    find "$SRC" -type f | sort | awk 'NR <= 20' | while read -r f; do echo "bench change" >>"$f"; done
}
fresh_copy
BYTES=$(du -sb "$SRC" | cut -f1)
FILES=$(find "$SRC" -type f | wc -l)

# ---- vaultfs
V=s3://bench/vaultfs
export VAULTFS_CACHE_DIR=$T/vfs-cache
timed vfs-init "$VFS" init "$V"
timed vfs-backup "$VFS" backup "$V" corpus "$SRC"
row backup vaultfs "$WALL" ""
VFS_B1=$WALL
change
timed vfs-incr "$VFS" backup "$V" corpus "$SRC"
VFS_B2=$WALL
# A cold tar through the mount, from a fresh cache directory (index rebuilt from the bucket
# first: not timed, it is what a new machine does once).
export VAULTFS_CACHE_DIR=$T/vfs-cache-2
"$VFS" points "$V" corpus >/dev/null
mkdir -p "$T/mnt-vfs"
MNTS+=("$T/mnt-vfs")
"$VFS" mount "$V" "$T/mnt-vfs" >/dev/null
drop_caches
timed vfs-tar bash -c "tar -C '$T/mnt-vfs/points/corpus/latest/' -cf - . | wc -c"
VFS_TAR=$WALL
"$VFS" umount "$T/mnt-vfs" >/dev/null
timed vfs-restore "$VFS" restore "$V" corpus "$T/restore-vfs"
VFS_RESTORE=$WALL
diff -r --no-dereference "$SRC" "$T/restore-vfs" >/dev/null || die "vaultfs restore differs from the source"

# ---- restic (same server, bucket, data)
fresh_copy
R=s3:$AWS_ENDPOINT_URL/bench/restic
timed restic-init restic -r "$R" init
# restic's local cache would make later reads local: the reads below get fresh ones.
timed restic-backup restic -r "$R" --cache-dir "$T/rc1" backup "$SRC"
RESTIC_B1=$WALL
change
timed restic-incr restic -r "$R" --cache-dir "$T/rc1" backup "$SRC"
RESTIC_B2=$WALL
mkdir -p "$T/mnt-restic"
MNTS+=("$T/mnt-restic")
restic -r "$R" --cache-dir "$T/rc2" mount "$T/mnt-restic" >"$L/restic-mount.log" 2>&1 &
RPID=$!
for _ in $(seq 1 600); do [ -d "$T/mnt-restic/snapshots/latest" ] && break; sleep 0.1; done
drop_caches
timed restic-tar bash -c "tar -C '$T/mnt-restic/snapshots/latest$SRC/' -cf - . | wc -c"
RESTIC_TAR=$WALL
fusermount3 -u "$T/mnt-restic" || umount -l "$T/mnt-restic"
wait "$RPID" || true
timed restic-restore restic -r "$R" --cache-dir "$T/rc3" restore latest --target "$T/restore-restic"
RESTIC_RESTORE=$WALL
diff -r --no-dereference "$SRC" "$T/restore-restic$SRC" >/dev/null || die "restic restore differs from the source"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
{
    echo "S3 (SeaweedFS $(weed version 2>/dev/null | head -1 | awk '{print $3}') on 127.0.0.1), corpus $CORPUS: $FILES files, $((BYTES / 1048576)) MiB; $(nproc) cores, load at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| row | vaultfs (s) | restic (s) | vaultfs / restic |"
    echo "|---|---|---|---|"
    echo "| first backup | $VFS_B1 | $RESTIC_B1 | $(ratio "$VFS_B1" "$RESTIC_B1") |"
    echo "| incremental backup | $VFS_B2 | $RESTIC_B2 | $(ratio "$VFS_B2" "$RESTIC_B2") |"
    echo "| cold tar through the mount | $VFS_TAR | $RESTIC_TAR | $(ratio "$VFS_TAR" "$RESTIC_TAR") |"
    echo "| restore (fresh cache) | $VFS_RESTORE | $RESTIC_RESTORE | $(ratio "$VFS_RESTORE" "$RESTIC_RESTORE") |"
} | tee "${BENCH_OUT:-/dev/null}"
