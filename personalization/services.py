"""Writes on shoppers' profiles and segments."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from django.db import connection, models, transaction
from django.utils import timezone

from core.bulk import rows_json
from core.errors import ApplicationError, NotFoundError
from core.persistence import row_lock, row_save_named
from personalization.models import Profile, PushToken, Segment
from personalization.signals import profile_erasing, profile_exporting

# --- Batched writes for the Kafka decision path and tracking ingest (appended by the decision path) ---


@dataclass
class ProfileChange:
    """What one event says about a shopper; several changes for one user are applied in order."""

    user_id: str
    seen_at: datetime
    user: Mapping[str, Any] | None = None
    cart: Mapping[str, Any] | None = None
    order_revenue: Decimal | None = None
    order_at: datetime | None = None


_CONTACT_FIELDS = {"email": 254, "phone": 32, "first_name": 120, "locale": 16, "timezone": 64}


def profiles_lock(*, user_ids: Iterable[str]) -> dict[str, Profile]:
    """Lock (creating the missing ones) the profiles of ``user_ids``, in a stable order so two batches
    touching the same shoppers never deadlock. Must run inside a transaction."""
    return profiles_lock_reading(user_ids=user_ids)[0]


def profiles_lock_reading(
    *, user_ids: Iterable[str], query: tuple[str, Sequence[Any]] | None = None
) -> tuple[dict[str, Profile], list[tuple[Any, ...]]]:
    """:func:`profiles_lock`, with another read ``query`` (sql, params) sent in the same round trip
    (a psycopg pipeline); returns the profiles and the query's rows.

    One statement locks the known profiles and creates the missing ones: the rows this transaction
    inserts are its own until it commits, so ``RETURNING`` gives them locked. A profile another writer
    created after the statement's snapshot is in neither half; it is locked and read by a second one."""
    wanted = sorted(set(user_ids))
    if not wanted and query is None:
        return {}, []
    with connection.cursor() as lock, connection.cursor() as other:
        assert connection.connection is not None
        with connection.wrap_database_errors, connection.connection.pipeline():
            if wanted:
                lock.execute(_profile_lock_sql(), [wanted, rows_json(_profile_defaults()), wanted])
            if query is not None:
                other.execute(*query)
            locked = lock.fetchall() if wanted else []
            rows = [tuple(row) for row in other.fetchall()] if query is not None else []
    profiles = {p.user_id: p for p in _profiles_from_rows(locked)}
    raced = [user_id for user_id in wanted if user_id not in profiles]
    if raced:
        for profile in _profiles_locked(raced):
            profiles[profile.user_id] = profile
    return profiles, rows


def _profile_defaults() -> dict[str, Any]:
    """A new profile's columns (all but the id and ``user_id``), as the model's defaults give them."""
    now = timezone.now()
    profile = Profile(user_id="", created_at=now, updated_at=now)
    return {
        str(f.column): getattr(profile, f.attname)
        for f in Profile._meta.concrete_fields
        if not f.primary_key and f.name != "user_id"
    }


@functools.cache
def _profile_lock_sql() -> str:
    """Parameters: the user ids (sorted), the defaults of a new profile (JSON), the user ids again."""
    table = Profile._meta.db_table
    columns = _profile_select()[3]
    listed = ", ".join(f'"{c}"' for c in columns)
    inserted = [c for c in columns if c != "id"]
    targets = ", ".join(f'"{c}"' for c in inserted)
    values = ", ".join("k.user_id" if c == "user_id" else f'r."{c}"' for c in inserted)
    return (
        "WITH created AS ("  # noqa: S608  (identifiers from the model, values bound)
        f'INSERT INTO "{table}" ({targets}) SELECT {values} '
        "FROM unnest(%s::text[]) AS k(user_id) "
        f'CROSS JOIN jsonb_populate_record(NULL::"{table}", %s::jsonb) AS r '
        f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" AS p WHERE p.user_id = k.user_id) '
        f"ON CONFLICT DO NOTHING RETURNING {listed}), "
        f'known AS (SELECT {listed} FROM "{table}" WHERE user_id = ANY(%s) ORDER BY user_id FOR UPDATE) '
        "SELECT * FROM known UNION ALL SELECT * FROM created"
    )


