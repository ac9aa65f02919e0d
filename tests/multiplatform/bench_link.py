"""Issue #14's measured table: external RPC round trip and external publish throughput over one
link, each against the same thing done locally, in the same run (``make bench-link``).

Two platforms ``p1`` and ``p2`` of one kind (``viprouter``: the bare router with VOLTTRON's
``platform.auth`` beside it; ``volttron``: VOLTTRON 9.0.4's own platform), linked as the tests
link them (``platforms.py``), with real VOLTTRON 9.0.4 ``Agent``s in this process under gevent:

* RPC: ``caller`` on p1 calls ``echo("x")`` on ``callee1`` (p1, local) and on ``callee2`` (p2,
  ``external_platform="p2"``), the two interleaved call by call so that both see the same load;
  p50/p99 of the round trip as the caller sees it (``.get()`` returned).
* Publish: ``pub`` on p1 publishes ``--pubs`` small messages to a subscriber ``sub1`` on p1
  (local) and as many to ``sub2`` on p2 (subscribed with ``all_platforms=True``), alternating
  in chunks of ``--chunk``, at most ``--window`` publishes unanswered at a time; messages/s =
  delivered / (first send .. last arrival, summed over the chunks), and the count delivered and
  the count the publisher was answered (its router's local + remote count).

The agent library (one Python process running the publisher, the caller and the subscribers
under gevent) is the bottleneck: these figures are what a VOLTTRON agent sees, not the router's
capacity (``make bench`` measures the router with libzmq clients). With ``--rounds N`` the kinds
are measured alternately N times; compare ratios from the same round only (the host is shared).

Usage: ``.venv-volttron9/bin/python tests/multiplatform/bench_link.py --kind viprouter --kind
volttron --rounds 2`` (``VIPROUTER_BIN``: the release binary).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

import gevent
import gevent.event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from volttron.platform.vip.agent import RPC, Agent  # noqa: E402

from agents import auth_for, link_peers, start_agent, stop_agent, wait_for  # noqa: E402
from bench_raw import bench_raw_publish, bench_raw_rpc  # noqa: E402
from platforms import KeyPair, Platform, make_pair  # noqa: E402

P1_AGENTS = ["caller", "callee1", "pub", "sub1"]
P2_AGENTS = ["callee2", "sub2"]
# The raw libzmq clients of bench_raw.py (auth.json entries only; no Agent).
P1_RAW = ["rawcaller", "rawcallee1", "rawpub", "rawsub1"]
P2_RAW = ["rawcallee2", "rawsub2"]


class Echo(Agent):
    """The callee: returns its argument."""

    @RPC.export
    def echo(self, data: Any) -> Any:
        return data


@dataclass
class Counter:
    """Publishes a subscriber got on one topic, and when the last one arrived."""

    topic: str
    n: int = 0
    last: float = 0.0
    probes: int = 0

    def callback(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        if topic == self.topic:
            self.n += 1
            self.last = time.perf_counter()
        else:
            self.probes += 1


@dataclass
class Result:
    kind: str
    round: int
    rpc_calls: int
    rpc_local_ms: Dict[str, float] = field(default_factory=dict)
    rpc_external_ms: Dict[str, float] = field(default_factory=dict)
    pub_local: Dict[str, float] = field(default_factory=dict)
    pub_external: Dict[str, float] = field(default_factory=dict)
    raw_local_ms: Dict[str, float] = field(default_factory=dict)
    raw_external_ms: Dict[str, float] = field(default_factory=dict)
    raw_pub_local: Dict[str, float] = field(default_factory=dict)
    raw_pub_external: Dict[str, float] = field(default_factory=dict)


def percentile(values: List[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary_ms(samples: List[float]) -> Dict[str, float]:
    ms = [v * 1000.0 for v in samples]
    return {"p50": percentile(ms, 0.5), "p99": percentile(ms, 0.99), "mean": statistics.fmean(ms)}


def bench_rpc(caller: Agent, calls: int, warmup: int) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Local and external round trips of ``echo("x")``, interleaved call by call."""
    local: List[float] = []
    external: List[float] = []
    for i in range(warmup + calls):
        t0 = time.perf_counter()
        caller.vip.rpc.call("callee1", "echo", "x").get(timeout=30)
        t1 = time.perf_counter()
        caller.vip.rpc.call("callee2", "echo", "x", external_platform="p2").get(timeout=30)
        t2 = time.perf_counter()
        if i >= warmup:
            local.append(t1 - t0)
            external.append(t2 - t1)
    return summary_ms(local), summary_ms(external)


