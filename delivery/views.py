"""HTTP views of the WebSocket gateway: ``GET /ws/stats`` and the demo shop at ``/demo/``.

The demo shop is a development aid (on when ``DEMO_ENABLED``, which defaults to ``DEBUG``): it gives the
browser a ticket for a per-session demo shopper without any API key reaching the page, and its "go
idle" button publishes a ``prediction-results`` message to Kafka exactly as the ML service would, so
the whole loop runs — consumer, decision, push over ``/ws``, ack, engagement.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from confluent_kafka import Producer
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from delivery.stats import ws_stats
from delivery.tickets import ws_ticket_issue
from messaging.kafka import producer_config, topic

_DEMO_USER = "demo_user_id"
_DEMO_CART = "demo_cart_id"
DEMO_PRODUCTS: list[dict[str, Any]] = [
    {"sku": "SKU-TRAIL", "name": "Trail running shoe", "price": 99.90},
    {"sku": "SKU-JACKET", "name": "Rain jacket", "price": 149.00},
    {"sku": "SKU-SOCKS", "name": "Merino socks (3 pairs)", "price": 24.50},
]


@require_GET
@never_cache
def stats_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(ws_stats())


def _demo_enabled() -> None:
    if not settings.DEMO_ENABLED:
        raise Http404("The demo shop is disabled (DEMO_ENABLED)")


def _demo_shopper(request: HttpRequest, *, fresh: bool = False) -> tuple[str, str]:
    if fresh or _DEMO_USER not in request.session:
        request.session[_DEMO_USER] = f"demo-{secrets.token_hex(6)}"
        request.session[_DEMO_CART] = f"cart-{secrets.token_hex(6)}"
    return request.session[_DEMO_USER], request.session[_DEMO_CART]


@require_GET
def demo_page(request: HttpRequest) -> HttpResponse:
    _demo_enabled()
    user_id, _ = _demo_shopper(request, fresh="new" in request.GET)
    return render(request, "delivery/demo.html", {"user_id": user_id, "products": DEMO_PRODUCTS})


@require_POST
@never_cache
def demo_ticket(request: HttpRequest) -> JsonResponse:
    _demo_enabled()
    user_id, _ = _demo_shopper(request)
    ticket, expires_at = ws_ticket_issue(user_id=user_id, session_id=request.session.session_key or "")
    return JsonResponse({"ticket": ticket, "expires_at": expires_at.isoformat()})


@require_POST
def demo_idle(request: HttpRequest) -> JsonResponse:
    """Publish the prediction the ML service would publish for this idle shopper (SPEC §3.2)."""
    _demo_enabled()
    user_id, cart_id = _demo_shopper(request)
    try:
        cart = json.loads(request.body or b"{}").get("cart") or {}
    except ValueError:
        cart = {}
    prediction = {
        "prediction_id": str(uuid.uuid4()),
        "model": "cart_abandonment",
        "model_version": "demo",
        "user_id": user_id,
        "session_id": request.session.session_key or "",
        "cart_id": cart_id,
        "score": 0.9,
        "predicted_at": timezone.now().isoformat(),
        "explanations": {"idle_seconds": 240, "cart_total": cart.get("total", 0)},
    }
    producer = Producer(producer_config())
    producer.produce(topic("prediction-results"), key=user_id.encode(), value=json.dumps(prediction).encode())
    remaining = producer.flush(5)
    if remaining:
        return JsonResponse({"error": {"code": "kafka_unavailable"}}, status=503)
    return JsonResponse({"published": prediction})
