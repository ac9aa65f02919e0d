"""Hand-built ZMTP 3.x bytes over a raw socket (ZMTP.md §2, §3, §4, §5, §12.4)."""
import socket
import struct
import time

SIGNATURE = b"\xff" + b"\x00" * 7 + b"\x01\x7f"


def greeting(mechanism=b"NULL", major=3, minor=1, signature=SIGNATURE, as_server=0):
    return signature + bytes([major, minor]) + mechanism.ljust(20, b"\x00") + bytes([as_server]) + b"\x00" * 31


NULL_GREETING = greeting()
assert len(NULL_GREETING) == 64
assert NULL_GREETING[:16] == bytes.fromhex("ff00000000000000017f03014e554c4c")


def frame(body, more=False, command=False, force_long=False):
    flags = (0x01 if more else 0) | (0x04 if command else 0)
    if len(body) > 255 or force_long:
        return bytes([flags | 0x02]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def command(name, data=b""):
    return frame(bytes([len(name)]) + name + data, command=True)


def metadata(props):
    out = b""
    for name, value in props:
        out += bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
    return out


def ready(socket_type=b"DEALER", identity=b"evil", extra=()):
    props = [(b"Socket-Type", socket_type)]
    if identity is not None:
        props.append((b"Identity", identity))
    props += list(extra)
    return command(b"READY", metadata(props))


# ZMTP.md §12.4 vector: DEALER READY id=agent1
assert ready(identity=b"agent1") == bytes.fromhex(
    "042f055245414459 0b536f636b65742d54797065 00000006 4445414c4552 084964656e74697479 00000006 6167656e7431"
    .replace(" ", ""))


def message(frames):
    out = b""
    for i, f in enumerate(frames):
        out += frame(f, more=i < len(frames) - 1)
    return out


def parse_metadata(data):
    props = {}
    i = 0
    while i < len(data):
        n = data[i]
        name = data[i + 1:i + 1 + n]
        i += 1 + n
        (vl,) = struct.unpack(">I", data[i:i + 4])
        i += 4
        props[name.decode("ascii").lower()] = data[i:i + vl]
        i += vl
    return props


class Closed(Exception):
    pass


class RawConn:
    """A raw stream socket to the router (TCP or abstract unix)."""

    def __init__(self, endpoint, timeout=5.0):
        if endpoint.startswith("tcp://"):
            host, port = endpoint[6:].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
            self.local = "%s:%d" % self.sock.getsockname()[:2]
        elif endpoint.startswith("ipc://@"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect("\0" + endpoint[len("ipc://@"):])
            self.local = None
        else:
            raise ValueError(endpoint)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed("reset")
        if not chunk:
            raise Closed("eof")
        self.buf += chunk

    def recv_exact(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"wanted {n} bytes, have {len(self.buf)}")
            self._fill(left)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=5.0):
        """-> (flags, body)"""
        flags = self.recv_exact(1, timeout)[0]
        if flags & 0x02:
            (size,) = struct.unpack(">Q", self.recv_exact(8, timeout))
        else:
            size = self.recv_exact(1, timeout)[0]
        assert size < 64 * 1024 * 1024, f"router sent a frame of {size} bytes"
        return flags, self.recv_exact(size, timeout)

    def read_command(self, timeout=5.0):
        flags, body = self.read_frame(timeout)
        assert flags & 0x04, f"expected a command frame, got flags {flags:#x} body {body[:32]!r}"
        n = body[0]
        return body[1:1 + n], body[1 + n:]

    def read_message(self, timeout=5.0, commands=None):
        """Next data message (list of frames); commands met on the way go to `commands` (list)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            flags, body = self.read_frame(max(deadline - time.monotonic(), 0.01))
            if flags & 0x04:
                if commands is not None:
                    commands.append(body)
                continue
            frames.append(body)
            if not flags & 0x01:
                return frames

    def handshake(self, identity=b"evil", socket_type=b"DEALER", timeout=5.0):
        """Full NULL handshake; returns the router's READY properties (lower-case names)."""
        self.send(NULL_GREETING + ready(socket_type, identity))
        g = self.recv_exact(64, timeout)
        check_router_greeting(g)
        name, data = self.read_command(timeout)
        assert name == b"READY", f"expected READY from router, got {name!r}"
        return parse_metadata(data)

    def expect_closed(self, timeout=3.0):
        """Read (and discard) until the router closes; assert it does within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"router did not close the connection within {timeout} s")
            try:
                self._fill(left)
                self.buf = b""
            except Closed:
                return
            except socket.timeout:
                continue

    def close(self, reset=False):
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.sock.close()


def check_router_greeting(g):
    assert len(g) == 64
    assert g[0] == 0xFF and g[9] & 1, f"bad router signature {g[:10].hex()}"
    assert g[10] >= 3, f"router major version {g[10]}"
    assert g[12:32] == b"NULL".ljust(20, b"\x00"), f"router mechanism {g[12:32]!r}"
