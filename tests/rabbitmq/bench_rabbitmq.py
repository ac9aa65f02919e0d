"""Issue #15 deliverable 4, first half (``make bench-rabbitmq``): external RPC round trip and
exported publish throughput between two instances through one RabbitMQ broker, for two viprouter
gateways and for two VOLTTRON 9.0.4 RabbitMQ-bus instances, in the same run on the same private
broker (the shape of tests/multiplatform/bench_link.py, the ZMQ-link analogue).

In both kinds the agents are the same VOLTTRON 9.0.4 ``Agent``s (vt9_rmq.py: ``caller``,
``callee``, ``listener`` per instance, one process per instance, under gevent):

* ``viprouter``: gateways ``ga`` and ``gb`` (the release binary, ``rabbitmq-export =
  devices/``), the agents on each gateway's ZMQ bus (``zmqagents``, its ipc socket);
  the path is agent → ga → broker → gb → agent.
* ``volttron``: instances ``v1`` and ``v2`` with ``message-bus = rmq`` (VOLTTRON's own RMQRouter
  per instance, ``ssl: false``), the agents on the RabbitMQ bus; the path is agent → broker →
  agent (VOLTTRON's RMQ agents hold their own broker connections).

Measured: RPC, ``caller`` on the first instance calls ``echo("x")`` on ``callee`` of the second
(``external_platform``), one call at a time, p50/p99 of the round trip as the caller sees it.
Publish, ``caller`` on the first publishes ``--pubs`` small messages on ``devices/bench/…`` (at
most ``--window`` unanswered), ``listener`` on the second (``all_platforms=True``) counts them;
messages/s = delivered / (first send .. last arrival), summed over chunks of ``--chunk``; also
the count delivered and the sum of the publisher's counts. The kinds run one after the other
(each started and stopped in its round), alternating over ``--rounds``; compare ratios within a
round only: the host is shared, and the agent library is the bottleneck (these are what a
VOLTTRON agent sees, not the router's or the broker's capacity: the CPU each process used in the
publish run is reported, and bench_rabbitmq_raw.py measures the same paths with raw clients
unless ``--no-raw``).

Usage (the interop venv; VT9_VENV, VT9_PIKA, VIPROUTER_BIN as for make test-rabbitmq):
``.venv/bin/python tests/rabbitmq/bench_rabbitmq.py --rounds 2 [--json FILE]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rabbitmq_raw as raw  # noqa: E402
from conftest import Gateway  # noqa: E402
from vt9_harness import (Vt9Instance, Vt9ZmqAgents, add_agent_users, management_broker,  # noqa: E402
                         start_management, vt9_missing)


@dataclass
class Result:
    kind: str
    round: int
    rpc_ms: dict[str, float] = field(default_factory=dict)
    pub: dict[str, float] = field(default_factory=dict)
    # CPU seconds (user + system) during the publish measurement: the publishing instance's
    # agents process, the subscribing one's, the two routers (gateways, or VOLTTRON's RMQRouters)
    # and the broker (its Erlang VM).
    pub_cpu_s: dict[str, float] = field(default_factory=dict)
    # The same without VOLTTRON's agent library (bench_rabbitmq_raw.py).
    raw_rpc_ms: dict[str, float] = field(default_factory=dict)
    raw_pub: dict[str, Any] = field(default_factory=dict)


def cpu_s(pid: int) -> float:
    """utime + stime of process `pid` (proc(5) /proc/PID/stat fields 14 and 15), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary_ms(samples: list[float]) -> dict[str, float]:
    """p50, p99 (statistics' interpolated quantiles) and mean, in ms."""
    ms = [v * 1000.0 for v in samples]
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": statistics.median(ms), "p99": q[98], "mean": statistics.fmean(ms)}


def bench_rpc(first: Vt9Instance, second: str, calls: int, warmup: int) -> dict[str, float]:
    r = first.cmd(timeout=60 + calls, cmd="bench_rpc", platform=second, peer="callee", n=warmup + calls)
    assert "rtt_s" in r, r
    return summary_ms(r["rtt_s"][warmup:])


def wait_delivered(listener: Vt9Instance, topic: str, target: int, quiet: float = 2.0) -> dict[str, Any]:
    """Poll the listener until it has `target` publishes on `topic` or none came for `quiet` s."""
    last = listener.cmd(cmd="counted", topic=topic)
    since = time.monotonic()
    while last["n"] < target and time.monotonic() - since < quiet:
        time.sleep(0.02)
        now = listener.cmd(cmd="counted", topic=topic)
        if now["n"] > last["n"]:
            since = time.monotonic()
        last = now
    return last


