"""Provider webhooks: what happened to a message after the provider took it.

- Email: django-anymail's tracking webhook of the configured ESP only (``ANYMAIL_TRACKING_ESP``, mounted at
  ``/api/v1/webhooks/anymail/<esp>/tracking/``), authenticated by ANYMAIL's WEBHOOK_SECRET (HTTP basic auth)
  and refused outright while no secret is set; it emits anymail's ``tracking`` signal, recorded below for
  email deliveries only.
- SMS: Twilio status callbacks, and inbound messages (STOP/START keywords, ``notifications.optouts``),
  accepted only with a valid ``X-Twilio-Signature``.
- Push: receipts posted by the app backend with an API key holding the ``webhooks`` scope.

A forged call gets 4xx and writes nothing. A replay writes nothing either: each callback has a key
(Twilio: message sid + status; push: receipt id; ESP: its event id) kept unique in the database, and a
replayed Twilio callback or push batch is answered 409.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from anymail import urls as anymail_urls
from anymail.signals import AnymailTrackingEvent, EventType, tracking
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from twilio.request_validator import RequestValidator

from api.authentication import ApiKeyAuthentication
from api.exceptions import error_body
from api.permissions import HasScope
from api.serializers import ErrorSerializer
from core.errors import ConflictError, NotFoundError
from core.observability import get_logger
from interventions.selectors import delivery_by_provider_message_id, delivery_get
from notifications.ledger import delivery_failure_report
from notifications.models import ProviderCallback
from notifications.optouts import sms_keyword_apply
from notifications.providers.sms import DEAD_NUMBER_CODES
from personalization.services import profile_email_complaint_record
from tracking.services import tracking_event_record

logger = get_logger(__name__)

# Twilio delivery error codes meaning the number cannot receive SMS (unknown, landline, unreachable…).
TWILIO_DEAD_DELIVERY_CODES = frozenset({30003, 30005, 30006, *DEAD_NUMBER_CODES})


def _callback_seen(key: str) -> bool:
    """Remember a callback key; True when it was already processed. Call inside a transaction."""
    try:
        with transaction.atomic():
            ProviderCallback.objects.create(key=key[:300])
    except IntegrityError:
        return True
    return False


# --- Email: anymail ---------------------------------------------------------------------------------

_ANYMAIL_TYPES = {
    EventType.DELIVERED: "delivered",
    EventType.OPENED: "opened",
    EventType.CLICKED: "clicked",
    EventType.BOUNCED: "bounced",
    EventType.REJECTED: "bounced",
    EventType.COMPLAINED: "complained",
    EventType.UNSUBSCRIBED: "unsubscribed",
}


def _anymail_secret_configured() -> bool:
    return bool(settings.ANYMAIL.get("WEBHOOK_SECRET"))


def _anymail_secret_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Without WEBHOOK_SECRET anymail warns and accepts anyone's post; here the webhook is closed instead."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not _anymail_secret_configured():
            return JsonResponse(
                error_body("webhook_not_configured", "Set ANYMAIL_WEBHOOK_SECRET to accept ESP webhooks."),
                status=403,
            )
        return view(request, *args, **kwargs)

    return csrf_exempt(guarded)


def anymail_tracking_urlpatterns(*, esp: str) -> list[URLPattern]:
    """The tracking webhook of ``esp`` alone, as anymail's own URL list defines it (path and name, e.g.
    ``postmark/tracking/``, ``anymail:postmark_tracking_webhook``): every other ESP's endpoint would take
    posts in a format nobody legitimately sends us. No ESP, no endpoint."""
    if not esp:
        return []
    name = f"{esp}_tracking_webhook"
    for pattern in anymail_urls.urlpatterns:
        if isinstance(pattern, URLPattern) and pattern.name == name:
            view = _anymail_secret_required(pattern.callback)
            return [re_path(pattern.pattern.regex.pattern, view, name=name)]
    raise ImproperlyConfigured(f"django-anymail has no tracking webhook for ANYMAIL_TRACKING_ESP={esp!r}")


@receiver(tracking, dispatch_uid="tracking.anymail_tracking")
def anymail_tracking_received(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    if not _anymail_secret_configured():
        # Only reachable if a view of anymail's were mounted some other way: an unauthenticated post.
        logger.warning("anymail_event_refused_without_secret", esp=esp_name)
        return
    tracking_type = _ANYMAIL_TYPES.get(event.event_type)
    if tracking_type is None:
        return  # queued, sent, deferred…: nothing the ledger or the reports need
    delivery = None
    delivery_id = (event.metadata or {}).get("delivery_id")
    if delivery_id:
        delivery = delivery_get(delivery_id=str(delivery_id))
        if delivery is not None and delivery.channel != "email":
            # An email event never acts on an SMS or push delivery (failing it, withdrawing consent).
            logger.info("anymail_event_for_other_channel", esp=esp_name, delivery_id=str(delivery_id))
            return
    if delivery is None:
        delivery = delivery_by_provider_message_id(
            channel="email", provider_message_id=event.message_id or ""
        )
    if delivery is None:
        logger.info("anymail_event_unmatched", esp=esp_name, message_id=event.message_id)
        return
    key = f"anymail:{esp_name}:{event.event_id or f'{event.message_id}:{event.event_type}:{event.timestamp}'}"
    with transaction.atomic():
        if _callback_seen(key):
            return
        properties: dict[str, Any] = {"esp": esp_name}
        if event.click_url:
            properties["url"] = event.click_url
        if event.reject_reason:
            properties["reject_reason"] = event.reject_reason
        tracking_event_record(
            intervention_id=delivery.intervention_id,
            type=tracking_type,
            source="webhook",
            occurred_at=event.timestamp,
            event_id=key,
            channel="email",
            delivery_id=delivery.pk,
            properties=properties,
        )
        profile_id = delivery.intervention.profile_id
        if tracking_type == "bounced":
            # Anymail reports soft bounces as "deferred"; "bounced"/"rejected" are final for this address.
            delivery_failure_report(
                delivery=delivery,
                reason=event.description or event.reject_reason or "bounced",
                permanent=True,
                response={"mta_response": event.mta_response or ""},
            )
        elif tracking_type in ("complained", "unsubscribed"):
            profile_email_complaint_record(profile_id=profile_id)


# --- SMS: Twilio status callbacks ---------------------------------------------------------------------


def _twilio_token(account_sid: str) -> str:
    for prefix in ("TWILIO_", "TWILIO_SECONDARY_"):
        if account_sid and getattr(settings, f"{prefix}ACCOUNT_SID") == account_sid:
            return str(getattr(settings, f"{prefix}AUTH_TOKEN"))
    return ""


def _twilio_signed(request: HttpRequest, *, configured_url: str) -> dict[str, str] | None:
    """The posted parameters when ``X-Twilio-Signature`` is valid for the account they name, else None."""
    params = {key: request.POST.get(key, "") for key in request.POST}
    token = _twilio_token(params.get("AccountSid", ""))
    url = configured_url or request.build_absolute_uri()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature or not RequestValidator(token).validate(url, params, signature):
        return None
    return params


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    params = _twilio_signed(request, configured_url=settings.TWILIO_STATUS_CALLBACK_URL)
    if params is None:
        return JsonResponse(error_body("invalid_signature", "Bad signature."), status=403)
    sid, message_status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    delivery = delivery_by_provider_message_id(channel="sms", provider_message_id=sid)
    if delivery is None:
        return JsonResponse(error_body("not_found", "Unknown message."), status=404)
    with transaction.atomic():
        if _callback_seen(f"twilio:{sid}:{message_status}"):
            return JsonResponse(error_body("replayed", "Already processed."), status=409)
        if message_status == "delivered":
            tracking_event_record(
                intervention_id=delivery.intervention_id,
                type="delivered",
                source="webhook",
                event_id=f"twilio:{sid}:delivered",
                channel="sms",
                delivery_id=delivery.pk,
            )
        elif message_status in ("undelivered", "failed"):
            code = int(params.get("ErrorCode") or 0)
            delivery_failure_report(
                delivery=delivery,
                reason=f"Twilio {message_status} (error {code})",
                permanent=code in TWILIO_DEAD_DELIVERY_CODES,
                response={"status": message_status, "error_code": code},
            )
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """A message a shopper sent to our number: STOP/START keywords change SMS consent.

    Answers an empty TwiML response: Twilio sends its own confirmation for the standard keywords. A
    replayed message (same MessageSid) changes nothing again."""
    params = _twilio_signed(request, configured_url=settings.TWILIO_INBOUND_URL)
    if params is None:
        return JsonResponse(error_body("invalid_signature", "Bad signature."), status=403)
    with transaction.atomic():
        if not _callback_seen(f"twilio-inbound:{params.get('MessageSid', '')}"):
            keyword = sms_keyword_apply(phone=params.get("From", ""), body=params.get("Body", ""))
            logger.info("twilio_inbound", keyword=keyword or "none")
    return HttpResponse("<Response/>", content_type="text/xml")


# --- Push: receipts from the app backend ---------------------------------------------------------------


class PushReceiptSerializer(serializers.Serializer):
    receipt_id = serializers.CharField(max_length=200)
    delivery_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["delivered", "displayed", "opened", "clicked", "dismissed"])
    occurred_at = serializers.DateTimeField(required=False)


class PushReceiptsSerializer(serializers.Serializer):
    receipts = serializers.ListField(child=PushReceiptSerializer(), allow_empty=False, max_length=1000)


class PushReceiptsResultSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class PushReceiptsView(APIView):
    """``POST /api/v1/webhooks/push-receipts``: what devices reported about pushes we sent."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scopes = {"webhooks"}

    @extend_schema(
        operation_id="push_receipts_create",
        request=PushReceiptsSerializer,
        # 404: a receipt names a delivery that is not one of our pushes (nothing of the call is written);
        # 409: every receipt of the call was processed before.
        responses={200: PushReceiptsResultSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = PushReceiptsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        receipts = serializer.validated_data["receipts"]
        recorded = 0
        with transaction.atomic():
            for receipt in receipts:
                delivery = delivery_get(delivery_id=receipt["delivery_id"])
                if delivery is None or delivery.channel != "push":
                    # Raised inside the transaction: nothing of the call is written.
                    raise NotFoundError(f"No push delivery {receipt['delivery_id']}.")
                if _callback_seen(f"push:{receipt['receipt_id']}"):
                    continue
                tracking_event_record(
                    intervention_id=delivery.intervention_id,
                    type=receipt["status"],
                    source="webhook",
                    occurred_at=receipt.get("occurred_at"),
                    event_id=f"push:{receipt['receipt_id']}",
                    channel="push",
                    delivery_id=delivery.pk,
                )
                recorded += 1
        if not recorded:
            raise ConflictError("Every receipt was already processed.", code="replayed")
        return Response({"recorded": recorded, "duplicates": len(receipts) - recorded})