def until_subscribed(pub: Agent, probe_topic: str, sub: Counter, timeout: float = 20.0) -> None:
    """Publish probes until one arrives (a remote subscription takes a moment to propagate)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = sub.probes
        pub.vip.pubsub.publish("pubsub", probe_topic, headers={}, message="probe").get(timeout=10)
        if wait_for(lambda: sub.probes > seen, 1.0, step=0.02):
            return
    raise RuntimeError(f"no probe on {probe_topic} arrived in {timeout} s")


def publish_chunk(pub: Agent, sub: Counter, count: int, window: int) -> Tuple[int, int, float]:
    """``count`` publishes on ``sub.topic``, at most ``window`` unanswered, then until the
    subscriber has them all or is quiet for 2 s: (delivered, publisher's count, seconds from the
    first send to the last arrival)."""
    pending: List[Any] = []
    answered = 0
    payload = {"v": 1.5, "units": "degF"}
    target = sub.n + count
    first = sub.n
    t0 = time.perf_counter()
    for _ in range(count):
        pending.append(pub.vip.pubsub.publish("pubsub", sub.topic, headers={}, message=payload))
        if len(pending) >= window:
            answered += int(pending.pop(0).get(timeout=30))
    for r in pending:
        answered += int(r.get(timeout=30))
    while sub.n < target:
        before = sub.n
        if not wait_for(lambda: sub.n > before, 2.0, step=0.005):
            break
    got = sub.n - first
    return got, answered, (sub.last - t0) if got else 0.0


def bench_publish(pub: Agent, subs: List[Counter], count: int, window: int, chunk: int) -> List[Dict[str, float]]:
    """``count`` publishes to each subscriber, in chunks of ``chunk`` alternating between them
    (so that every path sees the same load); messages/s = delivered / time to deliver."""
    totals = [[0, 0, 0.0] for _ in subs]
    done = 0
    while done < count:
        n = min(chunk, count - done)
        for t, sub in zip(totals, subs):
            got, answered, secs = publish_chunk(pub, sub, n, window)
            t[0] += got
            t[1] += answered
            t[2] += secs
        done += n
    return [
        {"sent": count, "delivered": got, "publisher_count": answered, "msgs_per_s": got / secs if secs > 0 else 0.0}
        for got, answered, secs in totals
    ]


def start_federation(kind: str, tmp: Path, keys: Dict[str, KeyPair]) -> Tuple[Platform, Platform, Dict[str, Agent]]:
    auth = {"p1": [auth_for(n, keys[n]) for n in P1_AGENTS + P1_RAW], "p2": [auth_for(n, keys[n]) for n in P2_AGENTS + P2_RAW]}
    p1, p2 = make_pair((kind, kind), tmp, auth)
    agents: Dict[str, Agent] = {}
    for p in (p1, p2):
        p.launch(tmp)
    try:
        for p in (p1, p2):
            p.wait_ready()
        for n in P1_AGENTS + P2_AGENTS:
            plat = p1 if n in P1_AGENTS else p2
            cls = Echo if n.startswith("callee") else Agent
            agents[n] = start_agent(plat, n, keys[n], tmp / "clients" / n, cls)
        linked = wait_for(
            # each router announces the other's link to it as ``instance.<own name>.…``
            lambda: any(x.startswith("instance.p1.") for x in link_peers(agents["caller"]))
            and any(x.startswith("instance.p2.") for x in link_peers(agents["sub2"])),
            60,
            step=0.5,
        )
        if not linked:
            raise RuntimeError("the platforms did not link")
    except BaseException:
        stop_all(p1, p2, agents)
        raise
    return p1, p2, agents


def stop_all(p1: Platform, p2: Platform, agents: Dict[str, Agent]) -> None:
    for a in agents.values():
        stop_agent(a)
    for p in (p1, p2):
        p.stop()


def run_kind(kind: str, rnd: int, args: argparse.Namespace) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix=f"linkbench-{kind}-"))
    keys = {n: KeyPair.new() for n in P1_AGENTS + P2_AGENTS + P1_RAW + P2_RAW}
    p1, p2, agents = start_federation(kind, tmp, keys)
    ok = False
    try:
        res = Result(kind, rnd, args.calls)
        res.rpc_local_ms, res.rpc_external_ms = bench_rpc(agents["caller"], args.calls, args.warmup)
        if not args.no_raw:
            lo, ex = bench_raw_rpc(p1, p2, keys, args.calls, args.warmup)
            res.raw_local_ms, res.raw_external_ms = summary_ms(lo), summary_ms(ex)
        local, remote = Counter("bench/local/data"), Counter("bench/ext/data")
        agents["sub1"].vip.pubsub.subscribe("pubsub", "bench/local/", local.callback).get(timeout=10)
        agents["sub2"].vip.pubsub.subscribe("pubsub", "bench/ext/", remote.callback, all_platforms=True).get(timeout=10)
        until_subscribed(agents["pub"], "bench/local/probe", local)
        until_subscribed(agents["pub"], "bench/ext/probe", remote)
        res.pub_local, res.pub_external = bench_publish(agents["pub"], [local, remote], args.pubs, args.window, args.chunk)
        if not args.no_raw:
            raw = bench_raw_publish(p1, p2, keys, args.raw_pubs, args.raw_window, args.chunk)
            res.raw_pub_local, res.raw_pub_external = raw
        ok = True
        return res
    finally:
        stop_all(p1, p2, agents)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            sys.stderr.write(f"bench_link: logs kept in {tmp}\n")


def p50_p99(d: Dict[str, float]) -> str:
    return f"{d['p50']:.2f} / {d['p99']:.2f}" if d else "–"


def delivered(d: Dict[str, float]) -> str:
    """msg/s (delivered/sent, the publisher's count): e.g. ``1700 (5000/5000, 5000)``."""
    return f"{d['msgs_per_s']:.0f} ({d['delivered']:.0f}/{d['sent']:.0f}, {d['publisher_count']:.0f})"


def rate(d: Dict[str, float]) -> str:
    return f"{d['msgs_per_s']:.0f} ({d['delivered']:.0f}/{d['sent']:.0f})" if d else "–"


def ratio(a: Dict[str, float], b: Dict[str, float], key: str) -> str:
    return f"{a[key] / b[key]:.2f}" if a and b and b[key] else "–"


def table(results: List[Result]) -> str:
    """Two markdown tables: RPC round trips, publish throughput."""
    rpc = [
        "| round | platforms | agent RPC local p50 / p99 ms | agent RPC external p50 / p99 ms | ext/local p50 "
        "| raw RPC local p50 / p99 ms | raw RPC external p50 / p99 ms | ext/local p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pub = [
        "| round | platforms | agent publish local msg/s (delivered/sent, publisher's count) | agent publish over the link, same "
        "| link/local | raw publish local msg/s (delivered/sent) | raw publish over the link, same | link/local |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = {"viprouter": "viprouter ↔ viprouter", "volttron": "VOLTTRON 9.0.4 ↔ VOLTTRON 9.0.4"}[r.kind]
        lo, ex = r.rpc_local_ms, r.rpc_external_ms
        rpc.append(
            f"| {r.round} | {name} | {p50_p99(lo)} | {p50_p99(ex)} | {ratio(ex, lo, 'p50')} "
            f"| {p50_p99(r.raw_local_ms)} | {p50_p99(r.raw_external_ms)} | {ratio(r.raw_external_ms, r.raw_local_ms, 'p50')} |"
        )
        pub.append(
            f"| {r.round} | {name} | {delivered(r.pub_local)} | {delivered(r.pub_external)} "
            f"| {ratio(r.pub_external, r.pub_local, 'msgs_per_s')} | {rate(r.raw_pub_local)} | {rate(r.raw_pub_external)} "
            f"| {ratio(r.raw_pub_external, r.raw_pub_local, 'msgs_per_s')} |"
        )
    return "\n".join(rpc) + "\n\n" + "\n".join(pub)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", action="append", choices=["viprouter", "volttron"], help="repeatable; default both")
    ap.add_argument("--rounds", type=int, default=1, help="each kind this many times, alternating")
    ap.add_argument("--calls", type=int, default=500, help="RPC calls measured per path")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--pubs", type=int, default=5000, help="publishes per path")
    ap.add_argument("--window", type=int, default=50, help="publishes unanswered at most")
    ap.add_argument("--chunk", type=int, default=500, help="publishes to one path before switching to the other")
    ap.add_argument("--raw-pubs", type=int, default=20000, help="publishes per path by the raw client")
    ap.add_argument("--raw-window", type=int, default=200, help="the raw publisher's publishes unanswered at most")
    ap.add_argument("--no-raw", action="store_true", help="skip the raw libzmq RPC clients (bench_raw.py)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    kinds = args.kind or ["viprouter", "volttron"]
    results: List[Result] = []
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for rnd in range(1, args.rounds + 1):
        for kind in kinds:
            t0 = time.monotonic()
            results.append(run_kind(kind, rnd, args))
            sys.stderr.write(f"[round {rnd}] {kind}: {time.monotonic() - t0:.0f} s\n")
            sys.stderr.write(json.dumps(asdict(results[-1])) + "\n")
    print(f"bench_link {' '.join(sys.argv[1:])} — {started}; calls {args.calls}, publishes {args.pubs}, window {args.window}, chunk {args.chunk}\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
