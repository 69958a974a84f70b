"""Reads over templates, campaigns and the audit trail, with the joins each caller needs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, Prefetch, Q, QuerySet
from django.utils import timezone

from campaigns.models import AuditEntry, Campaign, Template, TemplateLocalization, Variant
from personalization import selectors as personalization_selectors
from personalization.models import Segment

_TEMPLATE_SLOTS = ("onsite_template", "email_template", "sms_template", "push_template")
# The table's name, for the attribution query that joins it in raw SQL (reads only).
CAMPAIGN_TABLE = Campaign._meta.db_table


def _variants_prefetch() -> Prefetch[Any]:
    by_locale = TemplateLocalization.objects.order_by("locale")
    variants = (
        Variant.objects.order_by("id")
        .select_related(*_TEMPLATE_SLOTS)
        .prefetch_related(
            *(Prefetch(f"{slot}__localizations", queryset=by_locale) for slot in _TEMPLATE_SLOTS)
        )
    )
    return Prefetch("variants", queryset=variants)


def campaigns_active_triggered() -> list[Campaign]:
    """Active, in-date triggered campaigns, highest priority first, with variants, templates and
    localizations loaded: the decision path calls this once per cache refresh, never per event."""
    now = timezone.now()
    queryset = (
        Campaign.objects.filter(status=Campaign.Status.ACTIVE, kind=Campaign.Kind.TRIGGERED)
        .filter(
            Q(starts_at__isnull=True) | Q(starts_at__lte=now), Q(ends_at__isnull=True) | Q(ends_at__gt=now)
        )
        .select_related("segment")
        .prefetch_related(_variants_prefetch())
        .order_by("-priority", "id")
    )
    return list(queryset)


def campaign_get(*, campaign_id: int) -> Campaign | None:
    return (
        Campaign.objects.select_related("segment", "created_by")
        .prefetch_related(_variants_prefetch())
        .filter(pk=campaign_id)
        .first()
    )


def campaign_list() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("segment").prefetch_related(_variants_prefetch()).order_by("-id")


def template_list() -> QuerySet[Template]:
    return Template.objects.prefetch_related(
        Prefetch("localizations", queryset=TemplateLocalization.objects.order_by("locale"))
    ).order_by("name")


def template_get(*, template_id: int) -> Template | None:
    return template_list().filter(pk=template_id).first()


def segment_list() -> QuerySet[Segment]:
    return personalization_selectors.segment_list()


def campaigns_using_template(*, template: Template) -> list[int]:
    return list(
        Variant.objects.filter(
            Q(onsite_template=template)
            | Q(email_template=template)
            | Q(sms_template=template)
            | Q(push_template=template)
        )
        .values_list("campaign_id", flat=True)
        .distinct()
    )


def campaigns_using_segment(*, segment: Segment) -> list[int]:
    return list(Campaign.objects.filter(segment=segment).values_list("id", flat=True))


def audit_entries_for(*, obj: Model) -> QuerySet[AuditEntry]:
    """The audit trail of one object, newest first."""
    return (
        AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk))
        .select_related("actor")
        .order_by("-created_at", "-id")
    )


def _bucket(salt: str, campaign_id: int | None, user_id: str) -> float:
    """A stable number in [0, 1) for (campaign, user): the same shopper always lands in the same place."""
    digest = hashlib.sha256(f"{salt}:{campaign_id}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def variant_assign(*, campaign: Campaign, variants: Sequence[Variant], user_id: str) -> Variant | None:
    """Pick a variant by weight, deterministically per (campaign, user); None when no variant has weight."""
    return variant_allocate(campaign=campaign, variants=variants, user_id=user_id)[0]


def variant_shares(
    *, variants: Sequence[Variant], learned: Mapping[int, float] | None = None
) -> list[tuple[Variant, float]]:
    """Each variant with weight and its share of the non-holdout traffic, in bucket order (by id, so the
    same set always maps the same buckets, whatever order the caller passes them in).

    ``learned`` (a bandit's shares, by variant id) replaces the weights of the treatment variants: the
    control keeps its fixed share ``weight / total weight``, and comes first so that its range never
    moves, and the learned shares divide the rest. A variant the learned shares do not name (added since
    they were computed) gets none until the next computation; without learned shares, or when they name
    no current variant, the weights decide.
    """
    weighted = sorted((v for v in variants if v.weight > 0), key=lambda v: v.pk or 0)
    total = sum(v.weight for v in weighted)
    if total <= 0:
        return []
    fixed = [(v, v.weight / total) for v in weighted]
    if not learned:
        return fixed
    treatments = [v for v in weighted if not v.is_control]
    named = sum(max(0.0, float(learned.get(v.pk, 0.0))) for v in treatments)
    if named <= 0:
        return fixed
    control = [(v, share) for v, share in fixed if v.is_control]
    rest = 1 - sum(share for _, share in control)
    return control + [(v, rest * max(0.0, float(learned.get(v.pk, 0.0))) / named) for v in treatments]


def variant_allocate(
    *,
    campaign: Campaign,
    variants: Sequence[Variant],
    user_id: str,
    learned: Mapping[int, float] | None = None,
) -> tuple[Variant | None, float]:
    """The variant of (campaign, user) under ``variant_shares`` and the probability it had; (None, 0)
    when no variant has weight.

    The shopper's place in [0, 1) is fixed per (campaign, user), so a shopper keeps their variant while
    the shares stay the same. The control's range comes first and never moves: a control shopper stays in
    the control whatever the bandit learns; a treatment shopper may move to another treatment variant
    when the learned shares move across their place.
    """
    shares = variant_shares(variants=variants, learned=learned)
    if not shares:
        return None, 0.0
    point = _bucket("variant", campaign.pk, user_id)
    running = 0.0
    for variant, share in shares:
        running += share
        if point < running and share > 0:
            return variant, share
    return next((pair for pair in reversed(shares) if pair[1] > 0), shares[-1])


def holdout_assign(*, campaign: Campaign, user_id: str) -> bool:
    """True when the shopper is in the campaign's holdout (never contacted, measured as the baseline)."""
    percent = Decimal(campaign.holdout_percent or 0)
    if percent <= 0:
        return False
    # A different salt than variant_assign, so holdout membership and variant are independent.
    return Decimal(str(_bucket("holdout", campaign.pk, user_id))) * 100 < percent
