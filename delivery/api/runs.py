"""Send runs of scheduled campaigns: ``GET /campaigns/{id}/runs``, ``GET /runs/{id}`` and
``POST /runs/{id}/pause|resume|cancel``; scope ``campaigns``. Thin: delivery.selectors reads,
delivery.runs moves; a refused move is a 409 in the error shape of api/exceptions.py."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.models import Scope
from api.pagination import ApiPagination
from core.errors import NotFoundError
from delivery import runs
from delivery.models import SendRun
from delivery.selectors import RunProgress, send_run_get, send_run_progress, send_runs_of_campaign


class SendRunSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="run.pk")
    campaign = serializers.IntegerField(source="run.campaign_id")
    tick = serializers.DateTimeField(source="run.tick", help_text="The schedule time this run serves")
    state = serializers.ChoiceField(source="run.state", choices=SendRun.State.choices)
    audience_size = serializers.IntegerField(source="run.audience_size", allow_null=True)
    decided = serializers.IntegerField(source="run.decided", help_text="Members with an intervention")
    queued = serializers.IntegerField(source="run.queued", help_text="Decided and handed to a channel")
    suppressed = serializers.DictField(
        source="run.suppressed", child=serializers.IntegerField(), help_text="Decided, not sent, by reason"
    )
    skipped = serializers.DictField(
        source="run.skipped",
        child=serializers.IntegerField(),
        help_text="No decision owed any more, by reason",
    )
    failed = serializers.IntegerField(source="run.failed")
    sent = serializers.IntegerField(help_text="Deliveries sent or delivered")
    failed_deliveries = serializers.IntegerField(help_text="Deliveries that failed")
    progress = serializers.FloatField(help_text="Share of the audience walked, 0 to 1")
    rate = serializers.FloatField(allow_null=True, help_text="Members walked per second")
    eta_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(source="run.error")
    started_at = serializers.DateTimeField(source="run.started_at", allow_null=True)
    finished_at = serializers.DateTimeField(source="run.finished_at", allow_null=True)


class SendRunPageSerializer(serializers.Serializer):
    """The list envelope (api.pagination.ApiPagination), for the schema."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = SendRunSerializer(many=True)


def _run(run_id: int) -> SendRun:
    run = send_run_get(run_id=run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return run


def _body(progress: RunProgress) -> dict[str, Any]:
    return dict(SendRunSerializer(progress).data)


class CampaignRunListView(APIView):
    required_scopes = {Scope.CAMPAIGNS}

    @extend_schema(
        operation_id="campaigns_runs_list",
        responses={200: SendRunPageSerializer},
        summary="A scheduled campaign's send runs, newest tick first, with their counts and progress",
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        paginator = ApiPagination()
        page = paginator.paginate_queryset(
            send_runs_of_campaign(campaign_id=int(campaign_id)), request, view=self
        )
        rows = [_body(send_run_progress(run=run, deliveries=False)) for run in page or []]
        return paginator.get_paginated_response(rows)


class RunDetailView(APIView):
    required_scopes = {Scope.CAMPAIGNS}

    @extend_schema(
        operation_id="runs_retrieve",
        responses={200: SendRunSerializer},
        summary="One send run: counts (planned, decided, queued, suppressed and skipped by reason, sent, "
        "failed), progress, rate and ETA",
    )
    def get(self, request: Request, run_id: str) -> Response:
        return Response(_body(send_run_progress(run=_run(int(run_id)))))


def _move_view(move: str, summary: str) -> type[APIView]:
    class MoveView(APIView):
        required_scopes = {Scope.CAMPAIGNS}

        @extend_schema(
            operation_id=f"runs_{move}",
            request=None,
            responses={200: SendRunSerializer},
            summary=summary,
            description="Takes effect before the run's next batch. 409 `invalid_run_state` when the run's "
            "state does not allow it (e.g. resuming a finished run).",
        )
        def post(self, request: Request, run_id: str) -> Response:
            run = runs.send_run_move(run_id=int(run_id), move=move)
            return Response(_body(send_run_progress(run=run)))

    MoveView.__name__ = f"Run{move.capitalize()}View"
    MoveView.__qualname__ = MoveView.__name__
    return MoveView


RunPauseView = _move_view("pause", "Pause a send run between two batches")
RunResumeView = _move_view("resume", "Resume a paused (or failed) send run where it stopped")
RunCancelView = _move_view("cancel", "Cancel a send run: undecided members are never decided")
