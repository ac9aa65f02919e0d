#!/usr/bin/env python3
"""Write the hand-made seed files `corpus/<target>/seed-*` from the spec vectors.

Input layouts are those documented on the harness functions in src/fuzzing.rs. Run from
anywhere: `python3 tests/fuzz/seeds.py`. Rerunning rewrites the seeds byte-identically;
fuzzer-found files (named by their SHA-1) are left alone.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))


# --- ZMTP building blocks (ZMTP.md §2, §3, §4, §12.4) -------------------------------------

LIBZMQ_NULL_GREETING = bytes([0xFF] + [0] * 7 + [0x01, 0x7F, 3, 1]) + b"NULL".ljust(20, b"\0") + bytes(32)
DEALER_READY_AGENT1 = (
    b"\x04\x2f\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x06agent1"
)


def frame(body, more=False, command=False):
    flags = (1 if more else 0) | (4 if command else 0)
    if len(body) <= 255:
        return bytes([flags, len(body)]) + body
    return bytes([flags | 2]) + struct.pack(">Q", len(body)) + body


def msg(*frames):
    return b"".join(frame(f, more=i < len(frames) - 1) for i, f in enumerate(frames))


def cmd(name, data=b""):
    return frame(bytes([len(name)]) + name + data, command=True)


def prop(name, value):
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


# VIP.md §15 worked examples, DEALER side (what the agent writes).
E1_HELLO = [b"", b"VIP1", b"", b"connect.hello.0", b"hello", b"hello"]
E2_RPC = [
    b"agent.b",
    b"VIP1",
    b"",
    b"1795550813.8764837066011",
    b"RPC",
    b'{"jsonrpc": "2.0", "method": "echo", "params": {"*args": [1], "**kwargs": {"y": "z"}}, '
    b'"id": "1795550813.000000.8764837066011.000000"}',
]
E4_UNREACHABLE = [b"nobody", b"VIP1", b"", b"n1", b"RPC", b"{}"]
E4_UNSUPPORTED = [b"", b"VIP1", b"", b"u1", b"foo", b"bar"]


# --- greeting ---------------------------------------------------------------------------------

def greeting_seeds():
    g = LIBZMQ_NULL_GREETING
    write("greeting", "libzmq-null", g)
    ours = bytearray(g)
    ours[8] = 0
    write("greeting", "viprouter-null", ours)
    curve = bytearray(g)
    curve[12:32] = b"CURVE".ljust(20, b"\0")
    curve[32] = 1
    write("greeting", "curve-as-server", curve)
    write("greeting", "libzmq-staged-11", g[:11])
    zmtp30 = bytearray(g)
    zmtp30[11] = 0
    write("greeting", "zmtp30", zmtp30)
    write("greeting", "zmtp20", bytes([0xFF] + [0] * 7 + [0x01, 0x7F, 1, 5]))
    write("greeting", "zmtp10", bytes([0xFF] + [0] * 7 + [0x01, 0x7E]))
    write("greeting", "http", b"GET / HTTP/1.1\r\n\r\n")


# --- frame_stream: byte 0 = raw:1 preamble:2 chunk_mode:2 limits:3, byte 1 = chunk parameter --

def frame_stream_seeds():
    def w(name, b0, b1, body):
        write("frame_stream", name, bytes([b0, b1]) + body)

    w("e1-hello", 0x00, 0, msg(*E1_HELLO))
    ping_between = (
        frame(b"", more=True) + cmd(b"PING", b"\x00\x00hi") + frame(b"VIP1") + frame(b"z" * 300)
    )
    w("ping-between-frames", 0x04, 6, ping_between)
    w("e2-rpc-bytewise", 0x08, 0, msg(*E2_RPC))
    w("e4-random-chunks", 0x10, 7, msg(*E4_UNREACHABLE) + msg(*E4_UNSUPPORTED))
    w("req-delimiter", 0x20, 3, msg(b"", b"req1") + msg(b"", *E1_HELLO))
    w("router-via", 0x40, 1, msg(*E1_HELLO))
    w("dealer-no-identity", 0x60, 2, msg(b""))
    commands = (
        cmd(b"PONG", b"ctx")
        + cmd(b"SUBSCRIBE", b"topic")
        + cmd(b"CANCEL", b"topic")
        + cmd(b"UNKNOWN")
        + frame(b"", command=True)
        + cmd(b"PING", b"\x01")
        + cmd(b"PING", b"\x00\x0a" + bytes(range(20)))
    )
    w("commands-ignored-and-pong", 0x18, 9, commands + msg(*E1_HELLO))
    raw = LIBZMQ_NULL_GREETING + DEALER_READY_AGENT1 + msg(*E1_HELLO)
    w("raw-libzmq-staged", 0x90, 10, raw)
    w("raw-zmtp20", 0x80, 0, bytes([0xFF] + [0] * 7 + [0x01, 0x7F, 1, 5]))
    mech = bytearray(LIBZMQ_NULL_GREETING)
    mech[12:17] = b"CURVE"
    w("raw-mechanism-mismatch", 0x80, 0, bytes(mech))
    w("raw-data-before-ready", 0x80, 0, LIBZMQ_NULL_GREETING + frame(b"x"))
    w("raw-peer-error", 0x80, 0, LIBZMQ_NULL_GREETING + cmd(b"ERROR", b"\x03400"))
    w(
        "raw-pub-refused",
        0x80,
        0,
        LIBZMQ_NULL_GREETING + cmd(b"READY", prop(b"Socket-Type", b"PUB")),
    )
    w("limits-1mib-long-frame", 0x04, 0, msg(b"", b"VIP1", b"", b"m", b"x" * 2000))
    w("too-many-parts", 0x00, 0, frame(b"", more=True) * 9)
    w("frame-too-large", 0x00, 0, frame(b"y" * 257))
    w("message-too-large", 0x00, 0, frame(b"y" * 200, more=True) + frame(b"y" * 100))
    w("command-too-large", 0x03, 0, frame(b"\x04PING" + bytes(4096), command=True))


# --- command_metadata -------------------------------------------------------------------------

def command_metadata_seeds():
    w = lambda name, data: write("command_metadata", name, data)  # noqa: E731
    dealer = prop(b"Socket-Type", b"DEALER") + prop(b"Identity", b"agent1")
    w("ping", b"\x04PING\x02\x8a")
    w("ping-ctx", b"\x04PING\x00\x00hi")
    w("ping-ctx-20", b"\x04PING\x00\x01" + bytes(range(20)))
    w("ping-no-ttl", b"\x04PING\x01")
    w("pong", b"\x04PONGhello")
    w("ready-dealer", b"\x05READY" + dealer)
    w("ready-router", b"\x05READY" + prop(b"Socket-Type", b"ROUTER") + prop(b"Identity", b""))
    w("error-400", b"\x05ERROR\x03400")
    w("ready-truncated", b"\x05READY\x0bSock")
    w("subscribe", b"\x09SUBSCRIBEtopic")
    w("metadata-dealer", dealer)
    w("metadata-4gib-value", b"\x01a\xff\xff\xff\xff")


# --- vip_route: see fuzz_vip_route's doc ----------------------------------------------------

TOKENS = [
    b"VIP1", b"hello", b"ping", b"peerlist", b"list", b"query", b"stats", b"agentstop", b"quit",
    b"error", b"external_rpc", b"control",
]


def route_setup(*peers):
    out = bytes([len(peers) - 2])
    for slot, ident in peers:
        out += bytes([slot, len(ident)]) + ident
    return out


def route_msg(sender, frames, masks=(0, 0, 0), again=False):
    out = bytes([sender | (4 if again else 0)]) + bytes(masks) + bytes([len(frames)])
    for f in frames:
        if f in TOKENS:
            out += bytes([0xF0 + TOKENS.index(f)])
        else:
            assert len(f) < 0xF0
            out += bytes([len(f)]) + f
    return out


def vip_route_seeds():
    w = lambda name, data: write("vip_route", name, data)  # noqa: E731
    ab = route_setup((0, b"agent.a"), (1, b"agent.b"))
    hello_both = route_msg(0, E1_HELLO) + route_msg(1, E1_HELLO)
    w("e1-hello", ab + hello_both)
    w("e2-rpc", ab + hello_both + route_msg(0, E2_RPC))
    w("e4-errors", ab + route_msg(0, E4_UNREACHABLE) + route_msg(0, E4_UNSUPPORTED))
    # agent.b's queue (bit 1) full: paused twice, then error 11 to agent.a.
    w("full-pause-then-again", ab + hello_both + route_msg(0, E2_RPC, masks=(2, 2, 2)))
    w("full-again-sender-full-too", ab + route_msg(0, E2_RPC, masks=(3, 3, 3), again=True))
    w(
        "peerlist-query-ping",
        ab
        + hello_both
        + route_msg(1, [b"", b"VIP1", b"", b"l1", b"peerlist", b"list"])
        + route_msg(1, [b"", b"VIP1", b"", b"l2", b"peerlist", b"bogus"])
        + route_msg(0, [b"", b"VIP1", b"", b"q1", b"query", b"stats"])
        + route_msg(0, [b"", b"VIP1", b"", b"q2", b"query", b"instance-name"])
        + route_msg(0, [b"", b"VIP1", b"", b"p1", b"ping", b"x", b"y"]),
    )
    w(
        "agentstop-detach-reattach",
        ab
        + hello_both
        + route_msg(0, [b"", b"VIP1", b"", b"s1", b"agentstop", b"agent.a"])
        + route_msg(1, [b"", b"VIP1", b"", b"s2", b"agentstop", b"agent.a"])
        + bytes([0xF1, 0x00])  # detach slot 1
        + bytes([0xE1, 7]) + b"agent.c"  # attach slot 1 again
        + route_msg(1, E1_HELLO),
    )
    w(
        "control-quit",
        route_setup((0, b"agent.a"), (2, b"control"))
        + route_msg(0, [b"", b"VIP1", b"", b"x", b"quit"])
        + route_msg(1, [b"", b"VIP1", b"", b"x", b"agentstop", b"agent.a"])
        + route_msg(1, [b"", b"VIP1", b"", b"x", b"quit"]),
    )
    w(
        "probe-generated-bad",
        route_setup((0, b""), (3, b"agent.z"), (1, b""))
        + route_msg(0, [b""])
        + route_msg(1, [b"x"])
        + route_msg(1, [b"", b"VIP2", b"", b"", b"hello"])
        + route_msg(2, [b"", b"VIP1", b"", b"h", b"hello"]),
    )
    w(
        "duplicates-and-slot4",
        route_setup((0, b"agent.a"), (1, b"agent.a"), (4, b"agent.b"), (0, b"agent.c"))
        + route_msg(0, [b"agent.a", b"VIP1", b"spoofed", b"m", b"RPC", b"{}"]),
    )


if __name__ == "__main__":
    greeting_seeds()
    frame_stream_seeds()
    command_metadata_seeds()
    vip_route_seeds()
