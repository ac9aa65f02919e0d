#!/usr/bin/env python3
"""The viprouter .deb on a fresh Debian, end to end (`make deb-test`).

1. debootstrap a bookworm minbase with systemd into a temporary folder (nothing is cached:
   every run starts from the Debian mirror);
2. boot it with systemd-nspawn (its own network namespace) and take a snapshot of its files;
3. `dpkg -i` the package: the service must be enabled and running under systemd, the user,
   VOLTTRON_HOME, keystore and conffile in place;
4. admit a client key in auth.json, `systemctl reload viprouter`, and connect a real libzmq
   client (pyzmq, run in the container's network namespace) over CURVE to the abstract ipc
   endpoint: VIP hello must be welcomed and `query serverkey` must answer the keystore's key;
5. `systemctl stop`, then `dpkg -r` (conffile and state kept), `dpkg -i` again (enabled and
   running again), `dpkg --purge`;
6. compare the files with the snapshot: nothing may be left but what policy allows (the system
   user and group, dpkg's own records and logs).

Without a bootable systemd (nspawn missing or failing) it falls back to a chroot and runs the
unit's ExecStart as its User with its Environment (`--no-systemd` forces that).

    test-deb.py --deb target/dist/viprouter_0.1.0-1_amd64.deb [--mirror URL] [--keep]

Root only. The client side needs pyzmq (`make venv`); run with the venv's python.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SUITE = "bookworm"
HOME = "var/lib/viprouter"
IPC = "ipc://@/var/lib/viprouter/run/vip.socket"
# Files a package's install and purge may change outside its own, by policy: dpkg's database
# and logs, the journal, and the system user and group (kept on purge: files owned by their
# ids may remain elsewhere, and a reused id would own them).
ALLOWED = re.compile(r"^(var/lib/dpkg/|var/log/|var/cache/debconf/|var/lib/systemd/(timers|random-seed|catalog)"
                     r"|etc/(passwd|group|shadow|gshadow)-?$|etc/\.pwd\.lock$)")
PASSWD_FILES = ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"]
EXCLUDED_TOP = {"proc", "sys", "dev", "run", "tmp"}


def log(msg: str) -> None:
    print(f"deb-test: {msg}", flush=True)


class Failure(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)
    log(f"ok: {what}")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    kw.setdefault("capture_output", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        raise Failure(f"{' '.join(cmd)} exited {e.returncode}:\n{e.stdout}\n{e.stderr}") from None


def snapshot(root: str) -> dict[str, tuple]:
    """Path -> (type, mode, uid, gid, content for /etc files) of every file but the virtual ones."""
    out = {}
    for top in sorted(os.listdir(root)):
        if top in EXCLUDED_TOP:
            continue
        paths = [os.path.join(root, top)]
        if os.path.isdir(paths[0]) and not os.path.islink(paths[0]):
            for d, dirs, files in os.walk(paths[0]):
                paths += [os.path.join(d, n) for n in dirs + files]
        for path in paths:
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            content = None
            if rel.startswith("etc/") and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    content = f.read()
            out[rel] = (st.st_mode >> 12, st.st_mode & 0o7777, st.st_uid, st.st_gid, content)
    return out


def leftovers(before: dict, after: dict) -> list[str]:
    """Differences a purge must not leave, as readable lines."""
    bad = []
    for rel in sorted(set(before) | set(after)):
        if before.get(rel) == after.get(rel) or ALLOWED.match(rel):
            continue
        what = "added" if rel not in before else "removed" if rel not in after else "changed"
        bad.append(f"{what}: /{rel}")
    for rel in PASSWD_FILES:
        old = set((before[rel][4] or b"").decode().splitlines())
        new = set((after[rel][4] or b"").decode().splitlines())
        extra = sorted(l.split(":")[0] for l in new - old)
        if (old - new) or extra not in ([], ["viprouter"]):
            bad.append(f"/{rel}: lines added {sorted(new - old)}, removed {sorted(old - new)}")
    return bad


class Container:
    """A booted systemd-nspawn container, driven with nsenter."""

    def __init__(self, root: str):
        self.root = root
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit", "--private-network",
             "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=pipe", "-q"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.leader = 0
        deadline = time.monotonic() + 90
        state = ""
        while time.monotonic() < deadline and self.proc.poll() is None:
            kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
            if kids:
                self.leader = int(kids[0])
                state = self.sh("systemctl is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
            time.sleep(0.5)
        if state not in ("running", "degraded"):
            out = self.stop()
            raise OSError(f"systemd did not boot in the container (state {state!r}): {out[-2000:]}")
        if state == "degraded":
            log("container degraded: " + self.sh("systemctl --failed --no-legend", check=False).stdout.strip())

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command inside the container (its mount, pid, net, ipc, uts namespaces)."""
        cmd = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
               "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "/bin/sh", "-c", command]
        return run(cmd, check=check)

    def host_in_netns(self) -> list[str]:
        """Prefix for a host command that must run in the container's network namespace."""
        return ["nsenter", "-t", str(self.leader), "-n", "--"]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stdout.read() if self.proc.stdout else ""


