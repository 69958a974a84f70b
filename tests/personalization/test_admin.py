"""Shoppers' profiles in the back office: marketers look and search, but never edit."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from personalization.models import Profile, PushToken

pytestmark = pytest.mark.django_db


def test_it_lists_profiles_with_consent_and_finds_one_by_user_id(marketer_client):
    # given
    Profile.objects.create(
        user_id="u-1", email="ada@example.com", consent_sms=True, last_seen_at=timezone.now()
    )
    Profile.objects.create(user_id="u-2", email="bob@example.com", email_suppressed_at=timezone.now())

    # when
    found = marketer_client.get(reverse("admin:personalization_profile_changelist") + "?q=u-1")
    by_email = marketer_client.get(reverse("admin:personalization_profile_changelist") + "?q=bob@example")
    no_sms = marketer_client.get(
        reverse("admin:personalization_profile_changelist") + "?consent_sms__exact=0"
    )

    # then
    assert [p.user_id for p in found.context["cl"].result_list] == ["u-1"]
    assert [p.user_id for p in by_email.context["cl"].result_list] == ["u-2"]
    assert [p.user_id for p in no_sms.context["cl"].result_list] == ["u-2"]
    assert "Suppressed" in by_email.content.decode()


def test_it_shows_push_tokens_on_the_profile_read_only_for_a_marketer(marketer_client):
    # given
    profile = Profile.objects.create(user_id="u-1", email="ada@example.com")
    PushToken.objects.create(
        profile=profile, token="fcm-token-0123456789abcdefghijklmnop", platform="android"
    )
    url = reverse("admin:personalization_profile_change", args=[profile.pk])

    # when
    page = marketer_client.get(url)
    attempt = marketer_client.post(url, {"user_id": "u-1", "email": "mallory@example.com"})

    # then
    assert page.status_code == 200
    assert "fcm-token-0123456789abcd…" in page.content.decode()
    assert page.context["has_change_permission"] is False
    assert attempt.status_code == 403
    profile.refresh_from_db()
    assert profile.email == "ada@example.com"


def test_it_refuses_profiles_to_staff_without_the_marketer_group(client, django_user_model):
    # given
    user = django_user_model.objects.create_user(
        "guest", "g@example.com", "a-long-test-password", is_staff=True
    )
    client.force_login(user)

    # when / then
    assert client.get(reverse("admin:personalization_profile_changelist")).status_code == 403
