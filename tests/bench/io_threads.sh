#!/usr/bin/env bash
# tests/bench/io_threads.sh - viprouter vs zmqrouter (vs direct) with a load generator that has
# more libzmq I/O threads than compare.sh gives it (vipbench --io-threads; compare.sh has no
# option for it). Under CURVE, vipbench's single I/O thread seals and opens every frame of both
# ends and caps any router at the `direct` rate; this shows the routers with that cap lifted.
#
# usage: tests/bench/io_threads.sh [--io-threads N] [--rounds R] [--security curve|plain]
#                                  [--workload route|fanout] [--duration S]
# Alternates sut, zmqrouter, direct (route only) each round; prints one line per run and the
# medians with ratios. Environment: VIPBENCH_DIR (default REPO/../shared/bench), VIPROUTER_BIN.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IO=2 ROUNDS=3 SECMODE=curve WL=route DUR=3
while [ $# -gt 0 ]; do
  case "$1" in
    --io-threads) IO="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --security) SECMODE="$2"; shift 2 ;;
    --workload) WL="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
done
. "$REPO/tests/bench/vipbench_dir.sh"
ZR="$VIPBENCH_DIR/zmqrouter"; VB="$VIPBENCH_DIR/vipbench"
. "$REPO/tests/bench/release_bin.sh"
read -r PUB SEC < <("$ZR" --keygen)
TMP="$(mktemp -d "${TMPDIR:-/tmp}/viprouter-io.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
. "$REPO/tests/bench/start_router.sh"
targets="sut zmqrouter"; [ "$WL" = route ] && targets="$targets direct"
: > "$TMP/results"
for r in $(seq "$ROUNDS"); do
  for t in $targets; do
    port=$(free_port); ep="tcp://127.0.0.1:$port"
    start_router "$t" "$SECMODE" "$ep" "$TMP/home$r"; pid="$ROUTER_PID"
    args=(--io-threads "$IO" -d "$DUR")
    if [ "$t" = direct ]; then args+=(--direct); [ "$SECMODE" = curve ] && args+=(--curve)
    else "$VB" -e "$ep" --timeout 10 wait >/dev/null 2>&1 || true
         args+=(-p "$pid"); [ "$SECMODE" = curve ] && args+=(-k "$PUB"); fi
    "$VB" -e "$ep" "${args[@]}" "$WL" 2>/dev/null | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    rate = r.get("msgs_per_s") or r.get("delivered_per_s")
    print(sys.argv[1], sys.argv[2], rate, r.get("router_cpu_us_per_msg"), r.get("other_cpu_frac"))' "$r" "$t" | tee -a "$TMP/results"
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
done
python3 - "$TMP/results" "$WL" "$SECMODE" "$IO" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
med = lambda t, i: statistics.median(float(r[i]) for r in rows if r[1] == t) if any(r[1] == t for r in rows) else None
print(f"\n{sys.argv[2]} {sys.argv[3]}, vipbench --io-threads {sys.argv[4]}, medians of {len(set(r[0] for r in rows))} rounds")
for t in ("sut", "zmqrouter", "direct"):
    if med(t, 2) is not None:
        cpu = med(t, 3)
        print(f"  {t:10s} {med(t, 2):12.0f} /s   router CPU {cpu if cpu and cpu > 0 else '-'} us/msg")
print(f"  viprouter/zmqrouter: {med('sut', 2) / med('zmqrouter', 2):.2f} (per round: "
      + " ".join(f"{float(a[2]) / float(b[2]):.2f}" for a, b in zip([r for r in rows if r[1] == 'sut'], [r for r in rows if r[1] == 'zmqrouter'])) + ")")
PY
