"""A local Ray cluster whose start fails (Ray's raylet aborts when its agents are slow to come
up on a busy machine) is cleaned up and started again; if that fails too, the error says so.

Ray is replaced by a stand-in whose `init` leaves a child process behind, as a failed start
of the real one does (its control store, dashboard and agents), then fails or succeeds as
the test says: the real failure cannot be produced on demand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from heddle.sim.errors import SimError
from heddle.sim.executors import LOCAL_START_ATTEMPTS, RayExecutor


class SlowStartingRay:
    """Ray's module as RayExecutor uses it; the first `failures` starts time out."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.left: list[subprocess.Popen] = []  # the processes each start left running
        self.started = False

    def is_initialized(self) -> bool:
        return self.started

    def init(self, **kwargs) -> None:
        self.left.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                          stdin=subprocess.PIPE))
        if len(self.left) <= self.failures:
            raise Exception("The current node timed out during startup.")  # noqa: TRY002 -- as Ray raises it
        self.started = True

    def shutdown(self) -> None:
        self.started = False

    def remote(self, **options):
        return lambda function: function


@pytest.fixture
def slow_ray(monkeypatch):
    def install(failures: int) -> SlowStartingRay:
        fake = SlowStartingRay(failures)
        monkeypatch.setitem(sys.modules, "ray", fake)
        return fake

    yield install


def test_a_local_start_that_times_out_is_cleaned_up_and_tried_again(slow_ray):
    ray = slow_ray(LOCAL_START_ATTEMPTS - 1)
    RayExecutor("local", num_cpus=2)
    assert ray.started and len(ray.left) == LOCAL_START_ATTEMPTS
    *failed, running = ray.left
    assert all(p.poll() is not None for p in failed)  # nothing of a failed start keeps running
    assert running.poll() is None
    running.kill()
    running.wait()


def test_a_local_cluster_that_never_starts_is_an_error_saying_why(slow_ray):
    ray = slow_ray(LOCAL_START_ATTEMPTS)
    with pytest.raises(SimError, match=r"local Ray cluster did not start \(2 tries.*timed out during startup"):
        RayExecutor("local", num_cpus=2)
    assert not ray.started and all(p.poll() is not None for p in ray.left)
