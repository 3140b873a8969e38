#!/usr/bin/env bash
# scripts/bench.sh — vaultfs against restic and Borg, on the same machine, in the same run.
#
# Run as root on Debian 12:   scripts/bench.sh
# Environment:
#   BENCH_CORPUS=DIR   back up DIR instead of the extracted Linux 6.1 source tree (quick tries)
#   BENCH_OUT=FILE     also write the machine facts and the result table to FILE
#   BENCH_TMPDIR=DIR   where the scratch directory goes (default: $TMPDIR or /tmp); needs about
#                      5x the corpus size free
#   BENCH_KEEP=1       keep the scratch directory (logs, repositories) instead of deleting it
#   BENCH_TIMEOUT=S    per-command time limit in seconds (default 7200)
#   BENCH_INDEX_MIB=N  size of the random file for the index row (default 300: ~1M chunks,
#                      as FastCDC 64/256/1024 averages ~311 bytes)
#   BENCH_SKIP_INDEX=1 skip the index row
#   BENCH_SKIP_MOUNT=1 skip the read side (mounts)
#   BENCH_ONLY_MOUNT=1 only the first backups (row 1, which the mounts need) and the read side
#   BENCH_SKIP_INGEST=1 skip the ingest side (rsync into a mounted vault)
#   BENCH_ONLY_INGEST=1 only the ingest side
#   BENCH_ROLES=1      vaultfs vaults get a role table (a reader and a group operator) and are
#                      mounted with --allow-other, so every request goes through the role check
#   BENCH_WEBDAV=1     add row f of the read side: a point copied out through the WebDAV door
#                      (`vaultfs serve-webdav` + `rclone copy`) against `cp -a` through the mount
#   BENCH_IO_URING=M   how vaultfs mounts get FUSE requests: on (FUSE over io_uring; the kernel's
#                      switch /sys/module/fuse/parameters/enable_uring is set to Y for the run and
#                      put back after), off (/dev/fuse), or both: the whole run twice, off then on,
#                      each table with its own plain/restic/borg rows to take ratios against.
#                      Unset: mount's default (auto), the kernel's switch as it is
#   BENCH_MUTATE_PCT=P share of the corpus bytes the ingest side changes between its two ingests
#                      (default 1)
#
# Rows (each for vaultfs, restic, borg; the page cache is dropped before every measured command
# so each tool starts cold, when /proc/sys/vm/drop_caches is writable):
#   0 cold read      `tar -cf - CORPUS | wc -c`, the reference for how fast the tree can be read
#   1 first backup   first backup into an empty repository
#   2 second backup  second backup of the unchanged tree
#   3 restore        restore of the latest snapshot into an empty directory, verified with diff -r
#   4 index          vaultfs only: a vault with ~1M chunks (--chunk-avg 256, one random file)
# Read side (second table), for the original tree (reference) and vaultfs mount / restic mount /
# borg mount of the latest snapshot; PDIR is the corpus root inside the snapshot, and every
# mount is unmounted (and its daemon gone) before the next one starts:
#   a listable       from starting the mount command until `ls PDIR` lists the tree
#   b find cold      `find PDIR | wc -l`, caches dropped before mounting and right after
#   c ls -lR warm    `ls -lR PDIR >/dev/null`, right after b in the same mount (warm dentries)
#   c ls -lR cold    the same in a fresh mount, caches dropped before and after mounting
#   d tar cold/warm  `tar -C PDIR -cf - . | wc -c` in a fresh mount (caches dropped), then again
#                    in the same mount; `-C PDIR .` so that the archive names, and so the byte
#                    counts, are the same for every tool
#   FUSE floor       rows b-d also for the original tree through bindfs (a bare FUSE passthrough:
#                    no crypto, no compression), to tell what any FUSE mount costs on the machine
#   f copy out       (BENCH_WEBDAV=1) `cp -a PDIR DEST` in a fresh vaultfs mount, caches dropped,
#                    then `rclone copy` (4 transfers, its default) of the same point from
#                    `vaultfs serve-webdav` on 127.0.0.1 with a password file, caches dropped;
#                    regular files' bytes of both copies are checked against the corpus
#   e peak RSS       VmHWM of the mount process (vaultfs daemon, restic, borg daemon), sampled at
#                    the end of each of the three mount sessions, before unmounting; the column
#                    "mount RSS" of rows a-d is that of the session the row was measured in
# Ingest side (third table), the way a mounted vault is fed, against the same data put into a plain
# directory and into restic and borg, on a working copy SRC of the corpus (the corpus itself when
# this script extracted it: the ingest side runs last):
#   i1 first ingest  plain rsync: `rsync -a --delete SRC/ PLAIN/`, PLAIN a new directory on the
#                    scratch disk; vaultfs: a fresh vault mounted, `mkdir MNT/incoming/k`, then
#                    `rsync -a --delete SRC/ MNT/incoming/k/` and `vaultfs snapshot VAULT k`
#                    (timed each, and their sum, "vaultfs total"); restic: `restic backup SRC`
#                    into a fresh repository; borg: `borg create` into a fresh repository
#   FUSE floor       each ingest also as the same rsync into a new directory behind bindfs
#   i2 after change  the same again after a deterministic change of ~1% of SRC's bytes (half
#                    of it modified files, a quarter deleted files, a quarter new files), in
#                    the same mount session, into the same directory/vault/repositories
#   The vaultfs point is checked against SRC (diff -r and metadata) after each snapshot;
#   the daemon's peak RSS is its VmHWM, read right after the snapshot (reset before i2 so that
#   i2 shows the peak during the incremental ingest alone); the unmount at the end ("umount",
#   which finishes pending work) is timed too. Ratios: vaultfs total / the others' wall time.
# Stdout gets only the final facts and table; progress goes to stderr, each tool's own output to
# a log file in the scratch directory (its tail is printed when a command fails).
set -euo pipefail
export LC_NUMERIC=C # $EPOCHREALTIME and awk with a '.' decimal point

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KERNEL_TXZ=/usr/src/linux-source-6.1.tar.xz
TIMEOUT=${BENCH_TIMEOUT:-7200}
INDEX_MIB=${BENCH_INDEX_MIB:-300}
INDEX_RSS_TARGET_MIB=300
PASS=bench

say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
log_tail() { # FILE: show the end of a tool's log on stderr
    printf -- '---- last lines of %s ----\n' "$1" >&2
    tail -n 25 "$1" >&2 || true
    printf -- '----\n' >&2
}

# ---------------------------------------------------------------- transport (BENCH_IO_URING)
URING_PARAM=/sys/module/fuse/parameters/enable_uring
case "${BENCH_IO_URING:-}" in
"" | off) ;;
on | both)
    [ -w "$URING_PARAM" ] || die "BENCH_IO_URING=$BENCH_IO_URING needs root and $URING_PARAM (Linux 6.14+)"
    URING_OLD=$(cat "$URING_PARAM")
    echo Y >"$URING_PARAM"
    if [ "$BENCH_IO_URING" = both ]; then
        trap 'echo "$URING_OLD" >"$URING_PARAM"' EXIT
        rc=0
        for mode in off on; do
            say "BENCH_IO_URING=both: the run with vaultfs mounts --io-uring $mode"
            echo "==== vaultfs mounts with --io-uring $mode"
            BENCH_IO_URING=$mode "${BASH_SOURCE[0]}" || rc=$?
        done
        exit "$rc"
    fi
    trap 'echo "$URING_OLD" >"$URING_PARAM"' EXIT # until cleanup takes over (restore_uring)
    ;;
*) die "BENCH_IO_URING=$BENCH_IO_URING: want on, off or both" ;;
esac
restore_uring() { [ -z "${URING_OLD:-}" ] || echo "$URING_OLD" >"$URING_PARAM"; }

# ---------------------------------------------------------------- prerequisites
export PATH="$PATH:${HOME:-/root}/.cargo/bin:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "need to install $* but not running as root"
    command -v apt-get >/dev/null || die "need $* and there is no apt-get"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    apt-get install -y -qq "$@" >&2
}

need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
command -v bindfs >/dev/null || need+=(bindfs)
[ -x /usr/bin/time ] || need+=(time)
command -v xz >/dev/null || need+=(xz-utils)
if [ -z "${BENCH_CORPUS:-}" ] && [ ! -f "$KERNEL_TXZ" ]; then need+=(linux-source-6.1); fi
ONLY_MOUNT=${BENCH_ONLY_MOUNT:-0}
SKIP_MOUNT=${BENCH_SKIP_MOUNT:-0}
ONLY_INGEST=${BENCH_ONLY_INGEST:-0}
SKIP_INGEST=${BENCH_SKIP_INGEST:-0}
MUTATE_PCT=${BENCH_MUTATE_PCT:-1}
[ "$ONLY_MOUNT" = 1 ] && [ "$SKIP_MOUNT" = 1 ] && die "BENCH_ONLY_MOUNT=1 and BENCH_SKIP_MOUNT=1 leave nothing to do"
[ "$ONLY_INGEST" = 1 ] && [ "$SKIP_INGEST" = 1 ] && die "BENCH_ONLY_INGEST=1 and BENCH_SKIP_INGEST=1 leave nothing to do"
[ "$ONLY_INGEST" = 1 ] && [ "$ONLY_MOUNT" = 1 ] && die "BENCH_ONLY_INGEST=1 and BENCH_ONLY_MOUNT=1 contradict each other"
awk -v p="$MUTATE_PCT" 'BEGIN {exit !(p + 0 > 0 && p + 0 <= 50)}' || die "BENCH_MUTATE_PCT=$MUTATE_PCT: want a number in (0, 50]"
RUN_READ=1   # the read side (mounts of the latest backups)
{ [ "$SKIP_MOUNT" = 1 ] || [ "$ONLY_INGEST" = 1 ]; } && RUN_READ=0
RUN_INGEST=1 # the ingest side (rsync into a mounted vault)
{ [ "$SKIP_INGEST" = 1 ] || [ "$ONLY_MOUNT" = 1 ]; } && RUN_INGEST=0
INGEST_SKIPPED=
if [ "$RUN_INGEST" = 1 ] && { [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; }; then
    # the ingest side mounts a vault; where that cannot work it is left out unless asked for alone
    INGEST_SKIPPED="not root or no /dev/fuse"
    [ "$ONLY_INGEST" = 1 ] && die "the ingest side needs root and /dev/fuse ($INGEST_SKIPPED)"
    say "skipping the ingest side: $INGEST_SKIPPED (set BENCH_SKIP_INGEST=1 to silence this)"
    RUN_INGEST=0
fi
if [ "$RUN_INGEST" = 1 ]; then
    command -v rsync >/dev/null || need+=(rsync)
    command -v fusermount3 >/dev/null || need+=(fuse3)
    command -v python3 >/dev/null || need+=(python3)
fi
if [ "$RUN_READ" = 1 ]; then
    [ "$(id -u)" -eq 0 ] || die "the mount part needs root (or set BENCH_SKIP_MOUNT=1)"
    [ -e /dev/fuse ] || die "no /dev/fuse: the mount part cannot run (set BENCH_SKIP_MOUNT=1)"
    command -v fusermount3 >/dev/null || need+=(fuse3)
    # borg mount needs llfuse (borg 1.2) or pyfuse3, importable by borg's own interpreter
    borg_py=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v borg 2>/dev/null || echo /dev/null)")
    [ -x "${borg_py:-}" ] || borg_py=/usr/bin/python3
    if ! "$borg_py" -c 'import llfuse' 2>/dev/null && ! "$borg_py" -c 'import pyfuse3' 2>/dev/null; then
        need+=(python3-llfuse)
    fi
