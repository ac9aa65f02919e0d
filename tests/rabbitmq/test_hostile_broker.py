"""A hostile broker on amqps: after a `basic.deliver` and a content header announcing 100 body
bytes, it sends empty body frames (type 3, size 0) without end. The client's `content::scan`
keeps waiting for the body's bytes and asks for ever more of them; the router must close the
connection once that is more than its receive-buffer cap (`RX_BUF_MAX_BYTES`, as the plain
`amqp` path does), not buffer the decrypted bytes without bound (the `amqps` path, `pump.rs`
`input_tls`, did until the fix).

No rabbitmq-server: the broker is a fake, an `ssl` server socket in a thread speaking just
enough AMQP 0-9-1 (pika's own codec: `pika.frame`, `pika.spec`) to bring the bridge up —
connection.start (PLAIN; the URL carries user and password), tune, open, channel.open, the
topology (exchange and queue declares, qos, confirm.select, queue.bind…, basic.consume)."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import pika.frame
import pika.spec
import pytest
from conftest import Gateway
from pki import make_pki
from vipclient import roundtrip

pytestmark = pytest.mark.no_rabbitmq_server

# An empty body frame on the consumer's channel (1): type 3, channel, size 0, frame end.
EMPTY_BODY = b"\x03\x00\x01\x00\x00\x00\x00\xce"
# What the broker sends at most: 96 MiB of empty body frames (12 Mi frames).
FLOOD_BYTES = 96 << 20
# The router closes once the delivery asks for more than RX_BUF_MAX_BYTES (16 MiB and a bit):
# its resident set may grow by about that (the plaintext buffer) and not much more.
GROWTH_BOUND_KIB = 40 << 10
# The flood, and the close, within this (the fixed router takes a second or two).
FLOOD_TIMEOUT_S = 20.0


def method(channel: int, m) -> bytes:
    return pika.frame.Method(channel, m).marshal()


class FakeBroker:
    """An amqps listener on 127.0.0.1: every connection is answered as RabbitMQ would answer
    viprouter's bridge (each method the client sends gets its -Ok), until `flood` is set on a
    connection whose consumer is running: that connection then gets one `basic.deliver`, a
    content header of 100 bytes, and empty body frames as fast as it takes them."""

    def __init__(self, pki: Path):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki / "server-ca.pem", pki / "server-ca.key")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0  # TLS sessions accepted
        self.consumers = 0  # connections that reached basic.consume-ok
        self.methods: list[str] = []  # what the client sent, in order (all connections)
        self.flood = threading.Event()  # the test asks for the flood (once)
        self.stop = threading.Event()  # the test stops it (or the broker)
        self.flood_sent = 0  # empty-body bytes sent
        self.flood_end: str | None = None  # how it ended: "closed by the router: …", "cap", "stopped"
        self.flood_done = threading.Event()
        self.errors: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                with self.lock:
                    self.connections += 1
                self._session(conn)
        except (OSError, EOFError) as e:  # the router closed, or the test ended
            if not self.stop.is_set() and not isinstance(e, (ConnectionResetError, BrokenPipeError)):
                self.errors.append(repr(e))

    def _session(self, conn: ssl.SSLSocket) -> None:
        conn.settimeout(0.05)
        buf = b""
        consumer_tag = ""
        while not self.stop.is_set():
            if consumer_tag and self.flood.is_set() and not self.flood_done.is_set():
                self._flood(conn, consumer_tag)
                return
            try:
                data = conn.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if not data:
                return
            buf += data
            while True:
                n, frame = pika.frame.decode_frame(buf)
                if not n:
                    break
                buf = buf[n:]
                if isinstance(frame, pika.frame.ProtocolHeader):
                    props = {"product": "hostile-broker", "capabilities": {"publisher_confirms": True}}
                    conn.sendall(method(0, pika.spec.Connection.Start(server_properties=props, mechanisms="PLAIN")))
                elif isinstance(frame, pika.frame.Method):
                    reply = self._reply(frame.method)
                    with self.lock:
                        self.methods.append(frame.method.NAME)
                    if reply is not None:
                        conn.sendall(method(frame.channel_number, reply))
                    if isinstance(frame.method, pika.spec.Basic.Consume):
                        consumer_tag = frame.method.consumer_tag or "ctag-hostile"
                        with self.lock:
                            self.consumers += 1
                    if isinstance(frame.method, pika.spec.Connection.Close):
                        return
                # Heartbeats and anything else: nothing to answer.

    @staticmethod
    def _reply(m):
        """The -Ok RabbitMQ answers `m` with (None: no answer)."""
        s = pika.spec
        if isinstance(m, s.Connection.StartOk):
            # heartbeat 60: the client keeps its own 20 s (the lower); frame-max as RabbitMQ's.
            return s.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60)
        if isinstance(m, s.Queue.Declare):
            return s.Queue.DeclareOk(queue=m.queue, message_count=0, consumer_count=0)
        if isinstance(m, s.Basic.Consume):
            return s.Basic.ConsumeOk(consumer_tag=m.consumer_tag or "ctag-hostile")
        simple = {
            s.Connection.Open: s.Connection.OpenOk,
            s.Connection.Close: s.Connection.CloseOk,
            s.Channel.Open: s.Channel.OpenOk,
            s.Channel.Close: s.Channel.CloseOk,
            s.Exchange.Declare: s.Exchange.DeclareOk,
            s.Queue.Bind: s.Queue.BindOk,
            s.Queue.Unbind: s.Queue.UnbindOk,
            s.Basic.Qos: s.Basic.QosOk,
            s.Confirm.Select: s.Confirm.SelectOk,
        }
        ok = simple.get(type(m))
        return ok() if ok is not None else None

    def _flood(self, conn: ssl.SSLSocket, consumer_tag: str) -> None:
        """One delivery of 100 announced body bytes, then empty body frames only."""
        conn.settimeout(5.0)  # a router that stops reading is not "closed"
        deliver = pika.spec.Basic.Deliver(consumer_tag=consumer_tag, delivery_tag=1, redelivered=False,
                                          exchange="volttron", routing_key="__pubsub__.v1.devices.x")
        head = method(1, deliver) + pika.frame.Header(1, 100, pika.spec.BasicProperties()).marshal()
        chunk = EMPTY_BODY * 8192  # 64 KiB
        try:
            conn.sendall(head)
            while self.flood_sent < FLOOD_BYTES:
                if self.stop.is_set():
                    self.flood_end = "stopped"
                    return
                conn.sendall(chunk)
                self.flood_sent += len(chunk)
            self.flood_end = "cap"
        except TimeoutError:
            self.flood_end = "the router stopped reading"
        except OSError as e:  # reset, broken pipe, or an SSL error on the closed socket
            self.flood_end = f"closed by the router: {e!r}"
        finally:
            self.flood_done.set()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def vm_kib(pid: int, field: str) -> int:
    """`field` (VmRSS, VmHWM) of process `pid`, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@pytest.fixture
