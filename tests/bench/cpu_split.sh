#!/usr/bin/env bash
# tests/bench/cpu_split.sh - where a fan-out delivery's router CPU goes: user space or the
# kernel. compare.sh reports the router's CPU per delivery as one figure; this splits it, for
# viprouter and zmqrouter alternately, from the router's utime/stime (/proc/PID/stat, clock
# ticks) after N publishes to 8 subscribers (256 B, vipbench --io-threads 2, loopback TCP or,
# with --transport ipc, a unix socket: VOLTTRON's default for local agents).
# The kernel's share (copying each delivery into its subscriber's socket and, on loopback, the
# receiver's TCP processing) is paid per byte and does not shrink with user-space work.
#
# Usage: tests/bench/cpu_split.sh [--rounds R] [--publishes N] [--transport tcp|ipc]
# Environment: VIPROUTER_BIN (default: the static musl release build, as compare.sh; see
# release_bin.sh), VIPBENCH_DIR.
# Needs libzmq3-dev + pkg-config for vipbench (tests/bench/vipbench_dir.sh). Wall-clock figures:
# run on a quiet machine and quote them as a pair from the same run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=2 N=300000 TRANSPORT=tcp
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --publishes) N="$2"; shift 2 ;;
    --transport) TRANSPORT="$2"; shift 2 ;;
    *) echo "usage: $0 [--rounds R] [--publishes N] [--transport tcp|ipc]" >&2; exit 2 ;;
  esac
done
. "$REPO/tests/bench/vipbench_dir.sh"
. "$REPO/tests/bench/release_bin.sh"
VB="$VIPBENCH_DIR/vipbench" ZR="$VIPBENCH_DIR/zmqrouter"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
printf "[volttron]\nallow-auth = False\n" > "$WORK/config"
TICK="$(getconf CLK_TCK)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# one NAME: start the router, load it, print its user and system ns per delivery
one() {
  local name="$1" ep pid
  case "$TRANSPORT" in
    tcp) ep="tcp://127.0.0.1:$(free_port)" ;;
    ipc) ep="ipc://$WORK/$name.$RANDOM.sock" ;;
    *) echo "$0: --transport tcp or ipc" >&2; exit 2 ;;
  esac
  case "$name" in
    viprouter) RUST_LOG=warn "$BIN" --volttron-home "$WORK" --vip-address "$ep" 2>>"$WORK/log" & ;;
    zmqrouter) "$ZR" -e "$ep" 2>>"$WORK/log" & ;;
  esac
  pid=$!
  "$VB" -e "$ep" --timeout 20 wait >/dev/null 2>>"$WORK/log"
  local res
  res="$("$VB" -e "$ep" -t 2 --io-threads 2 -K 8 -s 256 -w 1000 -n "$N" -d 3600 \
    --drain 600 --stall 600 fanout 2>>"$WORK/log" | grep '^{' | tail -1)"
  local ticks
  ticks="$(awk '{print $14, $15}' "/proc/$pid/stat")"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  python3 - "$name" "$TICK" "$ticks" "$res" "$TRANSPORT" <<'EOF'
import json, sys
name, tick, ticks, res = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), json.loads(sys.argv[4])
d = res["delivered"]
u, s = (int(t) * 1e9 / tick / d for t in ticks)
print(f"{name:10} {sys.argv[5]:3} {d:9d} deliveries  user {u:7.1f} ns  system {s:7.1f} ns  per delivery  (user share {u / (u + s):.2f})")
EOF
}

for _ in $(seq "$ROUNDS"); do
  one viprouter
  one zmqrouter
done
