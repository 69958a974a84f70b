"""`manage.py bootstrap` outside production: an admin with a random password, shown once."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command

from core.vapid import vapid_application_server_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    """Files bootstrap keeps for the checkout (the Web Push key) go to a directory of the test's own."""
    settings.VAR_DIR = tmp_path
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    return tmp_path


def test_it_creates_the_admin_with_a_random_password_printed_once(monkeypatch) -> None:
    # given no ADMIN_PASSWORD
    monkeypatch.setenv("ADMIN_USERNAME", "ops")
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)

    # when bootstrap runs, twice
    first, second = io.StringIO(), io.StringIO()
    call_command("bootstrap", "--no-demo", stdout=first)
    call_command("bootstrap", "--no-demo", stdout=second)

    # then the admin's password is a random one, shown the first time only
    [password] = re.findall(r"with password '([^']+)'", first.getvalue())
    assert len(password) >= 16
    assert authenticate(username="ops", password=password) is not None
    assert authenticate(username="ops", password="admin") is None
    assert User.objects.get(username="ops").is_superuser
    assert password not in second.getvalue()
    assert "exists" in second.getvalue()


def test_it_generates_a_web_push_key_once_and_never_replaces_it(var_dir) -> None:
    # when bootstrap runs, twice
    call_command("bootstrap", "--no-demo", stdout=io.StringIO())
    key = (var_dir / "vapid_private_key").read_text().strip()
    call_command("bootstrap", "--no-demo", stdout=io.StringIO())

    # then one usable P-256 key was written, readable by its owner only, and kept
    assert (var_dir / "vapid_private_key").read_text().strip() == key
    assert len(vapid_application_server_key(key)) == 87  # 65-byte uncompressed point, base64url
    assert (var_dir / "vapid_private_key").stat().st_mode & 0o077 == 0
