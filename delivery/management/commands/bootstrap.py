from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from campaigns.demo import demo_load
from core.vapid import vapid_private_key_generate
from messaging.kafka import ensure_topics


class Command(BaseCommand):
    help = "Prepare a stack to run: migrate, create the Kafka topics, an admin user and the demo data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo data set.")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        created = ensure_topics()
        self.stdout.write(f"kafka topics ready ({len(created)} created)")
        self._ensure_admin()
        self._ensure_vapid_key()
        if not options["no_demo"]:
            demo = demo_load()
            self.stdout.write(f"demo data ready ({sum(len(names) for names in demo.values())} created)")

    def _ensure_vapid_key(self) -> None:
        """Outside production, a Web Push (VAPID) key of this checkout's own in var/, which the settings
        read when WEBPUSH_VAPID_PRIVATE_KEY is not set; production sets it (a new key invalidates every
        browser's subscription)."""
        path = settings.VAR_DIR / "vapid_private_key"
        if settings.WEBPUSH_VAPID_PRIVATE_KEY or settings.IS_PRODUCTION or path.exists():
            return  # never replaced: browsers' subscriptions are bound to the key they subscribed with
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(vapid_private_key_generate() + "\n")
        path.chmod(0o600)
        self.stdout.write(f"web push key generated in {path} (restart the processes to use it)")

    def _ensure_admin(self) -> None:
        username = os.environ.get("ADMIN_USERNAME", "admin")
        password = os.environ.get("ADMIN_PASSWORD", "")
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(f"admin user {username!r} exists")
            return
        chosen = bool(password)
        if not chosen:
            if settings.IS_PRODUCTION:
                # A password printed in a deployment's logs would be worse than no admin at all.
                self.stdout.write("no admin user created: set ADMIN_PASSWORD (or use createsuperuser)")
                return
            # Random, never a well-known one: a development stack can still be reached by others.
            password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username=username, email="", password=password)
        if chosen:
            self.stdout.write(self.style.SUCCESS(f"admin user created: log in at /admin/ as {username!r}"))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"admin user created: log in at /admin/ as {username!r} with password {password!r}. "
                "It is shown only now (set ADMIN_USERNAME / ADMIN_PASSWORD to choose them, or use "
                "`manage.py changepassword`)"
            )
        )