def _profiles_locked(user_ids: Sequence[str]) -> list[Profile]:
    """``SELECT … FOR UPDATE`` of the profiles, as model instances, through a plain cursor.

    A RawQuerySet resolved the model's columns and converters again on every call: on the consumer's
    small batches (a few events each at 500 events/s) that was a third of the whole lock's CPU. The ids
    travel as one array parameter (``= ANY``: planned as index probes in 0.05 ms, where ``IN (SELECT
    jsonb_array_elements_text(…))`` took 0.6 ms to plan on every batch)."""
    sql = _profile_select()[0]
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(user_ids)])
        return _profiles_from_rows(cursor.fetchall())


def _profiles_from_rows(rows: Iterable[Sequence[Any]]) -> list[Profile]:
    """Model instances from rows of ``_profile_select``'s columns."""
    _sql, attnames, json_positions, _columns = _profile_select()
    profiles = []
    for row in rows:
        values = list(row)
        for position in json_positions:
            values[position] = _json_column(values[position])
        profiles.append(Profile.from_db(connection.alias, attnames, values))
    return profiles


@functools.cache
def _profile_select() -> tuple[str, list[str], list[int], list[str]]:
    """The locking SELECT, the model's attribute names in its column order, the positions of the JSON
    columns, and the column names (for ``RETURNING`` the same row shape)."""
    fields = list(Profile._meta.concrete_fields)
    columns = ", ".join(f'"{f.column}"' for f in fields)
    sql = (
        f'SELECT {columns} FROM "{Profile._meta.db_table}" '  # noqa: S608  (identifiers from the model)
        "WHERE user_id = ANY(%s) ORDER BY user_id FOR UPDATE"
    )
    json_positions = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    return sql, [f.attname for f in fields], json_positions, [str(f.column) for f in fields]


def _json_column(value: Any) -> Any:
    """A jsonb column as JSONField.from_db_value gives it (the driver hands Django jsonb as text)."""
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # a number beyond 64 bits, which jsonb allows
        return json.loads(value)


PROFILE_CHANGE_FIELDS = (
    "last_seen_at",
    *_CONTACT_FIELDS,
    "attributes",
    "last_cart",
    "orders_count",
    "total_revenue",
    "last_order_at",
    "updated_at",
)


def profile_changes_apply(
    *, profiles: Mapping[str, Profile], changes: Sequence[ProfileChange], write: bool = True
) -> list[Profile]:
    """Apply event-borne changes to locked profiles and write them back with one bulk update; returns
    the profiles changed. ``write=False`` leaves the write (``PROFILE_CHANGE_FIELDS``) to the caller,
    which folds it into a later one of the same transaction (the decision path: one UPDATE per batch)."""
    touched: dict[str, Profile] = {}
    now = timezone.now()
    for change in changes:
        profile = profiles[change.user_id]
        touched[change.user_id] = profile
        profile.updated_at = now
        # An older event (a replay, a late partition) must not overwrite what a newer one said.
        fresh = profile.last_seen_at is None or change.seen_at >= profile.last_seen_at
        if fresh:
            profile.last_seen_at = change.seen_at
        if fresh and change.user and profile.erased_at is None:
            for field, max_length in _CONTACT_FIELDS.items():
                value = change.user.get(field)
                if isinstance(value, str) and value:
                    setattr(profile, field, value[:max_length])
            attributes = change.user.get("attributes")
            if isinstance(attributes, dict) and attributes:
                profile.attributes = {**profile.attributes, **attributes}
        if fresh and change.cart is not None:
            profile.last_cart = dict(change.cart)
        if change.order_revenue is not None:
            profile.orders_count += 1
            profile.total_revenue = (profile.total_revenue or Decimal(0)) + change.order_revenue
            profile.last_order_at = change.order_at or change.seen_at
    if touched and write:
        profiles_write(profiles=list(touched.values()), fields=PROFILE_CHANGE_FIELDS)
    return list(touched.values())


def profiles_write(*, profiles: Sequence[Profile], fields: Sequence[str]) -> None:
    """Write ``fields`` of many profiles in ONE ``UPDATE … FROM jsonb_populate_recordset(…)`` statement.

    Django's ``bulk_update`` builds a ``CASE WHEN`` per field and row, which costs seconds of Python for
    a 500-shopper batch; this is the hot path of the Kafka consumer, so the rows travel as one JSON
    parameter that PostgreSQL expands into rows of the table's own type.
    """
    if not profiles:
        return
    table = Profile._meta.db_table
    columns = [str(Profile._meta.get_field(name).column) for name in fields]  # type: ignore[union-attr]
    rows = [
        {
            "id": profile.pk,
            **{column: getattr(profile, name) for name, column in zip(fields, columns, strict=True)},
        }
        for profile in profiles
    ]
    assignments = ", ".join(f'"{column}" = v."{column}"' for column in columns)
    sql = (
        f'UPDATE "{table}" AS p SET {assignments} '  # noqa: S608  (identifiers from the model, values bound)
        f'FROM jsonb_populate_recordset(NULL::"{table}", %s::jsonb) AS v WHERE p.id = v.id'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json(rows)])


