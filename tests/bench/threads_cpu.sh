#!/usr/bin/env bash
# tests/bench/threads_cpu.sh - where the CPU goes during a vipbench run: the CPU share of every
# thread of the load generator (vipbench's application threads and its libzmq I/O thread) and
# of the router, for viprouter and zmqrouter alternating, ROUNDS times (`make bench-threads`).
#
# Why: on a 2-core machine generator and router share the cores, and throughput ratios stop
# measuring the router once one generator thread is saturated. vipbench has ONE libzmq I/O
# thread (compare.sh cannot change that) which decodes every delivery of every subscriber; its
# CPU per delivery is nearly the same whichever router feeds it, so its share sets a ceiling:
#   ceiling = deliveries/s / (I/O thread's share of one core)
# = the rate at which that thread would be 100% busy. No router can make the generator count
# more than that; the line "ceiling/zmqrouter" says which throughput ratios are reachable.
#
# usage: tests/bench/threads_cpu.sh [--rounds R] [--workload fanout|route] [--security plain|curve]
#                                   [--duration S]
# Sampling: /proc/PID/task/*/stat (utime+stime) from 1 s after the start until 1 s before the
# end of each run. Environment: VIPBENCH_DIR, VIPROUTER_BIN, CARGO_TARGET_DIR (see compare.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS=3 WL=fanout SECMODE=plain DUR=4
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --workload) WL="$2"; shift 2 ;;
    --security) SECMODE="$2"; shift 2 ;;
    --duration) DUR="$2"; shift 2 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$DUR" -ge 3 ] || { echo "$0: --duration must be at least 3 (1 s is cut at each end)" >&2; exit 2; }
. "$REPO/tests/bench/vipbench_dir.sh"
ZR="$VIPBENCH_DIR/zmqrouter"; VB="$VIPBENCH_DIR/vipbench"
. "$REPO/tests/bench/release_bin.sh"
read -r PUB SEC < <("$ZR" --keygen)
TMP="$(mktemp -d "${TMPDIR:-/tmp}/viprouter-thr.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
. "$REPO/tests/bench/start_router.sh"
# one line per thread of process $1: "tid name ticks" (utime + stime)
snap() { python3 -c 'import os, sys
for tid in os.listdir(f"/proc/{sys.argv[1]}/task"):
    try: s = open(f"/proc/{sys.argv[1]}/task/{tid}/stat").read()
    except OSError: continue
    f = s[s.rindex(")") + 2:].split()
    print(tid, s[s.index("(") + 1:s.rindex(")")].replace(" ", "_"), int(f[11]) + int(f[12]))' "$1" 2>/dev/null || true; }
HZ=$(getconf CLK_TCK)
WIN=$((DUR - 2))
: > "$TMP/results"
for r in $(seq "$ROUNDS"); do
  for t in sut zmqrouter; do
    port=$(free_port); ep="tcp://127.0.0.1:$port"
    start_router "$t" "$SECMODE" "$ep" "$TMP/home$r"; rp="$ROUTER_PID"
    "$VB" -e "$ep" --timeout 10 wait >/dev/null 2>&1 || true
    args=(-p "$rp" -d "$DUR"); [ "$SECMODE" = curve ] && args+=(-k "$PUB")
    "$VB" -e "$ep" "${args[@]}" "$WL" > "$TMP/out.json" 2>/dev/null & gp=$!
    sleep 1; snap "$gp" > "$TMP/g0"; snap "$rp" > "$TMP/r0"
    sleep "$WIN"; snap "$gp" > "$TMP/g1"; snap "$rp" > "$TMP/r1"
    wait "$gp" || true
    kill "$rp" 2>/dev/null || true; wait "$rp" 2>/dev/null || true
    python3 - "$TMP" "$r" "$t" "$HZ" "$WIN" <<'PY'
import json, sys
d, rnd, target, hz, win = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
def load(n):
    return {tid: (name, int(ticks)) for tid, name, ticks in (l.split() for l in open(f"{d}/{n}") if l.strip())}
def shares(a, b):
    a, b = load(a), load(b)
    return [(b[t][0], (b[t][1] - a[t][1]) / hz / win) for t in sorted(b, key=int) if t in a]
out = json.loads(open(f"{d}/out.json").read().splitlines()[-1])
rate = out.get("delivered_per_s") or out.get("msgs_per_s") or 0
r = {"round": int(rnd), "target": target, "rate": rate, "gen": shares("g0", "g1"), "router": shares("r0", "r1")}
with open(f"{d}/results", "a") as f:
    f.write(json.dumps(r) + "\n")
fmt = lambda xs: " ".join(f"{n}={s * 100:.0f}%" for n, s in xs)
print(f"round {rnd} {target:9s} {rate:9.0f}/s  generator: {fmt(r['gen'])}  router: {fmt(r['router'])}")
PY
  done
done
python3 - "$TMP/results" "$WL" "$SECMODE" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def io_share(r):
    return sum(s for n, s in r["gen"] if n.startswith("ZMQbg/IO"))
def med(t, f):
    xs = [f(r) for r in rows if r["target"] == t]
    return statistics.median(xs) if xs else float("nan")
print(f"\n{sys.argv[2]} {sys.argv[3]}, medians of {len(rows) // 2} rounds (shares of one core)")
for t in ("sut", "zmqrouter"):
    print(f"  {t:10s} {med(t, lambda r: r['rate']):10.0f}/s  generator I/O thread {med(t, io_share) * 100:3.0f}%"
          f"  generator total {med(t, lambda r: sum(s for _, s in r['gen'])) * 100:3.0f}%"
          f"  router {med(t, lambda r: sum(s for _, s in r['router'])) * 100:3.0f}%"
          f"  I/O thread {med(t, lambda r: io_share(r) / r['rate'] * 1e6 if r['rate'] else float('nan')):.2f} us/delivered")
zr = med("zmqrouter", lambda r: r["rate"])
ceil = med("sut", lambda r: r["rate"] / io_share(r) if io_share(r) else float("nan"))
print(f"  viprouter/zmqrouter: {med('sut', lambda r: r['rate']) / zr:.2f}")
print(f"  ceiling (rate at which vipbench's I/O thread is 100% busy, viprouter runs): {ceil:.0f}/s"
      f" = {ceil / zr:.2f}x zmqrouter")
PY
