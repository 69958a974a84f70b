"""Operators' view of the dead-letter topic: what the consumer refused, why, and a way to send it back.

Also the send runs of scheduled campaigns (their own pages, and their progress on the campaign page).

The DLQ is a Kafka topic, not a table, so this is a page of the admin site (``/admin/dead-letters/``,
wired in ``InterventionEngineAdminSite.get_urls``) rather than a model admin. It reads the topic the way
``manage.py dlq list`` does and replays with the same ``dlq_replay``: the consumer validates a replayed
message again, so a still-bad one comes back here and a good one is decided once.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaException, Producer
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods

from campaigns.admin import CampaignAdmin
from campaigns.models import Campaign
from core.admin import ReadOnlyModelAdmin, admin_permission_required, status_badge
from core.errors import ApplicationError
from delivery.event_handlers import DeadLetterRecord, dlq_read, dlq_replay, dlq_topic
from delivery.models import AllocationSnapshot, SendRun
from delivery.runs import send_run_move
from delivery.selectors import send_run_progress, send_runs_of_campaign
from messaging.kafka import producer_config

# Who may look: whoever may look at the Kafka outbox (the same plumbing, the same personal data).
VIEW_PERMISSION = "messaging.view_outboxmessage"
# Who may replay: replaying publishes into the production input topics, an operator's decision.
REPLAY_PERMISSION = "messaging.replay_dead_letters"
DEFAULT_LIMIT = 200
MAX_LIMIT = 2000
# Reading the topic waits at most this long for the broker, so a broker outage shows as an error message
# on the page instead of a hung request.
READ_TIMEOUT_SECONDS = 5.0


def dead_letters_allowed(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.has_perm(VIEW_PERMISSION))


def dead_letters_permissions(request: HttpRequest, **url_kwargs: Any) -> Sequence[str]:
    """Looking needs the view permission; a POST (a replay) needs the replay permission too."""
    if request.method == "POST":
        return (VIEW_PERMISSION, REPLAY_PERMISSION)
    return (VIEW_PERMISSION,)


def _limit(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.GET.get("limit", DEFAULT_LIMIT)), MAX_LIMIT))
    except ValueError:
        return DEFAULT_LIMIT


def _row(record: DeadLetterRecord) -> dict[str, Any]:
    payload = record.payload
    original = payload.get("original")
    if payload.get("original_encoding") == "utf-8" and isinstance(original, str):
        # Not JSON may be the very reason it is here: then it is shown as it came.
        with contextlib.suppress(ValueError):
            original = json.dumps(json.loads(original), indent=2, ensure_ascii=False)
    return {
        "position": record.position,
        "reason": payload.get("reason", ""),
        "error": payload.get("error", ""),
        "failed_at": payload.get("failed_at", ""),
        "source": f"{payload.get('topic')}[{payload.get('partition')}]@{payload.get('offset')}",
        "key": payload.get("key"),
        "original": original,
        "binary": payload.get("original_encoding") == "base64",
        "replayable": _replayable(record),
    }


def _replayable(record: DeadLetterRecord) -> bool:
    """``dlq_replay`` needs the source topic and the original bytes."""
    return bool(record.payload.get("topic")) and record.payload.get("original") is not None


@require_http_methods(["GET", "POST"])
@admin_permission_required(dead_letters_permissions)
def dead_letters_view(request: HttpRequest, *, admin_site: admin.AdminSite) -> HttpResponse:
    if request.method == "POST":
        return _replay(request)
    reason = request.GET.get("reason", "")
    limit = _limit(request)
    error = ""
    records: list[DeadLetterRecord] = []
    try:
        records = dlq_read(limit=limit, timeout=READ_TIMEOUT_SECONDS)
    except KafkaException as exc:
        error = f"The Kafka broker did not answer: {exc}"
    reasons = Counter(str(r.payload.get("reason", "")) for r in records)
    shown = [r for r in records if not reason or r.payload.get("reason") == reason]
    context = {
        **admin_site.each_context(request),
        "title": "Dead letters",
        "topic": dlq_topic(),
        "error": error,
        "reason": reason,
        "limit": limit,
        "reasons": sorted(reasons.items()),
        "total": len(records),
        "rows": [_row(r) for r in reversed(shown)],  # newest first
        "can_replay": request.user.has_perm(REPLAY_PERMISSION),
    }
    return TemplateResponse(request, "admin/delivery/dead_letters.html", context)


def _replay(request: HttpRequest) -> HttpResponse:
    """Replay the selected messages; refuse with a reason for anything that cannot be replayed."""
    query = request.GET.urlencode()
    back = HttpResponseRedirect(reverse("admin:dead_letters") + (f"?{query}" if query else ""))
    positions = request.POST.getlist("position")
    if not positions:
        messages.warning(request, "Select the messages to replay.")
        return back
    try:
        by_position = {r.position: r for r in dlq_read(timeout=READ_TIMEOUT_SECONDS)}
    except KafkaException as exc:
        messages.error(request, f"Nothing replayed: the Kafka broker did not answer ({exc}).")
        return back
    missing = [p for p in positions if p not in by_position]
    if missing:
        messages.error(request, f"Nothing replayed: not on the dead-letter topic: {', '.join(missing)}.")
        return back
    selected = [by_position[p] for p in positions]
    unreplayable = [r.position for r in selected if not _replayable(r)]
    if unreplayable:
        messages.error(
            request,
            f"Nothing replayed: {', '.join(unreplayable)} carry no original message or source topic.",
        )
        return back
    try:
        count = dlq_replay(records=selected, producer=Producer(producer_config()))
    except (KafkaException, RuntimeError) as exc:
        messages.error(request, f"Replay not confirmed by the broker: {exc}. Check the source topics.")
        return back
    messages.success(request, f"Replayed {count} message(s) to their source topics.")
    return back


# --- Send runs of scheduled campaigns ------------------------------------------------------------------


@admin.register(SendRun)
class SendRunAdmin(ReadOnlyModelAdmin):
    """Runs with their progress (counts, rate, ETA); pause, resume and cancel as actions that need the
    ``delivery.control_sendrun`` permission. The run's books are written by delivery.runs only."""

    list_display = ("id", "campaign", "tick", "state_badge", "progress_bar", "books", "rate_eta")
    list_filter = ("state",)
    search_fields = ("campaign__name",)
    list_select_related = ("campaign",)
    ordering = ("-tick", "-id")
    actions = ["pause_selected", "resume_selected", "cancel_selected"]
    readonly_fields = (
        "campaign",
        "tick",
        "state_badge",
        "progress_bar",
        "books",
        "deliveries",
        "rate_eta",
        "error",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields

    def has_control_sendrun_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("delivery.control_sendrun"))

    @admin.display(description="state")
    def state_badge(self, run: SendRun) -> str:
        return status_badge(run.state, run.get_state_display())

    @admin.display(description="progress")
    def progress_bar(self, run: SendRun) -> str:
        progress = send_run_progress(run=run, deliveries=False)
        return format_html(
            '<progress max="1" value="{}"></progress> {} / {}',
            f"{progress.progress:.4f}",
            progress.walked,
            run.audience_size if run.audience_size is not None else "…",
        )

    @admin.display(description="decided · queued · suppressed · skipped · failed")
    def books(self, run: SendRun) -> str:
        return (
            f"{run.decided} · {run.queued} · {sum(run.suppressed.values())} {run.suppressed or ''} · "
            f"{sum(run.skipped.values())} {run.skipped or ''} · {run.failed}"
        )

    @admin.display(description="deliveries by status")
    def deliveries(self, run: SendRun) -> str:
        return str(send_run_progress(run=run).deliveries or "—")

    @admin.display(description="rate · ETA")
    def rate_eta(self, run: SendRun) -> str:
        progress = send_run_progress(run=run, deliveries=False)
        rate = f"{progress.rate:.0f}/s" if progress.rate else "—"
        eta = f"{progress.eta_seconds:.0f} s" if progress.eta_seconds is not None else "—"
        return f"{rate} · {eta}"

    def _move(self, request: HttpRequest, queryset: QuerySet[SendRun], move: str) -> None:
        done = 0
        for run in queryset:
            try:
                send_run_move(run_id=run.pk, move=move)
                done += 1
            except ApplicationError as error:
                self.message_user(request, f"Run {run.pk}: {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{move}: {done} run(s)", messages.SUCCESS)

    @admin.action(description="Pause the selected runs", permissions=["control_sendrun"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[SendRun]) -> None:
        self._move(request, queryset, "pause")

    @admin.action(description="Resume the selected runs", permissions=["control_sendrun"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[SendRun]) -> None:
        self._move(request, queryset, "resume")

    @admin.action(description="Cancel the selected runs", permissions=["control_sendrun"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[SendRun]) -> None:
        self._move(request, queryset, "cancel")


# --- Bandit allocations ------------------------------------------------------------------------------


@admin.register(AllocationSnapshot)
class AllocationSnapshotAdmin(ReadOnlyModelAdmin):
    """Every allocation the bandit computed (delivery.allocation), newest first: the first row of a
    campaign is the allocation its consumers use now, the rest its history."""

    list_display = ("campaign", "computed_at", "goal", "allocation")
    list_filter = ("campaign", "goal")
    ordering = ("-computed_at", "-id")
    readonly_fields = ("campaign", "computed_at", "goal", "allocation", "posteriors_table")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AllocationSnapshot]:
        return super().get_queryset(request).select_related("campaign").prefetch_related("campaign__variants")

    @admin.display(description="share of the treatment traffic")
    def allocation(self, snapshot: AllocationSnapshot) -> str:
        names = {str(v.pk): v.name for v in snapshot.campaign.variants.all()}
        shares = sorted(snapshot.shares.items(), key=lambda item: -float(item[1]))
        return " · ".join(f"{names.get(k, f'variant {k}')} {float(v):.0%}" for k, v in shares)

    @admin.display(description="posteriors: successes / trials, Beta(alpha, beta)")
    def posteriors_table(self, snapshot: AllocationSnapshot) -> str:
        names = {str(v.pk): v.name for v in snapshot.campaign.variants.all()}
        return " · ".join(
            f"{names.get(k, f'variant {k}')}: {p['successes']}/{p['trials']}, "
            f"Beta({p['alpha']:g}, {p['beta']:g})"
            for k, p in snapshot.posteriors.items()
        )


# The campaign page shows its latest runs: campaigns cannot import the runs (they are this app's), so the
# campaign's admin is registered again here with the runs' progress added to its page.
CAMPAIGN_PAGE_RUNS = 5


class CampaignWithRunsAdmin(CampaignAdmin):
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        if object_id.isdigit():
            campaign_id = int(object_id)
            context["send_runs"] = [
                send_run_progress(run=run)
                for run in send_runs_of_campaign(campaign_id=campaign_id)[:CAMPAIGN_PAGE_RUNS]
            ]
            context["send_runs_url"] = (
                reverse("admin:delivery_sendrun_changelist") + f"?campaign__id__exact={campaign_id}"
            )
        return super().change_view(request, object_id, form_url, extra_context=context)


admin.site.unregister(Campaign)
admin.site.register(Campaign, CampaignWithRunsAdmin)