class Chroot:
    """No systemd: commands in a chroot; the router as the unit's ExecStart, User, Environment."""

    def __init__(self, root: str):
        self.root = root
        self.router = None
        for d in ("proc", "dev"):
            run(["mount", "--bind", f"/{d}", os.path.join(root, d)])

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["chroot", self.root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                    "/bin/sh", "-c", command], check=check)

    def start_unit(self) -> None:
        unit = open(os.path.join(self.root, "lib/systemd/system/viprouter.service")).read()
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
        user = re.search(r"^User=(.*)$", unit, re.M).group(1)
        env = re.findall(r"^Environment=(.*)$", unit, re.M)
        log(f"starting ExecStart as {user}: {' '.join(exec_start)} with {env}")
        # Its own network namespace, as nspawn's --private-network: the abstract socket is private.
        self.router = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up 2>/dev/null; exec \"$@\"", "-",
             "chroot", f"--userspec={user}:{user}", self.root, "/usr/bin/env", "-i", *env, *exec_start],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        check(self.router.poll() is None, "the router runs from the unit's ExecStart")

    def host_in_netns(self) -> list[str]:
        return ["nsenter", "-t", str(self.router.pid), "-n", "--"]

    def stop_unit(self) -> None:
        self.router.send_signal(signal.SIGTERM)
        rc = self.router.wait(15)
        check(rc == 0, f"SIGTERM stops the router with status 0 (got {rc})")
        self.router = None

    def stop(self) -> str:
        if self.router:
            self.router.kill()
        for d in ("dev", "proc"):
            subprocess.run(["umount", "-l", os.path.join(self.root, d)], check=False)
        return ""


def client(args: argparse.Namespace) -> None:
    """`test-deb.py client`: hello and `query serverkey` over CURVE; prints the answers as JSON."""
    import zmq  # the venv's pyzmq (libzmq)
    import zmq.utils.z85

    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.IDENTITY, b"deb-test")
    s.setsockopt(zmq.CURVE_SERVERKEY, zmq.utils.z85.encode(base64.urlsafe_b64decode(args.serverkey + "=")))
    s.setsockopt(zmq.CURVE_PUBLICKEY, args.public.encode())
    s.setsockopt(zmq.CURVE_SECRETKEY, args.secret.encode())
    s.connect(IPC)
    answers = {}
    for msgid, frames in ((b"1", [b"hello", b"hello"]), (b"2", [b"query", b"serverkey"])):
        s.send_multipart([b"", b"VIP1", b"", msgid, *frames])
        if not s.poll(5000):
            break
        reply = s.recv_multipart()
        answers[msgid.decode()] = [f.decode("latin-1") for f in reply]
    print(json.dumps(answers))
    ctx.destroy(linger=0)


