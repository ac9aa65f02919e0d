"""Start, watch, restart and stop the viprouter process (flavour-independent).

Nothing here knows about VOLTTRON: a platform launcher (``volttron9.py`` for VOLTTRON 9.x,
``modular.py`` for modular VOLTTRON) builds the router's command line and decides what a clean
exit means for the platform.

Contract:

* :func:`find_binary` — ``$VIPROUTER_BIN``, else ``viprouter`` next to the running script
  (``sys.argv[0]``, also through a symlink) or next to ``sys.executable`` (a venv's ``bin/``),
  else on ``PATH``.
* :class:`Supervisor` runs the router until it exits *cleanly* (status 0: ``quit`` from
  ``control``, or SIGTERM/SIGINT, which viprouter handles by exiting 0), restarting it when it
  *crashes* (killed by another signal, or a non-zero status), with back-off:
  the first restart at once, then 0.25 s, 0.5 s, 1 s, 2 s, … (``RestartPolicy``). A run shorter
  than ``quick_run_s`` counts as a quick failure; after ``max_quick_failures`` of them in a row
  it gives up (a router that cannot start — bad configuration, address in use — must not spin).
  Status 2 (a configuration error) is never retried. Restarting at once matters: VOLTTRON's
  agents reconnect by themselves, but each stops for good after 50 failed reconnection attempts
  in its lifetime (``vip/agent/core.py:751-757``, libzmq retries every 100 ms), so the router
  must be back within seconds.
* The child: its own session (a terminal's Ctrl-C goes to the platform, which then stops the
  router in order), stdin from ``/dev/null``, stdout and stderr appended to the log file (or
  inherited), and ``PR_SET_PDEATHSIG`` = SIGTERM so that it stops when the process that started
  it dies, however it dies (``kill -9`` included).
* :meth:`Supervisor.stop` asks the child to stop (SIGTERM), waits, then kills it; usable from
  ``atexit`` (it never needs an event loop).

How the child is started and waited for is the ``spawn`` argument: by default
``subprocess.Popen``. Under gevent this matters: once a program has used ``gevent.subprocess``
(VOLTTRON's agent launcher does), gevent's event loop reaps *every* child on SIGCHLD
(``waitpid(-1)``), so a plain ``os.waitpid`` from another thread may find its child gone and
its exit status lost (measured: ``ECHILD`` whenever the child exits while nobody is already
blocked in ``waitpid``). A gevent program therefore runs the supervisor in a greenlet with
gevent's ``subprocess.Popen`` and ``gevent.sleep``, which get every status through gevent's own
child watchers.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Callable, List, Mapping, Optional, Protocol, Sequence, Tuple, cast

_log = logging.getLogger("viprouter_volttron.supervisor")

PR_SET_PDEATHSIG = 1
# viprouter's exit status for a configuration error (src/main.rs): retrying cannot help.
EXIT_CONFIG_ERROR = 2


class Child(Protocol):
    """What the supervisor needs from a started process (a ``subprocess.Popen``)."""

    pid: int
    returncode: Optional[int]

    def wait(self, timeout: Optional[float] = None) -> int: ...

    def poll(self) -> Optional[int]: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


Spawn = Callable[[Sequence[str], Mapping[str, str], Optional[IO[bytes]]], Child]


def find_binary(
    env: Optional[Mapping[str, str]] = None, argv0: Optional[str] = None, executable: Optional[str] = None
) -> str:
    """The viprouter binary to run (see the module doc).

    Raises:
        FileNotFoundError: none found; the message says where it looked.
    """
    env = os.environ if env is None else env
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    explicit = env.get("VIPROUTER_BIN")
    if explicit:
        if os.access(explicit, os.X_OK) and os.path.isfile(explicit):
            return explicit
        raise FileNotFoundError(f"VIPROUTER_BIN={explicit} is not an executable file")
    looked: List[str] = []
    dirs: List[str] = []
    for base in (argv0, os.path.realpath(argv0) if argv0 else "", executable):
        if base and os.sep in base:
            d = os.path.dirname(os.path.abspath(base))
            if d not in dirs:
                dirs.append(d)
    for d in dirs:
        candidate = os.path.join(d, "viprouter")
        looked.append(candidate)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("viprouter", path=env.get("PATH"))
    if on_path:
        return on_path
    raise FileNotFoundError(
        "viprouter not found: set VIPROUTER_BIN, or put it next to this script or on PATH (looked at "
        + ", ".join(looked + ["PATH"])
        + ")"
    )


def parse_check_config(output: str) -> List[str]:
    """The ``vip-address:`` line of ``viprouter --check-config`` (the addresses it reads from
    the config file)."""
    for line in output.splitlines():
        if line.startswith("vip-address:"):
            return line.split(":", 1)[1].split()
    return []


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """In a child, between fork and exec: receive ``sig`` when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``, Linux); if the parent is already gone, exit at once."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the atexit stop still applies
    if os.getppid() != parent or parent == 1:
        os._exit(1)


