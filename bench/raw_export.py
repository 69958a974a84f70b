"""Benchmark: the memory and speed of a raw export of many rows, through the management command.

    python -m bench.raw_export [--rows 1000000] [--format csv|xlsx]

Inserts that many tracking events (one statement, committed so the command's process sees them), runs
``manage.py export_events`` in a child process twice — on an empty period (the floor: a Django process
that exports nothing) and on every row — and reports each child's peak RSS, the time and rows/s, then
deletes the rows. Prints JSON. Peak RSS that stays near the floor whatever ``--rows`` is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PREFIX = "bench-raw-"


def _child(args: list[str]) -> tuple[float, int]:
    """Run ``manage.py`` with ``args``; its wall time and its own peak RSS in KiB (from wait4)."""
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "manage.py", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return time.monotonic() - started, usage.ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_export", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tracking.models import TrackingEvent

    call_command("migrate", interactive=False, verbosity=0)
    table = TrackingEvent._meta.db_table
    result: dict[str, Any] = {"rows": args.rows, "format": args.format}
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table}
                (event_id, type, source, user_id, channel, occurred_at, received_at, properties)
            SELECT %s || n, 'clicked', 'api', 'shopper-' || (n %% 50000), 'email',
                   now() - make_interval(secs => n), now(), '{{}}'::jsonb
            FROM generate_series(1, %s) AS n
            """,  # noqa: S608  (the model's table name)
            [PREFIX, args.rows],
        )
    result["insert_seconds"] = round(time.monotonic() - started, 1)
    try:
        with tempfile.TemporaryDirectory() as directory:
            out = Path(directory) / f"events.{args.format}"
            common = ["export_events", "--format", args.format, "--out", str(out), "--no-progress"]
            _, floor_rss = _child([*common, "--from", "2000-01-01", "--to", "2000-01-01"])
            seconds, rss = _child(common)
            result.update(
                {
                    "floor_peak_rss_mib": round(floor_rss / 1024, 1),
                    "export_peak_rss_mib": round(rss / 1024, 1),
                    "export_seconds": round(seconds, 1),
                    "rows_per_second": round(args.rows / seconds),
                    "file_mib": round(out.stat().st_size / 2**20, 1),
                }
            )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE event_id LIKE %s", [PREFIX + "%"])  # noqa: S608
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
