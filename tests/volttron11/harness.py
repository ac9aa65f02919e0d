"""What the modular VOLTTRON tests share: the pinned venv, the unprivileged user the platform
must run as, homes, a viprouter process, a platform process (stock ``volttron`` or
``viprouter-volttron``), ``vctl``, and the agent-level client (``modular_client.py``).

Nothing here is a stand-in for VOLTTRON: homes are seeded with modular's own credential
classes, the platforms are modular's own ``volttron`` (optionally through the project's
launcher), the agents are modular's own ``Agent``.
"""

import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("VOLTTRON11_VENV", str(REPO / ".venv-volttron11")))
PYTHON = VENV / "bin" / "python"
BIN = Path(os.environ.get("VIPROUTER_BIN", str(REPO / "target" / "release" / "viprouter")))
CLIENT = Path(__file__).resolve().parent / "modular_client.py"
POETRY_CACHE = REPO / "target" / "volttron11" / "poetry-cache"
# The platform refuses uid 0 (run_server.py:615): it runs as this user, created if missing.
USER = os.environ.get("VOLTTRON11_USER", "vr11test")


def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_user() -> pwd.struct_passwd:
    """The unprivileged user (created once; a system user without a home or shell)."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True
        )
        return pwd.getpwnam(USER)


def check_user_can_run_venv() -> None:
    """The venv's interpreter must be reachable by the user (a venv under /root is not)."""
    r = subprocess.run(
        ["runuser", "-u", USER, "--", str(PYTHON), "-c", "import volttron.server.run_server"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise AssertionError(
            f"user {USER} cannot run {PYTHON} ({r.stderr.strip()[-300:]}): the repository and the venv's "
            "Python must be readable by an unprivileged user (make volttron11 builds it from /usr/bin/python3)"
        )


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, user.pw_uid, user.pw_gid)


def client(mode: str, home: Path, *args: str, timeout: float = 180, input_text: Optional[str] = None) -> Dict[str, Any]:
    """Run ``modular_client.py`` (as root: agents may) and return its last observations. It
    prints them as JSON lines and ``DONE``; it is killed at ``DONE`` or after ``timeout`` (a
    modular agent whose router died can block its process, see ``checkpoint`` there)."""
    errfile = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(PYTHON), str(CLIENT), mode, "--home", str(home), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errfile,
        text=True,
        env=dict(os.environ, VOLTTRON_HOME=str(home)),
    )
    assert proc.stdin is not None and proc.stdout is not None
    if input_text is not None:
        proc.stdin.write(input_text)
        proc.stdin.flush()
    last: Optional[str] = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stdout.readline()
            if not line or line.strip() == "DONE":
                break
            if line.strip() == "RISKY":
                deadline = min(deadline, time.monotonic() + 20)
            if line.startswith("{"):
                last = line
    finally:
        proc.kill()
        proc.communicate()
        errfile.seek(0)
        err = errfile.read().decode(errors="replace")
        errfile.close()
    if mode == "seed":
        assert proc.returncode in (0, -9), err[-2000:]
        return {}
    assert last is not None, f"client printed no observations: {err[-3000:]}"
    out: Dict[str, Any] = json.loads(last)
    return out


