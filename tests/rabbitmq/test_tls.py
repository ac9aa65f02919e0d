"""amqps with a client certificate and SASL EXTERNAL, VOLTTRON's default RabbitMQ set-up (memo
multiplatform.md §5.1): a test CA, the broker's certificate, the gateway's certificate whose CN
is its RabbitMQ user; RPC through it; a broker the gateway's CA did not sign is refused."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from broker import Broker
from conftest import rpc_request, send_platform
from pki import make_pki


@pytest.fixture(scope="module")
def tls_broker():
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = Path(__import__("tempfile").mkdtemp(prefix="viprouter-bridge-pki-", dir="/tmp"))
    make_pki(d, "ca", "gwtls.viprouter")
    make_pki(d, "otherca", "gwtls.viprouter")
    b = Broker("t", tls=(d / "ca.pem", d / "server-ca.pem", d / "server-ca.key")).start()
    try:
        b.setup_vhost()
        b.ctl("add_user", "gwtls.viprouter", "unused-with-external")
        b.ctl("set_permissions", "-p", "volttron", "gwtls.viprouter", ".*", ".*", ".*")
        yield b, d
    finally:
        b.close()
        shutil.rmtree(d, ignore_errors=True)


def tls_config(d: Path, ca: str) -> str:
    return (f"rabbitmq-ca-file = {d / f'{ca}.pem'}\nrabbitmq-cert-file = {d / f'client-{ca}.pem'}\n"
            f"rabbitmq-key-file = {d / f'client-{ca}.key'}\n")


def test_amqps_with_external_carries_rpc(tls_broker, gateways, rmq_agents):
    b, d = tls_broker
    gw = gateways("gwtls", f"amqps://127.0.0.1:{b.tls_port}/volttron", extra=tls_config(d, "ca"))
    caller = gw.agent("caller")
    gw.wait_bridge("up", bound=2)
    users = [r for r in b.rows("list_connections", "user", "ssl", "auth_mechanism") if r[0] == "gwtls.viprouter"]
    assert users == [["gwtls.viprouter", "true", "EXTERNAL"]], users
    callee = rmq_agents("v1", "callee", port=b.port)
    req = rpc_request("echo", [1], "t1")
    send_platform(caller, "v1", "callee", [req], msgid=b"5.5")
    d1 = callee.expect(5)
    assert (d1.routing_key, d1.app_id) == ("v1.callee", "gwtls.caller"), d1
    callee.answer(d1, 1)
    f = caller.recv_matching(lambda f: f[4] == b"external_rpc", 5)[0]
    assert f[5] == b"send_peer" and b'"from_platform": "v1"' in f[6], f


def test_a_broker_certificate_from_another_ca_is_refused(tls_broker, gateways):
    b, d = tls_broker
    # The gateway trusts only `otherca`: the broker's certificate does not verify.
    gw = gateways("gwtls", f"amqps://127.0.0.1:{b.tls_port}/volttron", extra=tls_config(d, "otherca"))
    deadline = time.monotonic() + 5
    while gw.stats()["amqp_downs"] < 2:
        assert time.monotonic() < deadline, gw.stats()
        time.sleep(0.1)
    st = gw.stats()
    assert st["rabbitmq"]["state"] != "up" and st["amqp_ups"] == 0, st
    assert st["amqp_protocol_errors"] >= 1, st
    assert "certificate" in gw.log().lower() or "tls" in gw.log().lower(), gw.log_tail()