fi
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi

if ! command -v cargo >/dev/null; then
    # Debian's own rustc (1.63) is too old for this crate (edition 2024, rust >= 1.85).
    say "cargo not found: installing a Rust toolchain with rustup"
    apt_install curl ca-certificates build-essential pkg-config
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
    command -v cargo >/dev/null || die "cargo still not found after rustup"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# ---------------------------------------------------------------- scratch directory
SCRATCH_PARENT=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
T=$(mktemp -d "$SCRATCH_PARENT/vaultfs-bench.XXXXXX")
case $T in *[[:space:]\\]*) die "scratch directory $T: no whitespace or backslash, please (it is matched in /proc/self/mounts)" ;; esac

# ---------------------------------------------------------------- mounts and their daemons
# Every mount this script starts is registered in MTOOL (mount point -> tool) before its command
# runs, and its daemon's pid in MPID as soon as it is known; unmount_all (on exit too) takes
# them down.
declare -A MTOOL MPID
is_mounted() { # DIR: listed in /proc/self/mounts (no stat: works on stale FUSE mounts too)
    awk -v m="$1" '$2 == m {f = 1} END {exit !f}' /proc/self/mounts
}
pid_alive() { # PID: exists and is not a zombie
    [ -n "$1" ] && [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
wait_gone() { # PID SECONDS
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        pid_alive "$1" || return 0
        sleep 0.05
    done
    ! pid_alive "$1"
}
pids_serving() { # MNT: pids of processes whose command line is "... mount ... MNT"
    local p args
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        mapfile -d '' -t args <"$p/cmdline" 2>/dev/null || continue
        [ "${#args[@]}" -ge 3 ] && [ "${args[-1]}" = "$1" ] || continue
        case " ${args[*]} " in *" mount "*) pid_alive "${p#/proc/}" && echo "${p#/proc/}" ;; esac
    done
}
# unmount MNT: unmount with the tool's own command, wait for its daemon to exit; if either does
# not happen, signal the daemon (by pid), detach the mount. Returns 1 if the command failed or
# anything had to be forced; what happened is appended to UMOUNT_NOTES.
UMOUNT_NOTES=
unmount() {
    local mnt=$1 tool=${MTOOL[$1]:-} pid=${MPID[$1]:-} forced=0 p urc=0
    [ -n "$pid" ] || pid=$(pids_serving "$mnt" | tr '\n' ' ')
    if is_mounted "$mnt"; then
        printf -- '--- %s: unmounting %s (%s)\n' "$(date +%T)" "$mnt" "$tool" >>"$L/umount.log"
        case $tool in
        vaultfs) timeout 120 "$VFS" umount "$mnt" ;;
        restic) fusermount3 -u "$mnt" ;;
        borg) timeout 120 borg umount "$mnt" ;;
        *) umount "$mnt" ;;
        esac >"$L/umount.last" 2>&1 || urc=$?
        cat "$L/umount.last" >>"$L/umount.log"
        if [ "$urc" -ne 0 ]; then
            forced=1
            say "unmounting $mnt ($tool): exit $urc: $(tr '\n' ' ' <"$L/umount.last")"
            UMOUNT_NOTES="$UMOUNT_NOTES
  $tool: the unmount command exited $urc ($(tr '\n' ' ' <"$L/umount.last" | sed 's/ *$//'))$(is_mounted "$mnt" && echo ', still mounted' || echo ', though the mount was gone afterwards')"
        fi
    fi
    for p in $pid; do
        wait_gone "$p" 60 && continue
        forced=1
        UMOUNT_NOTES="$UMOUNT_NOTES
  $tool: daemon $p still running 60 s after unmounting, sent SIGTERM"
        say "$tool daemon $p still running 60 s after unmounting: SIGTERM"
        kill -TERM "$p" 2>/dev/null || true
        wait_gone "$p" 10 && continue
        say "$tool daemon $p ignores SIGTERM: SIGKILL"
        kill -KILL "$p" 2>/dev/null || true
        wait_gone "$p" 10 || say "$tool daemon $p does not die"
    done
    if is_mounted "$mnt"; then
        forced=1
        UMOUNT_NOTES="$UMOUNT_NOTES
  $tool: $mnt still mounted after its daemon exited, detached with umount -l"
        say "$mnt still mounted: detaching it (umount -l)"
        umount -l "$mnt" 2>>"$L/umount.log" || fusermount3 -u -z "$mnt" 2>>"$L/umount.log" || true
    fi
    # restic runs as our child: reap it
    for p in $pid; do wait "$p" 2>/dev/null || true; done
    unset "MTOOL[$mnt]" "MPID[$mnt]"
    return "$forced"
}
unmount_all() {
    local m
    for m in "${!MTOOL[@]}"; do unmount "$m" || true; done
    # anything else mounted under the scratch directory (should not happen)
    for m in $(awk -v t="$T/" 'index($2, t) == 1 {print $2}' /proc/self/mounts); do
        say "unexpected mount left at $m: unmounting"
        MTOOL[$m]=unknown
        unmount "$m" || true
    done
}

