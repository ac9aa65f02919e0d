"""Modular VOLTTRON (volttron 11 / volttron-core 2.x) on viprouter.

:func:`run` starts modular VOLTTRON's own ``volttron`` command (``volttron.server.__main__``,
the console script) after two run-time redirections, each one small function below naming the
volttron-core line it replaces and why. Nothing of VOLTTRON is copied or patched in a file;
its options, ``$VOLTTRON_HOME/config``, services, ``vctl`` and agents are VOLTTRON's own.

1. :func:`register_bus` — the platform gets its message bus from the dependency container,
   which hands out the first registered ``MessageBus`` subclass (``run_server.py:403``); the only
   one registered is lib-zmq's ``ZmqMessageBus`` (``messagebus/zmq/__init__.py:114``), which
   runs the Python router in a thread. Registering the bus of :func:`make_bus_class` first
   makes the platform start viprouter instead.
2. :func:`redirect_service_address` — every built-in service (``platform.auth``,
   ``platform.config_store``, ``platform.control``, ``platform.health``) connects to
   ``ServerOptions.service_address``, which defaults to ``inproc://vip``
   (``server_options.py:106-107``); inproc exists only inside the router's process. It becomes
   the platform's ipc address, so the services are CURVE clients of viprouter with their own
   ``credentials_store`` keys, as every other agent is (``zmq_core.py:39-60``).

viprouter reads the modular home natively (``credentials_store``, ``authz.json``, the config's
``address``/``auth-enabled``; see README "Modular VOLTTRON").

The bus (:func:`make_bus_class`):

* The router is launched when the platform builds its bus (``run_server.py:403``), before it
  starts its services (they reach it over ipc, which needs a listener; lib-zmq's inproc does
  not), and ``start()`` waits for viprouter's ``READY=1`` on a private ``NOTIFY_SOCKET``.
* The bus holds the platform's listening sockets itself — the abstract ipc socket and each
  ``tcp://`` address — and lends them to every viprouter start as systemd socket activation
  does (``LISTEN_FDS``, sd_listen_fds(3)). The supervisor (``supervisor.py``) restarts a
  crashed router at once; the sockets never close, so connection attempts wait in the kernel's
  queue meanwhile and modular's agents and services — which give up after 50 refused
  reconnects, about 0.5 s (``zmq_core.py:314``) — survive. An address the launcher cannot bind
  itself (a host name, an ipc path) leaves the binding to viprouter (no held sockets; logged).
* ``quit`` from ``platform.control`` (``vctl shutdown --platform``, or the platform's own
  SIGINT handler, ``run_server.py:541``) makes viprouter exit 0; the bus then calls the
  platform's stop handler, as lib-zmq's router thread does when it ends
  (``messagebus/zmq/__init__.py:107-111``), and the platform stops. If the router cannot be kept
  running, likewise, and :func:`run` returns 1.
* When the platform stops first, the router is stopped (SIGTERM, then SIGKILL); if the platform
  process dies outright, the kernel sends the router SIGTERM (``PR_SET_PDEATHSIG``).
* viprouter's output goes to ``$VOLTTRON_HOME/viprouter.log`` (``VIPROUTER_LOG=path``, or ``-``
  for the platform's stderr).
"""

import functools
import logging
import os
import random
import runpy
import socket
import subprocess
import sys
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .supervisor import (
    Child,
    Outcome,
    Result,
    Spawn,
    Supervisor,
    find_binary,
    parse_check_config,
    set_parent_death_signal,
)

_log = logging.getLogger("viprouter_volttron.modular")

INPROC_VIP = "inproc://vip"
SD_LISTEN_FDS_START = 3
# How long start() waits for viprouter's READY=1 (VOLTTRON waits 30 s for is_running()).
READY_TIMEOUT_S = 30.0


def ipc_address(volttron_home: str) -> str:
    """The platform's local address: where modular's router binds (``router.py:113``) and
    where its agents and ``vctl`` connect by default (``ClientContext.get_address``)."""
    return f"ipc://@{volttron_home}/run/vip.socket"


