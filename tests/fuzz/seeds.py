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

# TOKEN_BASE + i is TOKENS[i] (src/fuzzing.rs); 0xFC..=0xFF is the identity attached to slot & 3.
TOKEN_BASE = 0xC0
TOKENS = [
    # 0xC0
    b"pubsub", b"subscribe", b"unsubscribe", b"synchronize", b"publish", b"auth_update",
    b"protected_update", b"connected",
    # 0xC8
    b"platform.auth", b"request_response", b"external_publish", b"agent.a",
    # 0xCC: subscribe bodies
    b'{"prefix": "devices/campus", "bus": "", "all_platforms": false}',
    b'{"prefix": ["devices", "secret", ""], "bus": "", "all_platforms": true}',
    b'{"prefix": "se", "bus": "b\\u00e9"}',
    b'{"prefix": ["a", 1], "bus": ""}',
    # 0xD0: unsubscribe bodies
    b'{"internal": {"prefix": ["devices/campus"], "bus": ""}}',
    b'{"all": {"prefix": null, "bus": ""}, "internal": {"prefix": [], "bus": ""}}',
    b'{"prefix": "devices/campus", "bus": ""}',
    b'{"internal": {"prefix": "x"}}',
    # 0xD4: synchronize bodies
    b'{"subscriptions": {"internal": {"": [""]}}}',
    b'{"subscriptions": {"internal": {"": ["devices", "secret/"], "b\\u00e9": ["x"]}, "all": {"": ["regex"]}}}',
    b'{"subscriptions": {}}',
    b'{"subscriptions": {"internal": {"": "devices"}}}',
    # 0xD8: publish topics and bodies
    b"devices/campus/b1/all",
    b"secret/x",
    b"regexaz",
    b'{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, '
    b'"message": {"v": [1, 2.5, "\\u00e9"]}}',
    # 0xDC
    b'{"bus": "", "headers": {}, "message": ["\\ud83d\\ude00", "\\u00e9\\u0000\\ud800", NaN, -Infinity, -0, '
    b'1e400, 1.5e-7, 12345678901234567890123], "extra": 1}',
    b'{"bus": "b\\u00e9", "headers": null, "message": {"a": {"b": [true, false, null]}, "a": 2}, "bus": "b\\u00e9"}',
    b'{"bus": "", "headers": {}}',
    b"b\xe9",
    # 0xE0: list bodies
    b'{"prefix": "", "all_platforms": false, "subscribed": true, "reverse": false, "bus": ""}',
    b'{"prefix": "devices/campus/b1", "bus": null, "subscribed": false, "reverse": true, "all_platforms": true}',
    b'{"prefix": "", "bus": "b\\u00e9", "subscribed": 0, "reverse": [], "all_platforms": "yes"}',
    b"{}",
    # 0xE4: auth_update and protected_update bodies
    b'{"capabilities": {"agent.a": {"can_publish": null}, "agent.b": ["edit_config_store"], "platform.auth": {}}}',
    b'{"capabilities": {"agent.a": {}, "agent.b": {"can_publish": {"x": 1}}}}',
    b'{"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}, '
    b'{"topic": "/regex.*z/", "capabilities": "can_publish"}]}',
    b'{"write-protect": [{"topic": "devices", "capabilities": ["edit_config_store", "can_publish"]}, {"topic": "/(/"}]}',
    # 0xE8
    b"agent.b", b"devices", b'{"prefix": "", "bus": "b\\u00e9", "all_platforms": true}', b"routing_table",
    # 0xEC
    b"external_list", b"all", b"internal", b"secret",
    # 0xF0: the tokens of the first corpus
    b"VIP1", b"hello", b"ping", b"peerlist", b"list", b"query", b"stats", b"agentstop", b"quit",
    b"error", b"external_rpc", b"control",
]
assert len(TOKENS) == 60

# An identity byte >= 0xC0 names one of these (low 2 bits).
NAMED = {b"platform.auth": 0xC0, b"agent.a": 0xC1, b"agent.b": 0xC2, b"control": 0xC3}


def route_setup(*peers, named=False):
    out = bytes([len(peers) - 2])
    for slot, ident in peers:
        if named and ident in NAMED:
            out += bytes([slot, NAMED[ident]])
        else:
            out += bytes([slot, len(ident)]) + ident
    return out


