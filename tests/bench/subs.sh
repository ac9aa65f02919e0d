#!/usr/bin/env bash
# tests/bench/subs.sh - the publish cost and latency with 10 versus 10 000 subscriptions in
# the pubsub index (issue #4): `viprouter bench fanout` (flood) and `fanout-lat` (paced)
# against the in-process router, each with --extra-subs 10 and --extra-subs 10000 (idle peers
# holding subscriptions that share the topic's path but never match it), alternating, ROUNDS
# times; then a table of the medians and their ratio. `make bench-subs` runs it.
#
# usage: tests/bench/subs.sh [viprouter bench options...]   e.g. --curve, --subscribers 16
# Environment:
#   CARGO_TARGET_DIR   cargo target dir (default REPO/target)
#   BENCH_TARGET       target triple of the build (default x86_64-unknown-linux-musl, static)
#   VIPROUTER_BIN      use this binary instead of building one
#   BENCH_RESULTS      parent of the results folder (default REPO/target/bench-results)
#   SUBS_LOW, SUBS_HIGH  the two index sizes (default 10 and 10000)
#   FANOUT_S           seconds of each fanout flood (default 3)
#   LAT_COUNT          measured fanout-lat publishes (default 20000; --duration 120 caps them)
#   ROUNDS             runs of each (default 3; the table gives medians)
#   PIN_CPU            run every bench on this one CPU (taskset): no cross-core wake-ups, whose
#                      cost on a VM makes fanout-lat's router CPU per publish bimodal
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOW="${SUBS_LOW:-10}"
HIGH="${SUBS_HIGH:-10000}"
FANOUT_S="${FANOUT_S:-3}"
LAT_COUNT="${LAT_COUNT:-20000}"
ROUNDS="${ROUNDS:-3}"
PIN=()
[ -n "${PIN_CPU:-}" ] && PIN=(taskset -c "$PIN_CPU")

# the release binary: the static musl build we ship, as tests/bench/compare.sh
# shellcheck source=tests/bench/release_bin.sh
. "$REPO/tests/bench/release_bin.sh"

OUT="${BENCH_RESULTS:-$REPO/target/bench-results}/subs-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
echo "results: $OUT" >&2

# one in-process router per run; JSON lines on stdout, the table on stderr
rc=0
for round in $(seq "$ROUNDS"); do
  for n in "$LOW" "$HIGH"; do
    echo "round $round: fanout --extra-subs $n" >&2
    "${PIN[@]}" "$BIN" bench -q --json --extra-subs "$n" --duration "$FANOUT_S" "$@" fanout \
      >>"$OUT/fanout-$n.jsonl" 2>>"$OUT/log.txt" || rc=1
    echo "round $round: fanout-lat --extra-subs $n" >&2
    "${PIN[@]}" "$BIN" bench -q --json --extra-subs "$n" --rtt-count "$LAT_COUNT" --duration 120 "$@" fanout-lat \
      >>"$OUT/fanout-lat-$n.jsonl" 2>>"$OUT/log.txt" || rc=1
  done
done

python3 - "$OUT" "$LOW" "$HIGH" <<'EOF' | tee "$OUT/summary.md"
import json, statistics, sys
out, low, high = sys.argv[1], sys.argv[2], sys.argv[3]
def load(case, n):
    with open(f"{out}/{case}-{n}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]
def median(runs, key):
    v = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return round(statistics.median(v), 2) if v else None
rows = [
    ("fanout", "router_cpu_us_per_pub", "fanout: router CPU per publish (µs)"),
    ("fanout", "router_cpu_us_per_msg", "fanout: router CPU per delivery (µs)"),
    ("fanout", "delivered_per_s", "fanout: deliveries/s"),
    ("fanout", "p99_us", "fanout: latency p99 under saturation (µs)"),
    ("fanout-lat", "router_cpu_us_per_pub", "fanout-lat: router CPU per publish (µs)"),
    ("fanout-lat", "router_cpu_us_per_msg", "fanout-lat: router CPU per delivery (µs)"),
    ("fanout-lat", "p50_us", "fanout-lat: latency p50 (µs)"),
    ("fanout-lat", "p99_us", "fanout-lat: latency p99 (µs)"),
    ("fanout-lat", "p999_us", "fanout-lat: latency p99.9 (µs)"),
    ("fanout-lat", "max_us", "fanout-lat: latency max (µs)"),
    ("fanout-lat", "all_p99_us", "fanout-lat: until all subscribers, p99 (µs)"),
    ("fanout", "other_cpu_frac", "fanout: other processes' CPU share (noise)"),
    ("fanout-lat", "other_cpu_frac", "fanout-lat: other processes' CPU share (noise)"),
]
res = {(c, n): load(c, n) for c in ("fanout", "fanout-lat") for n in (low, high)}
rounds = max(len(v) for v in res.values())
print(f"| median of {rounds} | --extra-subs {low} | --extra-subs {high} | ratio {high}/{low} |")
print("|---|---|---|---|")
for case, key, label in rows:
    a, b = median(res[(case, low)], key), median(res[(case, high)], key)
    numbers = isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b >= 0
    ratio = f"{b / a:.2f}" if numbers and key != "other_cpu_frac" else "-"
    print(f"| {label} | {a} | {b} | {ratio} |")
print()
for (case, n), runs in sorted(res.items()):
    for r in runs:
        state = "ok" if r.get("ok") else f"FAILED: {r.get('failure', '?')}"
        print(f"* {case} --extra-subs {n}: {state}; extra subscriptions acknowledged {r.get('extra_subs_acked')}; "
              f"published {r.get('published')}, delivered {r.get('delivered')}, lost {r.get('lost')}; "
              f"router {r.get('router_cpu_us_per_pub')} µs/publish; p99 {r.get('p99_us')} µs; "
              f"other CPU {r.get('other_cpu_frac')} of the machine")
EOF
exit "$rc"
