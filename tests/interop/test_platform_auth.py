"""What VOLTTRON's in-process router and ZAP handler did for the platform, done by a router in
its own process (issue #10, deliverable 3; `src/server/auth_report.rs`):

* the built-in services that reached VOLTTRON 9's router over inproc (`platform.health`, the
  `aip` agent of `control.shutdown`) are admitted from their keystores, like the others;
* `--auth-reports`: every peer auth.json refuses is reported to the `platform.auth` peer as
  `viprouter.auth refused {domain, address, mechanism, credentials, identity}` (what VOLTTRON's
  ZAP loop turned into a pending authorization), to nobody else, also when platform.auth
  connects after the refusal;
* `--setup-mode`: such peers are admitted and reported as `admitted`.

The VOLTTRON side (the AuthService that turns reports into pending entries and auth.json
entries) is tested with the real platform in tests/volttron9/.
"""
import json
import os

import zmq

from test_curve import CurveRouter, b64, curve_agent, entry, welcomed
from vipclient import VIP, Agent, fmt


def keystore(home, identity):
    """A VOLTTRON keystore for `identity` (what the platform's agents create on construction)."""
    pub, sec = zmq.curve_keypair()
    d = os.path.join(home, "keystores", identity)
    os.makedirs(d)
    with open(os.path.join(d, "keystore.json"), "w") as f:
        json.dump({"public": b64(pub), "secret": b64(sec)}, f)
    return pub, sec


def services_router(keys, extra_args=()):
    """A CURVE router whose auth.json admits only `platform.auth` (key `keys['platform.auth']`)."""
    return CurveRouter([entry(keys["platform.auth"][0], "platform.auth")], extra_args=extra_args)


def is_report(f):
    return len(f) == 7 and f[:5] == [b"", VIP, b"", b"", b"viprouter.auth"]


def test_inproc_services_are_admitted_from_their_keystores():
    ctx = zmq.Context()
    made = {}

    def prepare(home):
        for ident in ("platform.health", "aip", "control"):
            made[ident] = keystore(home, ident)

    r = CurveRouter([], prepare=prepare)
    try:
        for ident in made:
            a = curve_agent(ctx, r, r.ipc, ident, made)
            assert welcomed(a), f"{ident} (keystore only, no auth.json entry) must be admitted"
            a.close()
        # An agent that only has a keystore (not a built-in service) is not.
        other = {"agent.x": zmq.curve_keypair()}
        x = curve_agent(ctx, r, r.tcp, "agent.x", other)
        assert not welcomed(x, timeout=1.0)
        x.close()
    finally:
        ctx.destroy(linger=0)
        assert r.stop() == 0


def test_refusals_are_reported_to_platform_auth_only():
    ctx = zmq.Context()
    keys = {n: zmq.curve_keypair() for n in ("platform.auth", "early", "stranger")}
    r = services_router(keys, extra_args=["--auth-reports"])
    try:
        # Refused before platform.auth is connected: the report waits for it.
        early = curve_agent(ctx, r, r.tcp, "early", keys)
        assert not welcomed(early, timeout=1.0)
        auth = curve_agent(ctx, r, r.ipc, "platform.auth", keys)
        auth.hello()
        f, _ = auth.recv_matching(is_report, what="the report of the early refusal")
        assert f[5] == b"refused", fmt(f)
        rep = json.loads(f[6])
        assert rep == {"domain": "vip", "address": "127.0.0.1", "mechanism": "CURVE",
                       "credentials": b64(keys["early"][0]), "identity": "early"}, rep

        # A bystander (platform key, admitted) sees no report.
        ks = r.keystore
        from test_curve import z85
        by = Agent(ctx, r.tcp, "bystander", sockopts={zmq.CURVE_SERVERKEY: r.serverkey,
                                                      zmq.CURVE_PUBLICKEY: z85(ks["public"]),
                                                      zmq.CURVE_SECRETKEY: z85(ks["secret"])})
        by.hello()
        s = curve_agent(ctx, r, r.tcp, "stranger", keys)
        assert not welcomed(s, timeout=1.0)
        f, _ = auth.recv_matching(is_report, what="the stranger's report")
        assert f[5] == b"refused"
        assert json.loads(f[6])["credentials"] == b64(keys["stranger"][0])
        while True:
            g = by.poll_recv(0.5)
            if g is None:
                break
            assert not is_report(g), f"report leaked to a bystander: {fmt(g)}"
        stats = json.loads(auth.query(b"stats"))
        assert stats["auth_reports_sent"] == 2, stats
        assert stats["rejected_auth"] >= 2, stats
        for a in (early, auth, by, s):
            a.close()
    finally:
        ctx.destroy(linger=0)
        assert r.stop() == 0


def test_no_reports_without_the_switch():
    ctx = zmq.Context()
    keys = {n: zmq.curve_keypair() for n in ("platform.auth", "stranger")}
    r = services_router(keys)
    try:
        auth = curve_agent(ctx, r, r.ipc, "platform.auth", keys)
        auth.hello()
        s = curve_agent(ctx, r, r.tcp, "stranger", keys)
        assert not welcomed(s, timeout=1.0)
        while True:
            g = auth.poll_recv(0.5)
            if g is None:
                break
            assert not is_report(g), fmt(g)
        assert json.loads(auth.query(b"stats"))["auth_reports_sent"] == 0
        auth.close()
        s.close()
    finally:
        ctx.destroy(linger=0)
        assert r.stop() == 0


def test_setup_mode_admits_and_reports():
    ctx = zmq.Context()
    keys = {n: zmq.curve_keypair() for n in ("platform.auth", "newcomer")}
    r = services_router(keys, extra_args=["--setup-mode", "--auth-reports"])
    try:
        auth = curve_agent(ctx, r, r.ipc, "platform.auth", keys)
        auth.hello()
        n = curve_agent(ctx, r, r.tcp, "newcomer", keys)
        assert welcomed(n), "setup mode admits a key auth.json does not know"
        f, _ = auth.recv_matching(is_report, what="the setup-mode report")
        assert f[5] == b"admitted", fmt(f)
        assert json.loads(f[6])["credentials"] == b64(keys["newcomer"][0])
        stats = json.loads(auth.query(b"stats"))
        assert stats["admitted_setup_mode"] == 1 and stats["rejected_auth"] == 0, stats
        assert "setup mode: admitted" in r.log()
        auth.close()
        n.close()
    finally:
        ctx.destroy(linger=0)
        assert r.stop() == 0
