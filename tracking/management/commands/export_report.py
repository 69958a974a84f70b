"""Export campaign reports (one row per variant and holdout) to CSV or XLSX, with a progress bar.

    python manage.py export_report --format xlsx --out report.xlsx [--campaign 12]
        [--from 2026-11-01 --to 2026-11-30]

The options and the write-then-rename are those of every export (tracking/management/export_command.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from django.core.management.base import CommandError

from tracking import exports
from tracking.exports import Progress
from tracking.management.export_command import ExportCommand
from tracking.reports import ReportPeriod


class Command(ExportCommand):
    help = "Export campaign reports to CSV or XLSX."
    unit = "campaign"

    def count(self, *, period: ReportPeriod, campaign_id: int | None) -> int:
        total = exports.export_campaign_count(campaign_id=campaign_id)
        if campaign_id is not None and total == 0:
            raise CommandError(f"No campaign with id {campaign_id}.")
        return total

    def csv_chunks(
        self, *, period: ReportPeriod, campaign_id: int | None, progress: Progress
    ) -> Iterator[str]:
        return exports.csv_stream(period=period, campaign_id=campaign_id, progress=progress)

    def xlsx_write(
        self, *, target: IO[bytes], period: ReportPeriod, campaign_id: int | None, progress: Progress
    ) -> None:
        exports.xlsx_write(target=target, period=period, campaign_id=campaign_id, progress=progress)
