"""Writes for the back office: templates, segments, campaigns and their variants, with an audit trail.

The admin and the API both call these functions, so the rules live here once:

* every change is validated first (rules compile, templates render with sample data) and recorded as an
  ``AuditEntry`` with the field-level diff, in the same transaction;
* campaign status follows ``ALLOWED_TRANSITIONS`` (also enforced by a PostgreSQL trigger, so even a raw
  ``UPDATE`` cannot skip it) and activation requires a campaign that can actually run;
* an active campaign may be edited, but every edit is re-checked as if the campaign were being activated
  again, so it never becomes unrunnable; completed and archived campaigns are read-only;
* after commit, ``campaign_changed`` is sent and the Redis counter ``ie:campaigns:version`` bumped so the
  decision path refreshes its in-memory campaigns.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model, ProtectedError
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask
from redis import RedisError

from campaigns import selectors
from campaigns.models import AuditEntry, Campaign, Template, TemplateLocalization, Variant
from campaigns.schedules import (
    RUN_START_TASK,
    campaign_schedule_errors,
    campaign_schedule_shape_errors,
    cron_parse,
)
from campaigns.signals import campaign_changed
from core.errors import ApplicationError, ConflictError, NotFoundError
from core.observability import get_logger
from core.persistence import row_lock, row_save_named
from core.redis import redis_sync
from personalization import services as personalization_services
from personalization.models import CHANNELS, Segment
from personalization.rendering import TemplateRenderError, render_fields, validate_fields
from personalization.rules import RuleError, validate_rule
from personalization.selectors import segment_get

logger = get_logger(__name__)

Actor = User | None

CAMPAIGNS_VERSION_KEY = "ie:campaigns:version"

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"active", "archived"}),
    "active": frozenset({"paused", "completed"}),
    "paused": frozenset({"active", "completed", "archived"}),
    "completed": frozenset({"archived"}),
    "archived": frozenset(),
}
READ_ONLY_STATUSES = frozenset({"completed", "archived"})

LOCALIZATION_FIELDS = (
    "subject",
    "body_text",
    "body_html",
    "cta_label",
    "cta_url",
    "image_url",
    "discount_code",
)
TEMPLATE_FIELDS = ("name", "channel", "onsite_kind", "default_locale", "description")
CAMPAIGN_FIELDS = (
    "name",
    "description",
    "kind",
    "trigger",
    "conditions",
    "segment",
    "delay_seconds",
    "require_open_cart",
    "exit_events",
    "channels",
    "channel_strategy",
    "priority",
    "frequency_cap_count",
    "frequency_cap_window_seconds",
    "cooldown_seconds",
    "holdout_percent",
    "expiry_seconds",
    "use_bandit",
    "bandit_goal",
    "conversion_goal",
    "attribution_window_seconds",
    "minimum_detectable_effect",
    "send_at",
    "send_local_time",
    "cron",
    "schedule_timezone",
    "starts_at",
    "ends_at",
)
VARIANT_FIELDS = ("name", "weight", "is_control", *(f"{channel}_template" for channel in CHANNELS))

# Which fields each channel must fill in a localization.
_REQUIRED_BY_CHANNEL: dict[str, tuple[str, ...]] = {
    "onsite": ("subject", "body_text"),
    "email": ("subject",),
    "sms": ("body_text",),
    "push": ("subject", "body_text"),
}


# SPEC §3.1 cart event types; a trigger is one of these or ``prediction.<model>`` (SPEC §3.2).
EVENT_TYPES = (
    "page_viewed",
    "cart_viewed",
    "cart_item_added",
    "cart_item_removed",
    "checkout_started",
    "checkout_completed",
    "cart_abandoned",
)
_PREDICTION_TRIGGER = re.compile(r"^prediction\.[A-Za-z0-9_.-]{1,100}$")


class CampaignTransitionError(ConflictError):
    code = "invalid_transition"


# --- Audit -------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Model):
        return value.pk
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


def audit_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: [old, new]}`` for each field whose value changed (JSON-able values)."""
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = _jsonable(before.get(key)), _jsonable(after.get(key))
        if old != new:
            changes[key] = [old, new]
    return changes


