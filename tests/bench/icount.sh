#!/usr/bin/env bash
# tests/bench/icount.sh - instructions the router executes per routed message and per pubsub
# delivery, for two binaries (an A/B without the noise of a shared machine).
#
# usage: tests/bench/icount.sh OLD_BIN NEW_BIN [OUT_DIR]
#
# Each binary runs under `valgrind --tool=callgrind` (only the router is counted; the load comes
# from vipbench, running natively) for route (4 pairs) and fanout (1 publisher, 8 subscribers),
# plain and CURVE, each twice with a fixed message count (vipbench -n N1 and N2): the difference
# of the two totals over the difference of the messages cancels start-up, the handshakes and the
# subscriptions. Prints one line per binary and workload, "per-msg" = instructions per routed
# message (route) or per delivery (fanout). Needs valgrind, and vipbench (built as for
# compare.sh: tests/bench/vipbench_dir.sh). Environment: SECS="plain curve", CASES="route fanout".
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/bench/vipbench_dir.sh
. "$REPO/tests/bench/vipbench_dir.sh"
OLD=$1; NEW=$2; OUT=${3:-$REPO/target/icount-$(date +%Y%m%d-%H%M%S)}
VB="$VIPBENCH_DIR/vipbench"
KS="$REPO/tests/bench/keystore_from_z85.py"
mkdir -p "$OUT"
# A fixed CURVE server key pair (Z85), generated once with `viprouter keygen`.
PUB='l%?963fQmGrlooxd)NPsywL{v(8@jW<&I2Qz6S<)'
SEC='uxJbyW3UUkgDKk9>)SEr5NyQ]^hg@9m@ZVzlH{=r'
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() { # label bin security case n -> prints the router's instruction total
  local label=$1 bin=$2 sec=$3 case=$4 n=$5 p h rpid
  h=$(mktemp -d "${TMPDIR:-/tmp}/viprouter-icount.XXXXXX"); p=$(port)
  if [ "$sec" = curve ]; then
    printf '[volttron]\n' > "$h/config"
    python3 "$KS" "$SEC" "$PUB" "$h/keystore"
    printf '{"allow": [{"credentials": "/.*/", "user_id": "bench"}]}' > "$h/auth.json"
  else
    printf '[volttron]\nallow-auth = False\n' > "$h/config"
  fi
  RUST_LOG=error valgrind --tool=callgrind --callgrind-out-file="$OUT/$label.out" \
    "$bin" --volttron-home "$h" --vip-address "tcp://127.0.0.1:$p" > "$OUT/$label.router.log" 2>&1 &
  rpid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.2; done
  local key=(); [ "$sec" = curve ] && key=(-k "$PUB")
  "$VB" -e "tcp://127.0.0.1:$p" "${key[@]}" -n "$n" -d 600 --drain 60 -t 2 -l "$label" "$case" \
    > "$OUT/$label.vb.log" 2>&1
  kill -TERM "$rpid"; wait "$rpid" 2>/dev/null
  rm -rf "$h"
  awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$label.out"
}
for case in ${CASES:-route fanout}; do
  for sec in ${SECS:-plain curve}; do
    if [ "$case" = route ]; then n1=2000; n2=12000; per=4; else n1=1000; n2=6000; per=8; fi
    for w in old new; do
      bin=$OLD; [ "$w" = new ] && bin=$NEW
      a=$(run "$w-$sec-$case-$n1" "$bin" "$sec" "$case" "$n1")
      b=$(run "$w-$sec-$case-$n2" "$bin" "$sec" "$case" "$n2")
      echo "$w $sec $case Ir($n1)=$a Ir($n2)=$b per-msg=$(( (b - a) / ((n2 - n1) * per) ))"
    done
  done
done | tee "$OUT/summary.txt"
