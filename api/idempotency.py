"""``Idempotency-Key`` on writes: a retried request gets the first answer instead of doing the work twice.

Decorate every write handler (``post``/``put``/``patch``/``delete`` of an APIView, or ``create``/``update``/
``partial_update``/``destroy``/``@action`` methods of a ViewSet) with ``@idempotent``; put ``@action`` or
``@extend_schema`` outside it. For one API key and one key value:

- first request: its answer (2xx or 4xx) is stored and returned;
- same key, same method, path and body: the stored answer is replayed with ``Idempotent-Replayed: true``;
- same key, different request: 422 ``idempotency_key_reused``;
- same key while the first is still running: 409 ``idempotency_request_in_progress``.

A 5xx or an unexpected exception releases the key, so the client may retry. Records live 24 hours.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from django.db import IntegrityError, transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from api.models import ApiKey, IdempotencyRecord
from core.errors import ApplicationError, ConflictError

if TYPE_CHECKING:
    # rest_framework.views imports the permission and throttle classes named in settings.
    from rest_framework.views import APIView

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
# Visible ASCII without spaces: what a header carries unchanged, so the key stored is the key sent.
KEY_PATTERN = rf"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"
RECORD_TTL = timedelta(hours=24)
# A record still without an answer after this long belongs to a process that died mid-request.
IN_FLIGHT_TIMEOUT = timedelta(minutes=5)

Handler = TypeVar("Handler", bound=Callable[..., Response])


def request_fingerprint(request: Request) -> str:
    """SHA-256 of method, path with query and the body; JSON bodies are canonicalised (key order,
    whitespace) so a client that re-serialises the same object still matches."""
    raw = request.body
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        body = raw
    digest = hashlib.sha256()
    for part in (str(request.method).encode(), request.get_full_path().encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def idempotency_claim(
    *, api_key: ApiKey, key: str, method: str, path: str, request_hash: str
) -> IdempotencyRecord:
    """Claim ``key`` for this request. Returns a record without ``status_code`` when this request now owns
    it, or the finished record whose answer is to be replayed; raises 422 (same key, other request) or
    409 (the first request is still running)."""
    now = timezone.now()
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    api_key=api_key, key=key, method=method, path=path[:500], request_hash=request_hash
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is None:
            continue  # released or purged meanwhile: try to claim again
        if existing.created_at < now - RECORD_TTL:
            IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.request_hash != request_hash:
            raise ApplicationError(
                "This Idempotency-Key was already used for a different request.",
                code="idempotency_key_reused",
                status_code=422,
                details={"idempotency_key": key},
            )
        if existing.status_code is None:
            stale = existing.created_at < now - IN_FLIGHT_TIMEOUT
            if stale and IdempotencyRecord.objects.filter(
                pk=existing.pk, status_code__isnull=True, created_at=existing.created_at
            ).update(created_at=now):
                existing.created_at = now
                return existing
            raise ConflictError(
                "A request with this Idempotency-Key is still being processed; retry later.",
                code="idempotency_request_in_progress",
                details={"idempotency_key": key},
            )
        return existing
    raise ConflictError("Could not claim the Idempotency-Key; retry.", code="idempotency_request_in_progress")


def idempotency_records_purge(*, older_than: timedelta = RECORD_TTL) -> int:
    """Delete expired records; returns how many. Safe to run at any time (expired keys are reusable)."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted


def idempotency_records_erase(*, identifiers: Sequence[str]) -> int:
    """Delete the stored answers that name a shopper (an erasure): a request under their
    ``/users/{user_id}`` path, or an answer holding one of ``identifiers`` as a JSON string (the user id,
    an address, a number; an intervention's answer carries its ``user_id`` beside its rendered content).
    Returns how many. Their keys then act as new: a retry does the work again, which every write allows.

    The erase request's own record is among them, so no answer of it is stored either."""
    match = Q()
    for identifier in identifiers:
        match |= Q(response_body_text__contains=json.dumps(identifier, ensure_ascii=False))
        for form in {identifier, quote(identifier, safe="")}:
            segment = f"/users/{form}"
            match |= (
                Q(path__endswith=segment) | Q(path__contains=f"{segment}/") | Q(path__contains=f"{segment}?")
            )
    if not identifiers:
        return 0
    deleted, _ = (
        IdempotencyRecord.objects.annotate(response_body_text=Cast("response_body", TextField()))
        .filter(match)
        .delete()
    )
    return deleted


def _store(record: IdempotencyRecord, response: Response) -> None:
    body = json.loads(json.dumps(response.data, cls=JSONEncoder)) if response.data is not None else None
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status_code=response.status_code, response_body=body
    )


def _release(record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, status_code__isnull=True).delete()


def idempotent(handler: Handler) -> Handler:
    """Make a DRF write handler honour ``Idempotency-Key`` (see the module docstring)."""

    @functools.wraps(handler)
    def wrapper(view: APIView, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        api_key = request.auth
        if key is None or not isinstance(api_key, ApiKey):
            return handler(view, request, *args, **kwargs)
        if not re.fullmatch(KEY_PATTERN, key):
            raise ApplicationError(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters without spaces.",
                code="invalid_idempotency_key",
            )
        request_hash = request_fingerprint(request)
        record = idempotency_claim(
            api_key=api_key,
            key=key,
            method=str(request.method),
            path=request.get_full_path(),
            request_hash=request_hash,
        )
        if record.status_code is not None:
            headers = {REPLAYED_HEADER: "true"}
            return Response(record.response_body, status=record.status_code, headers=headers)
        try:
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:
                # The error answer is part of the request's outcome and is replayed like a success.
                response = view.handle_exception(exc)
        except BaseException:
            _release(record)
            raise
        if response.status_code >= 500:
            _release(record)
        else:
            _store(record, response)
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]  # read by api.schema to document the header
    return cast(Handler, wrapper)
