#!/usr/bin/env bash
# Soak: `serve` in shadow mode in front of its demo model under closed-loop load
# (wrk, 32 connections, so the guard runs at whatever capacity the machine gives
# it) where nine requests in ten come from a fresh API key and every one from a
# fresh client address, header set and prompt (benches/load/churn.lua). Every
# SOAK_CHUNK seconds it records the load's throughput and latency percentiles;
# every 10 s the server's RSS, open file descriptors and threads; at each chunk
# the store's tracked subjects, the clusters tracked (all sizes) and the tasks
# alive on the runtime, from /metrics (scraped between two load windows, so the
# tasks are the ones left over: connections closed, requests done).
#
#   benches/run.sh soak                  # 30 minutes
#   SOAK_MINUTES=3 benches/soak.sh       # a short run
#
# Writes $OUT/soak-load.csv, $OUT/soak-proc.csv and $OUT/soak.svg (render again
# with benches/soak_plot.py). The load generator runs under `nice -n 19`, so the
# guard keeps the machine's priority.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-out}"
MINUTES="${SOAK_MINUTES:-30}"
CHUNK="${SOAK_CHUNK:-30}"
CONNECTIONS="${SOAK_CONNECTIONS:-32}"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)"; exit 1; }
command -v curl >/dev/null || { echo "curl not installed"; exit 1; }
BIN="${BIN:-target/release/distill-guard}"
[ -x "$BIN" ] || cargo build --release -q

TOKEN="soak admin token"
cat > "$OUT/soak.toml" <<EOF
[identity]
secret = "soak"
[guard]
shadow = true
[network]
trusted_proxies = ["127.0.0.1/32"]
[admin]
token = "$TOKEN"
EOF

"$BIN" serve --config "$OUT/soak.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  > "$OUT/soak-serve.out" 2> "$OUT/soak-serve.err" &
PID=$!
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ "$(wc -l < "$OUT/soak-serve.out")" -ge 2 ] && break; sleep 0.1; done
URL="$(sed -n 1p "$OUT/soak-serve.out" | awk '{print $3}')"
ADMIN="$(sed -n 2p "$OUT/soak-serve.out" | awk '{print $3}')"
[ -n "$URL" ] && [ -n "$ADMIN" ] || { echo "serve did not start"; cat "$OUT/soak-serve.err"; exit 1; }

START="$(date +%s)"
proc_sample() {
  local rss fds threads
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")"
  threads="$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")"
  fds="$(ls "/proc/$PID/fd" | wc -l)"
  echo "$(( $(date +%s) - START )),$(( rss / 1024 )),$fds,$threads"
}
echo "elapsed_s,rss_mb,fds,threads" > "$OUT/soak-proc.csv"
( while kill -0 "$PID" 2>/dev/null; do proc_sample >> "$OUT/soak-proc.csv"; sleep 10; done ) &
SAMPLER=$!

metric() { # a metric's value summed over its labels, 0 when absent
  curl -sf -H "authorization: Bearer $TOKEN" "$ADMIN/metrics" \
    | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {sum += $2} END {printf "%d", sum}'
}

echo "elapsed_s,requests,requests_per_sec,p50_ms,p90_ms,p99_ms,errors,non2xx,tracked_subjects,clusters,tasks" \
  > "$OUT/soak-load.csv"
chunks=$(( MINUTES * 60 / CHUNK ))
total=0
for i in $(seq 1 "$chunks"); do
  line="$(CHUNK="$i" nice -n 19 wrk -t1 -c"$CONNECTIONS" -d"${CHUNK}s" -s benches/load/churn.lua "$URL" | grep RESULT)"
  kill -0 "$PID" 2>/dev/null || { echo "serve exited"; cat "$OUT/soak-serve.err"; exit 1; }
  get() { echo "$line" | sed "s/.*$1=\([0-9.]*\).*/\1/"; }
  n="$(get requests)"; total=$(( total + n ))
  row="$(( $(date +%s) - START )),$n,$(get requests_per_sec)"
  row="$row,$(awk -v u="$(get p50_us)" 'BEGIN {printf "%.2f", u / 1000}')"
  row="$row,$(awk -v u="$(get p90_us)" 'BEGIN {printf "%.2f", u / 1000}')"
  row="$row,$(awk -v u="$(get p99_us)" 'BEGIN {printf "%.2f", u / 1000}')"
  row="$row,$(get errors),$(get non2xx)"
  row="$row,$(metric distill_guard_store_tracked_subjects),$(metric distill_guard_clusters)"
  row="$row,$(metric distill_guard_runtime_tasks)"
  echo "$row" >> "$OUT/soak-load.csv"
  echo "chunk $i/$chunks: $row (requests so far: $total; $(tail -1 "$OUT/soak-proc.csv"))"
done
proc_sample >> "$OUT/soak-proc.csv"
python3 benches/soak_plot.py "$OUT/soak-load.csv" "$OUT/soak-proc.csv" "$OUT/soak.svg"
echo "requests: $total; plot: $OUT/soak.svg"