cleanup() {
    local rc=$?
    trap - INT TERM
    if [ -n "${WEBDAV_PID:-}" ]; then kill "$WEBDAV_PID" 2>/dev/null || true; fi
    unmount_all
    restore_uring
    if awk -v t="$T/" 'index($2, t) == 1 {f = 1} END {exit !f}' /proc/self/mounts; then
        say "mounts remain under $T; not deleting it:"
        grep -F " $T/" /proc/self/mounts >&2 || true
        [ "$rc" -ne 0 ] || rc=1
    elif [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "kept scratch directory $T"
    elif [ "$rc" -ne 0 ] && [ -d "$T/logs" ]; then
        find "$T" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} +
        say "kept the logs in $T/logs"
    else
        rm -rf --one-file-system "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
L=$T/logs
mkdir -p "$L"

export VAULTFS_PASSPHRASE=$PASS RESTIC_PASSWORD=$PASS BORG_PASSPHRASE=$PASS
# Keep the peers' caches in the scratch directory: cleaned up with it, and no leftovers from an
# earlier run make a "first" backup warm.
export RESTIC_CACHE_DIR=$T/restic-cache BORG_BASE_DIR=$T/borg-home
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

# ---------------------------------------------------------------- build
say "cargo build --release (log: $L/build.log)"
if ! (cd "$ROOT" && cargo build --release) >"$L/build.log" 2>&1; then
    log_tail "$L/build.log"
    die "cargo build --release failed"
fi
[ -x "$ROOT/target/release/vaultfs" ] || die "$ROOT/target/release/vaultfs missing after the build"
# measure a copy: a rebuild in the work tree during the run cannot swap the binary under us
mkdir -p "$T/bin"
cp "$ROOT/target/release/vaultfs" "$T/bin/vaultfs"
VFS=$T/bin/vaultfs
# what was built: the commit, "+dirty" if src/ differed from it at build time ("?" outside git)
if BUILD_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD -- src || BUILD_REV="$BUILD_REV+dirty"
else
    BUILD_REV="?"
fi

# ---------------------------------------------------------------- corpus
if [ -n "${BENCH_CORPUS:-}" ]; then
    [ -d "$BENCH_CORPUS" ] || die "BENCH_CORPUS=$BENCH_CORPUS is not a directory"
    CORPUS=$(realpath "$BENCH_CORPUS")
    CORPUS_DESC="$CORPUS (BENCH_CORPUS)"
else
    say "extracting $KERNEL_TXZ"
    mkdir -p "$T/corpus"
    if ! tar -I 'xz -T0' -xf "$KERNEL_TXZ" -C "$T/corpus" 2>"$L/extract.log"; then
        log_tail "$L/extract.log"
        die "extracting $KERNEL_TXZ failed"
    fi
    CORPUS=$(find "$T/corpus" -mindepth 1 -maxdepth 1 -type d | head -n1)
    [ -n "$CORPUS" ] || die "no directory in $KERNEL_TXZ"
    CORPUS_DESC="$CORPUS (from $KERNEL_TXZ)"
fi
CORPUS_BYTES=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')
CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
CORPUS_DIRS=$(find "$CORPUS" -type d | wc -l)
CORPUS_LINKS=$(find "$CORPUS" -type l | wc -l)
[ "$CORPUS_BYTES" -gt 0 ] || die "corpus $CORPUS holds no data"
say "corpus: $CORPUS_BYTES bytes, $CORPUS_FILES files, $CORPUS_DIRS dirs, $CORPUS_LINKS symlinks"

# ---------------------------------------------------------------- measuring
DROPPED=no
drop_caches() {
    sync
    if { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then DROPPED=yes; fi
}

# timed NAME CMD...: run CMD under /usr/bin/time with its output in $L/NAME.log.
# Sets RC, WALL (seconds), RSS_KIB (peak resident set of the largest process in the tree) and
# USR/SYS (CPU seconds of the tree).
timed() {
    local name=$1
    shift
    local tf=$L/$name.time
    RC=0
    /usr/bin/time -f '%e %M %U %S' -o "$tf" timeout "$TIMEOUT" "$@" >"$L/$name.log" 2>&1 || RC=$?
    read -r WALL RSS_KIB USR SYS < <(tail -n1 "$tf") || true
    WALL=${WALL:-0} RSS_KIB=${RSS_KIB:-0} USR=${USR:-0} SYS=${SYS:-0}
    if [ "$RC" -ne 0 ]; then
        if [ "$RC" -eq 124 ]; then say "TIMED OUT after ${TIMEOUT}s: $*"; else say "FAILED (exit $RC): $*"; fi
        log_tail "$L/$name.log"
    fi
}

ROWS=$T/rows
: >"$ROWS"
FAILURES=0
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {if (s > 0) printf "%.1f", b / 1e6 / s; else print "-"}'; }
dir_bytes() { du -sb "$1" | cut -f1; }
# row ROW TOOL WALL MB/s RSS_MiB REPO_MiB NOTE
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }
fail_row() { # ROW TOOL WHAT
    FAILURES=$((FAILURES + 1))
    row "$1" "$2" "$WALL" - "$(mib $((RSS_KIB * 1024)))" - "FAILED: $3 exit $RC (log $L/$4.log)"
}

# meta_list DIR: type, mode, owner, size, mtime and link target of every entry, sorted.
meta_list() {
    (cd "$1" && find . -mindepth 1 \( -type d -printf '%p\t%y %m %U:%G %T@\n' \) -o \
        -printf '%p\t%y %m %U:%G %s %T@ -> %l\n' | LC_ALL=C sort)
}
# verify TOOL DIR [REF]: compare a restored tree with REF (default: the corpus); echoes the note
# ("FAIL" in it on a content mismatch). Runs in a subshell: it cannot count failures itself.
verify() {
    local tool=$1 got=$2 ref=${3:-$CORPUS} note ndiff nmeta
    if [ ! -d "$got" ]; then
        echo "FAIL: $got missing"
        return
    fi
    if diff -rq --no-dereference "$ref" "$got" >"$L/diff-$tool.log" 2>&1; then
        note="diff OK"
    else
        ndiff=$(wc -l <"$L/diff-$tool.log")
        note="diff FAIL ($ndiff lines, $L/diff-$tool.log)"
        say "restore of $tool differs from $ref:"
        head -n 10 "$L/diff-$tool.log" >&2
    fi
    meta_list "$ref" >"$T/meta-corpus"
    meta_list "$got" >"$T/meta-$tool"
    nmeta=$(diff "$T/meta-corpus" "$T/meta-$tool" | grep -c '^<' || true)
    if [ "$nmeta" -eq 0 ]; then
        note="$note, metadata OK"
    else
        diff "$T/meta-corpus" "$T/meta-$tool" >"$L/meta-$tool.diff" || true
        note="$note, metadata differs on $nmeta entries ($L/meta-$tool.diff)"
    fi
    rm -f "$T/meta-corpus" "$T/meta-$tool"
    echo "$note"
}

TOOLS=(vaultfs restic borg)
declare -A REPO OK SIZE1
BORG_LAST=one # the latest borg archive
REPO[vaultfs]=$T/repo-vaultfs
REPO[restic]=$T/repo-restic
REPO[borg]=$T/repo-borg

index_note() { # TOOL: for vaultfs, how much of the vault the sled index takes
    if [ "$1" = vaultfs ] && [ -d "${REPO[vaultfs]}/index" ]; then
        printf '; sled index %s MiB' "$(mib "$(dir_bytes "${REPO[vaultfs]}/index")")"
    fi
}
init_repo() { # TOOL
    case $1 in
    vaultfs) "$VFS" init "${REPO[vaultfs]}" ;;
    restic) restic init --repository-version 2 -r "${REPO[restic]}" ;;
    borg) borg init -e repokey-blake2 "${REPO[borg]}" ;;
    esac
}
backup_cmd() { # TOOL N -> the command line, one word per line
    case $1 in
    vaultfs) printf '%s\n' "$VFS" backup "${REPO[vaultfs]}" kernel "$CORPUS" ;;
    restic) printf '%s\n' restic -r "${REPO[restic]}" backup "$CORPUS" ;;
    borg)
        local name=one
        [ "$2" = 2 ] && name=two
        printf '%s\n' borg create --stats --compression zstd,3 "${REPO[borg]}::$name" "$CORPUS"
        ;;
    esac
}

# ---------------------------------------------------------------- row 0: cold read reference
if [ "$ONLY_MOUNT" != 1 ] && [ "$ONLY_INGEST" != 1 ]; then
    say "row 0: cold read (tar -cf - | wc -c)"
    drop_caches
    timed tar-read bash -c 'tar -cf - "$1" 2>/dev/null | wc -c' _ "$CORPUS"
    if [ "$RC" -eq 0 ]; then
        row "0 cold read" "tar" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" \
            "$(mib $((RSS_KIB * 1024)))" - "reference: tar -cf - CORPUS | wc -c = $(tail -n1 "$L/tar-read.log") bytes"
    else
        fail_row "0 cold read" "tar" "tar" tar-read
    fi
fi

# ---------------------------------------------------------------- row 1: first backup
for tool in "${TOOLS[@]}"; do
    OK[$tool]=0
    [ "$ONLY_INGEST" != 1 ] || continue
    say "row 1: $tool init + first backup"
    RC=0
    init_repo "$tool" >"$L/$tool-init.log" 2>&1 || RC=$?
    if [ "$RC" -ne 0 ]; then
        log_tail "$L/$tool-init.log"
        WALL=0 RSS_KIB=0
        fail_row "1 first backup" "$tool" init "$tool-init"
        continue
    fi
    mapfile -t cmd < <(backup_cmd "$tool" 1)
    drop_caches
    timed "$tool-backup1" "${cmd[@]}"
    if [ "$RC" -ne 0 ]; then
        fail_row "1 first backup" "$tool" backup "$tool-backup1"
        continue
    fi
    OK[$tool]=1
    [ "$tool" = borg ] && BORG_LAST=one
    SIZE1[$tool]=$(dir_bytes "${REPO[$tool]}")
    row "1 first backup" "$tool" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" \
        "$(mib $((RSS_KIB * 1024)))" "$(mib "${SIZE1[$tool]}")" \
        "repo/corpus $(awk -v r="${SIZE1[$tool]}" -v c="$CORPUS_BYTES" 'BEGIN {printf "%.3f", r / c}')$(index_note "$tool")"
done

if [ "$ONLY_MOUNT" != 1 ] && [ "$ONLY_INGEST" != 1 ]; then
    # ---------------------------------------------------------------- row 2: second backup, unchanged
    for tool in "${TOOLS[@]}"; do
        [ "${OK[$tool]}" = 1 ] || { row "2 second backup" "$tool" - - - - "skipped (first backup failed)"; continue; }
        say "row 2: $tool second backup"
        mapfile -t cmd < <(backup_cmd "$tool" 2)
        drop_caches
        timed "$tool-backup2" "${cmd[@]}"
        if [ "$RC" -ne 0 ]; then
            fail_row "2 second backup" "$tool" backup "$tool-backup2"
            continue
        fi
        [ "$tool" = borg ] && BORG_LAST=two
        size2=$(dir_bytes "${REPO[$tool]}")
        row "2 second backup" "$tool" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" \
            "$(mib $((RSS_KIB * 1024)))" "$(mib "$size2")" \
            "repo grew $(awk -v d=$((size2 - SIZE1[$tool])) 'BEGIN {if (d < 1048576) printf "%.1f KiB", d / 1024; else printf "%.2f MiB", d / 1048576}')$(index_note "$tool")"
    done

    # ---------------------------------------------------------------- row 3: restore latest
    for tool in "${TOOLS[@]}"; do
        [ "${OK[$tool]}" = 1 ] || { row "3 restore" "$tool" - - - - "skipped (first backup failed)"; continue; }
        say "row 3: $tool restore"
        dest=$T/restore-$tool
        mkdir -p "$dest"
        drop_caches
        case $tool in
        vaultfs)
            timed vaultfs-restore "$VFS" restore "${REPO[vaultfs]}" kernel "$dest"
            got=$dest
            ;;
        restic)
            timed restic-restore restic -r "${REPO[restic]}" restore latest --target "$dest"
            got=$dest$CORPUS
            ;;
        borg)
            timed borg-restore env -C "$dest" borg extract "${REPO[borg]}::two"
            got=$dest/${CORPUS#/}
            ;;
        esac
        if [ "$RC" -ne 0 ]; then
            fail_row "3 restore" "$tool" restore "$tool-restore"
        else
            say "row 3: verifying the $tool restore"
            note=$(verify "$tool" "$got")
            case $note in *FAIL*) FAILURES=$((FAILURES + 1)) ;; esac
            row "3 restore" "$tool" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" \
                "$(mib $((RSS_KIB * 1024)))" - "$note"
        fi
        rm -rf "$dest"
    done
fi

# ---------------------------------------------------------------- read side: mounts
MROWS=$T/mount-rows
: >"$MROWS"
# mrow ROW TOOL WALL MB/s MOUNT_RSS_MiB OUTPUT NOTE
mrow() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$MROWS"; }

