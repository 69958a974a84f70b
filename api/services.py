"""API keys: created with the secret shown once, stored as a hash, revoked in place."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from api.models import ApiKey, Scope
from core.errors import ApplicationError, ConflictError

KEY_LEAD = "ie"
# last_used_at is informative (shown in the admin), so it is written at most this often per key,
# rather than once per request on the hot /events path.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_hash(raw_key: str) -> str:
    """SHA-256 of the whole key. The secret has 256 random bits, so a plain digest is safe; no SECRET_KEY
    in the hash means rotating SECRET_KEY does not silently revoke every service's key."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_parse(raw_key: str) -> str | None:
    """The prefix of a well-formed ``ie_<prefix>_<secret>`` key, or None."""
    lead, _, rest = raw_key.partition("_")
    prefix, _, secret = rest.partition("_")
    if lead != KEY_LEAD or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix


@transaction.atomic
def api_key_create(
    *, name: str, scopes: Iterable[str], created_by: AbstractBaseUser | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw key, which is never stored and cannot be shown again.

    Scopes are always named (at least one): a key never gets every scope by omission.
    """
    name = name.strip()
    if not name:
        raise ApplicationError("An API key needs a name.", code="invalid", details={"name": ["Required."]})
    chosen = sorted(set(scopes))
    if not chosen:
        raise ApplicationError(
            "An API key needs at least one scope.",
            code="invalid_scope",
            details={"scopes": ["Required."], "allowed": list(Scope.values)},
        )
    unknown = sorted(set(chosen) - set(Scope.values))
    if unknown:
        raise ApplicationError(
            f"Unknown scope(s): {', '.join(unknown)}.",
            code="invalid_scope",
            details={"scopes": unknown, "allowed": list(Scope.values)},
        )
    if ApiKey.objects.filter(name=name).exists():
        raise ConflictError(f"An API key named {name!r} already exists.", code="api_key_name_taken")
    prefix = secrets.token_hex(4)
    raw_key = f"{KEY_LEAD}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        hashed_key=api_key_hash(raw_key),
        scopes=chosen,
        created_by=created_by,  # type: ignore[misc]
    )
    return api_key, raw_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, or None. Looks up by prefix, compares hashes in constant time."""
    prefix = api_key_parse(raw_key)
    if prefix is None:
        return None
    api_key = ApiKey.objects.filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, api_key_hash(raw_key)):
        return None
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Record use at most once a minute; a conditional update, so racing requests write once."""
    now = timezone.now()
    if api_key.last_used_at is not None and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    stale_before = now - LAST_USED_RESOLUTION
    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before), pk=api_key.pk
    ).update(last_used_at=now)
    api_key.last_used_at = now


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Refuse the key from now on; revoking twice keeps the first revocation time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=api_key.revoked_at)
    return api_key