def write_config(home: Path, lines: List[str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config").write_text("[volttron]\n" + "".join(f"{line}\n" for line in lines))


def make_home(home: Path, address: str, auth: bool = True) -> Path:
    """A modular home: config (``address``, ``auth-enabled``), credentials and authz.json of the
    test identities (``modular_client.py seed``)."""
    lines = [f"instance-name = {home.name}", f"address = {address}"]
    if not auth:
        lines.append("auth-enabled = False")
    write_config(home, lines)
    client("seed", home)
    return home


def platform_project(dev: Path) -> Path:
    """The folder ``volttron --dev`` runs from: a poetry project pinning every package of the
    venv, so that the platform never re-resolves anything at start and ``vctl install`` of the
    pinned listener installs nothing (``aip.py`` runs ``poetry add`` in it)."""
    dev.mkdir(parents=True, exist_ok=True)
    freeze = subprocess.run(
        [str(PYTHON), "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    pins = "\n".join(f'"{n}" = "{v}"' for n, v in (line.split("==", 1) for line in freeze if "==" in line))
    py = subprocess.run([str(PYTHON), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True).stdout.strip()
    major, minor = (int(x) for x in py.split("."))
    (dev / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "viprouter-volttron11-test"\nversion = "0.1.0"\ndescription = "test platform project"\n'
        'authors = ["viprouter tests"]\npackage-mode = false\n\n[tool.poetry.dependencies]\n'
        f'python = ">={major}.{minor},<{major}.{minor + 1}"\n{pins}\n'
    )
    (dev / "poetry.toml").write_text("[virtualenvs]\ncreate = false\n")
    return dev


class Router:
    """viprouter on a home, as root (agent-level tests)."""

    def __init__(self, home: Path, extra_env: Optional[Dict[str, str]] = None) -> None:
        self.home = home
        self.log = home / "viprouter.log"
        self.proc: Optional[subprocess.Popen] = None
        self.extra_env = extra_env or {}

    def ready_lines(self) -> int:
        return self.log.read_text(errors="replace").count(" ready: ") if self.log.exists() else 0

    def start(self, argv_prefix: Optional[List[str]] = None, preexec: Optional[Callable[[], None]] = None) -> "Router":
        before = self.ready_lines()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*(argv_prefix or []), str(BIN), "--volttron-home", str(self.home)],
                stdout=log,
                stderr=log,
                env=dict(os.environ, RUST_LOG="info", **self.extra_env),
                # `preexec` may hand descriptors over (socket activation: fds 3…, made
                # inheritable); every other descriptor here is close-on-exec (PEP 446).
                close_fds=preexec is None,
                preexec_fn=preexec,
            )
        wait_for(lambda: self.ready_lines() > before or self.dead(), 20, "viprouter ready")
        assert not self.dead(), self.log.read_text(errors="replace")[-2000:]
        return self

    def dead(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def stop(self, sig: int = signal.SIGTERM) -> Optional[int]:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


class Platform:
    """A modular platform as the unprivileged user, from a ``--dev`` project folder: stock
    ``volttron`` (modular's own router) or ``viprouter-volttron`` (viprouter as its bus)."""

    def __init__(self, root: Path, home: Path, on_viprouter: bool) -> None:
        self.user = ensure_user()
        self.root = root
        self.home = home
        self.dev = platform_project(root / "dev")
        self.userhome = root / "userhome"
        self.userhome.mkdir(exist_ok=True)
        self.log = root / "platform.log"
        self.command = "viprouter-volttron" if on_viprouter else "volttron"
        self.proc: Optional[subprocess.Popen] = None

    def env(self) -> Dict[str, str]:
        # Network settings of this machine (proxies, CA bundles) for poetry's PyPI lookups.
        passed = {
            k: v for k, v in os.environ.items()
            if k.lower().endswith("_proxy") or k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        }
        return {
            **passed,
            "VOLTTRON_HOME": str(self.home),
            "HOME": str(self.userhome),
            "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "VIRTUAL_ENV": str(VENV),  # where modular's `poetry add` (vctl install) looks
            "VIPROUTER_BIN": str(BIN),
            "LANG": "C.UTF-8",
            # poetry's metadata cache outlives a test run (vctl install resolves against PyPI).
            "POETRY_CACHE_DIR": str(POETRY_CACHE),
        }

    def _as_user(self, argv: List[str]) -> List[str]:
        return ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in self.env().items()), *argv]

    def start(self, timeout: float = 60) -> "Platform":
        chown_tree(self.root, self.user)
        POETRY_CACHE.mkdir(parents=True, exist_ok=True)
        os.chown(POETRY_CACHE, self.user.pw_uid, self.user.pw_gid)
        with open(self.root / "platform.out", "ab") as out:
            self.proc = subprocess.Popen(
                self._as_user([str(VENV / "bin" / self.command), "--dev", "-v", "-l", str(self.log)]),
                cwd=self.dev,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        pid_file = self.home / "VOLTTRON_PID"
        wait_for(lambda: (pid_file.exists() and pid_file.read_text().strip()) or self.proc.poll() is not None, timeout,
                 "the platform's VOLTTRON_PID")
        assert self.proc.poll() is None, self.tail()
        return self

    def tail(self, n: int = 3000) -> str:
        parts = []
        for f in (self.root / "platform.out", self.log, self.home / "viprouter.log"):
            if f.exists():
                parts.append(f"--- {f}\n" + f.read_text(errors="replace")[-n:])
        return "\n".join(parts)

    def vctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._as_user([str(VENV / "bin" / "vctl"), *args]), cwd=self.dev, capture_output=True, text=True,
            timeout=timeout,
        )

    def user_pids(self) -> List[int]:
        r = subprocess.run(["pgrep", "-u", USER], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()]

    def stop(self) -> None:
        """Stop what this platform started: the process, then every process of the test user
        (agents it launched), by pid."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in self.user_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class HeldClient:
    """``modular_client.py hold``: two agents that connect, then wait (``READY``) while the
    test does something to the router, and report what still works when released."""

    def __init__(self, home: Path, address: str, security: str = "curve") -> None:
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(PYTHON), str(CLIENT), "hold", "--home", str(home), "--address", address, "--security", security],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
            env=dict(os.environ, VOLTTRON_HOME=str(home)),
        )
        assert self.proc.stdout is not None
        ready = select.select([self.proc.stdout], [], [], 60)[0]
        line = self.proc.stdout.readline() if ready else ""
        assert line.strip() == "READY", f"agents did not connect: {line!r} {self.stderr()[-2000:]}"

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def release(self, timeout: float = 60) -> Dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        last = None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    break
                line = self.proc.stdout.readline()
                if not line or line.strip() == "DONE":
                    break
                if line.startswith("{"):
                    last = line
        finally:
            self.proc.kill()
            self.proc.communicate()
        assert last is not None, f"no observations: {self.stderr()[-3000:]}"
        out: Dict[str, Any] = json.loads(last)
        return out
