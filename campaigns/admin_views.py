"""The campaign page's schedule editor: the next runs of the schedule being typed, before it is saved.

``static/admin-ext/campaign-form.js`` sends the schedule fields as they stand in the form (``kind``,
``send_at_0``/``send_at_1``, ``send_local_time``, ``cron``, ``schedule_timezone``, ``segment``) to
``campaign_schedule_preview_answer`` and redraws the *Next runs* panel from its answer. The fields are
parsed by the campaign form's own fields (the admin's date, time and segment widgets, in the admin's time
zone) and the runs come from ``campaigns.schedules`` — what activation checks and what beat will run — so
the panel and the saved campaign cannot disagree. A field left out keeps the model's default.

Answer: 200 ``{"scheduled": bool, "zone", "shopper_zones", "viewer_zone", "send_local_time", "runs":
[{"start", "start_text", "start_viewer_text", "reaches": [{"zone", "at", "text"}]}], "problem"}``
(``viewer_zone``: the browser's zone, sent as ``viewer_zone``, when it is another than the schedule's);
400 ``{"error": {"code": "invalid", "message", "details": {field: [reason]}}}`` (the API's error shape)
when a field cannot be read or the schedule cannot run.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from api.exceptions import error_body
from campaigns.models import Campaign
from campaigns.schedules import SchedulePreview, campaign_schedule_errors, schedule_preview, zone_get
from personalization.rules import RuleError
from personalization.selectors import segment_member_zones

SCHEDULE_FIELDS = ("kind", "send_at", "send_local_time", "cron", "schedule_timezone", "segment")
TIME_FORMAT = "D j M Y, H:i T"


def campaign_schedule_preview(campaign: Campaign) -> SchedulePreview | None:
    """The next five runs, in the schedule's zone and in the zones most common among the audience."""
    zones: list[str] = []
    if campaign.kind == Campaign.Kind.SCHEDULED and campaign.segment is not None:
        with contextlib.suppress(RuleError):
            zones = segment_member_zones(segment=campaign.segment)
    return schedule_preview(campaign=campaign, now=timezone.now(), shopper_zones=zones)


def _schedule_from(form: forms.BaseForm) -> tuple[Campaign, dict[str, list[str]]]:
    """An unsaved campaign holding the schedule fields the form was sent, and what could not be read."""
    campaign = Campaign()
    errors: dict[str, list[str]] = {}
    for name in SCHEDULE_FIELDS:
        field, bound = form.fields[name], form[name]
        if field.widget.value_omitted_from_data(form.data, form.files, form.add_prefix(name)):
            continue
        try:
            setattr(campaign, name, field.clean(bound.data))
        except ValidationError as error:
            errors[name] = list(error.messages)
    return campaign, errors


def _text(moment: datetime) -> str:
    return date_format(moment, TIME_FORMAT)


def campaign_schedule_preview_answer(
    *, request: HttpRequest, form_class: type[forms.BaseForm]
) -> JsonResponse:
    campaign, errors = _schedule_from(form_class(data=request.GET))
    if not errors:
        errors = campaign_schedule_errors(campaign=campaign, now=timezone.now())
    if errors:
        field, reasons = next(iter(errors.items()))
        return JsonResponse(error_body("invalid", f"{field}: {reasons[0]}", errors), status=400)
    preview = campaign_schedule_preview(campaign)
    if preview is None:
        return JsonResponse({"scheduled": False, "zone": "", "shopper_zones": [], "runs": [], "problem": ""})
    # The browser's own zone, when it is another than the schedule's: a marketer abroad reads the starts
    # on their clock too. It comes from the browser, not from the marketer: an unknown one is not shown.
    viewer = zone_get(request.GET.get("viewer_zone", ""))
    if viewer is not None and viewer.key == preview.zone:
        viewer = None
    runs: list[dict[str, Any]] = [
        {
            "start": start.isoformat(),
            "start_text": _text(start),
            "start_viewer_text": _text(start.astimezone(viewer)) if viewer is not None else "",
            "reaches": [
                {"zone": zone, "at": moment.isoformat(), "text": _text(moment)}
                for zone, moment in zip(preview.shopper_zones, reaches, strict=True)
            ],
        }
        for start, reaches in preview.runs
    ]
    return JsonResponse(
        {
            "scheduled": True,
            "zone": preview.zone,
            "shopper_zones": preview.shopper_zones,
            "viewer_zone": viewer.key if viewer is not None else "",
            "send_local_time": campaign.send_local_time.strftime("%H:%M")
            if campaign.send_local_time
            else None,
            "runs": runs,
            "problem": preview.problem,
        }
    )
