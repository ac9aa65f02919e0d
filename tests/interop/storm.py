"""Connect and restart storms with many real libzmq peers (issue #13): helpers for test_storm.py.

`StormRouter` runs the release binary with `NOTIFY_SOCKET` pointing at the test, so the moment
the router is ready (`READY=1`, sent once every listener is bound) is known exactly, and can be
killed with SIGKILL and started again on the same port and `VOLTTRON_HOME`. `Swarm` is n pyzmq
DEALERs in one context that behave like VOLTTRON agents towards the router: with `monitor=True`
each one sends `hello` (`connect.hello.N`, N counting up) on every `EVENT_CONNECTED` of its socket
monitor and waits for the welcome to its latest hello, as the agent library does
(volttron/platform/vip/agent/core.py, `Core.monitor` and `hello`; VIP.md §13.2, §13.5).
"""
import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import zmq
import zmq.utils.monitor
import zmq.utils.z85

from conftest import free_port, router_bin
from vipclient import VIP

CLK_TCK = os.sysconf("SC_CLK_TCK")
STATS_READER = b"stats.reader"  # identity of the agent StormRouter.stats() connects
_seq = [0]


def cpu_seconds(pid):
    """utime + stime of process `pid` in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu_seconds():
    """CPU of this process, every thread (libzmq's I/O thread included)."""
    t = os.times()
    return t.user + t.system


def b64(z85_key):
    return base64.urlsafe_b64encode(zmq.utils.z85.decode(z85_key)).rstrip(b"=").decode()


def z85(b64_key):
    return zmq.utils.z85.encode(base64.urlsafe_b64decode(b64_key + "="))


class StormRouter:
    """The router on one tcp port: NULL (allow-auth = False), or CURVE admitting the key pair
    `client_keys` (z85 public, secret), which every agent of the storm uses."""

    def __init__(self, client_keys=None, extra_config="", verbose=False):
        self.verbose = verbose
        self.client_keys = client_keys
        client_pub = client_keys[0] if client_keys else None
        _seq[0] += 1
        self.home = tempfile.mkdtemp(prefix="vipst-", dir="/tmp")
        config = "[volttron]\ninstance-name = storm\n"
        if client_pub is None:
            config += "allow-auth = False\n"
        else:
            entry = {"domain": None, "address": None, "mechanism": "CURVE", "credentials": b64(client_pub),
                     "user_id": "storm", "capabilities": {}, "enabled": True}
            with open(os.path.join(self.home, "auth.json"), "w") as f:
                json.dump({"allow": [entry]}, f)
        with open(os.path.join(self.home, "config"), "w") as f:
            f.write(config + extra_config)
        self.port = free_port()
        self.tcp = f"tcp://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.home, "router.stderr")
        self._log = open(self.log_path, "ab")
        self.notify_name = f"vipst-{os.getpid()}-{_seq[0]}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind("\0" + self.notify_name)
        self.proc = None
        self.start()
        self.ready_at = self.wait_ready()
        self.serverkey = None
        if client_pub is not None:
            with open(os.path.join(self.home, "keystore")) as f:
                self.serverkey = z85(json.load(f)["public"])

    def start(self):
        env = dict(os.environ, NOTIFY_SOCKET="@" + self.notify_name)
        argv = [router_bin(), "--volttron-home", self.home, "--vip-address", self.tcp]
        if self.verbose:
            argv.append("-v")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     env=env, start_new_session=True)

    def wait_ready(self, timeout=10.0):
        """Monotonic time at which READY=1 arrived."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no READY=1 within {timeout} s:\n{self.log()[-2000:]}"
            assert self.proc.poll() is None, f"router exited (rc={self.proc.returncode}):\n{self.log()[-2000:]}"
            self.notify.settimeout(min(left, 0.2))
            try:
                data = self.notify.recv(4096)
            except socket.timeout:
                continue
            if b"READY=1" in data.split(b"\n"):
                return time.monotonic()

    def kill9_and_restart(self):
        """SIGKILL, then the same command line again; returns the new READY=1 time."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self.start()
        self.ready_at = self.wait_ready()
        return self.ready_at

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def curve(self):
        """(serverkey, public, secret) for a client socket, or None (NULL)."""
        return (self.serverkey, *self.client_keys) if self.client_keys else None

    def stats(self, timeout=20.0):
        """`query stats` through a fresh agent of its own."""
        ctx = zmq.Context()
        try:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.ROUTING_ID, STATS_READER)
            if self.client_keys:
                s.setsockopt(zmq.CURVE_SERVERKEY, self.serverkey)
                s.setsockopt(zmq.CURVE_PUBLICKEY, self.client_keys[0])
                s.setsockopt(zmq.CURVE_SECRETKEY, self.client_keys[1])
            s.connect(self.tcp)
            s.send_multipart([b"", VIP, b"", b"st", b"query", b"stats"])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if s.poll(500) and (f := s.recv_multipart())[4] == b"query":
                    return json.loads(f[6])
            raise AssertionError(f"no stats reply within {timeout} s")
        finally:
            ctx.destroy(linger=0)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        else:
            rc = self.proc.returncode
        self._log.close()
        self.notify.close()
        return rc

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


