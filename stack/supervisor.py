"""Run the stack's long-lived processes side by side and stop them all together (a tiny foreman).

Each child gets its own session, hence its own process group: Ctrl-C at the terminal reaches only us,
and we stop the children in order, each group whole (Celery's pool processes and any other
grandchildren included). Their output is merged line by line under a padded name (``web    | …``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

DEFAULT_GRACE_SECONDS = 10.0
OWN_NAME = "stack"
_COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92")
_POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Ctrl-C, `kill`, and the terminal closing all mean "stop everything".
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Program:
    name: str
    argv: tuple[str, ...]


@dataclass
class _Child:
    program: Program
    process: subprocess.Popen[bytes]
    prefix: str
    pending: bytes = field(default=b"")


class Supervisor:
    """Start every program, stream their output, and stop them all on a signal or on the first exit.

    :meth:`run` returns 0 after a SIGINT or SIGTERM (everything stopped as asked) and 1 when a program
    exited by itself, or could not be started, since these programs are meant to run until stopped.
    """

    def __init__(
        self,
        programs: Sequence[Program],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        grace: float = DEFAULT_GRACE_SECONDS,
        out: TextIO | None = None,
    ) -> None:
        self.programs = list(programs)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.grace = grace
        self.out = out if out is not None else sys.stdout
        self._children: list[_Child] = []
        self._selector = selectors.DefaultSelector()
        self._signal: int | None = None
        self._hurry = False
        width = max([len(OWN_NAME), *(len(p.name) for p in self.programs)])
        colour = self.out.isatty()
        self._prefixes = {
            name: _prefix(name, width, _COLOURS[index % len(_COLOURS)] if colour else None)
            for index, name in enumerate([OWN_NAME, *(p.name for p in self.programs)])
        }

    def run(self) -> int:
        with _handling_signals(self._on_signal, *STOP_SIGNALS):
            try:
                return self._run()
            except BaseException:
                self._shutdown()  # whatever went wrong here, the children must not outlive us
                raise
            finally:
                self._selector.close()

    def _run(self) -> int:
        for program in self.programs:
            try:
                self._start(program)
            except OSError as exc:
                self.say(f"cannot start {program.name} ({' '.join(program.argv)}): {exc}")
                self._shutdown()
                return 1
        while True:
            self._pump(_POLL_SECONDS)
            if self._signal is not None:
                self.say(f"received {signal.Signals(self._signal).name}, stopping")
                self._shutdown()
                return 0
            for child in self._children:
                code = child.process.poll()
                if code is not None:
                    how = _describe(code)
                    self.say(f"{child.program.name} exited unexpectedly ({how}); stopping the others")
                    self._shutdown()
                    return 1

    def say(self, message: str) -> None:
        self._write(self._prefixes[OWN_NAME], message)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signal is None:
            self._signal = signum
        else:
            self._hurry = True  # a second Ctrl-C: do not wait out the grace period

    def _start(self, program: Program) -> None:
        process = subprocess.Popen(
            list(program.argv),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=terminate_with_parent(),
        )
        child = _Child(program=program, process=process, prefix=self._prefixes[program.name])
        self._children.append(child)
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        self._selector.register(process.stdout, selectors.EVENT_READ, child)
        self.say(f"started {program.name} (pid {process.pid})")

    def _shutdown(self) -> None:
        for child in self._children:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(_group_alive(child.process) for child in self._children):
            if self._hurry or time.monotonic() >= deadline:
                late = [c.program.name for c in self._children if _group_alive(c.process)]
                self.say(f"killing {', '.join(late)} (still running after SIGTERM)")
                break
            self._pump(0.05)
        # Unconditional: a group whose leader exited may still hold a grandchild.
        for child in self._children:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
        self._drain()
        for child in self._children:
            self.say(f"{child.program.name} stopped ({_describe(child.process.returncode)})")

    def _pump(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            child: _Child = key.data
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self._close(child)
                continue
            *lines, child.pending = (child.pending + chunk).split(b"\n")
            for line in lines:
                self._write(child.prefix, line.decode(errors="replace").rstrip("\r"))

    def _drain(self) -> None:
        """Print what the children wrote before they died; give up after a second on a held pipe."""
        deadline = time.monotonic() + 1.0
        while self._selector.get_map() and time.monotonic() < deadline:
            self._pump(0.05)
        for child in self._children:
            if child.process.stdout is not None and not child.process.stdout.closed:
                self._close(child)

    def _close(self, child: _Child) -> None:
        assert child.process.stdout is not None
        with contextlib.suppress(KeyError):
            self._selector.unregister(child.process.stdout)
        child.process.stdout.close()
        if child.pending:
            self._write(child.prefix, child.pending.decode(errors="replace").rstrip("\r"))
            child.pending = b""

    def _write(self, prefix: str, text: str) -> None:
        # A closed terminal or pipe loses the output, not the processes: they are still stopped in order.
        with contextlib.suppress(OSError, ValueError):
            self.out.write(f"{prefix}{text}\n")
            self.out.flush()


def run_in_foreground(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> int:
    """Run one command on our terminal (pytest, a management command) and return its exit code.

    It shares our process group, so Ctrl-C at the terminal reaches it directly and it decides how to
    stop (pytest still prints its summary); we only wait. SIGTERM and SIGHUP sent to us are passed on.
    """
    # The handlers are in place before the command starts: a SIGTERM that arrives while it starts (a
    # loaded machine) is passed on once it exists, rather than stopping us and orphaning it.
    process: subprocess.Popen[bytes] | None = None
    early: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            return
        if process is None:
            early.append(signum)
        else:
            process.send_signal(signum)

    with _handling_signals(forward, *STOP_SIGNALS):
        process = subprocess.Popen(list(argv), env=env, cwd=cwd)
        for signum in early:
            process.send_signal(signum)
        code = process.wait()
    return 128 - code if code < 0 else code


def terminate_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when we die without stopping it (kill -9).

    Our children live in their own sessions, so nothing else would ever tell them. ``preexec_fn`` is
    unsafe only in a process with threads; the stack starts its children from a single thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not between fork and exec
    parent = os.getpid()

    def arrange() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # we died before the request was in place
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def _prefix(name: str, width: int, colour: str | None) -> str:
    padded = name.ljust(width)
    if colour is None:
        return f"{padded} | "
    return f"\033[{colour}m{padded} |\033[0m "


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap the leader, or its zombie would keep the group "alive"
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


Handler = Callable[[int, FrameType | None], None]


@contextlib.contextmanager
def _handling_signals(handler: Handler, *signals: signal.Signals) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
