"""VOLTTRON 9.x on viprouter: run VOLTTRON's own ``volttron.platform.main`` with its router
replaced by a supervised viprouter process.

:func:`run` applies the redirections below and calls VOLTTRON's ``main._main()`` — the
``volttron`` console script itself — so options, ``$VOLTTRON_HOME/config``, files, start-up
order and exit status are VOLTTRON's. Nothing of VOLTTRON is copied or modified: each
redirection is one function that names the VOLTTRON 9.0.4 line it replaces
(``volttron/platform/…``) and why. The classes it substitutes are in ``volttron9_services.py``.

What the launcher does around VOLTTRON's sequence:

* The router starts where VOLTTRON starts its router thread (``main.py:1078``), after every
  built-in service's keystore and auth.json entry exists; viprouter reads the same
  ``$VOLTTRON_HOME/config`` itself, so only what VOLTTRON resolved beyond that file is passed on
  its command line (``router_argv``).
* Lifecycle: ``quit`` from ``control`` (``vctl shutdown --platform``) makes viprouter exit 0;
  the supervisor reports the clean exit, the stand-in router's ``run()`` returns and VOLTTRON
  stops its platform as when its own router thread ends. A *crashed* viprouter (killed by a
  signal it does not handle, or a non-zero status) is restarted at once, with back-off on
  repeated failures (``supervisor.RestartPolicy``); agents, services and ``vctl`` reconnect and
  the platform keeps running. If the router cannot be kept running (a configuration error, or
  repeated quick failures) the platform stops and the command exits 1 (VOLTTRON exits 0 when its
  router thread dies; a non-zero status lets ``Restart=on-failure`` act). When the platform
  stops first (SIGINT, a service ending), the router is stopped (SIGTERM, then SIGKILL after
  5 s); if the platform process is killed outright, the router gets SIGTERM from the kernel
  (``PR_SET_PDEATHSIG``).
* systemd ``Type=notify``: ``READY=1`` once VOLTTRON has written ``VOLTTRON_PID`` (every service
  up, agents auto-started), ``STOPPING=1`` when the platform stops; ``NOTIFY_SOCKET`` is hidden
  from the router and the agents.
* The router's output goes to ``$VOLTTRON_HOME/viprouter.log`` (``VIPROUTER_LOG=path``, or ``-``
  for the platform's own stderr, e.g. the journal).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import rootcheck, sdnotify
from .supervisor import Outcome, Result, Supervisor, find_binary, parse_check_config, popen_spawn

_log = logging.getLogger("viprouter_volttron")

INPROC_VIP = "inproc://vip"
# The throw-away agent `control.shutdown` connects (aip.py:409): viprouter admits it from its
# keystore (src/server/startup.rs SERVICES), which must exist before the router starts.
AIP_IDENTITY = "aip"


def router_argv(
    binary: str,
    volttron_home: str,
    local_address: str,
    addresses: Sequence[str],
    file_addresses: Sequence[str],
    instance_name: Optional[str],
    allow_auth: bool,
    setup_mode: bool,
) -> List[str]:
    """viprouter's command line for what VOLTTRON resolved: the vip-addresses it did not read
    from ``$VOLTTRON_HOME/config`` itself (viprouter adds command-line addresses to the file's;
    VOLTTRON binds each distinct address once, ``main.py:316``), the local address, instance
    name and auth switch; ``--auth-reports`` with auth (for :class:`ReportingAuthService`),
    ``--setup-mode`` as given to ``volttron``."""
    argv = [binary, "--volttron-home", volttron_home, "--vip-local-address", local_address]
    seen = set(file_addresses)
    for a in addresses:
        if a not in seen:
            seen.add(a)
            argv += ["--vip-address", a]
    if instance_name:
        argv += ["--instance-name", instance_name]
    argv += ["--allow-auth", "true" if allow_auth else "false"]
    if allow_auth:
        argv.append("--auth-reports")
    if setup_mode:
        argv.append("--setup-mode")
    return argv


def router_env(env: Mapping[str, str]) -> Dict[str, str]:
    """The router's environment: the platform's, without systemd's per-unit variables."""
    drop = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
    return {k: v for k, v in env.items() if k not in drop}


#: Seconds the platform has to stop by itself once viprouter gave up (``Launcher._interrupt_platform``).
GIVE_UP_GRACE_S = 10.0