def talk_to_router(box, root: str) -> None:
    """Admit a fresh key in auth.json, reload, and connect a libzmq client over CURVE."""
    import zmq
    import zmq.utils.z85

    public, secret = zmq.curve_keypair()
    credentials = base64.urlsafe_b64encode(zmq.utils.z85.decode(public)).rstrip(b"=").decode()
    entry = {"domain": None, "address": None, "mechanism": "CURVE", "credentials": credentials,
             "user_id": "deb-test", "identity": "deb-test", "capabilities": {}, "enabled": True}
    auth = os.path.join(root, HOME, "auth.json")
    with open(auth, "w") as f:
        json.dump({"allow": [entry], "version": {"major": 1, "minor": 4}}, f)
    box.sh("chown viprouter:viprouter /var/lib/viprouter/auth.json")
    if isinstance(box, Container):
        box.sh("systemctl reload viprouter")
        check(box.sh("systemctl is-active viprouter").stdout.strip() == "active", "active after systemctl reload")
    else:
        box.router.send_signal(signal.SIGHUP)
        time.sleep(0.5)
    serverkey = json.load(open(os.path.join(root, HOME, "keystore")))["public"]
    out = run([*box.host_in_netns(), sys.executable, os.path.abspath(__file__), "client",
               # `--opt=value`: a key may start with `-` (Z85 and URL-safe base64 both have it),
               # which argparse would take for an option ("expected one argument").
               f"--serverkey={serverkey}", f"--public={public.decode()}", f"--secret={secret.decode()}"]).stdout
    answers = json.loads(out)
    check(answers.get("1", [])[4:6] == ["hello", "welcome"], f"libzmq CURVE client welcomed over {IPC}: {answers.get('1')}")
    check(answers.get("2", [])[4:] == ["query", "", serverkey], f"query serverkey answers the keystore's public key: {answers.get('2')}")