def audit_record(
    *, actor: Actor, actor_label: str, action: str, obj: Model, changes: dict[str, Any]
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.pk is not None else None,
        actor_label=actor_label[:200],
        action=action,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        changes=_jsonable(changes),
    )


def _snapshot(obj: Model, fields: Iterable[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        attname = getattr(field, "attname", name)
        result[name] = _jsonable(getattr(obj, attname))
    return result


# --- Change notification -------------------------------------------------------------------------------


def campaigns_version() -> int:
    """The counter bumped on every campaign change; a process can poll it to know its cache is stale."""
    value = redis_sync().get(CAMPAIGNS_VERSION_KEY)
    return int(value) if value else 0


def _notify_changed(campaign_ids: Iterable[int]) -> None:
    ids = sorted(set(campaign_ids))
    if not ids:
        return

    def send() -> None:
        try:
            redis_sync().incr(CAMPAIGNS_VERSION_KEY)
        except RedisError:
            # The signal below still refreshes this process; other processes refresh on their timer.
            logger.warning("campaigns_version_bump_failed", campaign_ids=ids)
        for campaign_id in ids:
            campaign_changed.send(sender=Campaign, campaign_id=campaign_id)

    transaction.on_commit(send)


# --- Templates ---------------------------------------------------------------------------------------


def _locale_key(locale: str) -> str:
    return locale.strip().replace("_", "-").lower()


def template_localization_for(*, template: Template, locale: str) -> TemplateLocalization:
    """The best localization for ``locale``: fr-FR → fr → the template's default locale → the first one.

    Uses prefetched localizations when the caller loaded them (the decision path does)."""
    localizations = sorted(template.localizations.all(), key=lambda loc: loc.locale)
    if not localizations:
        raise NotFoundError(f"template {template.name!r} has no localization")
    by_locale = {_locale_key(loc.locale): loc for loc in localizations}
    wanted = _locale_key(locale or "")
    default = _locale_key(template.default_locale or "")
    for candidate in (wanted, wanted.split("-")[0], default, default.split("-")[0]):
        if candidate and candidate in by_locale:
            return by_locale[candidate]
    return localizations[0]


def template_render(*, template: Template, locale: str, context: Mapping[str, Any]) -> dict[str, str]:
    """Render the best localization for ``locale`` in the sandbox; ``kind`` is added for on-site content.

    The localization's ``discount_code`` is rendered first and, when not empty, is the ``discount_code``
    the other fields see; a per-shopper code comes in through the context and is used when the template
    has none, or by writing ``{{ discount_code }}`` in the template's discount code field."""
    localization = template_localization_for(template=template, locale=locale)
    fields = {name: getattr(localization, name) for name in LOCALIZATION_FIELDS}
    render_context = dict(context)
    code = render_fields({"discount_code": fields.pop("discount_code")}, render_context)["discount_code"]
    if code.strip():
        render_context["discount_code"] = code.strip()
    rendered = render_fields(fields, render_context)
    rendered["discount_code"] = str(render_context.get("discount_code") or "")
    if template.channel == "onsite":
        rendered["kind"] = template.onsite_kind
    return rendered


def template_validate(*, template: Template, localizations: Iterable[Mapping[str, str]]) -> None:
    """Refuse content that cannot render: each localization compiles and renders with sample data in
    its own locale, and has the fields its channel needs."""
    items = list(localizations)
    if not items:
        raise TemplateRenderError("add at least one localization", field="localizations")
    seen: set[str] = set()
    required = _REQUIRED_BY_CHANNEL.get(template.channel, ())
    for item in items:
        locale = str(item.get("locale") or "").strip()
        if not locale:
            raise TemplateRenderError("each localization needs a locale (e.g. en, fr-FR)", field="locale")
        if _locale_key(locale) in seen:
            raise TemplateRenderError(f"locale {locale!r} appears twice", field="locale")
        seen.add(_locale_key(locale))
        for name in required:
            if not str(item.get(name) or "").strip():
                raise TemplateRenderError(f"required for {template.channel} content ({locale})", field=name)
        if template.channel == "email" and not (item.get("body_text") or item.get("body_html")):
            raise TemplateRenderError(f"an email needs a text or an HTML body ({locale})", field="body_text")
        if template.channel != "email" and item.get("body_html"):
            raise TemplateRenderError("only email templates have an HTML body", field="body_html")
        fields = {name: str(item.get(name) or "") for name in LOCALIZATION_FIELDS}
        try:
            validate_fields(fields, locales=(locale,))
        except TemplateRenderError as error:
            # Name the locale too: the marketer edits several localizations on one page.
            raise TemplateRenderError(
                f"{error.reason} (locale {locale})", field=error.field, line=error.line
            ) from None


def _template_check_fields(template: Template) -> None:
    if template.channel not in CHANNELS:
        raise ApplicationError(
            f"channel must be one of {', '.join(CHANNELS)}", details={"channel": ["invalid"]}
        )
    if template.channel == "onsite" and template.onsite_kind not in ("modal", "banner", "toast"):
        raise ApplicationError(
            "on-site templates need a kind: modal, banner or toast", details={"onsite_kind": ["required"]}
        )
    if template.channel != "onsite":
        template.onsite_kind = ""


def _localizations_snapshot(template: Template) -> dict[str, dict[str, str]]:
    return {
        loc.locale: {name: getattr(loc, name) for name in LOCALIZATION_FIELDS}
        for loc in template.localizations.order_by("locale")
    }


def _localizations_save(template: Template, localizations: Sequence[Mapping[str, str]]) -> None:
    existing = {loc.locale: loc for loc in template.localizations.all()}
    keep: set[str] = set()
    for item in localizations:
        locale = str(item["locale"]).strip()
        keep.add(locale)
        localization = existing.get(locale) or TemplateLocalization(template=template, locale=locale)
        for name in LOCALIZATION_FIELDS:
            setattr(localization, name, str(item.get(name) or ""))
        localization.save()
    template.localizations.exclude(locale__in=keep).delete()


@transaction.atomic
def template_create(
    *,
    data: Mapping[str, Any],
    localizations: Iterable[Mapping[str, str]],
    actor_label: str,
    actor: Actor = None,
) -> Template:
    """Create a template with its localizations; refused unless every localization renders."""
    template = Template(**{name: data[name] for name in TEMPLATE_FIELDS if name in data})
    _template_check_fields(template)
    items = list(localizations)
    template_validate(template=template, localizations=items)
    row_save_named(template, what="template")
    _localizations_save(template, items)
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="template.created",
        obj=template,
        changes=audit_diff(
            {}, {**_snapshot(template, TEMPLATE_FIELDS), "localizations": _localizations_snapshot(template)}
        ),
    )
    return template


@transaction.atomic
def template_update(
    *,
    template: Template,
    data: Mapping[str, Any],
    localizations: Iterable[Mapping[str, str]] | None = None,
    actor_label: str,
    actor: Actor = None,
) -> Template:
    """Change the fields ``data`` names and, when given, replace the localizations (matched by locale)."""
    template = row_lock(Template, template.pk)
    before = {**_snapshot(template, TEMPLATE_FIELDS), "localizations": _localizations_snapshot(template)}
    used_by = selectors.campaigns_using_template(template=template)
    if "channel" in data and data["channel"] != template.channel and used_by:
        raise ConflictError("the channel cannot change while campaign variants use this template")
    for name in TEMPLATE_FIELDS:
        if name in data:
            setattr(template, name, data[name])
    _template_check_fields(template)
    items = list(localizations) if localizations is not None else list(_localizations_as_dicts(template))
    template_validate(template=template, localizations=items)
    row_save_named(template, what="template")
    if localizations is not None:
        _localizations_save(template, items)
    after = {**_snapshot(template, TEMPLATE_FIELDS), "localizations": _localizations_snapshot(template)}
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="template.updated",
        obj=template,
        changes=audit_diff(before, after),
    )
    _notify_changed(used_by)
    return template