def router_argv(binary: str, volttron_home: str, addresses: Sequence[str], file_addresses: Sequence[str]) -> List[str]:
    """viprouter's command line: the home, and each platform address viprouter does not read
    from ``$VOLTTRON_HOME/config`` itself (given as ``volttron --address``; viprouter adds
    command-line addresses to the file's)."""
    argv = [binary, "--volttron-home", volttron_home]
    seen = set(file_addresses)
    for a in addresses:
        if a not in seen:
            seen.add(a)
            argv += ["--vip-address", a]
    return argv


def router_env(env: Mapping[str, str], notify: str, listen_fds: int) -> Dict[str, str]:
    """The router's environment: the platform's, with our ``NOTIFY_SOCKET`` and, with held
    sockets, ``LISTEN_FDS`` (``LISTEN_PID`` is set by the exec wrapper, :func:`listen_fds_spawn`)."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
    out = {k: v for k, v in env.items() if k not in drop}
    out["NOTIFY_SOCKET"] = notify
    if listen_fds:
        out["LISTEN_FDS"] = str(listen_fds)
    return out


def tcp_bind_address(address: str) -> Optional[Tuple[int, Tuple[Any, ...]]]:
    """``(family, sockaddr)`` for a ``tcp://IP:PORT`` address (``*`` = any IPv4 address,
    ``[v6]`` = IPv6), or None when the launcher cannot bind it itself (a host name, a
    parameter, another scheme)."""
    if not address.startswith("tcp://") or "?" in address:
        return None
    host, _, port = address[len("tcp://") :].rpartition(":")
    if not port.isdigit():
        return None
    if host.startswith("[") and host.endswith("]"):
        family, host = socket.AF_INET6, host[1:-1]
    else:
        family, host = socket.AF_INET, ("0.0.0.0" if host == "*" else host)
    try:
        socket.inet_pton(family, host)
    except OSError:
        return None
    return (family, (host, int(port)) if family == socket.AF_INET else (host, int(port), 0, 0))


class HeldListeners:
    """The platform's listening sockets, bound by the launcher and lent to each viprouter
    start (see the module doc)."""

    def __init__(self) -> None:
        self.sockets: List[socket.socket] = []

    @classmethod
    def bind(cls, volttron_home: str, addresses: Sequence[str]) -> Optional["HeldListeners"]:
        """Bind the ipc address and every address; None (nothing held) if one of them cannot
        be bound here. Raises OSError when an address is in use (another platform runs)."""
        targets = [tcp_bind_address(a) for a in addresses]
        if any(t is None for t in targets):
            _log.warning("addresses %s: viprouter binds them itself (no held sockets)", list(addresses))
            return None
        held = cls()
        try:
            ipc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.sockets.append(ipc)
            ipc.bind("\0" + f"{volttron_home}/run/vip.socket")
            for t in targets:
                assert t is not None
                s = socket.socket(t[0], socket.SOCK_STREAM)
                held.sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(t[1])
            for s in held.sockets:
                s.listen(128)
        except OSError:
            held.close()
            raise
        return held

    def fds(self) -> List[int]:
        return [s.fileno() for s in self.sockets]

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets = []


def renumber_fds(fds: Sequence[int]) -> None:
    """In the child: move ``fds`` to 3, 4, … (inheritable), as sd_listen_fds(3) expects."""
    import fcntl

    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for i, fd in enumerate(high):
        os.dup2(fd, SD_LISTEN_FDS_START + i, inheritable=True)
        os.close(fd)


def listen_fds_spawn(fds: Sequence[int], popen: Callable[..., Child]) -> Spawn:
    """A supervisor ``spawn`` for viprouter. With ``fds``, they become its socket-activation
    listeners: ``sh`` sets ``LISTEN_PID`` to its own pid and ``exec``s the router, which keeps
    it, and ``close_fds`` is off so that 3… survive (every other descriptor of a Python program
    is close-on-exec, PEP 446). Without, viprouter binds its addresses itself."""

    def child_setup() -> None:
        set_parent_death_signal()
        if fds:
            renumber_fds(fds)

    def spawn(argv: Sequence[str], env: Mapping[str, str], log: Optional[IO[bytes]]) -> Child:
        wrapper = ["/bin/sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"'] if fds else []
        return popen(
            [*wrapper, *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=not fds,
            preexec_fn=child_setup,
        )

    return spawn


def is_ready(datagram: bytes) -> bool:
    """Whether an sd_notify datagram says ``READY=1``."""
    return b"READY=1" in datagram.split(b"\n")


def make_bus_class() -> type:
    """The ``MessageBus`` implementation that runs viprouter (see the module doc). Built on
    demand: volttron-core is imported only when modular VOLTTRON runs."""
    import gevent
    import gevent.socket
    import gevent.subprocess
    from volttron.server.server_options import ServerOptions
    from volttron.types import MessageBus
    from volttron.types.message import Message

    class ViprouterMessageBus(MessageBus):
        """viprouter as modular VOLTTRON's message bus."""

        instances: List["ViprouterMessageBus"] = []

        # No `-> None`: volttron-core's container resolves every type hint of __init__,
        # `return` included (containers.py `_resolve_arguments`).
        def __init__(self, server_options: ServerOptions):
            super().__init__()
            self._options = server_options
            self.supervisor: Optional[Supervisor] = None
            self.result: Optional[Result] = None
            self._held: Optional[HeldListeners] = None
            self._notify: Optional[socket.socket] = None
            self._ready = False
            self._stopping = False
            self._greenlet: Any = None
            self.argv: List[str] = []
            self.log = ""
            ViprouterMessageBus.instances.append(self)
            # The platform builds its bus (run_server.py:403) before it starts platform.auth and
            # platform.config_store (run_server.py:412-425) and calls start() only after them.
            # lib-zmq's services reach an inproc address that may be connected before it is
            # bound; ours connect over ipc, so the router must exist before they send.
            self.launch()

        def launch(self) -> None:
            """Hold the sockets and start viprouter (not waiting for it)."""
            home = str(self._options.volttron_home)
            addresses = list(self._options.address or [])
            # viprouter reads the home as modular's when this file exists; platform.auth
            # writes it when it is built (run_server.py:351, for the AIP), before the bus.
            platform_json = os.path.join(home, "credentials_store", "platform.json")
            if not os.path.exists(platform_json):
                raise RuntimeError(f"{platform_json} missing: viprouter would not see a modular home")
            binary = find_binary()
            probe = gevent.subprocess.run(
                [binary, "--check-config", "--volttron-home", home], capture_output=True, text=True, timeout=30
            )
            if probe.returncode != 0:
                raise RuntimeError(f"viprouter --check-config: {probe.stderr.strip()}")
            self.argv = router_argv(binary, home, addresses, parse_check_config(probe.stdout))
            name = f"viprouter-volttron-{os.getpid()}-{random.getrandbits(32):08x}"
            notify = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind("\0" + name)
            self._notify = notify
            self._held = HeldListeners.bind(home, addresses)
            fds = self._held.fds() if self._held else []
            env = router_env(os.environ, "@" + name, len(fds))
            spawn = listen_fds_spawn(fds, gevent.subprocess.Popen)
            self.log = os.environ.get("VIPROUTER_LOG", os.path.join(home, "viprouter.log"))
            self.supervisor = Supervisor(
                self.argv, env, None if self.log == "-" else self.log, spawn=spawn, sleep=gevent.sleep
            )
            self._greenlet = gevent.spawn(self._supervise)
            gevent.spawn(self._watch_notify)

        def start(self) -> None:
            """Wait for viprouter's ``READY=1`` (it was launched when the bus was built)."""
            with gevent.Timeout(READY_TIMEOUT_S, False):
                while not self._ready and not self._greenlet.dead:
                    gevent.sleep(0.02)
            if not self._ready:
                raise RuntimeError(f"viprouter did not become ready (see {self.log})")
            assert self.supervisor is not None
            _log.info("viprouter ready (pid %s): %s", self.supervisor.pid, " ".join(self.argv))

        def _watch_notify(self) -> None:
            while self._notify is not None:
                try:
                    data = self._notify.recv(4096)
                except OSError:
                    return
                if is_ready(data):
                    self._ready = True

        def _supervise(self) -> None:
            assert self.supervisor is not None
            try:
                self.result = self.supervisor.run()
            except Exception:
                _log.exception("cannot run viprouter")
                self.result = Result(Outcome.GAVE_UP, None, 0)
            finally:
                self._ready = False
                if not self._stopping:
                    _log.info("viprouter ended (%s): stopping the platform", self.result.outcome.value if self.result else "?")
                    self._shutdown_platform()

        def _shutdown_platform(self) -> None:
            handler = self.get_stop_handler()
            if handler is not None:
                handler.message_bus_shutdown()

        def is_running(self) -> bool:
            return self._ready and self._greenlet is not None and not self._greenlet.dead

        def stop(self) -> None:
            self.stop_router()
            self._shutdown_platform()

        def stop_router(self) -> None:
            """Stop the router and release the sockets; idempotent."""
            self._stopping = True
            if self.supervisor is not None and self.supervisor.pid is not None:
                self.supervisor.stop()
            for s in (self._held, self._notify):
                if s is not None:
                    s.close()
            self._held = None
            self._notify = None

        def send_vip_message(self, message: Message) -> None:
            raise NotImplementedError("agents send VIP messages to viprouter themselves")

        def receive_vip_message(self) -> Message:
            raise NotImplementedError("agents receive VIP messages from viprouter themselves")

    return ViprouterMessageBus


