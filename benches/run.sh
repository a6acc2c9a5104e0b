#!/usr/bin/env bash
# Reproduces every figure in the README's "Performance" and "Detection" tables.
#
#   benches/run.sh            # everything (about 15 minutes on 2 cores)
#   benches/run.sh detection  # one part: detection | replay | load | criterion | memory
#
# Results go to bench-out/ (gitignored). The machine is shared and noisy: every
# timing figure is a median or a ratio measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench-out}"
mkdir -p "$OUT"
PART="${1:-all}"
SEEDS="${SEEDS:-1 2 3}"
SCENARIOS="${SCENARIOS:-naive spoofed hydra adaptive mixed organic}"
HOURS="${HOURS:-24}"

cargo build --release -q
BIN=target/release/distill-guard

want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }

if want detection; then
  echo "== detection (default config: only [identity]) =="
  printf '[identity]\nsecret = "bench"\n' > "$OUT/identity-only.toml"
  for scenario in $SCENARIOS; do
    for seed in $SEEDS; do
      f="$OUT/$scenario-$seed"
      "$BIN" simulate --scenario "$scenario" --hours "$HOURS" --seed "$seed" --out "$f.jsonl"
      "$BIN" replay --config "$OUT/identity-only.toml" "$f.jsonl" --out "$f.decisions.jsonl" \
        --score --summary "$f.report.txt" --report "$f.report.html"
      echo "-- $scenario seed $seed"
      cat "$f.report.txt"
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