def _localizations_as_dicts(template: Template) -> Iterable[dict[str, str]]:
    for loc in template.localizations.all():
        yield {"locale": loc.locale, **{name: getattr(loc, name) for name in LOCALIZATION_FIELDS}}


# --- Segments ----------------------------------------------------------------------------------------

SEGMENT_FIELDS = ("name", "description", "rules")


@transaction.atomic
def segment_create(
    *, name: str, rules: str, description: str = "", actor_label: str, actor: Actor = None
) -> Segment:
    validate_rule(rules, for_segment=True)
    segment = Segment(name=name, rules=rules, description=description)
    personalization_services.segment_save(segment=segment)
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="segment.created",
        obj=segment,
        changes=audit_diff({}, _snapshot(segment, SEGMENT_FIELDS)),
    )
    return segment


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    name: str | None = None,
    rules: str | None = None,
    description: str | None = None,
    actor_label: str,
    actor: Actor = None,
) -> Segment:
    """Change what is given (None leaves a field as it is)."""
    segment = personalization_services.segment_lock(segment_id=segment.pk)
    before = _snapshot(segment, SEGMENT_FIELDS)
    if rules is not None:
        validate_rule(rules, for_segment=True)
        segment.rules = rules
    if name is not None:
        segment.name = name
    if description is not None:
        segment.description = description
    personalization_services.segment_save(segment=segment)
    changes = audit_diff(before, _snapshot(segment, SEGMENT_FIELDS))
    audit_record(actor=actor, actor_label=actor_label, action="segment.updated", obj=segment, changes=changes)
    if "rules" in changes:
        _notify_changed(selectors.campaigns_using_segment(segment=segment))
    return segment