@transaction.atomic
def profile_upsert_many(*, changes: Sequence[ProfileChange]) -> dict[str, Profile]:
    """Create or update the profiles that ``changes`` describe; returns them (locked) by user id."""
    profiles = profiles_lock(user_ids=[change.user_id for change in changes])
    profile_changes_apply(profiles=profiles, changes=changes)
    return profiles


@transaction.atomic
def profile_engagement_record_many(*, increments: Mapping[str, Mapping[str, Mapping[str, int]]]) -> None:
    """Add to the per-channel engagement counters: ``{user_id: {channel: {"clicked": 1}}}``.

    The counters feed the optimised channel choice (best expected engagement per shopper)."""
    if not increments:
        return
    profiles = profiles_lock(user_ids=increments.keys())
    now = timezone.now()
    for user_id, channels in increments.items():
        profile = profiles[user_id]
        profile.updated_at = now
        engagement = dict(profile.engagement or {})
        for channel, counters in channels.items():
            current = dict(engagement.get(channel) or {})
            for name, count in counters.items():
                current[name] = int(current.get(name, 0)) + count
            engagement[channel] = current
        profile.engagement = engagement
    profiles_write(profiles=[profiles[u] for u in increments], fields=["engagement", "updated_at"])


def profile_onsite_seq_allocate(
    *, profiles: Mapping[str, Profile], counts: Mapping[str, int], write: bool = True
) -> dict[str, int]:
    """Reserve ``counts[user_id]`` on-site sequence numbers on locked profiles; returns the first of each.

    The caller holds the row locks (``profiles_lock``) so two writers never hand out the same number;
    the new values are written with one bulk update (``write=False``: by the caller, later in the same
    transaction, with ``onsite_seq`` among the fields).
    """
    first: dict[str, int] = {}
    for user_id, count in counts.items():
        profile = profiles[user_id]
        first[user_id] = profile.onsite_seq + 1
        profile.onsite_seq += count
    if counts and write:
        profiles_write(profiles=[profiles[u] for u in counts], fields=["onsite_seq"])
    return first


# --- Shopper preferences and data rights (GDPR), used by the users API (appended by the API) ---------

_CONSENT_CHANNELS = ("onsite", "email", "sms", "push")