# mrun NAME SCRIPT DIR: run `bash -c SCRIPT _ DIR`, stdout in $L/NAME.out, stderr in
# $L/NAME.err. Sets RC, WALL (seconds, ms resolution), OUT (last line of stdout) and ERRS (the
# number of lines on stderr).
mrun() {
    local name=$1 script=$2 dir=$3 t0 t1
    RC=0
    t0=$EPOCHREALTIME
    timeout "$TIMEOUT" bash -c "$script" _ "$dir" >"$L/$name.out" 2>"$L/$name.err" || RC=$?
    t1=$EPOCHREALTIME
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    OUT=$(tail -n1 "$L/$name.out")
    ERRS=$(wc -l <"$L/$name.err")
    if [ "$RC" -ne 0 ] || [ "$ERRS" -gt 0 ]; then
        say "$name: exit $RC, $ERRS lines on stderr; first ones:"
        head -n 5 "$L/$name.err" >&2
    fi
}
FIND_SH='set -o pipefail; find "$1" | wc -l'
LS_SH='ls -lR "$1" >/dev/null'
TAR_SH='set -o pipefail; tar -C "$1" -cf - . | wc -c'
# err_note: what went wrong in the last mrun, for the note ("" if nothing); counts a failure
err_note() {
    if [ "$RC" -ne 0 ] || [ "$ERRS" -gt 0 ]; then
        FAILURES=$((FAILURES + 1))
        printf '; FAILED: exit %s, %s error lines (%s)' "$RC" "$ERRS" "$L/$1.err"
    fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
# target NAME VALUE LIMIT: "NAME: PASS" if VALUE <= LIMIT
target() { awk -v n="$1" -v v="$2" -v l="$3" 'BEGIN {if (v == "-") print n ": ?"; else print n ": " (v + 0 <= l + 0 ? "PASS" : "FAIL")}'; }

vfs_point() { # name of the latest vaultfs point of item kernel
    "$VFS" points "${REPO[vaultfs]}" kernel --json 2>>"$L/vaultfs-points.log" |
        python3 -c 'import json, sys; p = json.load(sys.stdin); print(max(p, key=lambda x: x["created_ns"])["point"] if p else "")'
}
point_dir() { # TOOL MNT: the corpus root inside the mounted snapshot
    case $1 in
    vaultfs) echo "$2/points/kernel/$VPOINT" ;;
    restic) echo "$2/snapshots/latest$CORPUS" ;;
    borg) echo "$2/$BORG_LAST$CORPUS" ;;
    esac
}

# mount_session TOOL MNT NAME: drop caches, start the mount, wait until PDIR lists. Sets PDIR,
# LISTABLE (s from starting the mount command), RETURNED (s until the mount command returned;
# "-" for restic, which stays in the foreground) and MPID[MNT]. Returns 1 on failure.
# vaultfs_mount VAULT MNT LOG: mount a vault; with BENCH_ROLES=1 grant a role table first and
# mount with --allow-other (the role check on every request).
vaultfs_mount() {
    local extra=()
    if [ "${BENCH_ROLES:-0}" = 1 ]; then
        "$VFS" role grant "$1" --user nobody reader >>"$3" 2>&1 || true
        "$VFS" role grant "$1" --group nogroup operator >>"$3" 2>&1 || true
        extra=(--allow-other)
    fi
    [ -z "${BENCH_IO_URING:-}" ] || extra+=(--io-uring "$BENCH_IO_URING")
    timeout 600 "$VFS" mount "$1" "$2" "${extra[@]}" >>"$3" 2>&1
}

mount_session() {
    local tool=$1 mnt=$2 name=$3 t0 t1 deadline log=$L/$3-mount.log pids
    PDIR=$(point_dir "$tool" "$mnt") RETURNED=- LISTABLE=-
    drop_caches
    MTOOL[$mnt]=$tool
    MPID[$mnt]=
    t0=$EPOCHREALTIME
    case $tool in
    vaultfs)
        : >"$log"
        if ! vaultfs_mount "${REPO[vaultfs]}" "$mnt" "$log"; then
            log_tail "$log"
            return 1
        fi
        RETURNED=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')
        MPID[$mnt]=$(sed -n 's/.*(daemon pid \([0-9]*\),.*/\1/p' "$log")
        ;;
    restic)
        restic -r "${REPO[restic]}" mount "$mnt" >"$log" 2>&1 &
        MPID[$mnt]=$!
        ;;
    borg)
        if ! timeout 600 borg mount "${REPO[borg]}" "$mnt" >"$log" 2>&1; then
            log_tail "$log"
            return 1
        fi
        RETURNED=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')
        ;;
    esac
    deadline=$((SECONDS + TIMEOUT))
    while ! ls -- "$PDIR" 2>/dev/null | grep -q .; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "$tool: $PDIR not listable after ${TIMEOUT}s"
            log_tail "$log"
            return 1
        fi
        if [ -n "${MPID[$mnt]}" ] && ! pid_alive "${MPID[$mnt]}"; then
            say "$tool: the mount process ${MPID[$mnt]} died"
            log_tail "$log"
            return 1
        fi
        sleep 0.01
    done
    t1=$EPOCHREALTIME
    LISTABLE=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    if [ -z "${MPID[$mnt]}" ]; then
        pids=$(pids_serving "$mnt")
        MPID[$mnt]=$pids
        if [ "$(wc -w <<<"$pids")" -ne 1 ]; then
            say "$tool: expected one process serving $mnt, found: ${pids:-none}"
        fi
    fi
    say "$tool: $PDIR listable after ${LISTABLE}s (mount process ${MPID[$mnt]})"
}
file_bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}'; }
# webdav_rows: row f, a point copied out through the FUSE mount (cp -a) and through the WebDAV
# door (rclone copy), in the same run; the server is killed on exit (cleanup) if still running.
webdav_rows() {
    local mnt=$T/mnt-vaultfs dst=$T/copy-out pw=$T/webdav.htpasswd url fuse_wall n
    command -v rclone >/dev/null && command -v htpasswd >/dev/null || apt_install rclone apache2-utils
    mkdir -p "$mnt"
    say "read side: f copy out through the FUSE mount (cp -a)"
    if mount_session vaultfs "$mnt" vaultfs-s4; then
        rm -rf "$dst"
        drop_caches
        mrun vaultfs-cp 'cp -a "$1" '"$dst" "$PDIR"
        fuse_wall=$WALL
        end_session "$mnt" vaultfs
        n="cp -a; $(file_bytes "$dst") file bytes, corpus $CORPUS_BYTES$(err_note vaultfs-cp)"
        mrow "f copy out" "vaultfs mount" "$fuse_wall" "$(mbps "$CORPUS_BYTES" "$fuse_wall")" "$SESSION_RSS" - "$n"
    else
        unmount "$mnt" || true
        FAILURES=$((FAILURES + 1))
        mrow "f copy out" "vaultfs mount" - - - - "FAILED: mount (log $L/vaultfs-s4-mount.log)"
    fi
    rmdir "$mnt" 2>/dev/null || true
    rm -rf "$dst"
    say "read side: f copy out through WebDAV (vaultfs serve-webdav, rclone copy)"
    printf 'bench' | htpasswd -i -B -c "$pw" bench 2>>"$L/webdav.log"
    drop_caches
    "$VFS" serve-webdav "${REPO[vaultfs]}" --listen 127.0.0.1:0 --password-file "$pw" \
        >"$L/webdav.out" 2>>"$L/webdav.log" &
    WEBDAV_PID=$!
    for _ in $(seq 600); do grep -q serving "$L/webdav.out" && break; sleep 0.1; done
    url=$(sed -n 's|.* at \(http://[^ ]*\)/ .*|\1|p' "$L/webdav.out")
    if [ -z "$url" ]; then
        log_tail "$L/webdav.log"
        FAILURES=$((FAILURES + 1))
        mrow "f copy out" "vaultfs webdav" - - - - "FAILED: serve-webdav (log $L/webdav.log)"
    else
        export RCLONE_WEBDAV_URL=$url RCLONE_WEBDAV_USER=bench RCLONE_WEBDAV_VENDOR=other
        RCLONE_WEBDAV_PASS=$(rclone obscure bench)
        export RCLONE_WEBDAV_PASS
        mrun webdav-rclone 'rclone --config /dev/null copy ":webdav:points/kernel/$1" '"$dst" "$VPOINT"
        local rss
        rss=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$WEBDAV_PID/status" 2>/dev/null || echo -)
        n="rclone copy; $(file_bytes "$dst") file bytes, corpus $CORPUS_BYTES (symlinks are not served)$(err_note webdav-rclone)"
        n="$n; $(ratio "$WALL" "${fuse_wall:-}")x the mount's cp -a (same run; shared machine, noisy)"
        mrow "f copy out" "vaultfs webdav" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" "$rss" - "$n"
    fi
    kill "$WEBDAV_PID" 2>/dev/null || true
    wait "$WEBDAV_PID" 2>/dev/null || true
    WEBDAV_PID=
    rm -rf "$dst"
}
hwm_mib() { # MNT: VmHWM of the mount process(es), MiB (the largest if several)
    local p k=0 v
    for p in ${MPID[$1]:-}; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$v" ] && [ "$v" -gt "$k" ] && k=$v
    done
    if [ "$k" -gt 0 ]; then mib $((k * 1024)); else echo -; fi
}
end_session() { # MNT TOOL: sample the peak RSS into SESSION_RSS, unmount
    SESSION_RSS=$(hwm_mib "$1")
    ALL_PIDS="$ALL_PIDS ${MPID[$1]:-}"
    SESSION_PIDS="$SESSION_PIDS${SESSION_PIDS:+/}$(tr ' ' ',' <<<"${MPID[$1]:-?}")"
    if ! unmount "$1"; then
        FAILURES=$((FAILURES + 1))
        UMOUNT_TROUBLE="$UMOUNT_TROUBLE $2"
    fi
}