def popen_spawn(argv: Sequence[str], env: Mapping[str, str], log: Optional[IO[bytes]]) -> Child:
    """Start ``argv`` as described in the module doc, with ``subprocess.Popen`` (gevent's, when
    the caller's ``subprocess`` is gevent-patched)."""
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
        preexec_fn=set_parent_death_signal,
    )


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed router (see the module doc)."""

    quick_run_s: float = 10.0
    max_quick_failures: int = 5
    delays_s: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 2.0)
    no_restart_codes: Sequence[int] = (EXIT_CONFIG_ERROR,)

    def delay(self, quick_failures: int) -> float:
        """Back-off before the next start after ``quick_failures`` quick failures in a row."""
        if not self.delays_s:
            return 0.0
        return float(self.delays_s[min(max(quick_failures - 1, 0), len(self.delays_s) - 1)])


class Outcome(enum.Enum):
    """How :meth:`Supervisor.run` ended."""

    CLEAN_EXIT = "clean exit"  # the router exited 0 (quit from control, or SIGTERM/SIGINT)
    GAVE_UP = "gave up"  # it kept crashing, or a configuration error
    STOPPED = "stopped"  # Supervisor.stop() was called


@dataclass
class Result:
    """The end of :meth:`Supervisor.run`."""

    outcome: Outcome
    returncode: Optional[int]
    restarts: int
    statuses: List[int] = field(default_factory=list)


def describe(returncode: int) -> str:
    """``Popen.returncode`` in words."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Supervisor:
    """Runs one router process; see the module doc."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Optional[str],
        policy: RestartPolicy = RestartPolicy(),
        spawn: Spawn = popen_spawn,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.policy = policy
        self._spawn = spawn
        self._sleep = sleep
        self._clock = clock
        self._child: Optional[Child] = None
        self._stopping = False
        self.starts = 0

    @property
    def pid(self) -> Optional[int]:
        """The running router's pid, if any."""
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    def _start(self) -> Child:
        log: Optional[IO[bytes]] = None
        if self.log_path is not None:
            log = open(self.log_path, "ab", buffering=0)
            log.write(f"--- viprouter-volttron: starting {' '.join(self.argv)}\n".encode())
        try:
            child = self._spawn(self.argv, self.env, log)
        finally:
            if log is not None:
                log.close()  # the child has its own descriptor
        self.starts += 1
        _log.info("viprouter started (pid %d, start #%d): %s", child.pid, self.starts, " ".join(self.argv))
        return child

    def run(self) -> Result:
        """Run the router until a clean exit, :meth:`stop`, or the policy gives up. The first
        start's failure to execute (no such file, not executable) is raised."""
        quick = 0
        statuses: List[int] = []
        while True:
            if self._stopping:
                return Result(Outcome.STOPPED, statuses[-1] if statuses else None, len(statuses), statuses)
            started = self._clock()
            self._child = self._start()
            rc = self._child.wait()
            statuses.append(rc)
            ran = self._clock() - started
            if self._stopping:
                _log.info("viprouter stopped (%s)", describe(rc))
                return Result(Outcome.STOPPED, rc, len(statuses) - 1, statuses)
            if rc == 0:
                _log.info("viprouter exited cleanly after %.1f s: the platform stops", ran)
                return Result(Outcome.CLEAN_EXIT, rc, len(statuses) - 1, statuses)
            if rc in self.policy.no_restart_codes:
                _log.error("viprouter %s (configuration error): not restarted; see %s", describe(rc), self.log_path)
                return Result(Outcome.GAVE_UP, rc, len(statuses) - 1, statuses)
            quick = quick + 1 if ran < self.policy.quick_run_s else 1
            if quick > self.policy.max_quick_failures:
                _log.error(
                    "viprouter %s; %d quick failures in a row: giving up (see %s)", describe(rc), quick, self.log_path
                )
                return Result(Outcome.GAVE_UP, rc, len(statuses) - 1, statuses)
            delay = self.policy.delay(quick)
            _log.error("viprouter %s after %.1f s: restarting in %.2f s", describe(rc), ran, delay)
            if delay > 0:
                self._sleep(delay)

    def request_stop(self) -> None:
        """Ask the running router to stop (SIGTERM) without waiting; :meth:`run` then returns
        ``STOPPED``. Safe from any thread or greenlet."""
        self._stopping = True
        child = self._child
        if child is not None and child.returncode is None:
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        """Stop the router and wait up to ``timeout`` seconds (then SIGKILL), without relying on
        an event loop (so it works from ``atexit``). Returns its status if it was seen."""
        self.request_stop()
        child = self._child
        if child is None:
            return None
        return _reap(child.pid, timeout)


def _reap(pid: int, timeout: float) -> Optional[int]:
    """Wait for ``pid`` with the OS's own ``waitpid``/``sleep`` (not an event loop's), SIGKILL
    it after ``timeout``. None when someone else reaped it first."""
    waitpid = cast(Callable[[int, int], Tuple[int, int]], _original("os", "waitpid", os.waitpid))
    sleep = cast(Callable[[float], None], _original("time", "sleep", time.sleep))
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        try:
            done, status = waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done == pid:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if time.monotonic() >= deadline and not killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            killed = True
            deadline = time.monotonic() + timeout
        elif time.monotonic() >= deadline:
            return None
        sleep(0.02)


def _original(module: str, name: str, default: Callable[..., object]) -> Callable[..., object]:
    """The unpatched function when gevent monkey-patched it, else ``default``."""
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        fn: Callable[..., object] = monkey.get_original(module, name)
        return fn
    return default
