"""A throw-away PKI for the amqps tests (`test_tls.py`, `test_hostile_broker.py`): a CA, a
server certificate for 127.0.0.1/localhost and a client certificate, made with `openssl`."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def make_pki(d: Path, ca: str, client_cn: str) -> None:
    """`<ca>.pem`, `server-<ca>.pem/.key` (127.0.0.1, localhost), `client-<ca>.pem/.key`."""
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
            "-days", "2", "-subj", f"/CN={ca}")
    for name, cn, ext in (("server", "localhost", "server.ext"), ("client", client_cn, "client.ext")):
        openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-{ca}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}")
        openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}-{ca}.pem", "-days", "2", "-extfile", ext)