def install_checks(box, root: str) -> None:
    st = os.stat(os.path.join(root, HOME))
    check(oct(st.st_mode & 0o777) == "0o750", "/var/lib/viprouter is 0750")
    check(os.readlink(os.path.join(root, HOME, "config")) == "/etc/viprouter/config", "VOLTTRON_HOME/config -> /etc/viprouter/config")
    conffiles = box.sh("dpkg-query -W -f='${Conffiles}' viprouter").stdout.split()
    check(conffiles[:1] == ["/etc/viprouter/config"], f"conffile /etc/viprouter/config ({conffiles})")
    for page in ("/usr/share/man/man8/viprouter.8.gz", "/usr/share/man/man5/viprouter.conf.5.gz"):
        check(os.path.exists(root + page), f"{page} installed")
    if isinstance(box, Container):
        check(box.sh("systemctl is-enabled viprouter.service").stdout.strip() == "enabled", "viprouter.service enabled")
        check(box.sh("systemctl is-enabled viprouter.socket", check=False).stdout.strip() == "disabled",
              "viprouter.socket not enabled")
        for _ in range(50):
            if box.sh("systemctl is-active viprouter", check=False).stdout.strip() == "active":
                break
            time.sleep(0.2)
        check(box.sh("systemctl is-active viprouter", check=False).stdout.strip() == "active",
              "viprouter.service started by postinst (Type=notify: READY=1 received)")
        user = box.sh("ps -o user= -C viprouter", check=False).stdout.split()
        check(user == ["viprouter"], f"the router runs as user viprouter ({user})")
        # The package's binary is linked by zig, whose calloc writes its zeros: without the
        # allocator of src/pages.rs the start-up tables made it idle at 20 MB of anonymous memory.
        status = box.sh("cat /proc/$(ps -o pid= -C viprouter | head -1 | tr -d ' ')/status", check=False).stdout
        anon = [int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")]
        check(bool(anon) and anon[0] < 4096, f"idle: under 4 MiB of anonymous memory ({anon} kB)")
    else:
        box.start_unit()
    ks = os.stat(os.path.join(root, HOME, "keystore"))
    check(oct(ks.st_mode & 0o777) == "0o600", "keystore created, mode 0600")


def scenario(box, root: str, deb: str, times: dict) -> None:
    before = snapshot(root)
    shutil.copy(deb, os.path.join(root, "viprouter.deb"))
    t = time.monotonic()
    box.sh("dpkg -i /viprouter.deb")
    times["dpkg -i"] = time.monotonic() - t
    install_checks(box, root)
    talk_to_router(box, root)
    if isinstance(box, Container):
        box.sh("systemctl stop viprouter")
        check(box.sh("systemctl is-active viprouter", check=False).stdout.strip() == "inactive", "systemctl stop")
        check(not box.sh("pgrep -u viprouter", check=False).stdout.strip(), "no process of user viprouter left")
    else:
        box.stop_unit()
    box.sh("dpkg -r viprouter")
    check(os.path.exists(os.path.join(root, "etc/viprouter/config")), "dpkg -r keeps the conffile")
    check(os.path.exists(os.path.join(root, HOME, "keystore")), "dpkg -r keeps the keystore")
    box.sh("dpkg -i /viprouter.deb")
    install_checks(box, root)
    if isinstance(box, Chroot):
        box.stop_unit()
    t = time.monotonic()
    box.sh("dpkg --purge viprouter")
    times["dpkg --purge"] = time.monotonic() - t
    os.remove(os.path.join(root, "viprouter.deb"))
    if isinstance(box, Container):
        check(box.sh("test -e /run/viprouter", check=False).returncode != 0, "/run/viprouter gone")
        check(not box.sh("pgrep -u viprouter", check=False).stdout.strip(), "no process of user viprouter after purge")
    after = snapshot(root)
    named = sorted(p for p in after if "viprouter" in p and not ALLOWED.match(p))
    check(not named, f"no file named viprouter left after purge {named}")
    bad = leftovers(before, after)
    check(not bad, "purge leaves nothing but the user/group and dpkg's records" + ("".join("\n  " + b for b in bad)))
    check(box.sh("getent passwd viprouter").stdout.split(":")[5] == "/var/lib/viprouter", "system user kept (policy)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("client")
    c.add_argument("--serverkey", required=True)
    c.add_argument("--public", required=True)
    c.add_argument("--secret", required=True)
    ap.add_argument("--deb")
    ap.add_argument("--mirror", default=os.environ.get("DEB_MIRROR", "http://deb.debian.org/debian"))
    ap.add_argument("--no-systemd", action="store_true", help="chroot + the unit's ExecStart")
    ap.add_argument("--keep", action="store_true", help="keep the debootstrapped folder")
    ap.add_argument("--root", help="use this debootstrapped folder (not removed) instead of a new one")
    args = ap.parse_args()
    if args.cmd == "client":
        client(args)
        return 0
    if not args.deb or os.geteuid() != 0:
        ap.error("--deb FILE is needed, and root")
    times: dict[str, float] = {}
    work = tempfile.mkdtemp(prefix="viprouter-deb-test-")
    root = args.root or os.path.join(work, "root")
    box = None
    try:
        t = time.monotonic()
        packages = "systemd,systemd-sysv,dbus,procps"
        if not args.root:
            run(["debootstrap", "--variant=minbase", f"--include={packages}", SUITE, root, args.mirror])
            times["debootstrap"] = time.monotonic() - t
            log(f"debootstrap {SUITE} minbase + {packages}: {times['debootstrap']:.0f} s")
        t = time.monotonic()
        if not args.no_systemd and shutil.which("systemd-nspawn"):
            try:
                box = Container(root)
            except OSError as e:
                log(f"no systemd in a container here ({e}); falling back to chroot + ExecStart")
        box = box or Chroot(root)
        times["boot"] = time.monotonic() - t
        log(f"{'systemd booted in systemd-nspawn' if isinstance(box, Container) else 'chroot'}: {times['boot']:.1f} s")
        scenario(box, root, args.deb, times)
    except Failure as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        if box:
            box.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log("times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    log("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
