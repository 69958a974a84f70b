"""Signed tracking links in messages: the open pixel, the click redirect and one-click unsubscribe.

Only a token signed by us (notifications.signed_links) does anything: a forged or damaged token gets a
404 and writes nothing, and a click redirects only to the target inside its signed token, so these
URLs cannot be used as an open redirect.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from interventions.models import Delivery
from interventions.selectors import delivery_get
from notifications.signed_links import CLICK_SALT, OPEN_SALT, UNSUBSCRIBE_SALT, token_load
from personalization.services import profile_email_unsubscribe
from tracking.services import tracking_event_record

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _load(token: str, salt: str) -> tuple[dict[str, Any], Delivery] | None:
    try:
        payload = token_load(token=token, salt=salt)
    except signing.BadSignature:
        return None
    delivery = delivery_get(delivery_id=str(payload.get("d", "")))
    return (payload, delivery) if delivery is not None else None


def _not_found() -> HttpResponse:
    return HttpResponse("Not found", status=404, content_type="text/plain")


@require_GET
@never_cache
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    loaded = _load(token, OPEN_SALT)
    if loaded is None:
        return _not_found()
    _, delivery = loaded
    # One "opened" per delivery: mail clients and proxies fetch images again and again.
    tracking_event_record(
        intervention_id=delivery.intervention_id,
        type="opened",
        source="pixel",
        event_id=f"open:{delivery.pk}",
        channel=delivery.channel,
        delivery_id=delivery.pk,
    )
    return HttpResponse(PIXEL, content_type="image/gif")


@require_GET
@never_cache
def click_redirect(request: HttpRequest, token: str) -> HttpResponseBase:
    loaded = _load(token, CLICK_SALT)
    if loaded is None:
        return _not_found()
    payload, delivery = loaded
    target = str(payload.get("u", ""))
    if not target.startswith(("https://", "http://")):
        return _not_found()
    link = hashlib.sha256(target.encode()).hexdigest()[:16]
    tracking_event_record(
        intervention_id=delivery.intervention_id,
        type="clicked",
        source="link",
        event_id=f"click:{delivery.pk}:{link}",
        channel=delivery.channel,
        delivery_id=delivery.pk,
        properties={"url": target},
    )
    return HttpResponseRedirect(target)


@csrf_exempt  # RFC 8058: mail clients POST the one-click unsubscribe with no cookie and no CSRF token.
@require_http_methods(["GET", "POST"])
@never_cache
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation page and changes nothing (link scanners follow GETs); POST opts out."""
    loaded = _load(token, UNSUBSCRIBE_SALT)
    if loaded is None:
        return _not_found()
    payload, delivery = loaded
    if request.method == "GET":
        return render(request, "notifications/unsubscribe.html", {"done": False})
    profile_email_unsubscribe(profile_id=int(payload["p"]))
    tracking_event_record(
        intervention_id=delivery.intervention_id,
        type="unsubscribed",
        source="link",
        event_id=f"unsubscribe:{delivery.pk}",
        channel=str(payload.get("c") or delivery.channel),
        delivery_id=delivery.pk,
    )
    return render(request, "notifications/unsubscribe.html", {"done": True})
