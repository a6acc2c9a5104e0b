#!/usr/bin/env bash
# Reproduces every figure in the README's "Performance" and "Detection" tables.
#
#   benches/run.sh            # everything (about 15 minutes on 2 cores)
#   benches/run.sh detection  # one part: detection | replay | load | redis | criterion | memory
#   benches/run.sh soak       # 30 minutes under fresh-key churn (not part of "all")
#
# Results go to bench-out/ (gitignored). The machine is shared and noisy: every
# timing figure is a median or a ratio measured in the same run.
#
# Environment options (defaults in brackets):
#   OUT               output directory [bench-out]
#   SEEDS             detection: simulation seeds [1 2 3]
#   SCENARIOS         detection: scenarios [naive spoofed hydra adaptive mixed organic]
#   HOURS             detection: simulated hours [24]
#   PERTURB           detection: space-separated perturbation levels, each passed
#                     as `simulate --perturb N` [0]; files are named
#                     $scenario-$seed-p$perturb so levels don't overwrite each other
#   CARGO_TARGET_DIR  where cargo builds; the binary is taken from
#                     $CARGO_TARGET_DIR/release/distill-guard [target]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
PART="${1:-all}"
SEEDS="${SEEDS:-1 2 3}"
SCENARIOS="${SCENARIOS:-naive spoofed hydra adaptive mixed organic}"
HOURS="${HOURS:-24}"
PERTURB="${PERTURB:-0}"

cargo build --release -q
BIN="${CARGO_TARGET_DIR:-target}/release/distill-guard"

want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }

if want detection; then
  echo "== detection (default config: only [identity]) =="
  printf '[identity]\nsecret = "bench"\n' > "$OUT/identity-only.toml"
  for perturb in $PERTURB; do
    for scenario in $SCENARIOS; do
      for seed in $SEEDS; do
        f="$OUT/$scenario-$seed-p$perturb"
        "$BIN" simulate --scenario "$scenario" --hours "$HOURS" --seed "$seed" --perturb "$perturb" --out "$f.jsonl"
        "$BIN" replay --config "$OUT/identity-only.toml" "$f.jsonl" --out "$f.decisions.jsonl" \
          --score --summary "$f.report.txt" --report "$f.report.html"
        echo "-- $scenario seed $seed perturb $perturb"
        cat "$f.report.txt"
      done
    done
  done
fi

if want replay; then
  echo "== replay speed =="
  f="$OUT/replay-speed.jsonl"
  "$BIN" simulate --scenario mixed --hours 24 --seed 7 --out "$f"
  for i in 1 2 3; do
    "$BIN" replay "$f" --out /dev/null --summary "$OUT/replay-speed-$i.json"
    grep -o '"lines_per_second": [0-9.]*' "$OUT/replay-speed-$i.json"
  done
fi

if want load; then
  echo "== whole-stack load: serve vs serve --passthrough (wrk, loopback) =="
  command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)"; exit 1; }
  # Shadow mode: every stage does all its work (fingerprint, link, score, quota
  # arithmetic), but the identical load-generator requests, which do look like one
  # operator, are still answered 200 - the same responses as the baseline.
  printf '[identity]\nsecret = "bench"\n[guard]\nshadow = true\n[tiers.default]\nrequests_per_minute = "unlimited"\nrequests_per_day = "unlimited"\ntokens_per_minute = "unlimited"\ntokens_per_day = "unlimited"\n' > "$OUT/load.toml"
  run_load() {
    local label="$1"; shift
    "$BIN" serve --listen 127.0.0.1:0 "$@" > "$OUT/serve-$label.out" 2> "$OUT/serve-$label.err" &
    local pid=$!
    for _ in $(seq 50); do grep -q listening "$OUT/serve-$label.out" 2>/dev/null && break; sleep 0.1; done
    local url; url="$(head -1 "$OUT/serve-$label.out" | awk '{print $3}')"
    wrk -t1 -c32 -d5s -s benches/load/chat.lua "$url" > /dev/null   # warm-up
    wrk -t1 -c32 -d15s -s benches/load/chat.lua "$url" | grep RESULT | sed "s/^/$label throughput c32 /"
    # One connection, no queueing: the latency the guard adds to a request.
    wrk -t1 -c1 -d10s -s benches/load/chat.lua "$url" | grep RESULT | sed "s/^/$label latency c1 /"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  }
  for round in 1 2 3; do
    run_load passthrough --passthrough
    run_load guarded --config "$OUT/load.toml"
  done | tee "$OUT/load.txt"
