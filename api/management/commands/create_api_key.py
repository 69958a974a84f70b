"""``python manage.py create_api_key NAME --scope campaigns [--scope events …] | --all-scopes``: prints the
key once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import Scope
from api.services import api_key_create
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key and print it once; name its scopes (--scope …) or ask for --all-scopes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        scopes = parser.add_mutually_exclusive_group(required=True)
        scopes.add_argument(
            "--scope", action="append", dest="scopes", choices=Scope.values, help="Repeat for several scopes."
        )
        scopes.add_argument("--all-scopes", action="store_true", help="Every scope (an administrator's key).")

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = Scope.values if options["all_scopes"] else options["scopes"]
        try:
            api_key, raw_key = api_key_create(name=options["name"], scopes=scopes)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"Created API key {api_key.name!r} with scopes: {', '.join(api_key.scopes)}. "
            "Store it now: it cannot be shown again."
        )
        # Alone on stdout so scripts can capture it: KEY=$(python manage.py create_api_key ci).
        self.stdout.write(raw_key)
