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
import contextlib
import json
import os

import zmq

from test_curve import CurveRouter, b64, curve_agent, entry, welcomed, z85
from vipclient import VIP, Agent, fmt


def keystore(home, identity):
    """A VOLTTRON keystore for `identity` (what the platform's agents create on construction)."""
    pub, sec = zmq.curve_keypair()
    d = os.path.join(home, "keystores", identity)
    os.makedirs(d)
    with open(os.path.join(d, "keystore.json"), "w") as f:
        json.dump({"public": b64(pub), "secret": b64(sec)}, f)
    return pub, sec


@contextlib.contextmanager
def services_router(keys, extra_args=()):
    """(context, router): a CURVE router whose auth.json admits only `platform.auth` (key
    `keys['platform.auth']`); stopped (status 0) afterwards."""
    ctx = zmq.Context()
    r = CurveRouter([entry(keys["platform.auth"][0], "platform.auth")], extra_args=extra_args)
    try:
        yield ctx, r
    finally:
        ctx.destroy(linger=0)
        assert r.stop() == 0


def is_report(f):
    return len(f) == 7 and f[:5] == [b"", VIP, b"", b"", b"viprouter.auth"]


def assert_no_report(agent, why):
    """Drain `agent` until 0.5 s of silence; none of it may be a report."""
    while True:
        g = agent.poll_recv(0.5)
        if g is None:
            return
        assert not is_report(g), f"{why}: {fmt(g)}"


def test_inproc_services_are_admitted_from_their_keystores():
    ctx = zmq.Context()
    made = {}

    def prepare(home):
        for ident in ("platform.health", "aip", "control", "agent.x"):
            made[ident] = keystore(home, ident)

    r = CurveRouter([], prepare=prepare)
    try:
        for ident in ("platform.health", "aip", "control"):
            a = curve_agent(ctx, r, r.ipc, ident, made)
            assert welcomed(a), f"{ident} (keystore only, no auth.json entry) must be admitted"
            a.close()
        # An agent that only has a keystore (not a built-in service) is not.
        x = curve_agent(ctx, r, r.tcp, "agent.x", made)
        assert not welcomed(x, timeout=1.0)
        x.close()
    finally:
        ctx.destroy(linger=0)
        assert r.stop() == 0


def test_refusals_are_reported_to_platform_auth_only():
    keys = {n: zmq.curve_keypair() for n in ("platform.auth", "early", "stranger")}
    with services_router(keys, extra_args=["--auth-reports"]) as (ctx, r):
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
        by = Agent(ctx, r.tcp, "bystander", sockopts={zmq.CURVE_SERVERKEY: r.serverkey,
                                                      zmq.CURVE_PUBLICKEY: z85(ks["public"]),
                                                      zmq.CURVE_SECRETKEY: z85(ks["secret"])})
        by.hello()
        s = curve_agent(ctx, r, r.tcp, "stranger", keys)
        assert not welcomed(s, timeout=1.0)
        f, _ = auth.recv_matching(is_report, what="the stranger's report")
        assert f[5] == b"refused"
        assert json.loads(f[6])["credentials"] == b64(keys["stranger"][0])
        assert_no_report(by, "report leaked to a bystander")
        stats = json.loads(auth.query(b"stats"))
        assert stats["auth_reports_sent"] == 2, stats
        assert stats["rejected_auth"] >= 2, stats
        for a in (early, auth, by, s):
            a.close()


def test_no_reports_without_the_switch():
    keys = {n: zmq.curve_keypair() for n in ("platform.auth", "stranger")}
    with services_router(keys) as (ctx, r):
        auth = curve_agent(ctx, r, r.ipc, "platform.auth", keys)
        auth.hello()
        s = curve_agent(ctx, r, r.tcp, "stranger", keys)
        assert not welcomed(s, timeout=1.0)
        assert_no_report(auth, "report without --auth-reports")
        assert json.loads(auth.query(b"stats"))["auth_reports_sent"] == 0
        auth.close()
        s.close()


def test_setup_mode_admits_and_reports():
    keys = {n: zmq.curve_keypair() for n in ("platform.auth", "newcomer")}
    with services_router(keys, extra_args=["--setup-mode", "--auth-reports"]) as (ctx, r):
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
