"""pytest plugin (``-p outcomes``): one outcome per test item, written as JSON to
``$VT9_OUTCOMES`` when the session ends.

Outcome: ``passed``, ``failed`` (the test body), ``error`` (its setup or teardown failed —
VOLTTRON's module-scoped platform fixtures report a broken platform stop this way),
``skipped``, ``xfailed``, ``xpassed``. ``message`` is the first line of the failure, for the
reasons recorded in the baseline.
"""
import json
import os
import time

_results = {}
_started = time.monotonic()


def _message(report):
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300] if crash.message else ""
    text = str(getattr(report, "longrepr", "") or "")
    return text.strip().splitlines()[-1][:300] if text.strip() else ""


def pytest_runtest_logreport(report):
    r = _results.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            r["outcome"] = "xfailed" if report.skipped else "xpassed"
        else:
            r["outcome"] = report.outcome  # passed / failed / skipped
        if report.failed:
            r["message"] = _message(report)
        r["duration"] = round(report.duration, 2)
    elif report.failed:  # setup or teardown
        if r["outcome"] == "failed":
            r["teardown_error"] = _message(report)
        else:
            r["outcome"] = "error"
            r["message"] = f"{report.when}: {_message(report)}"
    elif report.skipped and report.when == "setup":
        r["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        r["message"] = _message(report)


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("VT9_OUTCOMES")
    if path:
        with open(path, "w") as f:
            json.dump({"tests": _results, "wall_s": round(time.monotonic() - _started, 1),
                       "exitstatus": int(exitstatus)}, f, indent=1, sort_keys=True)
