"""The base of every export command: a period (and a campaign) to CSV or XLSX, with a progress bar.

    python manage.py export_<what> --format csv|xlsx --out FILE [--campaign 12]
        [--from 2026-11-01 --to 2026-11-30]

Rows are written as they are read, so memory stays flat whatever the row count, and the file appears only
once complete: rows go to a temporary file beside ``--out``, renamed at the end, so a failed or interrupted
export never leaves a half-written file that looks whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm  # type: ignore[import-untyped]

from core.errors import ApplicationError
from tracking import exports
from tracking.exports import Progress
from tracking.reports import ReportPeriod, report_period_parse


class ExportCommand(BaseCommand):
    unit = "row"  # what the progress bar counts

    def counted(self, total: int) -> str:
        """What the last line says was written."""
        return f"{total} {self.unit}(s)"

    def count(self, *, period: ReportPeriod, campaign_id: int | None) -> int:
        raise NotImplementedError

    def csv_chunks(
        self, *, period: ReportPeriod, campaign_id: int | None, progress: Progress
    ) -> Iterator[str]:
        raise NotImplementedError

    def xlsx_write(
        self, *, target: IO[bytes], period: ReportPeriod, campaign_id: int | None, progress: Progress
    ) -> None:
        raise NotImplementedError

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
        total = self.count(period=period, campaign_id=campaign_id)
        out = Path(options["out"])
        fd, tmp_name = tempfile.mkstemp(dir=out.parent or Path("."), prefix=f".{out.name}.", suffix=".part")
        try:
            with (
                tqdm(total=total, unit=self.unit, desc="export", disable=options["no_progress"]) as bar,
                os.fdopen(fd, "wb") as handle,
            ):
                if options["format"] == "csv":
                    for chunk in self.csv_chunks(period=period, campaign_id=campaign_id, progress=bar.update):
                        handle.write(chunk.encode())
                else:
                    self.xlsx_write(
                        target=handle, period=period, campaign_id=campaign_id, progress=bar.update
                    )
            os.replace(tmp_name, out)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self.stdout.write(self.style.SUCCESS(f"wrote {self.counted(total)} to {out}"))


class RawExportCommand(ExportCommand):
    """``export_interventions``, ``export_deliveries``, ``export_events``, ``export_conversions``: the raw
    rows of one kind, read through a server-side cursor."""

    kind: str  # a key of tracking.exports.RAW_KINDS

    def counted(self, total: int) -> str:
        return f"{total} {self.kind} row(s)"

    def count(self, *, period: ReportPeriod, campaign_id: int | None) -> int:
        return exports.raw_count(kind=self.kind, period=period, campaign_id=campaign_id)

    def csv_chunks(
        self, *, period: ReportPeriod, campaign_id: int | None, progress: Progress
    ) -> Iterator[str]:
        return exports.raw_csv_stream(
            kind=self.kind, period=period, campaign_id=campaign_id, progress=progress
        )

    def xlsx_write(
        self, *, target: IO[bytes], period: ReportPeriod, campaign_id: int | None, progress: Progress
    ) -> None:
        exports.raw_xlsx_write(
            target=target, kind=self.kind, period=period, campaign_id=campaign_id, progress=progress
        )
