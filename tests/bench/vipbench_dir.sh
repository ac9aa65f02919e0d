# tests/bench/vipbench_dir.sh - sourced by the bench scripts: sets VIPBENCH_DIR to a folder
# holding compare.sh, vipbench and zmqrouter, built. Needs REPO.
# $VIPBENCH_DIR if set, else REPO/../shared/bench. When that folder does not hold the built tools
# it is left untouched (it is shared, and read-only on the build machines): its files are copied
# to ${CARGO_TARGET_DIR:-REPO/target}/vipbench and built there (again whenever a source is newer
# than its copy). Needs libzmq3-dev and pkg-config.
VIPBENCH_SRC="${VIPBENCH_DIR:-$REPO/../shared/bench}"
[ -x "$VIPBENCH_SRC/compare.sh" ] || {
  echo "$0: no vipbench folder at $VIPBENCH_SRC (set VIPBENCH_DIR: compare.sh, vipbench.c, zmqrouter.c)" >&2
  exit 2
}
VIPBENCH_SRC="$(cd "$VIPBENCH_SRC" && pwd)"
if [ -x "$VIPBENCH_SRC/vipbench" ] && [ -x "$VIPBENCH_SRC/zmqrouter" ]; then
  VIPBENCH_DIR="$VIPBENCH_SRC"
else
  VIPBENCH_DIR="${CARGO_TARGET_DIR:-$REPO/target}/vipbench"
  mkdir -p "$VIPBENCH_DIR"
  for f in "$VIPBENCH_SRC"/*; do
    [ -f "$f" ] || continue
    d="$VIPBENCH_DIR/$(basename "$f")"
    [ -e "$d" ] && [ ! "$f" -nt "$d" ] || { cp -p "$f" "$d" && chmod u+w "$d"; }
  done
  make -C "$VIPBENCH_DIR" >&2 || { echo "$0: build the tools first: apt-get install -y libzmq3-dev pkg-config && make -C $VIPBENCH_DIR" >&2; exit 2; }
fi
VIPBENCH_DIR="$(cd "$VIPBENCH_DIR" && pwd)"
export VIPBENCH_DIR
