"""Agent-level checks with modular VOLTTRON's own agent library, run in a fresh interpreter.

    python modular_client.py seed  --home H [--null]
    python modular_client.py run   --home H --address A --security curve|null --auth inprocess|platform
    python modular_client.py hold  --home H --address A --security ...   (restart tests)

``seed`` creates the credential files of the test identities with modular's own
``FileBasedCredentialStore`` and ``VolttronCredentialsCreator`` (and ``platform.json``, the
server pair, as the platform would on first start) and writes ``authz.json`` (AUTHZ below);
``run`` connects real modular ``Agent``s and raw libzmq (pyzmq) sockets to the router at A and
prints JSON objects of the observations so far (``{"check": value, ...}``), the last one
complete, then ``DONE``;
``hold`` connects two agents, prints ``READY``, waits for a line on stdin (the router is
restarted meanwhile), then prints what still works. The test files assert on the observations,
router by router (``test_agents.py``, ``test_restart.py``).

``--auth inprocess``: no platform runs, so this program runs modular's real ``platform.auth``
(``VolttronAuthService`` from volttron-lib-auth) itself, as the platform would; modular agents
ask it before their first RPC and before every subscribe and publish. ``--auth platform``: the
platform's own. With ``--security null`` everything connects with key-less credentials (NULL);
``platform.auth`` too — its credential store answers it key-less (:class:`NullStore`), the only
change to the real service.

Each observation is a plain value so that the same program measures viprouter and modular's own
router (the table of README "Modular VOLTTRON" is made from them).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

# Test identities (credential files) and what authz.json gives them.
AGENTS = ["agent.a", "agent.b", "agent.pub", "agent.sub", "agent.both", "stranger", "raw.a", "raw.stranger", "raw.sub"]
AUTHZ: Dict[str, Any] = {
    "protected_topics": ["secret"],
    "agents": {
        "agent.a": {"comments": "viprouter test"},
        "agent.b": {"comments": "viprouter test"},
        "agent.pub": {"pubsub_capabilities": {"secret": "publish"}},
        "agent.sub": {"pubsub_capabilities": {"secret": "subscribe"}},
        "agent.both": {"pubsub_capabilities": {"secret": "pubsub"}},
        "stranger": {"comments": "no capabilities"},
        "raw.a": {"comments": "hand-made libzmq client"},
        "raw.stranger": {"comments": "hand-made libzmq client, no capabilities"},
        "raw.sub": {"pubsub_capabilities": {"secret": "subscribe"}},
    },
}
WAIT = 5.0  # seconds for anything that should happen


def seed(home: Path) -> None:
    from volttron.auth.zap.credential_store import FileBasedCredentialStore
    from volttron.auth.zap.credentials_creator import VolttronCredentialsCreator
    from volttron.types.auth.auth_credentials import IdentityNotFound

    store = FileBasedCredentialStore(home / "credentials_store")
    creator = VolttronCredentialsCreator()
    for ident in ["platform", *AGENTS]:
        try:
            store.retrieve_credentials(identity=ident)
        except IdentityNotFound:
            store.store_credentials(credentials=creator.create(identity=ident))
    (home / "authz.json").write_text(json.dumps(AUTHZ, indent=2))


def credentials(home: Path, ident: str, null: bool) -> Any:
    from volttron.types.auth.auth_credentials import Credentials, VolttronCredentials

    if null:
        return Credentials(identity=ident)
    return VolttronCredentials.load_from_file(home / "credentials_store" / f"{ident}.json")


def start_auth_service(home: Path, address: str, null: bool) -> Any:
    """modular's real platform.auth, as the platform builds it (run_server.py:405-423)."""
    import gevent
    from volttron.auth.auth_service import VolttronAuthService
    from volttron.auth.authz_manager import VolttronAuthzManager
    from volttron.auth.zap.credential_store import FileBasedCredentialStore
    from volttron.auth.zap.credentials_creator import VolttronCredentialsCreator
    from volttron.server.server_options import ServerOptions
    from volttron.types.auth.auth_credentials import Credentials

    class NullStore(FileBasedCredentialStore):
        """Answers platform.auth's own credentials key-less (NULL); everything else as is."""

        def retrieve_credentials(self, **kwargs: Any) -> Any:
            if null and kwargs.get("identity") == "platform.auth":
                return Credentials(identity="platform.auth")
            return super().retrieve_credentials(**kwargs)

    opts = ServerOptions(volttron_home=home)
    opts.service_address = address
    svc = VolttronAuthService(
        credentials_store=NullStore(home / "credentials_store"),
        credentials_creator=VolttronCredentialsCreator(),
        authenticator=None,
        authorizer=None,
        authz_manager=VolttronAuthzManager(options=opts),
        server_options=opts,
    )
    gevent.spawn(svc.core.run)
    return svc