class Swarm:
    """n DEALERs named PREFIX0..PREFIXn-1 in context `ctx` (which must allow 2n+ sockets)."""

    def __init__(self, ctx, endpoint, n, prefix="storm.", curve=None, monitor=False):
        self.endpoint = endpoint
        self.n = n
        self.socks = []
        self.mons = []
        self.by_sock = {}
        self.ident = [None] * n
        self.hellos = [0] * n
        self.welcomed = [None] * n
        # With monitors: send hello on CONNECTED (the agent's behaviour) only while this is set.
        self.greet = True
        for i in range(n):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 6000)  # VOLTTRON's agents: hwm=6000 (core.py)
            s.setsockopt(zmq.RCVHWM, 6000)
            s.setsockopt(zmq.ROUTING_ID, b"%s%d" % (prefix.encode(), i))
            if curve is not None:
                serverkey, pub, sec = curve
                s.setsockopt(zmq.CURVE_SERVERKEY, serverkey)
                s.setsockopt(zmq.CURVE_PUBLICKEY, pub)
                s.setsockopt(zmq.CURVE_SECRETKEY, sec)
            self.socks.append(s)
            self.by_sock[s] = ("peer", i)
            if monitor:
                m = s.get_monitor_socket(zmq.EVENT_CONNECTED)
                self.mons.append(m)
                self.by_sock[m] = ("monitor", i)

    def connect(self):
        for s in self.socks:
            s.connect(self.endpoint)

    def hello(self, i):
        """What the agent does on CONNECTED: a new hello whose welcome it then waits for."""
        ident = b"connect.hello.%d" % self.hellos[i]
        self.hellos[i] += 1
        self.ident[i] = ident
        self.welcomed[i] = None
        self.socks[i].send_multipart([b"", VIP, b"", ident, b"hello", b"hello"])

    def hello_all(self):
        for i in range(self.n):
            self.hello(i)

    def discard_first_connected(self, timeout=30.0):
        """Consume each monitor's first CONNECTED event (the I/O thread may still be delivering
        some: wait for each), so that only later connections trigger a hello."""
        deadline = time.monotonic() + timeout
        for m in self.mons:
            while True:
                assert m.poll(max(0, int((deadline - time.monotonic()) * 1000))), "a CONNECTED event never came"
                if zmq.utils.monitor.recv_monitor_message(m)["event"] & zmq.EVENT_CONNECTED:
                    break

    def expect_reconnect(self):
        """The router goes away: every peer waits for a welcome to a hello sent from now on."""
        self.ident = [None] * self.n
        self.welcomed = [None] * self.n

    def drain(self, peers=None, each=None, quiet=1.0, timeout=60.0):
        """Read everything queued for `peers` (default: all) until `quiet` s pass without a
        message, calling `each(i, frames)` on every message (default: drop it). Round robin
        without a poller (zmq_poll over 1000 sockets costs ~1 ms a call)."""
        peers = range(self.n) if peers is None else peers
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            assert time.monotonic() < deadline, f"messages kept coming for {timeout} s"
            got = 0
            for i in peers:
                try:
                    while True:
                        f = self.socks[i].recv_multipart(zmq.NOBLOCK)
                        got += 1
                        if each is not None:
                            each(i, f)
                except zmq.Again:
                    pass
            if got:
                last = time.monotonic()
            else:
                time.sleep(0.05)

    def run(self, timeout):
        """Serve monitor events (hello on CONNECTED) and read until every peer has the welcome to
        its latest hello, or `timeout` s pass; returns the peers without one. A welcomed peer is
        no longer read (its peerlist notifications wait in its queue), like an agent that does
        not look at them.

        Sockets are watched through their ZMQ_FD with epoll: zmq_poll over 2000 sockets costs
        about 2 ms a call here, which would make this client, not the router, the bottleneck."""
        ep = select.epoll()
        fds = {}

        def watch(sock, what):
            fd = sock.getsockopt(zmq.FD)
            fds[fd] = (sock, what)
            ep.register(fd, select.EPOLLIN)

        for i, m in enumerate(self.mons):
            watch(m, ("monitor", i))
        pending = set()
        for i, s in enumerate(self.socks):
            if self.welcomed[i] is None:
                watch(s, ("peer", i))
                pending.add(i)
        def serve(fd):
            sock, (kind, i) = fds[fd]
            if kind != "monitor":
                self._read(sock, i, pending, ep, fds)
                return
            while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                ev = zmq.utils.monitor.recv_monitor_message(sock)
                if ev["event"] & zmq.EVENT_CONNECTED and self.greet:
                    peer = self.socks[i]
                    if i not in pending:
                        watch(peer, ("peer", i))
                        pending.add(i)
                    self.hello(i)
                    # a send may consume the edge of the peer's ZMQ_FD: look now
                    self._read(peer, i, pending, ep, fds)

        deadline = time.monotonic() + timeout
        try:
            # ZMQ_FD only signals new activity: what arrived before it was watched is read now.
            for fd in list(fds):
                if fd in fds:
                    serve(fd)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for fd, _ in ep.poll(min(left, 0.5)):
                    if fd in fds:
                        serve(fd)
        finally:
            ep.close()
        return [i for i in range(self.n) if self.welcomed[i] is None]

    def _read(self, sock, i, pending, ep, fds):
        while i in pending and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            f = sock.recv_multipart(zmq.NOBLOCK)
            if len(f) >= 9 and f[4:6] == [b"hello", b"welcome"] and f[3] == self.ident[i]:
                self.welcomed[i] = time.monotonic()
                pending.discard(i)
                fd = sock.getsockopt(zmq.FD)
                ep.unregister(fd)
                del fds[fd]

    def connect_then_await_reconnect(self, router, timeout):
        """Connect without saying hello (ZMTP handshakes only: nobody registers, so no
        notifications) until `router` has completed every handshake, then arm the agents'
        behaviour for what comes next: a hello on every CONNECTED, a welcome awaited for it."""
        self.greet = False
        self.connect()
        deadline = time.monotonic() + timeout
        while router.stats()["handshakes_completed"] < self.n:
            assert time.monotonic() < deadline, "the swarm never connected"
            time.sleep(0.2)
        self.discard_first_connected(timeout)
        self.greet = True
        self.expect_reconnect()

    def close(self):
        for m in self.mons:
            m.close(linger=0)
        for s in self.socks:
            try:
                s.disable_monitor()
            except zmq.ZMQError:
                pass
            s.close(linger=0)