if [ "$RUN_READ" = 1 ]; then
    UMOUNT_TROUBLE= VFS_DAEMON_ERRS=0 ALL_PIDS=
    declare -A REF TARB
    # ---- reference: the original tree, same order as for the mounts
    say "read side: reference rows on the original tree"
    drop_caches
    mrun ref-find "$FIND_SH" "$CORPUS"
    REF[find]=$WALL REF[entries]=$OUT
    mrow "b find cold" original "$WALL" - - "$OUT" "entries$(err_note ref-find)"
    mrun ref-ls-warm "$LS_SH" "$CORPUS"
    REF[lswarm]=$WALL
    mrow "c ls -lR warm" original "$WALL" - - - "after find$(err_note ref-ls-warm)"
    drop_caches
    mrun ref-ls-cold "$LS_SH" "$CORPUS"
    REF[lscold]=$WALL
    mrow "c ls -lR cold" original "$WALL" - - - "caches dropped$(err_note ref-ls-cold)"
    drop_caches
    mrun ref-tar-cold "$TAR_SH" "$CORPUS"
    REF[tarcold]=$WALL REF[bytes]=$OUT
    mrow "d tar cold" original "$WALL" "$(mbps "$OUT" "$WALL")" - "$OUT" "bytes$(err_note ref-tar-cold)"
    mrun ref-tar-warm "$TAR_SH" "$CORPUS"
    REF[tarwarm]=$WALL
    mrow "d tar warm" original "$WALL" "$(mbps "$OUT" "$WALL")" - "$OUT" "bytes$(err_note ref-tar-warm)"

    # ---- the FUSE floor: the original tree through bindfs, a bare FUSE passthrough (no crypto,
    # no compression, kernel caching as long as vaultfs's), same sessions as the mounts below
    BMNT=$T/mnt-bindfs
    mkdir -p "$BMNT"
    declare -A FLOOR
    for session in 1 2 3; do
        say "read side: bindfs session $session"
        drop_caches
        MTOOL[$BMNT]=bindfs
        if ! bindfs --multithreaded -o entry_timeout=3600,attr_timeout=3600,kernel_cache \
            "$CORPUS" "$BMNT" >"$L/bindfs-s$session.log" 2>&1; then
            log_tail "$L/bindfs-s$session.log"
            FAILURES=$((FAILURES + 1))
            mrow "b find cold" bindfs - - - - "FAILED: bindfs (log $L/bindfs-s$session.log)"
            break
        fi
        drop_caches
        case $session in
        1)
            mrun bindfs-find "$FIND_SH" "$BMNT"
            FLOOR[find]=$WALL
            mrow "b find cold" bindfs "$WALL" - - "$OUT" "FUSE floor; $(ratio "$WALL" "${REF[find]}")x original$(err_note bindfs-find)"
            mrun bindfs-ls-warm "$LS_SH" "$BMNT"
            FLOOR[lswarm]=$WALL
            mrow "c ls -lR warm" bindfs "$WALL" - - - "FUSE floor; $(ratio "$WALL" "${REF[lswarm]}")x original$(err_note bindfs-ls-warm)"
            ;;
        2)
            mrun bindfs-ls-cold "$LS_SH" "$BMNT"
            FLOOR[lscold]=$WALL
            mrow "c ls -lR cold" bindfs "$WALL" - - - "FUSE floor; $(ratio "$WALL" "${REF[lscold]}")x original$(err_note bindfs-ls-cold)"
            ;;
        3)
            mrun bindfs-tar-cold "$TAR_SH" "$BMNT"
            FLOOR[tarcold]=$WALL
            mrow "d tar cold" bindfs "$WALL" "$(mbps "$OUT" "$WALL")" - "$OUT" "FUSE floor; original is $(ratio "$(mbps "${REF[bytes]}" "${REF[tarcold]}")" "$(mbps "$OUT" "$WALL")")x as fast$(err_note bindfs-tar-cold)"
            mrun bindfs-tar-warm "$TAR_SH" "$BMNT"
            FLOOR[tarwarm]=$WALL
            mrow "d tar warm" bindfs "$WALL" "$(mbps "$OUT" "$WALL")" - "$OUT" "FUSE floor; original is $(ratio "$(mbps "${REF[bytes]}" "${REF[tarwarm]}")" "$(mbps "$OUT" "$WALL")")x as fast$(err_note bindfs-tar-warm)"
            ;;
        esac
        unmount "$BMNT" || FAILURES=$((FAILURES + 1))
    done
    rmdir "$BMNT" 2>/dev/null || true

    VPOINT=
    [ "${OK[vaultfs]}" = 1 ] && VPOINT=$(vfs_point || true)
    [ -n "$VPOINT" ] || VPOINT=latest

    for tool in "${TOOLS[@]}"; do
        if [ "${OK[$tool]}" != 1 ]; then
            mrow "a listable" "$tool" - - - - "skipped (no backup)"
            continue
        fi
        mnt=$T/mnt-$tool
        mkdir -p "$mnt"
        peak=- SESSION_PIDS=
        # ---- session 1: listable, find cold, ls -lR warm
        say "read side: $tool session 1 (listable, find cold, ls -lR warm)"
        if ! mount_session "$tool" "$mnt" "$tool-s1"; then
            unmount "$mnt" || true
            FAILURES=$((FAILURES + 1))
            mrow "a listable" "$tool" - - - - "FAILED: mount (log $L/$tool-s1-mount.log)"
            continue
        fi
        listable=$LISTABLE returned=$RETURNED
        drop_caches
        mrun "$tool-find" "$FIND_SH" "$PDIR"
        f_wall=$WALL f_out=$OUT
        f_note="entries, original ${REF[entries]}$(err_note "$tool-find")"
        [ "$f_out" = "${REF[entries]}" ] || f_note="$f_note, COUNT DIFFERS"
        f_ratio=$(ratio "$f_wall" "${REF[find]}")
        f_note="$f_note; ${f_ratio}x original"
        [ "$tool" = vaultfs ] && f_note="$f_note, $(target 'target <=2x' "$f_ratio" 2); $(ratio "$f_wall" "${FLOOR[find]:-}")x bindfs"
        mrun "$tool-ls-warm" "$LS_SH" "$PDIR"
        lw_wall=$WALL
        lw_ratio=$(ratio "$lw_wall" "${REF[lswarm]}")
        lw_note="after find; ${lw_ratio}x original$(err_note "$tool-ls-warm")"
        [ "$tool" = vaultfs ] && lw_note="$lw_note, $(target 'target <=2x' "$lw_ratio" 2); $(ratio "$lw_wall" "${FLOOR[lswarm]:-}")x bindfs"
        end_session "$mnt" "$tool"
        s1_rss=$SESSION_RSS
        mrow "a listable" "$tool" "$listable" - "$s1_rss" - \
            "ls $(sed "s|^$mnt|MNT|" <<<"$PDIR")$([ "$returned" = - ] || echo "; the mount command returned after ${returned}s")"
        mrow "b find cold" "$tool" "$f_wall" - "$s1_rss" "$f_out" "$f_note"
        mrow "c ls -lR warm" "$tool" "$lw_wall" - "$s1_rss" - "$lw_note"

        # ---- session 2: ls -lR cold
        say "read side: $tool session 2 (ls -lR cold)"
        if mount_session "$tool" "$mnt" "$tool-s2"; then
            drop_caches
            mrun "$tool-ls-cold" "$LS_SH" "$PDIR"
            lc_wall=$WALL
            lc_ratio=$(ratio "$lc_wall" "${REF[lscold]}")
            lc_note="fresh mount, caches dropped; ${lc_ratio}x original$(err_note "$tool-ls-cold")"
            [ "$tool" = vaultfs ] && lc_note="$lc_note, $(target 'target <=2x' "$lc_ratio" 2); $(ratio "$lc_wall" "${FLOOR[lscold]:-}")x bindfs"
            end_session "$mnt" "$tool"
            mrow "c ls -lR cold" "$tool" "$lc_wall" - "$SESSION_RSS" - "$lc_note"
            s2_rss=$SESSION_RSS
        else
            unmount "$mnt" || true
            FAILURES=$((FAILURES + 1))
            mrow "c ls -lR cold" "$tool" - - - - "FAILED: mount (log $L/$tool-s2-mount.log)"
            s2_rss=-
        fi

        # ---- session 3: tar cold, tar warm
        say "read side: $tool session 3 (tar cold, tar warm)"
        if mount_session "$tool" "$mnt" "$tool-s3"; then
            drop_caches
            mrun "$tool-tar-cold" "$TAR_SH" "$PDIR"
            tc_wall=$WALL tc_out=$OUT tc_err=$(err_note "$tool-tar-cold")
            mrun "$tool-tar-warm" "$TAR_SH" "$PDIR"
            tw_wall=$WALL tw_out=$OUT tw_err=$(err_note "$tool-tar-warm")
            end_session "$mnt" "$tool"
            s3_rss=$SESSION_RSS
            for v in cold warm; do
                if [ $v = cold ]; then w=$tc_wall o=$tc_out e=$tc_err; else w=$tw_wall o=$tw_out e=$tw_err; fi
                dev=$(awk -v a="$o" -v b="${REF[bytes]}" 'BEGIN {if (b > 0 && a != "") printf "%+.2f%%", (a - b) * 100 / b; else print "?"}')
                n="bytes, ${dev} vs original$e"
                awk -v a="$o" -v b="${REF[bytes]}" 'BEGIN {d = (a - b) / b; exit !(a == "" || d > 0.03 || d < -0.03)}' &&
                    n="$n (MORE THAN 3% OFF)"
                sp=$(ratio "$(mbps "${REF[bytes]}" "${REF[tar$v]}")" "$(mbps "$o" "$w")")
                n="$n; original is ${sp}x as fast"
                if [ "$tool" = vaultfs ] && [ $v = cold ]; then
                    n="$n, $(target 'target >= original' "$sp" 1)"
                fi
                [ "$tool" = vaultfs ] && n="$n; $(ratio "$w" "${FLOOR[tar$v]:-}")x bindfs"
                mrow "d tar $v" "$tool" "$w" "$(mbps "$o" "$w")" "$s3_rss" "$o" "$n"
                [ $v = cold ] && TARB[$tool]=$o
            done
        else
            unmount "$mnt" || true
            FAILURES=$((FAILURES + 1))
            mrow "d tar cold" "$tool" - - - - "FAILED: mount (log $L/$tool-s3-mount.log)"
            s3_rss=-
        fi
        peak=$(printf '%s\n' "$s1_rss" "$s2_rss" "$s3_rss" | grep -v '^-$' | sort -n | tail -n1)
        mrow "e peak RSS" "$tool" - - "${peak:--}" - \
            "VmHWM at the end of sessions 1/2/3: $s1_rss/$s2_rss/$s3_rss MiB (pids $SESSION_PIDS)"
        rmdir "$mnt" 2>/dev/null || true
    done
    if [ "${BENCH_WEBDAV:-0}" = 1 ] && [ "${OK[vaultfs]}" = 1 ]; then webdav_rows; fi
    if [ -f "${REPO[vaultfs]}/daemon.log" ] && grep -qiE 'error|warn|damaged' "${REPO[vaultfs]}/daemon.log"; then
        say "the vaultfs daemon log has warnings or errors:"
        grep -iE 'error|warn|damaged' "${REPO[vaultfs]}/daemon.log" | head -n 20 >&2
        cp "${REPO[vaultfs]}/daemon.log" "$L/vaultfs-daemon.log"
        VFS_DAEMON_ERRS=$(grep -ciE 'error|warn|damaged' "${REPO[vaultfs]}/daemon.log")
    fi
    # ---- summary: do the tar byte counts agree, is everything unmounted and gone
    MOUNT_SUMMARY="tar bytes (cold): original ${REF[bytes]}"
    for tool in "${TOOLS[@]}"; do
        [ -n "${TARB[$tool]:-}" ] || continue
        MOUNT_SUMMARY="$MOUNT_SUMMARY; $tool ${TARB[$tool]} ($(awk -v a="${TARB[$tool]}" -v b="${REF[bytes]}" 'BEGIN {printf "%+.3f%%", (a - b) * 100 / b}'))"
    done
    if [ "${#TARB[@]}" -gt 1 ]; then
        MOUNT_SUMMARY="$MOUNT_SUMMARY; spread between the tools $(printf '%s\n' "${TARB[@]}" | sort -n |
            awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.3f%%", (hi - lo) * 100 / lo}')"
    fi
    left_mounts=$(awk -v t="$T/" 'index($2, t) == 1 {print $2}' /proc/self/mounts)
    left_pids=
    for p in $ALL_PIDS; do pid_alive "$p" && left_pids="$left_pids $p"; done
    if [ -z "$left_mounts" ] && [ -z "$left_pids" ]; then
        MOUNT_SUMMARY="$MOUNT_SUMMARY
