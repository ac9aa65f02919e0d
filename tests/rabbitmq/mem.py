"""Memory of the RabbitMQ bridge (issue #15 deliverable 4): `make bench-rabbitmq-mem`.

One private RabbitMQ node (broker.py) and, in turn, two gateways running the same binary
(`VIPROUTER_BIN`, the static musl release build by default): one bridged to the node, one
without `rabbitmq-url`. Each gets the same local agents (raw VIP over libzmq, pyzmq) and goes
through the same phases; after each phase the router's VmRSS and VmHWM (/proc) and its own
`query stats` figures (`buffer_bytes`, `buffer_bytes_hwm`) are read, and the bridge's counters
are checked against what was sent (a phase that did not really run fails the script).

Phases (sizes and counts from the command line):
  idle         agents connected (and bound), then IDLE_S seconds of silence (> IDLE_SHRINK_MS)
  export       N publishes of S bytes on `devices/...` (exported; a local all_platforms
               subscriber receives each, the bridge's self-echo is dropped), W in flight
  export-large N/50 publishes of 256 KiB (split over frame-max on the way out and back)
  inbound      N publishes by a VOLTTRON RabbitMQ agent (pika) delivered to the local subscriber
  rpc-out      R external RPC round trips local caller -> broker -> pika agent -> back
  rpc-in       R round trips pika caller -> broker -> local agent -> back
The gateway without the bridge runs idle, export and export-large (the same local work: its
publishes reach the local subscriber only); the broker phases need the bridge.

Prints one Markdown table (KiB). Not a test: it asserts only that the load really happened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from broker import Broker  # noqa: E402
from conftest import Gateway, rpc_request, send_platform  # noqa: E402
from rmq_agent import RmqAgent  # noqa: E402

Row = dict[str, object]


def proc_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]


def publish_window(gw: Gateway, pub, sub, topic: bytes, body: bytes, n: int, window: int) -> None:
    """`n` publishes from `pub`, `window` in flight; each must reach the local subscriber."""
    sent = 0
    while sent < n:
        k = min(window, n - sent)
        for i in range(k):
            pub.send(b"", b"pubsub", b"publish", topic + b"/%d" % (sent + i), body, msgid=b"p%d" % (sent + i))
        for _ in range(k):
            f = pub.recv_matching(lambda f: f[4] == b"pubsub", 10, "publish count")[0]
            assert f[-1] == (1).to_bytes(4, "little"), f"publish count {f[-1]!r}, expected 1 local subscriber"
            sub.recv_matching(lambda f: f[4] == b"pubsub" and f[5] == b"publish", 10, "local delivery")
        sent += k


def inbound(gw: Gateway, remote: RmqAgent, sub, n: int, size: int, window: int) -> None:
    payload = "x" * size
    got = 0
    while got < n:
        k = min(window, n - got)
        for i in range(k):
            remote.publish(f"devices/remote/{got + i}", payload, msg_id=f"r{got + i}")
        for _ in range(k):
            f = sub.recv_matching(lambda f: f[4] == b"pubsub" and f[5] == b"publish", 10, "remote publish")[0]
            assert f[6].startswith(b"devices/remote/"), f
        got += k


def rpc_out(caller, callee: RmqAgent, r: int, window: int) -> None:
    done = 0
    while done < r:
        k = min(window, r - done)
        for i in range(k):
            send_platform(caller, "v1", "callee", [rpc_request("echo", [done + i], str(done + i))],
                          msgid=b"o%d" % (done + i))
        for _ in range(k):
            callee.answer(callee.expect(10), "ok")
        for _ in range(k):
            caller.recv_matching(lambda f: f[4] == b"external_rpc", 10, "external RPC answer")
        done += k


def rpc_in(local, remote: RmqAgent, gw_name: str, r: int, window: int) -> None:
    done = 0
    while done < r:
        k = min(window, r - done)
        for i in range(k):
            remote.send_vip("callee", "RPC", [rpc_request("echo", [done + i], str(done + i))], f"i{done + i}",
                            platform=gw_name)
        for _ in range(k):
            f = local.recv_matching(lambda f: f[4] == b"external_rpc", 10, "inbound RPC")[0]
            body = json.loads(f[6])
            resp = json.dumps({"jsonrpc": "2.0", "id": json.loads(body["args"][0])["id"], "result": "ok"})
            send_platform(local, body["from_platform"], body["from_peer"], [resp], msgid=f[3])
        for _ in range(k):
            remote.expect(10)
        done += k


def dropped(st: dict) -> int:
    """Exports the bridge dropped and counted (printed with the table)."""
    return sum(v for k, v in st.items() if k.startswith("amqp_dropped_"))


def measure(gw: Gateway, phase: str, rows: list[Row]) -> None:
    rss, hwm = proc_kib(gw.proc.pid)
    st = gw.stats()
    rows.append({"router": "bridge" if "rabbitmq" in st else "no bridge", "phase": phase, "rss": rss, "hwm": hwm,
                 "buf": st["buffer_bytes"] // 1024, "buf_hwm": st["buffer_bytes_hwm"] // 1024,
                 "stats": st})


def run(broker: Broker | None, a: argparse.Namespace, rows: list[Row]) -> None:
    name = "gwm"
    gw = Gateway(name, broker.url() if broker else None, export="devices/", verbose=False)
    try:
        pub, sub, caller, callee = gw.agent("pub"), gw.agent("sub"), gw.agent("caller"), gw.agent("callee")
        sub.send(b"", b"pubsub", b"subscribe",
                 json.dumps({"prefix": "devices", "bus": "", "all_platforms": True}).encode(), msgid=b"s1")
        sub.recv_matching(lambda f: f[4] == b"pubsub", 5)
        if broker:
            gw.wait_bridge("up", bound=6)  # _stats, 4 agents, __pubsub__.*.devices.#
        else:
            gw.stats()
        time.sleep(a.idle_s)
        measure(gw, "idle", rows)
        body = json.dumps({"bus": "", "headers": {}, "message": "x" * a.size}).encode()
        publish_window(gw, pub, sub, b"devices/mem", body, a.n, a.window)
        measure(gw, f"export {a.n} x {len(body)} B", rows)
        big = json.dumps({"bus": "", "headers": {}, "message": "x" * (256 * 1024)}).encode()
        publish_window(gw, pub, sub, b"devices/big", big, max(a.n // 50, 1), 8)
        measure(gw, f"export {max(a.n // 50, 1)} x {len(big) // 1024} KiB", rows)
        if broker is None:
            return
        st = gw.stats()
        assert st["amqp_export_out"] + dropped(st) == a.n + max(a.n // 50, 1), st
        remote = RmqAgent(broker.port, "v1", "callee")
        try:
            inbound(gw, remote, sub, a.n, a.size, a.window)
            measure(gw, f"inbound {a.n} x {a.size} B", rows)
            rpc_out(caller, remote, a.rpc, a.window)
            measure(gw, f"rpc-out {a.rpc}", rows)
            rpc_in(callee, remote, name, a.rpc, a.window)
            measure(gw, f"rpc-in {a.rpc}", rows)
        finally:
            remote.close()
        st = gw.stats()
        assert st["amqp_publish_in"] >= a.n and st["amqp_rpc_out"] >= 2 * a.rpc and st["amqp_rpc_in"] >= 2 * a.rpc, st
    finally:
        gw.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20000, help="publishes per pubsub phase")
    p.add_argument("--size", type=int, default=1024, help="message bytes of a publish")
    p.add_argument("--rpc", type=int, default=2000, help="round trips per RPC phase")
    p.add_argument("--window", type=int, default=64, help="messages in flight")
    p.add_argument("--idle-s", type=float, default=6.0, help="seconds of silence before the idle figure")
    a = p.parse_args()
    if not Broker.available():
        print("rabbitmq-server is not installed (apt-get install -y --no-install-recommends rabbitmq-server)")
        return 2
    print(f"router: {os.environ.get('VIPROUTER_BIN')}", flush=True)
    rows: list[Row] = []
    b = Broker("m").start()
    try:
        b.setup_vhost()
        run(None, a, rows)
        run(b, a, rows)
    finally:
        b.close()
    print("| router | phase | VmRSS KiB | VmHWM KiB | buffer_bytes KiB | buffer_bytes_hwm KiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['router']} | {r['phase']} | {r['rss']} | {r['hwm']} | {r['buf']} | {r['buf_hwm']} |")
    last = rows[-1]["stats"]
    assert isinstance(last, dict)
    print("bridge counters:", {k: v for k, v in last.items() if k.startswith("amqp_") and v})
    return 0


if __name__ == "__main__":
    sys.exit(main())
