"""The command behind ``export_interventions``, ``export_deliveries``, ``export_events`` and
``export_conversions``: the raw rows of a period to CSV or XLSX, with a progress bar.

    python manage.py export_events --format csv --out events.csv [--campaign 12]
        [--from 2026-11-01 --to 2026-11-30]

Rows are read through a server-side cursor and written as they come, so memory stays flat whatever the
row count. Like ``export_report``, the file appears only once complete (a temporary file beside
``--out``, renamed at the end).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm  # type: ignore[import-untyped]

from core.errors import ApplicationError
from tracking import exports
from tracking.reports import report_period_parse


class RawExportCommand(BaseCommand):
    kind: str  # a key of tracking.exports.RAW_KINDS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["csv", "xlsx"], required=True)
        parser.add_argument("--out", required=True, help="file to write")
        parser.add_argument("--campaign", type=int, default=None, help="only this campaign id")
        parser.add_argument("--from", dest="start", default=None, help="YYYY-MM-DD or ISO-8601 datetime")
        parser.add_argument("--to", dest="end", default=None, help="YYYY-MM-DD (inclusive) or datetime")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = report_period_parse(start=options["start"], end=options["end"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        campaign_id: int | None = options["campaign"]
        # One count for the bar's total: cheap next to reading the rows, and it tells how long to wait.
        total = exports.raw_count(kind=self.kind, period=period, campaign_id=campaign_id)
        out = Path(options["out"])
        fd, tmp_name = tempfile.mkstemp(dir=out.parent or Path("."), prefix=f".{out.name}.", suffix=".part")
        try:
            with (
                tqdm(total=total, unit="row", desc=self.kind, disable=options["no_progress"]) as bar,
                os.fdopen(fd, "wb") as handle,
            ):
                if options["format"] == "csv":
                    for chunk in exports.raw_csv_stream(
                        kind=self.kind, period=period, campaign_id=campaign_id, progress=bar.update
                    ):
                        handle.write(chunk.encode())
                else:
                    exports.raw_xlsx_write(
                        target=handle,
                        kind=self.kind,
                        period=period,
                        campaign_id=campaign_id,
                        progress=bar.update,
                    )
            os.replace(tmp_name, out)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self.stdout.write(self.style.SUCCESS(f"wrote {total} {self.kind} row(s) to {out}"))