# --- Campaigns ---------------------------------------------------------------------------------------


def _resolve_segment(value: Any) -> Segment | None:
    if value is None or value == "":
        return None
    if isinstance(value, Segment):
        return value
    segment = segment_get(segment_id=value)
    if segment is None:
        raise ApplicationError(f"segment {value!r} does not exist", details={"segment": ["not found"]})
    return segment


def _resolve_template(value: Any, *, channel: str) -> Template | None:
    if value is None or value == "":
        return None
    template = value if isinstance(value, Template) else Template.objects.filter(pk=value).first()
    if template is None:
        raise ApplicationError(
            f"template {value!r} does not exist", details={f"{channel}_template": ["not found"]}
        )
    if template.channel != channel:
        raise ApplicationError(
            f"template {template.name!r} is for {template.channel}, not {channel}",
            details={f"{channel}_template": [f"must be a {channel} template"]},
        )
    return template


def _campaign_apply(campaign: Campaign, data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - {*CAMPAIGN_FIELDS, "segment_id", "status"})
    if unknown:
        raise ApplicationError(
            f"unknown campaign field(s): {', '.join(unknown)}", details={"fields": unknown}
        )
    for name in CAMPAIGN_FIELDS:
        if name == "segment":
            continue
        if name in data:
            setattr(campaign, name, data[name])
    if "segment" in data or "segment_id" in data:
        campaign.segment = _resolve_segment(data.get("segment", data.get("segment_id")))


