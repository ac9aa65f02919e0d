"""A VOLTTRON 9 agent-library client for the platform tests (run with the VOLTTRON venv's
python, in its own process: the agent library monkey-patches the interpreter with gevent).

  vt9_client.py probe ADDRESS IDENTITY PUBLIC SECRET SERVERKEY SECONDS [STAY]
      connect an unmodified VOLTTRON Agent with these CURVE keys; print CONNECTED (exit 0) when
      the router welcomes it within SECONDS, else REFUSED (exit 1); stay connected STAY seconds.
  vt9_client.py rpc ADDRESS PEER METHOD [JSON_ARGS]
      call PEER.METHOD(*JSON_ARGS) as identity `test.rpc` with the platform's own key pair
      (auth.json's `platform` entry admits it); print the JSON result (exit 0) or the error.
"""
import json
import os
import sys

import gevent
import gevent.event

from volttron.platform.keystore import KeyStore, KnownHostsStore
from volttron.platform.vip.agent import Agent


def run_agent(address, identity, public, secret, serverkey, seconds):
    agent = Agent(address=address, identity=identity, publickey=public, secretkey=secret,
                  serverkey=serverkey, enable_store=False)
    event = gevent.event.Event()
    task = gevent.spawn(agent.core.run, event)
    return agent, task, event.wait(seconds)


def probe(address, identity, public, secret, serverkey, seconds, stay="0"):
    agent, task, ok = run_agent(address, identity, public, secret, serverkey, float(seconds))
    print("CONNECTED" if ok else "REFUSED", flush=True)
    if ok and float(stay) > 0:
        gevent.sleep(float(stay))
    agent.core.stop(timeout=3)
    task.kill(block=False)
    return 0 if ok else 1


def rpc(address, peer, method, args="[]"):
    home = os.environ["VOLTTRON_HOME"]
    ks = KeyStore(os.path.join(home, "keystore"))
    serverkey = KnownHostsStore().serverkey(address) or ks.public
    agent, task, ok = run_agent(address, "test.rpc", ks.public, ks.secret, serverkey, 15)
    if not ok:
        print("not connected", flush=True)
        return 2
    try:
        result = agent.vip.rpc.call(peer, method, *json.loads(args)).get(timeout=20)
        print(json.dumps(result), flush=True)
        return 0
    except Exception as e:  # the test prints it
        print(f"error: {e!r}", flush=True)
        return 1
    finally:
        agent.core.stop(timeout=3)
        task.kill(block=False)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    os._exit({"probe": probe, "rpc": rpc}[cmd](*args))