def _validate_preferences(data: Mapping[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    tz = data.get("timezone")
    if tz:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = [f"{tz!r} is not an IANA time zone (e.g. Europe/Paris)."]
    unknown = sorted(set(data.get("consent") or {}) - set(_CONSENT_CHANNELS))
    if unknown:
        errors["consent"] = [f"Unknown channel(s): {', '.join(unknown)}."]
    if "quiet_hours" in data and data["quiet_hours"] is not None:
        start, end = data["quiet_hours"].get("start"), data["quiet_hours"].get("end")
        if start is None or end is None or start == end:
            errors["quiet_hours"] = [
                "Quiet hours need a start and a different end (the window may wrap midnight)."
            ]
    if errors:
        raise ApplicationError("The preferences are not valid.", code="invalid", details=errors)


@transaction.atomic
def profile_preferences_update(*, user_id: str, data: Mapping[str, Any]) -> Profile:
    """Change what ``data`` names and leave the rest: ``consent`` ({channel: bool}), ``quiet_hours``
    ({"start", "end"} times in the shopper's zone, or None to clear), ``timezone`` (IANA), ``locale``.

    Creates the profile when the shopper is not known yet, so consent can be recorded before any event."""
    _validate_preferences(data)
    profile = profiles_lock(user_ids=[user_id])[user_id]
    for channel, allowed in (data.get("consent") or {}).items():
        setattr(profile, f"consent_{channel}", bool(allowed))
    if "quiet_hours" in data:
        window = data["quiet_hours"]
        profile.quiet_hours_start = window["start"] if window else None
        profile.quiet_hours_end = window["end"] if window else None
    if "timezone" in data:
        profile.timezone = data["timezone"] or ""
    if "locale" in data:
        profile.locale = data["locale"] or ""
    profile.save()
    return profile


@transaction.atomic
def profile_erase(*, user_id: str) -> Profile:
    """Erase a shopper's personal data (GDPR art. 17); erasing twice is harmless.

    The row stays, keyed by the pseudonymous ``user_id``, so interventions and conversions still count in
    campaign results; contact points, attributes, cart, engagement and push tokens go, every consent is
    withdrawn, and ``erased_at`` stops later events from writing contact data again. Apps above connect
    ``personalization.signals.profile_erasing`` to anonymise their own rows in this transaction.
    """
    profile = Profile.objects.select_for_update().filter(user_id=user_id).first()
    if profile is None:
        raise NotFoundError(f"No shopper with user_id {user_id!r}.")
    profile.email = ""
    profile.phone = ""
    profile.first_name = ""
    profile.locale = ""
    profile.timezone = ""
    profile.attributes = {}
    profile.last_cart = {}
    profile.engagement = {}
    for channel in _CONSENT_CHANNELS:
        setattr(profile, f"consent_{channel}", False)
    profile.quiet_hours_start = None
    profile.quiet_hours_end = None
    profile.erased_at = profile.erased_at or timezone.now()
    profile.save()
    PushToken.objects.filter(profile=profile).delete()
    profile_erasing.send(sender=Profile, profile=profile)
    return profile


def profile_export(*, user_id: str) -> dict[str, Any]:
    """Everything held about a shopper, as JSON-able data (GDPR art. 15/20). A read, kept beside erase
    because the two must list the same data."""
    profile = Profile.objects.filter(user_id=user_id).prefetch_related("push_tokens").first()
    if profile is None:
        raise NotFoundError(f"No shopper with user_id {user_id!r}.")
    fields = [f.name for f in Profile._meta.concrete_fields if f.name != "id"]
    export: dict[str, Any] = {
        "user_id": profile.user_id,
        "profile": {name: getattr(profile, name) for name in fields},
        "push_tokens": [
            {
                "token": t.token,
                "platform": t.platform,
                "is_active": t.is_active,
                "created_at": t.created_at,
                "invalidated_at": t.invalidated_at,
            }
            for t in profile.push_tokens.all()
        ],
    }
    for _receiver, section in profile_exporting.send(sender=Profile, profile=profile):
        if isinstance(section, Mapping):
            export.update(section)
    return export


# --- Contact points and consent withdrawn by what providers and shoppers report (used by notifications) -


def profile_email_suppress(*, profile_id: int) -> None:
    """A hard bounce: the address is dead; stop emailing it (the first suppression's time is kept)."""
    Profile.objects.filter(pk=profile_id, email_suppressed_at__isnull=True).update(
        email_suppressed_at=timezone.now()
    )


def profile_phone_suppress(*, profile_id: int) -> None:
    """The number cannot receive SMS; stop texting it (the first suppression's time is kept)."""
    Profile.objects.filter(pk=profile_id, phone_suppressed_at__isnull=True).update(
        phone_suppressed_at=timezone.now()
    )


def push_tokens_deactivate(*, profile_id: int, tokens: Iterable[str]) -> int:
    """Push tokens the provider called unregistered: no longer used; returns how many were active."""
    return PushToken.objects.filter(profile_id=profile_id, token__in=list(tokens), is_active=True).update(
        is_active=False, invalidated_at=timezone.now()
    )


@transaction.atomic
def profile_email_unsubscribe(*, profile_id: int) -> Profile:
    """Record a one-click opt-out at once (RFC 8058): no further marketing email to this shopper."""
    profile = Profile.objects.select_for_update().get(pk=profile_id)
    if profile.consent_email:
        profile.consent_email = False
        profile.save(update_fields=["consent_email", "updated_at"])
    # Queued email that has not left yet is cancelled at its send-time consent check.
    return profile


def profile_email_complaint_record(*, profile_id: int) -> None:
    """A spam complaint: never email this shopper again (consent off, address suppressed)."""
    Profile.objects.filter(pk=profile_id).update(consent_email=False, email_suppressed_at=timezone.now())


# --- Segments: written for campaigns' services, which validate the rules and keep the audit trail ---------


def segment_lock(*, segment_id: Any) -> Segment:
    """The segment, fresh and locked for the rest of the caller's transaction."""
    return row_lock(Segment, segment_id)


def segment_save(*, segment: Segment) -> Segment:
    """Write the segment; a name another segment has is a 409."""
    row_save_named(segment, what="segment")
    return segment
