"""The local stack's command line.

    python -m stack run                      servers, `manage.py bootstrap`, then web, worker, beat,
                                             consumer and relay until Ctrl-C
    python -m stack test [PYTEST ARGS...]    test servers (own data and ports), then pytest
    python -m stack env [--test]             servers only; prints `export …` lines, runs until Ctrl-C
    python -m stack exec [--test] [--only postgres,redis,kafka] -- CMD...
                                             servers, then CMD with their URLs in its environment

A server is started only when its URL (DATABASE_URL, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS) is not set.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

from stack.servers import (
    REPO_ROOT,
    RUN,
    SERVER_NAMES,
    TEST,
    Profile,
    StackError,
    embedded_services,
    ensure_port_free,
)
from stack.supervisor import OWN_NAME, Program, Supervisor, run_in_foreground

DEFAULT_PORT = 3003
DEFAULT_BIND_HOST = "127.0.0.1"
CELERY_QUEUES = "default,realtime,email,sms,push"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
BIN_DIR = Path(sys.executable).parent
MANAGE_PY = str(REPO_ROOT / "manage.py")


def say(message: str) -> None:
    print(f"{OWN_NAME:<8} | {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["test"]:
        # Everything after `test` is pytest's, its own --help included.
        return _guarded(lambda: test(args[1:]))
    options = _parser().parse_args(args)
    profile = TEST if getattr(options, "test", False) else RUN
    if options.command == "run":
        return _guarded(run)
    if options.command == "env":
        return _guarded(lambda: print_env(profile))
    command = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
    if not command:
        _parser().error("exec needs a command after --")
    only = frozenset(name.strip() for name in options.only.split(",") if name.strip())
    unknown = only - set(SERVER_NAMES)
    if unknown:
        _parser().error(f"--only takes {', '.join(SERVER_NAMES)}; not {', '.join(sorted(unknown))}")
    return _guarded(lambda: execute(command, profile=profile, only=only))


def run() -> int:
    port = _int_from_env("PORT", DEFAULT_PORT)
    host = os.environ.get("BIND_HOST", DEFAULT_BIND_HOST)
    if not os.environ.get("SECRET_KEY") and not _is_loopback(host):
        # The checkout's generated key (var/secret_key) signs sessions, tickets and links: fine on this
        # machine, not for a server other machines reach.
        raise StackError(
            f"BIND_HOST={host} is reachable from other machines, and without SECRET_KEY this checkout's "
            "development key would sign its sessions and links; set SECRET_KEY (50+ random characters), "
            "or bind 127.0.0.1"
        )
    if _is_ipv4(host):
        ensure_port_free(port, fix="PORT", host=host)
    with embedded_services(RUN, environ=os.environ, say=say) as urls:
        env = child_env(urls, PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(_fresh_metrics_dir()))
        code = run_in_foreground([sys.executable, MANAGE_PY, "bootstrap"], env=env, cwd=str(REPO_ROOT))
        if code != 0:
            say(f"`manage.py bootstrap` failed with exit code {code}; stopping")
            return code
        _print_urls(port, host)
        return Supervisor(programs(port=port, host=host), env=env, cwd=str(REPO_ROOT)).run()


def test(pytest_args: Sequence[str]) -> int:
    with embedded_services(TEST, environ=os.environ, say=say) as urls:
        argv = [sys.executable, "-m", "pytest", *pytest_args]
        return run_in_foreground(argv, env=child_env(urls), cwd=str(REPO_ROOT))


def print_env(profile: Profile) -> int:
    with embedded_services(profile, environ=os.environ, say=say) as urls:
        for variable, value in urls.items():
            print(f"export {variable}={shlex.quote(value)}", flush=True)
        say("servers are up; press Ctrl-C to stop them")
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            return 0


def execute(command: Sequence[str], *, profile: Profile, only: frozenset[str]) -> int:
    with embedded_services(profile, environ=os.environ, say=say, only=only) as urls:
        return run_in_foreground(command, env=child_env(urls), cwd=str(REPO_ROOT))


def programs(*, port: int, host: str) -> list[Program]:
    daphne = str(BIN_DIR / "daphne")
    celery = (str(BIN_DIR / "celery"), "-A", "intervention_engine")
    return [
        # -v 0: no access log of daphne's own; the app logs one line per request (core/observability.py).
        Program(
            "web", (daphne, "-v", "0", "-b", host, "-p", str(port), "intervention_engine.asgi:application")
        ),
        Program("worker", (*celery, "worker", "-l", "info", "--concurrency", "2", "-Q", CELERY_QUEUES)),
        Program("beat", (*celery, "beat", "-l", "info", "--scheduler", CELERY_BEAT_SCHEDULER)),
        Program("consumer", (sys.executable, MANAGE_PY, "consume_events")),
        Program("relay", (sys.executable, MANAGE_PY, "relay_outbox")),
    ]


def _fresh_metrics_dir() -> Path:
    """One scrape of /metrics sees every process of the stack: each writes its samples here.

    prometheus_client requires the folder to be emptied before the processes start.
    """
    metrics_dir = RUN.var_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    return metrics_dir


def child_env(urls: Mapping[str, str], **extra: str) -> dict[str, str]:
    env = {**os.environ, **urls, **extra}
    # `python`, `celery`, `daphne` in a child command mean the venv's, whichever shell started us.
    env["PATH"] = os.pathsep.join([str(BIN_DIR), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")  # logs reach the terminal line by line
    return env


def _print_urls(port: int, host: str) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown}:{port}"
    say("the stack is starting; once `web` is up:")
    for label, url in (
        ("admin", f"{base}/admin/"),
        ("API docs", f"{base}/api/docs/"),
        ("readiness", f"{base}/health/ready"),
        ("demo shop", f"{base}/demo/"),
        ("WebSocket", f"ws://{shown}:{port}/ws"),
    ):
        say(f"  {label:<10} {url}")
    say("press Ctrl-C to stop everything")


def _guarded(action: Callable[[], int]) -> int:
    """Run a command with SIGTERM and SIGHUP treated like Ctrl-C, so servers are stopped either way."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGHUP, _raise_keyboard_interrupt)
    try:
        return action()
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"stack: command not found: {exc.filename}", file=sys.stderr)
        return 127
    except KeyboardInterrupt:
        return 130


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _int_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise StackError(f"{variable}={raw!r} is not a number")
    return int(raw)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the whole stack until Ctrl-C")
    commands.add_parser("test", help="run pytest against test servers (arguments go to pytest)")
    env = commands.add_parser("env", help="start the servers and print their URLs as export lines")
    env.add_argument("--test", action="store_true", help="use the test servers' data and ports")
    execute = commands.add_parser("exec", help="start the servers and run a command with their URLs")
    execute.add_argument("--test", action="store_true", help="use the test servers' data and ports")
    execute.add_argument(
        "--only", default=",".join(SERVER_NAMES), help="comma-separated servers to start (default: all)"
    )
    execute.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD")
    return parser


if __name__ == "__main__":
    sys.exit(main())
