"""The router's own share of ``bench_link.py``'s RPC round trip: the same two paths (local, and
over the link with ``external_rpc send_platform``) driven by raw libzmq VIP clients (pyzmq
DEALERs with CURVE, blocking, no gevent, no JSON-RPC machinery), so what is left is the routers
and the link. Frames as ``../shared/research/multiplatform.md`` §2.5 observed them between real
9.0.4 agents and routers: the caller sends ``['', VIP1, '', M, 'external_rpc', 'send_platform',
{"to_platform", "to_peer", "from_platform", "from_peer", "args"}]``; the callee gets it as
``send_peer`` and answers with ``send_platform`` back to ``from_platform``/``from_peer``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Dict, List, Optional, Tuple

import zmq

from platforms import KeyPair, Platform, z85_key

VIP = b"VIP1"
TIMEOUT_MS = 30000


def dealer(ctx: "zmq.Context[zmq.Socket[bytes]]", platform: Platform, identity: str, keys: KeyPair) -> "zmq.Socket[bytes]":
    """A CURVE DEALER with ``identity`` as its routing id, connected to ``platform``, after its
    ``hello`` was answered (the router knows the peer)."""
    s: "zmq.Socket[bytes]" = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, identity.encode())
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.curve_serverkey = z85_key(platform.keys.public)
    s.curve_publickey = z85_key(keys.public)
    s.curve_secretkey = z85_key(keys.secret)
    s.connect(platform.address)
    s.send_multipart([b"", VIP, b"", b"hello.0", b"hello", b"hello"])
    while s.recv_multipart()[4] != b"hello":
        pass
    return s


def answer(sock: "zmq.Socket[bytes]", frames: List[bytes]) -> None:
    """The echo callee's reply to one message (anything else is ignored: peerlist notes)."""
    if frames[4] == b"RPC":
        sock.send_multipart([frames[0], VIP, b"", frames[3], b"RPC"] + frames[5:])
    elif frames[4] == b"external_rpc" and frames[5] == b"send_peer":
        req = json.loads(frames[6])
        body = {"to_platform": req["from_platform"], "to_peer": req["from_peer"], "from_platform": "", "from_peer": "", "args": req["args"]}
        sock.send_multipart([b"", VIP, b"", frames[3], b"external_rpc", b"send_platform", json.dumps(body).encode()])


def serve(socks: List["zmq.Socket[bytes]"], stop: threading.Event) -> None:
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    while not stop.is_set():
        for s, _ in poller.poll(100):
            answer(s, s.recv_multipart())


def until_reply(sock: "zmq.Socket[bytes]", subsystem: bytes, msgid: bytes) -> None:
    """Until the reply arrives: the local one by its MSG_ID, the external one by its subsystem
    (a 9.0.4 router re-packs an external RPC's MSG_ID, multiplatform.md §2.5)."""
    while True:
        f = sock.recv_multipart()
        if f[4] == subsystem and (subsystem != b"RPC" or f[3] == msgid):
            return


def bench_raw_rpc(
    p1: Platform, p2: Platform, keys: Dict[str, KeyPair], calls: int, warmup: int
) -> Tuple[List[float], List[float]]:
    """Interleaved local and external round trips from ``rawcaller`` (p1) to ``rawcallee1`` (p1)
    and ``rawcallee2`` (p2), in seconds."""
    ctx = zmq.Context()
    stop = threading.Event()
    thread: Optional[threading.Thread] = None
    try:
        caller = dealer(ctx, p1, "rawcaller", keys["rawcaller"])
        callees = [dealer(ctx, p1, "rawcallee1", keys["rawcallee1"]), dealer(ctx, p2, "rawcallee2", keys["rawcallee2"])]
        thread = threading.Thread(target=serve, args=(callees, stop), daemon=True)
        thread.start()
        ext_body = {"to_platform": "p2", "to_peer": "rawcallee2", "from_platform": "", "from_peer": "", "args": ['{"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": "1"}']}
        ext = json.dumps(ext_body).encode()
        local: List[float] = []
        external: List[float] = []
        for i in range(warmup + calls):
            m = b"%d" % i
            t0 = time.perf_counter()
            caller.send_multipart([b"rawcallee1", VIP, b"", m + b"l", b"RPC", b"x"])
            until_reply(caller, b"RPC", m + b"l")
            t1 = time.perf_counter()
            caller.send_multipart([b"", VIP, b"", m + b"e", b"external_rpc", b"send_platform", ext])
            until_reply(caller, b"external_rpc", m + b"e")
            t2 = time.perf_counter()
            if i >= warmup:
                local.append(t1 - t0)
                external.append(t2 - t1)
        return local, external
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
        ctx.destroy(linger=0)


