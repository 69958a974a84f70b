"""The embedded servers: clear errors, real starts, and nothing left running afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from stack.servers import REPO_ROOT, PortInUseError, ensure_port_free
from tests.processes import free_port


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def stack_command(*args: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m stack …` with its data in a temp dir and no server URLs inherited from this run."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}
    }
    environ.update(env, STACK_VAR_DIR=str(var_dir))
    return subprocess.run(
        [sys.executable, "-m", "stack", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def servers_using(path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(path) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_it_names_the_variable_to_change_when_a_port_is_busy(busy_port: int) -> None:
    # given a port something else listens on

    # when the stack checks it
    with pytest.raises(PortInUseError) as error:
        ensure_port_free(busy_port, fix="EMBEDDED_REDIS_PORT or REDIS_URL")

    # then the message says which port and what to set
    assert str(error.value) == f"port {busy_port} is in use; set EMBEDDED_REDIS_PORT or REDIS_URL"


def test_it_accepts_a_free_port() -> None:
    # given a port nothing listens on
    port = free_port()

    # when / then the check passes
    ensure_port_free(port, fix="PORT")


def test_it_stops_with_one_line_and_no_traceback_when_the_redis_port_is_busy(
    busy_port: int, tmp_path: Path
) -> None:
    # given the embedded Redis port is taken

    # when the stack is asked to start Redis
    result = stack_command(
        "exec", "--only", "redis", "--", "true", var_dir=tmp_path, EMBEDDED_REDIS_PORT=str(busy_port)
    )

    # then it fails with the clear message and nothing else went wrong
    assert result.returncode == 1
    assert f"stack: port {busy_port} is in use; set EMBEDDED_REDIS_PORT or REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_starts_nothing_for_a_url_that_is_set(tmp_path: Path) -> None:
    # given all three URLs in the environment
    urls = {
        "DATABASE_URL": "postgres://elsewhere/db",
        "REDIS_URL": "redis://elsewhere:6379/0",
        "KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092",
    }

    # when a command runs under the stack
    result = stack_command(
        "exec", "--", "python", "-c", "import os; print(os.environ['REDIS_URL'])", var_dir=tmp_path, **urls
    )

    # then the command sees them unchanged and no server was started
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "redis://elsewhere:6379/0"
    assert not (tmp_path / "postgres").exists()


PROBE = """
import os, socket, subprocess, sys
import psycopg
from confluent_kafka.admin import AdminClient
with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
    print("postgres", connection.execute("select current_database()").fetchone()[0])
host, port = os.environ["REDIS_URL"].split("//")[1].split("/")[0].split(":")
with socket.create_connection((host, int(port))) as connection:
    connection.sendall(b"PING\\r\\n")
    print("redis", connection.recv(16).decode().strip())
metadata = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}).list_topics(timeout=10)
print("kafka", len(metadata.brokers), "broker")
"""


def test_it_runs_a_command_against_real_servers_and_stops_them_all(tmp_path: Path) -> None:
    # given free ports and an empty data directory
    redis_port, kafka_port = free_port(), free_port()

    # when a command runs under the stack, twice (the second run reuses the data)
    runs = [
        stack_command(
            "exec",
            "--",
            "python",
            "-c",
            PROBE,
            var_dir=tmp_path,
            EMBEDDED_REDIS_PORT=str(redis_port),
            EMBEDDED_KAFKA_PORT=str(kafka_port),
        )
        for _ in range(2)
    ]

    # then it reached each server, and no server process is left running
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["postgres intervention_engine", "redis +PONG", "kafka 1 broker"]
    assert "creating a database cluster" in runs[0].stderr
    assert "creating a database cluster" not in runs[1].stderr
    assert servers_using(tmp_path) == []


def test_it_refuses_to_serve_other_machines_with_the_development_key(tmp_path: Path) -> None:
    # given no SECRET_KEY, and an address other machines reach

    # when the stack is asked to run there
    result = stack_command("run", var_dir=tmp_path, BIND_HOST="0.0.0.0", SECRET_KEY="")

    # then it stops before starting anything, naming what to set
    assert result.returncode == 1
    assert "BIND_HOST=0.0.0.0 is reachable from other machines" in result.stderr
    assert "set SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "postgres").exists()
