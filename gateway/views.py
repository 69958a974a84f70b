"""HTTP views of the WebSocket gateway: ``GET /ws/stats`` and the demo shop at ``/demo/``.

The demo shop is a development aid (on when ``DEMO_ENABLED``, which defaults to ``DEBUG``): it gives the
browser a ticket for a per-session demo shopper without any API key reaching the page; "Add to cart"
publishes the enriched cart event the shop would, and the "go idle" button a ``prediction-results``
message exactly as the ML service would, so the whole loop runs — consumer, decision, push over
``/ws``, ack, engagement. "Get notifications" subscribes the browser to Web Push (the JS client's
``subscribePush`` and its service worker, served under ``/demo/`` so its scope covers the page) and
registers the subscription for the demo shopper, as a shop's backend would with its API key.
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

from api.authentication import operator_required
from api.exceptions import error_body
from core.errors import NotFoundError
from core.vapid import vapid_application_server_key
from gateway.stats import ws_stats
from gateway.tickets import ws_ticket_issue
from messaging.kafka import producer_config, topic
from personalization.services import profile_consent_withdraw, push_token_register, push_token_unregister

_PUSH_SW = settings.BASE_DIR / "static" / "intervention-engine" / "push-sw.js"

_DEMO_USER = "demo_user_id"
_DEMO_CART = "demo_cart_id"
DEMO_PRODUCTS: list[dict[str, Any]] = [
    {"sku": "SKU-TRAIL", "name": "Trail running shoe", "price": 99.90},
    {"sku": "SKU-JACKET", "name": "Rain jacket", "price": 149.00},
    {"sku": "SKU-SOCKS", "name": "Merino socks (3 pairs)", "price": 24.50},
]


@require_GET
@never_cache
@operator_required
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
    return render(
        request,
        "delivery/demo.html",
        {
            "user_id": user_id,
            "products": DEMO_PRODUCTS,
            "vapid_public_key": vapid_application_server_key(settings.WEBPUSH_VAPID_PRIVATE_KEY),
        },
    )


@require_GET
def demo_push_worker(request: HttpRequest) -> HttpResponse:
    """The JS client's service worker, from the demo's own path (a worker's scope is its directory)."""
    _demo_enabled()
    return HttpResponse(_PUSH_SW.read_bytes(), content_type="text/javascript")


@require_POST
def demo_push_subscription(request: HttpRequest) -> JsonResponse:
    """Register the browser's PushSubscription for the demo shopper (what a shop's backend does with
    ``POST /api/v1/users/{id}/push-tokens``)."""
    _demo_enabled()
    user_id, _ = _demo_shopper(request)
    subscription = _body(request).get("subscription")
    keys = subscription.get("keys") if isinstance(subscription, dict) else None
    endpoint = subscription.get("endpoint") if isinstance(subscription, dict) else None
    if not (
        isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")) and isinstance(keys, dict)
    ):
        return JsonResponse(error_body("invalid", "Send the PushSubscription as JSON."), status=400)
    push_token_register(
        user_id=user_id,
        platform="web",
        token=endpoint[:4096],
        app_id=request.build_absolute_uri("/")[:200],
        keys={"p256dh": str(keys.get("p256dh", ""))[:200], "auth": str(keys.get("auth", ""))[:100]},
    )
    return JsonResponse({"registered": endpoint})


@require_POST
def demo_push_opt_out(request: HttpRequest) -> JsonResponse:
    """The shopper turned notifications off: the browser's subscription is forgotten and push consent
    withdrawn (what a shop's backend does with ``DELETE …/push-tokens/{token}`` and ``POST …/opt-outs``)."""
    _demo_enabled()
    user_id, _ = _demo_shopper(request)
    endpoint = _body(request).get("endpoint")
    try:
        if isinstance(endpoint, str) and endpoint:
            push_token_unregister(user_id=user_id, token=endpoint)
        profile_consent_withdraw(user_id=user_id, channel="push", source="client")
    except NotFoundError:
        return JsonResponse(error_body("not_found", "This demo shopper has no notifications."), status=404)
    return JsonResponse({"opted_out": "push"})


@require_POST
@never_cache
def demo_ticket(request: HttpRequest) -> JsonResponse:
    _demo_enabled()
    user_id, _ = _demo_shopper(request)
    ticket, expires_at = ws_ticket_issue(user_id=user_id, session_id=request.session.session_key or "")
    return JsonResponse({"ticket": ticket, "expires_at": expires_at.isoformat()})


# Who the demo shopper is to the engine: what the shop's enriched cart events would say about them.
DEMO_USER_DETAILS: dict[str, Any] = {"first_name": "Alex", "locale": "en", "timezone": "Europe/Paris"}
_MAX_QUANTITY = 99


def _demo_cart(raw: Any) -> dict[str, Any]:
    """The page's cart, priced from the catalogue: only the SKUs and quantities come from the browser."""
    products = {p["sku"]: p for p in DEMO_PRODUCTS}
    wanted = raw.get("items") if isinstance(raw, dict) else None
    items = []
    for item in wanted if isinstance(wanted, list) else []:
        sku = item.get("sku") if isinstance(item, dict) else None
        product = products.get(sku) if isinstance(sku, str) else None
        quantity = item.get("quantity") if product is not None else None
        if product is None or not isinstance(quantity, int) or not 1 <= quantity <= _MAX_QUANTITY:
            continue
        items.append(
            {"sku": product["sku"], "name": product["name"], "price": product["price"], "quantity": quantity}
        )
    return {
        "currency": "EUR",
        "total": round(sum(i["price"] * i["quantity"] for i in items), 2),
        "item_count": sum(i["quantity"] for i in items),
        "items": items,
    }


def _publish(request: HttpRequest, messages: list[tuple[str, dict[str, Any]]]) -> JsonResponse | None:
    """Publish to Kafka keyed by the demo shopper; a 503 answer when the broker does not confirm."""
    user_id, _ = _demo_shopper(request)
    producer = Producer(producer_config())
    for name, body in messages:
        producer.produce(topic(name), key=user_id.encode(), value=json.dumps(body).encode())
    if producer.flush(5):
        return JsonResponse(error_body("kafka_unavailable", "Kafka did not confirm the event."), status=503)
    return None


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@require_POST
def demo_cart(request: HttpRequest) -> JsonResponse:
    """Publish the enriched cart event the shop would (``cart-events-enriched``, SPEC §3.1) when the
    shopper adds an item: the engine learns the cart and who the shopper is before any prediction."""
    _demo_enabled()
    user_id, cart_id = _demo_shopper(request)
    cart = _demo_cart(_body(request).get("cart"))
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "cart_item_added",
        "occurred_at": timezone.now().isoformat(),
        "user_id": user_id,
        "session_id": request.session.session_key or "",
        "cart_id": cart_id,
        "user": DEMO_USER_DETAILS,
        "cart": cart,
    }
    return _publish(request, [("cart-events-enriched", event)]) or JsonResponse({"published": event})


@require_POST
def demo_idle(request: HttpRequest) -> JsonResponse:
    """Publish the prediction the ML service would publish for this idle shopper (SPEC §3.2)."""
    _demo_enabled()
    user_id, cart_id = _demo_shopper(request)
    cart = _demo_cart(_body(request).get("cart"))
    prediction = {
        "prediction_id": str(uuid.uuid4()),
        "model": "cart_abandonment",
        "model_version": "demo",
        "user_id": user_id,
        "session_id": request.session.session_key or "",
        "cart_id": cart_id,
        "score": 0.9,
        "predicted_at": timezone.now().isoformat(),
        "explanations": {"idle_seconds": 240, "cart_total": cart["total"]},
    }
    return _publish(request, [("prediction-results", prediction)]) or JsonResponse({"published": prediction})
