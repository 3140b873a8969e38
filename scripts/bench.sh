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
#   BENCH_INDEX_MIB=N  size of the random file for the index row (default 256: ~0.86M chunks,
#                      as FastCDC 64/256/1024 averages ~311 bytes; 300 gives ~1M)
#   BENCH_SKIP_INDEX=1 skip the index row
#
# Rows (each for vaultfs, restic, borg; the page cache is dropped before every measured command
# so each tool starts cold, when /proc/sys/vm/drop_caches is writable):
#   0 cold read      `tar -cf - CORPUS | wc -c`, the reference for how fast the tree can be read
#   1 first backup   first backup into an empty repository
#   2 second backup  second backup of the unchanged tree
#   3 restore        restore of the latest snapshot into an empty directory, verified with diff -r
#   4 index          vaultfs only: a vault with ~1M chunks (--chunk-avg 256, one random file)
# Stdout gets only the final facts and table; progress goes to stderr, each tool's own output to
# a log file in the scratch directory (its tail is printed when a command fails).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KERNEL_TXZ=/usr/src/linux-source-6.1.tar.xz
TIMEOUT=${BENCH_TIMEOUT:-7200}
INDEX_MIB=${BENCH_INDEX_MIB:-256}
INDEX_RSS_TARGET_MIB=300
PASS=bench

say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
log_tail() { # FILE: show the end of a tool's log on stderr
    printf -- '---- last lines of %s ----\n' "$1" >&2
    tail -n 25 "$1" >&2 || true
    printf -- '----\n' >&2
}

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
[ -x /usr/bin/time ] || need+=(time)
command -v xz >/dev/null || need+=(xz-utils)
if [ -z "${BENCH_CORPUS:-}" ] && [ ! -f "$KERNEL_TXZ" ]; then need+=(linux-source-6.1); fi
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi

if ! command -v cargo >/dev/null; then
    # Debian's own rustc (1.63) is too old for this crate (edition 2024, rust >= 1.85).
    say "cargo not found: installing a Rust toolchain with rustup"
    apt_install curl ca-certificates build-essential pkg-config
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
    command -v cargo >/dev/null || die "cargo still not found after rustup"
fi

# ---------------------------------------------------------------- scratch directory
SCRATCH_PARENT=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
T=$(mktemp -d "$SCRATCH_PARENT/vaultfs-bench.XXXXXX")
cleanup() {
    local rc=$?
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "kept scratch directory $T"
    elif [ "$rc" -ne 0 ] && [ -d "$T/logs" ]; then
        find "$T" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
        say "kept the logs in $T/logs"
    else
        rm -rf "$T"
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
VFS=$ROOT/target/release/vaultfs
[ -x "$VFS" ] || die "$VFS missing after the build"

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
# Sets RC, WALL (seconds) and RSS_KIB (peak resident set of the largest process in the tree).
timed() {
    local name=$1
    shift
    local tf=$L/$name.time
    RC=0
    /usr/bin/time -f '%e %M' -o "$tf" timeout "$TIMEOUT" "$@" >"$L/$name.log" 2>&1 || RC=$?
    read -r WALL RSS_KIB < <(tail -n1 "$tf") || true
    WALL=${WALL:-0} RSS_KIB=${RSS_KIB:-0}
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
# verify TOOL DIR: compare a restored tree with the corpus; echoes the note ("FAIL" in it on a
# content mismatch). Runs in a subshell: it cannot count failures itself.
verify() {
    local tool=$1 got=$2 note ndiff nmeta
    if [ ! -d "$got" ]; then
        echo "FAIL: $got missing"
        return
    fi
    if diff -rq --no-dereference "$CORPUS" "$got" >"$L/diff-$tool.log" 2>&1; then
        note="diff OK"
    else
        ndiff=$(wc -l <"$L/diff-$tool.log")
        note="diff FAIL ($ndiff lines, $L/diff-$tool.log)"
        say "restore of $tool differs from the corpus:"
        head -n 10 "$L/diff-$tool.log" >&2
    fi
    meta_list "$CORPUS" >"$T/meta-corpus"
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
say "row 0: cold read (tar -cf - | wc -c)"
drop_caches
timed tar-read bash -c 'tar -cf - "$1" 2>/dev/null | wc -c' _ "$CORPUS"
if [ "$RC" -eq 0 ]; then
    row "0 cold read" "tar" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" \
        "$(mib $((RSS_KIB * 1024)))" - "reference: tar -cf - CORPUS | wc -c = $(tail -n1 "$L/tar-read.log") bytes"
else
    fail_row "0 cold read" "tar" "tar" tar-read
fi

# ---------------------------------------------------------------- row 1: first backup
for tool in "${TOOLS[@]}"; do
    OK[$tool]=0
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
    SIZE1[$tool]=$(dir_bytes "${REPO[$tool]}")
    row "1 first backup" "$tool" "$WALL" "$(mbps "$CORPUS_BYTES" "$WALL")" \
        "$(mib $((RSS_KIB * 1024)))" "$(mib "${SIZE1[$tool]}")" \
        "repo/corpus $(awk -v r="${SIZE1[$tool]}" -v c="$CORPUS_BYTES" 'BEGIN {printf "%.3f", r / c}')$(index_note "$tool")"
done

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

# ---------------------------------------------------------------- row 4: index with ~1M chunks
if [ "${BENCH_SKIP_INDEX:-0}" != 1 ]; then
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

# ---------------------------------------------------------------- report
report() {
    echo "vaultfs bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(hostname)"
    echo "machine:  nproc $(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
        "$(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)," \
        "Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "scratch:  $(df -PTh "$T" | awk 'NR == 2 {print $2 " on " $1 " (" $7 ")"}'), page cache dropped before each measured command: $DROPPED"
    echo "corpus:   $CORPUS_DESC"
    echo "          $CORPUS_BYTES bytes in $CORPUS_FILES files, $CORPUS_DIRS dirs, $CORPUS_LINKS symlinks"
    echo "tools:    $("$VFS" --version 2>&1 | head -n1) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty'))," \
        "$(restic version 2>&1 | awk '{print $1, $2}'), $(borg --version 2>&1)"
    echo "settings: vaultfs defaults (1 MiB avg chunks, zstd 3, argon2id); restic repo v2 (zstd auto);" \
        "borg repokey-blake2, zstd,3"
    echo "MB/s = corpus bytes / wall (row 4: random file bytes / wall); peak RSS from /usr/bin/time %M"
    echo
    {
        printf 'row\ttool\twall s\tMB/s\tpeak RSS MiB\trepo MiB\tnote\n'
        cat "$ROWS"
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
    if [ "$FAILURES" -gt 0 ]; then
        echo
        echo "$FAILURES failure(s); logs kept in $L"
    fi
}
report >"$T/report.txt"
cat "$T/report.txt"
if [ -n "${BENCH_OUT:-}" ]; then cp "$T/report.txt" "$BENCH_OUT"; fi
[ "$FAILURES" -eq 0 ]
