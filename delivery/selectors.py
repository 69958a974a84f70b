"""Reads of the decision path: the in-memory set of active triggered campaigns, and one intervention's detail.

The decision path never queries campaigns per event. :class:`CampaignCache` holds the active triggered
campaigns with their variants, templates and compiled rules, and reloads them only when the campaign
version counter in Redis (``ie:campaigns:version``, bumped by campaigns on every change) has moved —
looked at no more than once a second, so a change reaches every consumer process within about a second.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet

from campaigns.models import Campaign, Variant
from campaigns.selectors import campaigns_active_triggered
from campaigns.services import campaigns_version
from core.observability import get_logger
from delivery.models import SendRun, SendRunMember
from interventions.models import Intervention
from interventions.selectors import interventions_list
from personalization.rules import Rule, RuleError, compile_rule
from tracking.selectors import tracking_events_in_order

logger = get_logger(__name__)


@dataclass(frozen=True)
class CampaignPlan:
    """One active triggered campaign, ready to be evaluated in memory."""

    campaign: Campaign
    variants: tuple[Variant, ...]
    condition: Rule
    segment: Rule | None
    exit_events: frozenset[str]

    @property
    def id(self) -> int:
        return self.campaign.pk

    def live_at(self, moment: datetime) -> bool:
        campaign = self.campaign
        if campaign.starts_at is not None and moment < campaign.starts_at:
            return False
        return campaign.ends_at is None or moment < campaign.ends_at


@dataclass
class CampaignSet:
    version: str
    plans: tuple[CampaignPlan, ...]
    by_trigger: dict[str, list[CampaignPlan]] = field(default_factory=dict)
    by_exit_event: dict[str, list[CampaignPlan]] = field(default_factory=dict)

    @classmethod
    def build(cls, *, version: str, campaigns: Iterable[Campaign]) -> CampaignSet:
        plans: list[CampaignPlan] = []
        for campaign in campaigns:
            try:
                condition = compile_rule(campaign.conditions or "")
                segment = compile_rule(campaign.segment.rules) if campaign.segment is not None else None
            except RuleError as exc:
                # Rules are validated on save; a rule that no longer compiles disables its campaign only.
                logger.error("campaign_rule_invalid", campaign_id=campaign.pk, error=str(exc))
                continue
            exit_events = frozenset(e for e in (campaign.exit_events or []) if isinstance(e, str))
            plans.append(
                CampaignPlan(
                    campaign=campaign,
                    variants=tuple(campaign.variants.all()),
                    condition=condition,
                    segment=segment,
                    exit_events=exit_events,
                )
            )
        # Highest priority first; the older campaign wins a tie, so arbitration is deterministic.
        plans.sort(key=lambda plan: (-plan.campaign.priority, plan.campaign.pk))
        by_trigger: dict[str, list[CampaignPlan]] = defaultdict(list)
        by_exit: dict[str, list[CampaignPlan]] = defaultdict(list)
        for plan in plans:
            by_trigger[plan.campaign.trigger].append(plan)
            for event_type in plan.exit_events:
                by_exit[event_type].append(plan)
        return cls(
            version=version, plans=tuple(plans), by_trigger=dict(by_trigger), by_exit_event=dict(by_exit)
        )


class CampaignCache:
    """The process's view of active campaigns; ``current()`` is cheap enough to call per batch."""

    def __init__(self, *, check_interval: float = 1.0, max_age: float = 60.0) -> None:
        self.check_interval = check_interval
        # Reload now and then even without a change, so start and end dates take effect on their own.
        self.max_age = max_age
        self._loaded_at = 0.0
        self._set: CampaignSet | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._set = None

    def current(self) -> CampaignSet:
        now = time.monotonic()
        with self._lock:
            if self._set is not None and now - self._checked_at < self.check_interval:
                return self._set
            version = _version()
            self._checked_at = now
            stale = now - self._loaded_at >= self.max_age
            if self._set is None or self._set.version != version or stale:
                self._loaded_at = now
                self._set = CampaignSet.build(version=version, campaigns=campaigns_active_triggered())
                logger.info("campaigns_loaded", version=version, count=len(self._set.plans))
            return self._set


def _version() -> str:
    return str(campaigns_version())


campaign_cache = CampaignCache()


# --- An intervention as the REST API shows it (``GET /interventions/{id}``) ---------------------------------


def intervention_detail(*, intervention_id: Any) -> Intervention | None:
    """One intervention with its deliveries and tracking events (oldest first): three queries."""
    events = tracking_events_in_order()
    return (
        interventions_list()
        .prefetch_related(Prefetch("tracking_events", queryset=events))
        .filter(pk=intervention_id)
        .first()
    )


# --- Send runs of scheduled campaigns (delivery/runs.py) ------------------------------------------------


@dataclass(frozen=True)
class RunProgress:
    """A run's books as the API, the admin and ``campaign_status`` show them."""

    run: SendRun
    walked: int
    progress: float  # 0..1 of the audience walked
    rate: float | None  # members walked per second since the start
    eta_seconds: float | None
    deliveries: dict[str, int]  # the run's deliveries by status (sent, delivered, failed, …)

    @property
    def sent(self) -> int:
        return sum(self.deliveries.get(s, 0) for s in ("sent", "delivered"))

    @property
    def failed_deliveries(self) -> int:
        return self.deliveries.get("failed", 0)

    @property
    def suppressed(self) -> int:
        return sum(self.run.suppressed.values())

    @property
    def skipped(self) -> int:
        return sum(self.run.skipped.values())


def send_runs_of_campaign(*, campaign_id: int) -> QuerySet[SendRun]:
    return SendRun.objects.filter(campaign_id=campaign_id).order_by("-tick", "-id")


def send_run_get(*, run_id: int) -> SendRun | None:
    return SendRun.objects.filter(pk=run_id).first()


def send_run_progress(*, run: SendRun, now: datetime | None = None, deliveries: bool = True) -> RunProgress:
    """Counts, rate and ETA of one run; ``deliveries`` adds the deliveries by status (one grouped query
    over the run's decided members)."""
    from django.utils import timezone

    from interventions.selectors import deliveries_count_by_status

    now = now or timezone.now()
    walked = run.decided + sum(run.skipped.values()) + run.failed
    size = run.audience_size or 0
    progress = walked / size if size else (1.0 if run.state == SendRun.State.FINISHED else 0.0)
    rate: float | None = None
    eta: float | None = None
    if run.started_at is not None and walked:
        elapsed = ((run.finished_at or now) - run.started_at).total_seconds()
        rate = walked / elapsed if elapsed > 0 else None
        if rate and run.state == SendRun.State.RUNNING:
            eta = (size - walked) / rate
    by_status: dict[str, int] = {}
    if deliveries and run.decided:
        decided = SendRunMember.objects.filter(run_id=run.pk, intervention_id__isnull=False).values(
            "intervention_id"
        )
        by_status = deliveries_count_by_status(intervention_ids=decided)
    return RunProgress(
        run=run, walked=walked, progress=progress, rate=rate, eta_seconds=eta, deliveries=by_status
    )