PUB_BODY = b'{"bus": "", "headers": {"min_compatible_version": "3.0", "max_compatible_version": ""}, "message": {"v": 1.5, "units": "degF"}}'


def subscribe(sock: "zmq.Socket[bytes]", prefix: str, all_platforms: bool) -> None:
    body = json.dumps({"prefix": prefix, "bus": "", "all_platforms": all_platforms}).encode()
    sock.send_multipart([b"", VIP, b"", b"sub", b"pubsub", b"subscribe", body])
    while sock.recv_multipart()[3] != b"sub":
        pass


class Arrivals:
    """Publishes a raw subscriber got per topic, and when the last arrived (its own thread)."""

    def __init__(self) -> None:
        self.n: Dict[bytes, int] = {}
        self.last = 0.0

    def run(self, socks: List["zmq.Socket[bytes]"], stop: threading.Event) -> None:
        poller = zmq.Poller()
        for s in socks:
            poller.register(s, zmq.POLLIN)
        while not stop.is_set():
            for s, _ in poller.poll(100):
                f = s.recv_multipart()
                if f[4:6] == [b"pubsub", b"publish"]:
                    self.n[f[6]] = self.n.get(f[6], 0) + 1
                    self.last = time.perf_counter()


def raw_publish_chunk(pub: "zmq.Socket[bytes]", topic: bytes, count: int, window: int, got: Arrivals) -> Tuple[int, float]:
    """``count`` publishes, at most ``window`` unanswered; until all arrived or 2 s quiet:
    (delivered, seconds from the first send to the last arrival)."""
    first = got.n.get(topic, 0)
    sent = answered = 0
    t0 = time.perf_counter()
    while answered < count:
        while sent < count and sent - answered < window:
            pub.send_multipart([b"", VIP, b"", b"p", b"pubsub", b"publish", topic, PUB_BODY])
            sent += 1
        if pub.recv_multipart()[5:6] == [b"request_response"]:
            answered += 1
    quiet = time.monotonic() + 2.0
    while got.n.get(topic, 0) - first < count and time.monotonic() < quiet:
        before = got.n.get(topic, 0)
        time.sleep(0.005)
        if got.n.get(topic, 0) > before:
            quiet = time.monotonic() + 2.0
    n = got.n.get(topic, 0) - first
    return n, (got.last - t0) if n else 0.0


def bench_raw_publish(
    p1: Platform, p2: Platform, keys: Dict[str, KeyPair], count: int, window: int, chunk: int
) -> List[Dict[str, float]]:
    """``rawpub`` (p1) publishes to ``rawsub1`` (p1) and ``rawsub2`` (p2, ``all_platforms``),
    alternating in chunks as ``bench_link.bench_publish`` does."""
    ctx = zmq.Context()
    stop = threading.Event()
    got = Arrivals()
    thread: Optional[threading.Thread] = None
    try:
        pub = dealer(ctx, p1, "rawpub", keys["rawpub"])
        subs = [dealer(ctx, p1, "rawsub1", keys["rawsub1"]), dealer(ctx, p2, "rawsub2", keys["rawsub2"])]
        subscribe(subs[0], "raw/local/", False)
        subscribe(subs[1], "raw/ext/", True)
        thread = threading.Thread(target=got.run, args=(subs, stop), daemon=True)
        thread.start()
        topics = [b"raw/local/data", b"raw/ext/data"]
        for t in (b"raw/local/probe", b"raw/ext/probe"):  # until the remote subscription is there
            deadline = time.monotonic() + 20
            while not got.n.get(t) and time.monotonic() < deadline:
                raw_publish_chunk(pub, t, 1, 1, got)
        totals = [[0, 0.0] for _ in topics]
        done = 0
        while done < count:
            n = min(chunk, count - done)
            for tot, topic in zip(totals, topics):
                d, secs = raw_publish_chunk(pub, topic, n, window, got)
                tot[0] += d
                tot[1] += secs
            done += n
        return [{"sent": count, "delivered": d, "msgs_per_s": d / s if s > 0 else 0.0} for d, s in totals]
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
        ctx.destroy(linger=0)