def bench_publish(first: Vt9Instance, listener: Vt9Instance, topic: str, args: argparse.Namespace) -> dict[str, float]:
    got, answered, secs, done = 0, 0, 0.0, 0
    base = listener.cmd(cmd="counted", topic=topic)["n"]
    while done < args.pubs:
        n = min(args.chunk, args.pubs - done)
        r = first.cmd(timeout=120, cmd="bench_pub", topic=topic, n=n, window=args.window)
        assert "t0" in r, r
        c = wait_delivered(listener, topic, base + done + n)
        delivered = c["n"] - (base + got)
        got += delivered
        answered += r["answered"]
        secs += (c["last"] - r["t0"]) if delivered else 0.0
        done += n
    return {"sent": args.pubs, "delivered": got, "publisher_count": answered,
            "msgs_per_s": got / secs if secs > 0 else 0.0}


def warm_publish(first: Vt9Instance, listener: Vt9Instance, topic: str, timeout: float = 30.0) -> None:
    """Publish probes until one arrives (the remote subscription is bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first.cmd(cmd="bench_pub", topic=topic, n=1, window=1)
        if wait_delivered(listener, topic, 1, quiet=0.5)["n"] > 0:
            return
    raise RuntimeError(f"no probe on {topic} arrived in {timeout} s")


def start_kind(kind: str, broker, rnd: int) -> tuple[list[Any], Vt9Instance, Vt9Instance, str, list[Any]]:
    """(things to close, first instance's agents, second instance's agents, second's name, the
    routers' pids, the gateways)."""
    made: list[Any] = []
    gws: list[Gateway] = []
    try:
        if kind == "viprouter":
            names = (f"ga{rnd}", f"gb{rnd}")
            gws = [Gateway(n, broker.url(), export="devices/", verbose=False) for n in names]
            made += gws
            for g in gws:
                g.wait_bridge("up")
            agents = [Vt9ZmqAgents(g.name, f"ipc://@{g.home}/run/vip.socket") for g in gws]
        else:
            names = (f"v1r{rnd}", f"v2r{rnd}")
            for n in names:
                add_agent_users(broker, n)
            agents = [Vt9Instance(broker, n) for n in names]
        made += agents
        for a in agents:
            a.start()
        routers = [g.proc.pid for g in gws] if kind == "viprouter" else [a.procs[1].pid for a in agents]
        return made, agents[0], agents[1], names[1], [routers, gws]
    except BaseException:
        close_all(made)
        raise


def close_all(made: list[Any]) -> None:
    for m in reversed(made):
        try:
            m.close() if hasattr(m, "close") else m.stop()
        except Exception as e:  # noqa: BLE001 - keep closing the rest
            sys.stderr.write(f"bench_rabbitmq: closing {m}: {e}\n")


def run_kind(kind: str, rnd: int, broker, args: argparse.Namespace) -> Result:
    made, first, second, second_name, (routers, gws) = start_kind(kind, broker, rnd)
    try:
        res = Result(kind, rnd)
        res.rpc_ms = bench_rpc(first, second_name, args.calls, args.warmup)
        topic = f"devices/bench/{kind}{rnd}"
        warm_publish(first, second, topic + "/probe")
        pids = {"publisher agents": [first.agents.pid], "subscriber agents": [second.agents.pid], "routers": routers,
                "broker": [broker.beam_pid()]}
        before = {k: sum(cpu_s(p) for p in v) for k, v in pids.items()}
        res.pub = bench_publish(first, second, topic + "/data", args)
        res.pub_cpu_s = {k: sum(cpu_s(p) for p in v) - before[k] for k, v in pids.items()}
        if not args.no_raw:
            run_raw(res, gws, broker, f"devices/bench/raw{kind}{rnd}", args)
        return res
    finally:
        close_all(made)


def cpu_cols(c: dict[str, float]) -> str:
    return " / ".join(f"{c[k]:.2f}" for k in ("publisher agents", "subscriber agents", "routers", "broker"))


def run_raw(res: Result, gws: list[Gateway], broker, topic: str, args: argparse.Namespace) -> None:
    n = args.warmup + args.calls
    if res.kind == "viprouter":
        res.raw_rpc_ms = summary_ms(raw.raw_rpc_viprouter(broker, gws[0], gws[1], n)[args.warmup:])
        res.raw_pub = raw.raw_pub_viprouter(broker, gws[0], gws[1], topic, args.raw_pubs, args.raw_window)
    else:
        res.raw_rpc_ms = summary_ms(raw.raw_rpc_volttron(broker.port, n)[args.warmup:])
        res.raw_pub = raw.raw_pub_volttron(broker.port, topic, args.raw_pubs)


def dropped(r: Result) -> str:
    if r.kind != "viprouter":
        return "–"
    return ", ".join(f"{k} {v}" for k, v in r.raw_pub.get("dropped", {}).items()) or "0"


def raw_table(results: list[Result]) -> str:
    rows = ["| round | path, raw clients (no agent library) | RPC p50 / p99 ms | publish msg/s (delivered/sent) "
            "| dropped by the sending gateway |",
            "|---|---|---|---|---|"]
    name = {"viprouter": "libzmq client → gateway → broker → gateway → libzmq client",
            "volttron": "pika client → broker → pika client (VOLTTRON's RMQ wire format)"}
    for r in results:
        if r.raw_rpc_ms:
            rows.append(f"| {r.round} | {name[r.kind]} | {r.raw_rpc_ms['p50']:.2f} / {r.raw_rpc_ms['p99']:.2f} "
                        f"| {r.raw_pub['msgs_per_s']:.0f} ({r.raw_pub['delivered']:.0f}/{r.raw_pub['sent']:.0f}) "
                        f"| {dropped(r)} |")
    return "\n".join(rows)


def table(results: list[Result]) -> str:
    name = {"viprouter": "viprouter gateway → broker → viprouter gateway",
            "volttron": "VOLTTRON 9.0.4 RMQ bus → broker → VOLTTRON 9.0.4 RMQ bus"}
    rows = [
        "| round | instances on one RabbitMQ 3.10 broker | external RPC p50 / p99 ms | exported publish msg/s "
        "(delivered/sent, publisher's count) | CPU s in the publish run: publishing agents / subscribing "
        "agents / both routers / broker |",
        "|---|---|---|---|---|",
    ]
    by_round: dict[int, dict[str, Result]] = {}
    for r in results:
        by_round.setdefault(r.round, {})[r.kind] = r
        rows.append(f"| {r.round} | {name[r.kind]} | {r.rpc_ms['p50']:.2f} / {r.rpc_ms['p99']:.2f} "
                    f"| {r.pub['msgs_per_s']:.0f} ({r.pub['delivered']:.0f}/{r.pub['sent']:.0f}, "
                    f"{r.pub['publisher_count']:.0f}) | {cpu_cols(r.pub_cpu_s)} |")
    for rnd, k in sorted(by_round.items()):
        if len(k) == 2:
            v, t = k["viprouter"], k["volttron"]
            rows.append(f"| {rnd} | viprouter / VOLTTRON (same round) | {v.rpc_ms['p50'] / t.rpc_ms['p50']:.2f} "
                        f"(p50) | {v.pub['msgs_per_s'] / t.pub['msgs_per_s']:.2f} | |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", action="append", choices=["viprouter", "volttron"], help="repeatable; default both")
    ap.add_argument("--rounds", type=int, default=1, help="each kind this many times, alternating")
    ap.add_argument("--calls", type=int, default=500, help="RPC calls measured")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--pubs", type=int, default=5000, help="publishes measured")
    ap.add_argument("--window", type=int, default=50, help="publishes unanswered at most")
    ap.add_argument("--chunk", type=int, default=500, help="publishes per timed chunk")
    ap.add_argument("--raw-pubs", type=int, default=20000, help="publishes by the raw clients")
    ap.add_argument("--raw-window", type=int, default=200, help="the raw VIP publisher's publishes not yet delivered at most")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw clients (bench_rabbitmq_raw.py)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    missing = vt9_missing()
    if missing:
        sys.stderr.write(f"bench_rabbitmq: {missing}\n")
        return 2
    kinds = args.kind or ["viprouter", "volttron"]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    broker = start_management(management_broker("bench"))
    results: list[Result] = []
    try:
        for rnd in range(1, args.rounds + 1):
            for kind in kinds:
                t0 = time.monotonic()
                results.append(run_kind(kind, rnd, broker, args))
                sys.stderr.write(f"[round {rnd}] {kind}: {time.monotonic() - t0:.0f} s "
                                 f"{json.dumps(asdict(results[-1]))}\n")
    finally:
        broker.close()
    print(f"bench_rabbitmq {' '.join(sys.argv[1:])} — {started}; calls {args.calls}, publishes {args.pubs}, "
          f"window {args.window}, chunk {args.chunk}\n")
    print(table(results))
    if not args.no_raw:
        print("\n" + raw_table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
