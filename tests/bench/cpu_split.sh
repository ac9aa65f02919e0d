#!/usr/bin/env bash
# tests/bench/cpu_split.sh - where a fan-out delivery's router CPU goes: user space or the
# kernel. compare.sh reports the router's CPU per delivery as one figure; this splits it, for
# viprouter and zmqrouter alternately, from the router's utime/stime (/proc/PID/stat, clock
# ticks) after N publishes to 8 subscribers (256 B, vipbench --io-threads 2, loopback TCP or,
# with --transport ipc, a unix socket: VOLTTRON's default for local agents).
# The kernel's share (copying each delivery into its subscriber's socket and, on loopback, the
# receiver's TCP processing) is paid per byte and per write, and does not shrink with user-space
# work. viprouter's line also gives its bytes per delivery and per write call (/proc/PID/io:
# wchar / syscw: the deliveries' write/writev calls; the count replies to the publisher go by
# send, which this does not count). With --floor, tcp_floor.py then sends
# the same bytes in writes of the same size to 8 sockets with no router at all: the kernel's own
# floor for that viprouter line.
#
# Usage: tests/bench/cpu_split.sh [--rounds R] [--publishes N] [--transport tcp|ipc] [--floor]
# Environment: VIPROUTER_BIN (default: the static musl release build, as compare.sh; see
# release_bin.sh), VIPBENCH_DIR.
# Needs libzmq3-dev + pkg-config for vipbench (tests/bench/vipbench_dir.sh). Wall-clock figures:
# run on a quiet machine and quote them as a pair from the same run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
ROUNDS=2 N=300000 TRANSPORT=tcp FLOOR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --publishes) N="$2"; shift 2 ;;
    --transport) TRANSPORT="$2"; shift 2 ;;
    --floor) FLOOR=1; shift ;;
    *) echo "usage: $0 [--rounds R] [--publishes N] [--transport tcp|ipc] [--floor]" >&2; exit 2 ;;
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
  local ticks io line
  ticks="$(awk '{print $14, $15}' "/proc/$pid/stat")"
  io="$(awk '$1 == "wchar:" || $1 == "syscw:" {print $2}' "/proc/$pid/io" | tr '\n' ' ')"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  line="$(python3 - "$name" "$TICK" "$ticks" "$res" "$TRANSPORT" "$io" <<'EOF'
import json, sys
name, tick, ticks, res = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), json.loads(sys.argv[4])
wchar, syscw = (int(x) for x in sys.argv[6].split())
d = res["delivered"]
u, s = (int(t) * 1e9 / tick / d for t in ticks)
# viprouter writes deliveries with write/writev (counted in wchar); libzmq uses send (not counted)
sizes = f"; {wchar / d:.0f} B per delivery, {wchar / max(syscw, 1):.0f} B per write" if name == "viprouter" else ""
print(f"{name:10} {sys.argv[5]:3} {d:9d} deliveries  user {u:7.1f} ns  system {s:7.1f} ns  per delivery"
      f"  (user share {u / (u + s):.2f}{sizes})")
EOF
)"
  echo "$line"
  if [ "$FLOOR" = 1 ] && [ "$name" = viprouter ]; then
    # the same bytes in writes of the same size, with no router (tcp_floor.py)
    local per_delivery per_write
    per_delivery="$(sed -E 's/.*; ([0-9]+) B per delivery.*/\1/' <<<"$line")"
    per_write="$(sed -E 's/.* ([0-9]+) B per write.*/\1/' <<<"$line")"
    if [ "$per_write" -lt 1 ]; then
      echo "kernel floor: no write/writev counted (this build writes with send(2)): no floor"
      return
    fi
    python3 "$REPO/tests/bench/tcp_floor.py" --transport "$TRANSPORT" --sockets 8 \
      --write-bytes "$per_write" --delivery-bytes "$per_delivery" \
      --mbytes "$(( N * 8 * per_delivery / 1000000 + 1 ))"
  fi
}

for _ in $(seq "$ROUNDS"); do
  one viprouter
  one zmqrouter
done
