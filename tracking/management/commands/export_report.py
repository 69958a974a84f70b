"""Export campaign reports (one row per variant and holdout) to CSV or XLSX, with a progress bar.

    python manage.py export_report --format xlsx --out report.xlsx [--campaign 12]
        [--from 2026-11-01 --to 2026-11-30]

The file appears only once complete: rows go to a temporary file beside ``--out``, renamed at the end, so a
failed or interrupted export never leaves a half-written report that looks whole.
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


class Command(BaseCommand):
    help = "Export campaign reports to CSV or XLSX."

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
        total = exports.export_campaign_count(campaign_id=campaign_id)
        if campaign_id is not None and total == 0:
            raise CommandError(f"No campaign with id {campaign_id}.")
        out = Path(options["out"])
        fd, tmp_name = tempfile.mkstemp(dir=out.parent or Path("."), prefix=f".{out.name}.", suffix=".part")
        try:
            with (
                tqdm(total=total, unit="campaign", desc="export", disable=options["no_progress"]) as bar,
                os.fdopen(fd, "wb") as handle,
            ):
                if options["format"] == "csv":
                    for chunk in exports.csv_stream(
                        period=period, campaign_id=campaign_id, progress=bar.update
                    ):
                        handle.write(chunk.encode())
                else:
                    exports.xlsx_write(
                        target=handle, period=period, campaign_id=campaign_id, progress=bar.update
                    )
            os.replace(tmp_name, out)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self.stdout.write(self.style.SUCCESS(f"wrote {total} campaign(s) to {out}"))
