"""CURVE, PLAIN and VOLTTRON authentication against real libzmq peers (issue #3).

ZMTP.md §7 (CURVE as libzmq does it), §6 (PLAIN), §8 (ZAP semantics); VIP.md §9 (keystore,
known_hosts, auth.json, the decision, reload).  The router runs with allow-auth (its default):
every endpoint is a CURVE server, plus one extra tcp endpoint bound with `?server=PLAIN`.
"""
import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest
import zmq
import zmq.utils.z85

from conftest import free_port, router_bin
from vipclient import VIP, Agent

WAIT = 5.0


def b64(z85_key):
    """libzmq's Z85 key text -> VOLTTRON's 43-char URL-safe base64 (VIP.md §9.2)."""
    return base64.urlsafe_b64encode(zmq.utils.z85.decode(z85_key)).rstrip(b"=").decode()


def z85(b64_key):
    return zmq.utils.z85.encode(base64.urlsafe_b64decode(b64_key + "="))


class CurveRouter:
    def __init__(self, entries, extra_config="", raw_auth=None, extra_args=(), prepare=None, files=None):
        """`extra_args` go to the router's command line; `prepare(home)` runs before it starts;
        `files` (name -> text) are written into VOLTTRON_HOME first."""
        self.home = tempfile.mkdtemp(prefix="vipcv-", dir="/tmp")
        with open(os.path.join(self.home, "config"), "w") as f:
            f.write("[volttron]\ninstance-name = ctest\n" + extra_config)
        self.write_auth(entries, raw=raw_auth)
        for name, text in (files or {}).items():  # e.g. external_platform_discovery.json
            with open(os.path.join(self.home, name), "w") as f:
                f.write(text)
        self.port = free_port()
        self.plain_port = free_port()
        self.tcp = f"tcp://127.0.0.1:{self.port}"
        self.plain = f"tcp://127.0.0.1:{self.plain_port}"
        self.ipc = f"ipc://@{self.home}/run/vip.socket"
        self.log_path = os.path.join(self.home, "router.stderr")
        self._log = open(self.log_path, "wb")
        argv = [router_bin(), "--volttron-home", self.home, "--vip-address", self.tcp,
                "--vip-address", self.plain + "?server=PLAIN", "-v", *extra_args]
        if prepare is not None:
            prepare(self.home)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        ks = os.path.join(self.home, "keystore")
        while not os.path.exists(ks) or os.path.getsize(ks) == 0:
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "no keystore written"
            time.sleep(0.05)
        time.sleep(0.2)
        with open(ks) as f:
            self.keystore = json.load(f)
        self.serverkey = z85(self.keystore["public"])

    def write_auth(self, entries, raw=None):
        path = os.path.join(self.home, "auth.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(raw if raw is not None else json.dumps({"allow": entries, "version": {"major": 1, "minor": 4}}))
        os.rename(tmp, path)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5)
        self._log.close()
        rc = self.proc.returncode
        shutil.rmtree(self.home, ignore_errors=True)
        return rc


def entry(pub, user_id, **kw):
    e = {"domain": None, "address": None, "mechanism": "CURVE", "credentials": b64(pub),
         "user_id": user_id, "identity": user_id, "capabilities": {}, "enabled": True}
    e.update(kw)
    return e


@pytest.fixture
def keys():
    return {name: zmq.curve_keypair() for name in ("agent.a", "agent.b", "stranger", "late")}


@pytest.fixture
def router(keys):
    r = CurveRouter([entry(keys["agent.a"][0], "agent.a"), entry(keys["agent.b"][0], "agent.b"),
                     {"mechanism": "PLAIN", "credentials": "admin:secret", "user_id": "plainuser"}])
    yield r
    assert r.stop() == 0


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def curve_agent(ctx, router, ep, name, keys, keyname=None):
    pub, sec = keys[keyname or name]
    return Agent(ctx, ep, name, sockopts={zmq.CURVE_SERVERKEY: router.serverkey,
                                          zmq.CURVE_PUBLICKEY: pub, zmq.CURVE_SECRETKEY: sec})