after the read side: nothing mounted under the scratch directory, none of the mount processes ($(echo $ALL_PIDS | tr ' ' ',')) running"
    else
        FAILURES=$((FAILURES + 1))
        MOUNT_SUMMARY="$MOUNT_SUMMARY
after the read side: LEFT MOUNTED: ${left_mounts:-none}; STILL RUNNING:${left_pids:- none}"
    fi
    [ -z "$UMOUNT_NOTES" ] || MOUNT_SUMMARY="$MOUNT_SUMMARY
unmounting went wrong for:$UMOUNT_TROUBLE (log $L/umount.log)$UMOUNT_NOTES"
    [ "$VFS_DAEMON_ERRS" -eq 0 ] || MOUNT_SUMMARY="$MOUNT_SUMMARY
vaultfs daemon log: $VFS_DAEMON_ERRS warning/error lines ($L/vaultfs-daemon.log)"
fi

# ---------------------------------------------------------------- row 4: index with ~1M chunks
if [ "${BENCH_SKIP_INDEX:-0}" != 1 ] && [ "$ONLY_MOUNT" != 1 ] && [ "$ONLY_INGEST" != 1 ]; then
    say "row 4: vaultfs vault with ~1M chunks (--chunk-avg 256, ${INDEX_MIB} MiB random file)"
    V2=$T/repo-vaultfs-index
    mkdir -p "$T/random"
    head -c "${INDEX_MIB}M" /dev/urandom >"$T/random/random.bin"
    RC=0
    "$VFS" init "$V2" --chunk-avg 256 >"$L/index-init.log" 2>&1 || RC=$?
    if [ "$RC" -ne 0 ]; then
        log_tail "$L/index-init.log"
        WALL=0 RSS_KIB=0
        fail_row "4 index ~1M chunks" vaultfs init index-init
    else
        drop_caches
        timed index-backup "$VFS" backup "$V2" random "$T/random"
        if [ "$RC" -ne 0 ]; then
            fail_row "4 index ~1M chunks" vaultfs backup index-backup
        else
            b_wall=$WALL b_rss=$RSS_KIB
            timed index-check "$VFS" check "$V2"
            c_wall=$WALL c_rss=$RSS_KIB c_rc=$RC
            chunks=$(sed -n 's/^checked [0-9]* packs, \([0-9]*\) blobs.*/\1/p' "$L/index-check.log" | tail -n1)
            [ -n "$chunks" ] || chunks="?"
            idx_bytes=$(dir_bytes "$V2/index")
            v2_bytes=$(dir_bytes "$V2")
            rss_mib=$(mib $((b_rss * 1024)))
            verdict=PASS
            awk -v r="$rss_mib" -v t=$INDEX_RSS_TARGET_MIB 'BEGIN {exit !(r < t)}' || verdict=FAIL
            note="$chunks chunks (blobs in check), index $(mib "$idx_bytes") MiB"
            note="$note, RSS target <${INDEX_RSS_TARGET_MIB} MiB: $verdict"
            if [ "$c_rc" -eq 0 ]; then
                note="$note; check $c_wall s, $(mib $((c_rss * 1024))) MiB"
            else
                note="$note; check FAILED exit $c_rc ($L/index-check.log)"
                FAILURES=$((FAILURES + 1))
            fi
            row "4 index ~1M chunks" vaultfs "$b_wall" "$(mbps $((INDEX_MIB * 1048576)) "$b_wall")" \
                "$rss_mib" "$(mib "$v2_bytes")" "$note"
        fi
    fi
    rm -rf "$T/random"
fi

