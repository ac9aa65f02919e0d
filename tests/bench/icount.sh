#!/usr/bin/env bash
# tests/bench/icount.sh - instructions per routed message, per delivery and per connect for two
# binaries (an A/B without the noise of a shared machine), side by side.
#
# usage: tests/bench/icount.sh OLD_BIN NEW_BIN [OUT_DIR]
#
# The counting is tests/bench/instr.sh's (callgrind on the router process only, vipbench native,
# two fixed counts per workload so that start-up, handshakes and subscriptions cancel); this
# script runs it for each binary and prints both figures and their ratio. Environment: CASES
# (instr.sh's case names, default "route-plain route-curve fanout"), VIPBENCH_DIR.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OLD=$1; NEW=$2; OUT=${3:-$REPO/target/icount-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
for w in old new; do
  bin=$OLD; [ "$w" = new ] && bin=$NEW
  VIPROUTER_BIN="$bin" "$REPO/tests/bench/instr.sh" --cases "${CASES:-route-plain route-curve fanout}" \
    --out "$OUT/$w.json" >&2
done
python3 - "$OUT/old.json" "$OUT/new.json" <<'PY' | tee "$OUT/summary.txt"
import json, sys
old, new = (json.load(open(p))["viprouter"] for p in sys.argv[1:3])
for case, r in new.items():
    (key, n), = [(k, v) for k, v in r.items() if k.startswith("instructions_per_")]
    o = old.get(case, {}).get(key)
    print(f"{case:12} old {o:>9} new {n:>9} {key.replace('_', ' ')}  new/old {n / o:.3f}")
PY
