"""Writes on shoppers' profiles and segments."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from django.db import connection, models, transaction
from django.utils import timezone

from api.idempotency import idempotency_records_erase
from core.bulk import rows_json
from core.errors import ApplicationError, ConflictError, NotFoundError
from core.persistence import row_lock, row_save_named
from personalization.models import Profile, PushToken, Segment
from personalization.selectors import ERASED_PREFIX, shopper_erased_id
from personalization.signals import consent_withdrawn, contact_changed, profile_erasing, profile_exporting

# --- Batched writes for the Kafka decision path and tracking ingest (appended by the decision path) ---


@dataclass
class ProfileChange:
    """What one event says about a shopper; several changes for one user are applied in order."""

    user_id: str
    seen_at: datetime | None  # None: the change is no sighting of the shopper (a scheduled send)
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
    # An erased shopper's row is keyed by its tombstone: looked up under both keys, never created again.
    erased_ids = {shopper_erased_id(user_id=user_id): user_id for user_id in wanted}
    keys = sorted([*wanted, *erased_ids])
    with connection.cursor() as lock, connection.cursor() as other:
        assert connection.connection is not None
        with connection.wrap_database_errors, connection.connection.pipeline():
            if wanted:
                lock.execute(
                    _profile_lock_sql(), [wanted, list(erased_ids), rows_json(_profile_defaults()), keys]
                )
            if query is not None:
                other.execute(*query)
            locked = lock.fetchall() if wanted else []
            rows = [tuple(row) for row in other.fetchall()] if query is not None else []
    profiles = _profiles_by_user_id(_profiles_from_rows(locked), erased_ids)
    raced = [user_id for user_id in wanted if user_id not in profiles]
    if raced:
        raced_erased = {k: u for k, u in erased_ids.items() if u in set(raced)}
        profiles.update(_profiles_by_user_id(_profiles_locked([*raced, *raced_erased]), raced_erased))
    return profiles, rows


def _profiles_by_user_id(profiles: Iterable[Profile], erased_ids: Mapping[str, str]) -> dict[str, Profile]:
    """Profiles by the user id asked for: an erased one (keyed by its tombstone) under the clear id."""
    return {erased_ids.get(p.user_id, p.user_id): p for p in profiles}


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
    """Parameters: the user ids (sorted), their tombstones (same order), the defaults of a new profile
    (JSON), the user ids and tombstones (sorted, the lock order)."""
    table = Profile._meta.db_table
    columns = _profile_select()[3]
    listed = ", ".join(f'"{c}"' for c in columns)
    inserted = [c for c in columns if c != "id"]
    targets = ", ".join(f'"{c}"' for c in inserted)
    values = ", ".join("k.user_id" if c == "user_id" else f'r."{c}"' for c in inserted)
    return (
        "WITH created AS ("  # noqa: S608  (identifiers from the model, values bound)
        f'INSERT INTO "{table}" ({targets}) SELECT {values} '
        "FROM unnest(%s::text[], %s::text[]) AS k(user_id, erased_id) "
        f'CROSS JOIN jsonb_populate_record(NULL::"{table}", %s::jsonb) AS r '
        f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" AS p WHERE p.user_id IN (k.user_id, k.erased_id)) '
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
    the profiles changed. Devices in ``user.push_tokens`` are registered (one more statement, only when
    a change carries some). ``write=False`` leaves the write (``PROFILE_CHANGE_FIELDS``) to the caller,
    which folds it into a later one of the same transaction (the decision path: one UPDATE per batch)."""
    touched: dict[str, Profile] = {}
    devices: list[tuple[Profile, Mapping[str, Any]]] = []
    now = timezone.now()
    for change in changes:
        profile = profiles[change.user_id]
        if profile.erased_at is not None:
            continue  # an erased shopper's events change nothing (a new consent starts a new profile)
        touched[change.user_id] = profile
        profile.updated_at = now
        # An older event (a replay, a late partition) must not overwrite what a newer one said.
        fresh = change.seen_at is not None and (
            profile.last_seen_at is None or change.seen_at >= profile.last_seen_at
        )
        if fresh:
            profile.last_seen_at = change.seen_at
        if fresh and change.user:
            for field, max_length in _CONTACT_FIELDS.items():
                value = change.user.get(field)
                if isinstance(value, str) and value:
                    setattr(profile, field, value[:max_length])
            attributes = change.user.get("attributes")
            if isinstance(attributes, dict) and attributes:
                profile.attributes = {**profile.attributes, **attributes}
            devices.extend((profile, item) for item in change.user.get("push_tokens") or ())
        if fresh and change.cart is not None:
            profile.last_cart = dict(change.cart)
        if change.order_revenue is not None:
            profile.orders_count += 1
            profile.total_revenue = (profile.total_revenue or Decimal(0)) + change.order_revenue
            profile.last_order_at = change.order_at or change.seen_at
    if touched and write:
        profiles_write(profiles=list(touched.values()), fields=PROFILE_CHANGE_FIELDS)
    # Devices are another table: written now whatever ``write`` says (events rarely carry them).
    push_tokens_register_many(registrations=devices)
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
    counted = [user_id for user_id in increments if profiles[user_id].erased_at is None]
    for user_id in counted:
        channels = increments[user_id]
        profile = profiles[user_id]
        profile.updated_at = now
        engagement = dict(profile.engagement or {})
        for channel, counters in channels.items():
            current = dict(engagement.get(channel) or {})
            for name, count in counters.items():
                current[name] = int(current.get(name, 0)) + count
            engagement[channel] = current
        profile.engagement = engagement
    profiles_write(profiles=[profiles[u] for u in counted], fields=["engagement", "updated_at"])


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
# E.164: "+", a country code that never starts with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


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
    phone = data.get("phone")
    if phone and not E164.fullmatch(phone):
        errors["phone"] = [f"{phone!r} is not an E.164 number (a + then up to 15 digits, e.g. +33612345678)."]
    if errors:
        raise ApplicationError("The preferences are not valid.", code="invalid", details=errors)