def hostile():
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = Path(tempfile.mkdtemp(prefix="viprouter-hostile-pki-", dir="/tmp"))
    make_pki(d, "ca", "unused")
    fb = FakeBroker(d)
    try:
        yield fb, d
    finally:
        fb.close()
        shutil.rmtree(d, ignore_errors=True)


def test_empty_body_frames_close_the_amqps_connection(hostile, gateways):
    fb, d = hostile
    gw: Gateway = gateways("gwh", f"amqps://u:p@127.0.0.1:{fb.port}/volttron",
                           extra=f"rabbitmq-ca-file = {d / 'ca.pem'}\n")
    # Two local agents (each one a queue binding), then the bridge up with every binding bound:
    # nothing more for the fake broker to answer once it floods.
    a, b = gw.agent("bystander-a"), gw.agent("bystander-b")
    deadline = time.monotonic() + 15
    while True:
        br = gw.bridge()
        if br.get("state") == "up" and br.get("bound") == br.get("bindings") and fb.consumers == 1:
            break
        assert time.monotonic() < deadline, f"bridge not up: {br} {fb.methods} {fb.errors}\n{gw.log_tail()}"
        time.sleep(0.05)
    assert "Basic.Consume" in fb.methods and "Confirm.Select" in fb.methods, fb.methods
    base_kib = vm_kib(gw.proc.pid, "VmRSS")
    st0 = gw.stats()

    # The flood; the router's resident set watched meanwhile (VmHWM catches a peak between two
    # samples). A router that keeps buffering is stopped at the bound (the test then fails).
    t0 = time.monotonic()
    fb.flood.set()
    peak_kib = base_kib
    while not fb.flood_done.wait(0.02):
        peak_kib = max(peak_kib, vm_kib(gw.proc.pid, "VmRSS"))
        if peak_kib - base_kib > GROWTH_BOUND_KIB or time.monotonic() - t0 > FLOOD_TIMEOUT_S:
            fb.stop.set()
            fb.flood_done.wait(10)
            break
    elapsed = time.monotonic() - t0
    assert gw.proc.poll() is None, f"the router died:\n{gw.log_tail()}"
    peak_kib = max(peak_kib, vm_kib(gw.proc.pid, "VmHWM"))
    report = (f"base RSS {base_kib} KiB, peak {peak_kib} KiB (+{(peak_kib - base_kib) >> 10} MiB), "
              f"{fb.flood_sent >> 20} MiB of empty body frames sent in {elapsed:.1f} s, end: {fb.flood_end}")
    print(report)
    assert fb.flood_end and fb.flood_end.startswith("closed by the router"), report
    assert peak_kib - base_kib <= GROWTH_BOUND_KIB, report
    # It closed at the cap (16 MiB and a bit, plus what was in flight), not at once.
    assert 16 << 20 <= fb.flood_sent < 40 << 20, report

    # Logged at warn with the reason (the broker's fault, as its other protocol errors) and
    # counted: one protocol error, and the bridge went down once, from up.
    log = gw.log()
    assert "RabbitMQ bridge: closing the connection to" in log and ": message exceeds the size limit" in log, \
        gw.log_tail()
    assert "is down (closed)" in log, gw.log_tail()
    st = gw.stats()
    assert st["amqp_protocol_errors"] == st0["amqp_protocol_errors"] + 1, st
    assert st["amqp_downs"] == st0["amqp_downs"] + 1, st
    assert st["rabbitmq"]["last_down"] == "closed" and st["rabbitmq"]["downs"] == 1, st

    # Every other peer keeps working: a round trip between the two agents, a peerlist.
    roundtrip(a, b, skip_peerlist=True)
    a.send(b"", b"peerlist", b"list", msgid=b"L1")
    f = a.recv_matching(lambda f: f[4:6] == [b"peerlist", b"listing"], 5, "peerlist listing")[0]
    assert {b"bystander-a", b"bystander-b"} <= set(f[6:]), f

    # The bridge dials again (back-off from 250 ms) and comes up on a fresh connection.
    deadline = time.monotonic() + 10
    while not (fb.consumers >= 2 and gw.bridge().get("state") == "up"):
        assert time.monotonic() < deadline, f"no reconnect: {gw.bridge()} {fb.connections}\n{gw.log_tail()}"
        time.sleep(0.05)
    assert fb.connections >= 2 and gw.bridge()["ups"] == 2, gw.bridge()
    assert not fb.errors, fb.errors
