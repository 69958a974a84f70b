"""Test overlay: the real stores from the environment, plus what makes tests fast and readable."""

from intervention_engine.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOG_FORMAT = "console"
