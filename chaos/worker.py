"""Real processes (a Celery worker, the Kafka consumer) that a fault test or drill can start, kill -9 and
start again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DAPHNE = (sys.executable, "-m", "daphne", "-b", "127.0.0.1")


class KillableProcess:
    """A child process the drill kills without warning, or stops as an operator would."""

    process: subprocess.Popen[bytes] | None = None

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, in-flight work abandoned mid-call."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, *, wait: float = 15.0) -> None:
        """SIGTERM, and SIGKILL if it has not finished within ``wait`` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                self.kill9()


class CommandProcess(KillableProcess):
    """``manage.py <command>`` in its own process; stderr to ``log_path``."""

    command: tuple[str, ...] = ()

    def __init__(self, *, env: dict[str, str], log_path: Path, options: tuple[str, ...] = ()) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.options = options
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", *self.command, *self.options],
                cwd=BASE_DIR,
                env=self.env,
                stderr=log,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ConsumerProcess(CommandProcess):
    command = ("consume_events",)


class RelayProcess(CommandProcess):
    """The outbox relay, with a short broker timeout and back-off so a drill sees it recover in seconds, and
    small batches: many publish-then-mark windows for a kill to land in."""

    command = ("relay_outbox", "--batch-size", "20", "--message-timeout", "3", "--max-backoff", "2")


class DaphneProcess(KillableProcess):
    """daphne serving the ASGI application on a fixed loopback port, so clients reconnect to the same
    address after a restart."""

    def __init__(self, *, env: dict[str, str], log_path: Path, port: int) -> None:
        self.env = {**os.environ, "WS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}", **env}
        self.log_path = log_path
        self.port = port

    def start(self, *, wait: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*DAPHNE, "-p", str(self.port), "intervention_engine.asgi:application"],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + wait
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not start; see {self.log_path}") from None
                time.sleep(0.1)


class CeleryWorker(KillableProcess):
    def __init__(
        self,
        *,
        env: dict[str, str],
        log_path: Path,
        queues: str = "email,sms,push",
        pool: str = "threads",
        concurrency: int = 8,
        name: str = "chaos",
    ) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "intervention_engine",
            "worker",
            "-Q",
            queues,
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, wait: float = 30.0) -> CeleryWorker:
        self.starts += 1
        log = self.log_path.open("ab")
        offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as reader:
                reader.seek(offset)
                if b" ready." in reader.read():
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {wait}s; see {self.log_path}")
