"""``manage.py campaign_status [ID]``: the send runs of scheduled campaigns, with a live progress bar.

Without an id, one line per scheduled campaign's latest run. With a campaign id, a progress bar per
unfinished run of that campaign, refreshed every ``--interval`` seconds until every run is final (or
``--once``). Reads only: the runs move on the workers.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm  # type: ignore[import-untyped]

from campaigns.selectors import campaign_get
from delivery.models import SendRun
from delivery.runs import FINAL_STATES
from delivery.selectors import RunProgress, send_run_get, send_run_progress, send_runs_of_campaign


def _line(progress: RunProgress) -> str:
    run = progress.run
    suppressed = sum(run.suppressed.values())
    skipped = sum(run.skipped.values())
    rate = f"{progress.rate:.0f}/s" if progress.rate else "-"
    eta = f"{progress.eta_seconds:.0f}s" if progress.eta_seconds is not None else "-"
    return (
        f"run {run.pk} tick {run.tick:%Y-%m-%d %H:%M} {run.state}: "
        f"{progress.walked}/{run.audience_size or 0} "
        f"decided {run.decided} queued {run.queued} suppressed {suppressed} skipped {skipped} "
        f"failed {run.failed} sent {progress.sent} rate {rate} eta {eta}"
    )


class Command(BaseCommand):
    help = "Show the send runs of a scheduled campaign, with a live progress bar"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign_id", nargs="?", type=int)
        parser.add_argument("--once", action="store_true", help="Print the state once and exit")
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        campaign_id: int | None = options["campaign_id"]
        if campaign_id is None:
            latest = SendRun.objects.order_by("campaign_id", "-tick").distinct("campaign_id")
            for run in latest:
                self.stdout.write(f"campaign {run.campaign_id}: {_line(send_run_progress(run=run))}")
            return
        if campaign_get(campaign_id=campaign_id) is None:
            raise CommandError(f"campaign {campaign_id} does not exist")
        runs = list(send_runs_of_campaign(campaign_id=campaign_id)[:20])
        for run in runs:
            self.stdout.write(_line(send_run_progress(run=run)))
        live = [run for run in runs if run.state not in FINAL_STATES]
        if options["once"] or not live:
            return
        bars = {
            run.pk: tqdm(total=run.audience_size or 0, desc=f"run {run.pk}", position=i, file=self.stdout)
            for i, run in enumerate(live)
        }
        try:
            while bars:
                for run_id, bar in list(bars.items()):
                    fresh = send_run_get(run_id=run_id)
                    assert fresh is not None
                    progress = send_run_progress(run=fresh, deliveries=False)
                    bar.total = fresh.audience_size or 0
                    bar.n = progress.walked
                    bar.set_postfix(state=fresh.state, decided=fresh.decided, queued=fresh.queued)
                    bar.refresh()
                    if fresh.state in FINAL_STATES:
                        bar.close()
                        del bars[run_id]
                if bars:
                    time.sleep(options["interval"])
        except KeyboardInterrupt:
            pass
        finally:
            for bar in bars.values():
                bar.close()
