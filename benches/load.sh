#!/usr/bin/env bash
# passimd under a crowd: 1,000 idle TLS connections and 100 slowloris clients held open at once
# while one good client downloads a 1 MiB file over and over, each time on a new connection as
# the passim CLI and fwupd do.
#
# Prints the good client's p50/p99 latency and failures alone and under the crowd, passimd's
# peak RSS (VmHWM) and open descriptors, what the crowd saw, and a one-line summary. passimd
# cuts a connection that has not sent a whole request head within 10 s, so the crowd reconnects
# whenever it is cut: the 1,100 slots stay taken for the whole run.
#
# Needs root (it runs inside a private network namespace, so nothing leaves the machine),
# python3 (the crowd: asyncio and ssl from its standard library) and curl. Builds the release
# passimd unless PASSIMD names a binary. Bounded in time (about 45 s after the build) and cleans
# up after itself:
#   sudo benches/load.sh
#   IDLE=1000 SLOW=100 ALONE_SECONDS=5 CROWD_SECONDS=20 sudo -E benches/load.sh
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PASSIM_LOAD_IN_NETNS:-}" ]; then
    if [ -z "${PASSIMD:-}" ]; then
        (cd "$here" && cargo build --quiet --release -p passim-shell --bin passimd)
    fi
    exec unshare --net env PASSIM_LOAD_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

passimd=${PASSIMD:-$here/target/release/passimd}
idle=${IDLE:-1000}
slow=${SLOW:-100}
alone_secs=${ALONE_SECONDS:-5}
crowd_secs=${CROWD_SECONDS:-20}
port=27621
# The crowd, the good client and passimd each need a descriptor per connection and then some.
ulimit -n $((idle + slow + 4096))

work=$(mktemp -d /tmp/passim-load.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/srv" "$work/root/etc/passim.d"
head -c 1048576 /dev/urandom >"$work/srv/one.bin"
hash=$(sha256sum "$work/srv/one.bin" | cut -c1-64)
url="https://127.0.0.1:$port/one.bin?sha256=$hash"
printf '[daemon]\nPort=%s\nListen=127.0.0.1\nMaxConnections=%s\n' \
    "$port" $((idle + slow + 100)) >"$work/root/etc/passim.conf"
printf '[passim]\nPath=%s\n' "$work/srv" >"$work/root/etc/passim.d/load.conf"

flags=(--root "$work/root" --no-dbus)
if "$passimd" --help | grep -q -- --no-discovery; then
    flags+=(--no-discovery)
fi
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent "$passimd" "${flags[@]}" 2>"$work/passimd.log" &
passimd_pid=$!
pids+=("$passimd_pid")
for _ in $(seq 100); do
    grep -q "scanned static directories" "$work/passimd.log" && break
    sleep 0.1
done
curl -sfk -o /dev/null "$url" || { cat "$work/passimd.log" >&2; exit 1; }

# One download per line: "<status> <seconds> <ok|bad>", ok when the body's SHA-256 matches.
good_client() {
    local out=$1 until=$(($(date +%s%N) + $2 * 1000000000))
    while [ "$(date +%s%N)" -lt "$until" ]; do
        local got
        got=$(curl -sk --max-time 10 -o "$work/got" -w '%{http_code} %{time_total}' "$url") ||
            true
        [ -n "$got" ] || got="000 10"
        if [ "$(sha256sum "$work/got" 2>/dev/null | cut -c1-64)" = "$hash" ]; then
            echo "$got ok" >>"$out"
        else
            echo "$got bad" >>"$out"
        fi
        rm -f "$work/got"
    done
}

# The crowd: idle TLS connections and slowloris clients, reconnecting whenever cut. Writes its
# counters to a JSON file every half second, and "ready" to stdout once every client has been
# connected at the same time.
cat >"$work/crowd.py" <<'PY'
import asyncio, json, os, ssl, sys, time

port, n_idle, n_slow, target, stats_path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = dict(idle_connects=0, idle_cut=0, slow_connects=0, slow_cut=0, slow_answered=0,
         refused=0, open=0, open_max=0, open_min_after_ready=None, ready_after=None)
started = time.monotonic()

async def connect():
    try:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 15)
    except Exception:
        s["refused"] += 1
        await asyncio.sleep(0.5)
        return None

def opened():
    s["open"] += 1
    s["open_max"] = max(s["open_max"], s["open"])

async def idle():
    while True:
        conn = await connect()
        if conn is None:
            continue
        r, w = conn
        s["idle_connects"] += 1
        opened()
        try:
            await r.read(1)
        except Exception:
            pass
        s["idle_cut"] += 1
        s["open"] -= 1
        w.close()