# ---------------------------------------------------------------- ingest side
IROWS=$T/ingest-rows
: >"$IROWS"
INGEST_SUMMARY=
# irow ROW TOOL WALL MB/s RSS_MiB SIZE_MiB NOTE
irow() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$IROWS"; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a + b}'; }
grew() { # BEFORE AFTER: "+1.2 MiB" / "+12.0 KiB"
    awk -v d=$(($2 - $1)) 'BEGIN {s = d < 0 ? "-" : "+"; if (d < 0) d = -d; if (d < 1048576) printf "%s%.1f KiB", s, d / 1024; else printf "%s%.2f MiB", s, d / 1048576}'
}
# cpu_ticks PID: user + system CPU time of a process so far, in clock ticks (0 if gone)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# timed_sync: how long a `sync` right after the measured command takes (its writeback, not timed)
timed_sync() {
    local t0=$EPOCHREALTIME
    sync
    SYNC_WALL=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
}
# mutate DIR PCT: change about PCT% of the bytes of DIR's regular files, the same files in every
# run (fixed seed over the sorted file list): half of it files modified (a line inserted in the
# middle), a quarter files deleted, a quarter new files (an existing file's lines reversed, next
# to it, as NAME.bench-added). Prints one summary line.
mutate() {
    python3 - "$1" "$2" <<'PY'
import os, random, stat, sys
root, pct = sys.argv[1], float(sys.argv[2])
files = []
for dp, dns, fns in os.walk(root):
    for f in fns:
        p = os.path.join(dp, f)
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            files.append((os.path.relpath(p, root), st.st_size))
files.sort()
total = sum(s for _, s in files)
random.Random(20261124).shuffle(files)
budget = total * pct / 100
MARK = b"/* vaultfs bench: an inserted line */\n"
done = {}
it = iter(files)
for kind, share in (("modified", 0.5), ("deleted", 0.25), ("added", 0.25)):
    want, n, b = budget * share, 0, 0
    for rel, size in it:
        if b >= want:
            break
        if size > want - b + 65536:  # would overshoot by much: take a smaller one
            continue
        p = os.path.join(root, rel)
        if kind == "modified":
            with open(p, "rb") as f:
                data = f.read()
            mid = data.find(b"\n", len(data) // 2) + 1
            with open(p, "wb") as f:
                f.write(data[:mid] + MARK + data[mid:])
        elif kind == "deleted":
            os.unlink(p)
        else:
            with open(p, "rb") as f:
                lines = f.read().splitlines(keepends=True)
            with open(p + ".bench-added", "xb") as f:
                f.write(b"".join(reversed(lines)))
        n, b = n + 1, b + size
    done[kind] = (n, b)
changed = sum(b for _, b in done.values())
print("%s; %.2f MiB = %.2f%% of %.1f MiB" % (
    ", ".join("%s %d files (%.2f MiB)" % (k, n, b / 1048576) for k, (n, b) in done.items()),
    changed / 1048576, changed * 100 / total, total / 1048576))
PY
}

# backup_into TOOL REPO CMD...: one timed backup row for restic or borg in the current phase
backup_into() {
    local tool=$1 repo=$2 before after note
    shift 2
    if [ "${IOK[$tool]}" != 1 ]; then
        irow "$label" "$tool" - - - - "skipped (init or an earlier backup failed)"
        return
    fi
    say "ingest side: $label: $tool"
    before=$(dir_bytes "$repo")
    drop_caches
    timed "ingest$phase-$tool" "$@"
    if [ "$RC" -ne 0 ]; then
        ingest_failed "$tool" "$tool"
        return
    fi
    timed_sync
    ITOT[$tool$phase]=$WALL
    after=$(dir_bytes "$repo")
    note="CPU ${USR}s user ${SYS}s sys; then sync ${SYNC_WALL}s"
    if [ "$phase" = 2 ]; then note="$note; repo grew $(grew "$before" "$after")"; fi
    irow "$label" "$tool" "$WALL" "$(mbps "$src_bytes" "$WALL")" "$(mib $((RSS_KIB * 1024)))" \
        "$(mib "$after")" "$note"
}

# ingest_failed KEY TOOL: the row of a timed ingest command that failed (log ingestPHASE-KEY)
ingest_failed() {
    IOK[$1]=0
    FAILURES=$((FAILURES + 1))
    irow "$label" "$2" "$WALL" - - - "FAILED: exit $RC ($L/ingest$phase-$1.log)"
}

# rsync_into KEY TOOL DEST SIZE_DIR: one timed `rsync SRC/ DEST/` row for TOOL in the current
# phase (label, phase, src_bytes set by the loop below); its wall time goes to ITOT[KEY<phase>]
rsync_into() {
    local key=$1 tool=$2 dest=$3 size_dir=$4 note
    say "ingest side: $label: $tool"
    drop_caches
    timed "ingest$phase-$key" rsync "${RSYNC_OPTS[@]}" "$ISRC/" "$dest/"
    if [ "$RC" -ne 0 ]; then
        ingest_failed "$key" "$tool"
        return
    fi
    timed_sync
    ITOT[$key$phase]=$WALL
    note="rsync CPU ${USR}s user ${SYS}s sys; then sync ${SYNC_WALL}s"
    if [ "$key" = bindfs ]; then
        note="FUSE floor; $(ratio "$WALL" "${ITOT[plain$phase]:-}")x plain rsync; $note"
    fi
    irow "$label" "$tool" "$WALL" "$(mbps "$src_bytes" "$WALL")" \
        "$(mib $((RSS_KIB * 1024)))" "$(mib "$(dir_bytes "$size_dir")")" "$note"
}

if [ "$RUN_INGEST" = 1 ]; then
    # SRC: the corpus itself when this script extracted it (nothing after the ingest side reads it),
    # else a copy (never change the user's BENCH_CORPUS)
    case $CORPUS in
    "$T"/*) ISRC=$CORPUS ;;
    *)
        say "ingest side: copying the corpus to $T/ingest-src"
        ISRC=$T/ingest-src
        cp -a "$CORPUS" "$ISRC" || die "copying $CORPUS to $ISRC failed"
        ;;
    esac
    IPLAIN=$T/ingest-plain IVAULT=$T/ingest-vaultfs IMNT=$T/mnt-ingest
    IBDST=$T/ingest-bindfs IBMNT=$T/mnt-ingest-bindfs
    IRESTIC=$T/ingest-restic IBORG=$T/ingest-borg
    RSYNC_OPTS=(-a --delete)
    declare -A IOK ITOT
    IOK[plain]=1 IOK[vaultfs]=0 IOK[restic]=0 IOK[borg]=0 IOK[bindfs]=0
    MUTATION='' IVPID='' ISESSION_NOTE='' hwm_reset=no

    # ---- set up: the empty vault mounted with an item k, empty restic and borg repositories
    say "ingest side: init and mount a fresh vault, init restic and borg repositories"
    mkdir -p "$IPLAIN" "$IMNT" "$IBDST" "$IBMNT"
    # the FUSE floor: a new directory behind bindfs, a bare FUSE passthrough
    MTOOL[$IBMNT]=bindfs
    if bindfs --multithreaded "$IBDST" "$IBMNT" >"$L/ingest-bindfs-mount.log" 2>&1; then
        IOK[bindfs]=1
    else
        log_tail "$L/ingest-bindfs-mount.log"
        FAILURES=$((FAILURES + 1))
    fi
    if ! "$VFS" init "$IVAULT" >"$L/ingest-vaultfs-init.log" 2>&1; then
        log_tail "$L/ingest-vaultfs-init.log"
        ISESSION_NOTE="FAILED: vaultfs init ($L/ingest-vaultfs-init.log)"
    else
        MTOOL[$IMNT]=vaultfs
        MPID[$IMNT]=
        t0=$EPOCHREALTIME
        : >"$L/ingest-vaultfs-mount.log"
        if ! vaultfs_mount "$IVAULT" "$IMNT" "$L/ingest-vaultfs-mount.log"; then
            log_tail "$L/ingest-vaultfs-mount.log"
            ISESSION_NOTE="FAILED: vaultfs mount ($L/ingest-vaultfs-mount.log)"
        else
            IMOUNT_WALL=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
            IVPID=$(sed -n 's/.*(daemon pid \([0-9]*\),.*/\1/p' "$L/ingest-vaultfs-mount.log")
            [ -n "$IVPID" ] || IVPID=$(pids_serving "$IMNT" | head -n1)
            MPID[$IMNT]=$IVPID
            if ! mkdir "$IMNT/incoming/k" 2>"$L/ingest-vaultfs-mkdir.log"; then
                log_tail "$L/ingest-vaultfs-mkdir.log"
                ISESSION_NOTE="FAILED: mkdir MNT/incoming/k ($L/ingest-vaultfs-mkdir.log)"
            else
                IOK[vaultfs]=1
                say "ingest side: vault mounted in ${IMOUNT_WALL}s, daemon pid ${IVPID:-?}"
            fi
        fi
    fi
    if restic init --repository-version 2 -r "$IRESTIC" >"$L/ingest-restic-init.log" 2>&1; then
        IOK[restic]=1
    else
        log_tail "$L/ingest-restic-init.log"
    fi
    if borg init -e repokey-blake2 "$IBORG" >"$L/ingest-borg-init.log" 2>&1; then
        IOK[borg]=1
    else
        log_tail "$L/ingest-borg-init.log"
    fi
    for tool in vaultfs restic borg; do [ "${IOK[$tool]}" = 1 ] || FAILURES=$((FAILURES + 1)); done

    for phase in 1 2; do
        if [ "$phase" = 1 ]; then label="i1 first ingest"; else label="i2 after ${MUTATE_PCT}% change"; fi
        if [ "$phase" = 2 ]; then
            say "ingest side: changing ~${MUTATE_PCT}% of $ISRC"
            MUTATION=$(mutate "$ISRC" "$MUTATE_PCT" 2>"$L/ingest-mutate.log") || {
                log_tail "$L/ingest-mutate.log"
                die "changing $ISRC failed"
            }
            say "ingest side: $MUTATION"
            # rsync leaves a directory's mtime alone when it is in the same second as the mtime
            # its own changes give the copy (plain directories too): let a second pass, so the
            # changed directories get their mtimes copied and the check compares like with like
            sleep 1.1
        fi
        src_bytes=$(find "$ISRC" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f", s}')

        # ---- plain rsync into a local directory, and the same through bindfs (the FUSE floor)
        rsync_into plain "plain rsync" "$IPLAIN" "$IPLAIN"
        if [ "${IOK[bindfs]}" = 1 ]; then
            rsync_into bindfs "bindfs rsync" "$IBMNT" "$IBDST"
        fi

        # ---- vaultfs: rsync into incoming, snapshot
        if [ "${IOK[vaultfs]}" != 1 ]; then
            irow "$label" "vaultfs total" - - - - "${ISESSION_NOTE:-skipped (an earlier step failed)}"
        else
            say "ingest side: $label: vaultfs rsync into incoming"
            before=$(dir_bytes "$IVAULT")
            if [ "$phase" = 2 ] && [ -n "$IVPID" ]; then
                # VmHWM from here on: the peak of the incremental ingest alone
                { echo 5 >"/proc/$IVPID/clear_refs"; } 2>/dev/null && hwm_reset=yes || hwm_reset=no
                I2_RSS0=$(awk '/^VmRSS:/ {print $2}' "/proc/$IVPID/status" 2>/dev/null || echo 0)
            fi
            drop_caches
            cpu0=$(cpu_ticks "${IVPID:-0}")
            timed "ingest$phase-vaultfs-rsync" rsync "${RSYNC_OPTS[@]}" "$ISRC/" "$IMNT/incoming/k/"
            r_wall=$WALL r_rss=$RSS_KIB r_rc=$RC r_cpu="${USR}s user ${SYS}s sys"
            after_rsync=$(dir_bytes "$IVAULT")
            if [ "$r_rc" -ne 0 ]; then
                IOK[vaultfs]=0
                FAILURES=$((FAILURES + 1))
                irow "$label" "vaultfs rsync" "$r_wall" - "$(mib $((r_rss * 1024)))" - \
                    "FAILED: exit $r_rc ($L/ingest$phase-vaultfs-rsync.log)"
            else
                ITOT[vrsync$phase]=$r_wall
                irow "$label" "vaultfs rsync" "$r_wall" "$(mbps "$src_bytes" "$r_wall")" \
                    "$(mib $((r_rss * 1024)))" "$(mib "$after_rsync")" \
                    "rsync CPU $r_cpu; vault $(grew "$before" "$after_rsync") during it; RSS: rsync's"
                say "ingest side: $label: vaultfs snapshot"
                timed "ingest$phase-vaultfs-snapshot" "$VFS" snapshot "$IVAULT" k
                s_wall=$WALL s_rss=$RSS_KIB s_rc=$RC
                if [ "$s_rc" -ne 0 ]; then
                    IOK[vaultfs]=0
                    FAILURES=$((FAILURES + 1))
                    irow "$label" "vaultfs snapshot" "$s_wall" - - - \
                        "FAILED: exit $s_rc ($L/ingest$phase-vaultfs-snapshot.log)"
                else
                    hwm=$(hwm_mib "$IMNT")
                    dcpu=$(awk -v a="$cpu0" -v b="$(cpu_ticks "${IVPID:-0}")" -v t="$CLK_TCK" 'BEGIN {printf "%.1f", (b - a) / t}')
                    timed_sync
                    ipoint=$(sed -n 's/^created point k\/\(.*\)$/\1/p' "$L/ingest$phase-vaultfs-snapshot.log" | tail -n1)
                    after=$(dir_bytes "$IVAULT")
                    irow "$label" "vaultfs snapshot" "$s_wall" - "$(mib $((s_rss * 1024)))" "$(mib "$after")" \
                        "point ${ipoint:-? (no 'created point k/...' line)}; vault $(grew "$after_rsync" "$after") during it; RSS: the CLI's"
                    tot=$(sum "$r_wall" "$s_wall")
                    ITOT[vaultfs$phase]=$tot
                    note="rsync + snapshot; daemon CPU ${dcpu}s; then sync ${SYNC_WALL}s; RSS: the daemon's VmHWM"
                    if [ "$phase" = 1 ]; then
                        note="$note since mounting"
                    elif [ "$hwm_reset" = yes ]; then
                        note="$note since its reset before i2 (RSS $(mib $((I2_RSS0 * 1024))) MiB then)"
                    else
                        note="$note since mounting (could not reset it)"
                    fi
                    note="$note; vault/SRC $(awk -v r="$after" -v c="$src_bytes" 'BEGIN {printf "%.3f", r / c}')"
                    [ "$phase" = 2 ] && note="$note, grew $(grew "$before" "$after")"
                    irow "$label" "vaultfs total" "$tot" "$(mbps "$src_bytes" "$tot")" "$hwm" "$(mib "$after")" "$note"
                    # the point must be SRC, exactly (not timed; after the RSS sample)
                    say "ingest side: $label: checking the point against SRC"
                    vnote=$(verify "vaultfs-ingest$phase" "$IMNT/points/k/${ipoint:-latest}" "$ISRC")
                    case $vnote in *FAIL* | *differs*) FAILURES=$((FAILURES + 1)) ;; esac
                    irow "$label" "vaultfs check" - - - - "point vs SRC: $vnote"
                fi
            fi
        fi

        # ---- restic backup, borg create
        backup_into restic "$IRESTIC" restic -r "$IRESTIC" backup "$ISRC"
        backup_into borg "$IBORG" borg create --stats --compression zstd,3 "$IBORG::i$phase" "$ISRC"
    done

    [ -z "${MTOOL[$IBMNT]:-}" ] || unmount "$IBMNT" || FAILURES=$((FAILURES + 1))
    rm -rf --one-file-system "$IBDST"
    # ---- unmount (finishes pending work), timed; the daemon must be gone afterwards
    if [ -n "${MTOOL[$IMNT]:-}" ]; then
        say "ingest side: vaultfs umount"
        t0=$EPOCHREALTIME
        urc=0
        unmount "$IMNT" || urc=1
        u_wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
        unote="until the mount is gone and the daemon exited"
        if [ "$urc" -ne 0 ]; then
            FAILURES=$((FAILURES + 1))
            unote="$unote; FORCED: see the notes below"
        fi
        [ -n "$IVPID" ] && pid_alive "$IVPID" && { FAILURES=$((FAILURES + 1)); unote="$unote; DAEMON $IVPID STILL RUNNING"; }
        irow "umount" vaultfs "$u_wall" - - "$(mib "$(dir_bytes "$IVAULT")")" "$unote"
    fi
    if [ -f "$IVAULT/daemon.log" ] && grep -qiE 'error|warn|damaged|panic' "$IVAULT/daemon.log"; then
        cp "$IVAULT/daemon.log" "$L/ingest-vaultfs-daemon.log"
        n=$(grep -ciE 'error|warn|damaged|panic' "$IVAULT/daemon.log")
        say "the ingest vault's daemon log has $n warning/error lines:"
        grep -iE 'error|warn|damaged|panic' "$IVAULT/daemon.log" | head -n 20 >&2
        INGEST_SUMMARY="${INGEST_SUMMARY}vaultfs daemon log: $n warning/error lines ($L/ingest-vaultfs-daemon.log)
"
    fi

    # ---- ratios and targets: vaultfs total against the others
    for phase in 1 2; do
        [ -n "${ITOT[vaultfs$phase]:-}" ] || continue
        line="i$phase vaultfs total ${ITOT[vaultfs$phase]}s:"
        for o in plain restic borg; do
            [ -n "${ITOT[$o$phase]:-}" ] || { line="$line $o -;"; continue; }
            r=$(ratio "${ITOT[vaultfs$phase]}" "${ITOT[$o$phase]}")
            if [ "$o" = plain ]; then t=$(target 'target <=1.3x' "$r" 1.3); else t=$(target 'target <1x' "$r" 0.9999); fi
            line="$line vaultfs/$o ${r}x ($t);"
        done
        if [ -n "${ITOT[plain$phase]:-}" ]; then
            line="$line rsync into incoming alone $(ratio "${ITOT[vrsync$phase]}" "${ITOT[plain$phase]}")x plain rsync;"
        fi
        if [ -n "${ITOT[bindfs$phase]:-}" ]; then
            line="$line vaultfs/bindfs (the FUSE floor) $(ratio "${ITOT[vaultfs$phase]}" "${ITOT[bindfs$phase]}")x, bindfs/plain $(ratio "${ITOT[bindfs$phase]}" "${ITOT[plain$phase]:-}")x;"
        fi
        INGEST_SUMMARY="$INGEST_SUMMARY${line%;}
"
    done
    [ -z "$MUTATION" ] || INGEST_SUMMARY="${INGEST_SUMMARY}change before i2: $MUTATION
"
    left=$(awk -v t="$IMNT" '$2 == t' /proc/self/mounts)
    if [ -n "$left" ] || { [ -n "$IVPID" ] && pid_alive "$IVPID"; }; then
        INGEST_SUMMARY="${INGEST_SUMMARY}after the ingest side: LEFT MOUNTED OR RUNNING ($IMNT, daemon ${IVPID:-?})
"
    elif [ -n "$IVPID" ]; then
        INGEST_SUMMARY="${INGEST_SUMMARY}after the ingest side: $IMNT unmounted, daemon $IVPID gone
"
    fi
    [ -z "$UMOUNT_NOTES" ] || INGEST_SUMMARY="${INGEST_SUMMARY}unmount notes:$UMOUNT_NOTES
"
fi

# ---------------------------------------------------------------- report
# render_table HEADER FILE: tab-separated rows as an aligned table, columns 3-6 right-aligned
render_table() {
    {
        printf '%b\n' "$1"
        cat "$2"
    } | awk -F'\t' '
        { n = NR; for (i = 1; i <= NF; i++) { c[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) } nf = NF }
        END {
            for (r = 1; r <= n; r++) {
                line = ""
                for (i = 1; i <= nf; i++) {
                    v = c[r, i]
                    if (i == nf) cell = v
                    else if (i >= 3 && i <= 6) cell = sprintf("%" w[i] "s", v)
                    else cell = sprintf("%-" w[i] "s", v)
                    line = line (i > 1 ? " | " : "") cell
                }
                print line
                if (r == 1) {
                    sep = ""
                    for (i = 1; i <= nf; i++) { d = sprintf("%" w[i] "s", ""); gsub(/ /, "-", d); sep = sep (i > 1 ? "-|-" : "") d }
                    print sep
                }
            }
        }'
}
report() {
    echo "vaultfs bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(hostname)"
    echo "machine:  nproc $(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
        "$(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)," \
        "Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "load:     load average (1/5/15 min) at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "scratch:  $(df -PTh "$T" | awk 'NR == 2 {print $2 " on " $1 " (" $7 ")"}'), page cache dropped before each measured command: $DROPPED"
    echo "corpus:   $CORPUS_DESC"
    echo "          $CORPUS_BYTES bytes in $CORPUS_FILES files, $CORPUS_DIRS dirs, $CORPUS_LINKS symlinks"
    echo "tools:    $("$VFS" --version 2>&1 | head -n1) ($BUILD_REV)," \
        "$(restic version 2>&1 | awk '{print $1, $2}'), $(borg --version 2>&1)"
    echo "settings: vaultfs defaults (1 MiB avg chunks, zstd 5, argon2id); restic repo v2 (zstd auto);" \
        "borg repokey-blake2, zstd,3"
    if [ -s "$ROWS" ]; then
        echo "MB/s = corpus bytes / wall (row 4: random file bytes / wall); peak RSS from /usr/bin/time %M"
        echo
        render_table 'row\ttool\twall s\tMB/s\tpeak RSS MiB\trepo MiB\tnote' "$ROWS"
    fi
    if [ "$RUN_READ" = 1 ]; then
        echo
        echo "read side: the latest snapshot mounted with vaultfs mount / restic mount / borg mount;"
        echo "  PDIR = the corpus root inside it (vaultfs MNT/points/kernel/$VPOINT, restic"
        echo "  MNT/snapshots/latest/CORPUS, borg MNT/$BORG_LAST/CORPUS); 'original' = the corpus itself."
        echo "  find: \`find PDIR | wc -l\`; ls: \`ls -lR PDIR >/dev/null\`; tar: \`tar -C PDIR -cf - . | wc -c\`."
        echo "  cold = fresh mount, page cache and dentries dropped before and after mounting (the daemons'"
        echo "  own caches start empty only because the mount is fresh); warm = again in the same mount."
        echo "  Order per tool: [mount, find cold, ls warm, umount] [mount, ls cold, umount]"
        echo "  [mount, tar cold, tar warm, umount]. MB/s = tar bytes / wall. mount RSS = VmHWM of the"
        echo "  mount process at the end of the session the row was measured in. 'bindfs' = the original"
        echo "  tree through bindfs --multithreaded (1 h entry/attr timeouts, kernel_cache): a bare FUSE"
        echo "  passthrough, no crypto or compression, i.e. what any FUSE mount costs on this machine."
        echo
        render_table 'row\ttool\twall s\tMB/s\tmount RSS MiB\toutput\tnote' "$MROWS"
        echo
        echo "$MOUNT_SUMMARY"
    fi
    if [ "$RUN_INGEST" = 1 ]; then
        echo
        echo "ingest side: SRC = $ISRC; plain rsync = \`rsync ${RSYNC_OPTS[*]} SRC/ PLAIN/\` into a new directory"
        echo "  on the scratch disk; vaultfs = \`rsync ${RSYNC_OPTS[*]} SRC/ MNT/incoming/k/\` into a freshly mounted"
        echo "  empty vault, then \`vaultfs snapshot VAULT k\` (total = both); restic = \`restic backup SRC\`;"
        echo "  borg = \`borg create --compression zstd,3 REPO::iN SRC\`; i2 = the same again after changing SRC,"
        echo "  in the same mount and repositories. Page cache dropped before each rsync/backup (not between"
        echo "  vaultfs rsync and snapshot); 'then sync' = a sync right after, not counted. MB/s = SRC bytes"
        echo "  / wall. peak RSS: /usr/bin/time %M of the command, for 'vaultfs total' the daemon's VmHWM."
        echo "  size = PLAIN / vault / repository after the row (du -sb). bindfs rsync = the same rsync into"
        echo "  a new directory behind bindfs --multithreaded, a bare FUSE passthrough (the FUSE floor)."
        echo
        render_table 'row\ttool\twall s\tMB/s\tpeak RSS MiB\tsize MiB\tnote' "$IROWS"
        echo
        printf '%s' "$INGEST_SUMMARY"
    elif [ -n "$INGEST_SKIPPED" ]; then
        echo
        echo "ingest side: skipped ($INGEST_SKIPPED)"
    fi
    if [ "$FAILURES" -gt 0 ]; then
        echo
        echo "$FAILURES failure(s); logs kept in $L"
    fi
}
report >"$T/report.txt"
cat "$T/report.txt"
if [ -n "${BENCH_OUT:-}" ]; then cp "$T/report.txt" "$BENCH_OUT"; fi
[ "$FAILURES" -eq 0 ]
