"""What the project's logging prints: housekeeping only when it did something, one line per request."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from django.conf import settings

from delivery.services import decisions_process_batch
from delivery.tasks import interventions_expire_task, interventions_release_due_task
from stack.__main__ import programs
from tests import fixtures as f
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def printed() -> Iterator[Callable[[], list[str]]]:
    """The lines the project's logging configuration (settings.LOGGING) printed since the last call: the
    same configuration, its console handler writing to a buffer instead of stderr."""
    (before,) = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    buffer = io.StringIO()
    logging.config.dictConfig(_with_stream(buffer))

    def read() -> list[str]:
        lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
        buffer.seek(0)
        buffer.truncate()
        return lines

    yield read
    logging.config.dictConfig(_with_stream(before.stream))


def _with_stream(stream: IO[str]) -> dict[str, Any]:
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = stream
    return config


@pytest.mark.django_db
def test_it_logs_nothing_when_the_sweeps_find_nothing(printed: Callable[[], list[str]]) -> None:
    # given nothing due and nothing stale

    # when beat's sweeps run through Celery's task machinery
    released = interventions_release_due_task.apply().get()
    expired = interventions_expire_task.apply().get()

    # then they did nothing and said nothing, nor would the worker and beat lines around them
    assert (released, expired) == (0, 0)
    assert printed() == []
    for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name


@pytest.mark.django_db
def test_it_logs_one_line_when_a_sweep_did_something(printed: Callable[[], list[str]]) -> None:
    # given an intervention delayed by a second, now due
    f.campaign_live(channels=["onsite"], channel_strategy="fixed", delay_seconds=1, require_open_cart=False)
    decisions_process_batch(
        events=[f.prediction(user_id=f.unique("u"), score=0.9)], campaigns=f.active_set(), after_commit=False
    )
    time.sleep(1.1)
    printed()

    # when beat's release sweep runs
    released = interventions_release_due_task.apply().get()

    # then one line says what it did
    lines = printed()
    assert released == 1
    assert len(lines) == 1, lines
    assert "interventions_released" in lines[0]
    assert "released=1" in lines[0]
    assert "cancelled=0" in lines[0]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """The stack's ``web`` program (daphne, as ``make run`` starts it), logging JSON at INFO to a file."""
    port = free_port()
    (web_program,) = [p for p in programs(port=port, host="127.0.0.1") if p.name == "web"]
    log = tmp_path_factory.mktemp("web") / "web.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "intervention_engine.settings",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(web_program.argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=15)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  (http to our own server)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _lines_after(log: Path, seen: int, *, settle: timedelta = timedelta(seconds=0.5)) -> list[str]:
    time.sleep(settle.total_seconds())
    return log.read_text().splitlines()[seen:]


@pytest.mark.parametrize(
    ("path", "code", "level"), [("/health/live", 200, "info"), ("/nowhere", 404, "warning")]
)
def test_it_logs_one_line_per_request(web: tuple[int, Path], path: str, code: int, level: str) -> None:
    # given the web program, up
    port, log = web
    seen = len(_lines_after(log, 0))

    # when one request is served
    assert _get(f"http://127.0.0.1:{port}{path}") == code

    # then one line says what it was, how it ended and how long it took
    lines = _lines_after(log, seen)
    assert len(lines) == 1, lines
    line = json.loads(lines[0])
    assert (line["event"], line["method"], line["path"], line["code"], line["level"]) == (
        "request_finished",
        "GET",
        path,
        code,
        level,
    )
    assert line["duration_ms"] >= 0
    assert line["request_id"]