def _campaign_check(campaign: Campaign) -> None:
    """Shape rules that hold in every status (activation adds more, see _campaign_check_runnable)."""
    errors: dict[str, list[str]] = {}
    channels = campaign.channels
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        errors["channels"] = ['a list such as ["onsite", "email"]']
    else:
        bad = [c for c in channels if c not in CHANNELS]
        if bad:
            errors["channels"] = [f"unknown channel(s) {', '.join(bad)}; use {', '.join(CHANNELS)}"]
        elif len(set(channels)) != len(channels):
            errors["channels"] = ["a channel appears twice"]
    exit_events = campaign.exit_events
    if not isinstance(exit_events, list) or not all(isinstance(e, str) and e for e in exit_events):
        errors["exit_events"] = ['a list of event types such as ["checkout_completed"]']
    elif any(e not in EVENT_TYPES for e in exit_events):
        errors["exit_events"] = [f"event types among {', '.join(EVENT_TYPES)}"]
    trigger = str(campaign.trigger or "").strip()
    if trigger and trigger not in EVENT_TYPES and not _PREDICTION_TRIGGER.match(trigger):
        errors["trigger"] = [f"an event type ({', '.join(EVENT_TYPES)}) or prediction.<model>"]
    if campaign.kind not in Campaign.Kind.values:
        errors["kind"] = [f"one of {', '.join(Campaign.Kind.values)}"]
    if campaign.channel_strategy not in Campaign.ChannelStrategy.values:
        errors["channel_strategy"] = [f"one of {', '.join(Campaign.ChannelStrategy.values)}"]
    try:
        holdout = Decimal(str(campaign.holdout_percent))
        if not Decimal(0) <= holdout <= Decimal(100):
            errors["holdout_percent"] = ["between 0 and 100"]
    except InvalidOperation:
        errors["holdout_percent"] = ["a number between 0 and 100"]
    if campaign.starts_at and campaign.ends_at and campaign.ends_at <= campaign.starts_at:
        errors["ends_at"] = ["must be after starts_at"]
    errors.update(campaign_schedule_shape_errors(campaign=campaign))
    if errors:
        field, messages = next(iter(errors.items()))
        raise ApplicationError(f"{field}: {messages[0]}", details=errors)
    try:
        validate_rule(campaign.conditions or "", for_segment=False)
    except RuleError as error:
        raise RuleError(f"conditions: {error.message}", details={"conditions": [error.message]}) from None


def _variants_check(variants: Sequence[Mapping[str, Any]]) -> None:
    names = [str(v.get("name") or "").strip() for v in variants]
    if any(not name for name in names):
        raise ApplicationError("every variant needs a name", details={"variants": ["name required"]})
    if len(set(names)) != len(names):
        raise ApplicationError("variant names must be unique", details={"variants": ["duplicate name"]})
    if sum(1 for v in variants if v.get("is_control")) > 1:
        raise ApplicationError(
            "a campaign has at most one control variant", details={"variants": ["one control"]}
        )
    for variant in variants:
        weight = variant.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 10000:
            raise ApplicationError(
                f"variant {variant.get('name')!r}: weight must be a whole number from 0 to 10000",
                details={"variants": ["weight"]},
            )


def _campaign_check_runnable(campaign: Campaign) -> None:
    """What activation requires: the campaign can decide and deliver something. The details name each
    problem under ``problems`` and, for those of one field, under that field too (the admin shows them
    beside it)."""
    problems: list[str] = []
    fields: dict[str, list[str]] = {}

    def refuse(field: str, problem: str) -> None:
        problems.append(problem)
        fields.setdefault(field, []).append(problem)

    if campaign.kind == Campaign.Kind.TRIGGERED and not campaign.trigger.strip():
        refuse("trigger", "a triggered campaign needs a trigger (e.g. prediction.cart_abandonment)")
    if campaign.kind == Campaign.Kind.SCHEDULED and campaign.segment_id is None:
        refuse("segment", "a scheduled campaign needs a segment to send to")
    for field, reasons in campaign_schedule_errors(campaign=campaign, now=timezone.now()).items():
        for reason in reasons:
            refuse(field, f"{field}: {reason}")
    if not campaign.channels:
        refuse("channels", "choose at least one channel")
    variants = list(campaign.variants.select_related(*(f"{c}_template" for c in CHANNELS)))
    treatments = [v for v in variants if not v.is_control]
    if not treatments:
        refuse("variants", "add at least one variant that is not the control")
    if sum(v.weight for v in variants) <= 0:
        refuse("variants", "variant weights must add up to more than 0")
    for variant in treatments:
        missing = [c for c in campaign.channels if variant.template_for(c) is None]
        if missing:
            refuse("variants", f"variant {variant.name!r} has no template for {', '.join(missing)}")
    if problems:
        raise CampaignTransitionError(
            "the campaign cannot run yet: " + "; ".join(problems), details={"problems": problems, **fields}
        )


