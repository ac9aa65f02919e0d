#!/usr/bin/env bash
# tests/bench/instr.sh - instructions per message of a router, counted by valgrind's callgrind:
# a noise-free measure (no clock, no scheduler) that CI can guard (`make bench-instr-check`).
#
# Method: the router process runs under `valgrind --tool=callgrind` (every thread counted:
# libzmq's I/O thread too) and vipbench - natively, outside valgrind - drives it with a fixed
# workload; valgrind stops counting at the router's exit (SIGTERM, a clean shutdown). Each
# workload runs twice, with N_SMALL and N_BIG units (messages, deliveries or connects), and the
# figure is (Ir(big) - Ir(small)) / (big - small) units: start-up, the clients' connects and
# hellos and the shutdown cancel out. Only user-space instructions are counted: the kernel's
# share (loopback TCP) is not in the figure.
#
# Workloads (vipbench's, as compare.sh runs them, but counted instead of timed):
#   route-plain, route-curve  4 pairs, 256 B, window 1000: instructions per routed message
#   fanout                    1 publisher, 8 subscribers, 256 B, 1000 ahead: per delivery (NULL)
#   peers                     idle DEALERs connecting and saying hello: per connect (NULL);
#                             zmqrouter runs with --peerlist (VOLTTRON's `peerlist add` to every
#                             peer already there, O(n^2) in all); viprouter defers those during a
#                             storm of connections and the peers leave at once (--hold 0), so its
#                             figure has no broadcasts in it (README "Performance")
# Under valgrind libsodium sees no AVX-512 (valgrind does not emulate it) and runs its AVX2 code.
#
# Usage: tests/bench/instr.sh [--router viprouter|zmqrouter] [--out FILE.json]
#                             [--check BASELINE.json] [--cases "route-plain ..."]
#   --check: exit 1 if a figure is more than INSTR_TOLERANCE (default 0.05) above the baseline's
#   value for the same router and case (a drop is reported, never a failure).
# Environment: VIPROUTER_BIN (default target/release/viprouter, built if missing), VIPBENCH_DIR.
# Needs valgrind, and libzmq3-dev + pkg-config for vipbench (tests/bench/vipbench_dir.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUTER=viprouter
OUT=""
CHECK=""
CASES="route-plain route-curve fanout peers"
while [ $# -gt 0 ]; do
  case "$1" in
    --router) ROUTER="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --check) CHECK="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    *) echo "$0: unknown argument $1" >&2; exit 2 ;;
  esac
done
TOL="${INSTR_TOLERANCE:-0.05}"
command -v valgrind >/dev/null || { echo "$0: needs valgrind (apt-get install -y valgrind)" >&2; exit 2; }
. "$REPO/tests/bench/vipbench_dir.sh"
VB="$VIPBENCH_DIR/vipbench"
ZR="$VIPBENCH_DIR/zmqrouter"
BIN="${VIPROUTER_BIN:-$REPO/target/release/viprouter}"
if [ "$ROUTER" = viprouter ] && [ -z "${VIPROUTER_BIN:-}" ]; then
  cargo build --release --bin viprouter --manifest-path "$REPO/Cargo.toml" >&2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/viprouter-instr.XXXXXX")"
RPID=""
cleanup() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  [ -n "${INSTR_KEEP:-}" ] && echo "kept: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

read -r SRV_PUB SRV_SEC < <("$ZR" --keygen)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_router CURVE(0|1) PORT OUTFILE CASE: the router under callgrind, in the background (RPID).
start_router() {
  local curve="$1" port="$2" out="$3" ep="tcp://127.0.0.1:$2"
  local vg=(valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no --collect-jumps=no)
  if [ "$ROUTER" = zmqrouter ]; then
    local zargs=(-e "$ep")
    [ "$curve" = 1 ] && zargs+=(--secretkey "$SRV_SEC")
    [ "$4" = peers ] && zargs+=(--peerlist)
    "${vg[@]}" "$ZR" "${zargs[@]}" 2>>"$WORK/router.log" &
  else
    local h; h="$(mktemp -d "$WORK/home.XXXXXX")"
    if [ "$curve" = 1 ]; then
      printf "[volttron]\n" > "$h/config"
      python3 "$REPO/tests/bench/keystore_from_z85.py" "$SRV_SEC" "$SRV_PUB" "$h/keystore"
      printf '{"allow": [{"credentials": "/.*/", "user_id": "bench"}]}' > "$h/auth.json"
    else
      printf "[volttron]\nallow-auth = False\n" > "$h/config"
    fi
    RUST_LOG=warn "${vg[@]}" "$BIN" --volttron-home "$h" --vip-address "$ep" 2>>"$WORK/router.log" &
  fi
  RPID=$!
  local key=()
  [ "$curve" = 1 ] && key=(-k "$SRV_PUB")
  "$VB" -e "$ep" "${key[@]}" --timeout 120 wait >/dev/null 2>>"$WORK/vipbench.log"
}

# stop_router: SIGTERM, and wait until valgrind has written its counts.
stop_router() {
  kill -TERM "$RPID"
  wait "$RPID" 2>/dev/null || true
  RPID=""
}

