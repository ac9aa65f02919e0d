#!/usr/bin/env python3
"""End-to-end checks of the router's systemd protocol, without systemd running.

  check-systemd.py notify BIN [ARGS...]      fake NOTIFY_SOCKET + WATCHDOG_USEC: expects READY=1,
                                             then WATCHDOG=1; SIGHUP -> RELOADING=1 (with
                                             MONOTONIC_USEC) then READY=1; SIGTERM -> STOPPING=1,
                                             exit status 0.
  check-systemd.py activation BIN [ARGS...]  runs BIN under systemd-socket-activate with a TCP and
                                             an abstract Unix listener; expects the ZMTP greeting
                                             signature on both (the router took them over).

BIN may be a qemu wrapper (target/dist/viprouter-<triple>-qemu). ARGS default to
--volttron-home <tempdir>. Standard library only; exit status 0 = pass. `make systemd-check`
runs both (cross/cross.mk).
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TIMEOUT = float(os.environ.get("CHECK_TIMEOUT", "20"))  # qemu-user start-up is slow
WATCHDOG_USEC = 2_000_000  # 2 s: the router should ping every 1 s
ZMTP_SIGNATURE = b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f"  # RFC 23 greeting bytes 0..9


def fail(msg, proc=None):
    if proc is not None and proc.poll() is None:
        proc.kill()
    print(f"FAIL: {msg}")
    sys.exit(1)


def recv_state(sock, proc, deadline):
    while True:
        sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            return sock.recv(4096).decode()
        except socket.timeout:
            if proc.poll() is not None:
                fail(f"router exited with {proc.returncode} while waiting for a notification")
            if time.monotonic() > deadline:
                fail("timed out waiting for a notification", proc)


def expect(sock, proc, want, timeout=TIMEOUT, skip=("STATUS=",)):
    """Next notification whose first line is `want`, ignoring STATUS-only messages."""
    deadline = time.monotonic() + timeout
    while True:
        msg = recv_state(sock, proc, deadline)
        first = msg.split("\n", 1)[0]
        if first == want:
            print(f"ok: {msg!r}")
            return msg
        if first.startswith(skip) or (want != "WATCHDOG=1" and first == "WATCHDOG=1"):
            continue
        fail(f"expected {want!r}, got {msg!r}", proc)


def check_notify(cmd, home):
    path = os.path.join(home, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("LISTEN_FDS", None)
    proc = subprocess.Popen(cmd, env=env)
    expect(sock, proc, "READY=1")
    expect(sock, proc, "WATCHDOG=1", timeout=WATCHDOG_USEC / 1e6)  # must ping before the timeout
    expect(sock, proc, "WATCHDOG=1", timeout=WATCHDOG_USEC / 1e6)
    proc.send_signal(signal.SIGHUP)
    msg = expect(sock, proc, "RELOADING=1")
    if "\nMONOTONIC_USEC=" not in msg:
        fail("RELOADING=1 without MONOTONIC_USEC", proc)
    expect(sock, proc, "READY=1")
    proc.send_signal(signal.SIGTERM)
    expect(sock, proc, "STOPPING=1")
    try:
        rc = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("router did not exit after SIGTERM", proc)
    if rc != 0:
        fail(f"exit status {rc} after SIGTERM")
    print("PASS notify")


def greeting(connect, proc, deadline):
    while time.monotonic() < deadline:
        try:
            s = connect()
            s.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            while len(data) < len(ZMTP_SIGNATURE):
                chunk = s.recv(len(ZMTP_SIGNATURE) - len(data))
                if not chunk:
                    break
                data += chunk
            s.close()
            if data[:1] == ZMTP_SIGNATURE[:1] and data[9:10] == ZMTP_SIGNATURE[9:10]:
                return data
            fail(f"unexpected greeting {data!r}", proc)
        except (ConnectionRefusedError, FileNotFoundError, socket.timeout):
            time.sleep(0.2)
        except ConnectionResetError:
            fail("connection reset: the router did not take over the inherited listener", proc)
    fail("no greeting", proc)


def check_activation(cmd, home):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    abstract = f"@{home}/run/vip.socket"
    act = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "-l", abstract,
           "--fdname=vip-tcp:vip-ipc", "-E", "RUST_LOG"] + cmd
    proc = subprocess.Popen(act, env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")))
    deadline = time.monotonic() + TIMEOUT

    def tcp():
        return socket.create_connection(("127.0.0.1", port), timeout=1)

    def ipc():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0" + abstract[1:])
        return s

    greeting(tcp, proc, deadline)  # the first connection makes systemd-socket-activate exec BIN
    print("ok: greeting on the inherited TCP listener")
    greeting(ipc, proc, deadline)
    print("ok: greeting on the inherited abstract Unix listener")
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        fail("router did not exit after SIGTERM", proc)
    print("PASS activation")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("notify", "activation"):
        print(__doc__)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="viprouter-check-") as home:
        cmd = [sys.argv[2]] + (sys.argv[3:] or ["--volttron-home", home])
        (check_notify if sys.argv[1] == "notify" else check_activation)(cmd, home)


if __name__ == "__main__":
    main()