class Launcher:
    """The platform's link to its router: started from VOLTTRON's router thread, supervised in
    the main thread's gevent hub (gevent's own child watchers see every exit status; see
    ``supervisor.py``)."""

    def __init__(self) -> None:
        self.opts: Any = None
        self.hub: Any = None
        self.supervisor: Optional[Supervisor] = None
        self.result: Optional[Result] = None
        self.notify_addr: Optional[str] = None

    @property
    def gave_up(self) -> bool:
        return self.result is not None and self.result.outcome is Outcome.GAVE_UP

    def serve(self, router: Any) -> None:
        """Run by the stand-in router's ``run()`` in VOLTTRON's router thread: start the
        supervisor in the hub and block until it ends."""
        done = threading.Event()
        self.hub.loop.run_callback_threadsafe(self._spawn_supervisor, router, done)
        done.wait()

    def _spawn_supervisor(self, router: Any, done: threading.Event) -> None:
        import gevent

        gevent.spawn(self._supervise, router, done)

    def _supervise(self, router: Any, done: threading.Event) -> None:
        try:
            self.supervisor = self._make_supervisor(router)
            self.result = self.supervisor.run()
        except Exception:
            _log.exception("cannot run viprouter")
            self.result = Result(Outcome.GAVE_UP, None, 0)
        finally:
            done.set()
            if self.gave_up:
                import gevent

                gevent.spawn_later(GIVE_UP_GRACE_S, self._interrupt_platform)

    def _interrupt_platform(self) -> None:
        """The router thread's end stops the platform through ``config_store.core.stop``
        (``main.py:900-925``), called from that thread. When the router gave up during start-up,
        VOLTTRON may still wait for its services to start (``main.py:1184``), which they never do
        without a router: the platform would hang. If it still runs ``GIVE_UP_GRACE_S`` later,
        interrupt it as Ctrl-C would (VOLTTRON shuts down on ``KeyboardInterrupt``, ``main.py:1200``)."""
        _log.error("the platform did not stop after viprouter gave up: interrupting it")
        os.kill(os.getpid(), signal.SIGINT)

    def _make_supervisor(self, router: Any) -> Supervisor:
        import gevent

        opts = self.opts
        home = os.environ["VOLTTRON_HOME"]
        binary = find_binary()
        env = router_env(os.environ)
        if router.allow_auth:
            ensure_keystore(AIP_IDENTITY)
        probe = subprocess.run(
            [binary, "--check-config", "--volttron-home", home], env=env, capture_output=True, text=True, timeout=30
        )
        argv = router_argv(
            binary,
            home,
            router.local_address,
            router.addresses,
            parse_check_config(probe.stdout),
            router.instance_name,
            router.allow_auth,
            bool(getattr(opts, "setup_mode", False)),
        )
        log = os.environ.get("VIPROUTER_LOG", os.path.join(home, "viprouter.log"))
        return Supervisor(argv, env, None if log == "-" else log, spawn=popen_spawn, sleep=gevent.sleep)

    def stop_router(self) -> None:
        """Stop the router if it still runs (platform stopping first); idempotent."""
        if self.supervisor is not None and self.supervisor.pid is not None:
            _log.info("platform stopping: stopping viprouter (pid %d)", self.supervisor.pid)
            self.supervisor.stop()

    def watch_ready(self) -> None:
        """``READY=1`` once VOLTTRON has written its pid file (``main.py:1194``)."""
        import gevent

        pid_file = os.path.join(os.environ["VOLTTRON_HOME"], "VOLTTRON_PID")
        while True:
            gevent.sleep(0.2)
            try:
                with open(pid_file) as f:
                    if f.read().strip() == str(os.getpid()):
                        break
            except OSError:
                continue
        sdnotify.notify(self.notify_addr, "READY=1\nSTATUS=VOLTTRON platform running on viprouter")


def ensure_keystore(identity: str) -> None:
    """Create ``keystores/<identity>/keystore.json`` the way VOLTTRON does, if missing."""
    from volttron.platform.keystore import KeyStore

    path = KeyStore.get_agent_keystore_path(identity)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    KeyStore(path)


# --- the redirections ---------------------------------------------------------------------


def redirect_root_check() -> bool:
    """``main.py:1300-1304`` refuses uid 0 (exit 77). Only with the tests' opt-in
    ``VIPROUTER_VOLTTRON_ALLOW_ROOT=1`` is that one check answered as uid 65534
    (``rootcheck.py``); by default root is refused exactly as ``volttron`` does."""
    return rootcheck.apply_if_allowed()