def _handshake_times(log, epoch):
    """Seconds after `epoch` (time.time()) of every `attached` line — a completed handshake —
    of a `-v` router log."""
    import datetime
    import re
    stamp = re.compile(r"^\[(\S+)Z .* attached from ")
    out = []
    for line in log.splitlines():
        m = stamp.match(line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
            out.append(t.timestamp() - epoch)
    return out


def figures(security, peers, restart):
    """One storm; returns a dict of figures (see main())."""
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 3 * peers + 64)
    router = StormRouter(client_keys=zmq.curve_keypair() if security == "curve" else None, verbose=True)
    sw = Swarm(ctx, router.tcp, peers, curve=router.curve(), monitor=restart)
    try:
        if restart:
            sw.connect_then_await_reconnect(router, 120)
            mine0 = own_cpu_seconds()
            t0 = router.kill9_and_restart()
            epoch = time.time() - (time.monotonic() - t0)
            cpu0 = router.cpu()
        else:
            cpu0, mine0, t0, epoch = router.cpu(), own_cpu_seconds(), time.monotonic(), time.time()
            sw.connect()
            sw.hello_all()
        missing = sw.run(120)
        last = max(w for w in sw.welcomed if w) - t0
        cpu, mine = router.cpu() - cpu0, own_cpu_seconds() - mine0
        handshakes = [t for t in _handshake_times(router.log(), epoch) if t >= 0]
        return {"missing": len(missing), "last_welcome": last, "last_handshake": max(handshakes),
                "router_cpu": cpu, "client_cpu": mine}
    finally:
        sw.close()
        ctx.destroy(linger=0)
        router.stop()
        router.cleanup()


def main():
    """Storm figures for the README and the issue: `python tests/interop/storm.py [--peers N]
    [--rounds R] [--security null curve] [--phase cold restart]` (VIPROUTER_BIN as for the
    suite). Per run, after the first connect (cold) or after READY=1 (restart): the last
    welcome this client saw; the last handshake the router completed (its `-v` log; the hello
    follows, with CURVE one client round trip later); router CPU (utime+stime) and this client's
    CPU over the same span."""
    import argparse
    import statistics
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--security", nargs="+", default=["null", "curve"])
    ap.add_argument("--phase", nargs="+", default=["cold", "restart"])
    args = ap.parse_args()
    for security in args.security:
        for phase in args.phase:
            runs = [figures(security, args.peers, phase == "restart") for _ in range(args.rounds)]
            keys = ["last_welcome", "last_handshake", "router_cpu", "client_cpu"]
            med = {k: statistics.median(r[k] for r in runs) for k in keys}
            print(f"{security:5} {phase:7} n={args.peers}: " + ", ".join(
                f"{k} {med[k]:.2f} s [{' '.join(f'{r[k]:.2f}' for r in runs)}]" for k in keys)
                + f"; never welcomed: {sum(r['missing'] for r in runs)}", flush=True)


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    main()
