# tests/bench/start_router.sh - sourced by io_threads.sh and threads_cpu.sh (needs REPO, BIN
# from release_bin.sh, ZR from vipbench_dir.sh, and PUB/SEC from `zmqrouter --keygen`).
#
# start_router TARGET SECURITY ENDPOINT HOME: start viprouter (TARGET sut, with a fresh
# VOLTTRON_HOME at HOME: NULL, or for curve the server key SEC/PUB as its keystore and an auth.json
# admitting every client) or zmqrouter (TARGET zmqrouter) on ENDPOINT in the background; sets
# ROUTER_PID. TARGET direct starts nothing (ROUTER_PID empty).
start_router() {
  local target="$1" security="$2" ep="$3" h="$4"
  ROUTER_PID=""
  case "$target" in
    sut)
      rm -rf "$h"; mkdir -p "$h"
      if [ "$security" = curve ]; then
        printf "[volttron]\n" > "$h/config"
        python3 "$REPO/tests/bench/keystore_from_z85.py" "$SEC" "$PUB" "$h/keystore"
        printf '{"allow": [{"credentials": "/.*/", "user_id": "bench"}]}' > "$h/auth.json"
      else
        printf "[volttron]\nallow-auth = False\n" > "$h/config"
      fi
      RUST_LOG=warn "$BIN" --volttron-home "$h" --vip-address "$ep" & ROUTER_PID=$! ;;
    zmqrouter)
      if [ "$security" = curve ]; then "$ZR" -e "$ep" --secretkey "$SEC" 2>/dev/null & ROUTER_PID=$!
      else "$ZR" -e "$ep" 2>/dev/null & ROUTER_PID=$!; fi ;;
  esac
}

# a free TCP port on 127.0.0.1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