# --- the redirections ---------------------------------------------------------------------


def register_bus() -> type:
    """``run_server.py:403`` resolves ``MessageBus`` to the first registered subclass (the
    container's ``find_subclass``); lib-zmq's ``ZmqMessageBus`` registers when
    ``volttron.messagebus.zmq`` is first imported (``messagebus/zmq/__init__.py:114``), which
    happens later, while the platform starts. Register the viprouter bus first with the same
    ``@service`` decorator (``volttron/server/decorators.py:99``)."""
    from volttron.server.decorators import service

    if "volttron.messagebus.zmq" in sys.modules:
        raise RuntimeError("lib-zmq's message bus is already registered: register_bus() must run first")
    bus: type = service(make_bus_class())
    return bus


def redirect_service_address() -> None:
    """``ServerOptions.__post_init__`` defaults ``service_address`` to ``inproc://vip``
    (``server_options.py:106-107``), where the built-in services connect; wrap it so that this
    default becomes the platform's ipc address (:func:`ipc_address`). An explicit address is
    kept."""
    from volttron.server.server_options import ServerOptions

    original = ServerOptions.__post_init__
    if getattr(original, "__viprouter__", False):
        return

    @functools.wraps(original)
    def __post_init__(self: Any) -> None:
        original(self)
        if self.service_address == INPROC_VIP:
            self.service_address = ipc_address(str(self.volttron_home))

    setattr(__post_init__, "__viprouter__", True)
    setattr(ServerOptions, "__post_init__", __post_init__)


def run(argv: Sequence[str]) -> int:
    """``volttron`` with viprouter: VOLTTRON's status, or 1 when the router could not be kept
    running."""
    redirect_service_address()
    bus = register_bus()
    sys.argv = ["volttron", *argv[1:]]
    code: Any = 0
    try:
        runpy.run_module("volttron.server.__main__", run_name="__main__")
    except SystemExit as e:
        code = e.code
    finally:
        for b in getattr(bus, "instances", []):
            b.stop_router()
    gave_up = any(b.result is not None and b.result.outcome is Outcome.GAVE_UP for b in getattr(bus, "instances", []))
    if gave_up and code in (0, None):
        _log.error("the platform stopped because viprouter could not be kept running")
        return 1
    if code is None or isinstance(code, int):
        return code or 0
    raise SystemExit(code)
