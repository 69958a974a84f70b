"""The supervisor, run as a real process with real children: it must never leave one behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from stack.servers import REPO_ROOT

SUPERVISE = """
import json, sys
from stack.supervisor import Program, Supervisor
programs = [Program(name, tuple(argv)) for name, argv in json.loads(sys.argv[1])]
sys.exit(Supervisor(programs, grace=float(sys.argv[2])).run())
"""

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('deaf', flush=True); time.sleep(1000)"
)
# A child with a grandchild in its process group, like Celery's prefork pool.
HAS_A_GRANDCHILD = "sleep 1000 & echo forked; wait"


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def is_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


class Supervised:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def output(self) -> str:
        return self.log.read_text()

    def descendants(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.pid).children(recursive=True)]


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    started: list[Supervised] = []

    def start(programs: dict[str, list[str]], grace: float = 1.0) -> Supervised:
        log = tmp_path / f"supervisor-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", SUPERVISE, json.dumps(list(programs.items())), str(grace)],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        supervised = Supervised(process, log)
        started.append(supervised)
        return supervised

    yield start
    for supervised in started:  # a failing test must not leave its children either
        if supervised.process.poll() is None:
            supervised.process.kill()
            supervised.process.wait()


def test_it_stops_every_child_on_sigterm(supervise: Callable[..., Supervised]) -> None:
    # given a supervisor with a sleeper, a child that ignores SIGTERM and a child with a grandchild
    supervised = supervise(
        {
            "sleeper": ["sleep", "1000"],
            "deaf": [sys.executable, "-c", IGNORES_SIGTERM],
            "parent": ["sh", "-c", HAS_A_GRANDCHILD],
        }
    )
    wait_for(lambda: "| deaf\n" in supervised.output and "| forked\n" in supervised.output)
    pids = supervised.descendants()
    assert len(pids) >= 4

    # when it receives SIGTERM
    supervised.process.send_signal(signal.SIGTERM)
    code = supervised.process.wait(timeout=20)

    # then it exits 0, having killed the deaf child after the grace period, and no process is left
    assert code == 0, supervised.output
    assert "killing deaf" in supervised.output
    wait_for(lambda: all(is_gone(pid) for pid in pids), timeout=5)


def test_it_stops_the_others_when_a_child_exits(supervise: Callable[..., Supervised]) -> None:
    # given a supervisor with a long-running child and one that fails shortly after starting
    crash_soon = ["sh", "-c", "sleep 0.5; echo boom; exit 3"]
    supervised = supervise({"sleeper": ["sleep", "1000"], "crasher": crash_soon})
    wait_for(lambda: "started crasher" in supervised.output)
    pids = supervised.descendants()

    # when the failing child exits
    code = supervised.process.wait(timeout=20)

    # then the supervisor reports it, stops the other one and exits non-zero
    assert code == 1, supervised.output
    assert "crasher | boom" in supervised.output
    assert "crasher exited unexpectedly (exit code 3)" in supervised.output
    wait_for(lambda: all(is_gone(pid) for pid in pids), timeout=5)


def test_it_prefixes_every_line_with_the_padded_name(supervise: Callable[..., Supervised]) -> None:
    # given a child that writes two lines, the last one unterminated, and then exits
    supervised = supervise({"w": ["sh", "-c", "echo one; printf two"]})

    # when it has run
    supervised.process.wait(timeout=20)

    # then each line carries the name, padded to the widest name ("stack")
    assert "w     | one\n" in supervised.output
    assert "w     | two\n" in supervised.output


def test_it_reports_a_program_that_cannot_start(supervise: Callable[..., Supervised]) -> None:
    # given a program whose executable does not exist
    supervised = supervise({"sleeper": ["sleep", "1000"], "ghost": ["/nonexistent/ghost"]})

    # when the supervisor starts them
    code = supervised.process.wait(timeout=20)

    # then it says so, stops what it had started and exits non-zero
    assert code == 1
    assert "cannot start ghost" in supervised.output
    assert "sleeper stopped" in supervised.output


def test_it_passes_sigterm_to_a_foreground_command(tmp_path: Path) -> None:
    # given run_in_foreground running a shell that records the signal it gets
    marker = tmp_path / "got-term"
    script = f"trap 'touch {marker}; exit 0' TERM; echo up; while :; do sleep 0.1; done"
    code = (
        f"from stack.supervisor import run_in_foreground as r; raise SystemExit(r({['sh', '-c', script]!r}))"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
    )
    assert runner.stdout is not None
    assert runner.stdout.readline() == b"up\n"

    # when the runner gets SIGTERM
    os.kill(runner.pid, signal.SIGTERM)

    # then the command got it too, and its exit code is the runner's
    assert runner.wait(timeout=10) == 0
    assert marker.exists()
