"""run_suite.py's check and record: a regression fails, the rest is reported (no platform)."""
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
F = "volttrontesting/x/test_a.py"


def results(tmp, outcomes, name="r.json", first=None):
    tests = {f"{F}::{n}": {"outcome": o, "message": f"msg {n}"} for n, o in outcomes.items()}
    for n, o in (first or {}).items():
        tests[f"{F}::{n}"]["first_attempt"] = o
    doc = {"router": "viprouter", "jobs": 1, "wall_s": 1.0,
           "files": {F: {"tests": tests, "counts": {}, "wall_s": 1.0, "status": 0}}}
    p = tmp / name
    p.write_text(json.dumps(doc))
    return p


def baseline(tmp, volttron, known=None, flaky=None):
    tests = {f"{F}::{n}": {"volttron": o, "viprouter": o} for n, o in volttron.items()}
    p = tmp / "baseline.json"
    p.write_text(json.dumps({"tests": tests, "known": known or {}, "flaky": flaky or {}, "files": {}}))
    return p


def check(base, res):
    r = subprocess.run([sys.executable, str(HERE / "run_suite.py"), "check", "--baseline", str(base), str(res)],
                       capture_output=True, text=True)
    return r.returncode, r.stdout


def test_regression_fails_the_check(tmp_path):
    base = baseline(tmp_path, {"t1": "passed", "t2": "failed", "t3": "skipped"})
    assert check(base, results(tmp_path, {"t1": "passed", "t2": "failed", "t3": "skipped"}))[0] == 0
    rc, out = check(base, results(tmp_path, {"t1": "failed", "t2": "passed", "t3": "skipped"}))
    assert rc == 1 and "REGRESSION: volttrontesting/x/test_a.py::t1" in out, out
    rc, out = check(base, results(tmp_path, {"t2": "failed"}))
    assert rc == 1 and "is missing" in out, "a test that did not run is a regression"


def test_known_flaky_and_retried_are_reported_not_fatal(tmp_path):
    base = baseline(tmp_path, {"t1": "passed", "t2": "passed", "t3": "passed"},
                    known={f"{F}::t1": "BUG-x"}, flaky={f"{F}::t2": "timing"})
    rc, out = check(base, results(tmp_path, {"t1": "failed", "t2": "failed", "t3": "passed"}, first={"t3": "failed"}))
    assert rc == 0, out
    assert "KNOWN viprouter deviation (BUG-x)" in out and "NOT CHECKED (flaky on either router: timing)" in out
    assert "FLAKY: volttrontesting/x/test_a.py::t3 passed on its second attempt" in out
    rc, out = check(base, results(tmp_path, {"t1": "passed", "t2": "passed", "t3": "passed"}))
    assert rc == 0 and "FIXED: volttrontesting/x/test_a.py::t1" in out


def test_record_keeps_reasons_and_sections(tmp_path):
    py = results(tmp_path, {"t1": "passed", "t2": "failed", "t3": "failed"}, "py.json")
    vr = results(tmp_path, {"t1": "failed", "t2": "failed", "t3": "passed"}, "vr.json")
    out = tmp_path / "baseline.json"
    out.write_text(json.dumps({"tests": {f"{F}::t2": {"reason": "VOLTTRON bug"}}, "known": {f"{F}::t1": "BUG-x"},
                               "flaky": {f"{F}::t3": "timing"}}))
    subprocess.run([sys.executable, str(HERE / "run_suite.py"), "record", "--volttron", str(py), "--viprouter",
                    str(vr), "--out", str(out)], check=True, capture_output=True)
    b = json.loads(out.read_text())
    assert b["tests"][f"{F}::t2"] == {"volttron": "failed", "viprouter": "failed", "reason": "VOLTTRON bug"}
    assert b["tests"][f"{F}::t1"]["reason"] == "BUG-x"
    assert b["known"] == {f"{F}::t1": "BUG-x"} and b["flaky"] == {f"{F}::t3": "timing"}
