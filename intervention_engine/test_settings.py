"""Test overlay: the real stores from the environment, plus what makes tests fast and readable."""

from intervention_engine.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOG_FORMAT = "console"
# Live-server tests serve from threads; persistent connections there would hold the test database open.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# The ESP whose tracking webhook the tests post to (tests/tracking/test_webhooks.py); URLs are built at start.
ANYMAIL_TRACKING_ESP = "postmark"
