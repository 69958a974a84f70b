"""``manage.py evaluate_policy --campaign ID --change threshold=0.8 …``: what a changed policy would have
earned on the campaign's logged decisions (delivery/evaluation.py), with a progress bar over the
bootstrap. Reads only."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm  # type: ignore[import-untyped]

from campaigns.selectors import campaign_get
from core.errors import ApplicationError
from delivery.evaluation import BOOTSTRAP, LoggedDecision, policy_changes_parse, policy_evaluate
from tracking.selectors import logged_decisions


class Command(BaseCommand):
    help = "Estimate a changed policy's reward from logged decisions (IPS and doubly robust)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", type=int, required=True)
        parser.add_argument(
            "--change",
            action="append",
            default=[],
            help="threshold=0.8, holdout=20 (percent), variant=<id> or channel=<name>; repeatable",
        )
        parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP)
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        campaign = campaign_get(campaign_id=options["campaign"])
        if campaign is None:
            raise CommandError(f"campaign {options['campaign']} does not exist")
        try:
            change = policy_changes_parse(options["change"])
            decisions = [
                LoggedDecision(
                    score=score,
                    is_holdout=is_holdout,
                    variant_id=variant_id,
                    channel=channel,
                    p_holdout=p_holdout,
                    p_variant=p_variant,
                    p_channel=p_channel,
                    reward=1.0 if rewarded else 0.0,
                )
                for (
                    score,
                    is_holdout,
                    variant_id,
                    channel,
                    p_holdout,
                    p_variant,
                    p_channel,
                    rewarded,
                ) in logged_decisions(campaign_id=campaign.pk, reward=campaign.bandit_goal)
            ]
            with tqdm(total=options["bootstrap"], desc="bootstrap", file=self.stderr) as bar:
                result = policy_evaluate(
                    decisions=decisions,
                    change=change,
                    bootstrap=options["bootstrap"],
                    seed=options["seed"],
                    progress=lambda done: bar.update(done - bar.n),
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"campaign {campaign.pk} ({campaign.bandit_goal} per decision), {result.decisions} decisions, "
            f"changes {change or 'none'}\n"
            f"logged policy: {result.logged:.4f}\n"
            f"IPS:           {result.ips.value:.4f}  [{result.ips.low:.4f}, {result.ips.high:.4f}]\n"
            f"doubly robust: {result.dr.value:.4f}  [{result.dr.low:.4f}, {result.dr.high:.4f}]\n"
            f"effective sample size: {result.effective_sample_size:.0f}"
        )