def make_agent_class() -> Any:
    from volttron.client.vip.agent import RPC, Agent

    class Peer(Agent):
        @RPC.export
        def echo(self, x: Any) -> Any:
            return x

    return Peer


def connect(cls: Any, home: Path, address: str, ident: str, null: bool) -> Any:
    import gevent
    from volttron.types.agent_context import AgentOptions

    agent = cls(
        credentials=credentials(home, ident, null),
        address=address,
        options=AgentOptions(enable_store=False, heartbeat_autostart=False),
    )
    ev = gevent.event.Event()
    gevent.spawn(agent.core.run, ev)
    with gevent.Timeout(15):
        ev.wait()
    return agent


def settled(x: Any) -> Any:
    """A subscribe's result is an AsyncResult holding another (``@spawn`` around the call)."""
    while hasattr(x, "get"):
        x = x.get(timeout=WAIT)
    return x


def observe(obs: Dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    """Record ``fn()``'s value, or the exception's type and message, and print what is known."""
    try:
        obs[name] = settled(fn())
    except BaseException as e:  # gevent.Timeout is a BaseException
        obs[name] = f"{type(e).__name__}: {e}"
    checkpoint(obs)


# --- raw libzmq peers (pyzmq), to send what an agent would not -----------------------------


class Raw:
    """A DEALER speaking VIP by hand."""

    def __init__(self, address: str, ident: str, server_key: str = "", keys: tuple = ()) -> None:
        import zmq

        self.zmq = zmq
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IDENTITY, ident.encode())
        if server_key:
            from volttron.auth.zap.credentials_creator import decode_key  # 43-char form → raw bytes

            self.sock.curve_serverkey = decode_key(server_key)
            self.sock.curve_publickey = decode_key(keys[0])
            self.sock.curve_secretkey = decode_key(keys[1])
        self.sock.connect(address)

    def send(self, *frames: Any) -> None:
        self.sock.send_multipart([f if isinstance(f, bytes) else str(f).encode() for f in frames])

    def recv(self, timeout: float = WAIT) -> List[bytes]:
        if self.sock.poll(int(timeout * 1000)):
            return list(self.sock.recv_multipart())
        return []

    def until(self, pred: Callable[[List[bytes]], bool], timeout: float = WAIT) -> List[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m and pred(m):
                return m
        return []

    def close(self) -> None:
        self.sock.close(0)


def raw_for(home: Path, address: str, ident: str, null: bool, key_of: str = "") -> Raw:
    if null:
        return Raw(address, ident)
    c = json.loads((home / "credentials_store" / f"{key_of or ident}.json").read_text())
    server = json.loads((home / "credentials_store" / "platform.json").read_text())["publickey"]
    return Raw(address, ident, server, (c["publickey"], c["secretkey"]))


def text(frames: List[bytes]) -> List[str]:
    return [f.decode("latin-1") for f in frames]


def welcome(r: Raw) -> Any:
    r.send(b"", b"VIP1", b"", b"h1", b"hello", b"hello")
    m = r.until(lambda m: m[4:6] == [b"hello", b"welcome"])
    return "welcome" if m else "no welcome (refused)"


def raw_checks(obs: Dict[str, Any], home: Path, address: str, null: bool) -> None:
    """What only a hand-made client can send (the agent library checks with platform.auth
    first, or never sends it)."""
    import zmq

    s = raw_for(home, address, "raw.stranger", null)
    welcome(s)
    s.send(b"", b"VIP1", b"", b"p1", b"pubsub", b"publish", b"secret/x", json.dumps({"bus": "", "headers": {}, "message": 1}))
    obs["raw protected publish (no capability)"] = text(s.until(lambda m: m[4] == b"error") or [])[4:]
    # USER_ID claims an admin identity (modular's router trusts that frame on publish).
    s.send(b"", b"VIP1", b"platform.control", b"p2", b"pubsub", b"publish", b"secret/y", json.dumps({"bus": "", "headers": {}, "message": 2}))
    reply = s.until(lambda m: m[3] == b"p2" and m[4] in (b"error", b"pubsub"))
    obs["raw USER_ID spoof publish"] = "refused" if reply and reply[4] == b"error" else "accepted"
    s.close()
    sub = raw_for(home, address, "raw.sub", null)
    welcome(sub)
    sub.send(b"", b"VIP1", b"", b"s1", b"pubsub", b"subscribe", json.dumps({"prefix": "secret/", "bus": "", "all_platforms": False}))
    reply = sub.until(lambda m: m[3] == b"s1")
    obs["raw subscribe with a subscribe capability"] = "error -32001" if reply and reply[4] == b"error" else "accepted"
    sub.close()
    m = raw_for(home, address, "raw.a", null)
    welcome(m)
    m.send(b"agent.missing", b"VIP1", b"", b"1796588451.873989", b"RPC", b"{}")
    e = m.until(lambda f: f[4] == b"error")
    obs["router reply to a missing peer"] = text(e)[4:] if e else "none"
    obs["router reply to a missing peer: MSG_ID"] = repr(e[3]) if e else "none"
    m.close()
    if not null:
        intruder = Raw(address, "intruder", json.loads((home / "credentials_store" / "platform.json").read_text())["publickey"],
                       tuple(_random_keys()))
        obs["unknown CURVE key"] = welcome(intruder)
        intruder.close()
        thief = raw_for(home, address, "impostor", null, key_of="raw.stranger")
        obs["a known key under another identity"] = welcome(thief)
        thief.close()
    del zmq


def _random_keys() -> List[str]:
    import zmq
    from volttron.auth.zap.credentials_creator import encode_key

    return [encode_key(k) for k in zmq.curve_keypair()]


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """One part of the checks (``--part``); each part runs in its own process, because a
    modular agent whose loop ends (as one refused by modular's router does) can freeze its
    whole process (``checkpoint``)."""
    import gevent

    home, address, null = Path(args.home), args.address, args.security == "null"
    obs: Dict[str, Any] = {}
    if args.auth == "inprocess":
        start_auth_service(home, address, null)
        gevent.sleep(1.0)
    peer = make_agent_class()
    a = connect(peer, home, address, "agent.a", null)
    if args.part == "basic":
        basic_checks(obs, home, address, null, peer, a)
    elif args.part == "protected":
        print("RISKY", flush=True)  # on modular's router a refused agent's loop ends (checkpoint)
        protected_checks(obs, home, address, null, peer)
    elif args.part == "raw":
        raw_checks(obs, home, address, null)
        # agentstop of another peer by a plain agent (only the control identity may).
        b = connect(peer, home, address, "agent.b", null)
        dropped: List[str] = []
        a.vip.peerlist.ondrop.connect(lambda sender, peer, **kw: dropped.append(peer))
        a.core.connection.send_vip("", "agentstop", args=["agent.b"])

        def agentstop_outcome() -> str:
            # "Honoured" is the router's `peerlist drop agent.b` notification. The peer list
            # alone is not enough: modular's router adds any sender back on its next message
            # (router.py:276 `self._add_peer(sender)`), so on a slow machine agent.b, still
            # finishing its start-up, can be back before the next listing. Look until 5 s.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                gevent.sleep(0.25)
                if "agent.b" in dropped or "agent.b" not in a.vip.peerlist().get(timeout=WAIT):
                    return "honoured"
            return "ignored"

        observe(obs, "third-party agentstop by agent.a", agentstop_outcome)
        del b
    else:
        query_checks(obs, home, address, null, a)
    return obs


def basic_checks(obs: Dict[str, Any], home: Path, address: str, null: bool, peer: Any, a: Any) -> None:
    import gevent

    b = connect(peer, home, address, "agent.b", null)
    observe(obs, "hello", lambda: a.vip.hello().get(timeout=WAIT))
    observe(obs, "ping", lambda: a.vip.ping("").get(timeout=WAIT))
    observe(obs, "peerlist has a and b", lambda: {"agent.a", "agent.b"} <= set(a.vip.peerlist().get(timeout=WAIT)))
    observe(obs, "rpc a->b", lambda: a.vip.rpc.call("agent.b", "echo", 7).get(timeout=15))
    observe(obs, "rpc b->a", lambda: b.vip.rpc.call("agent.a", "echo", [1, "x"]).get(timeout=15))
    observe(obs, "rpc agent.version (library)", lambda: b.vip.rpc.call("agent.a", "agent.version").get(timeout=WAIT))
    observe(obs, "rpc to a missing peer", lambda: a.vip.rpc.call("agent.missing", "x").get(timeout=3))
    got: List[Any] = []
    observe(obs, "subscribe", lambda: b.vip.pubsub.subscribe("pubsub", "test/", lambda *m: got.append(m)).get(timeout=WAIT))
    observe(obs, "publish", lambda: a.vip.pubsub.publish("pubsub", "test/topic", message={"v": [1, 2.5, "é"]}).get(timeout=WAIT))
    gevent.sleep(0.5)
    obs["delivery"] = [list(m[1:4]) + [m[5]] for m in got]
    observe(obs, "pubsub list", lambda: b.vip.pubsub.list("pubsub", "test/").get(timeout=WAIT))


def checkpoint(obs: Dict[str, Any]) -> None:
    """Print the observations so far: when modular's router dies (query serverkey), its
    agents' monitor greenlets block the whole process for good in ``socket.monitor(None, 0)``
    (``zmq_core.py:335``), so the last observations may be all there is."""
    print(json.dumps(obs, default=repr), flush=True)


def query_checks(obs: Dict[str, Any], home: Path, address: str, null: bool, a: Any) -> None:
    """Last: queries that crash modular's own router (research memo §1.4)."""
    import gevent

    print("RISKY", flush=True)
    q = raw_for(home, address, "raw.a", null)
    welcome(q)
    for key in ("instance-name", "serverkey", "platform-version"):
        q.send(b"", b"VIP1", b"", b"q-" + key.encode(), b"query", key.encode())
        reply = q.until(lambda m: m[3] == b"q-" + key.encode(), timeout=3)
        obs[f"query {key}"] = text(reply)[6:] if reply else "no reply"
        checkpoint(obs)
        gevent.sleep(0.3)
        observe(obs, f"router alive after query {key}", lambda: a.vip.ping("").get(timeout=3) is not None)
        checkpoint(obs)
    q.close()


def protected_checks(obs: Dict[str, Any], home: Path, address: str, null: bool, peer: Any) -> None:
    """authz.json: `secret` is protected; agent.pub may publish, agent.sub may subscribe,
    agent.both may do both. agent.sub goes last: on modular's router its refused subscribe
    ends its agent's loop, which can freeze this process (``checkpoint``)."""
    import gevent

    pub = connect(peer, home, address, "agent.pub", null)
    both = connect(peer, home, address, "agent.both", null)
    stranger = connect(peer, home, address, "stranger", null)
    got: List[Any] = []
    observe(obs, "protected: subscribe with a pubsub capability",
            lambda: both.vip.pubsub.subscribe("pubsub", "secret", lambda *m: got.append(m[3])).get(timeout=WAIT))
    observe(obs, "protected: publish with the capability",
            lambda: pub.vip.pubsub.publish("pubsub", "secret/x", message=1).get(timeout=WAIT))
    observe(obs, "protected: publish without it (refused by the agent's own check)",
            lambda: stranger.vip.pubsub.publish("pubsub", "secret/y", message=2).get(timeout=2))
    gevent.sleep(0.5)
    obs["protected: delivered topics"] = sorted(got)
    checkpoint(obs)
    sub = connect(peer, home, address, "agent.sub", null)
    observe(obs, "protected: subscribe with the capability",
            lambda: sub.vip.pubsub.subscribe("pubsub", "secret", lambda *m: None).get(timeout=WAIT))


def hold(args: argparse.Namespace) -> Dict[str, Any]:
    import gevent

    home, address, null = Path(args.home), args.address, args.security == "null"
    if args.auth == "inprocess":
        start_auth_service(home, address, null)
        gevent.sleep(1.0)
    peer = make_agent_class()
    a = connect(peer, home, address, "agent.a", null)
    b = connect(peer, home, address, "agent.b", null)
    got: List[Any] = []
    b.vip.pubsub.subscribe("pubsub", "test/", lambda *m: got.append(m[3])).get(timeout=WAIT)
    print("READY", flush=True)
    # The router is stopped and started again while we wait (gevent-friendly stdin read).
    gevent.get_hub().threadpool.apply(sys.stdin.readline)
    gevent.sleep(float(args.settle))
    obs: Dict[str, Any] = {}
    observe(obs, "agent a still running", lambda: not a.core.greenlet.dead)
    observe(obs, "peers a new agent sees", lambda: sorted(
        set(connect(peer, home, address, "agent.pub", null).vip.peerlist().get(timeout=WAIT)) & {"agent.a", "agent.b"}))
    observe(obs, "peerlist after restart", lambda: sorted(set(a.vip.peerlist().get(timeout=WAIT)) & {"agent.a", "agent.b"}))
    observe(obs, "rpc a->b after restart", lambda: a.vip.rpc.call("agent.b", "echo", 3).get(timeout=WAIT))
    observe(obs, "publish after restart", lambda: a.vip.pubsub.publish("pubsub", "test/after", message=1).get(timeout=WAIT))
    gevent.sleep(0.5)
    obs["delivered after restart"] = got
    return obs


def hello(args: argparse.Namespace) -> Dict[str, Any]:
    """Connect one agent with the credentials of ``--identity`` and say hello."""
    obs: Dict[str, Any] = {}
    observe(obs, "hello", lambda: connect(make_agent_class(), Path(args.home), args.address, args.identity,
                                          args.security == "null").vip.hello().get(timeout=WAIT))
    return obs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["seed", "run", "hold", "hello"])
    p.add_argument("--identity", default="agent.a")
    p.add_argument("--home", required=True)
    p.add_argument("--address", default="")
    p.add_argument("--security", choices=["curve", "null"], default="curve")
    p.add_argument("--auth", choices=["inprocess", "platform"], default="inprocess")
    p.add_argument("--settle", default="2")
    p.add_argument("--part", choices=["basic", "protected", "raw", "query"], default="basic")
    args = p.parse_args()
    os.environ["VOLTTRON_HOME"] = args.home
    if args.mode == "seed":
        seed(Path(args.home))
        return
    result = {"run": run, "hold": hold, "hello": hello}[args.mode](args)
    print(json.dumps(result, default=repr), flush=True)
    print("DONE", flush=True)
    os._exit(0)  # greenlets of the agents would keep the interpreter alive


if __name__ == "__main__":
    main()