fi

if want redis; then
  echo "== whole-stack load: the embedded store vs Redis (wrk, loopback, 300 accounts, 32 connections) =="
  command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)"; exit 1; }
  command -v redis-server >/dev/null || { echo "redis-server not installed"; exit 1; }
  # Shadow mode, limits that never bind and one suspicion band, so that every
  # request is admitted and every admission is decided by the store (with the
  # default bands the load's identical requests look like one operator and are
  # refused, which the Redis store answers from its local cache of refusals).
  port=6390
  redis-server --port "$port" --save "" --appendonly no --daemonize yes --logfile "$OUT/redis-bench.log"
  trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true' EXIT
  printf '[identity]\nsecret = "bench"\n[guard]\nshadow = true\n[quota]\nbands = [{ at_least = 0.0, multiplier = 1.0 }]\n[tiers.default]\nrequests_per_minute = 100000000\nrequests_per_day = 100000000000\ntokens_per_minute = 100000000000\ntokens_per_day = 100000000000000\n' > "$OUT/store-memory.toml"
  sed "s|^\\[guard\\]|[store]\\nbackend = \"redis\"\\nurl = \"redis://127.0.0.1:$port\"\\n[guard]|" "$OUT/store-memory.toml" > "$OUT/store-redis.toml"
  sed "s|^backend = \"redis\"|backend = \"redis\"\\nlocal_leases = true|" "$OUT/store-redis.toml" > "$OUT/store-leases.toml"
  run_store() {
    local label="$1" cfg="$2"
    redis-cli -p "$port" flushall >/dev/null
    "$BIN" serve --listen 127.0.0.1:0 --config "$cfg" > "$OUT/serve-$label.out" 2> "$OUT/serve-$label.err" &
    local pid=$!
    for _ in $(seq 50); do grep -q listening "$OUT/serve-$label.out" 2>/dev/null && break; sleep 0.1; done
    local url; url="$(head -1 "$OUT/serve-$label.out" | awk '{print $3}')"
    ACCOUNTS=300 wrk -t1 -c32 -d5s -s benches/load/chat.lua "$url" > /dev/null   # warm-up
    ACCOUNTS=300 wrk -t1 -c32 -d15s -s benches/load/chat.lua "$url" | grep RESULT | sed "s/^/$label /"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  }
  for round in 1 2 3; do
    run_store memory "$OUT/store-memory.toml"
    run_store redis "$OUT/store-redis.toml"
    run_store leases "$OUT/store-leases.toml"
  done | tee "$OUT/redis.txt"
  # Medians of the three rounds and their ratios to the embedded store.
  for label in memory redis leases; do
    grep "^$label " "$OUT/redis.txt" | sed 's/.*requests_per_sec=\([0-9.]*\).*/\1/' | sort -n | sed -n 2p | sed "s/^/$label median /"
  done | tee "$OUT/redis-medians.txt"
  awk '$1 == "memory" { m = $3 } $1 != "memory" { printf "%s / memory = %.2f\n", $1, $3 / m }' "$OUT/redis-medians.txt"
fi

if want criterion; then
  echo "== criterion =="
  cargo bench --bench stack -- --warm-up-time 2 --measurement-time 8
  for b in fingerprint detect watermark store; do
    if [ -f "benches/$b.rs" ]; then cargo bench --bench "$b" -- --warm-up-time 2 --measurement-time 5; fi
  done
fi

if want memory; then
  echo "== memory per tracked account at 1M accounts =="
  cargo bench --bench memory
fi

if [ "$PART" = soak ]; then
  echo "== soak: $((${SOAK_MINUTES:-30})) minutes of serve under fresh-key churn =="
  OUT="$OUT" BIN="$BIN" benches/soak.sh
fi
