"""Start, watch, restart and stop the viprouter process (nothing VOLTTRON-specific).

A minimal supervisor for the modular launcher while the package's full one (branch ``vt9``)
is not merged; same public names and behaviour for what ``modular.py`` uses:

* :func:`find_binary` — ``$VIPROUTER_BIN``, else ``viprouter`` next to ``sys.argv[0]`` or
  ``sys.executable`` (a venv's ``bin/``), else on ``PATH``.
* :class:`Supervisor` runs the router until it exits with status 0 (``quit`` from the control
  identity, or SIGTERM/SIGINT), restarting it when it crashes (a signal or a non-zero status),
  at once and then with back-off (:class:`RestartPolicy`); it gives up after
  ``max_quick_failures`` runs shorter than ``quick_run_s`` in a row, and never retries status 2
  (a configuration error).
* The child runs in its own session with stdin from ``/dev/null``, output appended to the log
  file, and ``PR_SET_PDEATHSIG`` = SIGTERM (it stops when its parent dies, however it dies).
* ``spawn`` starts the child (default :func:`popen_spawn`), ``sleep`` waits: a gevent program
  passes gevent's, so that exit statuses reach it through gevent's child watchers.
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
from typing import IO, Callable, List, Mapping, Optional, Protocol, Sequence

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


def find_binary(env: Optional[Mapping[str, str]] = None) -> str:
    """The viprouter binary to run (see the module doc).

    Raises:
        FileNotFoundError: none found; the message says where it looked.
    """
    env = os.environ if env is None else env
    explicit = env.get("VIPROUTER_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise FileNotFoundError(f"VIPROUTER_BIN={explicit} is not an executable file")
    looked = []
    for base in (sys.argv[0], sys.executable):
        if base and os.sep in base:
            candidate = os.path.join(os.path.dirname(os.path.abspath(base)), "viprouter")
            looked.append(candidate)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    found = shutil.which("viprouter", path=env.get("PATH"))
    if found:
        return found
    raise FileNotFoundError("viprouter not found: set VIPROUTER_BIN (looked at " + ", ".join(looked + ["PATH"]) + ")")


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """In a child, between fork and exec: get ``sig`` when the parent dies (Linux prctl)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def popen_spawn(argv: Sequence[str], env: Mapping[str, str], log: Optional[IO[bytes]]) -> Child:
    """Start ``argv`` as the module doc says, with ``subprocess.Popen``."""
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

    CLEAN_EXIT = "clean exit"
    GAVE_UP = "gave up"
    STOPPED = "stopped"


@dataclass
class Result:
    """The end of :meth:`Supervisor.run`."""

    outcome: Outcome
    returncode: Optional[int]
    restarts: int
    statuses: List[int] = field(default_factory=list)


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
        log = open(self.log_path, "ab", buffering=0) if self.log_path is not None else None
        try:
            child = self._spawn(self.argv, self.env, log)
        finally:
            if log is not None:
                log.close()
        self.starts += 1
        _log.info("viprouter started (pid %d, start #%d)", child.pid, self.starts)
        return child

    def run(self) -> Result:
        """Run the router until a clean exit, :meth:`stop`, or the policy gives up."""
        quick = 0
        statuses: List[int] = []
        while not self._stopping:
            started = self._clock()
            self._child = self._start()
            rc = self._child.wait()
            statuses.append(rc)
            restarts = len(statuses) - 1
            if self._stopping:
                return Result(Outcome.STOPPED, rc, restarts, statuses)
            if rc == 0:
                return Result(Outcome.CLEAN_EXIT, rc, restarts, statuses)
            if rc in self.policy.no_restart_codes:
                _log.error("viprouter exited with %d (configuration error): not restarted", rc)
                return Result(Outcome.GAVE_UP, rc, restarts, statuses)
            quick = quick + 1 if self._clock() - started < self.policy.quick_run_s else 1
            if quick > self.policy.max_quick_failures:
                _log.error("viprouter failed %d times in a row (last status %d): giving up", quick, rc)
                return Result(Outcome.GAVE_UP, rc, restarts, statuses)
            delay = self.policy.delay(quick)
            _log.error("viprouter ended with status %d: restarting in %.2f s", rc, delay)
            if delay > 0:
                self._sleep(delay)
        return Result(Outcome.STOPPED, statuses[-1] if statuses else None, max(len(statuses) - 1, 0), statuses)

    def request_stop(self) -> None:
        """Ask the running router to stop (SIGTERM) without waiting."""
        self._stopping = True
        child = self._child
        if child is not None and child.returncode is None:
            try:
                child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> Optional[int]:
        """Stop the router: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        self.request_stop()
        child = self._child
        if child is None:
            return None
        try:
            return child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