def _schedule_task_name(campaign: Campaign) -> str:
    return f"campaign-{campaign.pk}-send-run"


def _campaign_schedule_sync(campaign: Campaign) -> None:
    """Keep the campaign's beat entry in step with it: one PeriodicTask per scheduled campaign, on a
    ClockedSchedule (one-off) or a CrontabSchedule (recurring), enabled only while the campaign is active.
    Runs in the caller's transaction, so beat never sees a schedule the campaign did not commit."""
    name = _schedule_task_name(campaign)
    if campaign.kind != Campaign.Kind.SCHEDULED or (not campaign.cron and campaign.send_at is None):
        PeriodicTask.objects.filter(name=name).update(enabled=False)
        return
    clocked: ClockedSchedule | None = None
    cron_schedule: CrontabSchedule | None = None
    if campaign.cron:
        cron = cron_parse(campaign.cron)
        cron_schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=cron.minute,
            hour=cron.hour,
            day_of_month=cron.day_of_month,
            month_of_year=cron.month_of_year,
            day_of_week=cron.day_of_week,
            timezone=campaign.schedule_timezone,
        )
    else:
        assert campaign.send_at is not None
        clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=campaign.send_at)
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": RUN_START_TASK,
            "kwargs": json.dumps({"campaign_id": campaign.pk}),
            "crontab": cron_schedule,
            "clocked": clocked,
            "interval": None,
            "solar": None,
            "one_off": clocked is not None,
            "enabled": campaign.status == Campaign.Status.ACTIVE,
            "description": f"Send runs of campaign {campaign.name!r}",
        },
    )


def _variant_snapshot(campaign: Campaign) -> dict[str, dict[str, Any]]:
    return {
        variant.name: _snapshot(variant, VARIANT_FIELDS) for variant in campaign.variants.order_by("name")
    }


def _campaign_snapshot(campaign: Campaign) -> dict[str, Any]:
    return {**_snapshot(campaign, (*CAMPAIGN_FIELDS, "status")), "variants": _variant_snapshot(campaign)}


def _variants_save(campaign: Campaign, variants: Sequence[Mapping[str, Any]]) -> None:
    """Replace the campaign's variants by name: update those named, create new ones, delete the rest."""
    existing = {variant.name: variant for variant in campaign.variants.all()}
    wanted = {str(item["name"]).strip() for item in variants}
    stale = [variant for name, variant in existing.items() if name not in wanted]
    try:
        for variant in stale:
            variant.delete()
    except ProtectedError:
        raise ConflictError(
            "a variant that already has interventions cannot be removed; set its weight to 0 instead"
        ) from None
    # The old control stops being one before a new one is saved: "one control" holds at each statement.
    campaign.variants.filter(is_control=True).exclude(
        name__in=[str(v["name"]).strip() for v in variants if v.get("is_control")]
    ).update(is_control=False)
    for item in variants:
        name = str(item["name"]).strip()
        variant = existing.get(name) or Variant(campaign=campaign, name=name)
        variant.weight = item.get("weight", variant.weight if variant.pk else 1)
        variant.is_control = bool(item.get("is_control", False))
        for channel in CHANNELS:
            for key in (f"{channel}_template", f"{channel}_template_id"):
                if key in item:
                    setattr(variant, f"{channel}_template", _resolve_template(item[key], channel=channel))
        variant.save()


@transaction.atomic
def campaign_create(
    *,
    data: Mapping[str, Any],
    variants: Sequence[Mapping[str, Any]],
    actor_label: str,
    actor: Actor = None,
) -> Campaign:
    """Create a draft campaign with its variants; ``data["status"] == "active"`` then activates it."""
    status = data.get("status", Campaign.Status.DRAFT)
    if status not in (Campaign.Status.DRAFT, Campaign.Status.ACTIVE):
        raise ApplicationError("a new campaign is draft or active", details={"status": ["draft or active"]})
    campaign = Campaign(status=Campaign.Status.DRAFT)
    if actor is not None and actor.pk is not None:
        campaign.created_by_id = actor.pk
    _campaign_apply(campaign, data)
    _campaign_check(campaign)
    _variants_check(variants)
    row_save_named(campaign, what="campaign")
    _variants_save(campaign, variants)
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="campaign.created",
        obj=campaign,
        changes=audit_diff({}, _campaign_snapshot(campaign)),
    )
    _notify_changed([campaign.pk])
    if status == Campaign.Status.ACTIVE:
        campaign = campaign_transition(
            campaign=campaign, to_status=Campaign.Status.ACTIVE, actor_label=actor_label, actor=actor
        )
    return campaign


