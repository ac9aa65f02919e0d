"""Run a VOLTTRON platform with viprouter as its message router.

``viprouter-volttron`` (``cli.py``) is a drop-in for VOLTTRON's ``volttron`` command: it runs
VOLTTRON's own platform code with its in-process router replaced by a supervised viprouter
process. Modules: ``supervisor.py`` (the router process; flavour-independent), ``rootcheck.py``
and ``sdnotify.py`` (likewise), ``volttron9.py`` + ``volttron9_services.py`` (VOLTTRON 9.x),
``modular.py`` (modular VOLTTRON, volttron 11 / volttron-core 2.x).
"""

__version__ = "0.1.0"
