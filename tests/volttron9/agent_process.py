"""An unmodified VOLTTRON agent in its own process, for tests that kill it (a crash leaves no
agentstop behind). Usage: python agent_process.py IDENTITY ADDRESS VOLTTRON_HOME AUTH(0|1)"""
import sys

import gevent
from volttron.platform.vip.agent import Agent


def main() -> None:
    identity, address, home, auth = sys.argv[1:5]
    agent = Agent(
        identity=identity,
        address=address,
        volttron_home=home,
        enable_store=False,
        enable_auth=auth == "1",
        message_bus="zmq",
    )
    gevent.spawn(agent.core.run).join()


if __name__ == "__main__":
    main()
