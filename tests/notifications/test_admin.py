from __future__ import annotations

import pytest
from django.urls import reverse

from interventions.models import Delivery
from notifications.models import ProviderAttempt

pytestmark = pytest.mark.django_db


def test_it_lists_failed_deliveries_and_retries_them(admin_client, make_delivery):
    # given a failed and a sent delivery
    failed = make_delivery("sms")
    Delivery.objects.filter(pk=failed.pk).update(
        status="failed", attempts=6, last_error="Twilio 503", error_kind="transient"
    )
    sent = make_delivery("email")
    Delivery.objects.filter(pk=sent.pk).update(status="sent")
    changelist = reverse("admin:interventions_delivery_changelist")

    # when
    listing = admin_client.get(changelist, {"attention": "open"})
    action = admin_client.post(
        changelist, {"action": "retry", "_selected_action": [str(failed.pk), str(sent.pk)]}, follow=True
    )

    # then the failed one is queued again with a fresh budget; the sent one is refused
    assert listing.status_code == 200
    assert str(failed.pk) in listing.content.decode()
    assert str(sent.pk) not in listing.content.decode()
    assert action.status_code == 200
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.status, failed.attempts) == ("queued", 0)
    assert sent.status == "sent"


def test_it_marks_an_unknown_delivery_resolved(admin_client, make_delivery):
    # given
    unknown = make_delivery("push")
    Delivery.objects.filter(pk=unknown.pk).update(status="unknown")

    # when
    admin_client.post(
        reverse("admin:interventions_delivery_changelist"),
        {"action": "mark_resolved", "_selected_action": [str(unknown.pk)]},
    )

    # then
    unknown.refresh_from_db()
    assert unknown.status == "unknown"
    assert unknown.resolved_at is not None


def test_it_shows_provider_health(admin_client, make_delivery):
    # given
    delivery = make_delivery("sms")
    for outcome, latency in [("sent", 20), ("sent", 30), ("transient", 1000)]:
        ProviderAttempt.objects.create(
            provider="twilio",
            channel="sms",
            delivery_id=delivery.pk,
            outcome=outcome,
            latency_ms=latency,
            error="" if outcome == "sent" else "Service Unavailable",
        )

    # when
    response = admin_client.get(reverse("admin:notifications_provider_health"))

    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert "twilio" in body
    assert "67 %" in body  # 2 of 3 calls succeeded
    assert "Service Unavailable" in body
