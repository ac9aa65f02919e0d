"""Print the table "feature | modular's own router | viprouter" from the observations the
agent-level tests recorded (``target/volttron11/observations.json``, written by
``make test-volttron11``). Both columns are the same client program (``modular_client.py``)
against each router, CURVE; a cell shows tcp, and ``/ ipc: …`` when ipc differed."""

import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

ROWS: List[Tuple[str, str, Callable[[Any], str]]] = [
    ("hello / welcome", "hello", lambda v: "welcome" if isinstance(v, list) and v[2] == "agent.a" else str(v)),
    ("ping", "ping", lambda v: "pong" if v == [""] else str(v)),
    ("peerlist", "peerlist has a and b", lambda v: "both agents listed" if v is True else str(v)),
    ("RPC a→b, b→a (real platform.auth first)", "rpc b->a", lambda v: "works" if v == [1, "x"] else str(v)),
    ("RPC `agent.version`", "rpc agent.version (library)", lambda v: "fails in the agent library (`_version`)"
     if "_version" in str(v) else str(v)),
    ("RPC to a missing peer", "rpc to a missing peer", lambda v: "agent times out (it parses its MSG_ID as a float)"
     if str(v).startswith("Timeout") else "Unreachable" if str(v).startswith("Unreachable") else str(v)),
    ("error 113 reply", "router reply to a missing peer", lambda v: "correct" if isinstance(v, list) and v[1] == "113"
     else str(v)),
    ("pubsub subscribe / publish / delivery", "delivery", lambda v: "delivered" if v else "not delivered"),
    ("pubsub list", "pubsub list", lambda v: "listed" if v == [["", "test/", True]] else str(v)),
    ("protected topic: subscribe with a `subscribe` capability", "protected: subscribe with the capability",
     lambda v: "allowed" if v == "\x01" else "refused (-32001)" if "32001" in str(v) else str(v)),
    ("protected topic: publish with a `publish` capability", "protected: delivered topics",
     lambda v: "delivered" if v == ["secret/x"] else str(v)),
    ("protected topic: publish without capability (raw client)", "raw protected publish (no capability)",
     lambda v: f"-32001 `{v[2]}`" if isinstance(v, list) and len(v) > 2 else str(v)),
    ("protected topic: USER_ID frame spoofed as platform.control", "raw USER_ID spoof publish",
     lambda v: "refused" if v == "refused" else "**accepted**"),
    ("unknown CURVE key", "unknown CURVE key", lambda v: "refused" if "refused" in str(v) else "**admitted**"),
    ("known key under another identity", "a known key under another identity",
     lambda v: "refused" if "refused" in str(v) else "**admitted**"),
    ("third-party `agentstop`", "third-party agentstop by agent.a",
     lambda v: "ignored (platform.control only)" if v == "ignored" else "**honoured** (anyone)"),
    ("`query serverkey`", "query serverkey", lambda v: "answered" if isinstance(v, list) and v and v[0]
     else "**no reply: the router crashed, platform down**"),
]


def cell(obs: Dict[str, Any], key: str, fmt: Callable[[Any], str]) -> str:
    return fmt(obs[key]) if key in obs else "(not measured)"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "target/volttron11/observations.json"
    obs = json.loads(path.read_text())
    print("| feature | modular's own router (volttron-lib-zmq 2.0.0rc11) | viprouter |")
    print("|---|---|---|")
    for label, key, fmt in ROWS:
        cells = []
        for router in ("modular", "viprouter"):
            tcp = cell(obs.get(f"{router} curve tcp", {}), key, fmt)
            ipc = cell(obs.get(f"{router} curve ipc", {}), key, fmt)
            cells.append(tcp if ipc == tcp else f"{tcp} / ipc: {ipc}")
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    null = obs.get("viprouter null tcp", {})
    print(f"| NULL (`auth-enabled = False`) | platform does not start (`ResolutionError`) | "
          f"{'works (same checks)' if null.get('rpc a->b') == 7 else 'see observations'} |")


if __name__ == "__main__":
    main()
