"""The base every long-running process (Kafka consumer, outbox relay) shares.

SIGTERM and SIGINT only set a flag: the current batch finishes and commits, then the loop exits,
so an orchestrator's stop never loses or half-applies work.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from core.observability import get_logger

logger = get_logger(__name__)


class Worker:
    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("worker_stopping", worker=self.name, signal=signal.Signals(signum).name)
        self.stop()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def setup(self) -> None:
        """Open connections; called once before the loop."""

    def run_once(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Flush and close; called once after the loop, also after an error."""

    def wait(self, seconds: float) -> None:
        """Sleep that a stop signal interrupts."""
        self._stop.wait(seconds)

    def run(self, *, install_signals: bool = True) -> None:
        if install_signals:
            self.install_signal_handlers()
        self.setup()
        logger.info("worker_started", worker=self.name)
        try:
            while not self.stopping:
                self.run_once()
        finally:
            self.teardown()
            logger.info("worker_stopped", worker=self.name)
