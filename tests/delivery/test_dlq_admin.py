"""The admin's dead-letter page on the real broker: inspect by reason, replay, refusals with reasons."""

from __future__ import annotations

import json
import socket

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from delivery.event_handlers import DeadLetter
from messaging.kafka import topic
from tests.messaging.kafka_topics import isolate_topics, produce, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]

URL = "/admin/dead-letters/"


def dead_letter(reason: str, value: bytes | None, *, offset: int) -> tuple[str, bytes | None, bytes]:
    letter = DeadLetter(
        reason=reason,
        error=f"{reason} at offset {offset}",
        topic=topic("cart-events-enriched"),
        partition=0,
        offset=offset,
        key=b"u-1",
        value=value,
    )
    return (topic("intervention-engine.dlq"), b"u-1", json.dumps(letter.payload()).encode())


@pytest.fixture
def dead_letters(settings):
    isolate_topics(settings)
    produce(
        [
            dead_letter("not_json", b"{this is not json", offset=0),
            dead_letter("absurd_value", b'{"event_type": "cart_item_added", "quantity": -4}', offset=1),
            dead_letter("not_json", b"\xff\xfe", offset=2),
        ]
    )


def test_it_lists_dead_letters_with_their_reasons_and_filters_by_reason(admin_client, dead_letters):
    # when
    page = admin_client.get(URL)
    only_absurd = admin_client.get(URL, {"reason": "absurd_value"})

    # then
    assert page.status_code == 200
    html = page.content.decode()
    for shown in ("all (3)", "not_json</code> (2)", "absurd_value</code> (1)", "{this is not json", "base64"):
        assert shown in html
    assert [row["position"] for row in page.context["rows"]] == ["0:2", "0:1", "0:0"]  # newest first
    assert [row["reason"] for row in only_absurd.context["rows"]] == ["absurd_value"]
    assert "&quot;quantity&quot;: -4" in only_absurd.content.decode()  # the original, pretty-printed


def test_it_replays_the_selected_message_to_its_source_topic(admin_client, dead_letters):
    # when
    response = admin_client.post(URL, {"position": ["0:1"]}, follow=True)

    # then
    assert "Replayed 1 message(s) to their source topics." in response.content.decode()
    [replayed] = read_all(topic("cart-events-enriched"), expected=1)
    assert replayed.value() == b'{"event_type": "cart_item_added", "quantity": -4}'
    assert dict(replayed.headers())["dlq.replayed_from"] == b"0:1"


def test_it_refuses_a_replay_without_a_selection_or_of_an_unknown_position(admin_client, dead_letters):
    # when
    empty = admin_client.post(URL, {}, follow=True)
    unknown = admin_client.post(URL, {"position": ["0:1", "0:99"]}, follow=True)

    # then nothing reaches the source topic, and each refusal says why
    assert "Select the messages to replay." in empty.content.decode()
    assert "Nothing replayed: not on the dead-letter topic: 0:99." in unknown.content.decode()
    assert read_all(topic("cart-events-enriched"), expected=1, timeout=2) == []


def test_only_an_operator_may_replay(client, dead_letters):
    # given a staff member who may look at the Kafka plumbing, but may not replay
    user = User.objects.create_user("otto", "otto@example.com", "a-long-test-password", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_outboxmessage"))
    client.force_login(user)

    # when
    page = client.get(URL)
    refused = client.post(URL, {"position": ["0:0"]})

    # then they see the letters, without a way to replay them, and a forged replay is forbidden
    assert page.status_code == 200
    assert len(page.context["rows"]) == 3
    assert 'name="position"' not in page.content.decode()
    assert refused.status_code == 403
    assert read_all(topic("cart-events-enriched"), expected=1, timeout=2) == []


def test_a_staff_member_granted_the_replay_permission_replays(client, dead_letters):
    # given an operator who is no superuser, granted looking and replaying
    user = User.objects.create_user("ops", "ops@example.com", "a-long-test-password", is_staff=True)
    for codename in ("view_outboxmessage", "replay_dead_letters"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)

    # when
    page = client.get(URL)
    response = client.post(URL, {"position": ["0:1"]}, follow=True)

    # then
    assert 'name="position"' in page.content.decode()
    assert "Replayed 1 message(s) to their source topics." in response.content.decode()
    assert len(read_all(topic("cart-events-enriched"), expected=1)) == 1


def test_a_marketer_may_not_open_the_page(marketer_client, settings):
    # when
    response = marketer_client.get(URL)
    index = marketer_client.get(reverse("admin:index"))

    # then
    assert response.status_code == 403
    assert URL not in index.content.decode()


def test_the_index_links_the_page_for_an_operator(admin_client):
    assert URL in admin_client.get(reverse("admin:index")).content.decode()


def test_it_says_so_when_the_broker_does_not_answer(admin_client, settings):
    # given nothing listens where the broker should be
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{closed.getsockname()[1]}"

    # when
    response = admin_client.get(URL)

    # then the page still opens, and says what is wrong
    assert response.status_code == 200
    assert "The Kafka broker did not answer" in response.content.decode()


def test_it_refuses_to_replay_a_letter_without_its_original_message(admin_client, settings):
    # given a dead letter for a message that had no value (a tombstone)
    isolate_topics(settings)
    produce([dead_letter("not_json", None, offset=0)])

    # when
    page = admin_client.get(URL)
    refused = admin_client.post(URL, {"position": ["0:0"]}, follow=True)

    # then it is listed without a checkbox, and a forged selection is refused with the reason
    assert 'name="position"' not in page.content.decode()
    assert "Nothing replayed: 0:0 carry no original message or source topic." in refused.content.decode()
    assert read_all(topic("cart-events-enriched"), expected=1, timeout=2) == []