async def slowloris():
    while True:
        conn = await connect()
        if conn is None:
            continue
        r, w = conn
        s["slow_connects"] += 1
        opened()
        try:
            w.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
            while True:
                w.write(b"X")
                await w.drain()
                try:
                    data = await asyncio.wait_for(r.read(1024), 3)
                except asyncio.TimeoutError:
                    continue
                s["slow_answered" if data else "slow_cut"] += 1
                break
        except Exception:
            s["slow_cut"] += 1
        s["open"] -= 1
        w.close()

async def report():
    while True:
        if s["ready_after"] is None and s["open"] >= n_idle + n_slow:
            s["ready_after"] = round(time.monotonic() - started, 2)
            print("ready", flush=True)
        if s["ready_after"] is not None:
            low = s["open_min_after_ready"]
            s["open_min_after_ready"] = s["open"] if low is None else min(low, s["open"])
        with open(stats_path + ".tmp", "w") as f:
            json.dump(s, f)
        os.replace(stats_path + ".tmp", stats_path)
        await asyncio.sleep(0.5)

async def main():
    tasks = [asyncio.create_task(report())]
    for i in range(n_idle + n_slow):
        tasks.append(asyncio.create_task(idle() if i < n_idle else slowloris()))
        if i % 50 == 49:
            await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)

asyncio.run(main())
PY

sample() {
    awk '/^VmRSS/ {print $2}' "/proc/$passimd_pid/status"
}

echo "== the good client alone (${alone_secs} s)"
good_client "$work/alone.txt" "$alone_secs"

echo "== starting the crowd: $idle idle TLS connections, $slow slowloris clients"
python3 "$work/crowd.py" "$port" "$idle" "$slow" "/one.bin?sha256=$hash" "$work/crowd.json" \
    >"$work/crowd.out" 2>"$work/crowd.err" &
crowd_pid=$!
pids+=("$crowd_pid")
for _ in $(seq 300); do
    grep -q ready "$work/crowd.out" && break
    kill -0 "$crowd_pid" 2>/dev/null || { cat "$work/crowd.err" >&2; exit 1; }
    sleep 0.1
done
grep -q ready "$work/crowd.out" || echo "warning: the crowd never had every client connected at once"

echo "== the good client under the crowd (${crowd_secs} s)"
: >"$work/fds.txt"
(
    while kill -0 "$passimd_pid" 2>/dev/null; do
        echo "$(ls "/proc/$passimd_pid/fd" | wc -l) $(sample)" >>"$work/fds.txt"
        sleep 0.5
    done
) &
pids+=($!)
good_client "$work/crowd.txt" "$crowd_secs"

peak_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$passimd_pid/status")
kill "$crowd_pid" 2>/dev/null || true
kill -0 "$passimd_pid" || { echo "passimd died" >&2; exit 1; }

python3 - "$work" "$peak_kib" "$idle" "$slow" <<'PY'
import json, sys
work, peak_kib, idle, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def latencies(name):
    rows = [line.split() for line in open(f"{work}/{name}.txt")]
    good = sorted(float(t) * 1000 for code, t, ok in rows if code == "200" and ok == "ok")
    failures = len(rows) - len(good)
    pick = lambda q: good[min(len(good) - 1, int(q * len(good)))] if good else float("nan")
    return len(rows), failures, pick(0.50), pick(0.99), good[-1] if good else float("nan")

crowd = json.load(open(f"{work}/crowd.json"))
fds = [line.split() for line in open(f"{work}/fds.txt") if line.strip()]
peak_fds = max((int(f) for f, _ in fds), default=0)
peak_rss = max((int(r) for _, r in fds), default=0)
for name, label in (("alone", "alone"), ("crowd", "under the crowd")):
    n, failures, p50, p99, worst = latencies(name)
    print(f"good client {label}: {n} downloads of 1 MiB, {failures} failed, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")
print(f"passimd: peak RSS (VmHWM) {peak_kib / 1024:.1f} MiB, highest sampled VmRSS "
      f"{peak_rss / 1024:.1f} MiB, up to {peak_fds} open descriptors")
print(f"crowd: all {int(idle) + int(slow)} connected at once after {crowd['ready_after']} s; "
      f"open at least {crowd['open_min_after_ready']} and at most {crowd['open_max']} from then on; "
      f"idle: {crowd['idle_connects']} connects, {crowd['idle_cut']} cut by the server; "
      f"slowloris: {crowd['slow_connects']} connects, {crowd['slow_cut']} cut, "
      f"{crowd['slow_answered']} answered; {crowd['refused']} connects failed")
n, failures, p50, p99, _ = latencies("crowd")
_, _, a50, a99, _ = latencies("alone")
print(f"load: {idle} idle + {slow} slowloris: good 1 MiB downloads p50 {p50:.1f} ms / p99 "
      f"{p99:.1f} ms (alone {a50:.1f} / {a99:.1f}), {failures}/{n} failed; passimd peak RSS "
      f"{peak_kib / 1024:.1f} MiB")
PY
