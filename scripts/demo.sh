#!/usr/bin/env bash
# A demo of the main job on a fresh Debian machine (as root): build, create a vault in a temp
# dir, back up a real directory, list the point, restore it and diff it against the source.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --quiet
bin=$PWD/target/release/vaultfs
work=$(mktemp -d /tmp/vaultfs-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export VAULTFS_PASSPHRASE=demo-passphrase
src=${1:-/usr/share/doc}

set -x
"$bin" init "$work/vault"
"$bin" backup "$work/vault" docs "$src"
"$bin" backup "$work/vault" docs "$src"
"$bin" items "$work/vault"
"$bin" points "$work/vault" docs
"$bin" restore "$work/vault" docs "$work/restored"
diff -r --no-dereference "$src" "$work/restored"
"$bin" check "$work/vault" --read-data
mkdir "$work/mnt"
"$bin" mount "$work/vault" "$work/mnt"
trap '"$bin" umount "$work/mnt" 2>/dev/null; rm -rf "$work"' EXIT
ls -la "$work/mnt/points/docs/"
diff -r --no-dereference "$src" "$work/mnt/points/docs/latest/"
"$bin" points "$work/vault" docs          # answered by the mount daemon
"$bin" umount "$work/mnt"
du -sh "$src" "$work/vault"
set +x
echo "demo OK: $src backed up, listed, restored, mounted and identical"