@transaction.atomic
def profile_preferences_update(*, user_id: str, data: Mapping[str, Any], actor_label: str = "") -> Profile:
    """Change what ``data`` names and leave the rest: ``consent`` ({channel: bool}), ``quiet_hours``
    ({"start", "end"} times in the shopper's zone, or None to clear), ``timezone`` (IANA), ``locale``,
    and the contact points ``email`` and ``phone`` (E.164; "" removes them).

    Creates the profile when the shopper is not known yet, so consent can be recorded before any event;
    for an erased shopper this is the new consent: a new profile, later events processed again.
    In the same transaction, a withdrawn consent is announced (``consent_withdrawn``, source
    ``preferences``) and a changed contact point too (``contact_changed``, by ``actor_label``)."""
    _validate_preferences(data)
    profile = profiles_lock(user_ids=[user_id])[user_id]
    if profile.erased_at is not None:
        # A new consent after an erasure: the shopper starts again with a new profile; the erased row
        # stays for campaign results, under an id no longer derived from theirs (docs/privacy.md).
        Profile.objects.filter(pk=profile.pk).update(user_id=f"{ERASED_PREFIX}{uuid.uuid4().hex}")
        profile = profiles_lock(user_ids=[user_id])[user_id]
    withdrawn = [
        channel
        for channel, allowed in (data.get("consent") or {}).items()
        if not allowed and profile.has_consent(channel)
    ]
    for channel, allowed in (data.get("consent") or {}).items():
        setattr(profile, f"consent_{channel}", bool(allowed))
    contact_changes: dict[str, list[str]] = {}
    for field in ("email", "phone"):
        if field in data and (data[field] or "") != getattr(profile, field):
            contact_changes[field] = [getattr(profile, field), data[field] or ""]
            setattr(profile, field, data[field] or "")
    # A new address or number is a new contact point: a suppression recorded for the old one no longer holds.
    if "email" in contact_changes:
        profile.email_suppressed_at = None
    if "phone" in contact_changes:
        profile.phone_suppressed_at = None
    if "quiet_hours" in data:
        window = data["quiet_hours"]
        profile.quiet_hours_start = window["start"] if window else None
        profile.quiet_hours_end = window["end"] if window else None
    if "timezone" in data:
        profile.timezone = data["timezone"] or ""
    if "locale" in data:
        profile.locale = data["locale"] or ""
    profile.save()
    for channel in withdrawn:
        consent_withdrawn.send(sender=Profile, profile=profile, channel=channel, source="preferences")
    if contact_changes:
        contact_changed.send(
            sender=Profile, profile=profile, changes=contact_changes, actor_label=actor_label
        )
    return profile


@transaction.atomic
def profile_consent_withdraw(*, user_id: str, channel: str, source: str) -> Profile:
    """A shopper's opt-out of one channel, reported by a client (``source``: e.g. ``push_client``).

    Withdrawing twice is harmless: ``consent_withdrawn`` is sent only when the consent was on."""
    if channel not in _CONSENT_CHANNELS:
        raise ApplicationError(
            f"Unknown channel {channel!r}.", code="invalid", details={"channel": ["Unknown."]}
        )
    profile = Profile.objects.select_for_update().filter(user_id=user_id, erased_at__isnull=True).first()
    if profile is None:
        raise NotFoundError(f"No shopper with user_id {user_id!r}.")
    _consent_set(profile=profile, channel=channel, allowed=False, source=source)
    return profile


@transaction.atomic
def profiles_sms_consent_set(*, phone: str, allowed: bool, source: str) -> list[Profile]:
    """An SMS keyword from ``phone`` (STOP, START…): SMS consent of every shopper with that number.

    A number may be shared (a family phone); the carrier's opt-out is per number, so ours is too."""
    profiles = list(
        Profile.objects.select_for_update().filter(phone=phone, erased_at__isnull=True).order_by("pk")
    )
    for profile in profiles:
        _consent_set(profile=profile, channel="sms", allowed=allowed, source=source)
    return profiles