@transaction.atomic
def campaign_update(
    *,
    campaign: Campaign,
    data: Mapping[str, Any],
    variants: Sequence[Mapping[str, Any]] | None = None,
    actor_label: str,
    actor: Actor = None,
) -> Campaign:
    """Change the fields ``data`` names; when ``variants`` is given it replaces the variants by name.

    A ``status`` in ``data`` is applied last through ``campaign_transition``. Completed and archived
    campaigns are read-only; an active campaign must stay runnable after the edit."""
    campaign = row_lock(Campaign, campaign.pk)
    if campaign.status in READ_ONLY_STATUSES:
        raise ConflictError(f"a {campaign.status} campaign cannot be edited; duplicate it instead")
    before = _campaign_snapshot(campaign)
    _campaign_apply(campaign, data)
    _campaign_check(campaign)
    untriggered = campaign.kind == Campaign.Kind.TRIGGERED and not str(campaign.trigger or "").strip()
    if untriggered and campaign.status != Campaign.Status.DRAFT:
        raise ConflictError(f"a {campaign.status} triggered campaign needs a trigger")
    if variants is not None:
        _variants_check(variants)
    row_save_named(campaign, what="campaign")
    if variants is not None:
        _variants_save(campaign, variants)
    if campaign.status == Campaign.Status.ACTIVE:
        _campaign_check_runnable(campaign)
    _campaign_schedule_sync(campaign)
    changes = audit_diff(before, _campaign_snapshot(campaign))
    if changes:
        audit_record(
            actor=actor, actor_label=actor_label, action="campaign.updated", obj=campaign, changes=changes
        )
    _notify_changed([campaign.pk])
    to_status = data.get("status")
    if to_status and to_status != campaign.status:
        campaign = campaign_transition(
            campaign=campaign, to_status=to_status, actor_label=actor_label, actor=actor
        )
    return campaign


@transaction.atomic
def campaign_transition(
    *, campaign: Campaign, to_status: str, actor_label: str, actor: Actor = None
) -> Campaign:
    """Move a campaign to ``to_status`` if ALLOWED_TRANSITIONS permits it (activation also requires a
    runnable campaign); raises CampaignTransitionError with the reason otherwise."""
    campaign = row_lock(Campaign, campaign.pk)
    from_status = campaign.status
    if to_status not in Campaign.Status.values:
        raise CampaignTransitionError(f"unknown status {to_status!r}")
    if to_status not in ALLOWED_TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[from_status])) or "nothing (archived is final)"
        raise CampaignTransitionError(
            f"a {from_status} campaign cannot become {to_status}; it can become: {allowed}",
            details={"from": from_status, "to": to_status},
        )
    if to_status == Campaign.Status.ACTIVE:
        _campaign_check(campaign)
        _campaign_check_runnable(campaign)
    campaign.status = to_status
    campaign.save(update_fields=["status", "updated_at"])
    _campaign_schedule_sync(campaign)
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action=f"campaign.{to_status}",
        obj=campaign,
        changes={"status": [from_status, to_status]},
    )
    _notify_changed([campaign.pk])
    return campaign


def campaign_activate(*, campaign: Campaign, actor_label: str, actor: Actor = None) -> Campaign:
    return campaign_transition(campaign=campaign, to_status="active", actor_label=actor_label, actor=actor)


def campaign_pause(*, campaign: Campaign, actor_label: str, actor: Actor = None) -> Campaign:
    return campaign_transition(campaign=campaign, to_status="paused", actor_label=actor_label, actor=actor)