# run_once CASE N -> prints "IR UNITS" (UNITS as vipbench counted them)
run_once() {
  local c="$1" n="$2" port curve=0 args units
  port="$(free_port)"
  case "$c" in
    route-plain) args=(-P 4 -s 256 -w 1000 -n $((n / 4)) -d 3600 --drain 600 route) ;;
    route-curve) curve=1; args=(-P 4 -s 256 -w 1000 -n $((n / 4)) -d 3600 --drain 600 route) ;;
    fanout) args=(-K 8 -s 256 -w 1000 -n $((n / 8)) -d 3600 --drain 600 --stall 600 fanout) ;;
    peers) args=(-C "$n" --hold 0 --settle 0 --timeout 600 peers) ;;
  esac
  start_router "$curve" "$port" "$WORK/cg.$c.$n" "$c"
  local key=()
  [ "$curve" = 1 ] && key=(-k "$SRV_PUB")
  "$VB" -e "tcp://127.0.0.1:$port" "${key[@]}" -t 2 "${args[@]}" > "$WORK/res.$c.$n" 2>>"$WORK/vipbench.log" \
    || { echo "$0: vipbench $c $n failed (see below)" >&2; tail -20 "$WORK/vipbench.log" >&2; exit 1; }
  units="$(python3 - "$c" "$WORK/res.$c.$n" <<'EOF'
import json, sys
case, path = sys.argv[1], sys.argv[2]
line = [l for l in open(path) if l.startswith("{")][-1]
r = json.loads(line)
key = {"route-plain": "delivered", "route-curve": "delivered", "fanout": "delivered", "peers": "welcomed"}[case]
print(int(r[key]))
EOF
)"
  stop_router
  echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.$c.$n") $units"
}

declare -A SMALL=([route-plain]=10000 [route-curve]=10000 [fanout]=10000 [peers]=100)
declare -A BIG=([route-plain]=100000 [route-curve]=100000 [fanout]=100000 [peers]=1000)
declare -A UNIT=([route-plain]=message [route-curve]=message [fanout]=delivery [peers]=connect)

results="$WORK/results.json"
echo "{}" > "$results"
for c in $CASES; do
  t0=$(date +%s)
  read -r ir1 u1 < <(run_once "$c" "${SMALL[$c]}")
  read -r ir2 u2 < <(run_once "$c" "${BIG[$c]}")
  t1=$(date +%s)
  python3 - "$results" "$ROUTER" "$c" "$ir1" "$u1" "$ir2" "$u2" "${UNIT[$c]}" "$((t1 - t0))" <<'EOF'
import json, sys
path, router, case, ir1, u1, ir2, u2, unit, secs = sys.argv[1:]
ir1, u1, ir2, u2 = int(ir1), int(u1), int(ir2), int(u2)
if u2 <= u1:
    sys.exit(f"{case}: {u2} units in the big run, {u1} in the small one")
per = (ir2 - ir1) / (u2 - u1)
d = json.load(open(path))
d.setdefault(router, {})[case] = {"instructions_per_" + unit: round(per), "runs": [[ir1, u1], [ir2, u2]]}
json.dump(d, open(path, "w"), indent=1, sort_keys=True)
print(f"{router:9} {case:12} {per:10.0f} instructions per {unit}   ({u1} and {u2} units; {secs} s)")
EOF
done

if [ -n "$OUT" ]; then
  python3 - "$results" "$OUT" <<'EOF'
import json, sys, os
new, out = sys.argv[1], sys.argv[2]
d = json.load(open(out)) if os.path.exists(out) else {}
for router, cases in json.load(open(new)).items():
    d.setdefault(router, {}).update(cases)
json.dump(d, open(out, "w"), indent=1, sort_keys=True)
open(out, "a").write("\n")
EOF
  echo "written: $OUT" >&2
fi

if [ -n "$CHECK" ]; then
  python3 - "$results" "$CHECK" "$TOL" <<'EOF'
import json, sys
new, base, tol = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
# The committed CURVE figure is libsodium's AVX2 code (what valgrind runs on an AVX2 CPU). On a
# CPU without AVX2 libsodium runs its SSE2 code: another instruction count, not a regression,
# so that case is shown and not judged there.
flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
bad = 0
for router, cases in new.items():
    for case, r in cases.items():
        (key, now), = [(k, v) for k, v in r.items() if k.startswith("instructions_per_")]
        was = base.get(router, {}).get(case, {}).get(key)
        if was is None:
            print(f"{router} {case}: no baseline"); bad += 1; continue
        if case.endswith("-curve") and "avx2" not in flags:
            print(f"skip {router} {case}: {now} vs {was} committed on an AVX2 CPU (this CPU has no AVX2)")
            continue
        ratio = now / was
        verdict = "FAIL" if ratio > 1 + tol else "ok"
        bad += verdict == "FAIL"
        print(f"{verdict:4} {router} {case}: {now} {key.replace('_', ' ')} vs {was} committed ({ratio:.3f}x, limit {1 + tol:.2f}x)")
print(f"{sum(len(c) for c in new.values()) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
EOF
fi