def _consent_set(*, profile: Profile, channel: str, allowed: bool, source: str) -> None:
    if profile.has_consent(channel) == allowed:
        return
    setattr(profile, f"consent_{channel}", allowed)
    profile.save(update_fields=[f"consent_{channel}", "updated_at"])
    if not allowed:
        consent_withdrawn.send(sender=Profile, profile=profile, channel=channel, source=source)


@transaction.atomic
def profile_erase(*, user_id: str) -> Profile:
    """Erase everything held about a shopper (GDPR art. 17); erasing twice is harmless.

    The row stays, for campaign results, but keyed by the shopper's tombstone (``shopper_erased_id``)
    instead of ``user_id``; contact points, attributes, cart, engagement and push tokens go, every
    consent is withdrawn, and ``erased_at`` makes the decision path ignore the shopper's later events
    until a new consent (``profile_preferences_update``). In this transaction, the stored API answers
    that name the shopper go (``api.idempotency``), and the apps above, connected to
    ``personalization.signals.profile_erasing``, erase or re-key their own rows (docs/privacy.md).
    """
    erased_id = shopper_erased_id(user_id=user_id)
    rows = list(Profile.objects.select_for_update().filter(user_id__in=[user_id, erased_id]))
    if not rows:
        raise NotFoundError(f"No shopper with user_id {user_id!r}.")
    profile = next((p for p in rows if p.user_id == user_id), rows[0])
    identifiers = [user_id, profile.email, profile.phone]
    profile.user_id = erased_id
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
    idempotency_records_erase(identifiers=[i for i in identifiers if i])
    profile_erasing.send(sender=Profile, profile=profile, user_id=user_id)
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


# --- Devices: push tokens registered by apps (the users API) and by the event stream ------------------

PUSH_PLATFORMS = tuple(PushToken.Platform.values)


@transaction.atomic
def push_token_register(
    *, user_id: str, platform: str, token: str, app_id: str = "", keys: Mapping[str, str] | None = None
) -> PushToken:
    """Register (or refresh) a device of a shopper; returns the token, active.

    Registering again is harmless and revives a token retired earlier (the app got it back from FCM, so
    it works again). A device registered for another shopper is theirs no longer (a shared device, a new
    login): it leaves the other profile, so one person's pushes never reach the next one's phone.
    Creates an unknown shopper, like preferences; an erased shopper is refused until a new consent."""
    profile = profiles_lock(user_ids=[user_id])[user_id]
    if profile.erased_at is not None:
        raise ConflictError(
            f"Shopper {user_id!r} was erased; record a new consent (PUT preferences) first.", code="erased"
        )
    PushToken.objects.filter(token=token).exclude(profile=profile).delete()
    push_token, _created = PushToken.objects.update_or_create(
        profile=profile,
        token=token,
        defaults={
            "platform": platform,
            "app_id": app_id,
            "keys": dict(keys or {}),
            "is_active": True,
            "invalidated_at": None,
        },
    )
    return push_token


@transaction.atomic
def push_token_unregister(*, user_id: str, token: str) -> None:
    """The app signed the device out: the token is forgotten (not kept retired: nothing to report on)."""
    deleted, _ = PushToken.objects.filter(profile__user_id=user_id, token=token).delete()
    if not deleted:
        raise NotFoundError(f"Shopper {user_id!r} has no push token {token[:40]!r}.")


def push_tokens_register_many(*, registrations: Sequence[tuple[Profile, Mapping[str, Any]]]) -> None:
    """Tokens carried by events' ``user.push_tokens`` (validated by the event parser), in ONE statement.

    Insert or revive each (profile, token); a token that moved to another shopper leaves the earlier
    one in the same statement. Runs in the caller's transaction, with the profiles locked."""
    rows = [
        {
            "profile_id": profile.pk,
            "token": str(item["token"]),
            "platform": str(item.get("platform") or PushToken.Platform.ANDROID),
            "app_id": str(item.get("app_id") or ""),
            "keys": dict(item.get("keys") or {}),
        }
        for profile, item in registrations
    ]
    if not rows:
        return
    table = PushToken._meta.db_table
    # The last registration of a token in the batch wins (DISTINCT ON keeps one row per token).
    sql = (
        "WITH r AS (SELECT DISTINCT ON (token) * FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) "  # noqa: S608
        "AS (profile_id bigint, token text, platform text, app_id text, keys jsonb)) "
        "WITH ORDINALITY AS x(profile_id, token, platform, app_id, keys, n) ORDER BY token, n DESC), "
        f'moved AS (DELETE FROM "{table}" AS t USING r '  # (identifiers from the model, values bound)
        "WHERE t.token = r.token AND t.profile_id <> r.profile_id) "
        f'INSERT INTO "{table}" (profile_id, token, platform, app_id, keys, is_active, created_at) '
        "SELECT profile_id, token, platform, app_id, keys, true, now() FROM r "
        "ON CONFLICT (profile_id, token) DO UPDATE SET platform = EXCLUDED.platform, "
        "app_id = EXCLUDED.app_id, keys = EXCLUDED.keys, is_active = true, invalidated_at = NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json(rows)])


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