def capture_options(vmain: Any, launcher: Launcher) -> None:
    """Wrap ``start_volttron_process`` (``main.py:660``) to keep its ``opts`` (the expanded
    ``vip_local_address``, ``setup_mode``) and the main thread's gevent hub for the launcher,
    and to start the readiness watch. Nothing in VOLTTRON's sequence changes."""
    original = vmain.start_volttron_process

    @functools.wraps(original)
    def start_volttron_process(opts: Any) -> Any:
        import gevent

        launcher.opts = opts
        launcher.hub = gevent.get_hub()
        if launcher.notify_addr:
            gevent.spawn(launcher.watch_ready)
        return original(opts)

    vmain.start_volttron_process = start_volttron_process


def redirect_inproc_address(launcher: Launcher) -> None:
    """Every built-in service is built on ``address = 'inproc://vip'`` (``main.py:946``), and
    ``control.shutdown``'s ``aip`` agent connects there too (``aip.py:409``); inproc exists only
    inside one process. Wrap ``ZMQCore.__init__`` (``vip/agent/core.py:645``) so that this address
    becomes the platform's ipc address (``vip-local-address``): each service becomes an
    ordinary CURVE client of viprouter with its keystore key and the server key from
    ``known_hosts`` (``auth_zmq.py:66-162``), as VOLTTRON's agents are."""
    from volttron.platform.vip.agent.core import ZMQCore

    original = ZMQCore.__init__

    @functools.wraps(original)
    def __init__(self: Any, owner: Any, address: Optional[str] = None, *args: Any, **kwargs: Any) -> None:
        if address == INPROC_VIP and launcher.opts is not None:
            address = launcher.opts.vip_local_address
        original(self, owner, address, *args, **kwargs)

    ZMQCore.__init__ = __init__


def replace_router(vmain: Any, launcher: Launcher) -> None:
    """``zmq_router`` builds ``Router(...)`` and runs it in a thread (``main.py:900-925``);
    ``main.Router`` becomes :class:`ExternalRouter`, whose ``run()`` serves the platform with
    viprouter until it exits cleanly (see the module doc)."""
    from .volttron9_services import ExternalRouter

    ExternalRouter.serve = launcher.serve
    vmain.Router = ExternalRouter


def replace_health_service(vmain: Any) -> None:
    """``platform.health`` learned peers from the router thread (``main.py:1006-1012``,
    ``ServicePeerNotifier``); ``main.HealthService`` becomes :class:`PeerlistHealthService`."""
    from .volttron9_services import PeerlistHealthService

    vmain.HealthService = PeerlistHealthService


def replace_auth_service(vmain: Any) -> None:
    """VOLTTRON's ZAP loop recorded refused peers (pending authorizations) and setup-mode
    entries (``auth_zmq.py:274-293``), but viprouter decides admission itself;
    ``main.AuthService`` (``main.py:1245``) becomes :class:`ReportingAuthService`, which gets
    them from the router's reports."""
    from .volttron9_services import ReportingAuthService

    vmain.AuthService = ReportingAuthService


def replace_stats_tracker(vmain: Any) -> None:
    """``vctl stats`` reads a ``Tracker`` that VOLTTRON's router filled in-process
    (``main.py:879``, ``control/control.py:107-114``); ``main.Tracker`` and
    ``main.ControlService`` become :class:`RouterStatsTracker` and :class:`StatsControlService`,
    which serve viprouter's ``query stats`` counters."""
    from .volttron9_services import RouterStatsTracker, StatsControlService

    vmain.Tracker = RouterStatsTracker
    vmain.ControlService = StatsControlService


def install(vmain: Any, launcher: Launcher) -> None:
    """Apply every redirection (the root check is separate: :func:`redirect_root_check`)."""
    capture_options(vmain, launcher)
    redirect_inproc_address(launcher)
    replace_router(vmain, launcher)
    replace_health_service(vmain)
    replace_auth_service(vmain)
    replace_stats_tracker(vmain)


def run(argv: Sequence[str]) -> int:
    """``volttron`` with viprouter; returns (or raises ``SystemExit`` with) VOLTTRON's status,
    or 1 when the router could not be kept running."""
    launcher = Launcher()
    launcher.notify_addr = sdnotify.take_socket()
    redirect_root_check()
    import volttron.platform.main as vmain

    install(vmain, launcher)
    atexit.register(launcher.stop_router)
    sys.argv = list(argv)
    code: Any = 0
    try:
        vmain._main()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        if not launcher.gave_up:
            raise
        code = None  # Launcher._interrupt_platform: reported as status 1 below
    finally:
        sdnotify.notify(launcher.notify_addr, "STOPPING=1")
        launcher.stop_router()
    if launcher.gave_up and code in (0, None):
        _log.error("the platform stopped because viprouter could not be kept running")
        return 1
    if code is None or isinstance(code, int):
        return code or 0
    raise SystemExit(code)