def route_msg(sender, frames, masks=(0, 0, 0), again=False):
    out = bytes([sender | (4 if again else 0)]) + bytes(masks) + bytes([len(frames)])
    for f in frames:
        if f in TOKENS:
            out += bytes([TOKEN_BASE + TOKENS.index(f)])
        else:
            assert len(f) < TOKEN_BASE, f
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



# VIP.md §15 E3: subscribe, publish, delivery (what the DEALER side writes).
E3_MSG_SUB = b"1795550810.000000.8727080168650.000000"
E3_MSG_PUB = b"1795550811.000000.8727080168749.000000"
E3_SUBSCRIBE_BODY = b'{"prefix": "devices/campus", "bus": "", "all_platforms": false}'
E3_TOPIC = b"devices/campus/b1/all"
E3_PUBLISH_BODY = (
    b'{"bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", "max_compatible_version": ""}, '
    b'"message": {"v": [1, 2.5, "\\u00e9"]}}'
)
E3_DELIVERY_BODY = (
    b'{"sender": "agent.a", "bus": "", "headers": {"h": 1, "min_compatible_version": "3.0", '
    b'"max_compatible_version": ""}, "message": {"v": [1, 2.5, "\\u00e9"]}}'
)
LIST_BODY = b'{"prefix": "", "all_platforms": false, "subscribed": true, "reverse": false, "bus": ""}'


def pubsub(msg_id, *args):
    return [b"", b"VIP1", b"", msg_id, b"pubsub", *args]


