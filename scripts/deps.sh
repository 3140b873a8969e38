#!/usr/bin/env bash
# Installs what vaultfs's scripts need on a fresh Debian machine (as root), only when missing.
# Usage: scripts/deps.sh [extra debian packages...]
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need rsync rsync
need getfattr attr
need fusermount3 fuse3
need mkfifo coreutils
need diff diffutils
need openssl openssl
need mkfs.ext4 e2fsprogs
need losetup mount
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/deps.sh: cargo not found; install a Rust toolchain >= 1.85 (rustup) and retry" >&2
  exit 1
fi
