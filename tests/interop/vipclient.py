"""VIP agent helpers on real libzmq (pyzmq) sockets, shared by the interop tests.

Every receive is bounded by a poll timeout; no helper can block forever.
Frames are always bytes.  DEALER-side views are used throughout:
  written: [RECIPIENT, b"VIP1", USER_ID, MSG_ID, SUBSYSTEM, *ARGS]
  read:    [SENDER,    b"VIP1", USER_ID, MSG_ID, SUBSYSTEM, *ARGS]
"""
import time

import zmq

VIP = b"VIP1"
TIMEOUT = 5.0  # default bound for any expected message
SEND_TIMEOUT_MS = 10000  # a blocking send that cannot enqueue for this long raises zmq.Again
# Identities used by the fixture's readiness probe.  Their peerlist add/drop
# notifications are harness noise and are filtered out of every recv().
PROBE_PREFIX = b"_probe-"


def b(x):
    if isinstance(x, bytes):
        return x
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    return str(x).encode("latin-1")


def fmt(frames, limit=48):
    """Readable, bounded rendering of a multipart message for assertion texts."""
    if frames is None:
        return "None"
    out = []
    for f in frames:
        if len(f) > limit:
            out.append(f"<{len(f)} bytes {f[:16]!r}...>")
        else:
            out.append(repr(f))
    return "[" + ", ".join(out) + "]"


def is_probe_noise(frames):
    return (
        len(frames) == 7
        and frames[0] == b""
        and frames[1] == VIP
        and frames[4] == b"peerlist"
        and frames[5] in (b"add", b"drop")
        and frames[6].startswith(PROBE_PREFIX)
    )


class Agent:
    """A VOLTTRON-style agent: a DEALER whose ROUTING_ID is its VIP identity."""

    def __init__(self, ctx, endpoint, identity, sockopts=None, sock_type=zmq.DEALER):
        self.identity = b(identity)
        self.endpoint = endpoint
        self.sock = ctx.socket(sock_type)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)  # no send may block forever either
        self.sock.setsockopt(zmq.ROUTING_ID, self.identity)
        for k, v in (sockopts or {}).items():
            self.sock.setsockopt(k, v)
        self.sock.connect(endpoint)
        self.closed = False

    def __repr__(self):
        return f"Agent({self.identity!r} @ {self.endpoint})"

    # ---------------------------------------------------------------- send
    def send(self, recipient, subsystem, *args, msgid=b"", user=b"", proto=VIP, flags=0):
        frames = [b(recipient), b(proto), b(user), b(msgid), b(subsystem)] + [b(a) for a in args]
        self.sock.send_multipart(frames, flags=flags)

    def send_raw(self, frames, flags=0):
        self.sock.send_multipart([b(f) for f in frames], flags=flags)

    # ---------------------------------------------------------------- recv
    def poll_recv(self, timeout=TIMEOUT, keep_noise=False):
        """Next message, or None after `timeout` seconds.  Probe noise is skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left < 0:
                left = 0
            if self.sock.poll(int(left * 1000), zmq.POLLIN):
                frames = self.sock.recv_multipart()
                if not keep_noise and is_probe_noise(frames):
                    continue
                return frames
            if left <= 0:
                return None

    def recv(self, timeout=TIMEOUT, what="a message"):
        frames = self.poll_recv(timeout)
        assert frames is not None, f"{self.identity!r}: no {what} within {timeout} s"
        return frames

    def expect_silence(self, timeout=0.5, why=""):
        frames = self.poll_recv(timeout)
        assert frames is None, (
            f"{self.identity!r}: expected no message{' (' + why + ')' if why else ''}, got {fmt(frames)}"
        )

    def recv_matching(self, pred, timeout=TIMEOUT, what="matching message"):
        """Skip messages until pred(frames) is true; returns (frames, skipped)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            left = deadline - time.monotonic()
            frames = self.poll_recv(max(left, 0))
            assert frames is not None, (
                f"{self.identity!r}: no {what} within {timeout} s; skipped {len(skipped)}: {[fmt(s) for s in skipped][:3]}"
            )
            if pred(frames):
                return frames, skipped
            skipped.append(frames)
            assert time.monotonic() < deadline, (
                f"{self.identity!r}: no {what} within {timeout} s; skipped {len(skipped)}: "
                f"{[fmt(s) for s in skipped][:3]}"
            )

    # ------------------------------------------------------------ requests
    def hello(self, msgid=b"connect.hello.0", timeout=TIMEOUT):
        """Send hello, assert the exact welcome, return the router's routing id."""
        msgid = b(msgid)
        self.send(b"", b"hello", b"hello", msgid=msgid)
        f = self.recv(timeout, "hello welcome")
        assert len(f) == 9, f"welcome must have 9 frames, got {fmt(f)}"
        assert f[:7] == [b"", VIP, self.identity, msgid, b"hello", b"welcome", b"1.0"], fmt(f)
        assert f[8] == self.identity, fmt(f)
        return f[7]

    def query(self, key, msgid=b"q1", timeout=TIMEOUT):
        """query KEY -> VALUE (asserting the [.., 'query', '', VALUE] layout)."""
        msgid = b(msgid)
        args = [] if key is None else [key]
        self.send(b"", b"query", *args, msgid=msgid)
        f = self.recv(timeout, f"query {key!r} reply")
        assert f[:6] == [b"", VIP, b"", msgid, b"query", b""], fmt(f)
        assert len(f) == 7, f"query reply must have exactly 7 frames: {fmt(f)}"
        return f[6]

    def peerlist(self, msgid=b"L1", timeout=TIMEOUT):
        msgid = b(msgid)
        self.send(b"", b"peerlist", b"list", msgid=msgid)
        f = self.recv(timeout, "peerlist listing")
        assert f[:6] == [b"", VIP, b"", msgid, b"peerlist", b"listing"], fmt(f)
        return f[6:]

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close(linger=0)


def _is_peerlist_note(f):
    return len(f) == 7 and f[0] == b"" and f[4] == b"peerlist" and f[5] in (b"add", b"drop")


def roundtrip(a, b_, payload=b"rt", timeout=TIMEOUT, skip_peerlist=False):
    """a -> b -> a through the router; returns elapsed seconds.  Asserts exact frames.
    With skip_peerlist, peerlist add/drop notifications met on the way are ignored."""
    t0 = time.monotonic()
    msgid = b"rt-%d" % int(t0 * 1e6)

    def get(x, what):
        if skip_peerlist:
            return x.recv_matching(lambda f: not _is_peerlist_note(f), timeout, what)[0]
        return x.recv(timeout, what)

    a.send(b_.identity, b"RPC", payload, msgid=msgid)
    f = get(b_, f"round-trip leg {a.identity!r}->{b_.identity!r}")
    assert f == [a.identity, VIP, a.identity, msgid, b"RPC", payload], fmt(f)
    b_.send(a.identity, b"RPC", payload, msgid=msgid)
    f = get(a, f"round-trip leg {b_.identity!r}->{a.identity!r}")
    assert f == [b_.identity, VIP, b_.identity, msgid, b"RPC", payload], fmt(f)
    return time.monotonic() - t0


def peerlist_note(op, ident):
    """A router-generated peerlist notification, DEALER-side."""
    return [b"", VIP, b"", b"", b"peerlist", b(op), b(ident)]
