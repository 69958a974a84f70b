"""`manage.py bootstrap` outside production: an admin with a random password, shown once."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command

pytestmark = pytest.mark.django_db


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
