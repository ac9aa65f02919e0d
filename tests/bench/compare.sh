#!/usr/bin/env bash
# tests/bench/compare.sh - benchmark viprouter against the anchors of the shared
# vipbench harness (zmqrouter = libzmq ROUTER in C, direct = no router hop, and
# vtrouter / volttron when present). See tests/bench/README.md.
#
# usage: tests/bench/compare.sh [compare.sh options...]
#   e.g. tests/bench/compare.sh --rounds 2 --cases "route route-big rtt fanout peers"
#
# Builds the release binary, then runs $VIPBENCH_DIR/compare.sh (default
# REPO/../shared/bench; built in target/vipbench when that folder is read-only,
# see vipbench_dir.sh) with --sut for viprouter
# (plain and CURVE: --security both; the generator with --io-threads 2), then the rtt
# case a second time with generator and router pinned to CPU $BENCH_PIN_CPU (default 0),
# appended to summary.md as "rtt pinned". Every option given here is passed
# through and wins over the defaults (the last occurrence of an option wins).
# Environment:
#   VIPBENCH_DIR       folder holding vipbench, zmqrouter and compare.sh
#   CARGO_TARGET_DIR   cargo target dir (default REPO/target)
#   BENCH_RESULTS      parent of the results folder (default REPO/target/bench-results)
#   VIPROUTER_BIN      use this binary instead of building one
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/bench/vipbench_dir.sh
. "$REPO/tests/bench/vipbench_dir.sh"

# 1. the release binary: the static musl build we ship (no glibc, smallest resident set)
# shellcheck source=tests/bench/release_bin.sh
. "$REPO/tests/bench/release_bin.sh"

# 2. results folder (a caller's --out wins)
OUT=""
prev=""
for a in "$@"; do [ "$prev" = --out ] && OUT="$a"; prev="$a"; done
if [ -z "$OUT" ]; then
  OUT="${BENCH_RESULTS:-$REPO/target/bench-results}/$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# 3. one fresh VOLTTRON_HOME per router start, all under this folder, removed at exit
export VIPROUTER_BENCH_BIN="$BIN"
export VIPROUTER_BENCH_HOMES
VIPROUTER_BENCH_HOMES="$(mktemp -d "${TMPDIR:-/tmp}/viprouter-bench.XXXXXX")"
trap 'rm -rf "$VIPROUTER_BENCH_HOMES"' EXIT

# Runs under `bash -c` in its own process group; exec keeps the router's pid.
# The ipc endpoint is abstract (ipc://@HOME/run/vip.socket), so homes never clash.
# CURVE runs: the router serves the key compare.sh hands it (written as its keystore), and an
# auth.json regex entry admits the bench's client key (VIP.md §9.5: "/.*/" credentials).
export VIPROUTER_BENCH_KEYSTORE="$REPO/tests/bench/keystore_from_z85.py"
SUT='h="$(mktemp -d "$VIPROUTER_BENCH_HOMES/home.XXXXXX")" && if [ -n "$VIP_SECRETKEY" ]; then printf "[volttron]\n" > "$h/config" && python3 "$VIPROUTER_BENCH_KEYSTORE" "$VIP_SECRETKEY" "$VIP_SERVERKEY" "$h/keystore" && printf "{\"allow\": [{\"credentials\": \"/.*/\", \"user_id\": \"bench\"}]}" > "$h/auth.json"; else printf "[volttron]\nallow-auth = False\n" > "$h/config"; fi && RUST_LOG=warn exec "$VIPROUTER_BENCH_BIN" --volttron-home "$h" --vip-address "$VIP_ENDPOINT"'

echo "results: $OUT" >&2
set +e
# The generator gets two libzmq I/O threads: with one, it - not the router - caps CURVE and
# fan-out throughput on a 2-core machine (vipbench README).
DEFAULTS=(--sut "$SUT" --sut-label viprouter --sut-curve 1 --security both --gen-args "--io-threads 2")
"$VIPBENCH_DIR/compare.sh" "${DEFAULTS[@]}" \
  --cases "route route-big rtt fanout peers" \
  --out "$OUT" \
  "$@"
rc=$?

# 4. rtt again with the generator and the router pinned to one CPU (BENCH_PIN_CPU, default 0):
# unpinned, a 2-vCPU VM adds 50-150 us cross-vCPU wake-ups at random, so the pinned figure is
# the software path. Skipped when the caller chose --pin-rtt or cases without rtt.
cases="route route-big rtt fanout peers"
pinned=""
prev=""
for a in "$@"; do
  [ "$prev" = --cases ] && cases="$a"
  [ "$prev" = --pin-rtt ] && pinned=1
  prev="$a"
done
if [ "$rc" = 0 ] && [ -z "$pinned" ] && [[ " $cases " == *" rtt "* ]]; then
  cpu="${BENCH_PIN_CPU:-0}"
  "$VIPBENCH_DIR/compare.sh" "${DEFAULTS[@]}" "$@" --cases rtt --pin-rtt "$cpu" --out "$OUT/rtt-pinned"
  rc=$?
  {
    echo
    echo "# rtt pinned: generator and router on CPU $cpu (second pass, --cases rtt --pin-rtt $cpu)"
    sed -n '/^## security/,$p' "$OUT/rtt-pinned/summary.md"
  } >> "$OUT/summary.md"
fi
echo "results: $OUT (summary.md, results.jsonl, logs/)" >&2
exit "$rc"
