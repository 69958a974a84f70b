from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_KEY = "k2W9xQp7Lr4vT8sZ1nYb6cJ3hF5dG0aM-eU_iO+wN&pR^yV%tX*"


def run_django(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    environment.update(env)
    environment["DJANGO_SETTINGS_MODULE"] = "intervention_engine.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_refuses_to_start_in_production_without_a_secret_key() -> None:
    result = run_django("check", ENVIRONMENT="production")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when ENVIRONMENT=production" in result.stderr


def test_it_refuses_a_short_secret_key_in_production() -> None:
    result = run_django("check", ENVIRONMENT="production", SECRET_KEY="short")

    assert result.returncode != 0
    assert "at least 50 random characters" in result.stderr


def test_it_refuses_to_start_in_production_with_an_esp_webhook_but_no_secret() -> None:
    production = {"ENVIRONMENT": "production", "SECRET_KEY": PRODUCTION_KEY}

    without = run_django("check", EMAIL_BACKEND="anymail.backends.postmark.EmailBackend", **production)
    with_secret = run_django(
        "check",
        EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        ANYMAIL_WEBHOOK_SECRET="hook:long-random-words",
        **production,
    )

    assert without.returncode != 0
    assert "ANYMAIL_WEBHOOK_SECRET must be set when ENVIRONMENT=production" in without.stderr
    assert with_secret.returncode == 0, with_secret.stderr


def test_it_passes_the_deployment_checklist_in_production() -> None:
    result = run_django(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENVIRONMENT="production",
        SECRET_KEY=PRODUCTION_KEY,
        ALLOWED_HOSTS="engine.example.com",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_generates_a_development_key_once_per_checkout(tmp_path: Path) -> None:
    # given no SECRET_KEY and no key file yet
    key_file = tmp_path / "var" / "secret_key"
    show = (
        "from django.conf import settings; print('key', settings.SECRET_KEY, settings.SECRET_KEY_GENERATED)"
    )

    # when two processes start, one after the other, and one of another checkout
    first = run_django("shell", "-c", show, SECRET_KEY_FILE=str(key_file))
    second = run_django("shell", "-c", show, SECRET_KEY_FILE=str(key_file))
    other = run_django("shell", "-c", show, SECRET_KEY_FILE=str(tmp_path / "other" / "secret_key"))

    # then they share one random key, readable by its owner only, and another checkout has its own
    assert first.returncode == 0, first.stderr
    [(key, generated)] = re.findall(r"^key (\S+) (\w+)$", first.stdout, re.MULTILINE)
    assert generated == "True"
    assert len(key) >= 50
    assert key_file.read_text() == key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert f"key {key} True" in second.stdout
    assert key not in other.stdout
    assert "dev-insecure" not in key


def test_it_rejects_an_unknown_environment() -> None:
    result = run_django("check", ENVIRONMENT="staging")

    assert result.returncode != 0
    assert "ENVIRONMENT must be development, test or production" in result.stderr
