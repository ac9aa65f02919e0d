"""The supervisor behaviour the modular launcher relies on (``supervisor.py``'s public API):
clean exit ends, a crash restarts at once, repeated quick failures and status 2 give up, stop
ends it. A fake child: no process, statuses from a script."""

from typing import IO, List, Mapping, Optional, Sequence

from viprouter_volttron.supervisor import Outcome, RestartPolicy, Supervisor


class FakeChild:
    def __init__(self, status: int, pid: int) -> None:
        self.status = status
        self.pid = pid
        self.returncode: Optional[int] = None

    def wait(self, timeout: Optional[float] = None) -> int:
        self.returncode = self.status
        return self.status

    def poll(self) -> Optional[int]:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.returncode = -sig

    def kill(self) -> None:
        self.returncode = -9


def scripted(statuses: List[int]):  # type: ignore[no-untyped-def]
    starts: List[int] = []

    def spawn(argv: Sequence[str], env: Mapping[str, str], log: Optional[IO[bytes]]) -> FakeChild:
        starts.append(len(starts))
        return FakeChild(statuses[len(starts) - 1], 1000 + len(starts))

    return spawn, starts


def make(statuses: List[int], policy: RestartPolicy = RestartPolicy()):  # type: ignore[no-untyped-def]
    spawn, starts = scripted(statuses)
    slept: List[float] = []
    sup = Supervisor(["viprouter"], {}, None, policy=policy, spawn=spawn, sleep=slept.append, clock=lambda: 0.0)
    return sup, starts, slept


def test_a_crash_restarts_at_once_and_a_clean_exit_ends() -> None:
    sup, starts, slept = make([-9, 0])
    r = sup.run()
    assert (r.outcome, r.restarts, r.statuses) == (Outcome.CLEAN_EXIT, 1, [-9, 0])
    assert slept == [] and len(starts) == 2, "the first restart is immediate (modular agents wait ~0.5 s)"


def test_quick_failures_back_off_then_give_up() -> None:
    sup, starts, slept = make([1] * 10, RestartPolicy(max_quick_failures=3, delays_s=(0.0, 0.25, 0.5)))
    r = sup.run()
    assert r.outcome is Outcome.GAVE_UP and len(starts) == 4
    assert slept == [0.25, 0.5]


def test_a_configuration_error_is_not_retried() -> None:
    sup, starts, _ = make([2, 0])
    assert sup.run().outcome is Outcome.GAVE_UP and len(starts) == 1


def test_stop_before_run_starts_nothing() -> None:
    sup, starts, _ = make([0])
    sup.request_stop()
    assert sup.run().outcome is Outcome.STOPPED and starts == []