def campaign_complete(*, campaign: Campaign, actor_label: str, actor: Actor = None) -> Campaign:
    return campaign_transition(campaign=campaign, to_status="completed", actor_label=actor_label, actor=actor)


def campaign_archive(*, campaign: Campaign, actor_label: str, actor: Actor = None) -> Campaign:
    return campaign_transition(campaign=campaign, to_status="archived", actor_label=actor_label, actor=actor)


@transaction.atomic
def campaign_duplicate(*, campaign: Campaign, actor_label: str, actor: Actor = None) -> Campaign:
    """A draft copy named "<name> (copy)" (then "(copy 2)"…), with the same variants and templates."""
    source = row_lock(Campaign, campaign.pk)
    base = f"{source.name} (copy)"
    name, number = base, 1
    while Campaign.objects.filter(name=name).exists():
        number += 1
        name = f"{source.name} (copy {number})"
    data = _snapshot(source, CAMPAIGN_FIELDS)
    data["segment"] = source.segment_id
    data["name"] = name
    data["holdout_percent"] = source.holdout_percent
    for key in ("send_at", "starts_at", "ends_at", "send_local_time"):
        data[key] = getattr(source, key)
    variants = [
        {
            "name": variant.name,
            "weight": variant.weight,
            "is_control": variant.is_control,
            **{f"{c}_template_id": getattr(variant, f"{c}_template_id") for c in CHANNELS},
        }
        for variant in source.variants.order_by("id")
    ]
    copy = campaign_create(data=data, variants=variants, actor_label=actor_label, actor=actor)
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="campaign.duplicated",
        obj=copy,
        changes={"duplicated_from": [None, source.pk]},
    )
    return copy


# --- The built-in direct-send campaign ----------------------------------------------------------------

DIRECT_CAMPAIGN_NAME = "Direct API sends"
DIRECT_TRIGGER = "api.direct"
DIRECT_VARIANT_NAME = "Direct send"


def campaign_direct_get_or_create() -> tuple[Campaign, Variant]:
    """The built-in campaign direct sends (``POST /interventions`` with a template) are recorded under, and
    its one variant, created on first use.

    Not through ``campaign_create``: that service validates what a marketer authors (a real trigger,
    variants with templates), and this campaign is neither — its variant has no template (each call names
    its own), and its trigger ``api.direct`` is never an event a consumer sees, so the decision path never
    matches it. The variant exists because reports count exposures per variant: direct sends show up there
    as "Direct send".
    """
    campaign, _ = Campaign.objects.get_or_create(
        name=DIRECT_CAMPAIGN_NAME,
        defaults={
            "description": "Built in: one template on one channel sent through POST /api/v1/interventions. "
            "Consent and quiet hours apply; no conditions, caps or holdout.",
            "kind": Campaign.Kind.TRIGGERED,
            "status": Campaign.Status.ACTIVE,
            "trigger": DIRECT_TRIGGER,
            "channels": ["onsite", "email", "sms", "push"],
            "channel_strategy": Campaign.ChannelStrategy.FIXED,
            "exit_events": [],
        },
    )
    variant, _ = Variant.objects.get_or_create(campaign=campaign, name=DIRECT_VARIANT_NAME)
    return campaign, variant


# --- Shoppers' contact points: audited here, on personalization's signals ------------------------------


def profile_contact_change_audit(
    *, profile: Model, changes: dict[str, Any], actor_label: str, **kwargs: Any
) -> None:
    """Receiver of ``personalization.signals.contact_changed``: one audit entry, in the change's
    transaction (the old and new address or number: the audit must say what changed)."""
    audit_record(actor=None, actor_label=actor_label, action="contact_changed", obj=profile, changes=changes)


def profile_audit_erase(*, profile: Model, **kwargs: Any) -> None:
    """Receiver of ``personalization.signals.profile_erasing``: audit entries about the shopper hold
    their contact points, so they go with the rest (docs/privacy.md)."""
    AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(profile), object_id=str(profile.pk)
    ).delete()
