"""Validation of the messages the engine consumes (SPEC §3.1, §3.2, §3.5).

A message becomes an :class:`InboundEvent` or raises :class:`InvalidEvent` with a short machine reason
(``not_json``, ``missing_field``, ``wrong_type``, ``unknown_event_type``, ``absurd_value``) and a human
message; the consumer sends invalid messages to the dead-letter topic with that reason.
Unknown fields are ignored (the contract may grow), known fields must have the documented type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.utils import timezone

from campaigns.services import EVENT_TYPES

# The SPEC §3.1 cart event types, as campaigns validate their triggers and exit events against them.
CART_EVENT_TYPES = frozenset(EVENT_TYPES)

# Fields that say "this is not a real shopper's cart": refused rather than acted upon.
MAX_ITEMS = 10_000
MAX_AMOUNT = Decimal("10000000")
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 2000
# A clock may be a little ahead; an event from next week is a bug upstream.
MAX_CLOCK_SKEW = timedelta(hours=1)


class InvalidEvent(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# The kind of the events a send run of a scheduled campaign makes, one per audience member (delivery.runs).
SEND_RUN_EVENT_KIND = "send_run"


@dataclass
class InboundEvent:
    """One validated event, cart event or prediction, with what the decision path needs."""

    kind: str  # "cart", "prediction", or SEND_RUN_EVENT_KIND
    event_id: str  # event_id, or prediction_id for a prediction
    trigger: str  # event_type, or prediction.<model>
    user_id: str
    occurred_at: datetime
    payload: dict[str, Any]
    session_id: str = ""
    cart_id: str = ""
    cart: dict[str, Any] | None = None
    user: dict[str, Any] | None = None
    order: dict[str, Any] | None = None
    score: float | None = None
    # Where it came from, for logs, metrics and the DLQ.
    topic: str = ""
    partition: int = -1
    offset: int = -1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return str(self.payload.get("event_type", ""))


def parse_cart_event(value: bytes | None) -> InboundEvent:
    data = _object(value)
    event_id = _string(data, "event_id", required=True)
    event_type = _string(data, "event_type", required=True)
    if event_type not in CART_EVENT_TYPES:
        raise InvalidEvent("unknown_event_type", f"event_type {event_type!r} is not one of the contract's")
    occurred_at = _timestamp(data, "occurred_at")
    user_id = _string(data, "user_id", required=True)
    session_id = _string(data, "session_id")
    cart_id = _string(data, "cart_id")
    needs_cart = event_type.startswith(("cart_", "checkout_"))
    cart = _cart(data, required=needs_cart)
    user = _user(data)
    order = _order(data, required=event_type == "checkout_completed")
    return InboundEvent(
        kind="cart",
        event_id=event_id,
        trigger=event_type,
        user_id=user_id,
        occurred_at=occurred_at,
        payload=data,
        session_id=session_id,
        cart_id=cart_id,
        cart=cart,
        user=user,
        order=order,
    )


def parse_prediction(value: bytes | None) -> InboundEvent:
    data = _object(value)
    prediction_id = _string(data, "prediction_id", required=True)
    model = _string(data, "model", required=True)
    user_id = _string(data, "user_id", required=True)
    score = data.get("score")
    if "score" not in data or score is None:
        raise InvalidEvent("missing_field", "score is required")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise InvalidEvent("wrong_type", "score must be a number")
    if not 0 <= score <= 1:
        raise InvalidEvent("absurd_value", "score must be between 0 and 1")
    predicted_at = _timestamp(data, "predicted_at")
    _string(data, "model_version")
    explanations = data.get("explanations")
    if explanations is not None and not isinstance(explanations, dict):
        raise InvalidEvent("wrong_type", "explanations must be an object")
    return InboundEvent(
        kind="prediction",
        event_id=prediction_id,
        trigger=f"prediction.{model}",
        user_id=user_id,
        occurred_at=predicted_at,
        payload=data,
        session_id=_string(data, "session_id"),
        cart_id=_string(data, "cart_id"),
        score=float(score),
    )


def _object(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise InvalidEvent("not_json", "the message has no value")
    try:
        # orjson: a third of json.loads's time; strict JSON (no NaN/Infinity, UTF-8 only).
        data = orjson.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent("not_json", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("not_json", "the value is JSON but not an object")
    # PostgreSQL stores no NUL in text or jsonb: such an event would fail its whole batch. The escape can
    # only come from JSON text, so the walk runs only for the rare message that spells it.
    if b"\\u0000" in value and _holds_nul(data):
        raise InvalidEvent("absurd_value", "a text holds a NUL character (\\u0000), which cannot be stored")
    return data


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _string(data: dict[str, Any], name: str, *, required: bool = False, where: str = "") -> str:
    # The hot path of the consumer (≈ 25 calls per event): labels are only formatted for an error.
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{where}{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"{where}{name} must be a string")
    if required and not value.strip():
        raise InvalidEvent("missing_field", f"{where}{name} must not be empty")
    limit = MAX_ID_LENGTH if name.endswith("_id") or name == "model" else MAX_TEXT_LENGTH
    if len(value) > limit:
        raise InvalidEvent("absurd_value", f"{where}{name} is longer than {limit} characters")
    return value


def _timestamp(data: dict[str, Any], name: str) -> datetime:
    raw = data.get(name)
    if raw is None:
        raise InvalidEvent("missing_field", f"{name} is required")
    if not isinstance(raw, str):
        raise InvalidEvent("wrong_type", f"{name} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidEvent("wrong_type", f"{name} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidEvent("wrong_type", f"{name} must carry a UTC offset")
    if moment.year < 2000 or moment > timezone.now() + MAX_CLOCK_SKEW:
        raise InvalidEvent("absurd_value", f"{name} is not a plausible time")
    return moment


_LIMITS = {True: (MAX_ITEMS, int(MAX_ITEMS)), False: (MAX_AMOUNT, float(MAX_AMOUNT))}


def _number(data: dict[str, Any], name: str, *, where: str, integer: bool = False) -> None:
    """Refuse a value that is not a finite, non-negative number within the limit.

    Compared as the JSON number itself (int or float): the same verdicts as through ``Decimal(str(…))``,
    since a float's shortest repr rounds back to it and the limits are exact in binary, at a fraction of
    the cost for the ≈ 10 numbers of every cart event."""
    value = data.get(name)
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        kind = "an integer" if integer else "a number"
        raise InvalidEvent("wrong_type", f"{where}{name} must be {kind}")
    if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
        raise InvalidEvent("absurd_value", f"{where}{name} must not be negative")
    limit, bound = _LIMITS[integer]
    if value > bound:
        raise InvalidEvent("absurd_value", f"{where}{name} is above {limit}")


def _cart(data: dict[str, Any], *, required: bool) -> dict[str, Any] | None:
    cart = data.get("cart")
    if cart is None:
        if required:
            raise InvalidEvent("missing_field", "cart is required on cart and checkout events")
        return None
    if not isinstance(cart, dict):
        raise InvalidEvent("wrong_type", "cart must be an object")
    _string(cart, "currency", where="cart.")
    _number(cart, "total", where="cart.")
    _number(cart, "item_count", where="cart.", integer=True)
    items = cart.get("items")
    if items is not None:
        if not isinstance(items, list):
            raise InvalidEvent("wrong_type", "cart.items must be a list")
        if len(items) > MAX_ITEMS:
            raise InvalidEvent("absurd_value", f"cart.items has more than {MAX_ITEMS} items")
        for index, item in enumerate(items):
            where = f"cart.items[{index}]."
            if not isinstance(item, dict):
                raise InvalidEvent("wrong_type", f"cart.items[{index}] must be an object")
            for name in ("sku", "name", "image_url"):
                _string(item, name, where=where)
            _number(item, "price", where=where)
            _number(item, "quantity", where=where, integer=True)
    return cart


def _user(data: dict[str, Any]) -> dict[str, Any] | None:
    user = data.get("user")
    if user is None:
        return None
    if not isinstance(user, dict):
        raise InvalidEvent("wrong_type", "user must be an object")
    for name in ("email", "phone", "first_name", "locale", "timezone"):
        _string(user, name, where="user.")
    attributes = user.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise InvalidEvent("wrong_type", "user.attributes must be an object")
    _push_tokens(user)
    return user


PUSH_TOKENS_PER_EVENT = 20


def _push_tokens(user: dict[str, Any]) -> None:
    """``user.push_tokens``: devices to register, ``[{"platform", "token", "app_id"?, "keys"?}]`` (web:
    ``token`` is the PushSubscription's endpoint and ``keys`` its ``keys``), as the users API takes them."""
    tokens = user.get("push_tokens")
    if tokens is None:
        return
    if not isinstance(tokens, list) or len(tokens) > PUSH_TOKENS_PER_EVENT:
        raise InvalidEvent(
            "wrong_type", f"user.push_tokens must be a list of at most {PUSH_TOKENS_PER_EVENT}"
        )
    for index, item in enumerate(tokens):
        where = f"user.push_tokens[{index}]."
        if not isinstance(item, dict):
            raise InvalidEvent("wrong_type", f"user.push_tokens[{index}] must be an object")
        if item.get("platform") not in ("android", "ios", "web"):
            raise InvalidEvent("invalid_value", f"{where}platform must be android, ios or web")
        token = item.get("token")
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise InvalidEvent("invalid_value", f"{where}token must be a string of 1 to 4096 characters")
        _string(item, "app_id", where=where)
        keys = item.get("keys")
        if item["platform"] == "web" and not (
            isinstance(keys, dict)
            and all(isinstance(keys.get(k), str) and keys[k] for k in ("p256dh", "auth"))
        ):
            raise InvalidEvent("invalid_value", f"{where}keys must hold the subscription's p256dh and auth")


def _order(data: dict[str, Any], *, required: bool) -> dict[str, Any] | None:
    order = data.get("order")
    if order is None:
        if required:
            raise InvalidEvent("missing_field", "order is required on checkout_completed")
        return None
    if not isinstance(order, dict):
        raise InvalidEvent("wrong_type", "order must be an object")
    _string(order, "order_id", required=True, where="order.")
    if order.get("revenue") is None:
        raise InvalidEvent("missing_field", "order.revenue is required")
    _number(order, "revenue", where="order.")
    currency = _string(order, "currency", where="order.")
    if currency and len(currency) != 3:
        raise InvalidEvent("wrong_type", "order.currency must be an ISO 4217 code")
    return order
