#!/usr/bin/env bash
# passimd beside nginx, serving the same files over TLS on loopback, in one run.
#
# Prints requests/s and MB/s of each and their ratio for 1 MiB at 8 connections and 20 B at 64
# (wrk), one 90 MiB download (curl), passimd's peak RSS during 16 parallel 90 MiB downloads,
# and passimd's startup with 2,000 static files, first (hashing) and second (cached) start.
#
# Needs root (it runs everything inside a private network namespace, so nothing leaves the
# machine), nginx, wrk and curl (Debian: nginx-light wrk curl), and a release build:
#   cargo build --release -p passim-shell --bin passimd && sudo benches/http_vs_nginx.sh
set -euo pipefail

if [ -z "${PASSIM_BENCH_IN_NETNS:-}" ]; then
    exec unshare --net env PASSIM_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

here=$(cd "$(dirname "$0")/.." && pwd)
passimd=${PASSIMD:-$here/target/release/passimd}
secs=${BENCH_SECONDS:-8}
work=$(mktemp -d /tmp/passim-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/srv" "$work/root/etc/passim.d" "$work/nginx"
# nginx workers run as nobody: let them read the files.
chmod 755 "$work"
head -c 1048576 /dev/urandom >"$work/srv/one.bin"
printf 'twenty bytes of text' >"$work/srv/small.txt"
head -c 94371840 /dev/urandom >"$work/srv/big.bin"
printf '[daemon]\nPort=27611\nListen=127.0.0.1\n' >"$work/root/etc/passim.conf"
printf '[passim]\nPath=%s\n' "$work/srv" >"$work/root/etc/passim.d/bench.conf"

"$passimd" --root "$work/root" --no-dbus 2>"$work/passimd.log" &
passimd_pid=$!
pids+=("$passimd_pid")
for _ in $(seq 100); do
    grep -q "scanned static directories" "$work/passimd.log" && break
    sleep 0.1
done

# nginx with passimd's own key and certificate, so both do the same TLS work.
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
    # passimd writes an audit line per download; nginx logs each request too, for a fair match.
    access_log $work/nginx/access.log;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:27612 ssl;
        ssl_certificate $work/root/var/lib/passim/cert.pem;
        ssl_certificate_key $work/root/var/lib/passim/secret.key;
        ssl_protocols TLSv1.3;
        root $work/srv;
    }
}
CONF
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 0.5

sha() { sha256sum "$work/srv/$1" | cut -c1-64; }
p_url() { echo "https://127.0.0.1:27611/$1?sha256=$(sha "$1")"; }
n_url() { echo "https://127.0.0.1:27612/$1"; }

# wrk's "Requests/sec" and "Transfer/sec" lines, as numbers (MB/s).
wrk_run() {
    local out
    out=$(wrk -t 2 -c "$1" -d "${secs}s" "$2")
    local rps mbps
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    mbps=$(awk '/Transfer\/sec/ {v=$2; if (v ~ /GB/) {sub("GB","",v); v*=1024} else if (v ~ /MB/) {sub("MB","",v)} else if (v ~ /KB/) {sub("KB","",v); v/=1024}; print v}' <<<"$out")
    echo "$rps $mbps"
}

row() {
    local name=$1 conns=$2 file=$3
    read -r n_rps n_mb < <(wrk_run "$conns" "$(n_url "$file")")
    read -r p_rps p_mb < <(wrk_run "$conns" "$(p_url "$file")")
    printf '%-24s %12s %12s %12s %12s %8s\n' "$name" "$p_rps" "$n_rps" "$p_mb" "$n_mb" \
        "$(awk -v a="$p_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a/b}')"
}

echo "passimd vs nginx, TLS 1.3 on loopback, $(nproc) cores, ${secs}s per run"
printf '%-24s %12s %12s %12s %12s %8s\n' "case" "passim req/s" "nginx req/s" "passim MB/s" "nginx MB/s" "ratio"
row "1 MiB, 8 connections" 8 one.bin
row "20 B, 64 connections" 64 small.txt

speed() { curl -sk -o /dev/null -w '%{speed_download}' "$1"; }
n_big=$(speed "$(n_url big.bin)")
p_big=$(speed "$(p_url big.bin)")
printf '%-24s %12s %12s %12.0f %12.0f %8s\n' "90 MiB, 1 download" "-" "-" \
    "$(awk -v v="$p_big" 'BEGIN {print v/1048576}')" "$(awk -v v="$n_big" 'BEGIN {print v/1048576}')" \
    "$(awk -v a="$p_big" -v b="$n_big" 'BEGIN {printf "%.2f", a/b}')"

# Peak RSS while 16 clients download 90 MiB each at once.
url=$(p_url big.bin)
before=$(awk '/VmHWM/ {print $2}' "/proc/$passimd_pid/status")
curls=()
wait_start=$(date +%s.%N)
for _ in $(seq 16); do
    curl -sk -o /dev/null "$url" &
    curls+=($!)
done
wait "${curls[@]}"
elapsed=$(awk -v s="$wait_start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e-s}')
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$passimd_pid/status")
echo "16 x 90 MiB in parallel: ${elapsed}s; passimd peak RSS $((hwm / 1024)) MiB (before: $((before / 1024)) MiB)"

kill "$passimd_pid"
wait "$passimd_pid" 2>/dev/null || true

# Startup with 2,000 static files: first start hashes them and caches the hashes in xattrs,
# the second trusts the cache.
mkdir -p "$work/many"
for i in $(seq 2000); do head -c 4096 /dev/urandom >"$work/many/f$i.bin"; done
rm "$work/root/etc/passim.d/bench.conf"
printf '[passim]\nPath=%s\n' "$work/many" >"$work/root/etc/passim.d/many.conf"
startup() {
    local log="$work/startup.log" t0 t1
    : >"$log"
    t0=$(date +%s%N)
    "$passimd" --root "$work/root" --no-dbus 2>"$log" &
    local pid=$!
    until grep -q "scanned static directories" "$log"; do sleep 0.005; done
    # The daemon's own timestamp of the end of the scan, not when this loop noticed it.
    t1=$(date -d "$(grep "scanned static directories" "$log" | cut -d' ' -f1)" +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$(( (t1 - t0) / 1000000 )) ms ($(grep -o 'hashed=[0-9]* cached=[0-9]*' "$log"))"
}
echo "startup, 2,000 static files: first $(startup); second $(startup)"
