"""Open pixel, click redirect and one-click unsubscribe: signed tokens only."""

from __future__ import annotations

import html
import re

import pytest

from interventions.models import Delivery
from notifications.messages import message_build
from notifications.signed_links import click_url, open_pixel_url, unsubscribe_url
from personalization.models import Profile
from tracking.models import TrackingEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_email(settings, make_delivery):
    settings.PUBLIC_URL = "http://testserver"
    delivery = make_delivery("email")
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.SENT)
    return delivery


def path_of(url: str) -> str:
    return url.removeprefix("http://testserver")


def test_it_records_one_open_per_delivery(client, sent_email):
    # given
    pixel = path_of(open_pixel_url(delivery_id=str(sent_email.pk)))

    # when the mail client loads the pixel twice
    first, second = client.get(pixel), client.get(pixel)

    # then
    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "image/gif"
    assert TrackingEvent.objects.filter(delivery_id=sent_email.pk, type="opened").count() == 1


def test_it_redirects_a_signed_click_and_records_it(client, sent_email):
    # given
    link = path_of(click_url(delivery_id=str(sent_email.pk), target="https://shop.example/cart?c=1"))

    # when
    response = client.get(link)

    # then
    assert response.status_code == 302
    assert response["Location"] == "https://shop.example/cart?c=1"
    event = TrackingEvent.objects.get(delivery_id=sent_email.pk, type="clicked")
    assert event.properties["url"] == "https://shop.example/cart?c=1"


def test_it_redirects_a_link_with_a_query_string_from_a_rendered_email_to_exactly_that_url(
    client,
    settings,
    make_delivery,
):
    # given an email whose HTML names a link with two query parameters, written as HTML must write it
    settings.PUBLIC_URL = "http://testserver"
    target = "https://shop.example/p?a=1&b=2"
    delivery = make_delivery(
        "email",
        content={"subject": "Hi", "body_html": f'<p><a href="{html.escape(target)}">See it</a></p>'},
    )
    message = message_build(delivery=delivery)

    # when a mail client follows the tracked link (attribute values are HTML-unescaped first)
    [href] = re.findall(r'href="(http://testserver/t/c/[^"]+)"', message.html)
    response = client.get(path_of(html.unescape(href)))

    # then
    assert response.status_code == 302
    assert response["Location"] == target
    event = TrackingEvent.objects.get(delivery_id=delivery.pk, type="clicked")
    assert event.properties["url"] == target


def test_it_refuses_a_forged_click_and_writes_nothing(client, sent_email):
    # given a token whose target was changed after signing
    link = path_of(click_url(delivery_id=str(sent_email.pk), target="https://shop.example/"))
    token = link.removeprefix("/t/c/")
    forged = "/t/c/" + token.replace(token.split(":")[0], token.split(":")[0][:-2] + "xx")

    # when
    responses = [client.get(forged), client.get("/t/c/not-a-token"), client.get("/t/o/garbage.gif")]

    # then
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert TrackingEvent.objects.count() == 0


def test_it_shows_a_confirmation_page_on_get_and_changes_nothing(client, sent_email):
    # given
    link = path_of(
        unsubscribe_url(delivery_id=str(sent_email.pk), profile_id=sent_email.intervention.profile_id)
    )

    # when
    response = client.get(link)

    # then
    assert response.status_code == 200
    assert b'<form method="post"' in response.content
    assert Profile.objects.get(pk=sent_email.intervention.profile_id).consent_email is True
    assert TrackingEvent.objects.count() == 0


def test_it_unsubscribes_at_once_on_a_one_click_post(client, sent_email):
    # given the RFC 8058 POST a mail client sends: no cookie, no CSRF token
    link = path_of(
        unsubscribe_url(delivery_id=str(sent_email.pk), profile_id=sent_email.intervention.profile_id)
    )
    client.handler.enforce_csrf_checks = True

    # when
    response = client.post(link, {"List-Unsubscribe": "One-Click"})

    # then
    assert response.status_code == 200
    assert Profile.objects.get(pk=sent_email.intervention.profile_id).consent_email is False
    assert TrackingEvent.objects.filter(type="unsubscribed", delivery_id=sent_email.pk).count() == 1


def test_it_refuses_a_forged_unsubscribe(client, sent_email):
    # when
    response = client.post("/u/eyJwIjoxfQ:forged:signature")

    # then
    assert response.status_code == 404
    assert Profile.objects.get(pk=sent_email.intervention.profile_id).consent_email is True
