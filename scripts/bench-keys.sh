#!/usr/bin/env bash
# scripts/bench-keys.sh — what key management costs (issue 13), measured with the release binary.
#
#   rotate   `key rotate SLOT` of an RSA slot to a new key pair, on a 10 MB and a 1 GB vault:
#            wall time of the rotation, and a check that no pack file changed (sha256 before
#            and after); the time should not grow with the vault (no pack is touched).
#   points   100 `vaultfs points VAULT` calls against a mounted vault: the daemon authenticates
#            the caller by its peer credentials, so no call derives a key.
# Run as root: scripts/bench-keys.sh [rotate|points|all]. BENCH_TMPDIR=DIR for the scratch dir.
set -euo pipefail
export LC_NUMERIC=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-all}
set --
source "$ROOT/scripts/deps.sh"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
B="$ROOT/target/release/vaultfs"
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
  for _ in $(seq 100); do "$B" points "$v" >/dev/null; done
  t1=$(now)
  printf '100 x points with no credential at all (peer credentials only): %s s\n' "$(secs "$t0" "$t1")"
  "$B" umount "$T/mnt" >/dev/null
}

case $what in
  rotate) rotate 10; rotate 1000 ;;
  points) points ;;
  all) rotate 10; rotate 1000; points ;;
  *) echo "usage: $0 [rotate|points|all]" >&2; exit 2 ;;
esac
