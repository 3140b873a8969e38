#!/usr/bin/env bash
# A demo of the main job on a fresh Debian machine (as root): build, create a vault in a temp
# dir, mount it, rsync a real directory into MNT/incoming/ITEM, snapshot it into a recovery point,
# list and browse the point, diff it against the source, rsync again (nothing to send) and take a
# second point, unmount; then the same vault without a mount: backup, restore, diff, check.
# Usage: scripts/demo.sh [SRC]      (default SRC: /usr/share/doc)
# Runs again as often as you like: each run uses a fresh temp dir, unmounted and deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

src=$(realpath "${1:-/usr/share/doc}")
[ -d "$src" ] || { echo "demo: $src is not a directory" >&2; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/vaultfs
work=$(mktemp -d /tmp/vaultfs-demo.XXXXXX)
vault=$work/vault mnt=$work/mnt
export VAULTFS_PASSPHRASE=demo-passphrase
mkdir "$mnt"

is_mounted() { awk -v m="$1" '$2 == m {f = 1} END {exit !f}' /proc/self/mounts; }
daemon_pid=
# On any exit: unmount (vaultfs umount, else a lazy fusermount), make sure the daemon is gone,
# and delete the temp dir only if nothing is mounted in it any more.
cleanup() {
    local rc=$? i
    set +x
    if is_mounted "$mnt"; then
        timeout 120 "$bin" umount "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" || true
    fi
    if [ -n "$daemon_pid" ]; then
        for ((i = 0; i < 100; i++)); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$daemon_pid" 2>/dev/null && { echo "demo: daemon $daemon_pid still running: SIGTERM" >&2; kill "$daemon_pid" || true; }
    fi
    if is_mounted "$mnt"; then
        echo "demo: $mnt is still mounted; leaving $work in place" >&2
    else
        rm -rf --one-file-system "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount_vault() {
    local out
    out=$("$bin" mount "$vault" "$mnt")
    echo "$out"
    daemon_pid=$(sed -n 's/.*(daemon pid \([0-9]*\),.*/\1/p' <<<"$out")
}

set -x
"$bin" init "$vault"

# ---- the mounted flow: rsync into incoming/docs, snapshot, browse
mount_vault
mkdir "$mnt/incoming/docs"                          # a new item
rsync -aHX --delete "$src/" "$mnt/incoming/docs/"
"$bin" snapshot "$mnt" docs                         # freeze incoming/docs into a recovery point
"$bin" points "$vault" docs                         # answered by the mount daemon
ls -la "$mnt/points/docs/"
ls "$mnt/points/docs/latest/" | sed -n 1,5p
diff -r --no-dereference "$src" "$mnt/points/docs/latest/"
if touch "$mnt/points/docs/latest/x"; then echo "demo: a point accepted a write" >&2; exit 1; fi  # EROFS
# incoming keeps its content: the next rsync sends nothing, the next point costs next to nothing
rsync -aHX --delete --stats "$src/" "$mnt/incoming/docs/" | grep -E 'files transferred|Total transferred'
"$bin" snapshot "$vault" docs
"$bin" points "$vault" docs
"$bin" umount "$mnt"
daemon_pid=

# ---- without a mount: backup, restore, check
"$bin" backup "$vault" docs-cli "$src"              # same data: deduplicated against the points above
"$bin" items "$vault"
"$bin" restore "$vault" docs "$work/restored"       # the newest point of docs
diff -r --no-dereference "$src" "$work/restored"
"$bin" check "$vault" --read-data
du -sh "$src" "$vault"
set +x
echo "demo OK: $src rsynced into a mounted vault, snapshot twice, browsed, restored, identical"
