# tests/bench/release_bin.sh - sourced by compare.sh and subs.sh: sets BIN to the viprouter
# binary to measure, $VIPROUTER_BIN if set, else the static musl release build (no glibc,
# smallest resident set: the build we ship), built here.
# Needs REPO; honours CARGO_TARGET_DIR (default REPO/target) and BENCH_TARGET (default
# x86_64-unknown-linux-musl).
if [ -n "${VIPROUTER_BIN:-}" ]; then
  BIN="$VIPROUTER_BIN"
else
  TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
  TRIPLE="${BENCH_TARGET:-x86_64-unknown-linux-musl}"
  rustup target add "$TRIPLE" >/dev/null 2>&1 || true
  echo "building: cargo build --release --target $TRIPLE (target dir $TARGET)" >&2
  CARGO_TARGET_DIR="$TARGET" cargo build --release --target "$TRIPLE" --bin viprouter --manifest-path "$REPO/Cargo.toml" >&2
  BIN="$TARGET/$TRIPLE/release/viprouter"
fi
[ -x "$BIN" ] || { echo "$0: no binary at $BIN" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
