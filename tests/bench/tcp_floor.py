#!/usr/bin/env python3
"""The kernel's floor for a fan-out's writes: system time to send the same bytes, in writes of the
same size, to the same number of loopback sockets, with no router work at all.

cpu_split.sh measures the router's system time per delivery and the size of its writes
(/proc/PID/io: bytes written, write calls). This program sends those bytes the way the router
does (one write of `--write-bytes` to each of `--sockets` TCP_NODELAY connections in turn, two
reader processes draining them, as vipbench's two I/O threads do) and reports its own system time
per `--delivery-bytes`. The router's system time per delivery cannot fall below this figure
without writing fewer bytes or larger batches; its user time is the only part user-space work
moves.

Usage: tcp_floor.py --write-bytes B --delivery-bytes D [--sockets 8] [--mbytes 2000]
                    [--transport tcp|ipc]
Prints one line: system and user ns per delivery (user is this Python program's, not a figure).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import selectors
import socket
import tempfile


def drain(socks: list[socket.socket], total: int, done: mp.synchronize.Event) -> None:
    """Read every socket until `total` bytes have arrived over all of them."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    buf = bytearray(1 << 18)
    got = 0
    while got < total:
        for key, _ in sel.select():
            try:
                n = key.fileobj.recv_into(buf)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if n == 0:
                sel.unregister(key.fileobj)
            got += n
    done.set()


def pairs(n: int, transport: str, tmp: str) -> list[tuple[socket.socket, socket.socket]]:
    """`n` connected (sender, receiver) pairs over loopback TCP or unix sockets."""
    if transport == "tcp":
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        addr: object = lst.getsockname()
    else:
        lst = socket.socket(socket.AF_UNIX)
        addr = os.path.join(tmp, "floor.sock")
        lst.bind(addr)
    lst.listen(n)
    out = []
    for _ in range(n):
        c = socket.socket(lst.family)
        c.connect(addr)
        a, _ = lst.accept()
        if transport == "tcp":
            a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out.append((a, c))
    lst.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-bytes", type=int, required=True, help="bytes per write (the router's mean)")
    ap.add_argument("--delivery-bytes", type=float, required=True, help="bytes per delivery (the router's mean)")
    ap.add_argument("--sockets", type=int, default=8)
    ap.add_argument("--mbytes", type=int, default=2000, help="MB to send in all")
    ap.add_argument("--transport", choices=("tcp", "ipc"), default="tcp")
    a = ap.parse_args()
    if a.write_bytes < 1 or a.delivery_bytes <= 0 or a.sockets < 2:
        ap.error("--write-bytes >= 1, --delivery-bytes > 0, --sockets >= 2")
    writes = max(1, a.mbytes * 1_000_000 // a.write_bytes) // a.sockets * a.sockets
    per_socket = writes // a.sockets * a.write_bytes
    with tempfile.TemporaryDirectory() as tmp:
        ps = pairs(a.sockets, a.transport, tmp)
        half = a.sockets // 2
        groups = [[r for _, r in ps[:half]], [r for _, r in ps[half:]]]
        ctx = mp.get_context("fork")
        dones = [ctx.Event() for _ in groups]
        readers = [
            ctx.Process(target=drain, args=(g, per_socket * len(g), d)) for g, d in zip(groups, dones)
        ]
        for p in readers:
            p.start()
        for _, r in ps:
            r.close()
        senders = [s for s, _ in ps]
        data = bytes(range(256)) * (a.write_bytes // 256 + 1)
        data = data[: a.write_bytes]
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(writes // a.sockets):
            for s in senders:
                s.sendall(data)
        after = resource.getrusage(resource.RUSAGE_SELF)
        for s in senders:
            s.close()
        for p in readers:
            p.join()
    deliveries = writes * a.write_bytes / a.delivery_bytes
    sys_ns = (after.ru_stime - before.ru_stime) * 1e9 / deliveries
    usr_ns = (after.ru_utime - before.ru_utime) * 1e9 / deliveries
    print(
        f"kernel floor {a.transport:3} {a.sockets} sockets, {a.write_bytes} B per write, "
        f"{a.delivery_bytes:.0f} B per delivery: system {sys_ns:7.1f} ns per delivery "
        f"(this program's user {usr_ns:.1f} ns, not a figure)"
    )


if __name__ == "__main__":
    main()