def vip_route_pubsub_seeds():
    w = lambda name, data: write("vip_route", name, data)  # noqa: E731
    ab = route_setup((0, b"agent.a"), (1, b"agent.b"))
    hello_both = route_msg(0, E1_HELLO) + route_msg(1, E1_HELLO)
    e3 = (
        route_msg(1, pubsub(E3_MSG_SUB, b"subscribe", E3_SUBSCRIBE_BODY))
        + route_msg(0, pubsub(E3_MSG_PUB, b"publish", E3_TOPIC, E3_PUBLISH_BODY))
    )
    w("e3-subscribe-publish", ab + hello_both + e3)
    # The subscriber's queue (bit 1) is full: its delivery is dropped, the count is still 1.
    w(
        "e3-slow-subscriber",
        ab
        + route_msg(1, pubsub(E3_MSG_SUB, b"subscribe", E3_SUBSCRIBE_BODY))
        + route_msg(0, pubsub(E3_MSG_PUB, b"publish", E3_TOPIC, E3_PUBLISH_BODY), masks=(2, 2, 2)),
    )
    w(
        "subscribe-list-unsubscribe",
        ab
        + route_msg(1, pubsub(b"s1", b"subscribe", TOKENS[0xCD - TOKEN_BASE]))
        + route_msg(1, pubsub(b"s2", b"subscribe", TOKENS[0xCE - TOKEN_BASE]))
        + route_msg(0, pubsub(b"s3", b"subscribe", TOKENS[0xEA - TOKEN_BASE]))
        + route_msg(1, pubsub(b"l1", b"list", LIST_BODY))
        + route_msg(0, pubsub(b"l2", b"list", TOKENS[0xE1 - TOKEN_BASE]))
        + route_msg(0, pubsub(b"l3", b"list", TOKENS[0xE2 - TOKEN_BASE]))
        + route_msg(0, pubsub(b"p1", b"publish", b"b\xe9", TOKENS[0xDD - TOKEN_BASE]))
        + route_msg(1, pubsub(b"u1", b"unsubscribe", TOKENS[0xD0 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"u2", b"unsubscribe", TOKENS[0xD1 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"u3", b"unsubscribe", TOKENS[0xD2 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"u4", b"unsubscribe", TOKENS[0xD3 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"u5", b"unsubscribe"))
        + route_msg(1, pubsub(b"s4", b"subscribe", b"not json"))
        + route_msg(0, pubsub(b"p2", b"publish", E3_TOPIC, TOKENS[0xDC - TOKEN_BASE])),
    )
    # Agents send synchronize twice with the same MSG_ID after hello (VIP.md §7.5).
    sync = pubsub(b"sync1", b"synchronize", b"connected", TOKENS[0xD4 - TOKEN_BASE])
    w(
        "synchronize-twice-then-publish",
        ab
        + hello_both
        + route_msg(1, sync)
        + route_msg(1, sync)
        + route_msg(0, pubsub(b"sync2", b"synchronize", b"connected", TOKENS[0xD5 - TOKEN_BASE]))
        + route_msg(0, pubsub(E3_MSG_PUB, b"publish", E3_TOPIC, TOKENS[0xDC - TOKEN_BASE]))
        + route_msg(1, pubsub(b"sync3", b"synchronize", b"connected", TOKENS[0xD6 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"sync4", b"synchronize", b"connected", TOKENS[0xD7 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"sync5", b"synchronize", b"disconnected", TOKENS[0xD4 - TOKEN_BASE]))
        + route_msg(0, pubsub(E3_MSG_PUB, b"publish", b"", TOKENS[0xDD - TOKEN_BASE]))
        + route_msg(0, pubsub(b"q", b"publish", E3_TOPIC))
        + route_msg(0, [b"", b"VIP1", b"", b"st", b"query", b"stats"]),
    )
    # platform.auth installs capabilities and protected topics (VIP.md §7.8, §7.9); agent.b
    # lacks can_publish: -32001 then count 0; agent.a may publish.
    policy = route_setup((0, b"platform.auth"), (1, b"agent.a"), (2, b"agent.b"), named=True)
    w(
        "protected-topics",
        policy
        + route_msg(0, pubsub(b"", b"auth_update", TOKENS[0xE4 - TOKEN_BASE]))
        + route_msg(0, pubsub(b"", b"protected_update", TOKENS[0xE6 - TOKEN_BASE]))
        + route_msg(1, pubsub(b"a1", b"subscribe", TOKENS[0xCD - TOKEN_BASE]))
        + route_msg(2, pubsub(b"b1", b"publish", b"secret/x", E3_PUBLISH_BODY))
        + route_msg(2, pubsub(b"b2", b"publish", b"regexaz", E3_PUBLISH_BODY), masks=(4, 4, 4))
        + route_msg(1, pubsub(b"a2", b"publish", b"secret/x", E3_PUBLISH_BODY))
        + route_msg(2, pubsub(b"b3", b"protected_update", b"{}"))
        + route_msg(0, pubsub(b"", b"protected_update", TOKENS[0xE7 - TOKEN_BASE]))
        + route_msg(0, pubsub(b"", b"auth_update", TOKENS[0xE5 - TOKEN_BASE]))
        + route_msg(2, pubsub(b"b4", b"publish", b"devices/x", E3_PUBLISH_BODY))
        + route_msg(0, pubsub(b"", b"auth_update", b"[]"))
        + route_msg(0, pubsub(b"", b"error"))
        + route_msg(0, pubsub(b"", b"request_response"))
        + route_msg(0, pubsub(b"", b"external_publish"))
        + route_msg(0, pubsub(b"", b"bogus"))
        + route_msg(0, pubsub(b"")),
    )
    w(
        "agentstop-drops-subscriptions",
        ab
        + route_msg(1, pubsub(b"s1", b"subscribe", TOKENS[0xCD - TOKEN_BASE]))
        + route_msg(1, [b"", b"VIP1", b"", b"x", b"agentstop", b"agent.b"])
        + route_msg(0, pubsub(b"p", b"publish", b"devices", E3_PUBLISH_BODY))
        + route_msg(1, pubsub(b"s2", b"subscribe", TOKENS[0xCD - TOKEN_BASE]))
        + bytes([0xF1, 0x00])
        + bytes([0xE1, 0xC2])
        + route_msg(0, pubsub(b"p", b"publish", b"devices", E3_PUBLISH_BODY)),
    )


# --- CURVE and PLAIN sessions: see fuzz_session_curve and fuzz_session_plain -----------------

def curve_frame(op, payload=b"", more=False):
    """A traffic operation: data frame (op 0..3, bit 4 MORE)."""
    assert len(payload) < 0xFF
    return bytes([op | (0x10 if more else 0), len(payload)]) + payload


def curve_message(*frames):
    return b"".join(curve_frame(0, f, more=i < len(frames) - 1) for i, f in enumerate(frames))


def curve_ping(ctx):
    return bytes([4, len(ctx)]) + ctx


def session_curve_seeds():
    def w(name, b0, b1, seed, meta, tamper=0, at=0, xor=0, ops=b""):
        write("session_curve", name, bytes([b0, b1, seed, meta, tamper, at, xor]) + ops)

    e1 = curve_message(*E1_HELLO)
    e2 = curve_message(*E2_RPC)
    # b0 = raw:1 client_key:2 chunk_mode:2 limits:3; limits 4 = 1 MiB.
    w("dealer-e1-e2-ping", 0x04, 6, 1, 0, ops=e1 + curve_ping(b"hi") + e2)
    w("bytewise", 0x0C, 0, 2, 0, ops=curve_frame(0, b"", True) + curve_ping(b"x" * 20) + curve_frame(0, b"VIP1"))
    w("random-chunks-router", 0x14, 9, 3, 2, ops=e1 + bytes([5, 0, 5, 1, 5, 2, 5, 3]) + e1)
    w("req-no-identity", 0x1C, 5, 4, 1, ops=curve_message(b"", b"req1"))
    w("dealer-without-identity", 0x04, 0, 5, 3, ops=e1)
    w("key1-not-allowed-here", 0x24, 0, 6, 0, ops=e1)
    w("key2-unknown", 0x44, 0, 7, 0, ops=e1)
    w("wrong-server-key", 0x04, 0, 0x88, 0, ops=e1)
    w("pub-refused", 0x04, 0, 9, 4)
    w("identity-too-long", 0x04, 0, 10, 5)
    w("metadata-truncated", 0x04, 0, 11, 6)
    w("metadata-extra", 0x04, 0, 12, 7, ops=prop(b"Socket-Type", b"DEALER") + prop(b"Identity", b"x") + b"\xff" + e1)
    w("tamper-hello", 0x04, 0, 13, 0, tamper=1, at=100, xor=1, ops=e1)
    w("tamper-initiate", 0x04, 0, 14, 0, tamper=2, at=150, xor=0x80, ops=e1)
    w("tamper-traffic", 0x04, 0, 15, 0, tamper=3 | (2 << 2), at=40, xor=4, ops=e1)
    w("replayed-frame", 0x04, 0, 16, 0, ops=curve_frame(0, b"a", True) + b"\x06" + curve_frame(0, b"b"))
    w("unencrypted-frame", 0x04, 0, 17, 0, ops=b"\x07\x06\x00\x04VIP1" + e1)
    w("tiny-limits-300", 0x00, 0, 18, 0, ops=bytes([0x10, 0xFF, 0, 0xFF]))
    w("too-many-parts", 0x00, 0, 19, 0, ops=curve_frame(0, b"", True) * 9)
    hello = cmd(b"HELLO", b"\x01\x00" + bytes(72) + bytes(32) + bytes(8) + bytes(80))
    write("session_curve", "raw-hello-bad-box", bytes([0x84, 0, 0]) + hello)
    write("session_curve", "raw-data-first", bytes([0x84, 0, 0]) + frame(b"x"))


def plain_field(v):
    return bytes([len(v)]) + v


def session_plain_seeds():
    def w(name, b0, b1, user, password, traffic=b""):
        write("session_plain", name, bytes([b0, b1]) + plain_field(user) + plain_field(password) + traffic)

    # b0 = raw:1 metadata:2 chunk_mode:2 limits:3; metadata 0 DEALER agent1, 1 REQ, 2 PUB, 3 truncated.
    traffic = msg(*E1_HELLO) + cmd(b"PING", b"\x00\x00hi") + msg(*E2_RPC)
    w("admin-dealer", 0x04, 0, b"admin", b"secret", traffic)
    w("admin-bytewise", 0x0C, 0, b"admin", b"secret", traffic)
    w("guest-req", 0x34, 3, b"guest", b"any password", msg(b"", b"req1"))
    w("wrong-password", 0x04, 0, b"admin", b"wrong", traffic)
    w("guest-newline", 0x04, 0, b"guest", b"a\nb", traffic)
    w("user-not-utf8", 0x04, 0, b"\xff", b"", traffic)
    w("admin-pub-refused", 0x44, 0, b"admin", b"secret")
    w("admin-truncated-metadata", 0x64, 0, b"admin", b"secret")
    w("tiny-limits", 0x00, 0, b"admin", b"secret", frame(b"y" * 257))
    hello = cmd(b"HELLO", b"\x05admin\x06secret")
    write("session_plain", "raw-hello-initiate", bytes([0x84, 0]) + hello + cmd(b"INITIATE", prop(b"Socket-Type", b"DEALER")))
    write("session_plain", "raw-hello-trailing", bytes([0x84, 0]) + cmd(b"HELLO", b"\x05admin\x06secretX"))
    write("session_plain", "raw-initiate-first", bytes([0x84, 0]) + cmd(b"INITIATE"))


# --- json_scan: the document itself ----------------------------------------------------------

def json_scan_seeds():
    w = lambda name, data: write("json_scan", name, data)  # noqa: E731
    w("e3-subscribe", E3_SUBSCRIBE_BODY)
    w("e3-publish", E3_PUBLISH_BODY)
    w("e3-delivery", E3_DELIVERY_BODY)
    w("e2-rpc", E2_RPC[5])
    w("list-response", b'[["", "test/topic", true], ["b\\u00e9", "x", false]]')
    w("numbers", b'[0, -0, 1, -1, 12345678901234567890123, 1.0, 1e16, 1E-5, 2.5e+3, 0.1, 87837073113192.125, '
                 b'1e400, -1e400, 1e-400, 5e-324, 1.7976931348623157e308, NaN, Infinity, -Infinity]')
    w("strings", b'["", "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t", "\\u0000\\u001f\\u007f\\u00e9\\u20ac", '
                 b'"\\ud83d\\ude00", "\\ud800", "\\udc00\\ud800x", "\xe9\xff raw latin-1"]')
    w("duplicates", b'{"a": 1, "a": 2, "b": {"a": [], "a": {}}}')
    w("whitespace", b' \t\r\n{ "k" :\t[ true ,false, null ] }\n ')
    w("deep-32", b"[" * 32 + b"]" * 32)
    w("too-deep-33", b"[" * 33 + b"]" * 33)
    w("scalar-string", b'"just a string"')
    w("scalar-number", b"-12.5e-3")
    w("bad-trailing-comma", b"[1, 2,]")
    w("bad-control-in-string", b'"a\x01b"')
    w("bad-escape", b'"\\x"')
    w("bad-trailing-data", b"{} {}")
    w("bad-number", b"[-]")
    w("bad-raw-byte-outside-string", b"[\xe9]")
    w("truncated", E3_PUBLISH_BODY[:60])
    w("protected-topics", TOKENS[0xE6 - TOKEN_BASE])


# --- auth_json: the text of an auth.json ------------------------------------------------------

def auth_json_seeds():
    data = os.path.join(HERE, "..", "data", "auth")
    for name in sorted(os.listdir(data)):
        if name.endswith(".json"):
            with open(os.path.join(data, name), "rb") as f:
                write("auth_json", name[: -len(".json")], f.read())
    w = lambda name, data: write("auth_json", name, data)  # noqa: E731
    w("empty", b"")
    w("comments-only", b"# nothing\n// at all\n/* here */")
    w("plain-null-curve", b'{"allow": [{"mechanism": "PLAIN", "credentials": "admin:secret", "user_id": "plain"}, '
                          b'{"mechanism": "PLAIN", "credentials": "/guest:.*/", "user_id": "guest"}, '
                          b'{"mechanism": "NULL", "address": "/localhost:.*/"}, '
                          b'{"credentials": "u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg", "user_id": "", '
                          b'"domain": ["vip", "/x.*/"], "address": ["127.0.0.1"], "enabled": 1}], '
                          b'"version": {"major": 1, "minor": 4}}')
    w("not-utf8", b'{"allow": [{"user_id": "\xff"}]}')
    w("error-on-line-3", b'{\n  "allow": [\n    {"credentials": 1,}\n  ]\n}')
    w("unterminated-comment", b'{"allow": []} /* open')


# --- decode_key: key text, or 32 raw bytes ----------------------------------------------------

Z85_ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85(data):
    out = b""
    for i in range(0, len(data), 4):
        v = int.from_bytes(data[i:i + 4], "big")
        chunk = []
        for _ in range(5):
            chunk.append(Z85_ALPHABET[v % 85])
            v //= 85
        out += bytes(reversed(chunk))
    return out


def decode_key_seeds():
    import base64
    w = lambda name, data: write("decode_key", name, data)  # noqa: E731
    # VIP.md §9.2 worked conversion.
    raw = bytes.fromhex("bb88471d65e2659b30c55a5321cebb5aab2b70a398645c26dca2b2fcb43fc518")
    z = z85(raw)
    assert z == b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
    b64 = base64.urlsafe_b64encode(raw)
    assert b64[:43] == b"u4hHHWXiZZswxVpTIc67WqsrcKOYZFwm3KKy_LQ_xRg"
    w("z85-40", z)
    w("volttron-43", b64[:43])
    w("padded-44", b64)
    w("b64-of-z85-54", base64.urlsafe_b64encode(z).rstrip(b"="))
    w("b64-of-z85-56", base64.urlsafe_b64encode(z))
    w("hex-64", raw.hex().encode())
    w("hex-upper-64", raw.hex().upper().encode())
    w("hex-of-z85-80", z.hex().encode())
    w("raw-32", raw)
    w("standard-alphabet-43", b64[:36] + b"/" + b64[37:43])
    w("trailing-bits-43", b64[:42] + b"h")
    w("bad-z85-40", z[:39] + b"~")
    w("short", b"abc")


# --- links (src/fuzzing/links.rs) and discovery (src/fuzzing/discovery.rs) ----------------

KEY43 = b"wSdbLxSEa3DNUtqHbM6nFX1gCh4ksbvjD98ChP8dsSQ"
LINK_TOKENS = [
    b"pubsub", b"external_list", b"external_publish", b"external_rpc", b"send_platform", b"send_peer",
    b"routing_table", b"hello",
    b"welcome", b"normalmode_platform_connection", b"update", b"subscribe", b"publish", b"synchronize",
    b"connected", b"unsubscribe",
    b"query", b"stats", b"agentstop", b"VIP1", b"p1", b"p2", b"p3", b"devices/hvac/1",
    b'{"prefix": "devices", "bus": "", "all_platforms": true}',
    b'{"prefix": ["", "x/"], "bus": "", "all_platforms": true}',
    b'{"subscriptions": {"all": {"": ["devices", "alerts/"]}, "internal": {"": ["devices/hvac"]}}}',
    b'{"all": {"prefix": null, "bus": ""}}',
    b'{"bus": "", "headers": {"min_compatible_version": "3.0"}, "message": {"v": 42}}',
    b'{"sender": "pub2", "bus": "", "headers": {}, "message": [1, "\\u00e9"]}',
    b'{"p2": ["devices/", "", "x"], "p1": ["own"], "p3": ["devices/hvac"]}',
    b'{"p2": "devices"}',
    b'{"to_platform": "p2", "to_peer": "callee2", "from_platform": "", "from_peer": "forged", "args": ["{\\"id\\": 1}"]}',
    b'{"to_platform": "p3", "to_peer": "x", "args": []}',
    b'{"to_platform": "p1", "to_peer": "agent.b", "from_platform": "p2", "from_peer": "caller2", "args": []}',
    b'{"to_platform": "p1", "to_peer": "ghost", "from_platform": "p3", "from_peer": "c3", "args": []}',
    b'{"instance-name": "p3", "vip-address": "tcp://127.0.0.1:24001", "serverkey": "' + KEY43 + b'"}',
    b'{"instance-name": "p4", "vip-address": "tcp://127.0.0.1:24002", "serverkey": "' + KEY43 + b'"}',
    b'{"to_platform": 5}',
    b"{}",
]
assert len(LINK_TOKENS) == 40
LA, LB, LX, LKD, LY = range(5)  # agent.a, agent.b, p2's link, keydiscovery, p3's link


def link_msg(peer, frames, full=0):
    out = bytes([peer, full, len(frames)])
    for f in frames:
        if f in LINK_TOKENS:
            out += bytes([TOKEN_BASE + LINK_TOKENS.index(f)])
        else:
            assert len(f) < TOKEN_BASE, f
            out += bytes([len(f)]) + f
    return out


def to_router(peer, *args, full=0, msg_id=b"m1"):
    return link_msg(peer, [b"", b"VIP1", b"", msg_id] + list(args), full)


POLL, UP0, UP1, DOWN0 = b"\xa0", b"\xb0\x00", b"\xb1\x00", b"\xc6"


def links_seeds():
    w = lambda name, data: write("links", name, data)  # noqa: E731
    ext_list = to_router(LX, b"pubsub", b"external_list", LINK_TOKENS[30])
    sub_all = to_router(LB, b"pubsub", b"subscribe", LINK_TOKENS[24])
    publish = to_router(LA, b"pubsub", b"publish", b"devices/hvac/1", LINK_TOKENS[28])
    call = to_router(LA, b"external_rpc", b"send_platform", LINK_TOKENS[32])
    send_peer = to_router(LX, b"external_rpc", b"send_peer", LINK_TOKENS[34])
    ghost = to_router(LY, b"external_rpc", b"send_peer", LINK_TOKENS[35])
    ext_pub = to_router(LX, b"pubsub", b"external_publish", b"devices/p2", LINK_TOKENS[29])
    hello = to_router(LX, b"routing_table", b"hello", b"hello", b"p2")
    stats = to_router(LA, b"query", b"stats")
    session = POLL + UP0 + UP1 + ext_list + sub_all + publish + call + send_peer + ghost + ext_pub + hello + stats
    w("session", b"\x00" + session)
    w("down-up-no-replay", b"\x00" + session + DOWN0 + publish + call + POLL + b"\xa0" + UP0 + publish)
    w("hello-before-up", b"\x00" + hello + POLL + UP0 + ext_list + publish)
    w("full-links", b"\x00" + POLL + UP0 + UP1 + ext_list + to_router(LA, b"pubsub", b"publish", b"x/1", LINK_TOKENS[28], full=0xC0)
      + to_router(LA, b"external_rpc", b"send_platform", LINK_TOKENS[32], full=0xC0))
    hostile = b"".join(
        to_router(p, b"routing_table", *args)
        for p in (LA, LX, LKD)
        for args in ([b"update", b"{}"], [b"update"], [b"normalmode_platform_connection"],
                     [b"normalmode_platform_connection", LINK_TOKENS[36]], [b"normalmode_platform_connection", b"[]"],
                     [b"hello"], [b"hello", b"welcome", b"p2"], [], [b"web-addresses", b"[1]"])
    )
    w("routing-table-hostile", b"\x00" + hostile + POLL + b"\xa0")
    bad = b"".join(to_router(LX, b"pubsub", b"external_list", b) for b in (LINK_TOKENS[31], b"[]", b"x"))
    bad += to_router(LX, b"pubsub", b"external_publish", b"t", b'{"bus": 1}') + to_router(LA, b"pubsub", b"external_list", LINK_TOKENS[30])
    bad += to_router(LA, b"external_rpc", b"send_peer", LINK_TOKENS[34]) + to_router(LA, b"external_rpc", b"send_platform", LINK_TOKENS[38])
    w("malformed-external", b"\x00" + POLL + UP0 + bad)
    w("reload", b"\x00" + POLL + UP0 + ext_list + b"\xf0\x02" + POLL + UP0 + b"\xf0\x04" + b"\xf0\x01" + POLL + publish)
    w("detach-link-peer", b"\x00" + POLL + UP0 + ext_list + sub_all + b"\xe2" + publish + b"\xd0" + b"\xe1" + publish)
    w("sync-all", b"\x10" + POLL + UP0 + to_router(LB, b"pubsub", b"synchronize", b"connected", LINK_TOKENS[26])
      + to_router(LB, b"pubsub", b"unsubscribe", LINK_TOKENS[27]) + to_router(LB, b"agentstop", b"agent.b"))


def discovery_seeds():
    w = lambda name, data: write("discovery", name, data)  # noqa: E731
    entry = lambda n, a: b'{"vip-address": "' + a + b'", "instance-name": "' + n + b'", "serverkey": "' + KEY43 + b'"}'  # noqa: E731
    w("file", b'{"p2": ' + entry(b"p2", b"tcp://127.0.0.1:23917") + b', "p3": ' + entry(b"p3", b"ipc://@/v/run/vip.socket") + b"}")
    w("file-bad-entries", b'{"a": [], "b": {"instance-name": "x"}, "c": ' + entry(b"", b"tcp://h:1") + b"}")
    w("entry", entry(b"bldg\\u00e9", b"tcp://10.0.0.1:22916"))
    w("external-list", b'{"p2": ["devices/", "", "x\\u0100", "analysis"], "p1": []}')
    w("send-platform", LINK_TOKENS[32])
    w("rewrite-dups", b'{ "from_peer" :"a","from_peer":null ,"from_platform":[1]}')
    w("empty", b"")


if __name__ == "__main__":
    greeting_seeds()
    frame_stream_seeds()
    command_metadata_seeds()
    vip_route_seeds()
    vip_route_pubsub_seeds()
    session_curve_seeds()
    session_plain_seeds()
    json_scan_seeds()
    auth_json_seeds()
    decode_key_seeds()
    links_seeds()
    discovery_seeds()
