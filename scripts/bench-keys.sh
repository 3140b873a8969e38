#!/usr/bin/env bash
# scripts/bench-keys.sh — what key management costs (issue 13), measured with the release binary.
#
#   rotate   `key rotate SLOT` of an RSA slot to a new key pair, on a 10 MB and a 1 GB vault:
#            wall time of the rotation, and a check that no pack file changed (sha256 before
#            and after); the time should not grow with the vault (no pack is touched).
#   points   100 `vaultfs points VAULT` calls against a mounted vault: the daemon authenticates
#            the caller by its peer credentials, so no call derives a key.
#   ingest   rsync of ~300 MB (3 x 80 MB and 600 x 100 KB of random bytes) into incoming/ and a
#            snapshot, vault and staging directory both in BENCH_TMPDIR (use /dev/shm to see the
#            CPU cost of encrypting staged data, not a disk's).
# Run as root: scripts/bench-keys.sh [rotate|points|ingest|all]. BENCH_TMPDIR=DIR for the scratch
# dir; VAULTFS_BIN=PATH to time another build (e.g. main's, for a before/after).
set -euo pipefail
export LC_NUMERIC=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-all}
set --
source "$ROOT/scripts/deps.sh"
if [ -z "${VAULTFS_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
fi
B=${VAULTFS_BIN:-"$ROOT/target/release/vaultfs"}
T=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/vaultfs-bench-keys.XXXXXX")
cleanup() {
  mountpoint -q "$T/mnt" 2>/dev/null && "$B" umount "$T/mnt" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$T/old.pem" 2>/dev/null
openssl pkey -in "$T/old.pem" -pubout -out "$T/old.pub.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$T/new.pem" 2>/dev/null
openssl pkey -in "$T/new.pem" -pubout -out "$T/new.pub.pem"

rotate() { # SIZE_MB
  local v="$T/vault-$1" src="$T/src-$1"
  rm -rf "$v" "$src" && mkdir -p "$src"
  head -c "$(( $1 * 1000 * 1000 ))" /dev/urandom >"$src/data.bin"
  "$B" init "$v" --rsa-public-key "$T/old.pub.pem" >/dev/null
  "$B" backup "$v" data "$src" --rsa-key "$T/old.pem" >/dev/null
  local t0 t1 changed
  (cd "$v" && find packs -name '*.pack' -print0 | xargs -0 sha256sum) >"$T/sums-$1"
  t0=$(now)
  "$B" key rotate "$v" 1 --rsa-public-key "$T/new.pub.pem" --rsa-key "$T/old.pem" >/dev/null
  t1=$(now)
  # The rotation adds a pack holding the new config; every pack there before must be unchanged.
  changed=$(cd "$v" && sha256sum --quiet -c "$T/sums-$1" 2>/dev/null | wc -l)
  "$B" points "$v" --rsa-key "$T/old.pem" >/dev/null 2>&1 && { echo "old key still opens the vault" >&2; exit 1; }
  "$B" points "$v" --rsa-key "$T/new.pem" >/dev/null
  printf 'key rotate (RSA 3072), %5s MB vault: %s s, %s packs before, packs changed: %s\n' \
    "$1" "$(secs "$t0" "$t1")" "$(wc -l <"$T/sums-$1")" "$changed"
}

points() {
  local v="$T/vault-mnt"
  rm -rf "$v" "$T/mnt" && mkdir -p "$T/mnt" "$T/s"
  echo hi >"$T/s/f"
  export VAULTFS_PASSPHRASE=bench
  "$B" init "$v" >/dev/null
  "$B" backup "$v" web "$T/s" >/dev/null
  "$B" mount "$v" "$T/mnt" >/dev/null
  local t0 t1
  t0=$(now)
  for _ in $(seq 100); do "$B" points "$v" >/dev/null; done
  t1=$(now)
  printf '100 x points against the mounted vault (passphrase slot, Argon2id 64 MiB t=3): %s s\n' "$(secs "$t0" "$t1")"
  unset VAULTFS_PASSPHRASE
  t0=$(now)
  if (for _ in $(seq 100); do "$B" points "$v" </dev/null >/dev/null 2>&1 || exit 1; done); then
    t1=$(now)
    printf '100 x points with no credential at all (peer credentials only): %s s\n' "$(secs "$t0" "$t1")"
  else
    echo 'points with no credential at all: refused (this build wants a key over the socket)'
  fi
  VAULTFS_PASSPHRASE=bench "$B" umount "$T/mnt" >/dev/null
}

ingest() {
  local v="$T/vault-ingest" src="$T/src-ingest" t0 t1 t2
  rm -rf "$v" "$src" "$T/mnt" "$T/staging" && mkdir -p "$src/big" "$src/small" "$T/mnt" "$T/staging"
  for i in 1 2 3; do head -c 80000000 /dev/urandom >"$src/big/$i.bin"; done
  for i in $(seq 600); do head -c 100000 /dev/urandom >"$src/small/$i.bin"; done
  export VAULTFS_PASSPHRASE=bench
  "$B" init "$v" >/dev/null
  "$B" mount "$v" "$T/mnt" --staging-dir "$T/staging" >/dev/null
  mkdir "$T/mnt/incoming/web"
  t0=$(now)
  rsync -a "$src/" "$T/mnt/incoming/web/"
  t1=$(now)
  "$B" snapshot "$v" web >/dev/null
  t2=$(now)
  printf 'ingest of 300 MB into incoming/ (vault and staging in %s): rsync %s s (%s MB/s), snapshot %s s\n' \
    "${BENCH_TMPDIR:-/tmp}" "$(secs "$t0" "$t1")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", 300 / (b - a)}')" "$(secs "$t1" "$t2")"
  "$B" umount "$T/mnt" >/dev/null
  unset VAULTFS_PASSPHRASE
}

case $what in
  rotate) rotate 10; rotate 1000 ;;
  points) points ;;
  ingest) ingest ;;
  all) rotate 10; rotate 1000; points; ingest ;;
  *) echo "usage: $0 [rotate|points|ingest|all]" >&2; exit 2 ;;
esac