def welcomed(agent, timeout=WAIT):
    try:
        agent.send(b"", b"hello", b"hello", msgid=b"h")
    except zmq.Again:  # a refused connection has no pipe left to queue on
        return False
    f = agent.poll_recv(timeout)
    return f is not None and f[4:6] == [b"hello", b"welcome"]


def admitted_within(ctx, router, name, keys, seconds=2.0):
    """Connect with `name`'s key until welcomed (True) or `seconds` pass (False): auth.json
    changes apply to new handshakes once the router has seen the file."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a = curve_agent(ctx, router, router.tcp, name, keys)
        try:
            if welcomed(a, timeout=0.5):
                return True
        finally:
            a.close()
    return False


@pytest.mark.parametrize("which", ["tcp", "ipc"])
def test_admitted_keys_hello_and_route_1mib(router, ctx, keys, which):
    ep = getattr(router, which)
    a = curve_agent(ctx, router, ep, "agent.a", keys)
    b = curve_agent(ctx, router, router.tcp if which == "ipc" else router.ipc, "agent.b", keys)
    try:
        assert welcomed(a) and welcomed(b)
        a.recv_matching(lambda f: f[4:7] == [b"peerlist", b"add", b"agent.b"], WAIT)
        big = os.urandom(1 << 20)
        # USER_ID cannot be spoofed over CURVE either (VIP.md §3.5): it is the sender's identity.
        a.send(b"agent.b", b"RPC", big, b"", msgid=b"1795550813.8764837066011", user=b"platform.auth")
        f = b.recv(WAIT)
        assert f[:5] == [b"agent.a", VIP, b"agent.a", b"1795550813.8764837066011", b"RPC"]
        assert f[5] == big and f[6] == b""
        b.send(b"agent.a", b"RPC", b"back", msgid=b"r")
        assert a.recv(WAIT)[:6] == [b"agent.b", VIP, b"agent.b", b"r", b"RPC", b"back"]
        # the CURVE connection carries heartbeats too: PING inside MESSAGE is answered
        assert a.query(b"serverkey") == router.keystore["public"].encode()
    finally:
        a.close()
        b.close()


def test_keystore_and_known_hosts(router):
    ks = os.path.join(router.home, "keystore")
    assert stat.S_IMODE(os.stat(ks).st_mode) == 0o600
    assert len(router.keystore["public"]) == 43 and len(router.keystore["secret"]) == 43
    with open(os.path.join(router.home, "known_hosts")) as f:
        kh = json.load(f)
    assert kh["@"] == router.keystore["public"]
    assert kh[f"127.0.0.1:{router.port}"] == router.keystore["public"]


def test_heartbeating_curve_client_stays_connected(router, ctx, keys):
    pub, sec = keys["agent.a"]
    a = Agent(ctx, router.tcp, "agent.a", sockopts={
        zmq.CURVE_SERVERKEY: router.serverkey, zmq.CURVE_PUBLICKEY: pub, zmq.CURVE_SECRETKEY: sec,
        zmq.HEARTBEAT_IVL: 100, zmq.HEARTBEAT_TIMEOUT: 300})
    try:
        assert welcomed(a)
        time.sleep(1.5)  # libzmq drops the connection after 300 ms without a PONG
        a.send(b"", b"ping", b"ping", b"x", msgid=b"p")
        assert a.recv(WAIT)[4:7] == [b"ping", b"pong", b"x"]
        assert "closed by peer" not in router.log().split("admitted")[-1]
    finally:
        a.close()


def test_unknown_key_is_refused_during_the_handshake(router, ctx, keys):
    s = curve_agent(ctx, router, router.tcp, "stranger", keys)
    try:
        assert not welcomed(s, timeout=1.5)
        log = router.log()
        assert "refused CURVE key " + b64(keys["stranger"][0]) in log
        assert "127.0.0.1" in log
    finally:
        s.close()


def test_null_client_to_curve_endpoint_is_refused(router, ctx):
    n = Agent(ctx, router.tcp, "nullagent")
    try:
        assert not welcomed(n, timeout=1.5)
    finally:
        n.close()
    # libzmq sees our CURVE greeting and closes first; either side's close is fine, but the
    # router never admits it
    assert "nullagent" not in router.log()


def test_plain_endpoint(router, ctx):
    good = Agent(ctx, router.plain, "plainagent", sockopts={zmq.PLAIN_USERNAME: b"admin", zmq.PLAIN_PASSWORD: b"secret"})
    bad = Agent(ctx, router.plain, "plainbad", sockopts={zmq.PLAIN_USERNAME: b"admin", zmq.PLAIN_PASSWORD: b"wrong"})
    try:
        assert welcomed(good)
        assert not welcomed(bad, timeout=1.5)
        assert "refused PLAIN user \"admin\"" in router.log()
    finally:
        good.close()
        bad.close()


def test_auth_json_edit_admits_a_new_key_without_restart(router, ctx, keys):
    late = curve_agent(ctx, router, router.tcp, "late", keys)
    assert not welcomed(late, timeout=1.0)
    late.close()
    router.write_auth([entry(keys["agent.a"][0], "agent.a"), entry(keys["late"][0], "late")])
    assert admitted_within(ctx, router, "late", keys), (
        "a key added to auth.json is admitted within 2 s, without restart\n" + router.log()[-2000:])
    # agent.b's entry is gone now: new connections with its key are refused
    b = curve_agent(ctx, router, router.tcp, "agent.b", keys)
    try:
        assert not welcomed(b, timeout=1.0)
    finally:
        b.close()


def test_invalid_auth_json_keeps_the_previous_rules(router, ctx, keys):
    a0 = curve_agent(ctx, router, router.tcp, "agent.a", keys)
    assert welcomed(a0)
    router.write_auth(None, raw='{"allow": [ this is not json')
    time.sleep(0.5)
    assert "keeping the previous rules" in router.log()
    a = curve_agent(ctx, router, router.ipc, "agent.b", keys)
    try:
        assert welcomed(a), "the old rules still admit agent.b"
        a0.send(b"", b"ping", b"ping", b"still", msgid=b"p")
        f, _ = a0.recv_matching(lambda f: f[3] == b"p", WAIT, "pong")
        assert f[4:7] == [b"ping", b"pong", b"still"], "established peers are not dropped"
    finally:
        a.close()
        a0.close()


def test_invalid_auth_json_at_start_admits_the_platform_only(ctx, keys):
    """With no previous rules to keep, a broken auth.json at start leaves the platform's own
    entries (VOLTTRON loads such a file as empty): the router runs, the platform key is admitted,
    other keys are refused until the file is fixed, which is picked up without restart."""
    r = CurveRouter(None, raw_auth='{"allow": [ this is not json')
    try:
        assert "starting with the platform's own entries only" in r.log(), r.log()
        pub, sec = z85(r.keystore["public"]), z85(r.keystore["secret"])
        t = Agent(ctx, r.tcp, "tool", sockopts={zmq.CURVE_SERVERKEY: r.serverkey,
                                                  zmq.CURVE_PUBLICKEY: pub, zmq.CURVE_SECRETKEY: sec})
        try:
            assert welcomed(t), "the platform's own key is admitted"
        finally:
            t.close()
        a = curve_agent(ctx, r, r.tcp, "agent.a", keys)
        try:
            assert not welcomed(a, timeout=1.0), "a key of the broken file is not admitted"
        finally:
            a.close()
        r.write_auth([entry(keys["agent.a"][0], "agent.a")])
        assert admitted_within(ctx, r, "agent.a", keys), (
            "the fixed file admits agent.a without restart\n" + r.log()[-2000:])
    finally:
        assert r.stop() == 0


def test_sighup_reloads(router, ctx, keys):
    router.write_auth([entry(keys["late"][0], "late")])
    os.kill(router.proc.pid, signal.SIGHUP)
    assert admitted_within(ctx, router, "late", keys)
    assert "SIGHUP: reloading" in router.log()


def test_identity_binding_switch(ctx, keys):
    r = CurveRouter([entry(keys["agent.a"][0], "agent.a")], extra_config="[viprouter]\nidentity-binding = True\n")
    try:
        liar = Agent(ctx, r.tcp, "control", sockopts={zmq.CURVE_SERVERKEY: r.serverkey,
                                                       zmq.CURVE_PUBLICKEY: keys["agent.a"][0],
                                                       zmq.CURVE_SECRETKEY: keys["agent.a"][1]})
        assert not welcomed(liar, timeout=1.5)
        liar.close()
        honest = curve_agent(ctx, r, r.tcp, "agent.a", keys)
        assert welcomed(honest)
        honest.close()
        assert "identity not bound to its key" in r.log()
    finally:
        assert r.stop() == 0


def test_keygen_pair_is_consistent_with_libzmq():
    out = subprocess.check_output([router_bin(), "keygen"]).decode().splitlines()
    pair = json.loads(out[0])
    pub_z85 = out[1].split(": ")[1].encode()
    sec_z85 = out[2].split(": ")[1].encode()
    assert len(pair["public"]) == 43 and len(pair["secret"]) == 43
    assert z85(pair["public"]) == pub_z85 and z85(pair["secret"]) == sec_z85
    assert zmq.curve_public(sec_z85) == pub_z85


def test_protected_topics_from_files_and_capability_reload(ctx, keys):
    """VIP.md §7.9: protected_topics.json + auth.json capabilities, read by the router itself;
    a capability granted in auth.json takes effect without restart (issue #4)."""
    a_entry = entry(keys["agent.a"][0], "agent.a", capabilities={"can_publish": None})
    b_entry = entry(keys["agent.b"][0], "agent.b", capabilities={"other": None})
    r = CurveRouter([a_entry, b_entry])
    try:
        with open(os.path.join(r.home, "protected_topics.json"), "w") as f:
            json.dump({"write-protect": [{"topic": "secret", "capabilities": ["can_publish"]}]}, f)
        os.kill(r.proc.pid, signal.SIGHUP)
        time.sleep(0.3)
        a = curve_agent(ctx, r, r.tcp, "agent.a", keys)
        b = curve_agent(ctx, r, r.ipc, "agent.b", keys)
        assert welcomed(a) and welcomed(b)
        a.send(b"", b"pubsub", b"subscribe", b'{"prefix": "", "bus": "", "all_platforms": false}', msgid=b"s")
        a.recv_matching(lambda f: f[3] == b"s", WAIT, "subscribe reply")
        body = b'{"bus": "", "headers": {}, "message": 1}'

        def publish(agent, msgid):
            agent.send(b"", b"pubsub", b"publish", b"secretive/x", body, msgid=msgid)
            return agent.recv_matching(lambda f: f[3] == msgid and f[4] != b"pubsub" or
                                       (f[3] == msgid and f[5:6] == [b"request_response"]), WAIT, "reply")[0]

        f = publish(b, b"p1")
        assert f[4:6] == [b"error", b"-32001"], f
        assert f[6] == (b"to publish to topic \"secretive/x\" requires capabilities ['can_publish'], "
                        b"but capability list {'other': None} was provided")
        f = publish(a, b"p2")
        assert f[4:7] == [b"pubsub", b"request_response", b"\x01\x00\x00\x00"], f
        # grant b the capability in auth.json: no restart
        b_entry["capabilities"] = {"can_publish": None}
        r.write_auth([a_entry, b_entry])
        deadline = time.monotonic() + 2.0
        while True:
            f = publish(b, b"p3")
            if f[4:5] == [b"pubsub"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert f[4:7] == [b"pubsub", b"request_response", b"\x01\x00\x00\x00"], f
        a.close()
        b.close()
    finally:
        assert r.stop() == 0


def test_platform_key_is_admitted_like_volttron_does(router, ctx):
    """VIP.md §9.7: the platform admits its own key (user `platform`) on every start, so tools
    that connect with the platform keystore (build_agent without keys) are welcomed."""
    pub, sec = z85(router.keystore["public"]), z85(router.keystore["secret"])
    t = Agent(ctx, router.tcp, "tool", sockopts={zmq.CURVE_SERVERKEY: router.serverkey,
                                                  zmq.CURVE_PUBLICKEY: pub, zmq.CURVE_SECRETKEY: sec})
    try:
        assert welcomed(t)
    finally:
        t.close()


def test_every_refused_key_is_logged_with_its_key(router, ctx):
    others = [zmq.curve_keypair() for _ in range(3)]
    for i, (pub, sec) in enumerate(others):
        s = Agent(ctx, router.tcp, f"refused{i}", sockopts={zmq.CURVE_SERVERKEY: router.serverkey,
                                                          zmq.CURVE_PUBLICKEY: pub, zmq.CURVE_SECRETKEY: sec})
        assert not welcomed(s, timeout=0.5)
        s.close()
    log = router.log()
    for pub, _ in others:
        assert "refused CURVE key " + b64(pub) in log


def test_fanout_to_curve_and_plain_subscribers_at_once(router, ctx, keys):
    """One publish fans out to CURVE subscribers (sealed per connection) and a PLAIN subscriber
    (the shared verbatim encoding) in the same turn: every copy intact, in order, 300 times."""
    a = curve_agent(ctx, router, router.tcp, "agent.a", keys)
    b = curve_agent(ctx, router, router.ipc, "agent.b", keys)
    p = Agent(ctx, router.plain, "plainagent", sockopts={zmq.PLAIN_USERNAME: b"admin", zmq.PLAIN_PASSWORD: b"secret"})
    try:
        subs = [a, b, p]
        for s in subs:
            assert welcomed(s)
            s.send(b"", b"pubsub", b"subscribe", b'{"prefix": "devices/", "bus": "", "all_platforms": false}',
                   msgid=b"s")
            s.recv_matching(lambda f: f[3] == b"s", WAIT, "subscribe reply")
        n = 300
        for i in range(n):
            body = json.dumps({"bus": "", "headers": {"i": i}, "message": "x" * (i % 300)}).encode()
            a.send(b"", b"pubsub", b"publish", b"devices/bench/%d" % i, body, msgid=b"p%d" % i)
        for s in subs:
            got = []
            while len(got) < n:
                f, _ = s.recv_matching(lambda f: f[4:6] == [b"pubsub", b"publish"], WAIT, "delivery")
                got.append(f)
            for i, f in enumerate(got):
                assert f[3] == b"p%d" % i and f[6] == b"devices/bench/%d" % i, f[:7]
                d = json.loads(f[7])
                assert d["sender"] == "agent.a" and d["headers"] == {"i": i} and d["message"] == "x" * (i % 300), d
    finally:
        a.close()
        b.close()
        p.close()


def test_null_endpoint_with_auth_needs_a_null_entry(ctx, keys):
    """VOLTTRON binds every endpoint with ZAP domain `vip` while auth is on, so libzmq asks the
    ZAP handler about NULL connections too: a `?server=NULL` vip-address admits only peers
    matching an enabled NULL allow entry (VIP.md §9.4, §9.6), never everyone."""
    null_port = free_port()
    null_ep = f"tcp://127.0.0.1:{null_port}"
    r = CurveRouter([entry(keys["agent.a"][0], "agent.a")],
                    extra_config=f"vip-address = {null_ep}?server=NULL\n")
    try:
        n = Agent(ctx, null_ep, "nullstranger")
        try:
            assert not welcomed(n, timeout=1.5), "NULL peer admitted without a NULL allow entry"
        finally:
            n.close()
        r.write_auth([entry(keys["agent.a"][0], "agent.a"),
                      {"mechanism": "NULL", "address": "127.0.0.1", "user_id": "nulluser"}])
        time.sleep(0.5)
        ok = Agent(ctx, null_ep, "nullfriend")
        try:
            assert welcomed(ok)
        finally:
            ok.close()
    finally:
        assert r.stop() == 0


def test_null_ipc_endpoint_admits_the_platform_uid(ctx, keys):
    """VOLTTRON's ZAP handler admits a NULL ipc peer running under the platform's own uid
    (address `localhost:<uid>:<gid>:<pid>`) without an entry (VIP.md §9.6)."""
    home_tag = tempfile.mktemp(prefix="vipnull-", dir="/tmp")
    null_ipc = f"ipc://@{home_tag}/null.socket"
    r = CurveRouter([entry(keys["agent.a"][0], "agent.a")], extra_config=f"vip-address = {null_ipc}?server=NULL\n")
    try:
        a = Agent(ctx, null_ipc, "samuid")
        try:
            assert welcomed(a)
        finally:
            a.close()
    finally:
        assert r.stop() == 0
